"""Parsed board files, cached by the hash of their content: a board is parsed and checked once.

A board file is read, parsed as TOML, checked against its schema and for
consistency (:func:`~evl_net.transports.sim.board.parse`) the first time its
content is seen; the :class:`~evl_net.transports.sim.board.Board` it gives is
then kept in a private per-user cache directory, ``$XDG_CACHE_HOME/evl-tools``
(``~/.cache/evl-tools`` by default), one file per content:
``board-<sha256 of the file's bytes>``.  Loading one is a read, a checksum
and a ``marshal.loads``, and each interface is made only when it is used
(:class:`Interfaces`): a query on a board of thousands of interfaces costs
about what it costs on a small one.

The cache only ever costs speed, never correctness or an error.  An entry is
used only when it is a regular file owned by the user, of a single link,
neither group- nor other-writable, in a directory owned by the user and not
group- or other-writable either, neither reached through a symbolic link;
when its checksum holds (a torn or corrupt file is detected);
and when it was written by this very parser (the stamps of the modules and
schema that parse a board are part of it: an upgrade parses again).  Anything
else is a miss: the file is parsed again, and the entry replaced when the
directory can be written (atomically: a temporary file renamed into place;
not synced, since a torn entry is only a miss).  No failure of the cache is
ever reported.  Writing an entry removes the oldest written beyond
:data:`KEEP_ENTRIES` entries or :data:`KEEP_BYTES` bytes.
"""

from __future__ import annotations

import marshal
import os
import stat
import sys

from evl_net.transports.sim.board import Board, Iface, Peer, Route

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

#: The layout of an entry; bumped when it changes.
FORMAT = 2
MAGIC = b"evl-board-cache\n"
PREFIX = "board-"
TMP_INFIX = ".tmp."
#: The largest entry read (a board file is at most 16 MiB).
MAX_ENTRY = 64 * 1024 * 1024
#: Entries kept: beyond either bound, the oldest written go when a new one is written.
KEEP_ENTRIES = 512
KEEP_BYTES = 64 * 1024 * 1024


def default_dir(env: Mapping[str, str]) -> str:
    """The cache directory: ``$XDG_CACHE_HOME/evl-tools``, else ``~/.cache/evl-tools`` ("" when neither is known)."""
    from evl_core.files import cache_directory

    return cache_directory(env) or ""


def _parser_stamp() -> tuple[int, ...]:
    """What identifies the code that parses a board and stores it: the size and mtime of its modules and schema.

    The board's module, its JSON Schema and the validator (``evl_net/schema.py``), the name rules, TOML
    reading (``evl_core/files.py``), the records and this module.
    """
    from evl_core import files, record
    from evl_net.kernel import names
    from evl_net.transports.sim import board

    # the validator's module by its path: importing it is what a cache hit saves
    schema = os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(board.__file__)))), "schema.py"
    )
    out: list[int] = [FORMAT, marshal.version, *sys.version_info[:2]]
    for path in (board.__file__, board.SCHEMA_PATH, names.__file__, __file__, schema, files.__file__, record.__file__):
        try:
            st = os.stat(path)
        except (OSError, TypeError):
            return ()
        out += (st.st_size, st.st_mtime_ns)
    return tuple(out)


def _checksum(data: bytes) -> int:
    import binascii

    return binascii.crc32(data)


def _safe(st: os.stat_result, kind: int) -> bool:
    """Whether ``st`` is of ``kind`` (S_IFDIR/S_IFREG), ours, and writable by nobody else."""
    return stat.S_IFMT(st.st_mode) == kind and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _open_dir(directory: str) -> int | None:
    """An fd of the cache directory when it is safe to use (None: it is not, or there is none)."""
    if not directory:
        return None
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (OSError, ValueError):
        return None
    try:
        if _safe(os.fstat(fd), stat.S_IFDIR):
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def _entry_name(fingerprint: str) -> str | None:
    algo, _, hexdigest = fingerprint.partition(":")
    if algo != "sha256" or len(hexdigest) != 64 or not all(c in "0123456789abcdef" for c in hexdigest):
        return None
    return PREFIX + hexdigest


