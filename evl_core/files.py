"""Reading a file the user names, safely: never blocking, never without bound.

A path given on the command line or in the environment may name anything: a
FIFO (reading would wait for a writer forever), ``/dev/zero`` (reading would
never end), a directory, a symlink loop, or a file far too large to be what
it claims.  :func:`read_regular` opens without blocking, refuses what is not
a regular file, and reads at most ``limit`` bytes, so each of these is one
clear error line instead of a hang or a MemoryError.
"""

from __future__ import annotations

import errno
import os
import stat

from evl_core.errors import EvlError, shown

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping

MiB = 1024 * 1024

_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def cache_directory(env: Mapping[str, str]) -> str | None:
    """This project's cache directory: ``$XDG_CACHE_HOME/evl-tools``, else ``~/.cache/evl-tools``.

    None when neither is known (the XDG rule: a relative value is ignored).
    """
    base = env.get("XDG_CACHE_HOME") or ""
    if not os.path.isabs(base):
        home = env.get("HOME") or os.path.expanduser("~")
        if not os.path.isabs(home):
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(base, "evl-tools")


def _size(limit: int) -> str:
    return f"{limit // MiB} MiB" if limit >= MiB and limit % MiB == 0 else f"{limit} bytes"


def problem(st: os.stat_result) -> str | None:
    """Why a file with this status is not one to read as data (None: it is a regular file)."""
    if stat.S_ISREG(st.st_mode):
        return None
    if stat.S_ISDIR(st.st_mode):
        return os.strerror(errno.EISDIR)
    for test, kind in _KINDS:
        if test(st.st_mode):
            return f"not a regular file ({kind})"
    return "not a regular file"


def read_regular(path: str, what: str, limit: int, prefix: str = "") -> bytes:
    """The bytes of the regular file ``path``; EvlError ``<prefix>cannot read <what> <path>: <why>`` if not.

    ``what`` names the file's role ("board file", "hosts file"); ``limit`` is
    the largest size accepted.
    """
    where = f"{prefix}cannot read {what} {shown(path) if path else repr(path)}"
    # The type is checked before opening: opening a device may act (a watchdog starts, a tty raises DTR).
    try:
        before = os.stat(path)
    except OSError as exc:
        raise EvlError(where, exc.errno) from None
    except ValueError:  # an embedded NUL byte
        raise EvlError(f"{where}: invalid path") from None
    why = problem(before)
    if why is not None:
        raise EvlError(f"{where}: {why}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise EvlError(where, exc.errno) from None
    try:
        st = os.fstat(fd)
        why = problem(st)
        if why is None and (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino):
            why = "replaced while being opened"
        if why is not None:
            raise EvlError(f"{where}: {why}")
        if st.st_size > limit:
            raise EvlError(f"{where}: larger than the {_size(limit)} limit")
        chunks = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, MiB))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    except OSError as exc:
        raise EvlError(where, exc.errno) from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise EvlError(f"{where}: larger than the {_size(limit)} limit")
    return data


#: How a lock file is opened: made if missing, never through a symbolic link, never waiting (a FIFO's
#: open would wait for a writer) and never becoming the controlling terminal.
LOCK_FLAGS = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY


def _is_link(path: str, dir_fd: int | None) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path, dir_fd=dir_fd).st_mode)
    except OSError:
        return False


def open_lock(path: str, where: str, mode: int = 0o644, dir_fd: int | None = None) -> int:
    """An fd on the lock file ``path`` (relative to ``dir_fd`` when given), made with ``mode`` if missing.

    A symbolic link at ``path`` is never followed, and anything but a regular
    file (a FIFO, a device, a directory) is refused once opened, without
    blocking: EvlError ``<where>: is a symbolic link (refused)`` or
    ``<where>: not a regular file (...)``; another failure is ``<where>`` with
    its errno.  ``where`` names the lock and its path.
    """
    try:
        fd = os.open(path, LOCK_FLAGS, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP and _is_link(path, dir_fd):
            raise EvlError(f"{where}: is a symbolic link (refused)") from None
        raise EvlError(where, exc.errno) from None
    except ValueError:  # an embedded NUL byte
        raise EvlError(f"{where}: invalid path") from None
    try:
        why = problem(os.fstat(fd))
    except OSError as exc:
        os.close(fd)
        raise EvlError(where, exc.errno) from None
    if why is not None:
        os.close(fd)
        raise EvlError(f"{where}: {why}")
    return fd


def open_directory(path: str, create: int | None = None) -> tuple[int, bool]:
    """An ``O_DIRECTORY`` fd on ``path``, and whether it was made; OSError as open(2) fails.

    With ``create`` (a mode), a missing directory is made, its missing parents
    too.  The last component is never followed through a symbolic link: one
    there fails with ENOTDIR (O_DIRECTORY with O_NOFOLLOW; mkdir(2) does not
    follow it either).
    """
    made = False
    if create is not None:
        parent = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(parent, create, exist_ok=True)
        except FileExistsError:  # a component is a file: say so as open(2) would
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), parent) from None
        try:
            os.mkdir(path, create)
            made = True
        except FileExistsError:
            pass
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    return fd, made


def read_text(path: str, what: str, limit: int, prefix: str = "") -> str:
    """:func:`read_regular`, decoded as UTF-8 (anything else is one error line)."""
    data = read_regular(path, what, limit, prefix)
    if data.startswith(b"\xef\xbb\xbf"):  # a byte-order mark some editors write: not part of the text
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EvlError(f"{prefix}{what} {shown(path)} is not UTF-8 text (byte {exc.start})") from None


class TomlError(ValueError):
    """A text that is no TOML document: ``message`` says why, ``line`` where (0 when unknown)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def parse_toml(text: str) -> dict:
    """The TOML document ``text``; TomlError, never a RecursionError or an int() limit, for a hostile one."""
    import re
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        reason = re.sub(r"\s*\(at line \d+, column \d+\)|\s*\(at end of document\)", "", str(exc))
        raise TomlError(int(where.group(1)) if where else text.count("\n") + 1, reason) from None
    except RecursionError:
        raise TomlError(0, "arrays or tables nested too deep") from None
    except ValueError:  # an integer of more digits than int() converts
        raise TomlError(0, "a number has too many digits") from None
