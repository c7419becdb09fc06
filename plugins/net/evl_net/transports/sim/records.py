"""The simulator's state as typed records, and their JSON form in the state file.

A :class:`BoardState` is what the simulated EVL core of one board holds
between invocations: its ports, their buffer pools, the eBPF RX filters, the
global VLAN map, the ARP front cache, the out-of-band counters and the kernel
log.  The board itself (:class:`~evl_net.transports.sim.board.Board`) is not
stored with it when it is a board file's, as parsed: the state names it
(``{"name": ..., "fingerprint": ...}``) and the board comes from the board
cache (:mod:`~evl_net.transports.sim.boardcache`).  It is stored in full only
when the state's board differs from the file's (its links were changed:
``edited``) or has no file (a host mirror: ``host``).

The JSON form is the model's (a record is an object of its fields, ``None``
fields kept as null, ``optional`` ones left out while None), written and read
here by a table of each record's fields and their kinds (:data:`SPECS`), so
that no type hint is evaluated at run time: the state is read at every
start-up.  :func:`decode` reads strictly, with the rules of
:func:`evl_net.model.from_json` (a record's fields by name, those with a
default may be missing, unknown keys ignored; ``bool`` is no integer), plus
``dict[str, X]`` and finite floats.  A wrong type anywhere is a
:class:`~evl_net.model.ShapeError`; :func:`read_state` then checks what
types cannot say: no negative counter, pools that fit their ports, devices
that exist.
"""

from __future__ import annotations

from evl_core.record import field, record
from evl_net.model import ShapeError
from evl_net.transports.sim.board import Board, Iface, Peer, Route

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any

U32 = 2**32
U64 = 2**64
VID_MIN, VID_MAX = 2, 4094  # as evl_net.kernel.vlans has them
#: A field left out of the JSON object while it is None (as evl_net.model.optional() says).
OPTIONAL = {"json": "optional"}


def optional() -> Any:
    return field(default=None, metadata=OPTIONAL)


# Records of a state file: no comparisons and no repr.
@record(eq=False, repr=False)
class Pool:
    """The buffer pool of a real device carrying ports (docs/abi.md, "Ports")."""

    skb_size: int
    skb_total: int
    skb_free: int


@record(eq=False, repr=False)
class ArpEntry:
    """An entry of the ARP front cache: ``state`` is "P" (permanent) or "R" (reachable, aging)."""

    dev: str
    ip: str
    mac: str
    state: str


@record(eq=False, repr=False)
class MapState:
    """A map of the installed filter and its content (``ebpf.maps``), kept across invocations.

    ``entries`` maps a hex key to a hex value (per-CPU maps: the ``cpus``
    values one after another); arrays keep only their non-zero elements.  A
    ring buffer keeps the ``records`` submitted and not yet consumed, and its
    producer and consumer positions.
    """

    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    section: str
    cpus: int
    entries: dict[str, str]
    records: list[str] | None = optional()
    prod: int | None = optional()
    cons: int | None = optional()


@record(eq=False, repr=False)
class FilterInfo:
    """The eBPF RX filter installed on a real device.

    The simulator keeps the program it runs (``insns``, base64) with where it
    came from; the kernel double, which checks a real program fd instead,
    keeps the program's identity (``prog_tag``, ``prog_id``).
    """

    object: str | None = optional()
    section: str | None = optional()
    name: str | None = optional()
    license: str | None = optional()
    sha256: str | None = optional()
    insns: str | None = optional()
    prog_tag: str | None = optional()
    prog_id: str | None = optional()
    maps: list[MapState] | None = optional()


@record(eq=False, repr=False)
class HostState:
    """What a host-mirror board needs beyond the board: the interface indexes its ports were made on."""

    ifindex: dict[str, int]


@record(eq=False, repr=False)
class BoardState:
    """The simulated EVL core of one board.

    ``counters`` are the out-of-band counters by device (the pool's
    ``skb_*`` live in ``pools``, by real device); ``vlans`` the global RX
    VLAN map, sorted; ``boot`` the time the board booted (uptime of the log
    lines); ``key`` the board's identity in the file (a shipped board's name, a board
    file's absolute path, or the host board's name); ``stamp`` what a stat said of the
    board file when its content was last fingerprinted
    (:func:`~evl_net.transports.sim.board.stamp`); ``others`` the states of the other
    boards of the file, by key, as the file holds them (JSON objects, read only when
    their board is used; only on the current state); ``host`` the host-mirror
    bookkeeping; ``edited`` whether the board differs from its file's (then stored in full).
    """

    board: Board
    boot: float
    ports: list[str]
    pools: dict[str, Pool]
    counters: dict[str, dict[str, int]]
    filters: dict[str, FilterInfo]
    vlans: list[int]
    arp: list[ArpEntry]
    log: list[str]
    key: str | None = optional()
    stamp: str | None = optional()
    others: dict[str, Any] | None = optional()
    host: HostState | None = optional()
    edited: bool = field(default=False, metadata={"json": "true"})


