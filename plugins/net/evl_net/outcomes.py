"""What the primitives of the transport contract return, but for a port's status: typed records.

Kept apart from :mod:`evl_net.model` (which has :class:`~evl_net.model.DevStat`
and the JSON form of all of them) so that a port query, the most common
command, does not pay for defining them.
"""

from __future__ import annotations

from evl_core.record import record


@record(frozen=True)
class Interface:
    """A network interface as ``-Q --all-interfaces`` lists it."""

    name: str
    oob_port: bool
    up: bool = True


@record(frozen=True)
class PortConfig:
    """A port after ``enable``: whether the request changed anything, and its pool's sizes."""

    changed: bool
    pool_size: int | None = None
    buffer_size: int | None = None


@record(frozen=True)
class Change:
    """The outcome of a request that only says whether it changed the board."""

    changed: bool


@record(frozen=True)
class FilterInstalled:
    """An eBPF RX filter installed: the program the object's first one turned out to be."""

    changed: bool
    program: str | None = None
    section: str | None = None


@record(frozen=True)
class Solicited:
    """A peer solicited into the out-of-band ARP front cache."""

    ip: str
    permanent: bool
    may_route: bool
    changed: bool


@record(frozen=True)
class VlansSet:
    """The global RX VLAN filter after a write, as the kernel prints it."""

    changed: bool
    vlans: str


# -- what evl net-config reads and changes beyond the EVL requests --------------------------------


@record(frozen=True)
class Link:
    """A network interface as the board's networking has it (rtnetlink on a real board).

    ``parent`` and ``vlan_id`` are set for a VLAN device; ``addresses`` are
    its IPv4 addresses with their prefix length, sorted; ``up`` is the
    administrative state; ``oob_capable`` and ``oob_port`` are what EVL
    says of the device (GETSTAT).
    """

    name: str
    parent: str | None
    vlan_id: int | None
    mtu: int
    up: bool
    loopback: bool
    addresses: list[str]
    oob_capable: bool
    oob_port: bool


@record(frozen=True)
class FilterState:
    """What is known of the eBPF RX filter of a port's real device ``real``.

    ``installed`` is None when the board cannot tell (the kernel has no
    request that reads a filter back, and no record says what was
    installed); ``object`` is the path the filter was installed from and
    ``sha256`` that object's digest, when known.
    """

    real: str
    installed: bool | None
    object: str | None = None
    sha256: str | None = None
    program: str | None = None


@record(frozen=True)
class Neighbour:
    """An entry of the out-of-band ARP front cache: next hop ``ip`` on port ``dev``."""

    dev: str
    ip: str
    mac: str
    permanent: bool


@record(frozen=True)
class PeerRoute:
    """Where a solicitation of a host would go: its address, the output device and next hop, what is cached.

    ``cached`` is "P" (a permanent entry), "R" (reachable, aging), "" (none)
    or "?" (the board cannot read its ARP front cache).
    """

    ip: str
    dev: str
    nexthop: str
    cached: str


@record(frozen=True)
class CoreAbi:
    """The EVL ABI revisions the board's core speaks (``abi_base`` .. ``abi_current``)."""

    base: int
    current: int
