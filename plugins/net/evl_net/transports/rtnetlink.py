"""The live kernel's links, addresses, routes and neighbours, through rtnetlink (pyroute2).

What a board's networking is beyond EVL: the ioctl transport reads and
changes the links of its own network namespace here, and the simulator's
host mirror (:mod:`evl_net.transports.sim.host`) those of the namespace it
mirrors.  Every request takes ``netns`` first: None is this process's
namespace, a name an ``ip netns`` name or a path to a namespace file.

Failures are :class:`~evl_net.errors.KernelError` with the kernel's errno
(pyroute2's ``NetlinkError`` is not an OSError); a mutation returns whether
it changed anything.  pyroute2 is imported inside the functions only:
importing it costs 100+ ms, which ``evl net -Q`` and the other EVL requests
never pay.
"""

from __future__ import annotations

import errno
import ipaddress
from typing import TYPE_CHECKING, Any

from evl_core.errors import EvlError
from evl_net.errors import KernelError

if TYPE_CHECKING:
    from evl_net.outcomes import Link

ZERO_MAC = "00:00:00:00:00:00"
AF_INET = 2
IFF_UP = 0x1
IFF_LOOPBACK = 0x8

NUD_INCOMPLETE = 0x01
NUD_REACHABLE = 0x02
NUD_STALE = 0x04
NUD_DELAY = 0x08
NUD_PROBE = 0x10
NUD_FAILED = 0x20
NUD_NOARP = 0x40
NUD_PERMANENT = 0x80
NUD_RESOLVED = NUD_REACHABLE | NUD_PERMANENT | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_NOARP


def version_tuple(text: str) -> tuple[int, ...]:
    """A pyroute2 version as numbers ("1rc1" counts as 1); unknown: taken as a current release."""
    parts = []
    for part in text.split(".")[:3]:
        digits = part[: len(part) - len(part.lstrip("0123456789"))]
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts) or (99,)


def nud_reachable(state: int, lladdr: str | None) -> bool:
    """Whether a neighbour entry resolves its peer (needs a link-layer address)."""
    return bool(lladdr) and bool(state & NUD_RESOLVED)


def mac_text(value: Any) -> str:
    """A link-layer address as ``aa:bb:..``, the zero MAC for anything that is not an Ethernet one."""
    if isinstance(value, str):
        parts = value.split(":")
        if len(parts) == 6 and all(len(p) == 2 for p in parts):
            return value.lower()
    return ZERO_MAC


class Session:
    """An IPRoute on a network namespace, with NetlinkError turned into KernelError."""

    def __init__(self, netns: str | None) -> None:
        self.netns = netns
        self.ipr: Any = None

    def __enter__(self) -> Session:
        try:
            import pyroute2
        except ImportError:
            raise EvlError("the host board needs pyroute2 (pip install pyroute2)") from None
        try:
            if not self.netns:
                self.ipr = pyroute2.IPRoute()
            elif version_tuple(getattr(pyroute2, "__version__", "")) >= (0, 9, 1):
                # flags=0: never create a namespace that is missing (pyroute2 defaults to O_CREAT).
                self.ipr = pyroute2.IPRoute(netns=self.netns, flags=0)
            else:  # before 0.9.1 only NetNS knew namespaces
                self.ipr = pyroute2.NetNS(self.netns, flags=0)
        except FileNotFoundError:
            raise EvlError(f"no network namespace {self.netns!r}", errno.ENOENT) from None
        except OSError as exc:
            raise EvlError(f"cannot open the network namespace {self.netns or 'of this process'}", exc.errno) from None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.ipr is not None:
            self.ipr.close()

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        from pyroute2 import NetlinkError

        try:
            return getattr(self.ipr, method)(*args, **kwargs)
        except NetlinkError as exc:
            raise KernelError(exc.code or errno.EIO) from None

    def index(self, ifname: str) -> int:
        found = self.call("link_lookup", ifname=ifname)
        if not found:
            raise KernelError(errno.ENODEV, f"no device {ifname}")
        return int(found[0])

    def name(self, index: int) -> str | None:
        (msg,) = self.call("link", "get", index=index)
        return msg.get("ifname")

    def link(self, ifname: str) -> Any:
        """The ifinfomsg of ``ifname``; ENODEV when there is none."""
        (msg,) = self.call("link", "get", index=self.index(ifname))
        return msg

    def dumps(self, neighbours: bool = True) -> tuple[Any, Any, Any, Any]:
        return (
            tuple(self.call("link", "dump")),
            tuple(self.call("addr", "dump", family=AF_INET)),
            tuple(self.call("route", "dump", family=AF_INET)),
            tuple(self.call("neigh", "dump", family=AF_INET)) if neighbours else (),
        )


