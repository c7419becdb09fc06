"""The interpreter's fast paths compute what its general paths do (issue 17).

* a program without loops nor calls runs as one fused function
  (codegen.fuse): same verdicts, traces, map updates and errors as block by
  block;
* a load of a read-only ``__sk_buff`` field from the context pointer is an
  expression of the SkbContext (skb.ctx_read): the same value as the context
  image gives;
* SkbContext.for_frame() fills the instance without the dataclass's
  __init__: the same context.
"""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

import pytest

import bpf_build
from evl_net.transports.sim.ebpf import EbpfError, Program, SkbContext, codegen, memory
from evl_net.transports.sim.ebpf import skb as skbmod
from evl_net.transports.sim.ebpf.memory import CTX_BASE, STACK_SIZE, STACK_TOP


def _eth(ethertype: int, payload: bytes, tags: tuple[tuple[int, int], ...] = (), dst: str = "502df41d32d0") -> bytes:
    hdr = bytes.fromhex(dst + "502df41d4010")
    for tpid, tci in tags:
        hdr += struct.pack("!HH", tpid, tci)
    frame = hdr + struct.pack("!H", ethertype) + payload
    return frame + bytes(max(0, 60 - len(frame)))


def _ipv4(proto: int, payload: bytes) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0, bytes(4), bytes(4)) + payload


def _udp(dport: int) -> bytes:
    return struct.pack("!HHHH", 4000, dport, 26, 0) + bytes(18)


FRAMES = [
    _eth(0x0800, _ipv4(17, _udp(53)), tags=((0x8100, 42),)),
    _eth(0x0800, _ipv4(17, _udp(53)), tags=((0x8100, 0x2000 | 43),)),
    _eth(0x0800, _ipv4(17, _udp(9))),
    _eth(0x0800, _ipv4(6, bytes(20))),
    _eth(0x0806, bytes(28)),
    _eth(0x86DD, bytes(48)),
    _eth(0x0800, _ipv4(17, b""))[:34],
    _eth(0x0800, _ipv4(17, _udp(53)), tags=((0x88A8, 7), (0x8100, 42))),
    _eth(0x0800, _ipv4(17, _udp(53)), dst="ffffffffffff"),
    _eth(0x0800, _ipv4(17, _udp(53)), dst="01005e000001"),
    _eth(0x0040, bytes(40)),  # 802.3 length
    bytes(12) + b"\x00\x20\xff\xff" + bytes(40),  # raw 802.3
    _eth(0x0800, b"")[:14],
]


def _contexts(frame: bytes) -> list[SkbContext]:
    return [
        SkbContext(),
        SkbContext.for_frame(frame),
        SkbContext.for_frame(frame, vlan_offload=False, ifindex=3, hash=0xDEADBEEF, mark=7, rx_queue=2),
        SkbContext.for_frame(frame, dev_addr=bytes.fromhex("502df41d32d0"), priority=5, napi_id=9, tc_index=0x1234),
        SkbContext(
            len=5,
            pkt_type=2,
            protocol=0x86DD,
            vlan_present=7,
            vlan_tci=0xF02A,
            vlan_proto=0x88A8,
            ingress_ifindex=4,
            queue_mapping=0x1FFFF,
            gso_segs=0x12345,
            gso_size=0x1FFFF,
            cb=(1, 2, 3, 4, 0xFFFFFFFF),
        ),
    ]


def _seen(frame: bytes, skb: SkbContext) -> bytes:
    """The frame the program sees (execute() takes a stripped tag out)."""
    return frame[:12] + frame[16:] if skb.vlan_offloaded else frame


def test_every_allowed_read_of_a_read_only_field_is_an_expression_with_the_images_value():
    covered = 0
    for frame in FRAMES:
        for skb in _contexts(frame):
            seen = _seen(frame, skb)
            r: list = [0] * 20
            r[10], r[11], r[12], r[13], r[14] = STACK_TOP, bytearray(STACK_SIZE), seen, None, skb
            for off in range(skbmod.CTX_SIZE):
                for size in (1, 2, 4, 8):
                    expr = skbmod.ctx_read(off, size, "skb", "frame")
                    try:
                        want = memory.load(r, CTX_BASE + off, size, 0)
                    except memory.RunError:
                        assert expr is None, (off, size)
                        continue
                    if skbmod.CB_LO <= off < skbmod.CB_HI:
                        assert expr is None, (off, size)  # cb[] is writable: read from the image
                        continue
                    assert expr is not None, (off, size)
                    got = eval(expr, dict(skbmod.CTX_READ_GLOBALS), {"skb": skb, "frame": seen})
                    assert got == want, (off, size, skb)
                    covered += 1
    assert covered


