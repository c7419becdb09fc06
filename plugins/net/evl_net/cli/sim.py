"""``evl sim``: drive and inspect the simulated EVL network stack."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from evl_core.errors import EvlError
from evl_core.hookspecs import Context

if TYPE_CHECKING:
    from evl_net.transports.sim import SimTransport
    from evl_net.transports.sim.frames import FrameSpec

SUMMARY = "drive and inspect the simulated EVL network stack"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evl sim",
        description="Inspect, reset and drive the simulator behind 'evl net --transport=sim': "
        "inject RX frames and TX sends that move the -Q counters as the kernel would, "
        "bring links up and down, and run eBPF RX filters over frames.",
    )
    parser.add_argument("--board", metavar="FILE", help="the simulated board (also EVL_SIM_BOARD)")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    sub = parser.add_subparsers(dest="what", metavar="COMMAND")
    sub.required = True

    sub.add_parser("show", help="print the whole simulated state")
    sub.add_parser("reset", help="forget the state: the next use boots the board afresh")
    sub.add_parser("log", help="print the kernel log lines of the simulated board")

    rx = sub.add_parser("rx", help="inject received frames on an interface")
    rx.add_argument("dev", help="the interface the frames arrive on (a VLAN device tags them with its id)")
    _frame_options(rx)
    rx.add_argument("--count", type=_count, default=1, help="number of frames (default 1)")
    rx.add_argument("--nomem", action="store_true", help="the driver has no buffer for them")

    tx = sub.add_parser("tx", help="send frames through an out-of-band port")
    tx.add_argument("dev", help="the out-of-band port")
    tx.add_argument("--count", type=_count, default=1, help="number of frames (default 1)")
    tx.add_argument("--size", type=_count, default=64, help="bytes per frame (default 64)")
    tx.add_argument("--stall", action="store_true", help="the NIC does not complete them: buffers stay in flight")

    drain = sub.add_parser("drain", help="complete every TX buffer in flight on an interface's pool")
    drain.add_argument("dev")

    link = sub.add_parser("link", help="bring an interface up or down (down dismantles its port)")
    link.add_argument("dev")
    link.add_argument("state", choices=("up", "down"))

    filt = sub.add_parser("filter", help="run an eBPF object's first program over frames and print each verdict")
    filt.add_argument("object", help="an eBPF ELF object with a socket-filter program")
    source = filt.add_mutually_exclusive_group()
    source.add_argument("--pcap", metavar="FILE", help="frames from a pcap file (Ethernet)")
    source.add_argument(
        "--frames",
        metavar="FILE",
        help="frames from a JSON-lines file, one object per line with the fields of 'rx' "
        "(proto, vlan, size, src, dst, sport, dport, bad_csum)",
    )
    _frame_options(filt)
    return parser


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a non-negative decimal integer, got {text!r}")
    return int(text)


def _vlan(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 4095:
        raise argparse.ArgumentTypeError(f"expected a VLAN id in 0..4095, got {text!r}")
    return int(text)


def _frame_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--proto", choices=("udp", "tcp", "icmp", "arp", "ipv6"), default="udp", help="default udp")
    p.add_argument("--vlan", type=_vlan, help="802.1Q tag (default: the VLAN device's id, else untagged)")
    p.add_argument("--size", dest="frame_size", type=_count, default=64, help="frame size in bytes (default 64)")
    p.add_argument("--src", default="10.10.10.10", help="IPv4 source")
    p.add_argument("--dst", default="10.10.10.11", help="IPv4 destination")
    p.add_argument("--sport", type=_count, default=4000)
    p.add_argument("--dport", type=_count, default=5000)
    p.add_argument("--bad-csum", action="store_true", help="corrupt the UDP checksum")


def _spec(args: argparse.Namespace, vlan: int | None) -> FrameSpec:
    from evl_net.transports.sim.frames import FrameSpec

    return FrameSpec(
        proto=args.proto,
        vlan=vlan,
        size=args.frame_size,
        src=args.src,
        dst=args.dst,
        sport=args.sport,
        dport=args.dport,
        bad_csum=args.bad_csum,
    )


def _sim(args: argparse.Namespace, ctx: Context) -> SimTransport:
    from evl_net.engine.request import Request
    from evl_net.transports.sim import factory

    sim = factory(Request(board=args.board), ctx.env)
    sim.console = ctx.stderr
    return sim


def _print(ctx: Context, args: argparse.Namespace, data: Any, text: str) -> None:
    ctx.stdout.write(json.dumps(data, separators=(",", ":")) + "\n" if args.json else text)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from evl_net.transports.sim import frames, traffic

    if args.what == "filter":
        return _run_filter(args, ctx)
    sim = _sim(args, ctx)
    if args.what == "reset":
        removed = sim.reset()
        _print(
            ctx,
            args,
            {"reset": removed, "state": sim.state_path},
            f"simulator state {'removed' if removed else 'was already empty'}: {sim.state_path}\n",
        )
        return 0
    with sim:
        try:
            if args.what == "show":
                _print(ctx, args, sim.snapshot(), _show(sim))
            elif args.what == "log":
                lines = sim.load().log
                _print(ctx, args, lines, "".join(line + "\n" for line in lines))
            elif args.what == "rx":
                iface = sim.device(args.dev)
                vlan = args.vlan if args.vlan is not None else iface.vlan_id
                frame = frames.build(_spec(args, vlan))
                tally: dict[str, int] = {}
                last = None
                for _ in range(args.count):
                    last = traffic.receive(sim, args.dev, frame, nomem=args.nomem)
                    tally[last.disposition] = tally.get(last.disposition, 0) + 1
                data = {
                    "frames": args.count,
                    "dispositions": tally,
                    "verdict": last.verdict if last else None,
                    "dev": last.dev if last else None,
                }
                text = ", ".join(f"{n} {d}" for d, n in sorted(tally.items())) or "no frame"
                _print(ctx, args, data, f"{text}" + (f" (on {last.dev})" if last and last.dev else "") + "\n")
            elif args.what == "tx":
                data = traffic.transmit(sim, args.dev, args.count, args.size, stall=args.stall)
                _print(
                    ctx,
                    args,
                    data,
                    f"{data['sent']} sent, {data['nomem']} without buffer, "
                    f"pool {data['skb_free']} / {data['skb_total']} free\n",
                )
            elif args.what == "drain":
                data = traffic.drain(sim, args.dev)
                _print(ctx, args, data, f"{data['released']} buffers released\n")
            elif args.what == "link":
                data = traffic.set_link(sim, args.dev, args.state == "up")
                gone = ", ".join(data["dismantled"])
                text = f"{args.dev} {args.state}" + (f"; ports dismantled: {gone}" if gone else "")
                _print(ctx, args, data, text + "\n")
        except OSError as exc:
            raise EvlError.from_oserror(f"cannot {args.what} on {getattr(args, 'dev', '?')}", exc) from None
    return 0


def _show(sim: SimTransport) -> str:
    from tabulate import tabulate

    from evl_net.kernel import vlans

    state = sim.load()
    board = state.board
    rows = []
    for name, iface in board.interfaces.items():
        pool = state.pools.get(board.real_device(name))
        filt = state.filters.get(name)
        rows.append(
            [
                name,
                "up" if iface.up else "down",
                "yes" if name in state.ports else "no",
                "yes" if iface.oob_capable else "no",
                f"{iface.vlan_id}@{iface.parent}" if iface.parent else "-",
                " ".join(iface.addresses) or "-",
                f"{pool.skb_free}/{pool.skb_total} x {pool.skb_size}"
                if pool and name == board.real_device(name)
                else "-",
                (filt.object or f"prog {filt.prog_id}") if filt else "-",
            ]
        )
    out = [f"board: {board.name}", f"state: {sim.state_path}", ""]
    out.append(
        tabulate(
            rows,
            headers=["interface", "link", "port", "oob", "vlan", "addresses", "pool", "ebpf"],
            disable_numparse=True,
        )
    )
    out.append("")
    out.append("vlan filter: " + (vlans.format(state.vlans) or "(empty)"))
    out.append("arp front cache:" + ("" if state.arp else " (empty)"))
    out.extend(f"  {entry.state} {entry.dev} {entry.mac} {entry.ip}" for entry in state.arp)
    counters = {k: v for k, v in state.counters.items() if any(v.values())}
    out.append("counters:" + ("" if counters else " (all zero)"))
    for name, values in counters.items():
        out.append(f"  {name}: " + " ".join(f"{k}={v}" for k, v in sorted(values.items()) if v))
    return "\n".join(out) + "\n"


def _run_filter(args: argparse.Namespace, ctx: Context) -> int:
    from evl_net.kernel import bpfobj
    from evl_net.transports.sim import frames, traffic

    try:
        with open(args.object, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise EvlError(f"cannot read {args.object}", exc.errno) from None
    try:
        program = bpfobj.first_socket_filter(data, args.object)
    except bpfobj.BpfObjectError as exc:
        raise EvlError(str(exc), exc.errno) from None
    from evl_net.transports.sim import ebpf as ebpf_vm

    vm = ebpf_vm.Program(program.insns)
    if args.pcap:
        try:
            with open(args.pcap, "rb") as f:
                batch = list(frames.read_pcap(f.read()))
        except OSError as exc:
            raise EvlError(f"cannot read {args.pcap}", exc.errno) from None
        except ValueError as exc:
            raise EvlError(f"{args.pcap}: {exc}") from None
    elif args.frames:
        batch = _frames_from_jsonl(args.frames)
    else:
        batch = [frames.build(_spec(args, args.vlan))]
    results = []
    for i, frame in enumerate(batch):
        try:
            verdict = traffic.run_filter(vm, frame)
        except ebpf_vm.EbpfError as exc:
            raise EvlError(f"{args.object}: frame {i}: {exc}") from None
        info = frames.inspect(frame)
        results.append(
            {
                "frame": i,
                "size": len(frame),
                "vlan": info.vlan,
                "ethertype": f"0x{info.ethertype:04x}",
                "verdict": verdict,
                "action": traffic.VERDICTS.get(verdict, "other (in-band)"),
            }
        )
    if args.json:
        ctx.stdout.write(json.dumps(results, separators=(",", ":")) + "\n")
    else:
        for r in results:
            vlan = "-" if r["vlan"] is None else r["vlan"]
            ctx.stdout.write(
                f"{r['frame']:>5}  {r['size']:>5} bytes  vlan {vlan:<4}  {r['ethertype']}  "
                f"{r['verdict']} {r['action']}\n"
            )
    return 0


def _frames_from_jsonl(path: str) -> list[bytes]:
    from evl_net.transports.sim.frames import FrameSpec, build

    fields = set(FrameSpec.__dataclass_fields__)
    out = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise EvlError(f"cannot read {path}", exc.errno) from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            spec = json.loads(line)
            if not isinstance(spec, dict) or set(spec) - fields:
                raise ValueError(
                    f"unknown fields {sorted(set(spec) - fields)}" if isinstance(spec, dict) else "not an object"
                )
            out.append(build(FrameSpec(**spec)))
        except (ValueError, TypeError, KeyError) as exc:
            raise EvlError(f"{path}:{n}: bad frame: {exc}") from None
    return out
