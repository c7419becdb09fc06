"""What libbpf does to an object's first program before ``BPF_PROG_LOAD``: maps, relocations, sub-programs.

``evl net -F`` runs libbpf's ``bpf_object__open_file()`` + ``bpf_object__load()``;
the simulator has no libbpf, so :func:`link` reproduces the part of it that
decides what the kernel receives (libbpf 1.x, ``bpf_object__elf_collect()``,
``bpf_program__record_reloc()``, ``bpf_object__reloc_code()``):

* **maps** come from three places, in this order: the ``.maps`` section
  (libbpf-style, described by BTF: :mod:`.btf`), the legacy ``maps`` section
  (``struct bpf_map_def``, five u32: type, key size, value size, max entries,
  flags; libbpf >= 1.0 refuses these, older ones and the simulator accept
  them), and the global-data sections ``.data*``, ``.rodata*`` and ``.bss``,
  each a one-element array map holding the section (named like libbpf:
  the object name cut to fit before the section name, ``netrx.rodata``);
  ``.rodata*`` maps are read-only for the program (``BPF_F_RDONLY_PROG``) and frozen;
* **relocations** of a program section: a ``lddw`` of a map symbol becomes
  ``BPF_PSEUDO_MAP_FD`` with the map's index as the fd; of a global variable,
  ``BPF_PSEUDO_MAP_VALUE`` with the map's index and the offset in its value;
  of a function of ``.text``, ``BPF_PSEUDO_FUNC`` (a callback, for
  ``bpf_loop()``); a call of a ``.text`` function, a bpf-to-bpf call;
* **sub-programs**: each ``.text`` function the program reaches is appended
  once after it, with its own relocations applied, and calls and function
  references are made relative to where it landed.

The map index is what the simulator uses as a map fd: the program's ``lddw``
instructions carry it, :attr:`Linked.maps` is indexed by it.
"""

from __future__ import annotations

import errno
import re
import struct
from dataclasses import dataclass

from evl_net.kernel import btf as btflib
from evl_net.kernel.bpfobj import (
    BpfObjectError,
    BpfProgram,
    ElfObject,
    Section,
    Symbol,
    program_sections,
)

__all__ = ["MAP_TYPES", "Linked", "MapDef", "link"]

#: enum bpf_map_type, by value (names as bpftool prints them).
MAP_TYPES = {
    0: "unspec",
    1: "hash",
    2: "array",
    3: "prog_array",
    4: "perf_event_array",
    5: "percpu_hash",
    6: "percpu_array",
    7: "stack_trace",
    8: "cgroup_array",
    9: "lru_hash",
    10: "lru_percpu_hash",
    11: "lpm_trie",
    12: "array_of_maps",
    13: "hash_of_maps",
    14: "devmap",
    15: "sockmap",
    16: "cpumap",
    17: "xskmap",
    18: "sockhash",
    19: "cgroup_storage",
    20: "reuseport_sockarray",
    21: "percpu_cgroup_storage",
    22: "queue",
    23: "stack",
    24: "sk_storage",
    25: "devmap_hash",
    26: "struct_ops",
    27: "ringbuf",
    28: "inode_storage",
    29: "task_storage",
    30: "bloom_filter",
    31: "user_ringbuf",
    32: "cgrp_storage",
    33: "arena",
}

BPF_F_RDONLY_PROG = 1 << 7
BPF_F_MMAPABLE = 1 << 10
BPF_OBJ_NAME_LEN = 16
KSYM_NAME_LEN = 512
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OBJ_NAME = re.compile(r"[A-Za-z0-9_.]+")
KMALLOC_MAX_SIZE = 4 << 20  # the largest map value (a global-data section) the kernel allocates
MAX_SUBPROGS = 256  # BPF_MAX_SUBPROGS
BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE, BPF_PSEUDO_FUNC, BPF_PSEUDO_CALL = 1, 2, 4, 1
R_BPF_64_64, R_BPF_64_32 = 1, 10
_LDDW, _CALL = 0x18, 0x85
_STT_SECTION, _STT_FUNC = 3, 2


