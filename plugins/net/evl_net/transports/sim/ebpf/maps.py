"""The BPF maps of a simulated program: array, hash, LRU hash, their per-CPU forms, and ring buffers.

A map lives in the VM's address space as a region of its own, at
``MAP_BASE + (index << 32)``: the value of each element at a fixed offset for
as long as the element exists, as in the kernel (a pointer from
``bpf_map_lookup_elem()`` stays valid; after a delete it points at memory the
map may reuse).  Keys, for ``bpf_for_each_map_elem()`` callbacks, sit at
:data:`KEY_AREA` in the region; ring-buffer records being written, at their
position in the ring.  Map pointers (``lddw`` of a map, ``BPF_PSEUDO_MAP_FD``)
are the values :func:`map_pointer` gives: the map cannot be read through them.

Semantics follow the kernel (kernel/bpf/arraymap.c, hashtab.c, ringbuf.c):

* array: every index exists, zeroed at creation; update with ``BPF_NOEXIST``
  is -EEXIST, an index out of range -E2BIG, delete -EINVAL;
* hash: at most ``max_entries`` elements, one more is -E2BIG; ``BPF_NOEXIST``
  / ``BPF_EXIST`` give -EEXIST / -ENOENT; LRU hash: instead of -E2BIG the
  least recently used element (by lookup or update) is evicted -- exactly
  LRU, where the kernel's per-CPU free lists evict approximately;
* per-CPU maps hold one value per CPU; a program sees its CPU's;
* ring buffer: records of 8-byte headers and data rounded up to 8 bytes,
  space taken from reserve to consumption; ``evl sim`` keeps what programs
  submitted until it is read (``evl sim maps --consume``).

A map's content survives the process through :meth:`BpfMap.entries` and
:func:`restore` (the simulator's state file keeps it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from evl_net.kernel.bpflink import MapDef

from .errors import RunError

MAP_BASE = 0xFFFF_A000_0000_0000
MAP_END = MAP_BASE + (1 << 48)
MAP_POINTER_BASE = 0xFFFF_9000_0000_0000
KEY_AREA = 1 << 31

E2BIG, EAGAIN, EEXIST, EINVAL, ENOENT, EOPNOTSUPP = 7, 11, 17, 22, 2, 95
BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK = 0, 1, 2, 4

HASH, ARRAY, PERCPU_HASH, PERCPU_ARRAY, LRU_HASH, LRU_PERCPU_HASH, RINGBUF = 1, 2, 5, 6, 9, 10, 27
SUPPORTED = frozenset({HASH, ARRAY, PERCPU_HASH, PERCPU_ARRAY, LRU_HASH, LRU_PERCPU_HASH, RINGBUF})
PERCPU = frozenset({PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH})
HASHES = frozenset({HASH, PERCPU_HASH, LRU_HASH, LRU_PERCPU_HASH})
#: The most CPUs a simulated board has (per-CPU maps hold one value each).
MAX_CPUS = 256
#: The kernel's limits: a key is at most a stack's worth, a value a kmalloc()'s (4 MiB), a per-CPU one 32 KiB.
MAX_KEY_SIZE = 512
KMALLOC_MAX_SIZE = 4 << 20
MAX_PERCPU_VALUE = 32 << 10
#: The most memory the simulator gives the maps of one filter, and one map (values and keys): limits of its own.
MAX_FILTER_BYTES = 256 << 20
MAX_MAP_BYTES = 64 << 20


def map_pointer(index: int) -> int:
    """What a ``lddw`` of map ``index`` loads: an opaque pointer to the map."""
    return MAP_POINTER_BASE + index * 0x1000


def map_of_pointer(maps: list[BpfMap], ptr: int, pc: int) -> BpfMap:
    k, rest = divmod(ptr - MAP_POINTER_BASE, 0x1000)
    if rest or not 0 <= k < len(maps):
        raise RunError(pc, f"{ptr:#x} is not a map")
    return maps[k]


def check_def(m: MapDef, ncpus: int = 1) -> tuple[int, str] | None:
    """(errno, why) the kernel (BPF_MAP_CREATE) or the simulator would not create the map with; None if it would."""
    name = f"map '{m.name}'"
    if m.type not in SUPPORTED:
        return EOPNOTSUPP, f"{name}: the simulator does not implement {m.type_name} maps yet"
    if m.max_entries == 0:
        return EINVAL, f"{name}: max_entries is 0"
    if m.type == RINGBUF:
        if m.key_size or m.value_size:
            return EINVAL, f"{name}: a ring buffer has no key or value size"
        if m.max_entries & (m.max_entries - 1) or m.max_entries % 4096:
            return EINVAL, f"{name}: a ring buffer's size must be a power of 2 and a multiple of the page size"
        if m.max_entries > MAX_MAP_BYTES:
            return EOPNOTSUPP, f"{name}: larger than the simulator's {MAX_MAP_BYTES >> 20} MiB per map"
        return None
    if m.value_size == 0 or (m.type in HASHES and m.key_size == 0):
        return EINVAL, f"{name}: key or value size is 0"
    if m.type in (ARRAY, PERCPU_ARRAY) and m.key_size != 4:
        return EINVAL, f"{name}: an array's key is 4 bytes, not {m.key_size}"
    if m.key_size > MAX_KEY_SIZE or m.value_size > (MAX_PERCPU_VALUE if m.type in PERCPU else KMALLOC_MAX_SIZE):
        return E2BIG, f"{name}: key or value too large"
    if (
        m.type in (ARRAY, PERCPU_ARRAY)
        and m.max_entries * m.value_size * (ncpus if m.type in PERCPU else 1) > MAX_MAP_BYTES
    ):
        return EOPNOTSUPP, f"{name}: larger than the simulator's {MAX_MAP_BYTES >> 20} MiB per map"
    return None


def footprint(m: MapDef, ncpus: int = 1) -> int:
    """The most memory the simulator gives the map: arrays and ring buffers whole, hashes when full."""
    if m.type == RINGBUF:
        return m.max_entries
    n = ncpus if m.type in PERCPU else 1
    size = m.max_entries * m.value_size * n
    return size if m.type in (ARRAY, PERCPU_ARRAY) else min(size + m.max_entries * m.key_size, MAX_MAP_BYTES)


def check_total(defs: Sequence[MapDef], ncpus: int = 1) -> tuple[int, str] | None:
    """(errno, why) when the maps of one program need more memory than the simulator gives a filter."""
    total = sum(footprint(m, ncpus) for m in defs)
    if total > MAX_FILTER_BYTES:
        return EOPNOTSUPP, f"the maps need {total >> 20} MiB, more than the simulator's {MAX_FILTER_BYTES >> 20} MiB"
    return None


class BpfMap:
    """One map: its definition, its region in the address space, its content."""

    def __init__(self, index: int, defn: MapDef, ncpus: int = 1) -> None:
        self.index = index
        self.defn = defn
        self.base = MAP_BASE + (index << 32)
        self.ncpus = ncpus if defn.type in PERCPU else 1
        self.vsize = defn.value_size
        self.ksize = defn.key_size
        self.mem = bytearray()
        self.keys = bytearray()
        self.changed = False

    # -- the address space -----------------------------------------------------------------------

    def memory(self, off: int, size: int, write: bool, pc: int) -> tuple[bytearray, int]:
        """The buffer and index of an access of ``size`` bytes at ``off`` in the map's region."""
        if off >= KEY_AREA:
            o = off - KEY_AREA
            if write or o + size > len(self.keys) or (o % self.ksize) + size > self.ksize:
                raise RunError(pc, f"invalid access to the keys of map '{self.defn.name}' at {o}")
            return self.keys, o
        if (off % self.vsize) + size > self.vsize or off + size > len(self.mem):
            raise RunError(pc, f"access of {size} bytes at offset {off} is outside a value of map '{self.defn.name}'")
        if write and self.defn.readonly:
            raise RunError(pc, f"map '{self.defn.name}' is read-only")
        if write:
            self.changed = True
        return self.mem, off

    # -- element operations (overridden) ---------------------------------------------------------

    def lookup(self, key: bytes, cpu: int) -> int:
        raise NotImplementedError

    def update(self, key: bytes, value: bytes, flags: int, cpu: int) -> int:
        raise NotImplementedError

    def delete(self, key: bytes) -> int:
        raise NotImplementedError

    def elements(self, cpu: int) -> Iterator[tuple[int, int]]:
        """(key address, value address) of each element, for bpf_for_each_map_elem()."""
        raise NotImplementedError

    def entries(self) -> dict[str, str]:
        """The content to keep: hex key -> hex value (per-CPU: the CPUs' values concatenated)."""
        raise NotImplementedError

    def restore(self, entries: dict[str, str]) -> None:
        raise NotImplementedError

    def dump(self) -> list[tuple[bytes, list[bytes]]]:
        """Every element as ``bpftool map dump`` lists it: key, and one value per CPU (one for others)."""
        out = []
        for k, v in self.entries().items():
            raw = bytes.fromhex(v)
            out.append((bytes.fromhex(k), [raw[i : i + self.vsize] for i in range(0, len(raw), self.vsize)]))
        return out


