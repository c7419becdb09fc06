"""Small filters in C, each on an edge of the simulator's kernel model, against this machine's kernel.

Each case is built with clang (``-O2 -g``, the shipped ``--cflags``), loaded
by the simulator as ``evl net -F`` does and by the system libbpf into the
kernel (tests/kernel_bpf.py), then run on the same frames: both refuse it
with the same last verifier line, or both give the same verdicts.  Where the
simulator cannot follow the kernel (a global function, checked by the kernel
on its own), it must refuse, saying so, and never accept what the kernel refuses.
"""

from __future__ import annotations

import re
import struct
import subprocess

import pytest

import bpf_build
import kernel_bpf
from evl_net.errors import KernelError
from evl_net.transports.sim import filtermaps, loader
from evl_net.transports.sim.ebpf import SkbContext, verify
from evl_net.transports.sim.ebpf.verifier import VerifierError

HEAD = """\
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
char _license[] SEC("license") = "GPL";
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } rb SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, char[64]); }
	out SEC(".maps");
"""


def snprintf(fmt: str, data: str = "255", size: str = "sizeof(d)") -> str:
    return f"""
static const char fmt[] = "{fmt}";
SEC("socket") int f(struct __sk_buff *s)
{{
	__u32 k = 0;
	char *o = bpf_map_lookup_elem(&out, &k);
	__u64 d[] = {{{data}}};

	if (!o)
		return 0;
	return bpf_snprintf(o, 64, fmt, d, {size}) + 1000;
}}
"""


def reserve(size: int, then: str) -> str:
    return f"""
SEC("socket") int f(struct __sk_buff *s)
{{
	char *e = bpf_ringbuf_reserve(&rb, {size}, 0);
	long q;

	if (!e)
		return 7;
	{then}
}}
"""


#: name -> the filter's body after HEAD.
CASES = {
    # A ring is never completely full: 4088 + an 8-byte header is the whole 4096.
    "ringbuf reserve of the whole ring": reserve(4088, "bpf_ringbuf_submit(e, 0); return 1;"),
    "ringbuf reserve of all but 8": reserve(4080, "bpf_ringbuf_discard(e, 0); return 1;"),
    # Discarded records keep their space until a consumer passes them.
    "ringbuf discards fill the ring": reserve(1000, "bpf_ringbuf_discard(e, 0); return 1;"),
    "ringbuf query after a discard": reserve(
        100, "bpf_ringbuf_discard(e, 0); return bpf_ringbuf_query(&rb, 0) + bpf_ringbuf_query(&rb, 2) * 10000;"
    ),
    "ringbuf query with a record reserved": reserve(
        100, "q = bpf_ringbuf_query(&rb, 0); bpf_ringbuf_submit(e, 0); return q;"
    ),
    "ringbuf filled from a bpf_loop callback": """
static long cb(__u32 i, void *c)
{
	__u32 *e = bpf_ringbuf_reserve(&rb, 4, 0);

	if (!e)
		return 1;
	*e = i;
	bpf_ringbuf_submit(e, 0);
	return 0;
}
SEC("socket") int f(struct __sk_buff *s) { return bpf_loop(1000, cb, 0, 0); }
""",
    "ringbuf record leaked by a callback": """
static long cb(__u32 i, void *c) { bpf_ringbuf_reserve(&rb, 8, 0); return 0; }
SEC("socket") int f(struct __sk_buff *s) { return bpf_loop(3, cb, 0, 0); }
""",
    "for_each over a ring buffer": """
static long cb(void *m, __u32 *k, __u64 *v, void *c) { return 0; }
SEC("socket") int f(struct __sk_buff *s) { return bpf_for_each_map_elem(&rb, cb, 0, 0); }
""",
    "callback indexing its context with its index": """
static long cb(__u32 i, void *c) { char *b = c; return b[i] & 1; }
SEC("socket") int f(struct __sk_buff *s) { char b[8] = {1, 2, 3, 4, 5, 6, 7, 8}; return bpf_loop(10, cb, b, 0); }
""",
    "snprintf %d": snprintf("%d"),
    "snprintf %#x": snprintf("%#x"),
    "snprintf %hd": snprintf("%hd"),
    "snprintf %o": snprintf("%o"),
    "snprintf %pB": snprintf("%pB"),
    "snprintf more conversions than arguments": snprintf("%d %d"),
    "snprintf fewer conversions than arguments": snprintf("%d", "1, 2"),
    "snprintf data_len not a multiple of 8": snprintf("%d", "1, 2", "12"),
    "map name that is no C identifier": """
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u64); }
	my$map SEC(".maps");
SEC("socket") int f(struct __sk_buff *s)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&my$map, &k);

	if (v)
		*v += 1;
	return 1;
}
""",
}

#: Cases the simulator refuses as beyond it while the kernel decides otherwise (refuses here, too).
LIMITS = {
    "global function given a stack pointer": """
__attribute__((noinline)) int g(__u64 *v) { return *v + 1; }
SEC("socket") int f(struct __sk_buff *s) { __u64 x = 3; return g(&x); }
""",
    "global function indexing with its argument": """
__attribute__((noinline)) int g(int i) { char b[4] = {1, 2, 3, 4}; return b[i]; }
SEC("socket") int f(struct __sk_buff *s) { return g(1); }
""",
}

