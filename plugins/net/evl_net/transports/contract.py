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

from evl_core.record import record
from evl_net.transports import DEFAULT_POOL, NEIGH_MAYROUTE, NEIGH_PERMANENT, POOL_MAX, TransportBase

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any

    from evl_net.transports.interface import Transport

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
if TYPE_CHECKING:
    ArgKind = tuple[Any, ...]


@record(frozen=True)
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


def wire_key(arg: tuple[Any, ...]) -> str:
    """The key of a primitive's argument in a request frame."""
    return arg[2] if len(arg) > 2 else arg[0]


def __getattr__(name: str) -> Any:
    """:class:`Transport`, the Python face of :data:`PRIMITIVES`, from :mod:`evl_net.transports.interface`.

    It is a ``typing.Protocol``: importing it costs ``typing``, which running a request does not need.
    """
    if name == "Transport":
        from evl_net.transports.interface import Transport

        return Transport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