# -- reading ---------------------------------------------------------------------------------------


def links(netns: str | None) -> list[Link]:
    """Every link with its VLAN set-up, MTU, admin state and IPv4 addresses, in ifindex order.

    ``parent`` is the VLAN's lower device as ``ip link`` shows it (None when
    it lives in another namespace); ``oob_capable``/``oob_port`` are left
    False: only EVL can say, and the caller asks it.
    """
    from evl_net.outcomes import Link

    with Session(netns) as session:
        dump = tuple(session.call("link", "dump"))
        addrs = tuple(session.call("addr", "dump", family=AF_INET))
    names = {msg["index"]: msg.get("ifname") for msg in dump if msg.get("ifname")}
    addresses: dict[int, list[str]] = {}
    for msg in addrs:
        ip = msg.get("local") or msg.get("address")
        if msg["family"] == AF_INET and ip:
            addresses.setdefault(msg["index"], []).append(f"{ip}/{msg['prefixlen']}")
    out = []
    for msg in sorted(dump, key=lambda m: m["index"]):
        name = names.get(msg["index"])
        if name is None:
            continue
        flags = msg["flags"] or 0
        parent = vlan_id = None
        if msg.get(("linkinfo", "kind")) == "vlan":
            vid = msg.get(("linkinfo", "data", "vlan_id"))
            vlan_id = int(vid) if vid is not None else None
            if msg.get("link_netnsid") is None:
                parent = names.get(msg.get("link") or 0)
        out.append(
            Link(
                name=name,
                parent=parent,
                vlan_id=vlan_id,
                mtu=int(msg.get("mtu") or 0),
                up=bool(flags & IFF_UP),
                loopback=bool(flags & IFF_LOOPBACK),
                addresses=sorted(addresses.get(msg["index"], [])),
                oob_capable=False,
                oob_port=False,
            )
        )
    return out


def route_get(dst: str, oif: str | None = None, netns: str | None = None) -> tuple[str, str | None]:
    """(output device, gateway or None when on-link), as ``ip route get DST [oif OIF]`` says.

    ENETUNREACH when there is no route, ENODEV for an unknown ``oif``,
    EINVAL for a destination that is not IPv4.
    """
    try:
        dst = str(ipaddress.IPv4Address(dst))
    except ValueError:
        raise KernelError(errno.EINVAL) from None
    with Session(netns) as session:
        request: dict[str, Any] = {"dst": dst}
        if oif is not None:
            request["oif"] = session.index(oif)
        (msg,) = session.call("route", "get", **request)[:1]
        index = msg.get("oif")
        dev = session.name(index) if index else None
    if dev is None:
        raise KernelError(errno.ENETUNREACH)
    return dev, msg.get("gateway") or None


def route(netns: str | None, ip: str, oif: str | None, may_route: bool) -> tuple[str, str]:
    """(output device, next hop) of a solicitation of ``ip``, as the EVL core asks the in-band FIB.

    Without ``may_route`` the lookup is scope link: an off-link destination
    is ENETUNREACH, unless a device is forced, which makes it on-link.
    """
    dev, gateway = route_get(ip, oif, netns)
    if gateway and not may_route:
        if oif is None:
            raise KernelError(errno.ENETUNREACH, f"{ip} is off-link: allow gateways with -g")
        return oif, ip
    return dev, gateway or ip


