"""A simulated board taken from the live kernel: the host mirror.

``mirror(netns)`` asks the kernel (rtnetlink, through pyroute2) for the links,
IPv4 addresses, IPv4 routes and IPv4 neighbours of the current network
namespace, or of the named one (``ip netns`` names, or a path to a netns
file), and turns them into a :class:`~evl_net.transports.sim.board.Board`:

* interfaces keep their real names, MTU, MAC, loopback flag and IPv4
  addresses; ``up`` is IFF_UP (administratively up), which is what the
  kernel's ENETDOWN and NETDEV_GOING_DOWN are about, not the carrier;
* a VLAN device (IFLA_LINKINFO kind ``vlan``) gets its parent and VLAN id;
  the parent is the *real* device underneath (stacked VLANs are followed down,
  as ``vlan_dev_real_dev()`` does, since that is where EVL keeps the pool); a
  VLAN whose lower device lives in another namespace is mirrored as a plain
  device, because the board cannot name its parent;
* ``oob_capable`` is True for every device: the host runs no EVL core, so no
  driver can say otherwise, and the mirror assumes the board it rehearses has
  oob-capable NICs;
* the driver is what the ``ETHTOOL_GDRVINFO`` ioctl says (current namespace
  only: the ioctl cannot reach another one), else the link kind (``veth``,
  ``bridge``, ``vlan``...), ``loopback`` for the loopback, else ``unknown``;
  ``bus`` stays empty;
* routes are the main table's IPv4 routes with a gateway (each live nexthop of
  a multipath route counts), most specific first and, for equal prefixes,
  lowest metric first, so that the simulator's longest-prefix pick agrees
  with the kernel's;
* peers are the IPv4 neighbour entries: reachable when the entry has a link
  layer address and its NUD state is REACHABLE, PERMANENT, STALE, DELAY, PROBE
  or NOARP; not reachable when FAILED, INCOMPLETE (or NONE);
* ``page_size`` is the host's, ``solicit_timeout`` the kernel default (5 s).

The mirrored tables are a snapshot.  ``route_get`` and ``neighbour`` (from
:mod:`evl_net.transports.rtnetlink`, which the ioctl transport shares) ask the
kernel live, ``ip route get`` / ``ip neigh get`` style, and ``fingerprint``
identifies the snapshot (interfaces with their ifindex, state, MTU, MAC, VLAN
set-up and addresses, and the routes; not the neighbours, which move all the
time) so that a caller can tell when its stored board is out of date.

``arp_solicit`` is the solicitation of a neighbour the kernel has not
resolved: an ARP request on the output device, from inside the namespace
(a packet socket made by a thread that entered it), and the wait for the
matching reply, as the EVL core's in-band ARP resolution does.

Netlink errors are raised as ``KernelError`` (an ``OSError``) with the
kernel's errno (pyroute2's ``NetlinkError`` is not an ``OSError``).  pyroute2 is imported inside the
functions only: importing it costs ~100-180 ms, which a command that never
touches the host board must not pay.  ``board_from_dumps`` is pure: it takes
messages as pyroute2 decodes them (anything with ``get()`` and ``[]``), so it
can be tested with synthetic messages.
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import json
import os
from collections.abc import Iterable
from typing import Any, NamedTuple

# The neighbour states, the live lookups and the netlink session are rtnetlink's; the simulator's
# FIB and the tests know them as the mirror's too (hence the "as" re-exports).
from evl_net.transports.rtnetlink import (
    AF_INET,
    IFF_LOOPBACK,
    IFF_UP,
    ZERO_MAC,
    Session,
    mac_text,
    nud_reachable,
    version_tuple,
)
from evl_net.transports.rtnetlink import NUD_DELAY as NUD_DELAY
from evl_net.transports.rtnetlink import NUD_FAILED as NUD_FAILED
from evl_net.transports.rtnetlink import NUD_INCOMPLETE as NUD_INCOMPLETE
from evl_net.transports.rtnetlink import NUD_NOARP as NUD_NOARP
from evl_net.transports.rtnetlink import NUD_PERMANENT as NUD_PERMANENT
from evl_net.transports.rtnetlink import NUD_PROBE as NUD_PROBE
from evl_net.transports.rtnetlink import NUD_REACHABLE as NUD_REACHABLE
from evl_net.transports.rtnetlink import NUD_RESOLVED as NUD_RESOLVED
from evl_net.transports.rtnetlink import NUD_STALE as NUD_STALE
from evl_net.transports.rtnetlink import neighbour as neighbour
from evl_net.transports.rtnetlink import route_get as route_get
from evl_net.transports.sim.board import Board, Iface, Peer, Route

HOST = "host"
RT_TABLE_MAIN = 254
RTN_UNICAST = 1
RTNH_F_DEAD = 0x1

SIOCETHTOOL = 0x8946
ETHTOOL_GDRVINFO = 0x3
DRVINFO_SIZE = 196  # struct ethtool_drvinfo
IFREQ_SIZE = 40


class Snapshot(NamedTuple):
    """A mirrored board, plus what a board has no field for.

    ``ifindex`` maps names to interface indexes (a device deleted and created
    again under the same name gets a new index: its port is gone);
    ``admin_up`` maps names to IFF_UP, the flag the kernel's
    NETDEV_GOING_DOWN / ENETDOWN checks are about (``Iface.up`` is the
    operational state, which also drops on carrier loss).
    """

    board: Board
    ifindex: dict[str, int]
    admin_up: dict[str, bool]


# -- pure part ------------------------------------------------------------


_version = version_tuple  # its name here before it moved


def board_name(netns: str | None) -> str:
    return f"{HOST}:{netns}" if netns else HOST


def snapshot_from_dumps(
    links: Iterable[Any],
    addrs: Iterable[Any],
    routes: Iterable[Any],
    neighs: Iterable[Any],
    netns_name: str | None,
    drivers: dict[str, str] | None = None,
    page_size: int | None = None,
) -> Snapshot:
    """A Snapshot from rtnetlink dumps (ifinfmsg, ifaddrmsg, rtmsg, ndmsg as pyroute2 decodes them)."""
    drivers = drivers or {}
    links = list(links)
    names: dict[int, str] = {}
    for msg in links:
        name = msg.get("ifname")
        if name:
            names[msg["index"]] = name
    # VLAN devices: index -> (lower index, vlan id), when the lower device is in this namespace.
    vlans: dict[int, tuple[int, int]] = {}
    for msg in links:
        if msg.get(("linkinfo", "kind")) != "vlan" or msg["index"] not in names:
            continue
        vid, lower = msg.get(("linkinfo", "data", "vlan_id")), msg.get("link")
        if vid is None or not lower or msg.get("link_netnsid") is not None or lower not in names:
            continue
        vlans[msg["index"]] = (lower, int(vid))

    board = Board(
        name=board_name(netns_name),
        fingerprint="",
        page_size=page_size or os.sysconf("SC_PAGE_SIZE"),
        solicit_timeout=5.0,
    )
    ifindex: dict[str, int] = {}
    admin_up: dict[str, bool] = {}
    for msg in links:
        index = msg["index"]
        name = names.get(index)
        if name is None or name in board.interfaces:
            continue
        flags = msg["flags"] or 0
        kind = msg.get(("linkinfo", "kind"))
        parent = vlan_id = None
        if index in vlans:
            vlan_id = vlans[index][1]
            real, seen = vlans[index][0], {index}
            while real in vlans and real not in seen:  # stacked VLANs: down to the real device
                seen.add(real)
                real = vlans[real][0]
            parent = None if real in vlans else names[real]
            if parent is None:
                vlan_id = None
        loopback = bool(flags & IFF_LOOPBACK)
        board.interfaces[name] = Iface(
            name=name,
            parent=parent,
            vlan_id=vlan_id,
            mtu=int(msg.get("mtu") or 0),
            up=bool(flags & IFF_UP),  # what ENETDOWN and NETDEV_GOING_DOWN are about, not the carrier
            oob_capable=True,  # no EVL core on the host: every driver is taken as oob-capable
            loopback=loopback,
            addresses=[],
            mac=mac_text(msg.get("address")),
            driver=drivers.get(name) or kind or ("loopback" if loopback else "unknown"),
            bus="",
        )
        ifindex[name] = index
        admin_up[name] = bool(flags & IFF_UP)

    for msg in addrs:
        if msg["family"] != AF_INET:
            continue
        name = names.get(msg["index"])
        ip = msg.get("local") or msg.get("address")
        if name not in board.interfaces or not ip:
            continue
        board.interfaces[name].addresses.append(str(ipaddress.IPv4Interface(f"{ip}/{msg['prefixlen']}")))

    mirrored: list[tuple[int, int, Route]] = []
    for msg in routes:
        if msg["family"] != AF_INET or msg["type"] != RTN_UNICAST:
            continue
        if (msg.get("table") or msg["table"]) != RT_TABLE_MAIN:
            continue
        dst = msg.get("dst") or "0.0.0.0"  # noqa: S104 (a default route's destination, no binding)
        net = ipaddress.IPv4Network(f"{dst}/{msg['dst_len']}", strict=False)
        metric = msg.get("priority") or 0
        hops = [(msg.get("gateway"), msg.get("oif"))]
        if msg.get("multipath"):
            hops = [(nh.get("gateway"), nh["oif"]) for nh in msg.get("multipath") if not nh["flags"] & RTNH_F_DEAD]
        for gateway, oif in hops:
            if gateway:
                dev = names.get(oif) if oif else None
                mirrored.append((net.prefixlen, metric, Route(dst=str(net), via=gateway, dev=dev)))
    mirrored.sort(key=lambda item: (-item[0], item[1]))  # stable: dump order among equals
    board.routes = [route for _, _, route in mirrored]

    for msg in neighs:
        if msg["family"] != AF_INET:
            continue
        ip, lladdr = msg.get("dst"), msg.get("lladdr")
        name = names.get(msg["ifindex"])
        if not ip or name not in board.interfaces:
            continue
        state = msg["state"] or 0
        board.peers.append(
            Peer(
                ip=ip,
                mac=mac_text(lladdr) if lladdr else ZERO_MAC,
                reachable=nud_reachable(state, lladdr),
                dev=name,
            )
        )

    snap = Snapshot(board, ifindex, admin_up)
    board.fingerprint = digest(snap)
    return snap


def board_from_dumps(
    links: Iterable[Any],
    addrs: Iterable[Any],
    routes: Iterable[Any],
    neighs: Iterable[Any],
    netns_name: str | None,
    drivers: dict[str, str] | None = None,
    page_size: int | None = None,
) -> Board:
    """The Board of ``snapshot_from_dumps``."""
    return snapshot_from_dumps(links, addrs, routes, neighs, netns_name, drivers, page_size).board


def digest(snap: Snapshot) -> str:
    """``host[:NETNS]:<sha256>`` of everything mirrored but the neighbours and drivers."""
    board = snap.board
    essentials = {
        "interfaces": [
            [
                i.name,
                snap.ifindex.get(i.name),
                snap.admin_up.get(i.name),
                i.up,
                i.mtu,
                i.mac,
                i.loopback,
                i.parent,
                i.vlan_id,
                i.addresses,
            ]
            for i in board.interfaces.values()
        ],
        "routes": [[r.dst, r.via, r.dev] for r in board.routes],
    }
    text = json.dumps(essentials, separators=(",", ":"), sort_keys=True)
    return f"{board.name}:{hashlib.sha256(text.encode()).hexdigest()}"


# -- kernel part ----------------------------------------------------------


def ethtool_drivers(names: Iterable[str]) -> dict[str, str]:
    """Driver names by ETHTOOL_GDRVINFO, for devices of *this process's* namespace.

    Devices that do not answer (lo, most virtual ones) are left out.
    """
    import array
    import fcntl
    import socket
    import struct

    found: dict[str, str] = {}
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    except OSError:
        return found
    with sock:
        for name in names:
            raw = name.encode()
            if len(raw) >= 16:
                continue
            info = array.array("B", struct.pack("I", ETHTOOL_GDRVINFO) + bytes(DRVINFO_SIZE - 4))
            address, _ = info.buffer_info()
            ifreq = struct.pack("16sP", raw, address).ljust(IFREQ_SIZE, b"\0")
            try:
                fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)
            except OSError:
                continue
            driver = info.tobytes()[4:36].split(b"\0", 1)[0].decode(errors="replace")
            if driver:
                found[name] = driver
    return found


def snapshot(netns: str | None = None) -> Snapshot:
    """The live kernel as a Snapshot (one netlink session, four dumps)."""
    with Session(netns) as session:
        links, addrs, routes, neighs = session.dumps()
    drivers = None
    if netns is None:
        drivers = ethtool_drivers(m.get("ifname") for m in links if m.get("ifname"))
    return snapshot_from_dumps(links, addrs, routes, neighs, netns, drivers)


def mirror(netns: str | None = None) -> Board:
    """The live kernel's interfaces, addresses, routes and neighbours as a Board."""
    return snapshot(netns).board


