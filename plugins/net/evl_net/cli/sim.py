"""``evl sim``: drive and inspect the simulated EVL network stack."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from evl_core.commands import Context
from evl_core.errors import EvlError, shown
from evl_core.files import read_regular, read_text

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
    sub.add_parser("log", help="print the kernel log lines of the simulated board (bpf_trace_printk() output too)")
    maps = sub.add_parser(
        "maps", help="dump the eBPF maps of the installed RX filters, as 'bpftool map dump' does (with --json: -j)"
    )
    maps.add_argument("dev", nargs="?", type=_ifname, help="only the filter of this interface (its real device)")
    maps.add_argument(
        "--consume", action="store_true", help="read the ring buffers' records, as a user-space consumer would"
    )

    rx = sub.add_parser("rx", help="inject received frames on an interface")
    rx.add_argument(
        "dev", type=_ifname, help="the interface the frames arrive on (a VLAN device tags them with its id)"
    )
    _frame_options(rx)
    rx.add_argument("--count", type=_frames, default=1, help=f"number of frames (default 1, at most {COUNT_MAX})")
    rx.add_argument("--nomem", action="store_true", help="the driver has no buffer for them")

    tx = sub.add_parser("tx", help="send frames through an out-of-band port")
    tx.add_argument("dev", type=_ifname, help="the out-of-band port")
    tx.add_argument("--count", type=_frames, default=1, help=f"number of frames (default 1, at most {COUNT_MAX})")
    tx.add_argument("--size", type=_size, default=64, help="bytes per frame (default 64)")
    tx.add_argument("--stall", action="store_true", help="the NIC does not complete them: buffers stay in flight")

    drain = sub.add_parser("drain", help="complete every TX buffer in flight on an interface's pool")
    drain.add_argument("dev", type=_ifname)

    link = sub.add_parser("link", help="bring an interface up or down (down dismantles its port)")
    link.add_argument("dev", type=_ifname)
    link.add_argument("state", choices=("up", "down"))

    filt = sub.add_parser("filter", help="run an eBPF object's first program over frames and print each verdict")
    what = filt.add_mutually_exclusive_group(required=True)
    what.add_argument("object", nargs="?", help="an eBPF ELF object with a socket-filter program")
    what.add_argument(
        "--cflags",
        action="store_true",
        help="print the compiler flags that build a filter without a kernel tree (the -I of this package's "
        "<evl/net/bpf-abi.h> and of the machine's multiarch headers), e.g. "
        "clang -O2 -target bpf $(evl sim filter --cflags) -c filter.c",
    )
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


#: The most frames one ``evl sim rx``/``tx`` injects (a long run shows progress and stops on Ctrl-C).
COUNT_MAX = 10_000_000
#: The largest file ``evl sim filter`` reads: an object, a pcap, a JSON-lines file.
FILE_MAX = 256 * 1024 * 1024


def _ranged(text: str, low: int, high: int, what: str) -> int:
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise argparse.ArgumentTypeError(f"expected {what} in {low}..{high}, got '{shown(text)}'")
    return int(text)


def _frames(text: str) -> int:
    return _ranged(text, 1, COUNT_MAX, "a number of frames")


def _size(text: str) -> int:
    from evl_net.transports.sim.frames import SIZE_MAX, SIZE_MIN

    return _ranged(text, SIZE_MIN, SIZE_MAX, "a frame size")


def _port(text: str) -> int:
    from evl_net.transports.sim.frames import PORT_MAX

    return _ranged(text, 0, PORT_MAX, "a port")


def _ifname(text: str) -> str:
    from evl_net.kernel.names import name_problem

    problem = name_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"invalid interface name '{shown(text)}': {problem}")
    return text


def _vlan(text: str) -> int:
    return _ranged(text, 0, 4095, "a VLAN id")


def _ipv4(text: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IPv4 address: '{shown(text)}'") from None


def _frame_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--proto", choices=("udp", "tcp", "icmp", "arp", "ipv6"), default="udp", help="default udp")
    p.add_argument("--vlan", type=_vlan, help="802.1Q tag (default: the VLAN device's id, else untagged)")
    p.add_argument("--size", dest="frame_size", type=_size, default=64, help="frame size in bytes (default 64)")
    p.add_argument("--src", type=_ipv4, default="10.10.10.10", help="IPv4 source")
    p.add_argument("--dst", type=_ipv4, default="10.10.10.11", help="IPv4 destination")
    p.add_argument("--sport", type=_port, default=4000)
    p.add_argument("--dport", type=_port, default=5000)
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

    if args.board == "":
        raise EvlError("--board needs a board name or file")
    sim = factory(Request(board=args.board), ctx.env)
    sim.console = ctx.stderr
    return sim


def _print(ctx: Context, args: argparse.Namespace, data: Any, text: str, changed: bool = False) -> None:
    """Print a result (``changed``: the simulated board changed before, and a write error says so)."""
    from evl_core.streams import OutputError

    try:
        ctx.stdout.write(json.dumps(data, separators=(",", ":")) + "\n" if args.json else text)
        ctx.stdout.flush()
    except OutputError as exc:
        if not changed:
            raise
        what = args.what + (f" on {shown(args.dev)}" if getattr(args, "dev", None) else "")
        raise OutputError(exc.errno, f"write error after the simulated board was changed ({what})") from None


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
            changed=removed,
        )
        return 0
    with sim:
        try:
            if args.what == "show":
                _print(ctx, args, sim.snapshot(), _show(sim))
            elif args.what == "maps":
                _maps(sim, args, ctx)
            elif args.what == "log":
                lines = sim.load().log
                _print(ctx, args, lines, "".join(line + "\n" for line in lines))
            elif args.what == "rx":
                iface = sim.device(args.dev)
                vlan = args.vlan if args.vlan is not None else iface.vlan_id
                frame = frames.build(_spec(args, vlan))
                tally: dict[str, int] = {}
                last = None
                progress = Progress(ctx.stderr, "rx", args.count)
                done = 0
                with StopOnInterrupt() as stop:  # Ctrl-C ends the run between two frames, never inside one
                    for done in range(1, args.count + 1):
                        last = traffic.receive(sim, args.dev, frame, nomem=args.nomem)
                        tally[last.disposition] = tally.get(last.disposition, 0) + 1
                        progress.tick(done)
                        if stop.requested:
                            break
                interrupted = stop.requested
                progress.end()
                data: dict[str, Any] = {
                    "frames": done,
                    "dispositions": tally,
                    "verdict": last.verdict if last else None,
                    "dev": last.dev if last else None,
                    "interrupted": interrupted,
                }
                text = ", ".join(f"{n} {d}" for d, n in sorted(tally.items())) or "no frame"
                line = f"{text}" + (f" (on {last.dev})" if last and last.dev else "") + "\n"
                if interrupted:  # said first: the status is 130 even if the result cannot be printed
                    ctx.stderr.write(f"{ctx.prog}: interrupted after {done} of {args.count} frames (those are kept)\n")
                try:
                    _print(ctx, args, data, line, changed=done > 0)
                except EvlError as exc:
                    if not interrupted:
                        raise
                    ctx.stderr.write(exc.format(ctx.prog) + "\n")
                return 130 if interrupted else 0
            elif args.what == "tx":
                data = traffic.transmit(sim, args.dev, args.count, args.size, stall=args.stall)  # arithmetic, no loop
                _print(
                    ctx,
                    args,
                    data,
                    f"{data['sent']} sent, {data['nomem']} without buffer, "
                    f"pool {data['skb_free']} / {data['skb_total']} free\n",
                    changed=True,
                )
            elif args.what == "drain":
                data = traffic.drain(sim, args.dev)
                _print(ctx, args, data, f"{data['released']} buffers released\n", changed=data["released"] > 0)
            elif args.what == "link":
                data = traffic.set_link(sim, args.dev, args.state == "up")
                gone = ", ".join(data["dismantled"])
                text = f"{args.dev} {args.state}" + (f"; ports dismantled: {gone}" if gone else "")
                _print(ctx, args, data, text + "\n", changed=data["changed"] or bool(data["dismantled"]))
        except OSError as exc:
            dev = getattr(args, "dev", None)  # None too for `evl sim maps` without a device
            raise EvlError.from_oserror(f"cannot {args.what}" + (f" on {shown(dev)}" if dev else ""), exc) from None
    return 0


def _maps(sim: SimTransport, args: argparse.Namespace, ctx: Context) -> None:
    from evl_net.transports.sim import filtermaps

    state = sim.load()
    reals = sorted(state.filters)
    if args.dev is not None:
        sim.device(args.dev)
        real = state.board.real_device(args.dev)
        if real not in state.filters:
            raise EvlError(f"no eBPF filter on {shown(real)}")
        reals = [real]
    sim.sync_maps()
    data: dict[str, Any] = {}
    text = []
    consumed = False
    for real in reals:
        filt = state.filters[real]
        if filt.maps is None:
            continue
        data[real] = filtermaps.dump(filt.maps)
        header = f"{real}: {shown(filt.name or '?')} ({shown(filt.object or '?')})\n"
        text.append(header + filtermaps.text(filt.maps, consuming=args.consume))
        if args.consume:
            consumed = filtermaps.consume(filt.maps) or consumed
    if consumed:
        sim.mark_dirty()
    _print(ctx, args, data, "\n".join(text) if text else "no eBPF maps\n", changed=consumed)


class StopOnInterrupt:
    """SIGINT sets ``requested`` instead of raising, for the time of a loop that checks it."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> StopOnInterrupt:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class Progress:
    """A progress line on a terminal's stderr for long runs (nothing when stderr is not a terminal)."""

    EVERY = 0.25  # seconds between redraws

    def __init__(self, stream: Any, what: str, total: int) -> None:
        import time

        self.stream = stream
        self.what = what
        self.total = total
        self.shown = False
        self.clock = time.monotonic
        self.next = self.clock() + self.EVERY
        self.on = total >= 10_000 and getattr(stream, "isatty", lambda: False)()

    def tick(self, done: int) -> None:
        if self.on and not done & 0x3FF and self.clock() >= self.next:
            self.next = self.clock() + self.EVERY
            self.stream.write(f"\r{self.what}: {done} / {self.total} frames ({100 * done // self.total}%)")
            self.stream.flush()
            self.shown = True

    def end(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _show(sim: SimTransport) -> str:
    from tabulate import tabulate

    from evl_net.kernel import vlans
    from evl_net.kernel.bpflink import MAP_TYPES as MAP_TYPE_NAMES

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
    sim.sync_maps()
    with_maps = {real: f.maps for real, f in state.filters.items() if f.maps}
    out.append("ebpf maps:" + ("" if with_maps else " (none)"))
    for real, maps in with_maps.items():
        listed = ", ".join(f"{m.name} ({MAP_TYPE_NAMES.get(m.type, m.type)}, {_elements(m)})" for m in maps)
        out.append(f"  {real}: {listed}  (evl sim maps {real})")
    counters = {k: v for k, v in state.counters.items() if any(v.values())}
    out.append("counters:" + ("" if counters else " (all zero)"))
    for name, values in counters.items():
        out.append(f"  {name}: " + " ".join(f"{k}={v}" for k, v in sorted(values.items()) if v))
    return "\n".join(out) + "\n"


def _elements(m: Any) -> str:
    """How many elements ``evl sim maps`` would list: every index of an array, the records of a ring buffer."""
    if m.records is not None:
        return f"{len(m.records)} record{'s' if len(m.records) != 1 else ''}"
    from evl_net.transports.sim.ebpf import maps

    n = m.max_entries if m.type in (maps.ARRAY, maps.PERCPU_ARRAY) else len(m.entries)
    return f"{n} element{'s' if n != 1 else ''}"


def cflags() -> list[str]:
    """``-I`` flags for building an EVL RX filter: the shipped ABI header, and ``asm/types.h`` on multiarch systems.

    ``clang -target bpf`` does not search the host's multiarch directory
    (``/usr/include/x86_64-linux-gnu`` on Debian), where ``<linux/types.h>``
    finds ``<asm/types.h>``.
    """
    import os
    import platform
    import sysconfig

    include = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "include")
    flags = [f"-I{include}"]
    triplet = sysconfig.get_config_var("MULTIARCH") or f"{platform.machine()}-linux-gnu"
    multiarch = os.path.join("/usr/include", triplet)
    if os.path.isdir(os.path.join(multiarch, "asm")):
        flags.append(f"-I{multiarch}")
    return flags


