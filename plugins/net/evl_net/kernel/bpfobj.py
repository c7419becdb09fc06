"""Minimal eBPF ELF object inspector.

``evl net -F<obj.o>`` hands the object to libbpf, which installs the first
program it finds; the EVL kernel then accepts it only if it is a
BPF_PROG_TYPE_SOCKET_FILTER program, failing with EINVAL otherwise.  The
simulator has no libbpf, so this module reproduces just enough of
libbpf's object parsing to predict that outcome, with the standard
library only and without ever leaking an IndexError/struct.error on a
malformed file: every defect surfaces as a BpfObjectError(EINVAL), the
errno the real tool would report.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass

__all__ = [
    "EM_BPF",
    "BpfObjectError",
    "BpfProgram",
    "first_socket_filter",
    "parse",
    "programs",
]

EM_BPF = 247

_ELF_MAGIC = b"\x7fELF"
_EI_NIDENT = 16
_ELFCLASS32, _ELFCLASS64 = 1, 2
_ELFDATA2LSB, _ELFDATA2MSB = 1, 2
_ET_REL = 1

_SHT_PROGBITS = 1
_SHT_SYMTAB = 2
_SHT_STRTAB = 3
_SHT_NOBITS = 8
_SHT_REL = 9
_SHF_EXECINSTR = 0x4
_SHN_UNDEF = 0
_SHN_LORESERVE = 0xFF00
_SHN_XINDEX = 0xFFFF
_STT_FUNC = 2
_STB_GLOBAL = 1

_BPF_INSN_SIZE = 8

# Only used to make "wrong machine" errors readable.
_MACHINES = {
    0: "none",
    3: "i386",
    8: "MIPS",
    20: "PowerPC",
    21: "PowerPC64",
    22: "S390",
    40: "ARM",
    62: "x86-64",
    183: "AArch64",
    243: "RISC-V",
    258: "LoongArch",
}

# ELF layouts per class: (ehdr after e_ident, shdr, sym), plus sizes.
_LAYOUTS = {
    _ELFCLASS32: ("HHIIIIIHHHHHH", "IIIIIIIIII", "IIIBBH"),
    _ELFCLASS64: ("HHIQQQIHHHHHH", "IIQQQQIIQQ", "IBBHQQ"),
}

# libbpf section-name prefixes (SEC_DEF table) -> program type.  Matching
# is on the part before the first '/', minus a libbpf '.s'/'.multi'/
# '.frags'/... flavour suffix; "cgroup/<kind>" is resolved on <kind>.
_SEC_TYPES = {
    "socket": "socket_filter",
    "sk_reuseport": "sk_reuseport",
    "kprobe": "kprobe",
    "kretprobe": "kprobe",
    "uprobe": "kprobe",
    "uretprobe": "kprobe",
    "ksyscall": "kprobe",
    "kretsyscall": "kprobe",
    "usdt": "kprobe",
    "tc": "tc",
    "tcx": "tc",
    "classifier": "tc",
    "action": "sched_act",
    "tracepoint": "tracepoint",
    "tp": "tracepoint",
    "raw_tracepoint": "raw_tracepoint",
    "raw_tp": "raw_tracepoint",
    "tp_btf": "tracing",
    "fentry": "tracing",
    "fexit": "tracing",
    "fmod_ret": "tracing",
    "iter": "tracing",
    "freplace": "ext",
    "lsm": "lsm",
    "lsm_cgroup": "lsm",
    "syscall": "syscall",
    "xdp": "xdp",
    "perf_event": "perf_event",
    "lwt_in": "lwt_in",
    "lwt_out": "lwt_out",
    "lwt_xmit": "lwt_xmit",
    "lwt_seg6local": "lwt_seg6local",
    "sockops": "sock_ops",
    "sk_skb": "sk_skb",
    "sk_msg": "sk_msg",
    "lirc_mode2": "lirc_mode2",
    "flow_dissector": "flow_dissector",
    "cgroup_skb": "cgroup_skb",
    "struct_ops": "struct_ops",
    "sk_lookup": "sk_lookup",
    "netfilter": "netfilter",
}

_CGROUP_TYPES = {
    "skb": "cgroup_skb",
    "sock": "cgroup_sock",
    "sock_create": "cgroup_sock",
    "sock_release": "cgroup_sock",
    "post_bind4": "cgroup_sock",
    "post_bind6": "cgroup_sock",
    "dev": "cgroup_device",
    "sysctl": "cgroup_sysctl",
    "getsockopt": "cgroup_sockopt",
    "setsockopt": "cgroup_sockopt",
}

_CGROUP_SOCK_ADDR = (
    "bind",
    "connect",
    "sendmsg",
    "recvmsg",
    "getpeername",
    "getsockname",
)


def _section_prog_type(section: str) -> str:
    """Mirror libbpf's SEC() name matching, which decides the program type."""
    head, _, tail = section.partition("/")
    if head == "cgroup":
        kind = tail.partition("/")[0]
        if kind in _CGROUP_TYPES:
            return _CGROUP_TYPES[kind]
        if kind.startswith(_CGROUP_SOCK_ADDR):
            return "cgroup_sock_addr"
        return "unknown"
    if head == "socket":
        return "socket_filter"
    base, _, flavour = head.partition(".")
    if base == "raw_tp" or base == "raw_tracepoint":
        return "raw_tracepoint_writable" if flavour == "w" else "raw_tracepoint"
    return _SEC_TYPES.get(base, "unknown")


