"""Whether an flock-based lock file is free, for tests of processes that hold one."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


def lock_is_free(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
