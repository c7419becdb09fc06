"""Just enough BTF (the ``.BTF`` section of an eBPF object) to read libbpf's map definitions.

A libbpf-style map is a variable of the ``.maps`` section whose type is an
anonymous struct; clang leaves the section itself zeroed and says everything
in the type (``bpf_helpers.h`` encodes ``__uint(name, N)`` as a member
``int (*name)[N]`` and ``__type(name, T)`` as ``T *name``).  So the map's
type, sizes and limits are read from BTF: the ``.maps`` DATASEC names each
map variable, its struct's members give the fields.

Format (include/uapi/linux/btf.h): a header (magic 0xeb9f), then a type
section of ``struct btf_type`` records, each followed by data that depends on
its kind, then a string section.  Type ids count from 1 in order.  Every
defect is a :class:`BtfError`, never an IndexError.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

__all__ = ["BtfError", "MapSpec", "Types", "map_specs", "parse"]

MAGIC = 0xEB9F

INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT = range(1, 12)
FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(12, 20)

#: Bytes of kind-specific data after a btf_type: (fixed, per vlen item).
_EXTRA = {
    INT: (4, 0),
    ARRAY: (12, 0),
    STRUCT: (0, 12),
    UNION: (0, 12),
    ENUM: (0, 8),
    FUNC_PROTO: (0, 8),
    VAR: (4, 0),
    DATASEC: (0, 12),
    DECL_TAG: (4, 0),
    ENUM64: (0, 12),
}
_MODIFIERS = (TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG)
_MAX_DEPTH = 32  # chains of modifiers/arrays longer than this are refused (a loop, or hostile)


class BtfError(ValueError):
    """The BTF of the object cannot be read."""


@dataclass(frozen=True)
class Type:
    """One BTF type: its kind, name, the size or referenced type, and kind-specific items."""

    kind: int
    name: str
    size_or_type: int
    vlen: int
    kind_flag: bool
    items: tuple[tuple[int, ...], ...] = ()  # members (name_off, type, offset), array (type, index, nelems), ...


@dataclass
class Types:
    """The types of one BTF blob, by id (0 is void), and its string table."""

    types: list[Type | None]
    strings: bytes

    def string(self, off: int) -> str:
        return _name(self.strings, off)

    def get(self, tid: int) -> Type:
        if not 0 < tid < len(self.types):
            raise BtfError(f"type id {tid} out of range")
        t = self.types[tid]
        assert t is not None
        return t

    def skip_modifiers(self, tid: int) -> Type:
        """The type behind typedefs, const, volatile, restrict and type tags."""
        for _ in range(_MAX_DEPTH):
            t = self.get(tid)
            if t.kind not in _MODIFIERS:
                return t
            tid = t.size_or_type
        raise BtfError(f"type {tid}: modifier chain too long")

    def size(self, tid: int, depth: int = 0) -> int:
        """sizeof() of a type, as btf__resolve_size() computes it."""
        if depth > _MAX_DEPTH:
            raise BtfError(f"type {tid}: nested too deep")
        t = self.skip_modifiers(tid)
        if t.kind in (INT, STRUCT, UNION, ENUM, ENUM64, FLOAT, DATASEC):
            return t.size_or_type
        if t.kind == PTR:
            return 8
        if t.kind == ARRAY:
            elem, _index, nelems = t.items[0]
            return nelems * self.size(elem, depth + 1)
        if t.kind == VAR:
            return self.size(t.size_or_type, depth + 1)
        raise BtfError(f"type {tid} ({_KIND_NAMES.get(t.kind, t.kind)}) has no size")


_KIND_NAMES = {
    INT: "int",
    PTR: "ptr",
    ARRAY: "array",
    STRUCT: "struct",
    UNION: "union",
    ENUM: "enum",
    FWD: "fwd",
    TYPEDEF: "typedef",
    VOLATILE: "volatile",
    CONST: "const",
    RESTRICT: "restrict",
    FUNC: "func",
    FUNC_PROTO: "func_proto",
    VAR: "var",
    DATASEC: "datasec",
    FLOAT: "float",
    DECL_TAG: "decl_tag",
    TYPE_TAG: "type_tag",
    ENUM64: "enum64",
}


def parse(data: bytes) -> Types:
    """The types of a ``.BTF`` section (little or big endian, by its magic)."""
    if len(data) < 24:
        raise BtfError(f"truncated header ({len(data)} bytes)")
    magic_le = struct.unpack_from("<H", data)[0]
    order = "<" if magic_le == MAGIC else ">" if struct.unpack_from(">H", data)[0] == MAGIC else ""
    if not order:
        raise BtfError(f"bad magic {magic_le:#06x}")
    _magic, version, _flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
        order + "HBBIIIII", data
    )
    if version != 1:
        raise BtfError(f"unsupported version {version}")
    base = hdr_len
    if hdr_len < 24 or base + type_off + type_len > len(data) or base + str_off + str_len > len(data):
        raise BtfError("sections lie beyond the end of the data")
    tsec = data[base + type_off : base + type_off + type_len]
    strings = data[base + str_off : base + str_off + str_len]
    types: list[Type | None] = [None]
    pos = 0
    while pos < len(tsec):
        if pos + 12 > len(tsec):
            raise BtfError(f"truncated type {len(types)}")
        name_off, info, size_or_type = struct.unpack_from(order + "III", tsec, pos)
        pos += 12
        kind = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        if not INT <= kind <= ENUM64:
            raise BtfError(f"type {len(types)}: unknown kind {kind}")
        fixed, per = _EXTRA.get(kind, (0, 0))
        need = fixed + per * vlen
        if pos + need > len(tsec):
            raise BtfError(f"truncated type {len(types)}")
        items: tuple[tuple[int, ...], ...] = ()
        if kind == ARRAY:
            items = (struct.unpack_from(order + "III", tsec, pos),)
        elif per:
            fmt = order + ("III" if per == 12 else "II")
            items = tuple(struct.unpack_from(fmt, tsec, pos + k * per) for k in range(vlen))
        elif fixed:
            items = (struct.unpack_from(order + "I", tsec, pos),)
        pos += need
        types.append(Type(kind, _name(strings, name_off), size_or_type, vlen, bool(info >> 31), items))
    return Types(types, strings)


def _name(strings: bytes, off: int) -> str:
    if off >= len(strings):
        raise BtfError(f"string offset {off} out of range")
    end = strings.find(b"\0", off)
    return strings[off : end if end >= 0 else len(strings)].decode("utf-8", "replace")


@dataclass(frozen=True)
class MapSpec:
    """A map as its ``.maps`` definition declares it (``key_type``/``value_type``: BTF ids, 0 when given by size)."""

    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    key_type: int = 0
    value_type: int = 0
    unsupported: tuple[str, ...] = field(default=())  # members the simulator does not model (pinning, values ...)


def _uint_member(types: Types, tid: int, what: str) -> int:
    """The N of ``__uint(name, N)``: a pointer to an array of N ints."""
    t = types.skip_modifiers(tid)
    if t.kind != PTR:
        raise BtfError(f"{what}: expected __uint() (a pointer to an array)")
    arr = types.skip_modifiers(t.size_or_type)
    if arr.kind != ARRAY:
        raise BtfError(f"{what}: expected __uint() (a pointer to an array)")
    return arr.items[0][2]


def map_specs(types: Types) -> dict[str, MapSpec]:
    """The maps of the ``.maps`` DATASEC, by variable name, in declaration order."""
    sec = next((t for t in types.types[1:] if t is not None and t.kind == DATASEC and t.name == ".maps"), None)
    if sec is None:
        return {}
    out: dict[str, MapSpec] = {}
    for var_id, _offset, _size in sec.items:
        var = types.get(var_id)
        if var.kind != VAR:
            raise BtfError(f".maps entry {var_id} is not a variable")
        where = f"map '{var.name}'"
        st = types.skip_modifiers(var.size_or_type)
        if st.kind != STRUCT:
            raise BtfError(f"{where}: its definition is not a struct")
        fields: dict[str, int] = {}
        key_type = value_type = 0
        other: list[str] = []
        for name_off, mtype, _moff in st.items:
            mname = types.string(name_off)
            if mname in ("type", "max_entries", "map_flags", "key_size", "value_size", "numa_node", "map_extra"):
                fields[mname] = _uint_member(types, mtype, f"{where}.{mname}")
            elif mname in ("key", "value"):
                ptr = types.skip_modifiers(mtype)
                if ptr.kind != PTR:
                    raise BtfError(f"{where}.{mname}: expected __type() (a pointer)")
                size = types.size(ptr.size_or_type)
                if mname == "key":
                    key_type, fields["key_size"] = ptr.size_or_type, size
                else:
                    value_type, fields["value_size"] = ptr.size_or_type, size
            elif mname == "pinning":
                if _uint_member(types, mtype, f"{where}.pinning"):
                    other.append("pinning")
            else:
                other.append(mname)
        if "type" not in fields:
            raise BtfError(f"{where}: no map type")
        out[var.name] = MapSpec(
            var.name,
            fields["type"],
            fields.get("key_size", 0),
            fields.get("value_size", 0),
            fields.get("max_entries", 0),
            fields.get("map_flags", 0),
            key_type,
            value_type,
            tuple(other),
        )
    return out