class ArrayMap(BpfMap):
    def __init__(self, index: int, defn: MapDef, ncpus: int = 1) -> None:
        super().__init__(index, defn, ncpus)
        self.mem = bytearray(defn.max_entries * self.vsize * self.ncpus)
        if defn.initial is not None:
            self.mem[: len(defn.initial)] = defn.initial

    def _slot(self, key: bytes) -> int:
        idx = int.from_bytes(key[:4], "little")
        return idx if idx < self.defn.max_entries else -1

    def lookup(self, key: bytes, cpu: int) -> int:
        idx = self._slot(key)
        if idx < 0:
            return 0
        return self.base + (idx * self.ncpus + cpu) * self.vsize

    def update(self, key: bytes, value: bytes, flags: int, cpu: int) -> int:
        if flags & ~BPF_F_LOCK > BPF_EXIST:
            return -EINVAL
        idx = self._slot(key)
        if idx < 0:
            return -E2BIG
        if flags & 3 == BPF_NOEXIST:
            return -EEXIST
        if self.defn.readonly:
            return -EINVAL
        o = (idx * self.ncpus + cpu) * self.vsize
        self.mem[o : o + self.vsize] = value
        self.changed = True
        return 0

    def delete(self, key: bytes) -> int:
        return -EINVAL

    def elements(self, cpu: int) -> Iterator[tuple[int, int]]:
        if not self.keys:
            self.keys = bytearray(b"".join(i.to_bytes(4, "little") for i in range(self.defn.max_entries)))
        for i in range(self.defn.max_entries):
            yield self.base + KEY_AREA + 4 * i, self.base + (i * self.ncpus + cpu) * self.vsize

    def entries(self) -> dict[str, str]:
        step = self.vsize * self.ncpus
        mem = self.mem
        out = {}
        for i in range(self.defn.max_entries):
            chunk = mem[i * step : (i + 1) * step]
            if any(chunk):
                out[i.to_bytes(4, "little").hex()] = chunk.hex()
        return out

    def restore(self, entries: dict[str, str]) -> None:
        self.mem[:] = bytes(len(self.mem))
        step = self.vsize * self.ncpus
        for k, v in entries.items():
            i = int.from_bytes(bytes.fromhex(k), "little")
            self.mem[i * step : (i + 1) * step] = bytes.fromhex(v)

    def dump(self) -> list[tuple[bytes, list[bytes]]]:
        step = self.vsize * self.ncpus
        return [
            (
                i.to_bytes(4, "little"),
                [
                    bytes(self.mem[i * step + c * self.vsize : i * step + (c + 1) * self.vsize])
                    for c in range(self.ncpus)
                ],
            )
            for i in range(self.defn.max_entries)
        ]


