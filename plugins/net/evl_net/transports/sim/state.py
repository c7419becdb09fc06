"""Where the simulator keeps its state between invocations: the file, its lock, its writes.

One JSON file, replaced atomically (write a temporary file, fsync, rename),
under an exclusive ``flock`` held for the whole read-modify-write, so that
concurrent invocations serialise and no update is lost.  A kill at any point
leaves either the old or the new state, never a torn one.  What the JSON
holds is :mod:`evl_net.transports.sim.records`' business, and which board's
state is current :mod:`evl_net.transports.sim.store`'s.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

from evl_core.errors import EvlError

STATE_ENV = "EVL_SIM_STATE"
FORMAT = 1


def default_path(env: Mapping[str, str]) -> str:
    if env.get(STATE_ENV):
        return env[STATE_ENV]
    base = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "evl-tools", "sim-state.json")


def corrupt(path: str, problem: str) -> EvlError:
    """The error for a state file that is not one of ours."""
    return EvlError(f"simulator state {path} is corrupt ({problem}); reset it with 'evl sim reset' or remove the file")


class StateFile:
    """A locked JSON state file: ``acquire()``, ``read()``, ``write()``, ``release()``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock_fd: int | None = None

    def acquire(self) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(directory, exist_ok=True)
            fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise EvlError(f"cannot open simulator state {self.path}", exc.errno) from None
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._lock_fd = fd

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None

    def read(self) -> dict[str, Any] | None:
        """The stored JSON object, or None when there is none yet.

        Anything but a JSON object of this format (bad bytes, nesting too deep
        to parse...) is the "corrupt" error, and the file is left as it is.
        """
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise EvlError(f"cannot read simulator state {self.path}", exc.errno) from None
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError("unknown format")
        except RecursionError:
            raise corrupt(self.path, "nested too deep") from None
        except ValueError as exc:
            raise corrupt(self.path, str(exc)) from None
        return data

    def write(self, data: dict[str, Any], default: Callable[[Any], Any] | None = None) -> None:
        """Replace the stored object by ``data`` (``default`` as for ``json.dump``), atomically."""
        data["format"] = FORMAT
        tmp = f"{self.path}.tmp.{os.getpid()}"
        try:
            with open(tmp, "w") as f:
                json.dump(data, f, separators=(",", ":"), default=default)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise EvlError(f"cannot write simulator state {self.path}", exc.errno) from None

    def remove(self) -> bool:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            return False
        return True
