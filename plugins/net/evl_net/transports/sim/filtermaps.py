"""The maps of an installed filter, between the state file (:class:`MapState`) and the VM (:mod:`.ebpf.maps`).

``evl net -F`` creates them (:func:`created`: zeroed, global data filled in as
libbpf does), every ``evl sim rx`` runs the program on live maps restored
from the state (:func:`live`) and writes back those that changed
(:func:`store`), and ``evl sim maps`` dumps them (:func:`dump`, in the shape
``bpftool map dump -j`` gives, values per CPU for per-CPU maps).
"""

from __future__ import annotations

from typing import Any

from evl_net.kernel.bpflink import MAP_TYPES, MapDef
from evl_net.transports.sim.ebpf import maps as vmmaps
from evl_net.transports.sim.records import MapState


def definition(m: MapState) -> MapDef:
    """The map's definition; global-data maps carry their current content as the initial one."""
    initial = None
    if m.section != ".maps" and m.section != "maps":
        initial = bytes.fromhex(m.entries.get("00000000", "")) or bytes(m.value_size)
    readonly = m.section.startswith(".rodata")
    return MapDef(m.name, m.type, m.key_size, m.value_size, m.max_entries, m.flags, m.section, initial, readonly)


def created(defs: tuple[MapDef, ...], cpus: int) -> list[MapState]:
    """The maps as a fresh load of the object has them."""
    out = []
    for i, d in enumerate(defs):
        n = cpus if d.type in vmmaps.PERCPU else 1
        m = vmmaps.create(i, d, n)
        state = MapState(d.name, d.type, d.key_size, d.value_size, d.max_entries, d.flags, d.section, n, m.entries())
        if d.type == vmmaps.RINGBUF:
            state.records, state.prod, state.cons = [], 0, 0
        out.append(state)
    return out


def live(states: list[MapState]) -> list[vmmaps.BpfMap]:
    """Maps the VM runs on, with the content the state keeps."""
    out = []
    for i, s in enumerate(states):
        m = vmmaps.create(i, definition(s), s.cpus)
        if isinstance(m, vmmaps.RingBuf):
            m.records = [bytes.fromhex(r) for r in s.records or ()]
            m.prod, m.cons = s.prod or 0, s.cons or 0
        else:
            m.restore(s.entries)
        out.append(m)
    return out


def store(maps: list[vmmaps.BpfMap], states: list[MapState]) -> bool:
    """Write the content of the maps that changed back into their states; whether any did."""
    changed = False
    for m, s in zip(maps, states, strict=True):
        if not m.changed:
            continue
        changed = True
        m.changed = False
        if isinstance(m, vmmaps.RingBuf):
            s.records = [r.hex() for r in m.records]
            s.prod, s.cons = m.prod, m.cons
        else:
            s.entries = m.entries()
    return changed


def consume(states: list[MapState]) -> bool:
    """Read the ring buffers as a consumer does (:meth:`RingBuf.consume`); whether there was any record."""
    maps = live(states)
    read = any([m.consume() for m in maps if isinstance(m, vmmaps.RingBuf)])
    store(maps, states)
    return read


def _hex_bytes(raw: bytes) -> Any:
    """A key or value as bpftool shows it without BTF: its bytes in hex, one string each."""
    return [f"0x{b:02x}" for b in raw]


def dump(states: list[MapState]) -> list[dict[str, Any]]:
    """Every map with its elements: ``{"name", "type", ..., "elements": [{"key", "value"|"values"}]}``."""
    out = []
    for i, m in zip(range(len(states)), live(states), strict=True):
        s = states[i]
        entry: dict[str, Any] = {
            "id": i,
            "name": s.name,
            "type": MAP_TYPES.get(s.type, str(s.type)),
            "key_size": s.key_size,
            "value_size": s.value_size,
            "max_entries": s.max_entries,
            "flags": s.flags,
        }
        if isinstance(m, vmmaps.RingBuf):
            entry["records"] = [r.hex() for r in m.records]
            entry["pending_bytes"] = m.query(0)
        else:
            elements = []
            for key, values in m.dump():
                item: dict[str, Any] = {"key": _hex_bytes(key)}
                if s.type in vmmaps.PERCPU:
                    item["values"] = [{"cpu": c, "value": _hex_bytes(v)} for c, v in enumerate(values)]
                else:
                    item["value"] = _hex_bytes(values[0])
                elements.append(item)
            entry["elements"] = elements
        out.append(entry)
    return out


def text(states: list[MapState], consuming: bool = False) -> str:
    """The dump as ``bpftool map dump`` prints it: ``key: 01 00 00 00  value: 2a 00 ...`` per element.

    ``consuming``: the ring buffers' records are being read (``evl sim maps --consume``).
    """
    lines = []
    for m in dump(states):
        lines.append(
            f"map {m['id']}: {m['name']}  {m['type']}  key {m['key_size']}B  value {m['value_size']}B  "
            f"max_entries {m['max_entries']}"
        )
        if "records" in m:
            lines.extend(f"  record: {' '.join(r[k : k + 2] for k in range(0, len(r), 2))}" for r in m["records"])
            n = len(m["records"])
            lines.append(f"  ({n} record{'s' if n != 1 else ''} {'consumed' if consuming else 'not consumed'})")
            continue
        shown = 0
        for el in m["elements"]:
            key = " ".join(b[2:] for b in el["key"])
            if "values" in el:
                lines.append(f"  key: {key}")
                lines.extend(
                    f"    value (CPU {v['cpu']:02d}): {' '.join(b[2:] for b in v['value'])}" for v in el["values"]
                )
            else:
                lines.append(f"  key: {key}  value: {' '.join(b[2:] for b in el['value'])}")
            shown += 1
        lines.append(f"  Found {shown} element{'s' if shown != 1 else ''}")
    return "\n".join(lines) + ("\n" if lines else "")
