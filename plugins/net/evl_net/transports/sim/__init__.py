"""The simulator transport: the EVL network stack's kernel semantics, in user space.

Every operation reproduces what the EVL core does (evl-abi §2–§8): pool
defaults and limits, VLAN ports sharing their real device's pool, the global
VLAN map, the ARP front cache, eBPF filter checks and the kernel log lines.
"""

from __future__ import annotations

import errno
import os
import time
from typing import Any, Mapping, Sequence, TextIO

from evl_net.transports import (
    DEFAULT_POOL, NEIGH_MAYROUTE, NEIGH_PERMANENT, POOL_MAX, DevStat, Interface, Transport, kernel_error,
)
from evl_net.errors import device_open_stage
from evl_net.transports.sim import board as boards
from evl_net.transports.sim.state import StateFile, default_path

BOARD_ENV = "EVL_SIM_BOARD"
LOG_KEEP = 500
BROADCAST = "255.255.255.255"


def host_netns(spec: str | None) -> str | None:
    """The namespace a ``host`` / ``host:NETNS`` board mirrors ("" = ours), None for other boards."""
    if spec == "host":
        return ""
    if spec and spec.startswith("host:") and spec[5:]:
        return spec[5:]
    return None


def factory(request: Any, env: Mapping[str, str]) -> "SimTransport":
    return SimTransport(
        board=request.board or env.get(BOARD_ENV) or None,
        state_path=default_path(env),
    )


def new_state(board: boards.Board) -> dict[str, Any]:
    """The state of a freshly booted board."""
    state: dict[str, Any] = {
        "board": board.to_dict(),
        "boot": time.time(),
        "ports": [],
        "pools": {},
        "counters": {},
        "filters": {},
        "vlans": [],
        "arp": [],
        "log": [],
    }
    for iface in board.interfaces.values():
        counters = {k: v for k, v in iface.counters.items() if not k.startswith("skb_")}
        if counters:
            state["counters"][iface.name] = counters
    sim = SimTransport(board=None, state_path="")  # works on this state; never stores it
    sim.board, sim.state = board, state
    for iface in board.interfaces.values():
        if iface.port:
            sim.enable_port(iface.name, 0, 0)
            pool = state["pools"][board.real_device(iface.name)]
            for key in ("skb_size", "skb_total", "skb_free"):
                if key in iface.counters:
                    pool[key] = iface.counters[key]
    return state


