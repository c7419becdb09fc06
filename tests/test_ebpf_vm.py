"""The eBPF interpreter (evl_net.transports.sim.ebpf) against an independent oracle.

The oracle is the kernel itself, through the bpf(2) syscall of this machine:
BPF_PROG_LOAD (verifier + JIT) then BPF_PROG_TEST_RUN on the same frames and
context.  BPF_PROG_TEST_RUN cannot set the offloaded VLAN fields nor run
frames shorter than 34 bytes, so a second kernel oracle runs the programs
on the real RX path: a veth pair in a private network namespace, the
program attached to an AF_PACKET socket (SO_ATTACH_BPF) whose capture length
is the program's return value -- the kernel untags VLAN frames exactly as a
VLAN-accelerated NIC does.  Where the kernel refuses (no privilege, BPF or
namespaces disabled), every verdict is still checked against tables computed
by hand below, and the kernel-only tests skip saying so (``pytest -rs``);
EVL_TEST_NO_KERNEL_ORACLE=1 forces that fallback.

Programs: the project's own C sources (tests/bpf/*.c, built with
``clang -O2 -target bpf``) and hand-assembled ones for every ALU/JMP/memory
operation class, checked against values computed in Python.
"""

from __future__ import annotations

import errno
import json
import os
import struct
import subprocess
import sys
import time
from fractions import Fraction

import pytest

import bpf_build
from bpf_syscall import Bpf
from ebpf_asm import (
    EXIT,
    JMP_OPS,
    SK_BUFF_FIELDS,
    alu,
    asm,
    atomic,
    call,
    ja,
    jmp,
    ld_abs,
    ld_ind,
    lddw,
    ldx,
    mov,
    st,
    stx,
)
from ebpf_asm import insn as bpf_insn
from evl_net.kernel import bpfobj
from evl_net.transports.sim.ebpf import (
    BudgetExceededError,
    EbpfError,
    Program,
    SkbContext,
    UnsupportedError,
)

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1
DROP, ACCEPT, SKIP, VLAN = 0, 1, 2, 3  # EVL RX verdicts (docs/abi.md, "eBPF RX filter")

needs_clang = pytest.mark.skipif(
    not bpf_build.have_clang(),
    reason="clang with the BPF target and libbpf headers (libbpf-dev) are needed to build tests/bpf/*.c",
)


# ==========================================================================
# The kernel oracle: bpf(2) through ctypes
# ==========================================================================


class Kernel:
    """BPF_PROG_LOAD + BPF_PROG_TEST_RUN on this machine's kernel."""

    def __init__(self) -> None:
        self.bpf = Bpf()
        fd = self.load(bytes([0xB7, 0, 0, 0, 3, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]))
        try:
            if self.run_fd(fd, bytes(64)) != 3:
                raise OSError(errno.EIO, "BPF_PROG_TEST_RUN gave a wrong result")
        finally:
            os.close(fd)

    def load(self, insns: bytes, license: bytes = b"GPL") -> int:
        fd, log = self.bpf.prog_load(insns, license, log_size=1 << 18)
        if fd < 0:
            exc = OSError(-fd, os.strerror(-fd))
            exc.verifier_log = log  # type: ignore[attr-defined]
            raise exc
        return fd

    def run_fd(self, fd: int, frame: bytes, ctx: bytes | None = None) -> int:
        return self.bpf.test_run(fd, frame, ctx)

    def runs(self, insns: bytes, inputs: list[tuple[bytes, bytes | None]]) -> list[int]:
        fd = self.load(insns)
        try:
            return [self.run_fd(fd, frame, ctx) for frame, ctx in inputs]
        finally:
            os.close(fd)

    def refuses(self, insns: bytes) -> bool:
        try:
            fd = self.load(insns)
        except OSError as exc:  # the verifier's answers, not EPERM & co
            return exc.errno in (errno.EINVAL, errno.EACCES, errno.E2BIG, 524)  # 524: ENOTSUPP
        os.close(fd)
        return False


_KERNEL: list = []
#: Set to 1 to check against the hand tables and Python models only.
NO_KERNEL_ENV = "EVL_TEST_NO_KERNEL_ORACLE"


def kernel_oracle() -> tuple[Kernel | None, str]:
    if not _KERNEL:
        fallback = "verdicts and values checked against the hand-computed tables and models only"
        if os.environ.get(NO_KERNEL_ENV):
            _KERNEL.append((None, f"kernel oracle disabled by {NO_KERNEL_ENV}: {fallback}"))
        else:
            try:
                _KERNEL.append((Kernel(), "kernel BPF_PROG_TEST_RUN"))
            except OSError as exc:
                _KERNEL.append((None, f"kernel oracle unavailable ({exc.strerror}): {fallback}"))
    return _KERNEL[0]


def test_kernel_oracle_is_available():
    """Says in the skip summary (-rs) when the kernel cannot serve as the oracle."""
    k, why = kernel_oracle()
    if k is None:
        pytest.skip(why)


@pytest.fixture(scope="module")
def kernel() -> Kernel:
    k, why = kernel_oracle()
    if k is None:
        pytest.skip(why)
    return k


def ctx_bytes(skb: SkbContext) -> bytes:
    """The __sk_buff ctx_in BPF_PROG_TEST_RUN accepts for ``skb`` (settable fields only)."""
    ctx = bytearray(192)
    struct.pack_into("<I", ctx, 8, skb.mark)
    struct.pack_into("<III", ctx, 32, skb.priority, skb.ingress_ifindex, 0)
    struct.pack_into("<5I", ctx, 48, *skb.cb)
    struct.pack_into("<I", ctx, 164, skb.gso_segs)
    struct.pack_into("<I", ctx, 176, skb.gso_size)
    return bytes(ctx)


# The view BPF_PROG_TEST_RUN gives: the loopback device (ifindex 1, MAC
# 00:00:00:00:00:00), no VLAN untagging.
def kernel_view(**fields) -> SkbContext:
    return SkbContext(ifindex=1, dev_addr=bytes(6), **fields)


# ==========================================================================
# Frames
# ==========================================================================

MAC_DST = bytes.fromhex("502df41d32d0")
MAC_SRC = bytes.fromhex("502df41d4010")


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4(
    proto: int,
    payload: bytes,
    src: str = "10.10.10.10",
    dst: str = "10.10.10.11",
    options: bytes = b"",
    frag: int = 0,
    bad_csum: bool = False,
) -> bytes:
    ihl = 5 + len(options) // 4
    hdr = (
        bytearray(
            struct.pack(
                "!BBHHHBBH4s4s",
                0x40 | ihl,
                0,
                ihl * 4 + len(payload),
                1,
                frag,
                64,
                proto,
                0,
                bytes(map(int, src.split("."))),
                bytes(map(int, dst.split("."))),
            )
        )
        + options
    )
    c = csum(bytes(hdr))
    hdr[10:12] = struct.pack("!H", c ^ 0x0101 if bad_csum else c)
    return bytes(hdr) + payload


def udp(dport: int, sport: int = 4000, size: int = 18) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + size, 0) + bytes(size)


def eth(
    ethertype: int, payload: bytes, tags: tuple[tuple[int, int], ...] = (), dst: bytes = MAC_DST, pad: bool = True
) -> bytes:
    hdr = dst + MAC_SRC
    for tpid, tci in tags:
        hdr += struct.pack("!HH", tpid, tci)
    frame = hdr + struct.pack("!H", ethertype) + payload
    return frame + bytes(max(0, 60 - len(frame))) if pad else frame


ARP = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + MAC_SRC + bytes([10, 10, 10, 10]) + bytes(6) + bytes([10, 10, 10, 11])
IPV6 = struct.pack("!IHBB", 6 << 28, 8, 17, 64) + bytes(32) + udp(9, size=0)

