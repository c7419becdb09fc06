"""One mutation at a time on a board: ``flock`` on a file every agent session and every apply share."""

from __future__ import annotations

import errno
import os
import time

from evl_core.errors import EvlError, shown
from evl_core.files import open_directory, open_lock

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping

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
    The directory may be shared by a group (``/run/evl``, group-writable), so
    nothing in it is followed through a symbolic link: not the directory
    itself, not the lock file; and the lock must be a regular file (a FIFO or
    a device planted there is refused, never opened in a way that blocks).
    """

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, LOCK_NAME)
        self._fd: int | None = None

    def _open(self) -> int:
        directory = os.path.dirname(self.path) or "."
        where = f"cannot open the board lock {shown(self.path)}"
        try:
            dirfd, _ = open_directory(directory, create=0o770)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(directory):  # O_DIRECTORY: ENOTDIR
                raise EvlError(f"{where}: directory {shown(directory)} is a symbolic link (refused)") from None
            raise EvlError(where, exc.errno) from None
        except ValueError:  # an embedded NUL byte
            raise EvlError(f"{where}: invalid path") from None
        try:
            return open_lock(LOCK_NAME, where, 0o660, dir_fd=dirfd)
        finally:
            os.close(dirfd)

    def acquire(self, deadline: float) -> None:
        import fcntl

        if self._fd is None:
            self._fd = self._open()
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
