"""The transport contract: the kernel-level requests ``evl net`` is made of, declared once.

:data:`PRIMITIVES` is the one table of them.  The :class:`Transport`
protocol below is its Python face (a test checks the two agree); the remote
protocol's allowlist and argument schemas, the board agent's handlers and the
remote transport's methods are all derived from the table, so a request is
added by adding one row here and implementing it in the local transports.

Every transport raises :class:`evl_net.errors.KernelError` (an OSError with
the kernel's errno) for a failed request, with the same errno semantics, so a
command's messages and output are the same whichever transport ran it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from evl_net.model import DevStat
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

from evl_net.transports import DEFAULT_POOL, NEIGH_MAYROUTE, NEIGH_PERMANENT, POOL_MAX, TransportBase

__all__ = [
    "DEFAULT_POOL",
    "NEIGH_MAYROUTE",
    "NEIGH_PERMANENT",
    "POOL_MAX",
    "PRIMITIVES",
    "Primitive",
    "Transport",
    "TransportBase",
]

#: Argument kinds of the wire schema (see :mod:`evl_net.transports.remote.protocol`):
#: ``("name",)`` an interface or host name, ``("uint", max)``, ``("text", max)``
#: (may be empty), ``("name?",)`` a name or null, ``("object",)`` an eBPF object.
ArgKind = tuple[Any, ...]


@dataclass(frozen=True)
class Primitive:
    """One kernel-level request.

    ``method`` is the Transport method, ``wire`` its name in the remote
    protocol, ``args`` its parameters with their wire kinds (and, third,
    the wire key when it is not the parameter's name),
    ``result`` the type hint of what it returns (as text, resolved against
    :mod:`evl_net.model`).  ``probe`` names the read request whose answer the
    agent records before and after a mutation (``before``/``after``).
    """

    method: str
    wire: str
    args: tuple[tuple[Any, ...], ...]
    result: str
    mutates: bool = False
    probe: str | None = None


IFNAME: ArgKind = ("name",)

PRIMITIVES: tuple[Primitive, ...] = (
    Primitive("page_size", "page_size", (), "int"),
    Primitive("interfaces", "interfaces", (), "list[Interface]"),
    Primitive("get_stat", "stat.get", (("ifname", IFNAME),), "DevStat"),
    Primitive("get_vlans", "vlans.get", (), "str"),
    Primitive(
        "enable_port",
        "port.enable",
        (("ifname", IFNAME), ("pool_size", ("uint", 2**32 - 1)), ("buffer_size", ("uint", 2**64 - 1))),
        "PortConfig",
        mutates=True,
        probe="port",
    ),
    Primitive("disable_port", "port.disable", (("ifname", IFNAME),), "Change", mutates=True, probe="port"),
    Primitive(
        "install_rx_filter",
        "bpf.load",
        (("ifname", IFNAME), ("obj", ("object",)), ("obj_name", ("text", 4096), "name")),
        "FilterInstalled",
        mutates=True,
        probe="filter",
    ),
    Primitive("remove_rx_filter", "bpf.remove", (("ifname", IFNAME),), "Change", mutates=True, probe="filter"),
    Primitive(
        "solicit",
        "solicit",
        (("host", IFNAME), ("ifname", ("name?",)), ("flags", ("uint", 2**32 - 1))),
        "Solicited",
        mutates=True,
    ),
    Primitive("set_vlans", "vlans.set", (("text", ("text", 65536)),), "VlansSet", mutates=True, probe="vlans"),
    # What evl net-config reads and changes beyond the EVL requests: the board's links, what is known of
    # its filters and ARP front cache, and where a solicitation would go.
    Primitive("core_abi", "core.abi", (), "CoreAbi"),
    Primitive("links", "links", (), "list[Link]"),
    Primitive("filter_state", "bpf.state", (("ifname", IFNAME),), "FilterState"),
    Primitive("arp_cache", "arp.get", (), "list[Neighbour]"),
    Primitive(
        "peer_route",
        "peer.route",
        (("host", IFNAME), ("ifname", ("name?",)), ("flags", ("uint", 2**32 - 1))),
        "PeerRoute",
    ),
    Primitive("flush_arp", "arp.flush", (), "Change", mutates=True),
    Primitive(
        "create_vlan",
        "link.vlan",
        (("ifname", IFNAME), ("parent", IFNAME), ("vlan_id", ("uint", 4094))),
        "Change",
        mutates=True,
    ),
    Primitive("delete_link", "link.delete", (("ifname", IFNAME),), "Change", mutates=True),
    Primitive("set_mtu", "link.mtu", (("ifname", IFNAME), ("mtu", ("uint", 65535))), "Change", mutates=True),
    Primitive("set_link_up", "link.up", (("ifname", IFNAME), ("up", ("uint", 1))), "Change", mutates=True),
    Primitive("add_address", "addr.add", (("ifname", IFNAME), ("address", ("text", 18))), "Change", mutates=True),
    Primitive("remove_address", "addr.remove", (("ifname", IFNAME), ("address", ("text", 18))), "Change", mutates=True),
)

BY_METHOD = {p.method: p for p in PRIMITIVES}
BY_WIRE = {p.wire: p for p in PRIMITIVES}


def result_type(primitive: Primitive) -> Any:
    """The type hint ``primitive.result`` names, for :func:`evl_net.model.from_json`."""
    from evl_net import model, outcomes

    name = primitive.result
    if name.startswith("list[") and name.endswith("]"):
        return list[getattr(outcomes, name[5:-1])]  # type: ignore[misc]
    return {"int": int, "str": str}.get(name) or getattr(model, name, None) or getattr(outcomes, name)


@runtime_checkable
class Transport(Protocol):
    """A way to reach one board's EVL network stack; each method is one row of :data:`PRIMITIVES`.

    A transport is used as a context manager around one invocation, so that
    one holding state (the simulator) can load and store it once.  ``name``
    says which one it is; ``console``, when set, receives the kernel log
    lines an operation prints, as a console would show them.
    """

    name: str

    def __enter__(self) -> Transport: ...

    def __exit__(self, *exc: Any) -> None: ...

    def close(self) -> None:
        """Release what the transport holds."""

    def page_size(self) -> int:
        """The board's page size, which bounds the buffer size (4 x page size)."""

    def interfaces(self) -> Sequence[Interface]:
        """Every network interface of the board."""

    def get_stat(self, ifname: str) -> DevStat:
        """Open the device and read its ``evl_net_devstat``."""

    def get_vlans(self) -> str:
        """The global RX VLAN filter as the kernel prints it, without the newline."""

    def enable_port(self, ifname: str, pool_size: int, buffer_size: int) -> PortConfig:
        """Open the device and make it an out-of-band port (0 = kernel default)."""

    def disable_port(self, ifname: str) -> Change:
        """Open the device and dismantle its out-of-band port."""

    def install_rx_filter(self, ifname: str, obj: bytes, obj_name: str) -> FilterInstalled:
        """Install the first program of an eBPF object as the RX filter of the port's real device."""

    def remove_rx_filter(self, ifname: str) -> Change:
        """Remove the port's RX filter (``changed`` is True where the kernel cannot tell)."""

    def solicit(self, host: str, ifname: str | None, flags: int) -> Solicited:
        """Resolve ``host`` and solicit it into the out-of-band ARP front cache."""

    def set_vlans(self, text: str) -> VlansSet:
        """Write the global RX VLAN filter (kernel list syntax; empty clears it)."""

    def core_abi(self) -> CoreAbi:
        """The ABI revisions the board's EVL core speaks."""

    def links(self) -> Sequence[Link]:
        """Every network interface with its networking set-up (VLAN, MTU, state, IPv4 addresses)."""

    def filter_state(self, ifname: str) -> FilterState:
        """What is known of the RX filter of port ``ifname``'s real device (ENODEV for a non-port)."""

    def arp_cache(self) -> Sequence[Neighbour]:
        """The entries of the out-of-band ARP front cache."""

    def peer_route(self, host: str, ifname: str | None, flags: int) -> PeerRoute:
        """Where soliciting ``host`` would go, and what the front cache holds for it; nothing is sent."""

    def flush_arp(self) -> Change:
        """Flush the out-of-band ARP front cache (``ipv4_flush_arp``)."""

    def create_vlan(self, ifname: str, parent: str, vlan_id: int) -> Change:
        """Create VLAN device ``ifname`` on ``parent`` (``ip link add link PARENT name IFNAME type vlan id N``)."""

    def delete_link(self, ifname: str) -> Change:
        """Delete a VLAN device (its port, if any, goes with it)."""

    def set_mtu(self, ifname: str, mtu: int) -> Change:
        """Set the MTU of a device."""

    def set_link_up(self, ifname: str, up: int) -> Change:
        """Bring a device up (1) or down (0); going down dismantles its port as the kernel does."""

    def add_address(self, ifname: str, address: str) -> Change:
        """Add an IPv4 address/prefix to a device."""

    def remove_address(self, ifname: str, address: str) -> Change:
        """Remove an IPv4 address/prefix from a device."""


def wire_key(arg: tuple[Any, ...]) -> str:
    """The key of a primitive's argument in a request frame."""
    return arg[2] if len(arg) > 2 else arg[0]