class HashMap(BpfMap):
    """Hash and LRU hash maps, per-CPU or not: a key -> slot table over slot-indexed memory."""

    def __init__(self, index: int, defn: MapDef, ncpus: int = 1) -> None:
        super().__init__(index, defn, ncpus)
        self.lru = defn.type in (LRU_HASH, LRU_PERCPU_HASH)
        self.slots: dict[bytes, int] = {}  # in use order, oldest first (LRU order for LRU maps)
        self.free: list[int] = []
        self.step = self.vsize * self.ncpus

    def _touch(self, key: bytes) -> None:
        if self.lru:  # the order is the LRU's state: it is kept with the content
            self.slots[key] = self.slots.pop(key)
            self.changed = True

    def _new_slot(self) -> int:
        if self.free:
            return self.free.pop()
        slot = len(self.mem) // self.step
        if (slot + 1) * (self.step + self.ksize) > MAX_MAP_BYTES:
            return -1
        self.mem += bytes(self.step)
        self.keys += bytes(self.ksize)
        return slot

    def lookup(self, key: bytes, cpu: int) -> int:
        slot = self.slots.get(key)
        if slot is None:
            return 0
        self._touch(key)
        return self.base + slot * self.step + cpu * self.vsize

    def update(self, key: bytes, value: bytes, flags: int, cpu: int) -> int:
        if flags & ~BPF_F_LOCK > BPF_EXIST:
            return -EINVAL
        slot = self.slots.get(key)
        mode = flags & 3
        if slot is None:
            if mode == BPF_EXIST:
                return -ENOENT
            if len(self.slots) >= self.defn.max_entries:
                if not self.lru:
                    return -E2BIG
                oldest = next(iter(self.slots))
                self.free.append(self.slots.pop(oldest))
            slot = self._new_slot()
            if slot < 0:
                return -E2BIG
            self.mem[slot * self.step : (slot + 1) * self.step] = bytes(self.step)
            self.keys[slot * self.ksize : (slot + 1) * self.ksize] = key
            self.slots[key] = slot
        else:
            if mode == BPF_NOEXIST:
                return -EEXIST
            self._touch(key)
        o = slot * self.step + cpu * self.vsize
        self.mem[o : o + self.vsize] = value
        self.changed = True
        return 0

    def delete(self, key: bytes) -> int:
        slot = self.slots.pop(key, None)
        if slot is None:
            return -ENOENT
        self.free.append(slot)
        self.changed = True
        return 0

    def elements(self, cpu: int) -> Iterator[tuple[int, int]]:
        for slot in list(self.slots.values()):
            yield self.base + KEY_AREA + slot * self.ksize, self.base + slot * self.step + cpu * self.vsize

    def entries(self) -> dict[str, str]:
        return {k.hex(): self.mem[s * self.step : (s + 1) * self.step].hex() for k, s in self.slots.items()}

    def restore(self, entries: dict[str, str]) -> None:
        self.slots.clear()
        self.free.clear()
        self.mem = bytearray()
        self.keys = bytearray()
        for k, v in entries.items():
            slot = self._new_slot()
            key = bytes.fromhex(k)
            self.mem[slot * self.step : (slot + 1) * self.step] = bytes.fromhex(v)
            self.keys[slot * self.ksize : (slot + 1) * self.ksize] = key
            self.slots[key] = slot


