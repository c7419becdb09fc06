"""The simulator transport's kernel: what the EVL core does for each request, in user space.

:class:`SimTransport` implements every primitive of
:mod:`evl_net.transports.contract` on a simulated board's
:class:`~evl_net.transports.sim.records.BoardState`, with the EVL core's
semantics (docs/abi.md): pool defaults and limits, VLAN ports sharing their
real device's pool ("Ports"), the global VLAN map ("VLAN map"), the ARP
front cache ("Solicitation and the ARP front cache"), eBPF filter checks and
their kernel log lines ("eBPF RX filter").

The state comes from the :mod:`~evl_net.transports.sim.store`, loaded and
locked on first use and stored on :meth:`SimTransport.close`; the traffic
model (:mod:`~evl_net.transports.sim.traffic`), ``evl sim`` and the kernel
double of the tests drive the same state through the public methods below.
The store and the records are imported on first use only.
"""

from __future__ import annotations

import errno
import time

from evl_net.errors import KernelError, device_open_stage
from evl_net.model import DevStat
from evl_net.transports import DEFAULT_POOL, NEIGH_MAYROUTE, NEIGH_PERMANENT, POOL_MAX, TransportBase

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, Protocol

    from evl_net.outcomes import (
        Change,
        CoreAbi,
        FilterInstalled,
        FilterState,
        Interface,
        Link,
        Neighbour,
        PeerRoute,
        PortConfig,
        Solicited,
        VlansSet,
    )
    from evl_net.transports.sim.board import Board, Iface
    from evl_net.transports.sim.records import BoardState, FilterInfo
    from evl_net.transports.sim.store import Store

    class Console(Protocol):
        """Where kernel log lines go: a text stream, or anything that writes and flushes."""

        def write(self, text: str, /) -> Any: ...

        def flush(self) -> Any: ...


#: Kernel log lines kept in the state (the oldest go first).
LOG_KEEP = 500


def boot(board: Board) -> BoardState:
    """The state of ``board`` freshly booted: its initial counters, its ``port = true`` interfaces enabled."""
    from evl_net.transports.sim.records import BoardState

    state = BoardState(
        board=board, boot=time.time(), ports=[], pools={}, counters={}, filters={}, vlans=[], arp=[], log=[]
    )
    for iface in board.interfaces.values():
        counters = {k: v for k, v in iface.counters.items() if not k.startswith("skb_")}
        if counters:
            state.counters[iface.name] = counters
    sim = SimTransport(board=None, state_path="")  # works on this state; never stores it
    sim.state = state
    for iface in board.interfaces.values():
        if iface.port:
            sim.enable_port(iface.name, 0, 0)
            pool = state.pools[board.real_device(iface.name)]
            for key in ("skb_size", "skb_total", "skb_free"):
                if key in iface.counters:
                    setattr(pool, key, iface.counters[key])
    return state


def dismantle(state: BoardState, ifname: str) -> bool:
    """Take port ``ifname`` down (docs/abi.md, "Ports"); False when it is no port, as the kernel's 0 says."""
    if ifname not in state.ports:
        return False
    board = state.board
    state.ports.remove(ifname)
    state.arp = [e for e in state.arp if e.dev != ifname]
    real = board.real_device(ifname)
    if not any(board.real_device(p) == real for p in state.ports):
        # Last port on the real device: pool freed, eBPF filter dropped silently.
        state.pools.pop(real, None)
        state.filters.pop(real, None)
    return True