def fingerprint(netns: str | None = None) -> str:
    """Changes when interfaces (index, state, MTU, MAC, VLAN), addresses or routes change.

    Equal to ``mirror(netns).fingerprint`` taken at the same moment; neighbours
    do not count.
    """
    with Session(netns) as session:
        links, addrs, routes, _ = session.dumps(neighbours=False)
    return snapshot_from_dumps(links, addrs, routes, (), netns).board.fingerprint


# -- solicitation: an ARP request on the wire ----------------------------------
#
# What the EVL core does for a neighbour that is not resolved yet (docs/abi.md,
# "Solicitation and the ARP front cache"):
# neigh_event_send() starts the in-band ARP resolution on the output device and
# the caller waits, up to the solicit timeout, for the answer.  The mirror does
# the same on the live namespace with a packet socket: who-has NEXTHOP tell
# OURS, broadcast on the device, resent as the in-band stack would
# (mcast_solicit probes, retrans_time apart), and the first matching reply
# gives the peer's MAC.  The kernel of the mirrored namespace is not told
# (it does not learn an ARP reply it did not ask for): the answer goes to
# the simulated oob ARP cache only.

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
ARPHRD_ETHER = 1
ARPOP_REQUEST = 1
ARPOP_REPLY = 2
IFF_NOARP = 0x80
PACKET_OUTGOING = 4
SIOCGIFFLAGS = 0x8913
SIOCGIFHWADDR = 0x8927
CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/var/run/netns"
ARP_PROBES = 3  # net.ipv4.neigh.default.mcast_solicit
ARP_RETRANS = 1.0  # net.ipv4.neigh.default.retrans_time_ms, in seconds
BROADCAST_MAC = b"\xff" * 6
ANY = "0.0.0.0"  # noqa: S104 (the unspecified IPv4 address of an ARP probe and a default route, no binding)