# -- the JSON form ---------------------------------------------------------------------------------

# A field's kind: "int", "bool", "str", "float", "any" (a JSON value, as it is), a record class,
# or ("list" | "dict" | "opt", kind).
INT, BOOL, STR, FLOAT, ANY = "int", "bool", "str", "float", "any"


def _opt(kind: Any) -> tuple[str, Any]:
    return ("opt", kind)


def _list(kind: Any) -> tuple[str, Any]:
    return ("list", kind)


def _dict(kind: Any) -> tuple[str, Any]:
    return ("dict", kind)


#: Per record class: its fields (name, kind, required, how the JSON form writes it: "" always,
#: "optional" left out while None, "true" left out while false), in order.
SPECS: dict[type, tuple[tuple[str, Any, bool, str], ...]] = {}


def _spec(kind: type, *fields: tuple[str, Any]) -> None:
    from evl_core.record import fields as record_fields

    declared = {f.name: f for f in record_fields(kind)}
    assert list(declared) == [name for name, _ in fields], kind  # the table follows the class
    SPECS[kind] = tuple(
        (name, k, declared[name].required, declared[name].metadata.get("json", "")) for name, k in fields
    )


_spec(
    Iface,
    ("name", STR),
    ("parent", _opt(STR)),
    ("vlan_id", _opt(INT)),
    ("mtu", INT),
    ("up", BOOL),
    ("oob_capable", BOOL),
    ("loopback", BOOL),
    ("addresses", _list(STR)),
    ("mac", STR),
    ("driver", STR),
    ("bus", STR),
    ("counters", _dict(INT)),
    ("port", BOOL),
)
_spec(Route, ("dst", STR), ("via", STR), ("dev", _opt(STR)))
_spec(Peer, ("ip", STR), ("mac", STR), ("reachable", BOOL), ("dev", _opt(STR)))
_spec(
    Board,
    ("name", STR),
    ("fingerprint", STR),
    ("page_size", INT),
    ("solicit_timeout", FLOAT),
    ("cpus", INT),
    ("interfaces", _dict(Iface)),
    ("routes", _list(Route)),
    ("peers", _list(Peer)),
    ("hosts", _dict(STR)),
)
_spec(Pool, ("skb_size", INT), ("skb_total", INT), ("skb_free", INT))
_spec(ArpEntry, ("dev", STR), ("ip", STR), ("mac", STR), ("state", STR))
_spec(
    MapState,
    ("name", STR),
    ("type", INT),
    ("key_size", INT),
    ("value_size", INT),
    ("max_entries", INT),
    ("flags", INT),
    ("section", STR),
    ("cpus", INT),
    ("entries", _dict(STR)),
    ("records", _opt(_list(STR))),
    ("prod", _opt(INT)),
    ("cons", _opt(INT)),
)
_spec(
    FilterInfo,
    *((name, _opt(STR)) for name in ("object", "section", "name", "license", "sha256", "insns", "prog_tag", "prog_id")),
    ("maps", _opt(_list(MapState))),
)
_spec(HostState, ("ifindex", _dict(INT)))
_spec(
    BoardState,
    ("board", Board),
    ("boot", FLOAT),
    ("ports", _list(STR)),
    ("pools", _dict(Pool)),
    ("counters", _dict(_dict(INT))),
    ("filters", _dict(FilterInfo)),
    ("vlans", _list(INT)),
    ("arp", _list(ArpEntry)),
    ("log", _list(STR)),
    ("key", _opt(STR)),
    ("stamp", _opt(STR)),
    ("others", _opt(_dict(ANY))),
    ("host", _opt(HostState)),
    ("edited", BOOL),
)


def to_json(value: Any) -> Any:
    """The JSON value of a state record (or list, dict, scalar holding them), records written by their table."""
    if type(value) in SPECS:
        return to_json_fields(value)
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


def encode(record: Any) -> Any:
    """The JSON value of a state record, a copy: nothing in it is shared with the record."""
    import json

    return json.loads(json.dumps(to_json(record)))


