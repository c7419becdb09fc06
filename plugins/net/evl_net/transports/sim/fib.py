"""Where a solicitation goes: host names, the in-band route lookup, the next hop's peer.

What the EVL core asks the in-band stack before it touches its ARP front
cache (docs/abi.md, "Solicitation and the ARP front cache"): the output
device and next hop of the destination, looked up with link scope unless
gateways are allowed, and the neighbour that answers for the next hop.  A
board file answers from its tables (interfaces, routes, peers, hosts); the
host mirror asks the live kernel of its namespace.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
from typing import TYPE_CHECKING, Any

from evl_net.errors import KernelError
from evl_net.transports.sim.board import Board, Peer

if TYPE_CHECKING:
    from evl_net.transports.sim.records import BoardState

BROADCAST = "255.255.255.255"


def resolve(board: Board, host: str, netns: str | None) -> str:
    """The IPv4 address of ``host``: ``broadcast``, a board host name, ``localhost`` or a literal.

    On the host mirror (``netns`` not None), other names go through the
    resolver, as the C tool's getaddrinfo() does; ESRCH when nothing knows it.
    """
    if host == "broadcast":
        return BROADCAST
    if host in board.hosts:
        return board.hosts[host]
    if host == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    if netns is not None:
        import socket

        try:
            found = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM, 0, socket.AI_ADDRCONFIG)
            return str(found[0][4][0])
        except (socket.gaierror, IndexError):
            pass
    raise KernelError(errno.ESRCH, f"unknown host {host!r} on this board")


def route(board: Board, ip: str, oif: str | None, may_route: bool, netns: str | None) -> tuple[str, str, bool]:
    """(output device, next hop, NOARP) of ``ip`` as the in-band FIB answers; ENETUNREACH when none."""
    if ip == BROADCAST:
        if oif is None:
            raise KernelError(errno.ENETUNREACH, "broadcast needs an interface (-i)")
        return oif, ip, True
    if netns is not None:
        return _route_host(board, ip, oif, may_route, netns)
    addr = ipaddress.IPv4Address(ip)
    loopback = next((i.name for i in board.interfaces.values() if i.loopback), None)
    parsed = _addresses(tuple((i.name, i.up, tuple(i.addresses)) for i in board.interfaces.values()))
    for _name, _up, nets in parsed:
        if any(n.ip == addr for n in nets) or addr.is_loopback:
            if loopback is None:
                raise KernelError(errno.ENETUNREACH)
            return loopback, ip, True  # local addresses route through the loopback
    for name, up, nets in parsed:
        if oif not in (None, name) or not up:
            continue
        if any(addr in n.network for n in nets):
            return name, ip, False
    if oif is not None and not may_route:
        return oif, ip, False  # a forced output device makes the destination on-link
    candidates = [r for r in board.routes if addr in ipaddress.IPv4Network(r.dst) and oif in (None, r.dev)]
    if not candidates:
        raise KernelError(errno.ENETUNREACH)
    if not may_route:
        raise KernelError(errno.ENETUNREACH, f"{ip} is off-link: allow gateways with -g")
    best = max(candidates, key=lambda r: ipaddress.IPv4Network(r.dst).prefixlen)
    return best.dev or _device_for(board, best.via), best.via, False


@functools.lru_cache(maxsize=4)
def _addresses(key: tuple[tuple[str, bool, tuple[str, ...]], ...]) -> list[tuple[str, bool, list[Any]]]:
    """The interfaces' addresses parsed, once per set of them: a plan routes every peer through the same board."""
    return [(name, up, [ipaddress.IPv4Interface(a) for a in addresses]) for name, up, addresses in key]


def _route_host(board: Board, ip: str, oif: str | None, may_route: bool, netns: str) -> tuple[str, str, bool]:
    from evl_net.transports.sim import host

    dev, gateway = host.route_get(ip, oif, netns or None)
    if gateway and not may_route:
        if oif is None:
            raise KernelError(errno.ENETUNREACH, f"{ip} is off-link: allow gateways with -g")
        return oif, ip, False  # scope-link lookup with a forced device: taken as on-link
    iface = board.interfaces.get(dev)
    return dev, gateway or ip, bool(iface and iface.loopback)


def _device_for(board: Board, gateway: str) -> str:
    """The device on whose subnet ``gateway`` sits."""
    addr = ipaddress.IPv4Address(gateway)
    for iface in board.interfaces.values():
        if any(addr in ipaddress.IPv4Interface(a).network for a in iface.addresses):
            return iface.name
    raise KernelError(errno.ENETUNREACH)


def peer(board: Board, state: BoardState, ip: str, dev: str, netns: str | None) -> Peer | None:
    """The neighbour answering for next hop ``ip`` on ``dev``, or None when nobody does.

    On the host mirror it is the kernel's neighbour table, live; a permanent
    entry of the front cache stands for the in-band neighbour that ``-S``
    made permanent (the host's kernel never learnt it: the mirror's ARP went
    around its table).
    """
    if netns is None:
        return next((p for p in board.peers if p.ip == ip and p.dev in (None, dev)), None)
    from evl_net.transports.sim import host

    found = host.neighbour(ip, dev, netns or None)
    if found and found[1]:
        return Peer(ip=ip, mac=found[0], reachable=True, dev=dev)
    for entry in state.arp:
        if entry.dev == dev and entry.ip == ip and entry.state == "P":
            return Peer(ip=ip, mac=entry.mac, reachable=True, dev=dev)
    return Peer(ip=ip, mac=found[0], reachable=False, dev=dev) if found else None
