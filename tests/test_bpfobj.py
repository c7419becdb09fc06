"""Tests for evl_net.kernel.bpfobj, the libbpf-free eBPF object inspector."""

from __future__ import annotations

import errno
import pathlib
import random
import shutil
import struct
import subprocess

import pytest

import bpf_build
from evl_net.kernel import bpfobj
from evl_net.kernel.bpfobj import BpfObjectError

needs_clang = pytest.mark.skipif(
    not bpf_build.have_clang(),
    reason="clang with the BPF target and libbpf headers (libbpf-dev) are needed to build tests/bpf/*.c",
)

R0_3 = bytes([0xB7, 0x00, 0, 0, 3, 0, 0, 0])  # r0 = 3
EXIT = bytes([0x95, 0x00, 0, 0, 0, 0, 0, 0])  # exit


# --------------------------------------------------------------------------
# A tiny ELF writer, so the parser is also checked against objects that do
# not come from LLVM (different layout, ELF32, big-endian, corruptions).
# --------------------------------------------------------------------------

SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB = 1, 2, 3
SHF_ALLOC, SHF_EXECINSTR = 0x2, 0x4


def build_elf(
    sections: list[tuple[str, int, int, bytes]],
    *,
    machine: int = bpfobj.EM_BPF,
    elf64: bool = True,
    big_endian: bool = False,
    e_type: int = 1,
    symbols: list[tuple[str, str, int, int]] = (),
) -> bytes:
    """Build a relocatable ELF object.

    ``sections`` are (name, sh_type, sh_flags, content); a null section and
    .shstrtab are added, plus .symtab/.strtab when ``symbols`` — given as
    (name, section name, value, st_info) — is not empty.
    """
    o = ">" if big_endian else "<"
    secs = list(sections)
    if symbols:
        strtab = b"\0"
        syms = [b""]
        index = {name: i + 1 for i, (name, *_) in enumerate(secs)}
        for sym_name, sec_name, value, info in symbols:
            name_off = len(strtab)
            strtab += sym_name.encode() + b"\0"
            shndx = index[sec_name]
            if elf64:
                syms.append(struct.pack(o + "IBBHQQ", name_off, info, 0, shndx, value, 0))
            else:
                syms.append(struct.pack(o + "IIIBBH", name_off, value, 0, info, 0, shndx))
        entsize = 24 if elf64 else 16
        syms[0] = bytes(entsize)
        strtab_index = len(secs) + 2  # null + secs + .symtab
        secs.append((".symtab", SHT_SYMTAB, 0, b"".join(syms), strtab_index, entsize))
        secs.append((".strtab", SHT_STRTAB, 0, strtab))
    secs.append((".shstrtab", SHT_STRTAB, 0, None))

    shstrtab = b"\0"
    name_offs = []
    for sec in secs:
        name_offs.append(len(shstrtab))
        shstrtab += sec[0].encode() + b"\0"

    ehsize = 64 if elf64 else 52
    body = b""
    layout = []
    for sec in secs:
        content = shstrtab if sec[3] is None else sec[3]
        while (ehsize + len(body)) % 8:
            body += b"\0"
        layout.append((ehsize + len(body), len(content)))
        body += content
    while (ehsize + len(body)) % 8:
        body += b"\0"
    shoff = ehsize + len(body)

    shdr_fmt = o + ("IIQQQQIIQQ" if elf64 else "IIIIIIIIII")
    shdrs = [bytes(struct.calcsize(shdr_fmt))]
    for sec, name_off, (off, size) in zip(secs, name_offs, layout, strict=True):
        link = sec[4] if len(sec) > 4 else 0
        entsize = sec[5] if len(sec) > 5 else 0
        info = 1 if sec[1] == SHT_SYMTAB else 0
        shdrs.append(struct.pack(shdr_fmt, name_off, sec[1], sec[2], 0, off, size, link, info, 8, entsize))
    shnum = len(shdrs)

    ident = b"\x7fELF" + bytes([2 if elf64 else 1, 2 if big_endian else 1, 1, 0]) + bytes(8)
    ehdr_fmt = o + ("HHIQQQIHHHHHH" if elf64 else "HHIIIIIHHHHHH")
    ehdr = ident + struct.pack(
        ehdr_fmt, e_type, machine, 1, 0, 0, shoff, 0, ehsize, 0, 0, struct.calcsize(shdr_fmt), shnum, shnum - 1
    )
    return ehdr + body + b"".join(shdrs)