def netns_path(netns: str) -> str:
    """The file of a network namespace: ``ip netns`` names live in /var/run/netns, paths stay paths."""
    return netns if os.path.dirname(netns) else os.path.join(NETNS_RUN_DIR, netns)


def arp_source(addresses: Iterable[str], target: str) -> str:
    """The sender IPv4 of a request for ``target``: the device's address on the target's subnet,
    else its first address, else 0.0.0.0 (an ARP probe, RFC 5227)."""
    ifaces = [ipaddress.IPv4Interface(a) for a in addresses]
    addr = ipaddress.IPv4Address(target)
    for iface in ifaces:
        if addr in iface.network:
            return str(iface.ip)
    return str(ifaces[0].ip) if ifaces else ANY


def arp_request(sender_mac: bytes, sender_ip: str, target_ip: str) -> bytes:
    """An Ethernet/IPv4 ARP request (the payload, without the link-layer header)."""
    import socket
    import struct

    return struct.pack(
        "!HHBBH6s4s6s4s",
        ARPHRD_ETHER,
        ETH_P_IP,
        6,
        4,
        ARPOP_REQUEST,
        sender_mac,
        socket.inet_aton(sender_ip),
        bytes(6),
        socket.inet_aton(target_ip),
    )


def arp_reply_mac(payload: bytes, target_ip: str, our_ip: str) -> str | None:
    """The sender MAC of ``payload`` when it is the reply to our request, else None.

    Strict: an Ethernet/IPv4 ARP reply (op 2), from ``target_ip``, to ``our_ip``
    (0.0.0.0 for a probe), with a unicast, non-zero sender MAC.
    """
    import socket
    import struct

    if len(payload) < 28:
        return None
    htype, ptype, hlen, plen, op, sha, spa, _tha, tpa = struct.unpack_from("!HHBBH6s4s6s4s", payload)
    if (htype, ptype, hlen, plen, op) != (ARPHRD_ETHER, ETH_P_IP, 6, 4, ARPOP_REPLY):
        return None
    if spa != socket.inet_aton(target_ip) or tpa != socket.inet_aton(our_ip):
        return None
    if sha[0] & 1 or not any(sha):  # multicast/broadcast or zero: no neighbour has it
        return None
    return ":".join(f"{b:02x}" for b in sha)