def neighbour(ip: str, dev: str | None = None, netns: str | None = None) -> tuple[str, bool] | None:
    """(MAC, reachable) of the kernel's IPv4 neighbour entry for ``ip`` on ``dev``, or None.

    ``dev`` None looks on every device (a reachable entry wins).  An entry
    without a link-layer address reports the zero MAC and is not reachable.
    """
    try:
        ip = str(ipaddress.IPv4Address(ip))
    except ValueError:
        raise KernelError(errno.EINVAL) from None
    with Session(netns) as session:
        if dev is not None:
            index = session.index(dev)
            try:
                entries = session.call("neigh", "get", dst=ip, ifindex=index)
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    return None
                if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                # kernels before 4.20 cannot get one entry: dump and pick
                entries = [
                    m
                    for m in session.call("neigh", "dump", family=AF_INET)
                    if m.get("dst") == ip and m["ifindex"] == index
                ]
        else:
            entries = [m for m in session.call("neigh", "dump", family=AF_INET) if m.get("dst") == ip]
    found = [(m.get("lladdr"), m["state"] or 0) for m in entries if m["family"] == AF_INET]
    if not found:
        return None
    found.sort(key=lambda e: not nud_reachable(e[1], e[0]))
    lladdr, state = found[0]
    return (mac_text(lladdr) if lladdr else ZERO_MAC), nud_reachable(state, lladdr)


# -- changing --------------------------------------------------------------------------------------


def create_vlan(netns: str | None, ifname: str, parent: str, vlan_id: int) -> bool:
    """``ip link add link PARENT name IFNAME type vlan id N`` (created down, as the kernel does)."""
    with Session(netns) as session:
        lower = session.index(parent)
        session.call("link", "add", ifname=ifname, kind="vlan", link=lower, vlan_id=vlan_id)
    return True


def delete_link(netns: str | None, ifname: str) -> bool:
    """Delete VLAN device ``ifname``; EOPNOTSUPP for any other kind: only VLANs we made are deleted."""
    with Session(netns) as session:
        msg = session.link(ifname)
        if msg.get(("linkinfo", "kind")) != "vlan":
            raise KernelError(errno.EOPNOTSUPP, f"{ifname} is no VLAN device: only VLAN devices are deleted")
        session.call("link", "del", index=msg["index"])
    return True


def set_mtu(netns: str | None, ifname: str, mtu: int) -> bool:
    with Session(netns) as session:
        msg = session.link(ifname)
        if msg.get("mtu") == mtu:
            return False
        session.call("link", "set", index=msg["index"], mtu=mtu)
    return True


def set_link_up(netns: str | None, ifname: str, up: int) -> bool:
    """IFF_UP on (1) or off (0); going down dismantles the device's EVL port in the kernel."""
    if up not in (0, 1):
        raise KernelError(errno.EINVAL)
    with Session(netns) as session:
        msg = session.link(ifname)
        if bool((msg["flags"] or 0) & IFF_UP) == bool(up):
            return False
        session.call("link", "set", index=msg["index"], state="up" if up else "down")
    return True


def _interface(cidr: str) -> ipaddress.IPv4Interface:
    if "/" not in cidr:
        raise KernelError(errno.EINVAL, f"not an IPv4 address/prefix: {cidr!r}")
    try:
        return ipaddress.IPv4Interface(cidr)
    except ValueError:
        raise KernelError(errno.EINVAL, f"not an IPv4 address/prefix: {cidr!r}") from None


def add_address(netns: str | None, ifname: str, cidr: str) -> bool:
    """Add IPv4 ``cidr`` (address/prefix, no broadcast) to ``ifname``; EEXIST when it is there."""
    iface = _interface(cidr)
    with Session(netns) as session:
        index = session.index(ifname)
        session.call("addr", "add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
    return True


def remove_address(netns: str | None, ifname: str, cidr: str) -> bool:
    """Remove IPv4 ``cidr`` from ``ifname``; EADDRNOTAVAIL when it is not there."""
    iface = _interface(cidr)
    with Session(netns) as session:
        index = session.index(ifname)
        session.call("addr", "del", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
    return True