FRAMES: dict[str, bytes] = {
    "udp9": eth(0x0800, ipv4(17, udp(9))),
    "udp53": eth(0x0800, ipv4(17, udp(53))),
    "udp7_opts": eth(0x0800, ipv4(17, udp(7), options=bytes([1, 1, 1, 0]))),
    "udp9_frag": eth(0x0800, ipv4(17, udp(9), frag=0x2005)),
    "udp53_frag_first": eth(0x0800, ipv4(17, udp(53), frag=0x2000)),
    "tcp": eth(0x0800, ipv4(6, bytes(20))),
    "udp53_bad_ipcsum": eth(0x0800, ipv4(17, udp(53), bad_csum=True)),
    "udp53_bad_udpcsum": eth(0x0800, ipv4(17, struct.pack("!HHHH", 4000, 53, 26, 0xBAD) + bytes(18))),
    # IPv4 header, no room for the UDP header (34 bytes: the kernel's minimum).
    "udp_truncated": eth(0x0800, ipv4(17, b""), pad=False),
    # A UDP datagram to port 17 that a filter reading Ethernet offsets would
    # take for "UDP to port 9" (the packet data starts at the network header).
    "decoy_for_drop_udp9": eth(0x0800, ipv4(17, udp(17, sport=0x2000), src="8.0.0.1", dst="0.9.0.1")),
    "vlan42_udp53": eth(0x0800, ipv4(17, udp(53)), tags=((0x8100, 42),)),
    "vlan43_udp53": eth(0x0800, ipv4(17, udp(53)), tags=((0x8100, 43),)),
    "vlan42_prio_udp9": eth(0x0800, ipv4(17, udp(9)), tags=((0x8100, 0xA000 | 42),)),
    "vlan42_arp": eth(0x0806, ARP, tags=((0x8100, 42),)),
    "qinq_42_43": eth(0x0800, ipv4(17, udp(53)), tags=((0x88A8, 42), (0x8100, 43))),
    "arp": eth(0x0806, ARP, dst=b"\xff" * 6),
    "ipv6": eth(0x86DD, IPV6, dst=bytes.fromhex("333300000001")),
    "llc": eth(0x0026, bytes([0x42, 0x42, 0x03]) + bytes(35)),
    "tiny_14": eth(0x0800, b"", pad=False),
    "tiny_20": eth(0x0800, bytes([0x45, 0, 0, 20, 0, 1]), pad=False),
}
#: BPF_PROG_TEST_RUN refuses frames under ETH_HLEN + sizeof(struct iphdr).
TEST_RUN_MIN = 34


# Verdicts computed by hand, for the kernel's BPF_PROG_TEST_RUN view
# ("plain": VLAN tags stay in the frame, skb data from the network header)
# and for a VLAN-accelerated NIC ("offload": SkbContext.for_frame()).
# Columns follow FRAMES.
_COLS = list(FRAMES)
_T = {
    #                  u9 u53 u7o u9f uff tcp bip bud utr dec v42 v43 v42p v42a qq arp v6 llc t14 t20
    "netrx": "3  3   3   3   3   3   3   3   3   3   3   3   3    3    3  3   3  3   3   3",
    "accept_vlan42": "2  2   2   2   2   2   2   2   2   2   2   2   2    2    2  2   2  2   2   2",
    "accept_vlan42+": "2  2   2   2   2   2   2   2   2   2   1   2   1    1    1  2   2  2   2   2",
    # drop_udp9: UDP to port 9 dropped; loads past the end (truncated and
    # tiny frames) end the program with 0, as in the kernel.
    "drop_udp9": "0  3   3   3   3   3   3   3   0   3   3   3   3    3    3  3   3  3   0   0",
    "drop_udp9+": "0  3   3   3   3   3   3   3   0   3   3   3   0    3    3  3   3  3   0   0",
    "leave_arp_inband": "1 1 1 1 1 1 1 1 1 1 3 3 3 3 3 2 3 3 1 1",
    "leave_arp_inband+": "1 1 1 1 1 1 1 1 1 1 1 1 1 2 3 2 3 3 1 1",
    "udp_guard": "0  1   0   3   1   3   0   1   0   1   2   2   2    2    2  2   2  2   0   0",
    "udp_guard+": "0  1   0   3   1   3   0   1   0   1   1   1   0    2    2  2   2  2   0   0",
    "mac_vlan42": "3  3   3   3   3   3   3   3   3   3   1   0   1    1    1  3   3  3   3   3",
    "mac_vlan42+": "3  3   3   3   3   3   3   3   3   3   1   0   1    1    1  3   3  3   3   3",
}
EXPECTED = {name: dict(zip(_COLS, map(int, row.split()), strict=True)) for name, row in _T.items()}
C_PROGRAMS = ["netrx", "accept_vlan42", "drop_udp9", "leave_arp_inband", "udp_guard", "mac_vlan42"]


@pytest.fixture(scope="module")
def objects(tmp_path_factory) -> dict[str, bytes]:
    return bpf_build.objects(C_PROGRAMS, tmp_path_factory)


def insns_of(objects, name: str) -> bytes:
    return bpfobj.first_socket_filter(objects[name], f"{name}.o").insns


# ==========================================================================
# The C programs: interpreter == hand table == kernel
# ==========================================================================


@needs_clang
@pytest.mark.parametrize("name", C_PROGRAMS)
def test_c_program_verdicts_match_the_hand_table(objects, name):
    prog = Program.from_object(objects[name], f"{name}.o")
    plain = {f: prog.run(FRAMES[f], kernel_view()) for f in FRAMES}
    offload = {f: prog.run(FRAMES[f], SkbContext.for_frame(FRAMES[f])) for f in FRAMES}
    assert plain == EXPECTED[name]
    assert offload == EXPECTED.get(name + "+", EXPECTED[name])


@needs_clang
@pytest.mark.parametrize("name", C_PROGRAMS)
def test_c_program_verdicts_match_the_kernel_test_run(objects, kernel, name):
    insns = insns_of(objects, name)
    prog = Program(insns)
    frames = {f: fr for f, fr in FRAMES.items() if len(fr) >= TEST_RUN_MIN}
    mark_ctx = kernel_view(mark=7, priority=3, cb=(1, 2, 3, 4, 5))
    got_kernel = dict(
        zip(frames, kernel.runs(insns, [(fr, ctx_bytes(mark_ctx)) for fr in frames.values()]), strict=True)
    )
    got_vm = {f: prog.run(fr, mark_ctx) for f, fr in frames.items()}
    assert got_vm == got_kernel
    assert got_kernel == {f: EXPECTED[name][f] for f in frames}


# --- second kernel oracle: the real RX path (veth + AF_PACKET + SO_ATTACH_BPF) ---

_RX_PATH_CHILD = r"""
import ctypes, json, os, select, socket, struct, sys
req = json.load(sys.stdin)
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(0x40000000) != 0:  # CLONE_NEWNET
    raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
for knob in ("all", "default"):
    try:
        with open(f"/proc/sys/net/ipv6/conf/{knob}/disable_ipv6", "w") as f:
            f.write("1")
    except OSError:
        pass
from pyroute2 import IPRoute
with IPRoute() as ipr:
    ipr.link("add", ifname="evla", kind="veth", peer="evlb")
    for name in ("evla", "evlb"):
        ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up")
sys.path.insert(0, req["tests"])
from test_ebpf_vm import Kernel
k = Kernel()
tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
tx.bind(("evla", 0))
ETH_P_ALL = 3
out = {}
for name, hexinsns in req["programs"].items():
    fd = k.load(bytes.fromhex(hexinsns))
    ref = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
    ref.bind(("evlb", ETH_P_ALL))
    filt = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
    filt.setsockopt(socket.SOL_SOCKET, 50, struct.pack("i", fd))  # SO_ATTACH_BPF
    filt.bind(("evlb", ETH_P_ALL))
    os.close(fd)
    for s in (ref, filt):  # anything that raced the setup
        s.setblocking(False)
        try:
            while True:
                s.recv(65536)
        except BlockingIOError:
            pass
        s.setblocking(True)
    res = {}
    for fname, hexframe in req["frames"].items():
        tx.send(bytes.fromhex(hexframe))
        if not select.select([ref], [], [], 5)[0]:
            res[fname] = "lost"
            continue
        ref.recv(65536)
        # filt sits before ref on the device's tap list: it has its copy already.
        if select.select([filt], [], [], 0.02)[0]:
            res[fname] = len(filt.recv(65536))
        else:
            res[fname] = None
    out[name] = res
    ref.close()
    filt.close()
json.dump(out, sys.stdout)
"""