class SimTransport(TransportBase):
    """The simulated EVL core of one board; a context manager around one invocation.

    ``board`` is a board name, a board file, ``host`` or ``host:NETNS`` (None:
    the default board); ``state_path`` the state file; ``console`` receives
    the kernel log lines as a console would show them; ``cache_dir`` the board
    cache's directory (None: the user's). After :meth:`load`,
    ``state`` is the board's state and ``host_netns`` the namespace a host
    board mirrors ("" = ours; None for a board file).
    """

    name = "sim"

    def __init__(
        self, board: str | None, state_path: str, console: Console | None = None, cache_dir: str | None = None
    ) -> None:
        self.board_spec = board
        self.state_path = state_path
        self.console = console
        self.cache_dir = cache_dir
        self._port_set: tuple[list[str], int, frozenset[str]] | None = None
        self.state: BoardState | None = None
        self.host_netns: str | None = None
        self._store: Store | None = None
        self._dirty = False
        self._maps: dict[str, tuple[Any, list[Any]]] = {}  # real device -> (its filter, the live maps)
        self._vlan_members: tuple[list[int], frozenset[int]] | None = None  # state.vlans, and as a set

    # -- session -------------------------------------------------------

    @property
    def board(self) -> Board:
        """The simulated board (loads the state)."""
        return self.load().board

    def load(self) -> BoardState:
        """The board's state, loaded from the state file (and the file locked) on first use."""
        if self.state is not None:
            return self.state
        if self._store is None:
            from evl_net.transports.sim.store import Store

            self._store = Store(self.state_path, self.cache_dir)
        self.state, self.host_netns = self._store.load(self.board_spec)
        return self.state

    def mark_dirty(self) -> None:
        """Note that the state changed: :meth:`close` stores it."""
        self._dirty = True
        self._port_set = None

    def close(self) -> None:
        """Store the state when it changed, and unlock the state file."""
        self.sync_maps()
        self._maps.clear()
        if self._store is not None:
            self._store.close(self.state, self._dirty)
        self._dirty = False
        self.state = None

    def close_early(self) -> None:
        """Store and unlock before a long wait; the state stays readable, and is not stored again."""
        if self.state is not None and self._store is not None:
            self.sync_maps()
            self._store.close(self.state, self._dirty)
            self._dirty = False

    def reset(self) -> bool:
        """Forget the stored state of every board: the next use boots afresh.  Whether there was one."""
        from evl_net.transports.sim.store import Store

        return Store(self.state_path).reset()

    def snapshot(self) -> dict[str, Any]:
        """The whole state in its JSON form (``evl sim show --json``): the board's in full, the others' as stored."""
        from evl_net.transports.sim.records import encode

        self.sync_maps()
        data: dict[str, Any] = encode(self.load())
        return data

    # -- what the traffic model, evl sim and the kernel double use -------

    def filter_maps(self, real: str) -> list[Any]:
        """The live maps (``ebpf.maps``) of the filter on ``real``, restored from the state on first use."""
        filt = self.load().filters[real]
        cached = self._maps.get(real)
        if cached is None or cached[0] is not filt:
            from evl_net.transports.sim import filtermaps

            cached = self._maps[real] = (filt, filtermaps.live(filt.maps or []))
        return cached[1]

    def sync_maps(self) -> None:
        """Write what the programs changed in their maps back into the state."""
        if not self._maps or self.state is None:
            return
        from evl_net.transports.sim import filtermaps

        for real, (filt, live) in self._maps.items():
            current = self.state.filters.get(real)
            if current is not None and current is filt and filtermaps.store(live, current.maps or []):
                self._dirty = True

    def device(self, ifname: str) -> Iface:
        """The board's interface ``ifname``; ENODEV, as EVL_NETIOC_DEVOPEN fails, when there is none."""
        iface = self.load().board.interfaces.get(ifname)
        if iface is None:
            raise KernelError(errno.ENODEV, stage=device_open_stage(ifname))
        return iface

    def log(self, text: str) -> None:
        """Print a kernel log line: stamped with the board's uptime, kept in the state, shown on the console."""
        state = self.load()
        uptime = max(0.0, time.time() - state.boot)
        line = f"[{int(uptime):5d}.{int((uptime % 1) * 1e6):06d}] {text}"
        state.log = [*state.log, line][-LOG_KEEP:]
        self._dirty = True
        if self.console is not None:
            self.console.write(line + "\n")
            self.console.flush()

    def netdev_prefix(self, ifname: str) -> str:
        """What netdev_printk puts before a device's log line: ``<driver> <bus id> <ifname>: `` given a bus."""
        iface = self.device(ifname)
        if iface.bus:
            return f"{iface.driver} {iface.bus} {ifname}: "
        return f"{ifname}: "

    def dismantle(self, ifname: str) -> bool:
        """Take port ``ifname`` down, as disabling it or its device going down does; False if it is no port."""
        if dismantle(self.load(), ifname):
            self._dirty = True
            self._port_set = None
            return True
        return False

    def filter_device(self, ifname: str) -> str:
        """The real device whose RX filter a request on port ``ifname`` acts on; ENODEV for a non-port."""
        self.device(ifname)
        state = self.load()
        if ifname not in state.ports:
            raise KernelError(errno.ENODEV, f"{ifname} is not an out-of-band port")
        return state.board.real_device(ifname)

    def attach_filter(self, real: str, info: FilterInfo) -> None:
        """Install ``info`` as the RX filter of ``real``, replacing any, and log it as the kernel does."""
        self.load().filters[real] = info
        self._dirty = True
        self.log(self.netdev_prefix(real) + "out-of-band eBPF program installed")

    def resolve(self, host: str) -> str:
        """The IPv4 address ``host`` stands for on this board; ESRCH when nothing knows it."""
        from evl_net.transports.sim import fib

        return fib.resolve(self.board, host, self.host_netns)

    # -- the primitives ------------------------------------------------

    def page_size(self) -> int:
        return self.board.page_size

    def interfaces(self) -> Sequence[Interface]:
        from evl_net.outcomes import Interface

        state = self.load()
        ports = set(state.ports)
        return [Interface(name=i.name, oob_port=i.name in ports, up=i.up) for i in state.board.interfaces.values()]

    def enable_port(self, ifname: str, pool_size: int, buffer_size: int) -> PortConfig:
        from evl_net.outcomes import PortConfig  # only mutations need it

        iface = self.device(ifname)
        state = self.load()
        board = state.board
        if pool_size < 0 or buffer_size < 0 or pool_size > POOL_MAX or buffer_size > 4 * board.page_size:
            raise KernelError(errno.EINVAL)
        real = board.real_device(ifname)
        pool = state.pools.get(real)
        if ifname in state.ports:
            assert pool is not None
            return PortConfig(False, pool.skb_total, pool.skb_size)
        real_iface = board.interfaces[real]
        if not real_iface.up or not iface.up:
            raise KernelError(errno.ENETDOWN)
        if pool is None:
            from evl_net.transports.sim.records import Pool

            # Sizes apply only when the first port on the real device comes up.
            size = buffer_size or board.page_size
            if not real_iface.loopback and size < real_iface.mtu:
                size = real_iface.mtu
            total = pool_size or DEFAULT_POOL
            pool = state.pools[real] = Pool(skb_size=size, skb_total=total, skb_free=total)
        state.ports.append(ifname)
        self._dirty = True
        self._port_set = None
        return PortConfig(True, pool.skb_total, pool.skb_size)

    def disable_port(self, ifname: str) -> Change:
        from evl_net.outcomes import Change  # only mutations need it

        self.device(ifname)
        return Change(self.dismantle(ifname))

    def get_stat(self, ifname: str) -> DevStat:
        iface = self.device(ifname)
        state = self.load()
        stat = DevStat.from_counters(state.counters.get(ifname, {}))
        pool = state.pools.get(state.board.real_device(ifname))
        if pool is not None:
            stat.skb_size, stat.skb_total, stat.skb_free = pool.skb_size, pool.skb_total, pool.skb_free
        stat.oob_capable = iface.oob_capable
        stat.oob_port = ifname in self._ports(state)
        return stat

    def _ports(self, state: BoardState) -> frozenset[str]:
        """The ports as a set, for a query of every interface (the list is kept in enabling order).

        Forgotten whenever this transport changes the ports (:meth:`enable_port`,
        :meth:`dismantle`, :meth:`mark_dirty`), the state is another, or the list's
        length changed (a host board's reconciliation dismantles ports itself).
        """
        cached = self._port_set
        if cached is None or cached[0] is not state.ports or cached[1] != len(state.ports):
            cached = self._port_set = (state.ports, len(state.ports), frozenset(state.ports))
        return cached[2]

    def get_vlans(self) -> str:
        from evl_net.kernel import vlans

        return vlans.format(self.load().vlans)

    def vlan_members(self) -> frozenset[int]:
        """The global VLAN map as a set: the RX path tests every frame's VID against it.

        Built again whenever ``state.vlans`` is another list (:meth:`set_vlans`
        replaces it, never changes it in place; a state loaded again has its own).
        """
        vlans = self.load().vlans
        cached = self._vlan_members
        if cached is None or cached[0] is not vlans:
            cached = self._vlan_members = (vlans, frozenset(vlans))
        return cached[1]

    def set_vlans(self, text: str) -> VlansSet:
        from evl_net.kernel import vlans
        from evl_net.outcomes import VlansSet  # only mutations need it

        state = self.load()
        ids = sorted(vlans.parse(text))
        changed = ids != state.vlans
        if changed:
            state.vlans = ids
            self._dirty = True
        return VlansSet(changed, vlans.format(ids))

    def remove_rx_filter(self, ifname: str) -> Change:
        from evl_net.outcomes import Change  # only mutations need it

        real = self.filter_device(ifname)
        if self.load().filters.pop(real, None) is not None:
            self._dirty = True
            self.log(self.netdev_prefix(real) + "out-of-band eBPF program removed")
        # A real kernel does not tell whether a filter was there: as on one, a removal counts as a change.
        return Change(True)

    def install_rx_filter(self, ifname: str, obj: bytes, obj_name: str) -> FilterInstalled:
        from evl_net.outcomes import FilterInstalled  # only mutations need it

        real = self.filter_device(ifname)
        from evl_net.transports.sim import filtermaps, loader

        # libbpf, then BPF_PROG_LOAD and its verifier, before EVL sees the program: a refusal there logs nothing.
        loaded = loader.load(
            obj, obj_name, log=lambda line: self.log(self.netdev_prefix(real) + line), cpus=self.board.cpus
        )
        import base64
        import hashlib

        from evl_net.transports.sim.records import FilterInfo

        sha256 = hashlib.sha256(obj).hexdigest()
        was = self.load().filters.get(real)
        # Reloading the object the device already runs is no change: as on the kernel, the program is
        # still loaded and attached again (its maps start afresh), but the device's filter stays the same.
        changed = was is None or was.sha256 != sha256
        self.attach_filter(
            real,
            FilterInfo(
                object=obj_name,
                section=loaded.section,
                name=loaded.name,
                license=loaded.license,
                sha256=sha256,
                insns=base64.b64encode(loaded.insns).decode(),  # dead code sanitized, as the kernel keeps it
                maps=filtermaps.created(loaded.maps, self.board.cpus) if loaded.maps else None,
            ),
        )
        return FilterInstalled(changed, loaded.name, loaded.section)

    def solicit(self, host: str, ifname: str | None, flags: int) -> Solicited:
        from evl_net.outcomes import Solicited  # only mutations need it
        from evl_net.transports.sim import fib

        ip = self.resolve(host)
        state = self.load()
        board = state.board
        if ifname is not None and ifname not in board.interfaces:
            raise KernelError(errno.ENODEV, stage=f"cannot bind UDP socket to device {ifname}")
        if flags & ~(NEIGH_PERMANENT | NEIGH_MAYROUTE):
            raise KernelError(errno.EINVAL)
        if ifname is not None and ifname not in state.ports:
            raise KernelError(errno.ENODEV, f"{ifname} is not an out-of-band port")
        permanent, may_route = bool(flags & NEIGH_PERMANENT), bool(flags & NEIGH_MAYROUTE)
        dev, nexthop, noarp = fib.route(board, ip, ifname, may_route, self.host_netns)
        if dev not in state.ports:
            raise KernelError(errno.ENODEV, f"{dev}, the way to {ip}, is not an out-of-band port")
        if noarp:
            return Solicited(ip, permanent, may_route, changed=False)  # never cached
        peer = fib.peer(board, state, nexthop, dev, self.host_netns)
        if peer is None or not peer.reachable:
            mac = self._wait_for(nexthop, dev)
            state = self.load()  # locked again, as it is now
            from evl_net.transports.sim.board import Peer

            peer = Peer(ip=nexthop, mac=mac, reachable=True, dev=dev)
        from evl_net.transports.sim.records import ArpEntry

        for entry in state.arp:
            if entry.dev == dev and entry.ip == nexthop:
                changed = permanent and entry.state != "P"
                if changed:
                    entry.state = "P"  # a permanent entry is never downgraded
                    self._dirty = True
                return Solicited(ip, permanent, may_route, changed)
        state.arp.append(ArpEntry(dev=dev, ip=nexthop, mac=peer.mac, state="P" if permanent else "R"))
        self._dirty = True
        return Solicited(ip, permanent, may_route, changed=True)

    def _wait_for(self, nexthop: str, dev: str) -> str:
        """The MAC of an unresolved next hop, after the in-band ARP resolution; ETIMEDOUT when none answers.

        The state is stored and unlocked for the wait, and loaded again when
        an answer comes: the port may have gone meanwhile, and nothing enters
        the cache of a device that is no port (the wait then runs out).
        """
        board = self.board
        deadline = time.monotonic() + board.solicit_timeout
        self.close_early()  # nobody queues behind the wait
        mac = None
        if self.host_netns is not None:
            # The kernel starts the ARP resolution on the device and waits for the answer.
            from evl_net.transports.sim import host as mirror  # "host" is the peer asked for

            source = mirror.arp_source(board.interfaces[dev].addresses, nexthop)
            mac = mirror.arp_solicit(nexthop, dev, board.solicit_timeout, self.host_netns or None, source)
        if mac is not None:
            self.state = None
            if dev in self.load().ports:
                return mac
            self.close_early()
        time.sleep(max(0.0, deadline - time.monotonic()))
        raise KernelError(errno.ETIMEDOUT)

    # -- what evl net-config reads and changes -------------------------

    def core_abi(self) -> CoreAbi:
        from evl_core import EVL_ABI_PREREQ
        from evl_net.outcomes import CoreAbi

        return CoreAbi(EVL_ABI_PREREQ, EVL_ABI_PREREQ)  # the simulated core speaks the one ABI we know

    def links(self) -> Sequence[Link]:
        from evl_net.outcomes import Link

        state = self.load()
        return [
            Link(
                name=i.name,
                parent=i.parent,
                vlan_id=i.vlan_id,
                mtu=i.mtu,
                up=i.up,
                loopback=i.loopback,
                addresses=sorted(i.addresses),
                oob_capable=i.oob_capable,
                oob_port=i.name in state.ports,
            )
            for i in state.board.interfaces.values()
        ]

    def filter_state(self, ifname: str) -> FilterState:
        from evl_net.outcomes import FilterState

        real = self.filter_device(ifname)
        filt = self.load().filters.get(real)
        if filt is None:
            return FilterState(real, False)
        return FilterState(real, True, filt.object, filt.sha256, filt.name)

    def arp_cache(self) -> Sequence[Neighbour]:
        from evl_net.outcomes import Neighbour

        return [Neighbour(e.dev, e.ip, e.mac, e.state == "P") for e in self.load().arp]

    def peer_route(self, host: str, ifname: str | None, flags: int) -> PeerRoute:
        from evl_net.outcomes import PeerRoute
        from evl_net.transports.sim import fib

        ip = self.resolve(host)
        state = self.load()
        if ifname is not None and ifname not in state.board.interfaces:
            raise KernelError(errno.ENODEV, stage=f"cannot bind UDP socket to device {ifname}")
        if flags & ~(NEIGH_PERMANENT | NEIGH_MAYROUTE):
            raise KernelError(errno.EINVAL)
        dev, nexthop, noarp = fib.route(state.board, ip, ifname, bool(flags & NEIGH_MAYROUTE), self.host_netns)
        if noarp:
            return PeerRoute(ip, dev, nexthop, "N")
        cached = next((e.state for e in state.arp if e.dev == dev and e.ip == nexthop), "")
        return PeerRoute(ip, dev, nexthop, cached)

    def flush_arp(self) -> Change:
        from evl_net.outcomes import Change

        state = self.load()
        changed = bool(state.arp)
        state.arp = []
        self._dirty = True
        return Change(changed)

    def _link_change(self, request: str, *args: Any) -> bool:
        """Run a link request on the live kernel a host board mirrors, and mirror its effect; whether it did."""
        from evl_net.transports import rtnetlink

        assert self._store is not None and self.state is not None
        changed: bool = getattr(rtnetlink, request)(self.host_netns or None, *args)
        self.state = self._store.refresh_host(self.state, self.host_netns or "")
        self._dirty = True
        self._port_set = None
        return changed

    def create_vlan(self, ifname: str, parent: str, vlan_id: int) -> Change:
        from evl_net.kernel.names import name_problem
        from evl_net.outcomes import Change
        from evl_net.transports.sim.board import Iface

        state = self.load()
        board = state.board
        if name_problem(ifname) is not None or not 0 <= vlan_id <= 4094:
            raise KernelError(errno.EINVAL)
        if ifname in board.interfaces:
            raise KernelError(errno.EEXIST)
        real = board.interfaces.get(parent)
        if real is None:
            raise KernelError(errno.ENODEV, f"no device {parent}")
        if self.host_netns is not None:
            return Change(self._link_change("create_vlan", ifname, parent, vlan_id))
        if real.parent is not None:
            raise KernelError(errno.EOPNOTSUPP, "the simulator has no stacked VLAN devices")
        if any(i.parent == parent and i.vlan_id == vlan_id for i in board.interfaces.values()):
            raise KernelError(errno.EEXIST, f"VLAN {vlan_id} exists on {parent}")
        board.interfaces[ifname] = Iface(
            name=ifname,
            parent=parent,
            vlan_id=vlan_id,
            mtu=real.mtu,
            up=False,  # as the kernel creates it
            oob_capable=real.oob_capable,
            mac=real.mac,
            driver="802.1Q VLAN Support",
        )
        self._dirty = True
        return Change(True)

    def delete_link(self, ifname: str) -> Change:
        from evl_net.outcomes import Change

        iface = self.device(ifname)
        if self.host_netns is not None:
            return Change(self._link_change("delete_link", ifname))
        if iface.parent is None:
            raise KernelError(errno.EOPNOTSUPP, f"{ifname} is a real device: only VLAN devices are deleted")
        state = self.load()
        self.dismantle(ifname)  # unregistering takes the device down first
        del state.board.interfaces[ifname]
        state.counters.pop(ifname, None)
        state.board.routes = [r for r in state.board.routes if r.dev != ifname]
        self._dirty = True
        return Change(True)

    def set_mtu(self, ifname: str, mtu: int) -> Change:
        from evl_net.outcomes import Change

        iface = self.device(ifname)
        if self.host_netns is not None:
            return Change(self._link_change("set_mtu", ifname, mtu))
        board = self.load().board
        if not 68 <= mtu <= 65535:
            raise KernelError(errno.EINVAL)
        if iface.parent is not None and mtu > board.interfaces[iface.parent].mtu:
            raise KernelError(errno.ERANGE, "a VLAN device's MTU cannot exceed its parent's")
        if mtu == iface.mtu:
            return Change(False)
        iface.mtu = mtu
        for vlan in board.interfaces.values():
            if vlan.parent == ifname and vlan.mtu > mtu:
                vlan.mtu = mtu  # as the VLAN driver follows its real device down
        self._dirty = True
        return Change(True)

    def set_link_up(self, ifname: str, up: int) -> Change:
        from evl_net.outcomes import Change

        iface = self.device(ifname)
        if up not in (0, 1):
            raise KernelError(errno.EINVAL)
        if self.host_netns is not None:
            return Change(self._link_change("set_link_up", ifname, up))
        if bool(up) == iface.up:
            return Change(False)
        iface.up = bool(up)
        if not up:
            # NETDEV_GOING_DOWN (docs/abi.md, "Device going down"): the port goes, and a real device
            # takes the ports of the VLAN devices on it along.
            board = self.load().board
            for name in [ifname, *(i.name for i in board.interfaces.values() if i.parent == ifname)]:
                self.dismantle(name)
        self._dirty = True
        return Change(True)

    def add_address(self, ifname: str, address: str) -> Change:
        from evl_net.outcomes import Change

        iface = self.device(ifname)
        cidr = _cidr(address)
        if self.host_netns is not None:
            return Change(self._link_change("add_address", ifname, cidr))
        if cidr in iface.addresses:
            raise KernelError(errno.EEXIST)
        iface.addresses = [*iface.addresses, cidr]
        self._dirty = True
        return Change(True)

    def remove_address(self, ifname: str, address: str) -> Change:
        from evl_net.outcomes import Change

        iface = self.device(ifname)
        cidr = _cidr(address)
        if self.host_netns is not None:
            return Change(self._link_change("remove_address", ifname, cidr))
        if cidr not in iface.addresses:
            raise KernelError(errno.EADDRNOTAVAIL)
        iface.addresses = [a for a in iface.addresses if a != cidr]
        self._dirty = True
        return Change(True)


def _cidr(text: str) -> str:
    """``text`` as an IPv4 address/prefix in its canonical form; EINVAL unless it is one."""
    import ipaddress

    if "/" not in text:
        raise KernelError(errno.EINVAL, f"not an IPv4 address/prefix: {text!r}")
    try:
        return str(ipaddress.IPv4Interface(text))
    except ValueError:
        raise KernelError(errno.EINVAL, f"not an IPv4 address/prefix: {text!r}") from None