@dataclass(frozen=True)
class BpfProgram:
    """One program as libbpf would see it in an object file."""

    section: str
    name: str
    insns: bytes
    license: str

    @property
    def prog_type(self) -> str:
        """Program type libbpf infers from the SEC() name ("unknown" if none)."""
        return _section_prog_type(self.section)


class BpfObjectError(ValueError):
    """A BPF object the EVL stack would refuse, with the errno to report."""

    def __init__(self, err: int, message: str) -> None:
        super().__init__(message)
        self.errno = err
        self.strerror = message


class _Reader:
    """Bounds-checked view of the object so that defects become EINVAL."""

    def __init__(self, data: bytes, name: str) -> None:
        self.data = data
        self.name = name
        self.order = "<"

    def fail(self, what: str) -> BpfObjectError:
        return BpfObjectError(errno.EINVAL, f"{self.name}: {what}")

    def unpack(self, fmt: str, offset: int, what: str) -> tuple:
        fmt = self.order + fmt
        size = struct.calcsize(fmt)
        if offset < 0 or offset + size > len(self.data):
            raise self.fail(f"truncated {what} at offset {offset}")
        return struct.unpack_from(fmt, self.data, offset)

    def slice(self, offset: int, size: int, what: str) -> bytes:
        if offset < 0 or size < 0 or offset + size > len(self.data):
            raise self.fail(f"{what} [{offset}, {offset + size}) lies beyond end of file ({len(self.data)} bytes)")
        return self.data[offset : offset + size]


def _cstr(table: bytes, offset: int) -> str | None:
    """String at offset in an ELF string table, None if out of bounds."""
    if offset >= len(table):
        return None
    end = table.find(b"\0", offset)
    if end < 0:
        return None
    return table[offset:end].decode("utf-8", errors="replace")