def minimal_socket_elf(**kw) -> bytes:
    return build_elf([("socket", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, R0_3 + EXIT)], **kw)


def assert_einval(exc: pytest.ExceptionInfo, name: str, *fragments: str):
    assert exc.value.errno == errno.EINVAL
    msg = str(exc.value)
    assert msg.startswith(f"{name}: "), msg
    assert "\n" not in msg
    for fragment in fragments:
        assert fragment in msg, msg


# --------------------------------------------------------------------------
# clang-built objects
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def objs(tmp_path_factory) -> dict[str, pathlib.Path]:
    if not bpf_build.have_clang():
        pytest.skip("clang with the BPF target and libbpf headers (libbpf-dev) are needed to build tests/bpf/*.c")
    out = tmp_path_factory.mktemp("bpf")
    return {n: bpf_build.build(n, out) for n in ("netrx", "accept_vlan42", "drop_udp9", "xdp_pass")}


@needs_clang
@pytest.mark.parametrize("src", ["netrx", "accept_vlan42", "drop_udp9"])
def test_socket_filters_parse(objs, src):
    data = objs[src].read_bytes()
    progs = bpfobj.parse(data, objs[src].name)
    assert len(progs) == 1
    prog = progs[0]
    assert prog.section == "socket"
    assert prog.name == src  # function symbol from .symtab
    assert prog.prog_type == "socket_filter"
    assert prog.license == "GPL"
    assert prog.insns and len(prog.insns) % 8 == 0
    assert prog.insns[-8:] == EXIT
    assert bpfobj.first_socket_filter(data, objs[src].name) == prog


@needs_clang
def test_netrx_returns_evl_rx_vlan(objs):
    prog = bpfobj.first_socket_filter(objs["netrx"].read_bytes(), "netrx.o")
    assert prog.insns == R0_3 + EXIT


@needs_clang
def test_drop_udp9_uses_packet_loads(objs):
    # LD_ABS/LD_IND (classic packet loads) are socket-filter-only insns.
    prog = bpfobj.first_socket_filter(objs["drop_udp9"].read_bytes())
    opcodes = {prog.insns[i] for i in range(0, len(prog.insns), 8)}
    assert opcodes & {0x28, 0x30, 0x48, 0x50}


@needs_clang
def test_xdp_object_is_not_a_socket_filter(objs):
    data = objs["xdp_pass"].read_bytes()
    (prog,) = bpfobj.parse(data, "xdp_pass.o")
    assert (prog.section, prog.name, prog.prog_type) == ("xdp", "xdp_pass", "xdp")
    with pytest.raises(BpfObjectError) as exc:
        bpfobj.first_socket_filter(data, "xdp_pass.o")
    assert_einval(exc, "xdp_pass.o", "first program 'xdp' is a xdp program", "not a socket filter")


@needs_clang
def test_big_endian_object(tmp_path):
    obj = bpf_build.build("netrx", tmp_path, target="bpfeb")
    data = obj.read_bytes()
    assert data[5] == 2  # ELFDATA2MSB
    prog = bpfobj.first_socket_filter(data, obj.name)
    assert (prog.name, prog.license) == ("netrx", "GPL")
    # imm is big-endian, and dst/src register nibbles are swapped.
    assert prog.insns[:8] == bytes([0xB7, 0, 0, 0, 0, 0, 0, 3])


@needs_clang
def test_every_truncation_is_a_clean_error(objs):
    data = objs["drop_udp9"].read_bytes()
    for n in range(len(data) + 1):
        try:
            progs = bpfobj.parse(data[:n], "cut.o")
        except BpfObjectError as e:
            assert e.errno == errno.EINVAL
            assert str(e).startswith("cut.o: ")
        else:
            assert n == len(data), f"prefix of {n} bytes parsed: {progs}"


@needs_clang
def test_random_corruption_is_a_clean_error(objs):
    data = objs["accept_vlan42"].read_bytes()
    rng = random.Random(0xE71)
    for _ in range(3000):
        buf = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        try:
            bpfobj.parse(bytes(buf), "bad.o")
        except BpfObjectError as e:
            assert e.errno == errno.EINVAL


