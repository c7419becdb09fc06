"""The map-less BPF helpers a socket filter calls, against the kernel.

* the helper table (:data:`SOCKET_FILTER_HELPERS`) against this machine's
  ``<linux/bpf.h>`` (which helper id is which; granted-vs-kernel is
  test_ebpf_verifier.py's ``test_the_granted_helpers_are_the_kernels``);
* bpf_trace_printk(): return values of the kernel's BPF_PROG_TEST_RUN, the
  text it writes to the trace buffer when a tracefs is mounted (else the
  hand-written expectations alone, measured on Linux 6.18), the trace_pipe line;
* C filters built with clang: 802.1Q/802.1ad parsing with bpf_printk() on
  the error paths, and one calling every other implemented helper;
* end to end: ``evl net -F`` installs a bpf_printk() filter, ``evl sim rx``
  runs it, ``evl sim log`` shows the line.
"""

from __future__ import annotations

import pathlib
import re
import secrets
import struct
import time

import pytest

import bpf_build
from evl_net.kernel import bpfobj
from evl_net.transports.sim.ebpf import Program, SkbContext, verify
from evl_net.transports.sim.ebpf.helpers import HELPERS, SOCKET_FILTER_HELPERS, trace_line
from evl_net.transports.sim.traffic import run_filter
from test_ebpf_verifier import ours
from test_ebpf_vm import (
    EXIT,
    FRAMES,
    MAC_DST,
    MAC_SRC,
    alu,
    asm,
    call,
    ctx_bytes,
    ipv4,
    kernel_oracle,
    kernel_view,
    lddw,
    mov,
    stx,
    udp,
)

M64 = (1 << 64) - 1
EINVAL_U32 = (-22) & 0xFFFFFFFF
DROP, ACCEPT, SKIP, VLAN = 0, 1, 2, 3

needs_clang = pytest.mark.skipif(
    not bpf_build.have_clang(),
    reason="clang with the BPF target and libbpf headers (libbpf-dev) are needed to build tests/bpf/*.c",
)


@pytest.fixture(scope="module")
def kernel():
    k, why = kernel_oracle()
    if k is None:
        pytest.skip(why)
    return k


# ==========================================================================
# The helper table against <linux/bpf.h>
# ==========================================================================

BPF_H = pathlib.Path("/usr/include/linux/bpf.h")


def header_helpers() -> dict[int, str]:
    """id -> name from the FN() list of __BPF_FUNC_MAPPER (ids explicit since 6.1, positions before)."""
    text = BPF_H.read_text()
    m = re.search(r"#define _{2,3}BPF_FUNC_MAPPER\(FN(?:, ctx\.\.\.)?\)\s*\\\n((?:.*\\\n)*.*\n)", text)
    assert m is not None, "no __BPF_FUNC_MAPPER in <linux/bpf.h>"
    entries = re.findall(r"FN\((\w+)(?:,\s*(\d+))?", m.group(1))
    return {int(i) if i else k: name for k, (name, i) in enumerate(entries)}


@pytest.fixture(scope="module")
def uapi() -> dict[int, str]:
    if not BPF_H.exists():
        pytest.skip("no <linux/bpf.h> on this machine (linux-libc-dev)")
    return header_helpers()


def test_every_helper_of_the_table_is_the_headers_by_id_and_name(uapi):
    newest = max(uapi)
    for func_id, proto in SOCKET_FILTER_HELPERS.items():
        if func_id > newest:  # the headers are older than Linux 6.18: their list stops before
            continue
        assert uapi.get(func_id) == proto.name, (func_id, proto.name, uapi.get(func_id))
    assert set(range(newest + 1)) == set(uapi), "the header's ids are not 0..N"


def test_every_other_helper_of_the_header_is_refused_as_not_granted(uapi):
    for func_id in sorted(set(uapi) - set(SOCKET_FILTER_HELPERS) - {0}):
        exc = ours(asm(call(func_id), mov(0, imm=0), EXIT))
        assert exc is not None and "program of this type cannot use helper" in str(exc), (func_id, exc)