def _read_sections(r: _Reader) -> list[Section]:
    data = r.data
    if len(data) < _EI_NIDENT:
        if not _ELF_MAGIC.startswith(data[:4]):
            raise r.fail("not an ELF object (bad magic)")
        raise r.fail(f"truncated ELF identification ({len(data)} bytes)")
    if data[:4] != _ELF_MAGIC:
        raise r.fail("not an ELF object (bad magic)")
    elf_class, encoding = data[4], data[5]
    if elf_class not in _LAYOUTS:
        raise r.fail(f"invalid ELF class {elf_class}")
    if encoding == _ELFDATA2LSB:
        r.order = "<"
    elif encoding == _ELFDATA2MSB:
        r.order = ">"
    else:
        raise r.fail(f"invalid ELF data encoding {encoding}")
    ehdr_fmt, shdr_fmt, _ = _LAYOUTS[elf_class]

    (
        e_type,
        e_machine,
        _version,
        _entry,
        _phoff,
        e_shoff,
        _flags,
        _ehsize,
        _phentsize,
        _phnum,
        e_shentsize,
        e_shnum,
        e_shstrndx,
    ) = r.unpack(ehdr_fmt, _EI_NIDENT, "ELF header")

    if e_machine != EM_BPF:
        machine = _MACHINES.get(e_machine, str(e_machine))
        raise r.fail(f"not an eBPF object (machine {machine}, expected BPF)")
    if e_type != _ET_REL:
        raise r.fail(f"not a relocatable ELF object (type {e_type})")
    if e_shoff == 0:
        raise r.fail("no section header table")
    shdr_size = struct.calcsize(r.order + shdr_fmt)
    if e_shentsize < shdr_size:
        raise r.fail(f"invalid section header size {e_shentsize}")

    # Extended numbering: real counts live in section header 0.
    r.slice(e_shoff, max(e_shnum, 1) * e_shentsize, "section header table")
    sh0 = r.unpack(shdr_fmt, e_shoff, "section header 0")
    shnum = e_shnum if e_shnum else sh0[5]
    shstrndx = e_shstrndx if e_shstrndx != _SHN_XINDEX else sh0[6]
    if shnum == 0:
        raise r.fail("no section header table")
    r.slice(e_shoff, shnum * e_shentsize, "section header table")

    raw = []
    for i in range(shnum):
        (sh_name, sh_type, sh_flags, _addr, sh_offset, sh_size, sh_link, _info, _align, sh_entsize) = r.unpack(
            shdr_fmt, e_shoff + i * e_shentsize, f"section header {i}"
        )
        if sh_type != _SHT_NOBITS and sh_type != 0:
            r.slice(sh_offset, sh_size, f"section {i}")
        raw.append((sh_name, sh_type, sh_flags, sh_offset, sh_size, sh_link, _info, sh_entsize))

    if shstrndx == _SHN_UNDEF or shstrndx >= shnum:
        raise r.fail(f"invalid section name string table index {shstrndx}")
    _, st_type, _, st_off, st_size, _, _, _ = raw[shstrndx]
    if st_type != _SHT_STRTAB:
        raise r.fail("section name string table is not a string table")
    shstrtab = r.data[st_off : st_off + st_size]

    sections = []
    for i, (sh_name, sh_type, sh_flags, sh_offset, sh_size, sh_link, sh_info, sh_entsize) in enumerate(raw):
        sec_name = _cstr(shstrtab, sh_name)
        if sec_name is None:
            raise r.fail(f"section {i} name offset {sh_name} out of range")
        sections.append(Section(i, sec_name, sh_type, sh_flags, sh_offset, sh_size, sh_link, sh_info, sh_entsize))
    return sections


@dataclass(frozen=True)
class Section:
    """One ELF section header, its name resolved."""

    index: int
    name: str
    type: int
    flags: int
    offset: int
    size: int
    link: int
    info: int
    entsize: int


@dataclass(frozen=True)
class Symbol:
    """One ELF symbol: ``shndx`` its section, ``kind`` STT_* and ``bind`` STB_*."""

    name: str
    value: int
    size: int
    kind: int
    bind: int
    shndx: int


@dataclass(frozen=True)
class Relocation:
    """One SHT_REL entry: byte ``offset`` in the section it applies to, R_BPF_* ``type``, its symbol."""

    offset: int
    type: int
    symbol: Symbol


