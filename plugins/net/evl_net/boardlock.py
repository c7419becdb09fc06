"""One mutation at a time on a board: ``flock`` on a file every agent session and every apply share."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Mapping

from evl_core.errors import EvlError

STATE_DIR_ENV = "EVL_NET_AGENT_DIR"
DEFAULT_STATE_DIR = "/run/evl"
LOCK_NAME = "net-agent.lock"


def default_state_dir(env: Mapping[str, str]) -> str:
    if env.get(STATE_DIR_ENV):
        return env[STATE_DIR_ENV]
    if os.path.isdir(DEFAULT_STATE_DIR) or os.access(os.path.dirname(DEFAULT_STATE_DIR), os.W_OK):
        return DEFAULT_STATE_DIR
    if env.get("XDG_RUNTIME_DIR"):
        return os.path.join(env["XDG_RUNTIME_DIR"], "evl")
    return os.path.join(env.get("HOME") or os.path.expanduser("~"), ".local", "state", "evl-tools")


class BoardLock:
    """``flock`` on ``<dir>/net-agent.lock``: one mutation at a time on this board.

    The file is opened once per session and locked around each mutation; the
    kernel drops the lock when the process dies, so it can never go stale.
    """

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, LOCK_NAME)
        self._fd: int | None = None

    def acquire(self, deadline: float) -> None:
        import fcntl

        if self._fd is None:
            try:
                os.makedirs(os.path.dirname(self.path), mode=0o770, exist_ok=True)
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o660)
            except OSError as exc:
                raise EvlError(f"cannot open the board lock {self.path}", exc.errno) from None
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    from evl_net.errors import KernelError

                    raise KernelError(errno.EBUSY, "another session kept the board busy") from None
                time.sleep(0.005)

    def release(self) -> None:
        import fcntl

        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
