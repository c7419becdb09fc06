#!/usr/bin/env python3
"""Frames per second of injected RX traffic through the simulator's traffic model.

The model runs in-process (the Python API ``traffic.receive``), on the
default board with eth0.42 an out-of-band port and VLAN 42 in the filter:
with no eBPF program (VLAN rules only), first with VLAN 42 alone in the
map, then with the map full but for VLAN 43 (2-42,44-4094: the same
dispositions; membership is a set lookup, its cost must not grow with the
map), and with a typical socket filter (accept_vlan42, built with clang
from tests/bpf).  The batch mixes four
frames: IPv4/UDP on VLAN 42 (out-of-band with VLAN 42 in the map), on VLAN
43, untagged, and ARP on VLAN 42.  Each figure is the median of several
timed batches; targets: >= 500 000 frames/s without a filter, whatever the
map (issue 17), >= 20 000 with a filter (issue 5).

``evl sim rx --count N`` runs the same ``traffic.receive`` per frame, after
the process's start-up and the state file's load (~0.1 s, paid once): this
in-process figure is its per-frame throughput.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def measure(sim, frames, rounds: int = 5) -> float:
    from evl_net.transports.sim import traffic

    receive = traffic.receive  # bound once: the loop times receive(), not a module attribute lookup
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        for frame in frames:
            receive(sim, "eth0", frame)
        rates.append(len(frames) / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> int:
    from evl_net.transports.sim import SimTransport
    from evl_net.transports.sim.frames import FrameSpec, build

    batch = [
        build(FrameSpec(vlan=42, size=100)),
        build(FrameSpec(vlan=43)),
        build(FrameSpec()),
        build(FrameSpec(proto="arp", vlan=42)),
    ] * 5000
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sim = SimTransport(board=None, state_path=str(Path(tmp) / "state.json"), console=None)
        with sim:
            sim.enable_port("eth0.42", 0, 0)
            sim.set_vlans("42")
            rows.append(("no filter (VLAN rules)", measure(sim, batch), 500_000))
            sim.set_vlans("2-42,44-4094")  # the same dispositions as "42" alone
            rows.append(("no filter, full VLAN map", measure(sim, batch), 500_000))
            sim.set_vlans("42")
            import bpf_build

            if bpf_build.have_clang():
                obj = bpf_build.build("accept_vlan42", Path(tmp))
                sim.install_rx_filter("eth0.42", obj.read_bytes(), "accept_vlan42.o")
                rows.append(("accept_vlan42 filter", measure(sim, batch), 20_000))
            else:
                print("clang with the BPF target is missing: the filtered case is skipped", file=sys.stderr)
    print(f"{'RX path':<26} {'frames/s':>12} {'target':>10}  result")
    for name, rate, target in rows:
        print(f"{name:<26} {rate:>12,.0f} {'>= ' + format(target, ','):>10}  {'pass' if rate >= target else 'MISS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