def test_for_frame_builds_the_context_the_dataclass_would():
    for frame in FRAMES:
        for kwargs in ({}, {"ifindex": 2, "hash": 5}, {"vlan_offload": False}, {"stag_offload": False, "rx_queue": 0}):
            skb = SkbContext.for_frame(frame, **kwargs)
            plain = SkbContext(**{f.name: getattr(skb, f.name) for f in dataclasses.fields(SkbContext)})
            assert skb == plain and hash(skb) == hash(plain) and repr(skb) == repr(plain)
            assert vars(skb) == vars(plain)
            with pytest.raises(dataclasses.FrozenInstanceError):
                skb.ifindex = 1  # type: ignore[misc]
    with pytest.raises(TypeError, match="nonsense"):
        SkbContext.for_frame(FRAMES[0], nonsense=1)

    @dataclasses.dataclass(frozen=True)
    class Sub(SkbContext):
        extra: int = 0

    assert type(Sub.for_frame(FRAMES[0], extra=3)) is Sub


def _asm(*insns: tuple[int, int, int, int, int]) -> bytes:
    return b"".join(struct.pack("<BBhi", code, dst | src << 4, off, imm) for code, dst, src, off, imm in insns)


# r1 = 5; if r1 != 5 goto 4; call bpf_get_prandom_u32; exit; r0 = 0; exit
_CALLS_PRANDOM = _asm(
    (0xB7, 1, 0, 0, 5),
    (0x55, 1, 0, 2, 5),
    (0x85, 0, 0, 0, 7),
    (0x95, 0, 0, 0, 0),
    (0xB7, 0, 0, 0, 0),
    (0x95, 0, 0, 0, 0),
)


def _outcome(prog: Program, frame: bytes, maps: list | None = None):
    trace: list[str] = []
    try:
        verdict = prog.execute(frame, None, trace.append, maps)
    except EbpfError as exc:
        return (type(exc), str(exc), exc.insn)
    return (verdict, trace)


def test_a_python_fault_in_a_fused_program_names_its_block(monkeypatch):
    def boom(r: list, pc: int) -> int:
        raise ZeroDivisionError("boom")

    monkeypatch.setitem(codegen._GEN_GLOBALS, "_helper_7", boom)
    prog = Program(_CALLS_PRANDOM)
    assert prog._fused is not None
    fused = _outcome(prog, FRAMES[0])
    prog._fused = None
    assert fused == _outcome(prog, FRAMES[0])
    assert fused[0] is EbpfError and fused[2] == 2 and "ZeroDivisionError" in fused[1]


def test_a_budget_below_the_programs_length_is_still_counted():
    prog = Program(_CALLS_PRANDOM, budget=2)
    assert _outcome(prog, FRAMES[0])[2] == 2  # the block at 2 would exceed it
    prog.budget = 100
    assert isinstance(_outcome(prog, FRAMES[0])[0], int)


needs_clang = pytest.mark.skipif(not bpf_build.have_clang(), reason="clang with the BPF target is needed")


@needs_clang
def test_fused_programs_run_as_their_blocks_do(tmp_path: Path):
    from evl_net.cli.sim import cflags
    from evl_net.kernel import bpfobj
    from evl_net.transports.sim import filtermaps, loader

    fused_ones = []
    for src in sorted(bpf_build.SRC_DIR.glob("*.c")):
        name = src.stem
        data = bpf_build.build(name, tmp_path, flags=("-g", *cflags())).read_bytes()
        try:
            loaded = loader.load(data, f"{name}.o")
        except Exception:  # not a program the simulator loads (xdp, the verifier's refusals): run it raw
            try:
                insns = bpfobj.first_socket_filter(data, f"{name}.o").insns
            except Exception:
                continue
            defs: tuple = ()
        else:
            insns, defs = loaded.program.insns, loaded.maps
        results = []
        for fused in (True, False):
            try:
                prog = Program(insns, seed=1, clock=lambda: 123_456_789)
            except EbpfError:  # what the simulator does not run
                break
            if prog._fused is None:
                break
            if not fused:
                prog._fused = None
            maps = filtermaps.live(filtermaps.created(defs, 1)) if defs else None
            results.append([_outcome(prog, frame, maps) for frame in FRAMES * 2])
            if maps:
                results[-1].append([m.dump() for m in maps])
        else:
            assert results[0] == results[1], name
            fused_ones.append(name)
    assert {"accept_vlan42", "drop_udp9"} <= set(fused_ones), fused_ones