def test_the_implemented_helpers():
    maps = {1, 2, 3, 130, 131, 132, 133, 134, 164, 195}
    printing = {6, 165, 177}
    others = {5, 7, 8, 26, 42, 46, 47, 68, 118, 125, 160, 181, 208}
    task_and_strings = {14, 15, 16, 35, 80, 105, 106, 112, 113, 114, 115, 123, 182}
    assert set(HELPERS) == maps | printing | others | task_and_strings
    for func_id, proto in SOCKET_FILTER_HELPERS.items():
        assert (proto.fn is None) == (proto.args is None or func_id in (87, 88, 89)), func_id


# ==========================================================================
# bpf_trace_printk
# ==========================================================================

FP = "fp"  # an argument pointing at the format itself, on the stack


def printk_prog(fmt: bytes, args: tuple = (0, 0, 0), size: int | None = None) -> bytes:
    """Copy fmt to the stack, call bpf_trace_printk(fmt, size, *args) and return its r0."""
    buf = fmt.ljust((len(fmt) + 7) // 8 * 8, b"\0")
    n = len(buf)
    code = []
    for k in range(0, n, 8):
        code += [lddw(1, int.from_bytes(buf[k : k + 8], "little")), stx("dw", 10, 1, -n + k)]
    for i, v in enumerate(args):
        code += [mov(3 + i, 10), alu("add", 3 + i, imm=-n)] if v == FP else [lddw(3 + i, v)]
    size = n if size is None else size
    return asm(*code, mov(1, 10), alu("add", 1, imm=-n), mov(2, imm=size), call(6), EXIT)


# format, args, what bpf_trace_printk() writes (None: -EINVAL), as Linux 6.18 writes it.
PRINTK = {
    "ints": (b"hello %d %u %x\n", (-5 & M64, 7, 255), "hello -5 7 ff\n"),
    "width": (b"w %5d|%-4x|%08X|", (42, 255, 0xABC), "w    42|ff  |00000ABC|"),
    "sign flags": (b"s % d|%+d|%lld", (42, -3 & M64, -(2**40) & M64), "s  42|-3|-1099511627776"),
    "longs": (b"l %ld %lu %llx", (-5 & M64, -5 & M64, 2**63 + 5), "l -5 18446744073709551611 8000000000000005"),
    "32-bit truncation": (b"u %u %x %X", (M64, M64, 2**32 + 10), "u 4294967295 ffffffff A"),
    "signed": (b"d %d %i %lli", (2**31, M64, 2**63), "d -2147483648 -1 -9223372036854775808"),
    "zero flags": (b"z %0d %05d %-05d", (1, 2, 3), "z 1 00002 3    "),
    "chars": (b"c %c%c %%", (65, 66, 0), "c AB %"),
    "string": (b"s %s|", (FP, 0, 0), "s s %s||"),
    "bad string pointer": (b"l %lX %i %s|", (0xDEADBEEFCAFE, 0x80000000, 0x1234), "l DEADBEEFCAFE -2147483648 |"),
    "padded strings": (b"%-5s|%5s|%3c", (FP, FP, 65), "%-5s|%5s|%3c|%-5s|%5s|%3c|  A"),
    "ipv4": (b"ip %pI4 %pi4", (FP, FP, 0), "ip 105.112.32.37 105.112.032.037"),
    "ipv6": (
        b"i6 %pI6 %pi6",
        (FP, FP, 0),
        "i6 6936:2025:7049:3620:2570:6936:0000:0000 69362025704936202570693600000000",
    ),
    "ipv4 width": (b"q %10pI4", (FP, 0, 0), "q 113.32.37.49"),
    "pointers": (b"p %px %p", (0x1234, 0, 0), "p 0000000000001234 0000000000000000"),
    "kernel strings, symbols": (
        b"k %pks|%pB|%ps",
        (FP, 0xFFFFFFFF81000000, 0),
        "k k %pks|%pB|%ps|0xffffffff81000000|0x0",
    ),
    "newlines": (b"t\ta\n b", (0, 0, 0), "t\ta\n b"),
    "no conversion": (b"nonul", (0, 0, 0), "nonul"),
    "float": (b"bad %f", (1, 2, 3), None),
    "four conversions": (b"four %d %d %d %d", (1, 2, 3), None),
    "five with longs": (b"l %ld %lu %lld %llx %lX", (1, 2, 3), None),
    "short": (b"h %hd", (1, 0, 0), None),
    "percent width": (b"pct %5%", (1, 0, 0), None),
    "pointer kind": (b"pa %pa", (1, 0, 0), None),
    "lone percent": (b"e %", (1, 0, 0), None),
    "lone l": (b"e %l", (1, 0, 0), None),
    "lll": (b"e %lll", (1, 0, 0), None),
    "control character": (b"n \x01", (0, 0, 0), None),
}


def _vm_printk(fmt: bytes, args: tuple, **kwargs) -> tuple[int, list[str]]:
    lines: list[str] = []
    ret = Program(printk_prog(fmt + b"\0", args), **kwargs).run(FRAMES["udp53"], trace=lines.append)
    return ret, lines


def _text(lines: list[str]) -> str:
    assert lines[0].startswith("          <idle>-0       [000] ..s11 ")
    return "\n".join([lines[0].split(": bpf_trace_printk: ", 1)[1], *lines[1:]])


@pytest.mark.parametrize("name", list(PRINTK))
def test_trace_printk_formats_as_the_kernel(name):
    fmt, args, expected = PRINTK[name]
    ret, lines = _vm_printk(fmt, args)
    if expected is None:
        assert (ret, lines) == (EINVAL_U32, [])
        return
    assert ret == len(expected)
    assert _text(lines) == expected.removesuffix("\n")


def _tracefs() -> pathlib.Path | None:
    """A mounted tracefs whose trace buffer is readable (the kernel's bpf_trace_printk output)."""
    try:
        mounts = pathlib.Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        fields = line.split()
        if len(fields) > 2 and fields[2] == "tracefs":
            trace = pathlib.Path(fields[1]) / "trace"
            try:
                with trace.open("rb") as f:
                    f.read(1)
            except OSError:
                continue
            return trace
    return None


def test_trace_printk_returns_and_writes_what_the_kernel_does(kernel):
    nonce = secrets.token_hex(4).encode()
    tagged = {name: (nonce + b" " + fmt, args, exp) for name, (fmt, args, exp) in PRINTK.items()}
    got_kernel = {}
    for name, (fmt, args, _) in tagged.items():
        got_kernel[name] = kernel.runs(printk_prog(fmt + b"\0", args), [(FRAMES["udp53"], None)])[0]
    got_vm = {name: _vm_printk(fmt, args)[0] for name, (fmt, args, _) in tagged.items()}
    assert got_vm == got_kernel
    trace = _tracefs()
    if trace is None:
        pytest.skip("no readable tracefs mounted: the text is checked against the hand-written table only")
    time.sleep(0.1)
    written = trace.read_bytes().decode("latin-1").split("\n")
    # Each event is one line of the buffer with the kernel's newline after it: the text's own lines follow.
    kernel_texts = []
    for k, line in enumerate(written):
        if f"bpf_trace_printk: {nonce.decode()} " in line:
            text = line.split(": bpf_trace_printk: ", 1)[1]
            if text.startswith(nonce.decode() + " t\ta"):
                text += "\n" + written[k + 1]
            kernel_texts.append(text)
    vm_texts = []
    for fmt, args, _ in tagged.values():
        lines = _vm_printk(fmt, args)[1]
        if lines:
            vm_texts.append(_text(lines))
    assert vm_texts == kernel_texts[-len(vm_texts) :]


def test_trace_pipe_line():
    prog = Program(printk_prog(b"x=%d\n\0", (7, 0, 0)), clock=lambda: 12_345_678_901_234, cpu=1)
    lines: list[str] = []
    assert prog.run(FRAMES["udp53"], trace=lines.append) == 4
    assert lines == ["          <idle>-0       [001] ..s11 12345.678901: bpf_trace_printk: x=7"]
    assert trace_line("y", 12, 5_000) == "          <idle>-0       [012] ..s11     0.000005: bpf_trace_printk: y"
    assert prog.run(FRAMES["udp53"]) == 4  # no sink: the lines go nowhere


def test_trace_printk_format_without_its_nul_is_refused_at_run_time(kernel):
    insns = printk_prog(b"abcdefgh", size=8)
    assert Program(insns).run(FRAMES["udp53"]) == kernel.runs(insns, [(FRAMES["udp53"], None)])[0] == EINVAL_U32


def test_trace_printk_arguments_are_checked_as_the_kernel_does(kernel):
    zero = asm(mov(1, 10), alu("add", 1, imm=-8), stx("dw", 10, 1, -8), mov(2, imm=0), call(6), EXIT)
    ctx = asm(mov(2, imm=8), call(6), EXIT)
    for insns in (zero, ctx):
        exc = ours(insns)
        assert exc is not None
        with pytest.raises(OSError) as info:
            kernel.load(insns)
        log = info.value.verifier_log.splitlines()  # type: ignore[attr-defined]
        assert str(exc).endswith(": " + log[-2]), (str(exc), log)
    # Root may pass uninitialised stack; r3-r5 are not checked: uninitialised or pointers, both fine.
    uninit = asm(mov(1, 10), alu("add", 1, imm=-8), mov(2, imm=8), call(6), EXIT)
    leak = asm(lddw(1, 0x6425), stx("dw", 10, 1, -8), mov(3, 10), mov(1, 10), alu("add", 1, imm=-8), mov(2, imm=8))
    for insns in (uninit, asm(leak, call(6), EXIT)):
        assert ours(insns) is None
        assert not kernel.refuses(insns)


def test_jiffies64_counts_from_initial_jiffies():
    prog = Program(asm(call(118), EXIT), clock=lambda: 3 * 10**9, hz=250)
    assert prog.execute(FRAMES["udp53"]) == (1 << 32) - 300 * 250 + 750
    assert Program(asm(call(118), EXIT), clock=lambda: 0, hz=1000).execute(FRAMES["udp53"]) == (1 << 32) - 300_000
    assert ours(asm(call(118), EXIT)) is None


# ==========================================================================
# C filters
# ==========================================================================

C_PROGRAMS = ["helpers_vlan_printk", "helpers_misc", "helpers_printk"]


@pytest.fixture(scope="module")
def objects(tmp_path_factory) -> dict[str, bytes]:
    return bpf_build.objects(C_PROGRAMS, tmp_path_factory)


def insns_of(objects, name: str) -> bytes:
    return bpfobj.first_socket_filter(objects[name], f"{name}.o").insns


def tagged(*tags: tuple[int, int], inner: int = 0x0800, payload: bytes | None = None) -> bytes:
    """An Ethernet frame with the given (TPID, TCI) tags, then EtherType inner and payload."""
    body = ipv4(17, udp(53)) if payload is None else payload
    return MAC_DST + MAC_SRC + b"".join(struct.pack("!HH", t, c) for t, c in tags) + struct.pack("!H", inner) + body


VLAN_FRAMES = {
    "untagged": tagged(),
    "vid42": tagged((0x8100, 42)),
    "vid42 pcp5": tagged((0x8100, (5 << 13) | 42)),
    "vid7": tagged((0x8100, 7)),
    "priority tag": tagged((0x8100, 6 << 13)),
    "qinq inner 42": tagged((0x88A8, 100), (0x8100, 42)),
    "qinq inner 7": tagged((0x88A8, 100), (0x8100, 7)),
    "qinq bad inner tpid": tagged((0x88A8, 100), (0x9100, 42)),
    # Shorter than BPF_PROG_TEST_RUN takes (34 bytes): the simulator only.
    "short 802.1Q": MAC_DST + MAC_SRC + b"\x81\x00\x00",
    "short 802.1ad": MAC_DST + MAC_SRC + b"\x88\xa8\x00\x64\x81\x00\x00",
}
#: verdict, bpf_printk() text (None: no line).
VLAN_EXPECTED = {
    "untagged": (SKIP, None),
    "vid42": (ACCEPT, None),
    "vid42 pcp5": (ACCEPT, None),
    "vid7": (VLAN, None),
    "priority tag": (DROP, "vlan: priority tag pcp 6, refused"),
    "qinq inner 42": (ACCEPT, None),
    "qinq inner 7": (VLAN, None),
    "qinq bad inner tpid": (DROP, "qinq: inner tpid 9100 is not 802.1Q"),
    "short 802.1Q": (SKIP, "vlan: short header (-14)"),
    "short 802.1ad": (SKIP, "qinq: short header (-14), len 5"),
}


@needs_clang
@pytest.mark.parametrize("name", C_PROGRAMS)
def test_c_filters_pass_the_verifier(objects, name):
    prog = bpfobj.first_socket_filter(objects[name], f"{name}.o")
    verify(prog.insns, prog.license)


@needs_clang
def test_vlan_filter_verdicts_and_traces(objects):
    prog = Program.from_object(objects["helpers_vlan_printk"], "helpers_vlan_printk.o", clock=lambda: 2_000_000)
    for name, frame in VLAN_FRAMES.items():
        lines: list[str] = []
        verdict = prog.run(frame, kernel_view(), trace=lines.append)
        want, text = VLAN_EXPECTED[name]
        assert verdict == want, name
        expect = (
            [] if text is None else [f"          <idle>-0       [000] ..s11     0.002000: bpf_trace_printk: {text}"]
        )
        assert lines == expect, name


@needs_clang
def test_vlan_filter_verdicts_match_the_kernel_test_run(objects, kernel):
    insns = insns_of(objects, "helpers_vlan_printk")
    prog = Program(insns)
    frames = {n: f for n, f in VLAN_FRAMES.items() if len(f) >= 34}
    view = kernel_view()
    got_kernel = dict(zip(frames, kernel.runs(insns, [(f, ctx_bytes(view)) for f in frames.values()]), strict=True))
    assert {n: prog.run(f, kernel_view()) for n, f in frames.items()} == got_kernel
    assert got_kernel == {n: VLAN_EXPECTED[n][0] for n in frames}
    trace = _tracefs()
    if trace is None:
        pytest.skip("no readable tracefs mounted: the trace text is checked against the hand-written table only")
    time.sleep(0.1)
    tail = trace.read_text(errors="replace").splitlines()[-20:]
    for n in frames:
        text = VLAN_EXPECTED[n][1]
        if text is not None:
            assert any(line.endswith(f": bpf_trace_printk: {text}") for line in tail), (n, tail)


MISC_ALWAYS = 0xFF  # bits 0-7 hold at every hook; 8-9 (no socket) on the RX path only


@needs_clang
def test_misc_helpers_on_the_rx_path(objects):
    prog = Program.from_object(objects["helpers_misc"], "helpers_misc.o")
    for frame in (FRAMES["udp53"], VLAN_FRAMES["vid42"]):
        r = run_filter(prog, frame)
        assert r & 0xFFFF == 0x3FF, hex(r)
    prog.reseed(5)
    a = run_filter(prog, FRAMES["udp53"]) >> 16
    prog.reseed(5)
    assert run_filter(prog, FRAMES["udp53"]) >> 16 == a


@needs_clang
def test_misc_helpers_match_the_kernel_test_run(objects, kernel):
    insns = insns_of(objects, "helpers_misc")
    got = kernel.runs(insns, [(FRAMES["udp53"], ctx_bytes(kernel_view()))])[0]
    assert got & MISC_ALWAYS == MISC_ALWAYS, hex(got)
    assert Program(insns).run(FRAMES["udp53"], kernel_view()) & MISC_ALWAYS == MISC_ALWAYS


def test_socket_cookie_and_uid_on_an_rx_skb():
    # No socket owns an skb at the EVL RX hook: cookie 0, the overflow uid.
    assert Program(asm(call(46), EXIT)).run(FRAMES["udp53"], SkbContext.for_frame(FRAMES["udp53"])) == 0
    assert Program(asm(call(47), EXIT)).run(FRAMES["udp53"]) == 65534


# ==========================================================================
# End to end: evl net -F, evl sim rx, evl sim log
# ==========================================================================


@needs_clang
def test_evl_sim_rx_writes_bpf_printk_lines_to_the_kernel_log(evl, objects, tmp_path):
    obj = tmp_path / "printk.o"
    obj.write_bytes(objects["helpers_printk"])
    run = evl("net", "-ei", "eth0.42")
    assert run.code == 0, run.err
    run = evl("net", "-i", "eth0.42", f"-F{obj}")
    assert run.code == 0, run.err
    run = evl("sim", "rx", "eth0.42", "--count", "2")
    assert run.code == 0, run.err
    log = evl("sim", "log")
    assert log.code == 0, log.err
    lines = [line for line in log.out.splitlines() if "bpf_trace_printk:" in line]
    assert len(lines) == 2, log.out
    assert re.fullmatch(
        r"\[ *\d+\.\d{6}\]           <idle>-0       \[000\] \.\.s11 +\d+\.\d{6}: bpf_trace_printk: "
        r"evl rx: len \d+ proto 0800 ifindex \d+",  # the NIC untagged the frame: skb->protocol is IPv4
        lines[0],
    ), lines[0]