@dataclass(frozen=True)
class MapDef:
    """A map the program uses, as the kernel creates it.

    ``initial`` is the content of a global-data map's single value (None for
    other maps, which start zeroed or empty); ``readonly`` a ``.rodata`` map,
    whose value the program can only read (and the verifier knows).
    """

    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0
    section: str = ".maps"
    initial: bytes | None = None
    readonly: bool = False

    @property
    def type_name(self) -> str:
        return MAP_TYPES.get(self.type, f"type {self.type}")


@dataclass(frozen=True)
class Linked:
    """The first program of an object as libbpf hands it to the kernel."""

    program: BpfProgram
    insns: bytes
    maps: tuple[MapDef, ...]
    func_info: bool = False  # the object has BTF function information (.BTF.ext), which libbpf passes on
    global_funcs: frozenset[int] = frozenset()  # where non-static .text functions start in ``insns``


def _internal_name(obj_name: str, section: str) -> str:
    """libbpf's internal_map_name(): as much of the object name as fits before the section name."""
    sfx = max(len(section), 7)
    pfx = max(0, min(BPF_OBJ_NAME_LEN - sfx - 1, len(obj_name)))
    return (obj_name[:pfx] + section)[: BPF_OBJ_NAME_LEN - 1]


def _object_name(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    return base[:-2] if base.endswith(".o") else base


def _is_data_section(s: Section) -> bool:
    if s.flags & 0x4:  # SHF_EXECINSTR
        return False
    if s.type == 8:  # SHT_NOBITS
        return s.name == ".bss" or s.name.startswith(".bss.")
    if s.type != 1:  # SHT_PROGBITS
        return False
    return any(s.name == p or s.name.startswith(p + ".") for p in (".data", ".rodata"))


class _Linker:
    def __init__(self, elf: ElfObject, obj_name: str) -> None:
        self.elf = elf
        self.obj_name = obj_name
        self.maps: list[MapDef] = []
        self.map_syms: dict[tuple[int, int], int] = {}  # (section, offset) of a map symbol -> index
        self.data_maps: dict[int, int] = {}  # section index of global data -> map index
        text = elf.section(".text")
        self.text = text if text is not None and text.size else None
        self.funcs: list[tuple[int, int]] = []  # .text functions: (first insn, insn count)
        self.globals: set[int] = set()  # first insns of the global ones
        if self.text is not None:
            self.globals = {
                s.value // 8 for s in elf.symbols if s.kind == _STT_FUNC and s.shndx == self.text.index and s.bind == 1
            }
            self.funcs = sorted(
                {
                    (s.value // 8, max(s.size // 8, 1))
                    for s in elf.symbols
                    if s.kind == _STT_FUNC and s.shndx == self.text.index
                }
            )
        self.out = bytearray()
        self.placed: dict[int, int] = {}  # first insn of a .text function -> where it was appended

    def fail(self, what: str) -> BpfObjectError:
        return self.elf.fail(what)

    # -- maps ------------------------------------------------------------------------------------

    def collect_maps(self) -> None:
        elf = self.elf
        maps_sec = elf.section(".maps")
        if maps_sec is not None and maps_sec.size:
            btf_sec = elf.section(".BTF")
            if btf_sec is None:
                raise self.fail("the .maps section needs BTF (build with clang -g)")
            try:
                specs = btflib.map_specs(btflib.parse(elf.data_of(btf_sec)))
            except btflib.BtfError as exc:
                raise self.fail(f"bad BTF: {exc}") from None
            syms = sorted(
                (s.value, s.name) for s in elf.symbols if s.shndx == maps_sec.index and s.kind != _STT_SECTION
            )
            for offset, name in syms:
                spec = specs.get(name)
                if spec is None:
                    raise self.fail(f"map '{name}' of .maps has no BTF definition")
                if spec.unsupported:
                    raise self.fail(f"map '{name}': {', '.join(spec.unsupported)} not supported")
                self.add_map(
                    (maps_sec.index, offset),
                    MapDef(name, spec.type, spec.key_size, spec.value_size, spec.max_entries, spec.flags),
                )
        legacy = elf.section("maps")
        if legacy is not None and legacy.size:
            syms = sorted((s.value, s.name) for s in elf.symbols if s.shndx == legacy.index and s.kind != _STT_SECTION)
            if not syms:
                raise self.fail("the maps section has no map symbols")
            size = legacy.size // len(syms)
            if size < 20:
                raise self.fail(f"legacy map definitions of {size} bytes are too short (struct bpf_map_def: 20)")
            raw = elf.data_of(legacy)
            for offset, name in syms:
                if offset + 20 > len(raw):
                    raise self.fail(f"legacy map '{name}' lies beyond the maps section")
                mtype, ksize, vsize, maxent, flags = struct.unpack_from("<5I", raw, offset)
                self.add_map((legacy.index, offset), MapDef(name, mtype, ksize, vsize, maxent, flags, "maps"))
        for s in elf.sections:
            if _is_data_section(s) and s.size > KMALLOC_MAX_SIZE:  # a map value the kernel would not allocate
                raise BpfObjectError(errno.E2BIG, f"{elf.name}: section '{s.name}' of {s.size} bytes is too large")
            if _is_data_section(s) and s.size:
                readonly = s.name.startswith(".rodata")
                self.data_maps[s.index] = len(self.maps)
                self.maps.append(
                    MapDef(
                        _internal_name(self.obj_name, s.name),
                        2,
                        4,
                        s.size,
                        1,
                        BPF_F_MMAPABLE | (BPF_F_RDONLY_PROG if readonly else 0),
                        s.name,
                        elf.data_of(s),
                        readonly,
                    )
                )

    def check_name(self, name: str, btf: bool) -> None:
        """The kernel's rules: a BTF variable's name is a C identifier; an object name takes [A-Za-z0-9_.]."""
        ok = _IDENTIFIER.fullmatch(name) if btf else _OBJ_NAME.fullmatch(name[: BPF_OBJ_NAME_LEN - 1])
        if not ok or len(name) > KSYM_NAME_LEN:
            raise self.fail(f"map {name!a}: invalid name")

    def add_map(self, where: tuple[int, int], m: MapDef) -> None:
        self.check_name(m.name, m.section == ".maps")
        self.map_syms[where] = len(self.maps)
        self.maps.append(m)

    # -- code ------------------------------------------------------------------------------------

    def place(self, target: int, why: str) -> int:
        """Where .text instruction ``target`` lands in the output, its function appended if not yet."""
        func = next(((lo, n) for lo, n in self.funcs if lo <= target < lo + n), None)
        if func is None:
            raise self.fail(f"{why}: .text instruction {target} is in no function")
        lo, n = func
        if lo not in self.placed and len(self.placed) >= MAX_SUBPROGS:
            raise self.fail(f"{why}: more than {MAX_SUBPROGS} functions")
        if lo not in self.placed:
            assert self.text is not None
            at = len(self.out) // 8
            self.placed[lo] = at
            code = self.elf.data_of(self.text)[lo * 8 : (lo + n) * 8]
            if len(code) != n * 8:
                raise self.fail(f"function at .text instruction {lo} lies beyond the section")
            self.out += code
            self.relocate(self.text, at, lo, lo + n)
        return self.placed[lo] + target - lo

    def relocate(self, sec: Section, at: int, lo: int, hi: int) -> None:
        """Apply the relocations of ``sec``'s instructions [lo, hi), copied to output instruction ``at``."""
        for rel in self.elf.relocations(sec):
            if rel.offset % 8:
                raise self.fail(f"relocation at offset {rel.offset} of '{sec.name}' is not on an instruction")
            k = rel.offset // 8
            if not lo <= k < hi:
                continue
            i = at + k - lo
            self.apply(sec, i, rel.type, rel.symbol)

    def apply(self, sec: Section, i: int, rtype: int, sym: Symbol) -> None:
        out = self.out
        code = out[i * 8]
        where = f"'{sec.name}' instruction {i}"
        imm = struct.unpack_from("<i", out, i * 8 + 4)[0]
        if code == _CALL:
            if rtype != R_BPF_64_32 or out[i * 8 + 1] >> 4 != BPF_PSEUDO_CALL:
                raise self.fail(f"{where}: relocated call is not a bpf-to-bpf call")
            if self.text is None or sym.shndx != self.text.index:
                raise self.fail(f"{where}: call of '{sym.name}', which is not a function of .text")
            target = self.place(sym.value // 8 + imm + 1, where)
            struct.pack_into("<i", out, i * 8 + 4, target - (i + 1))
            return
        if code != _LDDW or (i + 1) * 8 >= len(out):
            raise self.fail(f"{where}: relocation of an instruction that is not a lddw or a call")
        if rtype != R_BPF_64_64:
            raise self.fail(f"{where}: unsupported relocation type {rtype}")
        regs = out[i * 8 + 1] & 0x0F
        if (sym.shndx, sym.value) in self.map_syms:
            idx = self.map_syms[(sym.shndx, sym.value)]
            out[i * 8 + 1] = regs | (BPF_PSEUDO_MAP_FD << 4)
            struct.pack_into("<i", out, i * 8 + 4, idx)
        elif sym.shndx in self.data_maps:
            off = sym.value + imm
            size = self.maps[self.data_maps[sym.shndx]].value_size
            if not 0 <= off <= size:
                raise self.fail(f"{where}: offset {off} is outside '{self.maps[self.data_maps[sym.shndx]].name}'")
            out[i * 8 + 1] = regs | (BPF_PSEUDO_MAP_VALUE << 4)
            struct.pack_into("<i", out, i * 8 + 4, self.data_maps[sym.shndx])
            struct.pack_into("<i", out, i * 8 + 12, off)
        elif self.text is not None and sym.shndx == self.text.index:
            target = self.place((sym.value + imm) // 8, where)
            out[i * 8 + 1] = regs | (BPF_PSEUDO_FUNC << 4)
            struct.pack_into("<i", out, i * 8 + 4, target - (i + 1))
        else:
            section = self.elf.sections[sym.shndx].name if 0 < sym.shndx < len(self.elf.sections) else "?"
            raise self.fail(f"{where}: relocation against '{sym.name or section}' in section '{section}'")


def link(elf: ElfObject, program: BpfProgram) -> Linked:
    """``program`` of the object ``elf``, relocated and with its sub-programs, and the maps it uses.

    Fails with :class:`BpfObjectError` (EINVAL) on a relocation or map libbpf would refuse.
    """
    name = elf.name
    if elf.byteorder != "<":
        raise elf.fail("big-endian eBPF objects are not supported by the simulator")
    linker = _Linker(elf, _object_name(name))
    linker.collect_maps()
    sec = next(s for s in program_sections(elf) if s.name == program.section)
    linker.out += elf.data_of(sec)
    linker.relocate(sec, 0, 0, sec.size // 8)
    if len(linker.out) // 8 > 1_000_000:
        raise BpfObjectError(errno.E2BIG, f"{name}: program too large")
    func_info = elf.section(".BTF") is not None and elf.section(".BTF.ext") is not None
    global_funcs = frozenset(at for lo, at in linker.placed.items() if lo in linker.globals)
    return Linked(program, bytes(linker.out), tuple(linker.maps), func_info, global_funcs)
