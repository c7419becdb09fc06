"""What the primitives of the transport contract return, but for a port's status: typed records.

Kept apart from :mod:`evl_net.model` (which has :class:`~evl_net.model.DevStat`
and the JSON form of all of them) so that a port query, the most common
command, does not pay for defining them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Interface:
    """A network interface as ``-Q --all-interfaces`` lists it."""

    name: str
    oob_port: bool
    up: bool = True


@dataclass(frozen=True)
class PortConfig:
    """A port after ``enable``: whether the request changed anything, and its pool's sizes."""

    changed: bool
    pool_size: int | None = None
    buffer_size: int | None = None


@dataclass(frozen=True)
class Change:
    """The outcome of a request that only says whether it changed the board."""

    changed: bool


@dataclass(frozen=True)
class FilterInstalled:
    """An eBPF RX filter installed: the program the object's first one turned out to be."""

    changed: bool
    program: str | None = None
    section: str | None = None


@dataclass(frozen=True)
class Solicited:
    """A peer solicited into the out-of-band ARP front cache."""

    ip: str
    permanent: bool
    may_route: bool
    changed: bool


@dataclass(frozen=True)
class VlansSet:
    """The global RX VLAN filter after a write, as the kernel prints it."""

    changed: bool
    vlans: str