def read(directory: str, fingerprint: str) -> bytes | None:
    """The bytes of the entry of content ``fingerprint`` when it is safe to use; None on a miss, whatever the reason."""
    entry = _entry_name(fingerprint)
    if entry is None:
        return None
    dfd = _open_dir(directory)
    if dfd is None:
        return None
    try:
        fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dfd)
    except (OSError, ValueError):
        return None
    finally:
        os.close(dfd)
    try:
        st = os.fstat(fd)
        if not _safe(st, stat.S_IFREG) or st.st_nlink != 1 or st.st_size > MAX_ENTRY:
            return None
        chunks = []
        while True:
            chunk = os.read(fd, max(st.st_size + 1, 65536))
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def _payload(data: bytes, fingerprint: str) -> Any:
    """The board's values in an entry's bytes, when the entry is sound and is this parser's; None otherwise."""
    head = len(MAGIC) + 4
    if len(data) < head or not data.startswith(MAGIC):
        return None
    payload = data[head:]
    if int.from_bytes(data[len(MAGIC) : head], "little") != _checksum(payload):
        return None
    try:
        # Only an entry of ours gets here: in our own directory, written by nobody else, its checksum holding.
        parser, digest, values = marshal.loads(payload)  # noqa: S302
    except Exception:  # noqa: BLE001 -- whatever a corrupt entry raises, it is a miss
        return None
    if parser != _parser_stamp() or digest != fingerprint:
        return None
    return values


def decode(data: bytes, fingerprint: str, name: str) -> Board | None:
    """The board in entry ``data`` (of content ``fingerprint``), named ``name``; None unless the entry is sound.

    The cyclic garbage collector is off meanwhile: a large board is tens of
    thousands of new objects, none of them garbage, which would otherwise
    trigger collections that walk every object of the process.
    """
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        return _decode(data, fingerprint, name)
    finally:
        if enabled:
            gc.enable()


def _decode(data: bytes, fingerprint: str, name: str) -> Board | None:
    values = _payload(data, fingerprint)
    if values is None:
        return None
    try:
        page_size, solicit_timeout, cpus, ifaces, routes, peers, hosts = values
        if type(ifaces) is not dict or not all(type(v) is bytes for v in ifaces.values()):
            return None
        return Board(
            name,
            fingerprint,
            page_size,
            solicit_timeout,
            cpus,
            Interfaces(ifaces),
            [Route(*each) for each in routes],
            [Peer(*each) for each in peers],
            hosts,
        )
    except Exception:  # noqa: BLE001 -- whatever a corrupt entry raises, it is a miss
        return None


_MISSING = object()


class Interfaces(dict[str, Iface]):
    """A board's interfaces by name, each made from its entry's bytes the first time it is used.

    A query touches one or two interfaces of a board that may have
    thousands: only those are made.  Whatever reads the values all
    (``values()``, ``items()``, comparisons, copies) makes them all first;
    what reads only the names (``in``, ``len``, iteration, ``keys()``) needs
    none.  Until made, an interface's value in the dict is its bytes (an
    :class:`~evl_net.transports.sim.board.Iface`'s fields, marshalled).
    """

    __slots__ = ("_lazy",)

    def __init__(self, raw: dict[str, bytes]) -> None:
        dict.__init__(self, raw)  # type: ignore[misc]  # the bytes stand for each Iface until it is made
        self._lazy = bool(raw)

    def _make(self, name: str, value: bytes) -> Iface:
        iface = Iface(*marshal.loads(value))  # noqa: S302 -- an entry of ours, checked whole (see _payload)
        dict.__setitem__(self, name, iface)
        return iface

    def _all(self) -> None:
        if self._lazy:
            for name, value in dict.items(self):  # values replaced, none added: the iteration holds
                if type(value) is bytes:
                    self._make(name, value)
            self._lazy = False

    def made(self) -> list[str]:
        """The names of the interfaces made so far."""
        return [name for name, value in dict.items(self) if type(value) is not bytes]

    def __getitem__(self, name: str) -> Iface:
        value = dict.__getitem__(self, name)
        return self._make(name, value) if type(value) is bytes else value

    def get(self, name: str, default: Any = None) -> Any:
        value = dict.get(self, name, _MISSING)
        if value is _MISSING:
            return default
        return self._make(name, value) if type(value) is bytes else value

    def __iter__(self) -> Any:  # the names (and not dict's own iterator: dict(x) and {**x} then read values by name)
        return dict.__iter__(self)

    def values(self) -> Any:
        self._all()
        return dict.values(self)

    def items(self) -> Any:
        self._all()
        return dict.items(self)

    def pop(self, name: str, *default: Any) -> Any:
        if name in self:
            self[name]
        return dict.pop(self, name, *default)

    def popitem(self) -> Any:
        self._all()
        return dict.popitem(self)

    def setdefault(self, name: str, default: Any = None) -> Any:
        if name in self:
            return self[name]
        return dict.setdefault(self, name, default)

    def copy(self) -> dict[str, Iface]:
        self._all()
        return dict(dict.items(self))

    def __eq__(self, other: object) -> bool:
        self._all()
        if isinstance(other, Interfaces):
            other._all()
        return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None

    def __or__(self, other: Any) -> Any:
        return self.copy() | other

    def __ror__(self, other: Any) -> Any:
        return other | self.copy()

    def __repr__(self) -> str:
        self._all()
        return dict.__repr__(self)

    def __reduce__(self) -> Any:  # copies and pickles are plain dicts
        return dict, (self.copy(),)