class SimTransport(Transport):
    name = "sim"

    def __init__(self, board: str | None, state_path: str, console: TextIO | None = None) -> None:
        self.board_spec = board
        self.store = StateFile(state_path)
        self.console = console  # where kernel log lines go, as a console would show them
        self.state: dict[str, Any] | None = None
        self.board: boards.Board | None = None
        self._dirty = False
        #: the network namespace of a host-mirror board ("" = ours), None for a board file
        self.host_netns: str | None = None

    # -- session -------------------------------------------------------

    def _load(self) -> None:
        if self.state is not None:
            return
        netns = host_netns(self.board_spec)
        if netns is not None:
            self._load_host(netns)
            return
        _name, path = boards.locate(self.board_spec)
        digest = boards.fingerprint(path)
        key = os.path.abspath(path)
        self.store.acquire()
        try:
            state, board = self._stored(key)
            if state is None or board.fingerprint != digest:
                # A board seen for the first time, or whose file changed, boots afresh.
                board = boards.load(self.board_spec)
                state = self._adopt(new_state(board), key)
            self.state = state
            self.board = board
        except BaseException:
            self.store.release()
            raise

    def _stored(self, key: str) -> tuple[dict[str, Any] | None, boards.Board | None]:
        """The stored state of board ``key`` and its board, made current.

        The file holds the state of every board used with it: switching boards
        sets the current one aside (under "others") instead of losing it.
        """
        stored = self.store.read()
        if stored is None:
            self._others: dict[str, Any] = {}
            return None, None
        board = self._check(stored)
        others = stored.pop("others", {})
        if stored.get("key") != key:
            others[stored.get("key") or board.name] = stored
            stored = others.pop(key, None)
            self._dirty = True
            board = self._check(stored) if stored is not None else None
        self._others = others
        if stored is not None:
            stored["others"] = others
        return stored, board

    def _adopt(self, state: dict[str, Any], key: str) -> dict[str, Any]:
        state["key"] = key
        state["others"] = self._others
        self._dirty = True
        return state

    def _load_host(self, netns: str) -> None:
        """Stand on the live kernel: reconcile the stored state with what the host has now.

        A device that went down, vanished or came back with a new ifindex lost
        its port (NETDEV_GOING_DOWN); other ports, filters and the VLAN map stay.
        """
        from evl_net.transports.sim import host

        snap = host.snapshot(netns or None)
        self.host_netns = netns
        self.store.acquire()
        try:
            state, board = self._stored(snap.board.name)
            if state is None:
                board, state = snap.board, self._adopt(new_state(snap.board), snap.board.name)
            elif board.fingerprint != snap.board.fingerprint:
                self.board, self.state = board, state  # _dismantle needs the old board's parents
                known = state.get("host", {}).get("ifindex", {})
                for port in list(state["ports"]):
                    devs = {port, board.real_device(port)}
                    if any(d not in snap.ifindex or snap.ifindex[d] != known.get(d) or not snap.admin_up[d]
                           for d in devs):
                        self._dismantle(port)
                state["counters"] = {k: v for k, v in state["counters"].items()
                                     if snap.ifindex.get(k) == known.get(k)}
                state["board"] = snap.board.to_dict()
                board = snap.board
                self._dirty = True
            state["host"] = {"ifindex": snap.ifindex}
            self.state, self.board = state, board
        except BaseException:
            self.store.release()
            raise

    def _check(self, state: dict[str, Any]) -> boards.Board:
        """The board of a stored state, or a clear error when the state is not one of ours."""
        shape = {"board": dict, "boot": (int, float), "ports": list, "pools": dict, "counters": dict,
                 "filters": dict, "vlans": list, "arp": list, "log": list}
        optional = {"key": str, "others": dict, "host": dict}
        try:
            for key, kind in shape.items():
                if not isinstance(state.get(key), kind):
                    raise ValueError(f"'{key}' is missing or malformed")
            for key, kind in optional.items():
                if key in state and not isinstance(state[key], kind):
                    raise ValueError(f"'{key}' is malformed")
            return boards.Board.from_dict(state["board"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            from evl_core.errors import EvlError

            raise EvlError(
                f"simulator state {self.store.path} is corrupt ({exc}); "
                f"reset it with 'evl sim reset' or remove the file"
            ) from None

    def close(self) -> None:
        try:
            if self.state is not None and self._dirty:
                self.store.write(self.state)
        finally:
            self.store.release()
            self.state = None

    def reset(self) -> bool:
        """Forget the stored state: the next use boots the board afresh."""
        self.store.acquire()
        try:
            return self.store.remove()
        finally:
            self.store.release()

    def snapshot(self) -> dict[str, Any]:
        self._load()
        assert self.state is not None
        return self.state

    # -- helpers -------------------------------------------------------

    def _iface(self, ifname: str) -> boards.Iface:
        self._load()
        assert self.board is not None
        iface = self.board.interfaces.get(ifname)
        if iface is None:
            raise kernel_error(errno.ENODEV, stage=device_open_stage(ifname))  # EVL_NETIOC_DEVOPEN fails
        return iface

    def _log(self, text: str) -> None:
        assert self.state is not None
        uptime = max(0.0, time.time() - self.state["boot"])
        line = "[%5d.%06d] %s" % (int(uptime), int((uptime % 1) * 1e6), text)
        self.state["log"] = (self.state["log"] + [line])[-LOG_KEEP:]
        self._dirty = True
        if self.console is not None:
            self.console.write(line + "\n")
            self.console.flush()

    def _netdev_prefix(self, ifname: str) -> str:
        # netdev_printk: "<driver> <bus id> <ifname>: " when the device has a parent bus.
        iface = self._iface(ifname)
        if iface.bus:
            return f"{iface.driver} {iface.bus} {ifname}: "
        return f"{ifname}: "

    def _ports(self) -> list[str]:
        assert self.state is not None
        return self.state["ports"]

    # -- operations ----------------------------------------------------

    def page_size(self) -> int:
        self._load()
        assert self.board is not None
        return self.board.page_size

    def enable_port(self, ifname: str, pool_size: int, buffer_size: int) -> dict[str, Any]:
        iface = self._iface(ifname)
        board, state = self.board, self.state
        assert board is not None and state is not None
        if pool_size < 0 or buffer_size < 0 or pool_size > POOL_MAX or buffer_size > 4 * board.page_size:
            raise kernel_error(errno.EINVAL)
        real = board.real_device(ifname)
        pool = state["pools"].get(real)
        if ifname in state["ports"]:
            return {"changed": False, "pool_size": pool["skb_total"], "buffer_size": pool["skb_size"]}
        real_iface = board.interfaces[real]
        if not real_iface.up or not iface.up:
            raise kernel_error(errno.ENETDOWN)
        if pool is None:
            # Sizes apply only when the first port on the real device comes up.
            size = buffer_size or board.page_size
            if not real_iface.loopback and size < real_iface.mtu:
                size = real_iface.mtu
            total = pool_size or DEFAULT_POOL
            pool = state["pools"][real] = {"skb_size": size, "skb_total": total, "skb_free": total}
        state["ports"].append(ifname)
        self._dirty = True
        return {"changed": True, "pool_size": pool["skb_total"], "buffer_size": pool["skb_size"]}

    def disable_port(self, ifname: str) -> dict[str, Any]:
        self._iface(ifname)
        return {"changed": self._dismantle(ifname)}

    def _dismantle(self, ifname: str) -> bool:
        board, state = self.board, self.state
        assert board is not None and state is not None
        if ifname not in state["ports"]:
            return False  # the kernel returns 0 for a device that is no port
        state["ports"].remove(ifname)
        state["arp"] = [e for e in state["arp"] if e["dev"] != ifname]
        real = board.real_device(ifname)
        if not any(board.real_device(p) == real for p in state["ports"]):
            # Last port on the real device: pool freed, eBPF filter dropped silently.
            state["pools"].pop(real, None)
            state["filters"].pop(real, None)
        self._dirty = True
        return True

    def get_stat(self, ifname: str) -> DevStat:
        iface = self._iface(ifname)
        board, state = self.board, self.state
        assert board is not None and state is not None
        stat = DevStat.from_dict(state["counters"].get(ifname, {}))
        pool = state["pools"].get(board.real_device(ifname))
        if pool:
            stat.skb_size, stat.skb_total, stat.skb_free = pool["skb_size"], pool["skb_total"], pool["skb_free"]
        stat.oob_capable = iface.oob_capable
        stat.oob_port = ifname in state["ports"]
        return stat

    def set_rx_filter(self, ifname: str, obj: bytes | None, obj_name: str | None) -> dict[str, Any]:
        self._iface(ifname)
        board, state = self.board, self.state
        assert board is not None and state is not None
        if ifname not in state["ports"]:
            raise kernel_error(errno.ENODEV, f"{ifname} is not an out-of-band port")
        real = board.real_device(ifname)
        if obj is None:
            if state["filters"].pop(real, None) is None:
                return {"changed": False}
            self._log(self._netdev_prefix(real) + "out-of-band eBPF program removed")
            return {"changed": True}
        from evl_net.kernel import bpfobj

        try:
            programs = bpfobj.parse(obj, obj_name or "object")
        except bpfobj.BpfObjectError as exc:
            raise kernel_error(exc.errno, str(exc)) from None
        if not programs:
            raise kernel_error(errno.EINVAL, f"{obj_name}: no eBPF program in object")
        program = programs[0]
        if program.prog_type != "socket_filter":
            self._log(self._netdev_prefix(real) + "invalid out-of-band eBPF program")
            raise kernel_error(errno.EINVAL, f"{obj_name}: program '{program.section}' is not a socket filter")
        import base64
        import hashlib

        state["filters"][real] = {
            "object": obj_name, "section": program.section, "name": program.name,
            "license": program.license, "sha256": hashlib.sha256(obj).hexdigest(),
            "insns": base64.b64encode(program.insns).decode(),
        }
        self._dirty = True
        self._log(self._netdev_prefix(real) + "out-of-band eBPF program installed")
        return {"changed": True, "program": program.name, "section": program.section}

    def resolve(self, host: str) -> str:
        import ipaddress

        self._load()
        assert self.board is not None
        if host == "broadcast":
            return BROADCAST
        if host in self.board.hosts:
            return self.board.hosts[host]
        if host == "localhost":
            return "127.0.0.1"
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            pass
        if self.host_netns is not None:
            import socket

            try:
                return socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM, 0, socket.AI_ADDRCONFIG)[0][4][0]
            except (socket.gaierror, IndexError):
                pass
        raise kernel_error(errno.ESRCH, f"unknown host {host!r} on this board")

    def solicit(self, host: str, ifname: str | None, flags: int) -> dict[str, Any]:
        ip = self.resolve(host)
        board, state = self.board, self.state
        assert board is not None and state is not None
        if ifname is not None and ifname not in board.interfaces:
            raise kernel_error(errno.ENODEV, stage=f"cannot bind UDP socket to device {ifname}")
        if flags & ~(NEIGH_PERMANENT | NEIGH_MAYROUTE):
            raise kernel_error(errno.EINVAL)
        if ifname is not None and ifname not in state["ports"]:
            raise kernel_error(errno.ENODEV, f"{ifname} is not an out-of-band port")
        dev, nexthop, noarp = self._route(ip, ifname, bool(flags & NEIGH_MAYROUTE))
        if dev not in state["ports"]:
            raise kernel_error(errno.ENODEV, f"{dev}, the way to {ip}, is not an out-of-band port")
        result = {"ip": ip, "dev": dev, "nexthop": nexthop, "permanent": bool(flags & NEIGH_PERMANENT)}
        if noarp:
            return {**result, "changed": False, "cached": False}
        peer = self._peer(nexthop, dev)
        if peer is None or not peer.reachable:
            deadline = time.monotonic() + board.solicit_timeout
            self.close_early()  # nobody queues behind the wait
            mac = None
            if self.host_netns is not None:
                # The kernel starts the ARP resolution on the device and waits for the answer.
                from evl_net.transports.sim import host as mirror  # "host" is the peer asked for

                source = mirror.arp_source(board.interfaces[dev].addresses, nexthop)
                mac = mirror.arp_solicit(nexthop, dev, board.solicit_timeout, self.host_netns or None, source)
            if mac is not None:
                # Answered: lock the state again, as it is now; the port may have gone meanwhile.
                self.state = self.board = None
                self._load()
                board, state = self.board, self.state
                assert board is not None and state is not None
                if dev in state["ports"]:
                    peer = boards.Peer(ip=nexthop, mac=mac, reachable=True, dev=dev)
                else:  # nothing enters the cache of a device that is no port: the wait runs out
                    self.close_early()
                    mac = None
            if mac is None:
                time.sleep(max(0.0, deadline - time.monotonic()))
                raise kernel_error(errno.ETIMEDOUT)
        permanent = bool(flags & NEIGH_PERMANENT)
        for entry in state["arp"]:
            if entry["dev"] == dev and entry["ip"] == nexthop:
                changed = permanent and entry["state"] != "P"
                if changed:
                    entry["state"] = "P"  # a permanent entry is never downgraded
                    self._dirty = True
                return {**result, "changed": changed, "cached": True, "mac": entry["mac"], "state": entry["state"]}
        entry = {"dev": dev, "ip": nexthop, "mac": peer.mac, "state": "P" if permanent else "R"}
        state["arp"].append(entry)
        self._dirty = True
        return {**result, "changed": True, "cached": True, "mac": peer.mac, "state": entry["state"]}

    def _peer(self, ip: str, dev: str) -> boards.Peer | None:
        if self.host_netns is not None:
            from evl_net.transports.sim import host

            found = host.neighbour(ip, dev, self.host_netns or None)  # the kernel's table, live
            if found and found[1]:
                return boards.Peer(ip=ip, mac=found[0], reachable=True, dev=dev)
            # A permanent oob entry stands for the in-band neighbour that -S made permanent
            # (the host's kernel never learnt it: the mirror's ARP went around its table).
            assert self.state is not None
            for entry in self.state["arp"]:
                if entry["dev"] == dev and entry["ip"] == ip and entry["state"] == "P":
                    return boards.Peer(ip=ip, mac=entry["mac"], reachable=True, dev=dev)
            return boards.Peer(ip=ip, mac=found[0], reachable=False, dev=dev) if found else None
        assert self.board is not None
        return next((p for p in self.board.peers if p.ip == ip and p.dev in (None, dev)), None)

    def close_early(self) -> None:
        """Store and unlock before a long wait, so other invocations need not queue behind it."""
        if self.state is not None:
            if self._dirty:
                self.store.write(self.state)
                self._dirty = False
            self.store.release()

    def _route(self, ip: str, oif: str | None, may_route: bool) -> tuple[str, str, bool]:
        """(output device, next hop, NOARP) as the in-band FIB would answer."""
        import ipaddress

        board = self.board
        assert board is not None
        if ip == BROADCAST:
            if oif is None:
                raise kernel_error(errno.ENETUNREACH, "broadcast needs an interface (-i)")
            return oif, ip, True
        if self.host_netns is not None:
            return self._route_host(ip, oif, may_route)
        addr = ipaddress.IPv4Address(ip)
        loopback = next((i.name for i in board.interfaces.values() if i.loopback), None)
        for iface in board.interfaces.values():
            if any(ipaddress.IPv4Interface(a).ip == addr for a in iface.addresses) or addr.is_loopback:
                if loopback is None:
                    raise kernel_error(errno.ENETUNREACH)
                return loopback, ip, True  # local addresses route through the loopback
        for iface in board.interfaces.values():
            if oif not in (None, iface.name) or not iface.up:
                continue
            if any(addr in ipaddress.IPv4Interface(a).network for a in iface.addresses):
                return iface.name, ip, False
        if oif is not None and not may_route:
            return oif, ip, False  # a forced output device makes the destination on-link
        candidates = [
            r for r in board.routes
            if addr in ipaddress.IPv4Network(r.dst) and oif in (None, r.dev)
        ]
        if not candidates:
            raise kernel_error(errno.ENETUNREACH)
        if not may_route:
            raise kernel_error(errno.ENETUNREACH, f"{ip} is off-link: allow gateways with -g")
        route = max(candidates, key=lambda r: ipaddress.IPv4Network(r.dst).prefixlen)
        dev = route.dev or self._device_for(route.via)
        return dev, route.via, False

    def _route_host(self, ip: str, oif: str | None, may_route: bool) -> tuple[str, str, bool]:
        from evl_net.transports.sim import host

        assert self.board is not None
        dev, gateway = host.route_get(ip, oif, self.host_netns or None)
        if gateway and not may_route:
            if oif is None:
                raise kernel_error(errno.ENETUNREACH, f"{ip} is off-link: allow gateways with -g")
            return oif, ip, False  # scope-link lookup with a forced device: taken as on-link
        iface = self.board.interfaces.get(dev)
        return dev, gateway or ip, bool(iface and iface.loopback)

    def _device_for(self, gateway: str) -> str:
        import ipaddress

        assert self.board is not None
        addr = ipaddress.IPv4Address(gateway)
        for iface in self.board.interfaces.values():
            if any(addr in ipaddress.IPv4Interface(a).network for a in iface.addresses):
                return iface.name
        raise kernel_error(errno.ENETUNREACH)

    def set_vlans(self, text: str) -> dict[str, Any]:
        from evl_net.kernel import vlans

        self._load()
        state = self.state
        assert state is not None
        ids = sorted(vlans.parse(text))
        changed = ids != state["vlans"]
        if changed:
            state["vlans"] = ids
            self._dirty = True
        return {"changed": changed, "vlans": vlans.format(ids)}

    def get_vlans(self) -> str:
        from evl_net.kernel import vlans

        self._load()
        assert self.state is not None
        return vlans.format(self.state["vlans"])

    def interfaces(self) -> Sequence[Interface]:
        self._load()
        assert self.board is not None and self.state is not None
        return [
            Interface(name=i.name, oob_port=i.name in self.state["ports"], up=i.up)
            for i in self.board.interfaces.values()
        ]