FRAME = bytes.fromhex("ffffffffffff02000000000108004500001c0001000040110000c0a80001c0a800021b581b580008ffff")
FRAME += bytes(20)
RUNS = 6


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    if not bpf_build.have_clang():
        pytest.skip("clang with the BPF target and libbpf-dev are needed")
    from evl_net.cli.sim import cflags

    out = tmp_path_factory.mktemp("cases")

    def make(name: str, body: str) -> bytes:
        src = out / f"{name.replace(' ', '_')}.c"
        src.write_text(HEAD + body)
        obj = src.with_suffix(".o")
        subprocess.run(
            ["clang", "-O2", "-g", "-target", "bpf", *cflags(), "-c", str(src), "-o", str(obj)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        return obj.read_bytes()

    return make


def simulate(obj: bytes, name: str) -> tuple[int, str] | list[int]:
    """The simulator's verdicts on RUNS frames, or (errno, the refusal's last words)."""
    try:
        loaded = loader.load(obj, f"{name}.o")
    except KernelError as exc:
        return exc.errno, exc.detail or ""
    live = filtermaps.live(filtermaps.created(loaded.maps, 1))
    return [loaded.program.run(FRAME, SkbContext.for_frame(FRAME, vlan_offload=False), None, live) for _ in range(RUNS)]


def on_kernel(obj: bytes, name: str) -> tuple[int, str] | list[int]:
    reason = kernel_bpf.available()
    if reason:
        pytest.skip(f"kernel oracle unavailable: {reason}")
    try:
        with kernel_bpf.KernelObject(obj, name) as ko:
            return [ko.run(FRAME) for _ in range(RUNS)]
    except OSError as exc:
        return exc.errno or 0, str(exc)


def _last_line(log: str) -> str:
    """The verifier's verdict in a libbpf message: the line before its statistics (or the BTF log's)."""
    lines = [line.strip() for line in log.replace(" | ", "\n").splitlines()]
    for k, line in enumerate(lines):
        if line.startswith("processed ") and k:
            return lines[k - 1]
    return next((line for line in lines if "Invalid name" in line), lines[-1] if lines else "")


@pytest.mark.parametrize("name", list(CASES))
def test_the_simulator_decides_as_the_kernel(build, name):
    obj = build(name, CASES[name])
    sim = simulate(obj, name)
    kern = on_kernel(obj, name.replace(" ", "_"))
    if isinstance(kern, list):
        assert sim == kern
        return
    assert isinstance(sim, tuple), f"the kernel refuses ({_last_line(kern[1])}), the simulator accepts: {sim}"
    last = _last_line(kern[1])
    if last.startswith("[") or "Invalid name" in last:  # BTF refused (a name): no verifier line to compare
        assert "invalid name" in sim[1]
    elif re.fullmatch(r"\d+: \([0-9a-f]{2}\) .*", last):  # the refusal has no words, only its insn
        assert sim[0] == kern[0]
    else:
        assert sim[1].endswith(last), (sim, last)


@pytest.mark.parametrize("name", list(LIMITS))
def test_what_the_simulator_cannot_follow_it_refuses(build, name):
    obj = build(name, LIMITS[name])
    sim = simulate(obj, name)
    assert isinstance(sim, tuple) and "is not implemented by the simulator" in sim[1], sim
    kern = on_kernel(obj, name.replace(" ", "_"))
    assert not isinstance(kern, list), "the kernel accepts these: make them cases"


def test_a_register_past_r10_is_refused_not_a_crash():
    """r15 after a bpf_loop() call whose callback branches: the liveness pass once indexed past its tables."""

    def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
        return struct.pack("<BBhi", code, dst | (src << 4), off, imm)

    prog = (
        insn(0xB7, 1, imm=2)
        + insn(0x18, 2, 4, imm=7)
        + insn(0)
        + insn(0xB7, 3)
        + insn(0xB7, 4)
        + insn(0x85, imm=181)
        + insn(0x15, 15)
        + insn(0xB7, 0)
        + insn(0x95)
        + insn(0x25, 1, imm=5)
        + insn(0xB7, 0)
        + insn(0x95)
    )
    with pytest.raises(VerifierError, match="R15 is invalid"):
        verify(prog, func_info=True)


LRU_TOUCH = """
struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 2); __type(key, __u32); __type(value, __u64); }
	recent SEC(".maps");
SEC("socket") int f(struct __sk_buff *s)
{
	__u16 port;
	__u32 k;
	__u64 one = 1;

	if (bpf_skb_load_bytes(s, 22, &port, 2) < 0)
		return 2;
	k = port;
	if (bpf_map_lookup_elem(&recent, &k))  /* a hit is a lookup only: it makes the key recent */
		return 1;
	bpf_map_update_elem(&recent, &k, &one, 0);
	return 1;
}
"""


def test_lru_recency_persists_between_invocations(build, evl, tmp_path):
    """1001, 1002, 1001 (a hit), 1003: the LRU of 2 evicts 1002, one evl sim rx per frame as in one run."""
    import json

    obj = tmp_path / "lru_touch.o"
    obj.write_bytes(build("lru touch", LRU_TOUCH))
    assert evl("net", "-e", "-i", "eth0").code == 0
    assert evl("net", f"-F{obj}", "-i", "eth0").code == 0
    for port in (1001, 1002, 1001, 1003):
        assert evl("sim", "rx", "eth0", "--dport", str(port)).code == 0
    (recent,) = [m for m in json.loads(evl("sim", "--json", "maps", "eth0").out)["eth0"] if m["name"] == "recent"]
    keys = {int("".join(b[2:] for b in reversed(el["key"])), 16) for el in recent["elements"]}
    # the filter stores the port as read: big-endian bytes in a little-endian u16
    assert keys == {int.from_bytes(p.to_bytes(2, "big"), "little") for p in (1001, 1003)}