@pytest.fixture(scope="module")
def rx_path(objects):
    """Observations of the real RX path: {program: {frame: captured length or None}}."""
    k, why = kernel_oracle()
    if k is None:
        pytest.skip(why)
    req = {
        "tests": os.path.dirname(os.path.abspath(__file__)),
        "programs": {n: insns_of(objects, n).hex() for n in C_PROGRAMS},
        "frames": {f: fr.hex() for f, fr in RX_FRAMES.items()},
    }
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _RX_PATH_CHILD], input=json.dumps(req), capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"RX-path oracle unavailable: {exc}")
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        pytest.skip(f"RX-path oracle unavailable (network namespace + veth): {last}")
    return json.loads(proc.stdout)


def _untagged(frame: bytes) -> bytes:
    return frame[:12] + frame[16:] if frame[12:14] in (b"\x81\x00", b"\x88\xa8") else frame


# A packet socket never captures an empty packet (its default capture length
# is 0 and means "drop"), so frames with nothing after the header are left out.
RX_FRAMES = {f: fr for f, fr in FRAMES.items() if len(_untagged(fr)) > 14}


def rx_observation(verdict: int, frame: bytes) -> int | None:
    """What the AF_PACKET capture shows for a verdict: None when dropped, else the
    capture length min(verdict, bytes after the (untagged) Ethernet header)."""
    if verdict == 0:
        return None
    return min(verdict, len(_untagged(frame)) - 14)


@needs_clang
@pytest.mark.parametrize("name", C_PROGRAMS)
def test_c_program_verdicts_match_the_kernel_rx_path(objects, rx_path, name):
    prog = Program.from_object(objects[name], f"{name}.o")
    observed = rx_path[name]
    assert "lost" not in observed.values(), observed
    expected = {f: rx_observation(prog.run(fr, SkbContext.for_frame(fr)), fr) for f, fr in RX_FRAMES.items()}
    assert expected == observed
    table = EXPECTED.get(name + "+", EXPECTED[name])
    assert {f: rx_observation(table[f], fr) for f, fr in RX_FRAMES.items()} == observed


# ==========================================================================
# A tiny assembler
# ==========================================================================

NBYTES = {"w": 4, "h": 2, "b": 1, "dw": 8}


# Harness: A (64-bit) from cb[0..1], B from cb[2..3], a selector in cb[4];
# the body leaves its 64-bit result in r7; r0 = low half, or high half when
# the selector is 1, so the kernel's 32-bit return value gives both halves.
PROLOGUE = asm(
    ldx("w", 7, 1, 48),
    ldx("w", 2, 1, 52),
    alu("lsh", 2, imm=32),
    alu("or", 7, 2),
    ldx("w", 8, 1, 56),
    ldx("w", 2, 1, 60),
    alu("lsh", 2, imm=32),
    alu("or", 8, 2),
    ldx("w", 9, 1, 64),
)
EPILOGUE = asm(mov(0, 7), jmp("jeq", 9, imm=0, off=1), alu("rsh", 0, imm=32), EXIT)
HARNESS_FRAME = FRAMES["udp53"]


def harness(*body: bytes) -> bytes:
    return PROLOGUE + b"".join(body) + EPILOGUE


def cb_of(a: int, b: int, sel: int) -> tuple[int, ...]:
    a &= M64
    b &= M64
    return (a & M32, a >> 32, b & M32, b >> 32, sel)


def vm_results(insns: bytes, pairs: list[tuple[int, int]]) -> list[int]:
    prog = Program(insns)
    return [prog.execute(HARNESS_FRAME, kernel_view(cb=cb_of(a, b, 0))) for a, b in pairs]


def kernel_results(insns: bytes, pairs: list[tuple[int, int]]) -> list[int] | None:
    k, _ = kernel_oracle()
    if k is None:
        return None
    inputs = []
    for a, b in pairs:
        for sel in (0, 1):
            inputs.append((HARNESS_FRAME, ctx_bytes(kernel_view(cb=cb_of(a, b, sel)))))
    out = k.runs(insns, inputs)
    return [lo | hi << 32 for lo, hi in zip(out[::2], out[1::2], strict=True)]


def check(insns: bytes, pairs: list[tuple[int, int]], model) -> None:
    """Interpreter == model, and kernel == model where the kernel oracle runs."""
    want = [model(a & M64, b & M64) for a, b in pairs]
    got = vm_results(insns, pairs)
    bad = [(hex(a), hex(b), hex(g), hex(w)) for (a, b), g, w in zip(pairs, got, want, strict=True) if g != w]
    assert not bad, f"interpreter (a, b, got, want): {bad[:8]}"
    kern = kernel_results(insns, pairs)
    if kern is not None:
        bad = [(hex(a), hex(b), hex(g), hex(w)) for (a, b), g, w in zip(pairs, kern, want, strict=True) if g != w]
        assert not bad, f"kernel disagrees with the model (a, b, kernel, model): {bad[:8]}"


VALUES = [
    0,
    1,
    2,
    3,
    7,
    31,
    32,
    33,
    63,
    64,
    65,
    0x7F,
    0x80,
    0xFFFF,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFFF,
    0x100000000,
    0x1_0000_0007,
    0x7FFFFFFFFFFFFFFF,
    0x8000000000000000,
    0xFFFFFFFFFFFFFFFF,
    0xFFFFFFFFFFFFFFFE,
    0xFFFFFFFF80000000,
    0x123456789ABCDEF0,
    0xDEADBEEFCAFEBABE,
]
PAIRS = [(a, b) for a in VALUES for b in VALUES]
IMMS = [0, 1, 2, 7, 31, 32, 63, -1, -2, -7, 0x7FFFFFFF, -0x80000000, 0x12345678]


def s(x: int, bits: int) -> int:
    return x - (1 << bits) if x >> (bits - 1) & 1 else x


def alu_model(op: str, w64: bool, signed: bool = False):
    bits = 64 if w64 else 32
    m = (1 << bits) - 1

    def model(a: int, b: int) -> int:
        a &= m
        b &= m
        if op == "add":
            return (a + b) & m
        if op == "sub":
            return (a - b) & m
        if op == "mul":
            return (a * b) & m
        if op == "div":
            if signed:
                return int(Fraction(s(a, bits), s(b, bits))) & m if b else 0
            return a // b if b else 0
        if op == "mod":
            if signed:
                if not b:
                    return a
                q = int(Fraction(s(a, bits), s(b, bits)))
                return (s(a, bits) - s(b, bits) * q) & m
            return a % b if b else a
        if op == "or":
            return a | b
        if op == "and":
            return a & b
        if op == "xor":
            return a ^ b
        if op == "lsh":
            return (a << (b % bits)) & m
        if op == "rsh":
            return a >> (b % bits)
        if op == "arsh":
            return (s(a, bits) >> (b % bits)) & m
        if op == "neg":
            return -a & m
        if op == "mov":
            return b
        raise AssertionError(op)

    return model