def _fail(exc: OSError, what: str) -> OSError:
    from evl_net.errors import KernelError

    return KernelError(exc.errno or errno.EIO, what)


def _in_netns(netns: str, make: Any) -> Any:
    """``make()`` run by a thread that entered network namespace ``netns`` (setns(2) is per thread).

    A socket made there stays in that namespace for good; the process does not move.
    """
    import ctypes
    import threading

    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            try:
                home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                home = -1
            try:
                try:
                    fd = os.open(netns_path(netns), os.O_RDONLY | os.O_CLOEXEC)
                except OSError as exc:
                    raise _fail(exc, f"cannot open the network namespace {netns}") from None
                try:
                    if libc.setns(fd, CLONE_NEWNET) != 0:
                        code = ctypes.get_errno() or errno.EIO
                        raise _fail(OSError(code, os.strerror(code)), f"cannot enter the network namespace {netns}")
                finally:
                    os.close(fd)
                outcome["value"] = make()
            finally:
                if home >= 0:
                    libc.setns(home, CLONE_NEWNET)  # the thread ends anyway; be tidy
                    os.close(home)
        except Exception as exc:  # noqa: BLE001 (handed to the caller; signals go to the main thread)
            outcome["error"] = exc

    thread = threading.Thread(target=run, name=f"evl-netns-{netns}", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _arp_socket(netns: str | None) -> Any:
    import socket

    def make() -> socket.socket:
        try:
            return socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ARP))
        except OSError as exc:
            raise _fail(exc, "cannot open an ARP packet socket") from None

    return _in_netns(netns, make) if netns else make()


