"""The simulator's traffic model: RX frames through the EVL input path, TX through the pool.

RX (docs/abi.md, "eBPF RX filter", "VLAN map" and "Device status"): a frame
reaches the EVL input path only when its real device carries a port
(diversion on).  The installed eBPF program decides first (0 drop, 1 accept
IPv4, 2 leave in-band, 3 or no program: VLAN rules, anything else: in-band);
the VLAN rules send IPv4 frames whose VID is in the global map out-of-band.
An out-of-band frame is accounted on the port of its VLAN device when there
is one, else on the real device; a bad UDP checksum counts in
``csum_errors`` and the frame is dropped.  A driver-side RX buffer shortage
counts in ``tx_nomem`` of the real device: the kernel's hook increments that
counter, not ``rx_nomem`` (a quirk kept on purpose).

TX: each send takes a buffer from the real device's pool and gives it back
when the NIC is done; with ``stall`` the NIC never finishes, so the pool
drains and further sends count ``tx_nomem``.

Every function takes the :class:`~evl_net.transports.sim.SimTransport` of
the board and works on its state through its public methods.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from evl_net.errors import KernelError
from evl_net.transports.sim import frames as framelib

if TYPE_CHECKING:
    from evl_net.transports.sim.kernel import SimTransport
    from evl_net.transports.sim.records import BoardState, FilterInfo

DROP, ACCEPT, SKIP, VLAN = 0, 1, 2, 3
U64 = 1 << 64  # the kernel's counters are u64: they wrap
VERDICTS = {DROP: "drop", ACCEPT: "accept", SKIP: "skip", VLAN: "vlan"}

_programs: dict[str, Any] = {}


def program_for(filt: FilterInfo) -> Any:
    """The installed filter's program, decoded once per process."""
    if filt.insns is None:  # the kernel double's filters are real programs, out of the simulator's reach
        raise KernelError(errno.EOPNOTSUPP, "the simulator cannot run the installed eBPF program")
    key = filt.sha256 or filt.insns
    prog = _programs.get(key)
    if prog is None:
        import base64

        from evl_net.transports.sim import ebpf as ebpf_vm

        try:
            prog = _programs[key] = ebpf_vm.Program(base64.b64decode(filt.insns))
        except ebpf_vm.EbpfError as exc:  # only a hand-edited state holds a program -F would refuse
            raise KernelError(errno.EINVAL, f"the installed eBPF program cannot run: {exc}") from None
    return prog


def run_filter(
    prog: Any,
    frame: bytes,
    ifindex: int = 1,
    trace: Callable[[str], None] | None = None,
    maps: list[Any] | None = None,
    info: framelib.FrameInfo | None = None,
) -> int:
    """The program's verdict on a frame, as the EVL input path reads it.

    ``trace`` receives each line the program's bpf_trace_printk() calls write
    to the trace pipe (None: they go nowhere); ``maps`` are the program's maps;
    ``info`` is ``frames.inspect(frame)`` when the caller has it already.
    """
    from evl_net.transports.sim import ebpf as ebpf_vm

    if info is None:
        info = framelib.inspect(frame)
    skb = ebpf_vm.SkbContext.for_frame(frame, vlan=info.vlan, ifindex=ifindex)
    return prog.run(frame, skb, trace, maps)


def ipv4_vlan(frame: bytes) -> int | None:
    """The VLAN id of an IPv4 frame's outer tag; None for an untagged frame or one that is not IPv4.

    What the VLAN rules look at, as ``frames.inspect()`` finds it (the same
    walk over the tags, the same IPv4 test) at a fraction of its cost: without
    a filter, only such a frame with its VID in the VLAN map goes
    out-of-band, and the RX path looks at the others no further (inspect()
    sums the checksum of every UDP frame).
    """
    n = len(frame)
    if n < 18 or ((frame[12] << 8) | frame[13]) not in _TPIDS:
        return None
    vid = ((frame[14] << 8) | frame[15]) & 0x0FFF
    offset = 16
    ethertype = (frame[16] << 8) | frame[17]
    while ethertype in _TPIDS and n >= offset + 6:  # inner tags
        offset += 4
        ethertype = (frame[offset] << 8) | frame[offset + 1]
    l3 = offset + 2
    if ethertype == framelib.ETH_P_IP and n >= l3 + 20 and frame[l3] >> 4 == 4:
        return vid
    return None


_TPIDS = (framelib.ETH_P_8021Q, framelib.ETH_P_8021AD)


@dataclass(slots=True)
class Delivery:
    """What became of one injected frame."""

    verdict: str  # drop / accept / skip / vlan / none (no filter) / other
    disposition: str  # oob / in-band / dropped / csum-error / nomem / not-diverted
    dev: str | None  # the device the frame was accounted on


def _bump(state: BoardState, ifname: str, field: str, by: int = 1) -> None:
    counters = state.counters.setdefault(ifname, {})
    counters[field] = (counters.get(field, 0) + by) % U64