class ElfObject:
    """The sections, symbols and relocations of an eBPF object, bounds-checked (defects are BpfObjectError)."""

    def __init__(self, data: bytes, name: str = "object") -> None:
        self._r = _Reader(bytes(data), name)
        self.name = name
        self.sections = _read_sections(self._r)
        self.byteorder = self._r.order  # "<" or ">", of the ELF header
        self.symbols = self._read_symbols()

    def fail(self, what: str) -> BpfObjectError:
        return self._r.fail(what)

    def data_of(self, section: Section) -> bytes:
        """A section's bytes (zeros for SHT_NOBITS, such as .bss)."""
        if section.type == _SHT_NOBITS:
            return bytes(section.size)
        return self._r.data[section.offset : section.offset + section.size]

    def section(self, name: str) -> Section | None:
        return next((s for s in self.sections if s.name == name), None)

    def _read_symbols(self) -> list[Symbol]:
        symtab = next((s for s in self.sections if s.type == _SHT_SYMTAB), None)
        if symtab is None:
            return []
        if symtab.link >= len(self.sections) or self.sections[symtab.link].type != _SHT_STRTAB:
            raise self.fail(f"symbol table '{symtab.name}' has no string table")
        strtab = self.data_of(self.sections[symtab.link])
        sym_fmt = _LAYOUTS[self._r.data[4]][2]
        sym_size = struct.calcsize(self._r.order + sym_fmt)
        entsize = symtab.entsize or sym_size
        if entsize < sym_size:
            raise self.fail(f"invalid symbol entry size {entsize}")
        elf64 = sym_fmt == _LAYOUTS[_ELFCLASS64][2]
        out = []
        for k in range(symtab.size // entsize):
            fields = self._r.unpack(sym_fmt, symtab.offset + k * entsize, f"symbol {k}")
            if elf64:
                st_name, st_info, _other, st_shndx, st_value, st_size = fields
            else:
                st_name, st_value, st_size, st_info, _other, st_shndx = fields
            sym_name = _cstr(strtab, st_name)
            if sym_name is None:
                raise self.fail(f"symbol {k} name offset {st_name} out of range")
            out.append(Symbol(sym_name, st_value, st_size, st_info & 0xF, st_info >> 4, st_shndx))
        return out

    def relocations(self, target: Section) -> list[Relocation]:
        """The relocations that apply to ``target`` (its SHT_REL section), in file order."""
        out = []
        elf64 = self._r.data[4] == _ELFCLASS64
        fmt, need, shift = ("QQ", 16, 32) if elf64 else ("II", 8, 8)
        for s in self.sections:
            if s.type != _SHT_REL or s.info != target.index:
                continue
            entsize = s.entsize or need
            if entsize < need:
                raise self.fail(f"invalid relocation entry size {entsize} in '{s.name}'")
            for k in range(s.size // entsize):
                r_offset, r_info = self._r.unpack(fmt, s.offset + k * entsize, f"relocation {k} of '{s.name}'")
                sym = r_info >> shift
                if sym >= len(self.symbols):
                    raise self.fail(f"relocation {k} of '{s.name}' names symbol {sym}, which does not exist")
                out.append(Relocation(r_offset, r_info & ((1 << shift) - 1), self.symbols[sym]))
        return out


def _function_names(elf: ElfObject) -> dict[int, str]:
    """Map section index -> name of the function at its lowest offset.

    libbpf names a program after its function symbol and orders programs
    of one section by offset, so the lowest one is the first program.
    """
    best: dict[int, tuple[int, int, str]] = {}
    for sym in elf.symbols:
        if sym.kind != _STT_FUNC or not sym.name:
            continue
        if sym.shndx == _SHN_UNDEF or sym.shndx >= min(_SHN_LORESERVE, len(elf.sections)):
            continue
        key = (sym.value, 0 if sym.bind == _STB_GLOBAL else 1, sym.name)
        if sym.shndx not in best or key < best[sym.shndx]:
            best[sym.shndx] = key
    return {idx: key[2] for idx, key in best.items()}


def license_of(elf: ElfObject) -> str:
    """The object's ``license`` section, as libbpf reads it (up to the first NUL)."""
    s = elf.section("license")
    if s is None or s.type == _SHT_NOBITS:
        return ""
    return elf.data_of(s).split(b"\0", 1)[0].decode("utf-8", errors="replace")


def program_sections(elf: ElfObject) -> list[Section]:
    """The sections holding programs, in file order (``.text`` holds sub-programs only)."""
    progs = [
        s for s in elf.sections if s.type == _SHT_PROGBITS and s.flags & _SHF_EXECINSTR and s.size and s.name != ".text"
    ]
    for s in progs:
        if s.size % _BPF_INSN_SIZE:
            raise elf.fail(f"section '{s.name}' size {s.size} is not a multiple of {_BPF_INSN_SIZE}")
    return progs


def parse(data: bytes, name: str = "object") -> list[BpfProgram]:
    """List the programs of a BPF object in the order libbpf loads them.

    ``name`` only prefixes error messages (typically the file name given
    to ``evl net -F``).
    """
    return programs(ElfObject(data, name))


def programs(elf: ElfObject) -> list[BpfProgram]:
    """The programs of an object already read, in the order libbpf loads them."""
    license = license_of(elf)
    progs = program_sections(elf)
    names = _function_names(elf) if progs else {}
    return [
        BpfProgram(section=s.name, name=names.get(s.index, s.name), insns=elf.data_of(s), license=license)
        for s in progs
    ]


def first_socket_filter(data: bytes, name: str = "object") -> BpfProgram:
    """Return the program libbpf would install, if EVL would accept it."""
    progs = parse(data, name)
    if not progs:
        raise BpfObjectError(errno.EINVAL, f"{name}: no eBPF program in object")
    first = progs[0]
    if first.prog_type != "socket_filter":
        raise BpfObjectError(
            errno.EINVAL,
            f"{name}: first program '{first.section}' is a {first.prog_type} program, not a socket filter",
        )
    return first