def _run_filter(args: argparse.Namespace, ctx: Context) -> int:
    from evl_net.transports.sim import frames, traffic

    if args.cflags:
        ctx.stdout.write(" ".join(cflags()) + "\n")
        return 0

    data = read_regular(args.object, "eBPF object", FILE_MAX)
    from evl_net.errors import KernelError
    from evl_net.transports.sim import ebpf as ebpf_vm
    from evl_net.transports.sim import filtermaps, loader

    # What -F would refuse is refused here too, in the same words: the kernel's verifier first.
    try:
        loaded = loader.load(data, shown(args.object))
    except KernelError as exc:
        raise EvlError(exc.detail or str(exc), exc.errno) from None
    vm = loaded.program
    map_states = filtermaps.created(loaded.maps, 1)
    live = filtermaps.live(map_states)
    if args.pcap:
        raw = read_regular(args.pcap, "pcap file", FILE_MAX)
        try:
            batch = list(frames.read_pcap(raw))
        except ValueError as exc:
            raise EvlError(f"{shown(args.pcap)}: {exc}") from None
    elif args.frames:
        batch = _frames_from_jsonl(args.frames)
    else:
        batch = [frames.build(_spec(args, args.vlan))]
    results: list[dict[str, Any]] = []
    for i, frame in enumerate(batch):
        trace: list[str] = []  # what the program's bpf_trace_printk() calls wrote for this frame
        try:
            verdict = traffic.run_filter(vm, frame, trace=trace.append, maps=live)
        except ebpf_vm.EbpfError as exc:
            raise EvlError(f"{shown(args.object)}: frame {i}: {exc}") from None
        except ValueError as exc:  # a frame no NIC delivers (shorter than its Ethernet header)
            raise EvlError(f"{shown(args.pcap or args.frames or 'frame')}: frame {i}: {exc}") from None
        info = frames.inspect(frame)
        results.append(
            {
                "frame": i,
                "size": len(frame),
                "vlan": info.vlan,
                "ethertype": f"0x{info.ethertype:04x}",
                "verdict": verdict,
                "action": traffic.VERDICTS.get(verdict, "other (in-band)"),
                "trace": trace,
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
            ctx.stdout.write("".join(f"{line}\n" for line in r["trace"]))  # as trace_pipe shows them
        filtermaps.store(live, map_states)
        dumped = [m for m in map_states if m.section in (".maps", "maps")]
        if dumped:
            ctx.stdout.write("\n" + filtermaps.text(dumped))
    return 0


def _frames_from_jsonl(path: str) -> list[bytes]:
    from evl_net.transports.sim.frames import FrameSpec, build, check

    fields = set(FrameSpec.__dataclass_fields__)
    out: list[bytes] = []
    lines = read_text(path, "frames file", FILE_MAX).splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if len(out) >= COUNT_MAX:
            raise EvlError(f"{shown(path)}:{n}: more than {COUNT_MAX} frames")
        try:
            spec = json.loads(line)
            if not isinstance(spec, dict):
                raise ValueError("not a JSON object")
            if set(spec) - fields:
                raise ValueError(f"unknown fields {sorted(set(spec) - fields)}")
            frame = FrameSpec(**spec)
            check(frame)
            out.append(build(frame))
        except RecursionError:
            raise EvlError(f"{shown(path)}:{n}: bad frame: nested too deep") from None
        except (ValueError, TypeError, KeyError) as exc:
            raise EvlError(f"{shown(path)}:{n}: bad frame: {shown(str(exc))}") from None
    return out