class RingBuf(BpfMap):
    """A BPF ring buffer (kernel/bpf/ringbuf.c): records take their space from reserve until a consumer passes them.

    ``prod`` and ``cons`` are the producer and consumer positions; what lies
    between them is the records submitted and not consumed (``records``),
    those discarded (their space still taken: the consumer skips them) and
    those being written (``pending``).  A reservation fails when the ring
    would be completely full (``prod - cons > size - 1`` after it).
    """

    HDR = 8

    def __init__(self, index: int, defn: MapDef, ncpus: int = 1) -> None:
        super().__init__(index, defn, ncpus)
        self.size = defn.max_entries
        self.records: list[bytes] = []  # submitted, not consumed
        self.prod = 0
        self.cons = 0
        self.pending: dict[int, bytearray] = {}  # offset in the region -> record being written

    @staticmethod
    def rounded(n: int) -> int:
        return (n + RingBuf.HDR + 7) & ~7

    def memory(self, off: int, size: int, write: bool, pc: int) -> tuple[bytearray, int]:
        for start, rec in self.pending.items():
            if start <= off and off + size <= start + len(rec):
                return rec, off - start
        raise RunError(pc, f"{size} bytes at offset {off} of ring buffer '{self.defn.name}' are in no reserved record")

    def reserve(self, n: int) -> int:
        """A record of n bytes being written: its address, 0 when there is no room."""
        need = self.rounded(n)
        if n > self.size or self.prod + need - self.cons > self.size - 1:
            return 0
        off = (self.prod % KEY_AREA) + self.HDR
        self.prod += need
        self.pending[off] = bytearray(n)
        self.changed = True
        return self.base + off

    def release(self, addr: int, submit: bool) -> bool:
        """Submit or discard a reserved record; False if ``addr`` is none."""
        rec = self.pending.pop(addr - self.base, None)
        if rec is None:
            return False
        if submit:
            self.records.append(bytes(rec))
        self.changed = True
        return True

    def output(self, data: bytes) -> int:
        addr = self.reserve(len(data))
        if not addr:
            return -EAGAIN
        self.pending[addr - self.base][:] = data
        self.release(addr, True)
        return 0

    def abandon(self) -> None:
        """End of a run: records reserved and never submitted (the verifier forbids it) count as discarded."""
        self.pending.clear()

    def query(self, flags: int) -> int:
        """bpf_ringbuf_query(): BPF_RB_AVAIL_DATA, _RING_SIZE, _CONS_POS, _PROD_POS."""
        return {0: self.prod - self.cons, 1: self.size, 2: self.cons, 3: self.prod}.get(flags, 0)

    def consume(self) -> list[bytes]:
        """Read every record, as a user-space consumer does: their space (and the discarded ones') comes back."""
        out = self.records
        self.records = []
        self.cons = self.prod - sum(self.rounded(len(r)) for r in self.pending.values())
        self.changed = True
        return out

    def lookup(self, key: bytes, cpu: int) -> int:
        return 0

    def update(self, key: bytes, value: bytes, flags: int, cpu: int) -> int:
        return -EINVAL

    def delete(self, key: bytes) -> int:
        return -EINVAL

    def elements(self, cpu: int) -> Iterator[tuple[int, int]]:
        return iter(())

    def entries(self) -> dict[str, str]:
        return {}

    def restore(self, entries: dict[str, str]) -> None:
        pass

    def dump(self) -> list[tuple[bytes, list[bytes]]]:
        return []


def create(index: int, defn: MapDef, ncpus: int = 1) -> BpfMap:
    """A new map as BPF_MAP_CREATE makes it (and libbpf fills global-data ones); ValueError if it cannot be."""
    why = check_def(defn, ncpus)
    if why:
        raise ValueError(why[1])
    if defn.type == RINGBUF:
        return RingBuf(index, defn, ncpus)
    if defn.type in (ARRAY, PERCPU_ARRAY):
        return ArrayMap(index, defn, ncpus)
    return HashMap(index, defn, ncpus)