# --------------------------------------------------------------------------
# foreign and broken inputs
# --------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_host_object_rejected_for_machine(tmp_path):
    src = tmp_path / "host.c"
    src.write_text("int answer(void) { return 42; }\n")
    obj = tmp_path / "host.o"
    subprocess.run(["gcc", "-c", str(src), "-o", str(obj)], check=True)
    data = obj.read_bytes()
    if struct.unpack_from("<H", data, 18)[0] != 62:
        pytest.skip("host compiler does not produce x86-64 objects")
    with pytest.raises(BpfObjectError) as exc:
        bpfobj.parse(data, "host.o")
    assert_einval(exc, "host.o", "not an eBPF object", "x86-64")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x7f",
        b"\x7fEL",
        b"#!/bin/sh\necho not an object\n",
        b"\x7fELG" + bytes(60),
        bytes(200),
    ],
)
def test_non_elf_rejected(data):
    with pytest.raises(BpfObjectError) as exc:
        bpfobj.parse(data, "junk.o")
    assert_einval(exc, "junk.o")


def test_bad_magic_message():
    with pytest.raises(BpfObjectError) as exc:
        bpfobj.first_socket_filter(b"PK\x03\x04" + bytes(100), "f.zip")
    assert_einval(exc, "f.zip", "bad magic")


def test_error_is_a_value_error():
    with pytest.raises(ValueError):
        bpfobj.parse(b"nope")


# --------------------------------------------------------------------------
# hand-built objects
# --------------------------------------------------------------------------


def test_minimal_hand_built_elf():
    data = minimal_socket_elf()
    (prog,) = bpfobj.parse(data, "mini.o")
    assert prog == bpfobj.BpfProgram(section="socket", name="socket", insns=R0_3 + EXIT, license="")
    assert prog.prog_type == "socket_filter"
    assert bpfobj.first_socket_filter(data, "mini.o") is not None


@pytest.mark.parametrize("elf64", [True, False])
@pytest.mark.parametrize("big_endian", [False, True])
def test_classes_and_encodings(elf64, big_endian):
    data = build_elf(
        [
            (".text", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, EXIT),
            ("socket/rx", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, R0_3 + EXIT),
            ("xdp", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, EXIT),
            ("license", SHT_PROGBITS, SHF_ALLOC, b"Dual BSD/GPL\0pad"),
        ],
        symbols=[
            ("helper", ".text", 0, 0x12),
            ("local_alias", "socket/rx", 0, 0x02),
            ("rx_main", "socket/rx", 0, 0x12),
            ("late", "socket/rx", 8, 0x12),
            ("pass", "xdp", 0, 0x12),
        ],
        elf64=elf64,
        big_endian=big_endian,
    )
    progs = bpfobj.parse(data, "x.o")
    assert [(p.section, p.name, p.prog_type, p.license) for p in progs] == [
        ("socket/rx", "rx_main", "socket_filter", "Dual BSD/GPL"),
        ("xdp", "pass", "xdp", "Dual BSD/GPL"),
    ]
    assert bpfobj.first_socket_filter(data, "x.o").name == "rx_main"


def test_only_subprograms_means_no_program():
    data = build_elf(
        [
            (".text", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, R0_3 + EXIT),
            ("socket", SHT_PROGBITS, SHF_ALLOC, R0_3 + EXIT),
            ("kprobe/x", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, b""),
        ]
    )
    assert bpfobj.parse(data) == []
    with pytest.raises(BpfObjectError) as exc:
        bpfobj.first_socket_filter(data, "empty.o")
    assert_einval(exc, "empty.o", "no eBPF program in object")


def test_first_program_wins():
    data = build_elf(
        [
            ("kprobe/sys_open", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, EXIT),
            ("socket", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, R0_3 + EXIT),
        ]
    )
    with pytest.raises(BpfObjectError) as exc:
        bpfobj.first_socket_filter(data, "two.o")
    assert_einval(exc, "two.o", "first program 'kprobe/sys_open' is a kprobe program")


def test_size_not_multiple_of_insn():
    data = build_elf([("socket", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, R0_3 + EXIT[:4])])
    with pytest.raises(BpfObjectError) as exc:
        bpfobj.parse(data, "odd.o")
    assert_einval(exc, "odd.o", "'socket'", "multiple of 8")


def test_wrong_machine_and_type():
    with pytest.raises(BpfObjectError) as exc:
        bpfobj.parse(minimal_socket_elf(machine=183), "arm.o")
    assert_einval(exc, "arm.o", "AArch64")
    with pytest.raises(BpfObjectError) as exc:
        bpfobj.parse(minimal_socket_elf(e_type=2), "exec.o")
    assert_einval(exc, "exec.o", "not a relocatable")