def decode(kind: Any, value: Any, where: str = "state") -> Any:
    """``value`` read back as ``kind`` (a record class, or a kind of :data:`SPECS`), strictly.

    :class:`~evl_net.model.ShapeError` if it is not one.
    """
    if kind is INT:
        if type(value) is not int:
            raise ShapeError(f"{where} is not an integer")
        return value
    if kind is STR:
        if not isinstance(value, str):
            raise ShapeError(f"{where} is not a string")
        return value
    if kind is BOOL:
        if type(value) is not bool:
            raise ShapeError(f"{where} is not a boolean")
        return value
    if kind is FLOAT:
        if type(value) not in (int, float) or value != value or value in (float("inf"), float("-inf")):
            raise ShapeError(f"{where} is not a number")
        return float(value)
    if kind is ANY:
        return value
    if isinstance(kind, tuple):
        how, item = kind
        if how == "opt":
            return None if value is None else decode(item, value, where)
        if how == "list":
            if not isinstance(value, list):
                raise ShapeError(f"{where} is not a list")
            if (item is STR and all(type(v) is str for v in value)) or (
                item is INT and all(type(v) is int for v in value)
            ):
                return list(value)
            return [decode(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        if not isinstance(value, dict):
            raise ShapeError(f"{where} is not an object")
        if (item is INT and all(type(v) is int for v in value.values())) or (
            item is STR and all(type(v) is str for v in value.values())
        ):
            return dict(value)
        return {key: decode(item, v, f"{where}.{key}") for key, v in value.items()}
    spec = SPECS.get(kind)
    if spec is None:
        raise ShapeError(f"{where}: no JSON form for {kind!r}")
    if not isinstance(value, dict):
        raise ShapeError(f"{where} is not an object")
    kwargs: dict[str, Any] = {}
    for name, item, required, _how in spec:
        if name in value:
            kwargs[name] = decode(item, value[name], f"{where}.{name}")
        elif required:
            raise ShapeError(f"{where} lacks '{name}'")
    return kind(**kwargs)


# -- what types cannot say -------------------------------------------------------------------------


def _count(value: int, where: str, limit: int = U64) -> None:
    if not 0 <= value < limit:
        raise ShapeError(f"{where} is out of range ({value})")


def _program(text: str, where: str) -> bytes:
    """The instructions of ``text``; fail unless it is a program as the simulator stores it (base64 of 8-byte ones)."""
    import base64
    import binascii

    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ShapeError(f"{where} is not base64") from None
    if not raw or len(raw) % 8:
        raise ShapeError(f"{where} is not a whole number of instructions")
    return raw


def _map(m: MapState, where: str) -> None:
    """Fail unless ``m`` is a map the simulator can hold: a type it runs, entries of the map's sizes."""
    from evl_net.kernel.bpflink import MapDef
    from evl_net.transports.sim.ebpf import maps

    why = maps.check_def(MapDef(m.name, m.type, m.key_size, m.value_size, m.max_entries, m.flags, m.section), m.cpus)
    if why is not None:
        raise ShapeError(f"{where}: {why[1]}")
    if not m.name or len(m.name) > 512 or not all(c.isascii() and (c.isalnum() or c in "_.") for c in m.name):
        raise ShapeError(f"{where}.name is not a map name")
    if not 1 <= m.cpus <= maps.MAX_CPUS or (m.cpus != 1 and m.type not in maps.PERCPU):
        raise ShapeError(f"{where}.cpus is out of range ({m.cpus})")
    if len(m.entries) > m.max_entries:
        raise ShapeError(f"{where}.entries: more than max_entries ({m.max_entries})")
    value_hex = 2 * m.value_size * m.cpus
    for key, value in m.entries.items():
        if len(key) != 2 * m.key_size or len(value) != value_hex or not _is_hex(key + value):
            raise ShapeError(f"{where}.entries.{key[:32]}: not a key and value of the map's sizes in hex")
        if m.type in (maps.ARRAY, maps.PERCPU_ARRAY) and int.from_bytes(bytes.fromhex(key), "little") >= m.max_entries:
            raise ShapeError(f"{where}.entries.{key}: index out of range")
    if m.type == maps.RINGBUF:
        records = m.records or []
        if not all(_is_hex(r) and len(r) % 2 == 0 for r in records):
            raise ShapeError(f"{where}.records: not hex")
        prod, cons = m.prod or 0, m.cons or 0
        used = sum(maps.RingBuf.rounded(len(r) // 2) for r in records)
        # between the positions: the records, and those discarded that no consumer passed yet
        if not 0 <= cons <= prod < U64 or prod - cons < used or prod - cons >= m.max_entries:
            raise ShapeError(f"{where}: positions do not match the records")


def _maps_total(maps: list[MapState], where: str) -> None:
    from evl_net.kernel.bpflink import MapDef
    from evl_net.transports.sim.ebpf import maps as vmmaps

    defs = [MapDef(m.name, m.type, m.key_size, m.value_size, m.max_entries, m.flags, m.section) for m in maps]
    why = vmmaps.check_total(defs, max(m.cpus for m in maps))
    if why is not None:
        raise ShapeError(f"{where}: {why[1]}")


def _map_references(raw: bytes, count: int, where: str) -> None:
    """Fail unless every map the program loads (a lddw of a map or of a map value) is one of the filter's."""
    if 0x18 not in raw[::8]:  # no lddw at all (the common filter): nothing to walk at start-up
        return
    import struct

    for k, (code, regs, _off, imm) in enumerate(struct.iter_unpack("<BBhi", raw)):
        if code == 0x18 and regs >> 4 in (1, 2) and not 0 <= imm < count:
            raise ShapeError(f"{where}.insns[{k}] loads map {imm}, and the filter has {count} maps")


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def _is_cidr(text: str) -> bool:
    """``a.b.c.d/n`` as the board stores it (ipaddress's form), checked without importing ipaddress."""
    address, slash, prefix = text.partition("/")
    parts = address.split(".")
    return (
        slash == "/"
        and prefix.isascii()
        and prefix.isdigit()
        and int(prefix) <= 32
        and len(parts) == 4
        and all(p.isascii() and p.isdigit() and str(int(p)) == p and int(p) <= 255 for p in parts)
    )


def check_board(board: Board, where: str) -> None:
    """Fail unless ``board`` is one the simulator can run: named, linked and sized consistently."""
    if board.page_size <= 0:
        raise ShapeError(f"{where}.page_size is out of range ({board.page_size})")
    if board.solicit_timeout <= 0:
        raise ShapeError(f"{where}.solicit_timeout is out of range ({board.solicit_timeout})")
    for name, iface in board.interfaces.items():
        at = f"{where}.interfaces.{name}"
        if iface.name != name:
            raise ShapeError(f"{at}.name is {iface.name!r}")
        if iface.parent is not None and board.interfaces.get(iface.parent, iface).parent is not None:
            raise ShapeError(f"{at}.parent: no real device {iface.parent!r}")
        _count(iface.mtu, f"{at}.mtu", U32)
        for j, cidr in enumerate(iface.addresses):
            if not _is_cidr(cidr):
                raise ShapeError(f"{at}.addresses[{j}] is not an IPv4 address/prefix")
        for key, value in iface.counters.items():
            _count(value, f"{at}.counters.{key}")
    for i, route in enumerate(board.routes):
        if route.dev is not None and route.dev not in board.interfaces:
            raise ShapeError(f"{where}.routes[{i}].dev: no interface {route.dev!r}")


def check_state(state: BoardState, where: str = "state", board_checked: bool = False) -> None:
    """Fail unless ``state`` is consistent: what the kernel semantics rely on holds.

    ``board_checked``: the board is its file's, as parsed (and checked then).
    """
    board = state.board
    if not board_checked:
        check_board(board, f"{where}.board")
    for i, port in enumerate(state.ports):
        if port not in board.interfaces:
            raise ShapeError(f"{where}.ports[{i}]: no interface {port!r}")
    if len(set(state.ports)) != len(state.ports):
        raise ShapeError(f"{where}.ports lists a port twice")
    reals = {board.real_device(p) for p in state.ports}
    if set(state.pools) != reals:
        raise ShapeError(f"{where}.pools are not those of the ports' real devices")
    for real, pool in state.pools.items():
        at = f"{where}.pools.{real}"
        _count(pool.skb_size, f"{at}.skb_size", U32)
        _count(pool.skb_total, f"{at}.skb_total", U32)
        _count(pool.skb_free, f"{at}.skb_free", U32)  # a board file may set it above the total
    for real, filt in state.filters.items():
        if real not in reals:
            raise ShapeError(f"{where}.filters.{real}: no port on {real!r}")
        raw = _program(filt.insns, f"{where}.filters.{real}.insns") if filt.insns is not None else None
        for i, m in enumerate(filt.maps or ()):
            _map(m, f"{where}.filters.{real}.maps[{i}]")
        if filt.maps:
            _maps_total(filt.maps, f"{where}.filters.{real}.maps")
        if raw is not None:
            _map_references(raw, len(filt.maps or ()), f"{where}.filters.{real}")
    for dev, counters in state.counters.items():
        for key, value in counters.items():
            _count(value, f"{where}.counters.{dev}.{key}")
    for i, vid in enumerate(state.vlans):
        if not VID_MIN <= vid <= VID_MAX:  # what the kernel's map can hold (0, 1 and 4095 are reserved)
            raise ShapeError(f"{where}.vlans[{i}] is out of range ({vid})")
    for i, entry in enumerate(state.arp):
        if entry.dev not in state.ports:
            raise ShapeError(f"{where}.arp[{i}].dev: {entry.dev!r} is no port")
        if entry.state not in ("P", "R"):
            raise ShapeError(f"{where}.arp[{i}].state is {entry.state!r}")
    if state.host is not None:
        for name, index in state.host.ifindex.items():
            _count(index, f"{where}.host.ifindex.{name}", U32)


#: The keys of a board the state only names (its board file's, as parsed: it comes from the board cache).
STUB_KEYS = frozenset(("name", "fingerprint"))


def board_ref(value: Any, where: str = "state") -> tuple[str, str, bool]:
    """(name, fingerprint, whether it is only named) of the board of state entry ``value``; ShapeError if none."""
    if not isinstance(value, dict):
        raise ShapeError(f"{where} is not an object")
    board = value.get("board")
    if not isinstance(board, dict):
        raise ShapeError(f"{where}.board is not an object" if "board" in value else f"{where} lacks 'board'")
    name, fingerprint = board.get("name"), board.get("fingerprint")
    if not isinstance(name, str):
        raise ShapeError(f"{where}.board.name is not a string" if "name" in board else f"{where}.board lacks 'name'")
    if not isinstance(fingerprint, str):
        raise ShapeError(
            f"{where}.board.fingerprint is not a string"
            if "fingerprint" in board
            else f"{where}.board lacks 'fingerprint'"
        )
    named = board.keys() <= STUB_KEYS
    if named and not _fingerprint_form(fingerprint):
        raise ShapeError(f"{where}.board.fingerprint is neither a sha256: digest nor a file's path:size:mtime:inode")
    return name, fingerprint, named


def _fingerprint_form(text: str) -> bool:
    """A board file's fingerprint: ``sha256:<64 hex digits>``, or an older release's ``/path:size:mtime_ns:ino``."""
    if text.startswith("sha256:"):
        digest = text[7:]
        return len(digest) == 64 and not digest.strip("0123456789abcdef")
    parts = text.rsplit(":", 3)
    return len(parts) == 4 and parts[0].startswith("/") and all(p.isascii() and p.isdigit() for p in parts[1:])


def read_state(value: Any, board: Board | None = None, where: str = "state") -> BoardState:
    """State entry ``value`` of a state file, checked; ShapeError when it is not one (``others`` left out).

    ``board`` is the board of an entry that only names it (:func:`board_ref`):
    its board file's, as parsed; an entry holding its board in full is read
    with it, and the board checked.
    """
    _name, _fingerprint, named = board_ref(value, where)
    kwargs: dict[str, Any] = {}
    for name, kind, required, _how in SPECS[BoardState]:
        if name == "others":
            continue
        if name == "board":
            if named:
                if board is None:
                    raise ShapeError(f"{where}.board: no board of that name")
                kwargs[name] = board
            else:
                kwargs[name] = decode(Board, value[name], f"{where}.board")
        elif name in value:
            kwargs[name] = decode(kind, value[name], f"{where}.{name}")
        elif required:
            raise ShapeError(f"{where} lacks '{name}'")
    state = BoardState(**kwargs)
    if named and (state.host is not None or state.edited):
        raise ShapeError(f"{where}.board: the board of a host mirror or an edited board is stored in full")
    check_state(state, where, board_checked=named)
    return state


def write_form(state: BoardState) -> dict[str, Any]:
    """The JSON form of ``state`` as the state file holds it: a board file's unedited board only named."""
    board = state.board
    out: dict[str, Any] = {
        "board": to_json(board)
        if state.host is not None or state.edited
        else {"name": board.name, "fingerprint": board.fingerprint}
    }
    out.update(to_json_fields(state, skip=("board", "others")))
    return out


def to_json_fields(value: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """:func:`to_json` of a record, without the fields ``skip``."""
    out: dict[str, Any] = {}
    for name, _kind, _required, how in SPECS[type(value)]:
        if name in skip:
            continue
        item = getattr(value, name)
        if (how == "optional" and item is None) or (how == "true" and not item):
            continue
        out[name] = to_json(item)
    return out