BINARY_OPS = ["add", "sub", "mul", "div", "mod", "or", "and", "xor", "lsh", "rsh", "arsh", "mov"]


@pytest.mark.parametrize("w64", [True, False], ids=["alu64", "alu32"])
@pytest.mark.parametrize("op", BINARY_OPS)
def test_alu_register_source(op, w64):
    check(harness(alu(op, 7, 8, w64=w64)), PAIRS, alu_model(op, w64))


@pytest.mark.parametrize("w64", [True, False], ids=["alu64", "alu32"])
@pytest.mark.parametrize("op", BINARY_OPS)
def test_alu_immediate_source(op, w64):
    bits = 64 if w64 else 32
    for imm in IMMS:
        if op in ("div", "mod") and imm == 0:
            continue
        if op in ("lsh", "rsh", "arsh") and not 0 <= imm < bits:
            continue
        model = alu_model(op, w64)
        check(
            harness(alu(op, 7, imm=imm, w64=w64)),
            [(a, 0) for a in VALUES],
            lambda a, _b, imm=imm, model=model: model(a, imm & M64),
        )


@pytest.mark.parametrize("w64", [True, False], ids=["alu64", "alu32"])
def test_alu_neg(w64):
    check(harness(alu("neg", 7, w64=w64)), [(a, 0) for a in VALUES], alu_model("neg", w64))


@pytest.mark.parametrize("w64", [True, False], ids=["alu64", "alu32"])
@pytest.mark.parametrize("op", ["div", "mod"])
def test_signed_div_mod(op, w64):
    """v4 sdiv/smod (offset 1): truncation toward zero, INT_MIN / -1, by zero."""
    check(harness(alu(op, 7, 8, w64=w64, off=1)), PAIRS, alu_model(op, w64, signed=True))
    for imm in (1, -1, 3, -3, 0x7FFFFFFF, -0x80000000):
        model = alu_model(op, w64, signed=True)
        check(
            harness(alu(op, 7, imm=imm, w64=w64, off=1)),
            [(a, 0) for a in VALUES],
            lambda a, _b, imm=imm, model=model: model(a, imm & M64),
        )


@pytest.mark.parametrize("size,w64", [(8, True), (16, True), (32, True), (8, False), (16, False)])
def test_movsx(size, w64):
    """v4 movsx: sign-extend the low 8/16/32 bits (32-bit form: 8/16, zero-extended)."""

    def model(a, _b):
        v = s(a & ((1 << size) - 1), size)
        return v & (M64 if w64 else M32)

    check(harness(alu("mov", 7, 7, w64=w64, off=size)), [(a, 0) for a in VALUES], model)


def test_alu32_zero_extends_and_wraps():
    pairs = [(0xFFFFFFFF_FFFFFFFF, 1), (0x1_7FFFFFFF, 1), (0xAAAA_0000_0000, 5)]
    check(harness(alu("add", 7, 8, w64=False)), pairs, lambda a, b: (a + b) & M32)
    # A 32-bit mov clears the high half.
    check(harness(mov(7, 7, w64=False)), pairs, lambda a, b: a & M32)


