"""Runs per second of the eBPF interpreter (evl_net.transports.sim.ebpf) on typical RX filters.

Run it with the interpreter where the project is installed::

    /tmp/venv/bin/python benchmarks/bench_ebpf.py [--seconds S] [--repeat N]

Method.  tests/bpf/accept_vlan42.c (context fields only), drop_udp9.c (legacy
packet loads) and udp_guard.c (bpf_skb_load_bytes in a loop over the IPv4
header, stack arrays) are compiled with ``clang -O2 -target bpf`` into a
temporary directory (tests/bpf_build.py) and decoded once into a
:class:`~evl_net.transports.sim.ebpf.Program`.  Each is then run over a list of eight
frames (VLAN 42/43 tagged, untagged UDP to ports 9/53, TCP, ARP, IPv6, a
truncated IPv4 header), round-robin, for about ``--seconds`` per repeat;
``--repeat`` repeats (5) are taken and the table shows the median rate in
runs per second, two ways:

* ``run``: ``program.run(frame, skb)`` with the :class:`SkbContext` built once
  per frame beforehand -- the interpreter alone;
* ``+ctx``: ``program.run(frame, SkbContext.for_frame(frame))`` -- what the
  simulator pays per injected frame (context derivation, VLAN offload).

The ``verdicts`` column shows what each program answers on the eight frames.
drop_udp9.c reads the ethertype at packet offset 12 as if the data began at
the Ethernet header; it begins at the network header (kernel and simulator
alike, see evl_net.transports.sim.ebpf), so it stops after its first test on every frame.

Filters with maps (tests/bpf/users_percpu_count.c: a per-CPU counter,
users_hash_src.c: a hash keyed by source address, users_loop.c: bpf_loop()
over VLAN tags) are built as users build them (``-g`` and ``evl sim filter
--cflags``), loaded as ``evl net -F`` loads them and run with their maps;
an installation without map support shows them as "-".

The targets, on ``+ctx``: 500 000 runs/s for the typical filter,
accept_vlan42 (issue 17), 20 000 for any other (issue 5).  The script
reports; it does not assert: it always exits 0 unless clang is missing.
"""

from __future__ import annotations

import argparse
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import bpf_build  # noqa: E402
from evl_net.transports.sim.ebpf import Program, SkbContext  # noqa: E402

PROGRAMS = ["accept_vlan42", "drop_udp9", "udp_guard"]
WITH_MAPS = ["users_percpu_count", "users_hash_src", "users_loop"]
TARGET = 20_000
TARGETS = {"accept_vlan42": 500_000}


def _csum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ipv4(proto: int, payload: bytes) -> bytes:
    hdr = bytearray(
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(payload),
            1,
            0,
            64,
            proto,
            0,
            bytes([10, 10, 10, 10]),
            bytes([10, 10, 10, 11]),
        )
    )
    hdr[10:12] = struct.pack("!H", _csum(bytes(hdr)))
    return bytes(hdr) + payload


def _eth(ethertype: int, payload: bytes, vlan: int | None = None) -> bytes:
    hdr = bytes.fromhex("502df41d32d0502df41d4010")
    if vlan is not None:
        hdr += struct.pack("!HH", 0x8100, vlan)
    frame = hdr + struct.pack("!H", ethertype) + payload
    return frame + bytes(max(0, 60 - len(frame)))


def _udp(dport: int) -> bytes:
    return struct.pack("!HHHH", 4000, dport, 26, 0) + bytes(18)


FRAMES = [
    _eth(0x0800, _ipv4(17, _udp(53)), vlan=42),
    _eth(0x0800, _ipv4(17, _udp(53)), vlan=43),
    _eth(0x0800, _ipv4(17, _udp(9))),
    _eth(0x0800, _ipv4(17, _udp(53))),
    _eth(0x0800, _ipv4(6, bytes(20))),
    _eth(0x0806, bytes(28)),
    _eth(0x86DD, bytes(48)),
    _eth(0x0800, _ipv4(17, b""))[:34],
]


def _rate(fn, seconds: float) -> float:
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        fn()
        n += len(FRAMES)
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--seconds", type=float, default=0.5, help="duration of one repeat (0.5)")
    ap.add_argument("--repeat", type=int, default=5, help="repeats, median shown (5)")
    args = ap.parse_args(argv)
    if not bpf_build.have_clang():
        print("clang with the BPF target and libbpf-dev are needed to build tests/bpf/*.c", file=sys.stderr)
        return 1

    rows: list[tuple[str, int | None, str, float | None, float | None]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in PROGRAMS + WITH_MAPS:
            maps: list = []
            if name in WITH_MAPS:
                try:
                    from evl_net.cli.sim import cflags
                    from evl_net.transports.sim import filtermaps, loader
                except ImportError:  # an installation from before maps
                    rows.append((name, None, "-", None, None))
                    continue
                obj = bpf_build.build(name, Path(tmp), flags=("-g", *cflags())).read_bytes()
                loaded = loader.load(obj, f"{name}.o")
                prog = loaded.program
                maps = filtermaps.live(filtermaps.created(loaded.maps, 1))
            else:
                obj = bpf_build.build(name, Path(tmp)).read_bytes()
                prog = Program.from_object(obj, f"{name}.o")
            ctxs = [(fr, SkbContext.for_frame(fr)) for fr in FRAMES]
            extra = (None, maps) if maps else ()  # run(frame, skb) as before maps, for a side-by-side run

            def bare(prog=prog, ctxs=ctxs, extra=extra):
                for fr, skb in ctxs:
                    prog.run(fr, skb, *extra)

            def with_ctx(prog=prog, extra=extra):
                for fr in FRAMES:
                    prog.run(fr, SkbContext.for_frame(fr), *extra)

            verdicts = " ".join(str(prog.run(fr, skb, *extra)) for fr, skb in ctxs)
            for fn in (bare, with_ctx):  # warm-up
                _rate(fn, 0.05)
            run = statistics.median(_rate(bare, args.seconds) for _ in range(args.repeat))
            full = statistics.median(_rate(with_ctx, args.seconds) for _ in range(args.repeat))
            rows.append((name, len(prog), verdicts, run, full))

    header = ("program", "insns", "verdicts", "run/s", "+ctx run/s", "target", "met")
    table = [header] + [
        (name, "-", "-", "-", "-", "-", "-")
        if n is None or run is None or full is None
        else (
            name,
            str(n),
            verdicts,
            f"{run:,.0f}",
            f"{full:,.0f}",
            f">= {TARGETS.get(name, TARGET):,}",
            "yes" if full >= TARGETS.get(name, TARGET) else "NO",
        )
        for name, n, verdicts, run, full in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for k, row in enumerate(table):
        print(
            "  ".join(
                cell.rjust(w) if i >= 3 else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
        if k == 0:
            print("  ".join("-" * w for w in widths))
    print(
        f"\n{len(FRAMES)} frames round-robin, median of {args.repeat} x {args.seconds}s, "
        f"Python {sys.version.split()[0]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