def _getter(kind: type) -> Any:
    """A function of a record of ``kind``: the tuple of its fields' values, in order."""
    from operator import attrgetter

    from evl_core.record import fields

    names = [f.name for f in fields(kind)]
    get = attrgetter(*names)
    return get if len(names) > 1 else lambda record: (get(record),)


def _values(board: Board) -> tuple[Any, ...]:
    """The board's content as marshal stores it (its name and fingerprint aside)."""
    iface, route, peer = _getter(Iface), _getter(Route), _getter(Peer)
    return (
        board.page_size,
        board.solicit_timeout,
        board.cpus,
        {name: marshal.dumps(iface(i)) for name, i in board.interfaces.items()},
        [route(r) for r in board.routes],
        [peer(p) for p in board.peers],
        board.hosts,
    )


def encode(board: Board) -> bytes:
    """The entry of ``board``, just parsed (its fingerprint is that of its file's content)."""
    payload = marshal.dumps((_parser_stamp(), board.fingerprint, _values(board)))
    return MAGIC + _checksum(payload).to_bytes(4, "little") + payload


def unchanged(board: Board, data: bytes) -> bool:
    """Whether ``board`` still has the content of entry ``data`` (False also when ``data`` is not sound).

    Of interfaces made from the entry, only those made can have changed.
    """
    values = _payload(data, board.fingerprint)
    if values is None:
        return False
    page_size, solicit_timeout, cpus, ifaces, routes, peers, hosts = values
    route, peer, iface = _getter(Route), _getter(Peer), _getter(Iface)
    try:
        if (board.page_size, board.solicit_timeout, board.cpus, board.hosts) != (
            page_size,
            solicit_timeout,
            cpus,
            hosts,
        ):
            return False
        if [route(r) for r in board.routes] != list(routes) or [peer(p) for p in board.peers] != list(peers):
            return False
        interfaces = board.interfaces
        if list(interfaces) != list(ifaces):
            return False
        names = interfaces.made() if isinstance(interfaces, Interfaces) else list(interfaces)
        return all(iface(interfaces[name]) == marshal.loads(ifaces[name]) for name in names)  # noqa: S302
    except (TypeError, ValueError, EOFError):
        return False


def write(directory: str, fingerprint: str, data: bytes) -> bool:
    """Keep entry ``data`` of content ``fingerprint`` in the cache; whether it was written."""
    entry = _entry_name(fingerprint)
    if entry is None or not directory:
        return False
    try:
        os.makedirs(os.path.dirname(directory) or ".", exist_ok=True)
        os.mkdir(directory, 0o700)
    except (OSError, ValueError):
        pass  # there already, or cannot be: _open_dir decides
    dfd = _open_dir(directory)
    if dfd is None:
        return False
    tmp = f"{entry}{TMP_INFIX}{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, entry, src_dir_fd=dfd, dst_dir_fd=dfd)
        _prune(dfd, entry)
        return True
    except OSError:
        try:
            os.unlink(tmp, dir_fd=dfd)
        except OSError:
            pass
        return False
    finally:
        os.close(dfd)


def _prune(dfd: int, keep: str) -> None:
    """Remove the oldest entries beyond KEEP_ENTRIES or KEEP_BYTES (never ``keep``, just written)."""
    entries = []
    try:
        names = os.listdir(dfd)
    except OSError:
        return
    if len(names) <= 8:
        return
    for name in names:
        if not name.startswith(PREFIX) or name == keep:
            continue
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except OSError:
            continue
        entries.append((st.st_mtime_ns, st.st_size, name))
    entries.sort(reverse=True)
    total = 0
    for count, (_mtime, size, name) in enumerate(entries, start=2):  # the one just written counts first
        total += size
        if count > KEEP_ENTRIES or total > KEEP_BYTES:
            try:
                os.unlink(name, dir_fd=dfd)
            except OSError:
                pass