def receive(
    sim: SimTransport, ifname: str, frame: bytes, nomem: bool = False, trace: Callable[[str], None] | None = None
) -> Delivery:
    """Frame ``frame`` arriving on ``ifname`` (``nomem``: the driver has no buffer for it).

    The trace_pipe lines of the filter's bpf_trace_printk() calls go to
    ``trace``, by default to the board's kernel log (``sim.log``, shown by
    ``evl sim log``), the one place the simulated board keeps what it prints.
    """
    iface = sim.device(ifname)
    state = sim.load()
    board = state.board
    interfaces = board.interfaces
    real = iface.parent or ifname  # board.real_device(), inlined here and below: this runs per frame
    sim.mark_dirty()
    for p in state.ports:
        if (interfaces[p].parent or p) == real:
            break
    else:
        return Delivery("none", "not-diverted", None)
    if nomem:
        _bump(state, real, "tx_nomem")  # netif_rx_nomem_oob() counts it on TX: the kernel's quirk
        return Delivery("none", "nomem", real)
    verdict = VLAN
    verdict_name = "none"
    members = sim.vlan_members()
    filt = state.filters.get(real)
    if filt is None:
        vid = ipv4_vlan(frame)
        if vid is None or vid not in members:  # the VLAN rules leave it in-band
            return Delivery(verdict_name, "in-band", None)
    info = framelib.inspect(frame)
    if filt is not None:
        index = list(board.interfaces).index(real) + 1
        from evl_net.transports.sim.ebpf import EbpfError

        prog = program_for(filt)
        boot = state.boot
        prog.clock = lambda: int(max(0.0, time.time() - boot) * 1e9)  # the board's clock: trace lines match its log
        try:
            verdict = run_filter(
                prog,
                frame,
                ifindex=index,
                trace=sim.log if trace is None else trace,
                maps=sim.filter_maps(real) if filt.maps else None,
                info=info,
            )
        except EbpfError as exc:  # what the simulator cannot do yet; the frame is not counted
            raise KernelError(errno.EOPNOTSUPP, f"the eBPF program on {real} failed: {exc}") from None
        verdict_name = VERDICTS.get(verdict, "other")
    if verdict == DROP:
        return Delivery(verdict_name, "dropped", None)
    if verdict == ACCEPT:
        oob = info.ipv4
    elif verdict == VLAN:
        oob = info.ipv4 and info.vlan is not None and info.vlan in members
    else:
        oob = False
    if not oob:
        return Delivery(verdict_name, "in-band", None)
    target = real
    if info.vlan is not None:
        for p in state.ports:  # the port of the VLAN device on top of the real device (so one of its ports)
            port = interfaces[p]
            if port.vlan_id == info.vlan and port.parent == real:
                target = p
                break
    _bump(state, target, "rx_packets")
    _bump(state, target, "rx_bytes", len(frame))
    if info.udp and not info.udp_csum_ok:
        _bump(state, target, "csum_errors")
        return Delivery(verdict_name, "csum-error", target)
    return Delivery(verdict_name, "oob", target)


def transmit(sim: SimTransport, ifname: str, count: int, size: int, stall: bool = False) -> dict[str, Any]:
    """``count`` sends of ``size`` bytes through port ``ifname`` (``stall``: the NIC never completes them)."""
    sim.device(ifname)
    state = sim.load()
    if ifname not in state.ports:
        raise KernelError(errno.ENODEV, f"{ifname} is not an out-of-band port")
    pool = state.pools[state.board.real_device(ifname)]
    if size > pool.skb_size:
        raise KernelError(errno.EMSGSIZE, f"{size} bytes do not fit a {pool.skb_size}-byte buffer")
    # Without a stall each buffer comes back before the next send: every send finds one if any is free.
    # With a stall each send keeps its buffer: the free ones go, then the rest count as nomem.
    if stall:
        sent = min(count, pool.skb_free)
        pool.skb_free -= sent
    else:
        sent = count if pool.skb_free > 0 else 0
    nomem = count - sent
    if sent:
        _bump(state, ifname, "tx_packets", sent)
        _bump(state, ifname, "tx_bytes", sent * size)
    if nomem:
        _bump(state, ifname, "tx_nomem", nomem)
    sim.mark_dirty()
    return {"sent": sent, "nomem": nomem, "skb_free": pool.skb_free, "skb_total": pool.skb_total}


def drain(sim: SimTransport, ifname: str) -> dict[str, Any]:
    """The NIC completes every buffer in flight."""
    sim.device(ifname)
    state = sim.load()
    pool = state.pools.get(state.board.real_device(ifname))
    if pool is None:
        raise KernelError(errno.ENODEV, f"{ifname} has no out-of-band pool")
    released = pool.skb_total - pool.skb_free
    pool.skb_free = pool.skb_total
    sim.mark_dirty()
    return {"released": released}


def set_link(sim: SimTransport, ifname: str, up: bool) -> dict[str, Any]:
    """``ip link set dev IF up|down``: going down dismantles ports, as NETDEV_GOING_DOWN does.

    (docs/abi.md, "Device going down"): VLAN devices on top of a real device
    go down with it, and nothing comes back when the device is up again.
    """
    iface = sim.device(ifname)
    board = sim.board
    changed = iface.up != up
    iface.up = up
    dismantled = []
    if not up:
        affected = [ifname] + [n for n, i in board.interfaces.items() if i.parent == ifname]
        dismantled = [name for name in affected if sim.dismantle(name)]
    sim.mark_dirty()
    return {"changed": changed, "up": up, "dismantled": dismantled}


def delivery_json(d: Delivery) -> dict[str, Any]:
    """The JSON form of a delivery."""
    return asdict(d)