def _swap(v: int, bits: int) -> int:
    return int.from_bytes((v & ((1 << bits) - 1)).to_bytes(bits // 8, "little"), "big")


@pytest.mark.parametrize("bits", [16, 32, 64])
def test_byte_swaps(bits):
    pairs = [(a, 0) for a in VALUES]
    check(harness(bpf_insn(0xD4, 7, 0, 0, bits)), pairs, lambda a, _b: a & ((1 << bits) - 1))  # le
    check(harness(bpf_insn(0xDC, 7, 0, 0, bits)), pairs, lambda a, _b: _swap(a, bits))  # be
    check(harness(bpf_insn(0xD7, 7, 0, 0, bits)), pairs, lambda a, _b: _swap(a, bits))  # bswap (v4)


def test_lddw_loads_64_bits():
    for v in (0, 1, M64, 0x8000000000000000, 0x123456789ABCDEF0, 0xFFFFFFFF, 0x1_0000_0000):
        check(harness(lddw(7, v)), [(0, 0)], lambda _a, _b, v=v: v)


# --- jumps ----------------------------------------------------------------


def jmp_model(op: str, w32: bool):
    bits = 32 if w32 else 64
    m = (1 << bits) - 1

    def model(a: int, b: int) -> int:
        a &= m
        b &= m
        sa, sb = s(a, bits), s(b, bits)
        return int(
            {
                "jeq": a == b,
                "jne": a != b,
                "jgt": a > b,
                "jge": a >= b,
                "jlt": a < b,
                "jle": a <= b,
                "jset": bool(a & b),
                "jsgt": sa > sb,
                "jsge": sa >= sb,
                "jslt": sa < sb,
                "jsle": sa <= sb,
            }[op]
        )

    return model


def taken(cond: bytes) -> bytes:
    """r7 = 1 if the jump is taken, else 0."""
    return asm(mov(6, imm=0), cond, ja(1), mov(6, imm=1), mov(7, 6))


JMP_VALUES = [
    0,
    1,
    2,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFFF,
    0x1_0000_0000,
    0x1_0000_0001,
    0x7FFFFFFFFFFFFFFF,
    0x8000000000000000,
    0xFFFFFFFFFFFFFFFF,
    0xFFFFFFFF00000001,
]
JMP_PAIRS = [(a, b) for a in JMP_VALUES for b in JMP_VALUES]


@pytest.mark.parametrize("w32", [False, True], ids=["jmp", "jmp32"])
@pytest.mark.parametrize("op", list(JMP_OPS))
def test_conditional_jumps(op, w32):
    check(harness(taken(jmp(op, 7, 8, off=1, w32=w32))), JMP_PAIRS, jmp_model(op, w32))
    model = jmp_model(op, w32)
    for imm in (0, 1, -1, 0x7FFFFFFF, -0x80000000, 2):
        check(
            harness(taken(jmp(op, 7, imm=imm, off=1, w32=w32))),
            [(a, 0) for a in JMP_VALUES],
            lambda a, _b, imm=imm: model(a, imm & M64),
        )


def test_ja_and_gotol():
    # goto +1 skips r7 = 5; gotol (JMP32|JA, offset in imm) likewise.  The
    # never-taken "if r9 == 7" keeps r7 = 5 reachable, as the verifier wants.
    for goto in (ja(1), bpf_insn(0x06, 0, 0, 0, 1)):
        check(harness(mov(7, imm=1), jmp("jeq", 9, imm=7, off=1), goto, mov(7, imm=5)), [(0, 0)], lambda a, b: 1)


def test_bounded_loop_sums():
    # r7 = sum(1..A & 0xff) with a backward jump.
    body = asm(
        alu("and", 7, imm=0xFF),
        mov(6, imm=0),
        jmp("jeq", 7, imm=0, off=3),
        alu("add", 6, 7),
        alu("sub", 7, imm=1),
        ja(-4),
        mov(7, 6),
    )
    check(harness(body), [(n, 0) for n in (0, 1, 2, 10, 255)], lambda a, b: a * (a + 1) // 2)


# --- memory ---------------------------------------------------------------


@pytest.mark.parametrize("size", ["b", "h", "w", "dw"])
def test_stack_loads_of_every_size_and_offset(size):
    n = NBYTES[size]
    for off in range(-16, 0, n):
        body = asm(stx("dw", 10, 7, -16), stx("dw", 10, 8, -8), ldx(size, 7, 10, off))

        def model(a, b, off=off):
            mem = a.to_bytes(8, "little") + b.to_bytes(8, "little")
            return int.from_bytes(mem[16 + off : 16 + off + n], "little")

        check(harness(body), [(0x1122334455667788, 0x99AABBCCDDEEFF00), (M64, 0)], model)


@pytest.mark.parametrize("size", ["b", "h", "w"])
def test_sign_extending_loads(size):
    n = NBYTES[size]
    body = asm(stx("dw", 10, 7, -8), ldx(size, 7, 10, -8, sx=True))
    check(harness(body), [(a, 0) for a in VALUES], lambda a, _b: s(a & ((1 << 8 * n) - 1), 8 * n) & M64)


@pytest.mark.parametrize("size", ["b", "h", "w", "dw"])
def test_store_immediate_and_register(size):
    n = NBYTES[size]
    mask = (1 << 8 * n) - 1
    body = asm(st("dw", 10, -8, -1), st(size, 10, -8, -0x1235), ldx("dw", 7, 10, -8))
    check(harness(body), [(0, 0)], lambda a, b: (M64 & ~mask) | (-0x1235 & mask))
    body = asm(stx("dw", 10, 8, -8), stx(size, 10, 7, -8), ldx("dw", 7, 10, -8))
    check(harness(body), [(0x1122334455667788, 0xFFFFFFFFFFFFFFFF)], lambda a, b: (b & ~mask) | (a & mask))


def test_stack_through_a_pointer_register():
    # A pointer copied from r10 and moved around, as clang does for buffers.
    body = asm(mov(3, 10), alu("add", 3, imm=-64), stx("dw", 3, 7, 8), ldx("dw", 7, 10, -56))
    check(harness(body), [(0xABCDEF, 0)], lambda a, b: a)


@pytest.mark.parametrize(
    "op,fetch_name",
    [
        (0x00, "add"),
        (0x40, "or"),
        (0x50, "and"),
        (0xA0, "xor"),
    ],
)
@pytest.mark.parametrize("size", ["w", "dw"])
def test_atomics(op, fetch_name, size):
    n = NBYTES[size]
    mask = (1 << 8 * n) - 1
    f = {
        "add": lambda x, y: (x + y) & mask,
        "or": lambda x, y: x | y,
        "and": lambda x, y: x & y,
        "xor": lambda x, y: x ^ y,
    }[fetch_name]
    pairs = [(0x1122334455667788, 0xF0F0F0F0F0F0F0F0), (M64, 1), (0, 0)]
    # Memory after the operation.
    body = asm(stx("dw", 10, 7, -8), atomic(size, 10, 8, -8, op), ldx("dw", 7, 10, -8))
    check(harness(body), pairs, lambda a, b: (a & ~mask) | f(a & mask, b & mask))
    # With BPF_FETCH, the old value lands in the source register (zero-extended).
    body = asm(stx("dw", 10, 7, -8), atomic(size, 10, 8, -8, op | 1), mov(7, 8))
    check(harness(body), pairs, lambda a, b: a & mask)


@pytest.mark.parametrize("size", ["w", "dw"])
def test_xchg_and_cmpxchg(size):
    n = NBYTES[size]
    mask = (1 << 8 * n) - 1
    pairs = [(0x1122334455667788, 0xAABBCCDD00112233)]
    body = asm(stx("dw", 10, 7, -8), atomic(size, 10, 8, -8, 0xE1), ldx("dw", 7, 10, -8))
    check(harness(body), pairs, lambda a, b: (a & ~mask) | (b & mask))
    body = asm(stx("dw", 10, 7, -8), atomic(size, 10, 8, -8, 0xE1), mov(7, 8))
    check(harness(body), pairs, lambda a, b: a & mask)
    # cmpxchg: r0 == memory -> store; r0 gets the old value either way.
    for r0_matches in (True, False):
        setup = mov(0, 7) if r0_matches else mov(0, imm=5)
        body = asm(stx("dw", 10, 7, -8), setup, atomic(size, 10, 8, -8, 0xF1), ldx("dw", 7, 10, -8))
        check(harness(body), pairs, lambda a, b, hit=r0_matches: (a & ~mask) | (b & mask) if hit else a)
        body = asm(stx("dw", 10, 7, -8), setup, atomic(size, 10, 8, -8, 0xF1), mov(7, 0))
        check(harness(body), pairs, lambda a, b: a & mask)


@pytest.mark.parametrize("size", ["b", "h", "w", "dw"])
def test_load_acquire_store_release(size):
    mask = (1 << 8 * NBYTES[size]) - 1
    body = asm(
        st("dw", 10, -8, 0),
        atomic(size, 10, 7, -8, 0x110),  # store_release
        atomic(size, 7, 10, -8, 0x100),
    )  # load_acquire
    check(harness(body), [(0x1122334455667788, 0), (M64, 0)], lambda a, b: a & mask)


# --- random programs: straight-line ALU and forward jumps ------------------------


def _random_program(rng) -> tuple[bytes, object]:
    """A random program over r2..r6 (seeded from A and B) and its Python model."""
    regs = [2, 3, 4, 5, 6]
    body = [mov(2, 7), mov(3, 8), lddw(4, rng.getrandbits(64)), mov(5, imm=rng.randrange(-99, 99)), mov(6, imm=0)]
    steps = []
    for _ in range(rng.randrange(4, 24)):
        w64 = rng.random() < 0.6
        bits = 64 if w64 else 32
        dst = rng.choice(regs)
        kind = rng.random()
        if kind < 0.15:  # a conditional jump over the ALU op that follows
            op = rng.choice(list(JMP_OPS))
            w32 = rng.random() < 0.4
            src = rng.choice(regs)
            body.append(jmp(op, rng.choice(regs), src, off=1, w32=w32))
            steps.append(("jmp", op, w32, body[-1][1] & 0xF, src))
        op = rng.choice([*BINARY_OPS, "neg", "sdiv", "smod"])
        signed = op in ("sdiv", "smod")
        base = {"sdiv": "div", "smod": "mod"}.get(op, op)
        use_x = op != "neg" and rng.random() < 0.6
        if use_x:
            src = rng.choice(regs)
            body.append(alu(base, dst, src, w64=w64, off=int(signed)))
            steps.append(("alu", base, w64, signed, dst, ("r", src)))
        else:
            if op == "neg":
                imm = 0
            elif base in ("lsh", "rsh", "arsh"):
                imm = rng.randrange(bits)
            else:
                imm = rng.choice([rng.randrange(-(2**31), 2**31), rng.randrange(-9, 9) or 1])
            body.append(alu(base, dst, imm=imm, w64=w64, off=int(signed)))
            steps.append(("alu", base, w64, signed, dst, ("k", imm)))
    body.append(mov(7, 2))
    for r in regs[1:]:
        body.append(alu("xor", 7, r))
    init = [body[2], body[3]]

    def model(a: int, b: int) -> int:
        r = {
            2: a,
            3: b,
            4: int.from_bytes(init[0][4:8] + init[0][12:16], "little"),
            5: struct.unpack("<i", init[1][4:8])[0] & M64,
            6: 0,
        }
        skip = False
        for step in steps:
            if skip:
                skip = False
                continue
            if step[0] == "jmp":
                _, op, w32, dst, src = step
                skip = bool(jmp_model(op, w32)(r[dst], r[src]))
                continue
            _, base, w64, signed, dst, (kind, v) = step
            operand = r[v] if kind == "r" else v & M64
            r[dst] = alu_model(base, w64, signed)(r[dst], operand)
        out = r[2]
        for reg in regs[1:]:
            out ^= r[reg]
        return out

    return asm(*body), model


def test_random_programs_match_the_model_and_the_kernel():
    import random

    rng = random.Random(20240605)
    pairs = [(rng.getrandbits(64), rng.getrandbits(64)) for _ in range(6)] + [(0, 0), (M64, 1)]
    for _ in range(150):
        body, model = _random_program(rng)
        check(harness(body), pairs, model)


# --- packet access -----------------------------------------------------------


def test_legacy_packet_loads_read_from_the_network_header():
    frame = eth(0x0800, bytes(range(1, 47)), pad=False)  # data = 01 02 03 ...
    for size, n in (("b", 1), ("h", 2), ("w", 4)):
        for k in (0, 1, 5, len(frame) - 14 - n):
            want = int.from_bytes(frame[14 + k : 14 + k + n], "big")
            insns = asm(mov(6, 1), ld_abs(size, k), EXIT)
            assert Program(insns).run(frame, kernel_view()) == want
            k_, _ = kernel_oracle()
            if k_:
                assert k_.runs(insns, [(frame, None)]) == [want]


def test_legacy_word_loads_are_zero_extended():
    frame = eth(0x0800, b"\xff" * 46, pad=False)
    # r0 = word; 5 if its high half is not 0, else the word.
    insns = asm(
        mov(6, 1), ld_abs("w", 0), mov(7, 0), alu("rsh", 7, imm=32), jmp("jeq", 7, imm=0, off=1), mov(0, imm=5), EXIT
    )
    assert Program(insns).execute(frame, kernel_view()) == 0xFFFFFFFF
    k, _ = kernel_oracle()
    if k:
        assert k.runs(insns, [(frame, None)]) == [0xFFFFFFFF]


def test_legacy_packet_loads_out_of_bounds_return_zero():
    frame = eth(0x0800, bytes(range(1, 47)), pad=False)
    n_data = len(frame) - 14
    cases = [
        asm(mov(6, 1), mov(0, imm=9), ld_abs("w", n_data - 3), mov(0, imm=7), EXIT),
        asm(mov(6, 1), mov(7, imm=n_data), ld_ind("b", 7, 0), mov(0, imm=7), EXIT),
        asm(mov(6, 1), mov(7, imm=-1), ld_ind("b", 7, 0), mov(0, imm=7), EXIT),  # offset -1
        asm(mov(6, 1), ld_abs("h", -0x300000), mov(0, imm=7), EXIT),  # below SKF_LL_OFF
    ]
    for insns in cases:
        assert Program(insns).run(frame, kernel_view()) == 0
        k, _ = kernel_oracle()
        if k:
            assert k.runs(insns, [(frame, None)]) == [0]


def test_legacy_packet_loads_relative_to_the_mac_and_network_headers():
    frame = eth(0x0800, bytes(range(1, 47)), pad=False)
    cases = {
        asm(mov(6, 1), ld_abs("h", -0x200000 + 12), EXIT): 0x0800,  # SKF_LL_OFF
        asm(mov(6, 1), ld_abs("w", -0x200000), EXIT): int.from_bytes(MAC_DST[:4], "big"),
        asm(mov(6, 1), ld_abs("b", -0x100000 + 3), EXIT): 4,  # SKF_NET_OFF
        asm(mov(6, 1), mov(7, imm=-0x100000), ld_ind("h", 7, 10), EXIT): 0x0B0C,
        asm(mov(6, 1), mov(7, imm=6), ld_ind("w", 7, 2), EXIT): 0x090A0B0C,
    }
    for insns, want in cases.items():
        assert Program(insns).run(frame, kernel_view()) == want
        k, _ = kernel_oracle()
        if k:
            assert k.runs(insns, [(frame, None)]) == [want]


def _load_bytes_prog(helper: int, offset: int, length: int, start: int | None = None) -> bytes:
    """bpf_skb_load_bytes[_relative](skb, offset, fp-8, length[, start]) -> r7 =
    the error code in the high half, the first 4 bytes read in the low half."""
    return harness(
        st("dw", 10, -8, -1),
        mov(1, 6),
        mov(2, imm=offset),
        mov(3, 10),
        alu("add", 3, imm=-8),
        mov(4, imm=length),
        *([mov(5, imm=start)] if start is not None else []),
        call(helper),
        mov(7, 0),
        alu("lsh", 7, imm=32),
        ldx("w", 2, 10, -8),
        alu("or", 7, 2),
    )


@pytest.mark.parametrize(
    "helper,start,base", [(26, None, 14), (68, 0, 0), (68, 1, 14)], ids=["load_bytes", "relative_mac", "relative_net"]
)
def test_skb_load_bytes_helpers(helper, start, base):
    frame = eth(0x0800, bytes(range(1, 47)), pad=False)
    for offset, length in (
        (0, 4),
        (3, 4),
        (len(frame) - base - 4, 4),
        (len(frame) - base - 2, 4),
        (0x10000, 4),
        (1, 2),
    ):
        insns = asm(mov(6, 1)) + _load_bytes_prog(helper, offset, length, start)
        ok = base + offset + length <= len(frame) and offset <= 0xFFFF
        if ok:
            got = frame[base + offset : base + offset + length] + b"\xff" * (4 - length)
            want = int.from_bytes(got[:4], "little")
        else:
            want = (-14 & M32) << 32  # -EFAULT, the buffer zeroed
        prog = Program(insns)
        assert prog.execute(frame, kernel_view()) == want, (offset, length)
        k, _ = kernel_oracle()
        if k:
            lo, hi = k.runs(insns, [(frame, ctx_bytes(kernel_view(cb=(0, 0, 0, 0, s)))) for s in (0, 1)])
            assert lo | hi << 32 == want, (offset, length)


def test_load_bytes_relative_with_a_bad_start_header_fails():
    frame = FRAMES["udp53"]
    insns = asm(mov(6, 1)) + _load_bytes_prog(68, 0, 4, 7)
    assert Program(insns).execute(frame, kernel_view()) == (-14 & M32) << 32
    k, _ = kernel_oracle()
    if k:
        lo, hi = k.runs(insns, [(frame, ctx_bytes(kernel_view(cb=(0, 0, 0, 0, s)))) for s in (0, 1)])
        assert lo | hi << 32 == (-14 & M32) << 32


# --- the context ----------------------------------------------------------------

CTX_FIELDS = dict(SK_BUFF_FIELDS)
CTX_FRAMES = ["udp53", "vlan42_udp53", "arp", "ipv6", "llc", "udp_truncated"]


def test_context_fields_match_the_kernel():
    unicast_to_lo = bytes(6) + FRAMES["udp53"][6:]
    raw_8023 = eth(0x0030, b"\xff\xff" + bytes(44))
    frames = [FRAMES[f] for f in CTX_FRAMES] + [unicast_to_lo, raw_8023]
    fields = dict(
        mark=0xDEADBEEF, priority=6, ingress_ifindex=4, cb=(0x01020304, 5, 6, 7, 0xFFFFFFFF), gso_segs=3, gso_size=1400
    )
    # BPF_PROG_TEST_RUN receives on the loopback device, whose MAC and
    # broadcast address are both 00:00:00:00:00:00: ff:ff:ff:ff:ff:ff is mere
    # multicast there (a real NIC says PACKET_BROADCAST, see below).
    skbs = [kernel_view(pkt_type=0 if fr[:6] == bytes(6) else 2 if fr[0] & 1 else 3, **fields) for fr in frames]
    reads = [(name, off, 4) for name, off in CTX_FIELDS.items()]
    reads += [
        (f"{name}+{i}/{n}", off + i, n)
        for name, off in (
            ("len", 0),
            ("protocol", 16),
            ("mark", 8),
            ("pkt_type", 4),
            ("cb0", 48),
            ("ifindex", 40),
            ("queue_mapping", 12),
            ("gso_size", 176),
            ("gso_segs", 164),
            ("vlan_present", 20),
        )
        for n in (1, 2)
        for i in range(0, 4, n)
    ]
    reads += [("cb0/dw", 48, 8), ("cb2/dw", 56, 8)]
    size_names = {1: "b", 2: "h", 4: "w", 8: "dw"}
    k, _ = kernel_oracle()
    for name, off, n in reads:
        insns = asm(ldx(size_names[n], 0, 1, off), EXIT)
        got = [Program(insns).run(fr, skb) for fr, skb in zip(frames, skbs, strict=True)]
        # Hand expectations for the fields the kernel derives from the frame.
        if name == "protocol":
            assert got[:5] == [0x0008, 0x0081, 0x0608, 0xDD86, 0x0400]  # __be16
            assert got[6:] == [0x0008, 0x0100]  # IPv4, raw 802.3 (ETH_P_802_3)
        if name == "pkt_type":
            assert got[:4] == [3, 3, 2, 2] and got[6] == 0
        if name == "len":
            assert got == [len(fr) - 14 for fr in frames]
        # Narrow reads: shifted out of 4-byte members, whole 1/2-byte members.
        if name == "len+1/1":
            assert got == [(len(fr) - 14) >> 8 & 0xFF for fr in frames]
        if name == "protocol+2/2":
            assert got[0] == 0x0008
        if name == "protocol+1/1":
            assert got[0] == 0x00 and got[2] == 0x06
        if name == "pkt_type+3/1":
            assert got[0] == 3
        if k:
            assert k.runs(insns, [(fr, ctx_bytes(skb)) for fr, skb in zip(frames, skbs, strict=True)]) == got, name


def test_cb_is_writable_and_other_fields_are_not():
    body = asm(mov(2, imm=77), stx("w", 1, 2, 52), ldx("w", 0, 1, 52), EXIT)
    assert Program(body).run(FRAMES["udp53"], SkbContext()) == 77
    k, _ = kernel_oracle()
    if k:
        assert k.runs(body, [(FRAMES["udp53"], None)]) == [77]
    for bad in (
        asm(mov(2, imm=1), stx("w", 1, 2, 8), mov(0, imm=0), EXIT),  # write mark
        asm(ldx("w", 0, 1, 76), EXIT),  # data
        asm(ldx("w", 0, 1, 80), EXIT),  # data_end
        asm(ldx("w", 0, 1, 72), EXIT),  # tc_classid
        asm(ldx("w", 0, 1, 88), EXIT),  # family
        asm(ldx("w", 0, 1, 160), EXIT),  # wire_len
        asm(ldx("dw", 0, 1, 152), EXIT),  # tstamp
        asm(ldx("dw", 0, 1, 0), EXIT),  # 8 bytes of len
        asm(ldx("h", 0, 1, 1), EXIT),  # misaligned
        asm(ldx("dw", 0, 1, 64), EXIT),  # overruns cb[]
        asm(ldx("w", 0, 1, 192), EXIT),  # past the end
    ):
        with pytest.raises(EbpfError) as exc:
            Program(bad).run(FRAMES["udp53"], SkbContext())
        assert exc.value.insn in (0, 1)
        if k:
            assert k.refuses(bad)


def test_skb_sk_is_unsupported():
    with pytest.raises(UnsupportedError, match="sk"):
        Program(asm(ldx("dw", 0, 1, 168), EXIT)).run(FRAMES["udp53"])


# --- calls ------------------------------------------------------------------------


def test_bpf_to_bpf_calls_keep_callee_saved_registers_and_frames():
    # main: r6 = 10; *(fp-8) = 1; r1 = 5; call sub; r0 += r6 + *(fp-8); exit
    # sub:  r6 = 100; *(fp-8) = 1000 (its own frame); r0 = r1 * 2; exit
    main = asm(
        mov(6, imm=10),
        st("dw", 10, -8, 1),
        mov(1, imm=5),
        call(4, src=1),
        alu("add", 0, 6),
        ldx("dw", 2, 10, -8),
        alu("add", 0, 2),
        EXIT,
    )
    sub = asm(mov(6, imm=100), st("dw", 10, -8, 1000), mov(0, 1), alu("mul", 0, imm=2), EXIT)
    insns = main + sub
    assert Program(insns).run(FRAMES["udp53"]) == 10 + 10 + 1
    k, _ = kernel_oracle()
    if k:
        assert k.runs(insns, [(FRAMES["udp53"], None)]) == [21]


def test_recursion_hits_the_call_depth_limit():
    with pytest.raises(EbpfError, match="deeper than 8"):
        Program(asm(call(-1, src=1), EXIT)).run(FRAMES["udp53"])


# --- helpers --------------------------------------------------------------------------


def test_prandom_is_deterministic_and_seedable():
    insns = asm(call(7), EXIT)
    a = Program(insns, seed=42)
    b = Program(insns, seed=42)
    seq_a = [a.run(FRAMES["udp53"]) for _ in range(5)]
    assert seq_a == [b.run(FRAMES["udp53"]) for _ in range(5)]
    assert len(set(seq_a)) > 1
    a.reseed(42)
    assert [a.run(FRAMES["udp53"]) for _ in range(5)] == seq_a
    assert Program(insns, seed=1).run(FRAMES["udp53"]) != seq_a[0]


def test_time_cpu_numa_cookie_uid_helpers():
    frame = FRAMES["udp53"]
    assert Program(asm(call(5), EXIT), clock=lambda: 0x1_0000_0005).execute(frame) == 0x1_0000_0005
    assert Program(asm(call(125), EXIT), clock=lambda: 77).run(frame) == 77
    assert Program(asm(call(8), EXIT), cpu=1).run(frame) == 1
    assert Program(asm(call(42), EXIT)).run(frame) == 0
    assert Program(asm(call(46), EXIT)).run(frame) == 0
    assert Program(asm(call(46), EXIT)).execute(frame, SkbContext(socket_cookie=1 << 40)) == 1 << 40
    assert Program(asm(call(47), EXIT)).run(frame) == 65534
    t0 = time.monotonic_ns()
    assert Program(asm(call(5), EXIT)).execute(frame) >= t0


# ==========================================================================
# Errors
# ==========================================================================


@pytest.mark.parametrize(
    "func,what",
    [
        (12, "not supported"),  # bpf_tail_call: no program arrays
        (120, "not supported"),  # bpf_get_ns_current_pid_tgid
        (9, "not supported"),
        (100000, "invalid helper"),
    ],
)
def test_unsupported_helpers_are_refused_at_decode(func, what):
    insns = asm(mov(0, imm=0), mov(0, imm=0), call(func), EXIT)
    with pytest.raises(EbpfError, match=what) as exc:
        Program(insns)
    assert exc.value.insn == 2
    if func != 100000:
        assert isinstance(exc.value, UnsupportedError)


def test_kernel_variables_and_kfuncs_are_unsupported():
    with pytest.raises(UnsupportedError, match="BTF id") as exc:
        Program(asm(lddw(1, 3, src=3), EXIT))
    assert exc.value.insn == 0
    with pytest.raises(UnsupportedError, match="kfunc"):
        Program(asm(call(1234, src=2), EXIT))


@pytest.mark.parametrize(
    "insns,insn,message",
    [
        (asm(stx("dw", 10, 1, -520), EXIT), 0, "invalid stack access"),
        (asm(stx("dw", 10, 1, 0), EXIT), 0, "invalid stack access"),
        (asm(ldx("w", 0, 10, -6), EXIT), 0, "misaligned stack access"),
        (asm(mov(0, imm=0), jmp("jeq", 0, imm=0, off=5), EXIT), 1, "jump out of range"),
        (asm(ja(-2), EXIT), 0, "jump out of range"),
        (asm(jmp("jeq", 0, imm=0, off=1), lddw(0, 1), EXIT), 0, "middle of lddw"),
        (asm(bpf_insn(0xB7, 11, 0, 0, 1), EXIT), 0, "invalid register r11"),
        (asm(mov(10, imm=1), EXIT), 0, "frame pointer r10 is read only"),
        (asm(mov(0, imm=1)), 0, "falls off its end"),
        (asm(mov(0, imm=1), jmp("jeq", 0, imm=0, off=-2)), 1, "falls off its end"),
        (asm(bpf_insn(0xFF), EXIT), 0, "opcode"),
        (asm(alu("div", 0, imm=0), EXIT), 0, "division by zero"),
        (asm(alu("mod", 0, imm=0, w64=False), EXIT), 0, "division by zero"),
        (asm(alu("lsh", 0, imm=64), EXIT), 0, "invalid shift 64"),
        (asm(alu("rsh", 0, imm=32, w64=False), EXIT), 0, "invalid shift 32"),
        (asm(alu("arsh", 0, imm=-1), EXIT), 0, "invalid shift -1"),
        (asm(bpf_insn(0x18, 0, 0, 0, 1)), 0, "lddw is missing its second half"),
    ],
)
def test_invalid_programs_are_refused_at_decode(insns, insn, message):
    with pytest.raises(EbpfError, match=message) as exc:
        Program(insns)
    assert exc.value.insn == insn
    assert f"insn {insn}" in str(exc.value)
    k, _ = kernel_oracle()
    if k:
        assert k.refuses(insns)


@pytest.mark.parametrize(
    "insns,insn,message",
    [
        (asm(mov(2, 10), alu("add", 2, imm=-520), st("dw", 2, 0, 1), mov(0, imm=0), EXIT), 2, "outside the stack"),
        (asm(mov(2, 10), alu("add", 2, imm=-7), ldx("w", 0, 2, 0), EXIT), 2, "misaligned stack"),
        (asm(mov(2, imm=0), ldx("w", 0, 2, 0), EXIT), 1, "not a stack, context or map pointer"),
        (asm(mov(6, imm=0), ld_abs("b", 0), EXIT), 1, "needs the context"),
        (
            asm(mov(1, imm=0), mov(2, imm=0), mov(3, 10), alu("add", 3, imm=-8), mov(4, imm=8), call(26), EXIT),
            5,
            "expects the context",
        ),
        (
            asm(mov(1, 1), mov(2, imm=0), mov(3, 10), alu("add", 3, imm=-4), mov(4, imm=8), call(26), EXIT),
            5,
            "not within the stack",
        ),
    ],
)
def test_run_time_errors_carry_the_insn_index(insns, insn, message):
    prog = Program(insns)
    with pytest.raises(EbpfError, match=message) as exc:
        prog.run(FRAMES["udp53"])
    assert exc.value.insn == insn
    k, _ = kernel_oracle()
    if k:
        assert k.refuses(insns)


def test_endless_loop_exhausts_the_budget():
    insns = asm(mov(0, imm=0), alu("add", 0, imm=1), ja(-2), EXIT)
    with pytest.raises(BudgetExceededError, match="budget of 1000000") as exc:
        Program(insns).run(FRAMES["udp53"])
    assert exc.value.insn == 1
    with pytest.raises(BudgetExceededError, match="budget of 500"):
        Program(insns, budget=500).run(FRAMES["udp53"])
    k, _ = kernel_oracle()
    if k:
        assert k.refuses(insns)


def test_bounded_loop_within_budget():
    loop = asm(
        mov(0, imm=0), mov(1, imm=1000), alu("add", 0, imm=1), alu("sub", 1, imm=1), jmp("jne", 1, imm=0, off=-3), EXIT
    )
    assert Program(loop).run(FRAMES["udp53"]) == 1000
    with pytest.raises(BudgetExceededError):
        Program(loop, budget=2000).run(FRAMES["udp53"])


def test_bad_sizes_and_frames():
    with pytest.raises(EbpfError, match="multiple of 8"):
        Program(b"\x95" * 12)
    with pytest.raises(EbpfError, match="empty"):
        Program(b"")
    with pytest.raises(ValueError, match="no Ethernet header"):
        Program(asm(mov(0, imm=0), EXIT)).run(b"\0" * 13)


# ==========================================================================
# SkbContext
# ==========================================================================


def test_for_frame_offloads_the_outer_vlan_tag():
    frame = FRAMES["vlan42_prio_udp9"]
    skb = SkbContext.for_frame(frame, ifindex=3)
    assert (skb.vlan_present, skb.vlan_tci, skb.vlan_proto) == (1, 0xA000 | 42, 0x8100)
    assert (skb.protocol, skb.len, skb.ifindex, skb.vlan_offloaded) == (0x0800, len(frame) - 18, 3, True)
    # The program sees the untagged frame: network header right after the MAC addresses.
    assert Program(asm(mov(6, 1), ld_abs("b", 0), EXIT)).run(frame, skb) == 0x45
    qinq = SkbContext.for_frame(FRAMES["qinq_42_43"])
    assert (qinq.vlan_tci, qinq.vlan_proto, qinq.protocol) == (42, 0x88A8, 0x8100)
    plain = SkbContext.for_frame(frame, vlan_offload=False)
    assert (plain.vlan_present, plain.protocol, plain.len) == (0, 0x8100, len(frame) - 14)


def test_for_frame_vlan_argument():
    untagged = FRAMES["udp53"]
    skb = SkbContext.for_frame(untagged, vlan=42)  # the NIC already stripped the tag
    assert (skb.vlan_present, skb.vlan_tci, skb.vlan_proto, skb.vlan_offloaded) == (1, 42, 0x8100, False)
    assert SkbContext.for_frame(FRAMES["vlan42_udp53"], vlan=42).vlan_tci == 42
    with pytest.raises(ValueError, match="tagged with VLAN 42"):
        SkbContext.for_frame(FRAMES["vlan42_udp53"], vlan=43)
    assert SkbContext.for_frame(untagged, vlan=None).vlan_present == 0


def test_pkt_type_and_protocol_derivation():
    f = FRAMES["udp53"]
    assert SkbContext.for_frame(f).pkt_type == 0  # unicast: the NIC filtered for us
    assert SkbContext.for_frame(f, dev_addr=bytes(6)).pkt_type == 3
    assert SkbContext.for_frame(f, dev_addr=MAC_DST).pkt_type == 0
    assert SkbContext.for_frame(FRAMES["arp"]).pkt_type == 1
    assert SkbContext.for_frame(FRAMES["ipv6"]).pkt_type == 2
    assert SkbContext.for_frame(FRAMES["llc"]).protocol == 0x0004


def test_default_context_is_the_nic_view():
    prog = Program(asm(ldx("w", 0, 1, 20), EXIT))  # vlan_present
    assert prog.run(FRAMES["vlan42_udp53"]) == 1
    assert prog.run(FRAMES["vlan42_udp53"], SkbContext()) == 0


def test_disassembly_in_messages():
    with pytest.raises(EbpfError) as exc:
        Program(asm(mov(2, imm=0), ldx("w", 0, 2, 4), EXIT)).run(FRAMES["udp53"])
    assert "insn 1 (r0 = *(u32 *)(r2 + 4))" in str(exc.value)


# ==========================================================================
# Speed
# ==========================================================================


@needs_clang
@pytest.mark.parametrize("name", ["accept_vlan42", "drop_udp9"])
def test_typical_filters_run_at_least_20000_times_a_second(objects, name):
    prog = Program.from_object(objects[name], f"{name}.o")
    frames = [(fr, SkbContext.for_frame(fr)) for fr in FRAMES.values()]
    n = 0
    t0 = time.perf_counter()
    while n < 20000:
        for fr, skb in frames:
            prog.run(fr, skb)
        n += len(frames)
    rate = n / (time.perf_counter() - t0)
    assert rate >= 20000, f"{name}: {rate:.0f} runs/s"
