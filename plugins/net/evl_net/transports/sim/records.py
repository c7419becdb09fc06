"""The simulator's state as typed records, and their JSON form in the state file.

A :class:`BoardState` is what the simulated EVL core of one board holds
between invocations: its ports, their buffer pools, the eBPF RX filters, the
global VLAN map, the ARP front cache, the out-of-band counters and the kernel
log.  The state file holds the current board's state, with every other board
used with the file set aside under ``others``.

The JSON form is the model's: :func:`evl_net.model.to_json` writes it (the
records in mappings keyed by device name through ``json``'s ``default``
hook), and :func:`decode` reads it back with the rules of
:func:`evl_net.model.from_json`, extended with what the state has and the
model's records do not: ``dict[str, X]`` and floats.  A wrong type anywhere
is a :class:`~evl_net.model.ShapeError`; :func:`read_state` then checks what
types cannot say: no negative counter, pools that fit their ports, devices
that exist.

The record classes are few on purpose: each dataclass costs start-up time,
and every ``evl net`` invocation on the simulator reads the state.
"""

# No "from __future__ import annotations" here: the records' hints are read at run time
# (every start-up), and real objects are cheaper to read than strings to evaluate.
import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass
from typing import Any

from evl_net.model import ShapeError, from_json, optional, to_json
from evl_net.transports.sim.board import Board

U32 = 2**32
U64 = 2**64
VID_MIN, VID_MAX = 2, 4094  # as evl_net.kernel.vlans has them


# Records of a state file: no comparisons and no repr, so that they are cheap to define at start-up.
@dataclass(eq=False, repr=False)
class Pool:
    """The buffer pool of a real device carrying ports (docs/abi.md, "Ports")."""

    skb_size: int
    skb_total: int
    skb_free: int


@dataclass(eq=False, repr=False)
class ArpEntry:
    """An entry of the ARP front cache: ``state`` is "P" (permanent) or "R" (reachable, aging)."""

    dev: str
    ip: str
    mac: str
    state: str


@dataclass(eq=False, repr=False)
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
    records: list[str] | None = optional()  # noqa: RUF009 (a dataclasses.field, default None)
    prod: int | None = optional()
    cons: int | None = optional()


@dataclass(eq=False, repr=False)
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
    maps: list[MapState] | None = optional()  # noqa: RUF009 (a dataclasses.field, default None)


@dataclass(eq=False, repr=False)
class HostState:
    """What a host-mirror board needs beyond the board: the interface indexes its ports were made on."""

    ifindex: dict[str, int]


@dataclass(eq=False, repr=False)
class BoardState:
    """The simulated EVL core of one board.

    ``counters`` are the out-of-band counters by device (the pool's
    ``skb_*`` live in ``pools``, by real device); ``vlans`` the global RX
    VLAN map, sorted; ``boot`` the time the board booted (uptime of the log
    lines); ``key`` the board's identity in the file (a shipped board's name, a board
    file's absolute path, or the host board's name); ``stamp`` what a stat said of the
    board file when its content was last fingerprinted
    (:func:`~evl_net.transports.sim.board.stamp`); ``others`` the states set aside, by key
    (only on the current state); ``host`` the host-mirror bookkeeping.
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
    others: dict[str, "BoardState"] | None = optional()  # noqa: RUF009 (a dataclasses.field, default None)
    host: HostState | None = optional()  # noqa: RUF009 (a dataclasses.field, default None)


BoardState.__annotations__["others"] = dict[str, BoardState] | None  # the forward reference, resolved once


# -- the JSON form ---------------------------------------------------------------------------------

#: Per record class: (field name, type hint, required), resolved once per process.
_FIELDS: dict[type, list[tuple[str, Any, bool]]] = {}


def _hints(kind: type) -> dict[str, Any]:
    hints = dict(kind.__annotations__)
    for name, hint in hints.items():
        if isinstance(hint, str) or any(isinstance(a, (str, typing.ForwardRef)) for a in _walk_args(hint)):
            hints[name] = typing.get_type_hints(kind)[name]  # a forward reference: resolve it the slow way
    return hints


def _walk_args(hint: Any) -> list[Any]:
    out = []
    for arg in typing.get_args(hint):
        out.append(arg)
        out.extend(_walk_args(arg))
    return out


def _fields(kind: type) -> list[tuple[str, Any, bool]]:
    fields = _FIELDS.get(kind)
    if fields is None:
        # The annotations are objects (this module and board.py do not postpone them), so they are
        # read as they are: typing.get_type_hints would cost a millisecond of every start-up.
        hints = _hints(kind)
        fields = _FIELDS[kind] = [
            (f.name, hints[f.name], f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
            for f in dataclasses.fields(kind)
        ]
    return fields


def encode(record: Any) -> Any:
    """The JSON value of a state record: :func:`evl_net.model.to_json` all the way down.

    (Writing the state file needs no copy: ``json.dump(to_json(state), default=to_json)``.)
    """
    return json.loads(json.dumps(to_json(record), default=to_json))


def decode(kind: Any, value: Any, where: str = "state") -> Any:
    """``value`` read back as ``kind``, strictly: :class:`~evl_net.model.ShapeError` if it is not one.

    The rules of :func:`evl_net.model.from_json` (a record's fields by name,
    those with a default may be missing, unknown keys ignored; scalars are
    checked by it), plus ``dict[str, X]`` and finite floats.  Records are
    walked here with their type hints resolved once per class: the state is
    read at every start-up.
    """
    origin = typing.get_origin(kind)
    if origin is dict:
        if not isinstance(value, dict):
            raise ShapeError(f"{where} is not an object")
        item = typing.get_args(kind)[1]
        if item is int and all(type(v) is int for v in value.values()):
            return dict(value)  # what from_json(int, v) would return for each
        return {key: decode(item, v, f"{where}.{key}") for key, v in value.items()}
    if origin is list:
        if not isinstance(value, list):
            raise ShapeError(f"{where} is not a list")
        (item,) = typing.get_args(kind)
        if (item is str and all(type(v) is str for v in value)) or (item is int and all(type(v) is int for v in value)):
            return list(value)  # what from_json(item, v) would return for each
        return [decode(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(kind):
            return None
        (option,) = [a for a in typing.get_args(kind) if a is not type(None)]  # the state's are Optionals
        return decode(option, value, where)
    if kind is float:
        if type(value) not in (int, float) or not math.isfinite(value):
            raise ShapeError(f"{where} is not a number")
        return float(value)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        fields = _fields(kind)
        if not isinstance(value, dict):
            raise ShapeError(f"{where} is not an object")
        kwargs: dict[str, Any] = {}
        for name, hint, required in fields:
            if name in value:
                kwargs[name] = decode(hint, value[name], f"{where}.{name}")
            elif required:
                raise ShapeError(f"{where} lacks '{name}'")
        return kind(**kwargs)
    return from_json(kind, value, where)


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


def check_state(state: BoardState, where: str = "state") -> None:
    """Fail unless ``state`` is consistent: what the kernel semantics rely on holds."""
    board = state.board
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
    for key, other in (state.others or {}).items():
        if other.others:
            raise ShapeError(f"{where}.others.{key}.others: a state set aside holds no others")
        check_state(other, f"{where}.others.{key}")


def read_state(value: Any) -> BoardState:
    """The state a state file holds, checked; ShapeError when it is not one."""
    state: BoardState = decode(BoardState, value)
    check_state(state)
    return state