def _patch_ehdr(data: bytes, fmt: str, offset: int, value: int) -> bytes:
    buf = bytearray(data)
    struct.pack_into(fmt, buf, offset, value)
    return bytes(buf)


@pytest.mark.parametrize(
    "what,offset,fmt,value,fragment",
    [
        ("class", 4, "B", 3, "ELF class"),
        ("encoding", 5, "B", 0, "data encoding"),
        ("e_shoff past EOF", 0x28, "<Q", 1 << 40, "section header table"),
        ("e_shoff zero", 0x28, "<Q", 0, "no section header table"),
        ("e_shentsize", 0x3A, "<H", 8, "section header size"),
        ("e_shnum", 0x3C, "<H", 500, "section header table"),
        ("e_shstrndx", 0x3E, "<H", 77, "string table index"),
        ("e_shstrndx undef", 0x3E, "<H", 0, "string table index"),
    ],
)
def test_corrupt_headers(what, offset, fmt, value, fragment):
    data = _patch_ehdr(minimal_socket_elf(), fmt, offset, value)
    with pytest.raises(BpfObjectError) as exc:
        bpfobj.parse(data, "hdr.o")
    assert_einval(exc, "hdr.o", fragment)


def _shdr_offset(data: bytes, index: int) -> int:
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    return shoff + 64 * index


def test_section_content_out_of_range():
    data = minimal_socket_elf()
    data = _patch_ehdr(data, "<Q", _shdr_offset(data, 1) + 0x18, 1 << 32)
    with pytest.raises(BpfObjectError) as exc:
        bpfobj.parse(data, "oob.o")
    assert_einval(exc, "oob.o", "beyond end of file")


def test_section_name_out_of_range():
    data = minimal_socket_elf()
    data = _patch_ehdr(data, "<I", _shdr_offset(data, 1), 10_000)
    with pytest.raises(BpfObjectError) as exc:
        bpfobj.parse(data, "name.o")
    assert_einval(exc, "name.o", "name offset")


def test_shstrtab_not_a_string_table():
    data = minimal_socket_elf()
    data = _patch_ehdr(data, "<I", _shdr_offset(data, 2) + 4, SHT_PROGBITS)
    with pytest.raises(BpfObjectError) as exc:
        bpfobj.parse(data, "str.o")
    assert_einval(exc, "str.o", "not a string table")


def test_hand_built_truncations():
    data = build_elf(
        [
            ("socket", SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, R0_3 + EXIT),
            ("license", SHT_PROGBITS, SHF_ALLOC, b"GPL\0"),
        ],
        symbols=[("f", "socket", 0, 0x12)],
    )
    assert bpfobj.first_socket_filter(data).name == "f"
    for n in range(len(data)):
        with pytest.raises(BpfObjectError):
            bpfobj.parse(data[:n])


@pytest.mark.parametrize(
    "section,prog_type",
    [
        ("socket", "socket_filter"),
        ("socket/evl_rx", "socket_filter"),
        ("socketfilter", "unknown"),
        ("xdp", "xdp"),
        ("xdp.frags", "xdp"),
        ("tc", "tc"),
        ("classifier/ingress", "tc"),
        ("kprobe/do_sys_open", "kprobe"),
        ("uretprobe.s/libc:malloc", "kprobe"),
        ("tracepoint/net/netif_rx", "tracepoint"),
        ("raw_tp.w/foo", "raw_tracepoint_writable"),
        ("fentry/tcp_v4_rcv", "tracing"),
        ("cgroup_skb/ingress", "cgroup_skb"),
        ("cgroup/skb", "cgroup_skb"),
        ("cgroup/connect4", "cgroup_sock_addr"),
        ("cgroup/sock_create", "cgroup_sock"),
        ("sk_skb/stream_verdict", "sk_skb"),
        ("sockops", "sock_ops"),
        ("license", "unknown"),
        ("", "unknown"),
    ],
)
def test_prog_type_from_section(section, prog_type):
    prog = bpfobj.BpfProgram(section=section, name="p", insns=EXIT, license="GPL")
    assert prog.prog_type == prog_type


def test_cheap_imports():
    src = pathlib.Path(bpfobj.__file__).read_text()
    imports = {line.split()[1] for line in src.splitlines() if line.startswith(("import ", "from "))}
    assert imports <= {"__future__", "errno", "struct", "dataclasses"}
