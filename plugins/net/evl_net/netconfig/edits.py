"""Changes to one part of a board's own setup: one port, the VLAN filter, one port's filter, one peer.

Each function edits a :class:`~evl_net.netconfig.Setup` that is the board's
own (exported from ``live``) so that :func:`~evl_net.netconfig.converge.converge`
plans exactly that change, with what the kernel does around it; each returns
the problems that keep the change from being made (none: go on).  These are
the ``edit`` callables of the Ansible modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evl_core.errors import EvlError

if TYPE_CHECKING:
    from evl_net.api import Board
    from evl_net.netconfig import Setup
    from evl_net.netconfig.live import Live


def _on_real(setup: Setup, live: Live, real: str) -> list[str]:
    """The setup's ports on the real device ``real``."""
    return [n for n in setup.ports if live.real(n) == real]


def _device(live: Live, name: str) -> list[str]:
    return [] if name in live.links else [f"no device {name} on the board"]


def enable_port(setup: Setup, live: Live, name: str, pool: int | None = None, buffer: int | None = None) -> list[str]:
    """``name`` an oob port; ``pool``/``buffer`` the sizes of its real device's pool (None: as it is or default).

    The sizes are set on every port of the real device, since they share
    one pool: a size that differs from the pool's is a resize of it.
    """
    problems = _device(live, name)
    if problems:
        return problems
    setup.ports.setdefault(name, {})
    for port in _on_real(setup, live, live.real(name)):
        for key, value in (("pool", pool), ("buffer", buffer)):
            if value is not None:
                setup.ports[port][key] = value
    return []


def disable_port(setup: Setup, live: Live, name: str) -> list[str]:
    """``name`` no oob port: its ARP entries go with it, its real device's filter stays with the other ports."""
    problems = _device(live, name)
    if problems or name not in setup.ports:
        return problems
    spec = setup.ports.pop(name)
    rest = _on_real(setup, live, live.real(name))
    if "filter" in spec and rest:
        setup.ports[rest[0]]["filter"] = spec["filter"]
    setup.peers = [p for p in setup.peers if p.get("via") != name]
    return []


def set_vlans(setup: Setup, ids: frozenset[int]) -> list[str]:
    """The global RX VLAN filter: exactly ``ids`` (empty: no filter)."""
    setup.vlan_filter = frozenset(ids)
    return []


def set_filter(setup: Setup, live: Live, name: str, path: str | None, sha256: str | None = None) -> list[str]:
    """The eBPF RX filter of port ``name``'s real device: the object at ``path`` (pinned to ``sha256``), or none."""
    problems = _device(live, name)
    if problems:
        return problems
    if name not in setup.ports:
        return [] if path is None else [f"{name} is no out-of-band port: a filter needs the port enabled first"]
    for port in _on_real(setup, live, live.real(name)):
        setup.ports[port].pop("filter", None)
    if path is not None:
        setup.ports[name]["filter"] = {"object": path} | ({"sha256": sha256} if sha256 else {})
    return []


def peer(host: str, via: str | None, permanent: bool, may_route: bool) -> dict[str, Any]:
    """A peer as a net-config file has it."""
    out: dict[str, Any] = {"host": host}
    if via is not None:
        out["via"] = via
    return out | {"permanent": permanent, "gateway": may_route}


def add_peer(setup: Setup, wanted: dict[str, Any]) -> list[str]:
    """``wanted`` (a :func:`peer`) solicited into the ARP front cache, unless its next hop is cached already."""
    setup.peers.append(wanted)
    return []


def remove_peer(setup: Setup, board: Board, wanted: dict[str, Any]) -> list[str]:
    """No ARP entry for the next hop of ``wanted``: the kernel can only flush the cache and solicit the rest again.

    A host the board cannot route has no entry to remove.
    """
    try:
        route = board.peer_route(wanted["host"], wanted.get("via"), bool(wanted["permanent"]), bool(wanted["gateway"]))
    except EvlError:
        return []
    setup.peers = [p for p in setup.peers if (p.get("via"), p["host"]) != (route.dev, route.nexthop)]
    return []


def port_of(live: Live | None, name: str) -> dict[str, Any] | None:
    """Port ``name`` in ``live``, as the modules return it."""
    if live is None or name not in live.links:
        return None
    real = live.real(name)
    pool = live.pools.get(real) if name in live.ports else None
    return {
        "name": name,
        "enabled": name in live.ports,
        "real": real,
        "pool_size": pool.total if pool else None,
        "buffer_size": pool.size if pool else None,
    }
