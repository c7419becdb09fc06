"""Where the simulator keeps its state between invocations: the file, its lock, its writes.

One JSON file, replaced atomically (write a temporary file, fsync, rename),
under an exclusive ``flock`` held for the whole read-modify-write, so that
concurrent invocations serialise and no update is lost.  A kill at any point
leaves either the old or the new state, never a torn one.  What the JSON
holds is :mod:`evl_net.transports.sim.records`' business, and which board's
state is current :mod:`evl_net.transports.sim.store`'s.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat

from evl_core.errors import EvlError, shown
from evl_core.files import MiB, open_lock, problem, read_regular

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

STATE_ENV = "EVL_SIM_STATE"
#: The format written: 2, a board file's board only named (1, every board in full, is still read).
FORMAT = 2
READABLE = (1, 2)
#: The largest state file read (a state holding many large boards stays far below it).
STATE_MAX = 256 * MiB
TMP_INFIX = ".tmp."


def default_path(env: Mapping[str, str]) -> str:
    if env.get(STATE_ENV):
        return env[STATE_ENV]
    base = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "evl-tools", "sim-state.json")


def corrupt(path: str, problem: str) -> EvlError:
    """The error for a state file that is not one of ours."""
    return EvlError(
        f"simulator state {shown(path)} is corrupt ({shown(problem)}); reset it with 'evl sim reset' or remove the file"
    )


class StateFile:
    """A locked JSON state file: ``acquire()``, ``read()``, ``write()``, ``release()``.

    A state file that is a symbolic link stays one: its target is read and
    replaced (the temporary file and the lock sit next to the target, so two
    links to one state share its lock).  The lock file itself is never
    followed through a link, and must be a regular file.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock_fd: int | None = None

    @property
    def target(self) -> str:
        """The file the state is in: ``path``, or what it links to."""
        return os.path.realpath(self.path) if os.path.islink(self.path) else os.path.abspath(self.path)

    @property
    def lock_path(self) -> str:
        return self.target + ".lock"

    def _make_directory(self, directory: str) -> None:
        try:
            os.makedirs(directory, exist_ok=True)
        except FileExistsError:  # a component is a file: say so as open(2) would
            raise EvlError(f"cannot open simulator state {shown(self.path)}", errno.ENOTDIR) from None
        except OSError as exc:
            raise EvlError(f"cannot open simulator state {shown(self.path)}", exc.errno) from None

    def acquire(self) -> None:
        if not self.path:
            raise EvlError("the simulator state path is empty (EVL_SIM_STATE)")
        lock = self.lock_path
        self._make_directory(os.path.dirname(lock))
        where = f"cannot lock simulator state {shown(self.path)}: lock file {shown(lock)}"
        fd = open_lock(lock, where, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            os.close(fd)
            raise EvlError(where, exc.errno) from None
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd = fd

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None

    def read(self) -> dict[str, Any] | None:
        """The stored JSON object, or None when there is none yet.

        Anything but a JSON object of this format (bad bytes, nesting too deep
        to parse...) is the "corrupt" error, and the file is left as it is.
        A state path that is not a regular file is an error naming it.
        """
        try:
            os.stat(self.path)
        except FileNotFoundError:  # none yet (a link to a file to come included)
            return None
        except (OSError, ValueError):
            pass  # read_regular says what is wrong
        try:
            raw = read_regular(self.path, "simulator state", STATE_MAX)
        except EvlError:
            if not os.path.lexists(self.path):
                return None  # removed meanwhile
            raise
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("format") not in READABLE or type(data["format"]) is not int:
                raise ValueError("unknown format")
        except RecursionError:
            raise corrupt(self.path, "nested too deep") from None
        except ValueError as exc:  # UnicodeDecodeError included
            raise corrupt(self.path, str(exc)) from None
        return data

    def write(self, data: dict[str, Any], default: Callable[[Any], Any] | None = None) -> None:
        """Replace the stored object by ``data`` (``default`` as for ``json.dump``), atomically.

        Called with the lock held: temporary files other writers left behind
        when killed are removed first.
        """
        data["format"] = FORMAT
        target = self.target
        self.remove_leftovers(target)
        tmp = f"{target}{TMP_INFIX}{os.getpid()}"
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)
        except OSError:
            mode = 0o644
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, separators=(",", ":"), default=default)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise EvlError(f"cannot write simulator state {shown(self.path)}", exc.errno) from None
        self._sync_directory(os.path.dirname(target))

    @staticmethod
    def _sync_directory(directory: str) -> None:
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    @staticmethod
    def remove_leftovers(target: str) -> int:
        """Remove the ``<target>.tmp.<pid>`` files of killed writers (the lock is held); how many."""
        directory, base = os.path.split(target)
        prefix = base + TMP_INFIX
        removed = 0
        try:
            names = os.listdir(directory or ".")
        except OSError:
            return 0
        for name in names:
            if name.startswith(prefix) and name[len(prefix) :].isdigit():
                try:
                    os.unlink(os.path.join(directory, name))
                    removed += 1
                except OSError:
                    pass
        return removed

    def remove(self) -> bool:
        """Remove the stored state (the link's target when the path is a link); whether there was one."""
        target = self.target
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise EvlError(f"cannot remove simulator state {shown(self.path)}", exc.errno) from None
        if stat.S_ISLNK(st.st_mode):  # a link that resolves to no file: a loop
            raise EvlError(f"cannot remove simulator state {shown(self.path)}", errno.ELOOP)
        why = problem(st)
        if why is not None:
            raise EvlError(f"cannot remove simulator state {shown(self.path)}: {why}")
        try:
            os.unlink(target)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise EvlError(f"cannot remove simulator state {shown(self.path)}", exc.errno) from None
        self.remove_leftovers(target)
        return True
