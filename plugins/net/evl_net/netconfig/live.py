"""A board's live out-of-band setup, read through the library API: what plans start from and exports show.

:class:`Live` is the one picture of a board that planning, applying and
exporting share: its links, its ports and their pools, what is known of each
real device's eBPF filter, the global VLAN map and the ARP front cache, and
where each peer of a setup would be solicited.  It is read in one pass
(:func:`read`) and copied for projections (:meth:`Live.copy`), so that a plan
can predict the board step by step without touching it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evl_net.api import Board
    from evl_net.netconfig import Setup
    from evl_net.outcomes import CoreAbi, FilterState, Link, Neighbour


@dataclass
class Pool:
    """A real device's buffer pool: ``total`` buffers of ``size`` bytes."""

    total: int
    size: int


@dataclass
class Route:
    """Where a peer of the setup would be solicited: (device, next hop, cached "P"/"R"/""/"N"/"?"), or why not."""

    dev: str | None = None
    nexthop: str | None = None
    cached: str = ""
    error: str | None = None


@dataclass
class Live:
    """A board's setup: links by name, ports, pools and filters by real device, VLAN map, ARP cache."""

    abi: tuple[int, int]
    page_size: int
    links: dict[str, Link]
    ports: list[str]
    pools: dict[str, Pool]
    filters: dict[str, FilterState]
    vlans: frozenset[int]
    arp: list[Neighbour]
    #: peer key (host, via, gateway) -> where it goes; filled for the peers of the setup read with
    routes: dict[tuple[str, str | None, bool], Route] = field(default_factory=dict)

    def real(self, name: str) -> str:
        """The real device under ``name`` (itself unless a VLAN device)."""
        link = self.links.get(name)
        return link.parent if link is not None and link.parent else name

    def ports_on(self, real: str) -> list[str]:
        return [p for p in self.ports if self.real(p) == real]

    def copy(self) -> Live:
        return copy.deepcopy(self)


def peer_key(peer: dict[str, Any]) -> tuple[str, str | None, bool]:
    return (peer["host"], peer.get("via"), bool(peer.get("gateway", False)))


def read(board: Board, setup: Setup | None = None) -> Live:
    """The live setup of ``board``; with ``setup``, where each of its peers would be solicited."""
    from evl_net.kernel import vlans

    abi: CoreAbi = board.core_abi()
    links = {link.name: link for link in board.links()}
    live = Live(
        abi=(abi.base, abi.current),
        page_size=board.page_size(),
        links=links,
        ports=[name for name, link in links.items() if link.oob_port],
        pools={},
        filters={},
        vlans=vlans.parse(board.get_vlans()),
        arp=board.arp_cache(),
    )
    for port in live.ports:
        real = live.real(port)
        if real not in live.pools:
            stat = board.stat(port)
            live.pools[real] = Pool(stat.skb_total, stat.skb_size)
            live.filters[real] = board.filter_state(port)
    if setup is not None:
        add_routes(board, live, setup)
    return live


def add_routes(board: Board, live: Live, setup: Setup) -> None:
    """Find where each peer of ``setup`` that ``live`` has no route for yet would be solicited."""
    from evl_core.errors import EvlError

    for peer in setup.peers:
        key = peer_key(peer)
        if key in live.routes:
            continue
        try:
            found = board.peer_route(key[0], key[1], bool(peer.get("permanent")), key[2])
            live.routes[key] = Route(found.dev, found.nexthop, found.cached)
        except EvlError as exc:
            live.routes[key] = Route(error=exc.said())