def _ifreq(sock: Any, request: int, dev: str) -> bytes:
    import fcntl
    import struct

    return fcntl.ioctl(sock.fileno(), request, struct.pack("16s", dev.encode()).ljust(IFREQ_SIZE, b"\0"))


def arp_solicit(
    target: str, dev: str, timeout: float, netns: str | None = None, source: str | None = None
) -> str | None:
    """Ask ``dev`` who has ``target``, as the kernel's ARP resolution does; the replying MAC, or None.

    None also when the device does not do ARP (loopback, NOARP, not
    Ethernet): there is no one to ask, so no answer comes.  The request is
    sent from ``source`` (default 0.0.0.0: a probe) and the device's MAC, at
    most ARP_PROBES times ARP_RETRANS apart, and replies are awaited until
    ``timeout`` seconds have passed since the first one.  Everything happens
    in ``netns`` (an ``ip netns`` name or a path; None: this process's).
    Failures are OSErrors with the errno (EPERM without CAP_NET_RAW or
    CAP_SYS_ADMIN, ENOENT for a missing namespace, ENODEV for a missing
    device...), their ``detail`` naming the step.
    """
    import select
    import struct
    import time

    source = source or ANY
    deadline = time.monotonic() + max(0.0, timeout)
    sock = _arp_socket(netns)
    with sock:
        try:  # ioctls and the bind name the device in the socket's namespace
            (flags,) = struct.unpack_from("H", _ifreq(sock, SIOCGIFFLAGS, dev), 16)
            hatype, raw_mac = struct.unpack_from("H6s", _ifreq(sock, SIOCGIFHWADDR, dev), 16)
        except OSError as exc:
            raise _fail(exc, f"cannot query {dev}") from None
        if flags & (IFF_NOARP | IFF_LOOPBACK) or hatype != ARPHRD_ETHER:
            return None
        try:
            sock.bind((dev, ETH_P_ARP))
        except OSError as exc:
            raise _fail(exc, f"cannot bind an ARP packet socket to {dev}") from None
        sock.setblocking(False)
        request = arp_request(raw_mac, source, target)
        sent, next_send = 0, time.monotonic()
        while True:
            now = time.monotonic()
            if now >= deadline:
                return None
            if sent < ARP_PROBES and now >= next_send:
                try:
                    sock.sendto(request, (dev, ETH_P_ARP, 0, ARPHRD_ETHER, BROADCAST_MAC))
                except OSError as exc:
                    raise _fail(exc, f"cannot send an ARP request on {dev}") from None
                sent, next_send = sent + 1, now + ARP_RETRANS
            until = min(deadline, next_send) if sent < ARP_PROBES else deadline
            ready, _, _ = select.select([sock], [], [], max(0.0, until - time.monotonic()))
            while ready:
                try:
                    payload, address = sock.recvfrom(2048)
                except BlockingIOError:
                    break
                except OSError as exc:
                    raise _fail(exc, f"cannot receive ARP replies on {dev}") from None
                if address[2] == PACKET_OUTGOING:  # our own request, seen leaving
                    continue
                mac = arp_reply_mac(payload, target, source)
                if mac is not None:
                    return mac
