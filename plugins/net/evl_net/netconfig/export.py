"""A board's live setup as a net-config file: what ``apply`` reproduces on a fresh board.

:func:`setup_of` turns a :class:`~evl_net.netconfig.live.Live` into the
:class:`~evl_net.netconfig.Setup` that describes it; :func:`render` writes a
setup as TOML, in one canonical order, so that export, apply and export
again give the same bytes.  The interfaces exported are those the oob setup
stands on: every VLAN device, every port's device and its real device.  A
filter the board cannot identify is left out, with a comment saying so.
"""

from __future__ import annotations

import json
from typing import Any

from evl_net.netconfig import Setup
from evl_net.netconfig.live import Live


def setup_of(live: Live, every_link: bool = False) -> Setup:
    """The setup ``live`` is; ``every_link``: describe every interface (what a rollback restores)."""
    setup = Setup()
    names = [
        n
        for n, link in live.links.items()
        if every_link or link.parent or n in live.ports or any(live.real(p) == n for p in live.ports)
    ]
    for name in sorted(names, key=lambda n: (live.links[n].parent is not None, n)):
        link = live.links[name]
        spec: dict[str, Any] = {}
        if link.parent:
            spec.update(parent=link.parent, vlan_id=link.vlan_id)
        spec.update(mtu=link.mtu, up=link.up, addresses=list(link.addresses))
        setup.interfaces[name] = spec
    seen_real: set[str] = set()
    for port in sorted(live.ports):
        real = live.real(port)
        pool = live.pools[real]
        spec = {"pool": pool.total, "buffer": pool.size}
        filt = live.filters.get(real)
        if real not in seen_real and filt is not None:
            if filt.installed and filt.object and filt.sha256:
                spec["filter"] = {"object": filt.object, "sha256": filt.sha256}
            elif filt.installed is not False:
                spec["filter"] = {"unknown": True}
        seen_real.add(real)
        setup.ports[port] = spec
    setup.vlan_filter = live.vlans
    for entry in live.arp:
        setup.peers.append({"host": entry.ip, "via": entry.dev, "permanent": entry.permanent})
    return setup


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string: JSON's escapes are TOML's
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def render(setup: Setup, title: str | None = None) -> str:
    """``setup`` as a net-config file."""
    from evl_net.kernel import vlans

    out = [f"# {title}\n"] if title else []
    out.append(f"vlan_filter = {_value(vlans.format(setup.vlan_filter or ()))}\n")
    for name, spec in setup.interfaces.items():
        out.append(f"\n[interface.{_value(name)}]\n")
        out += [f"{k} = {_value(v)}\n" for k, v in spec.items()]
    for name, spec in setup.ports.items():
        out.append(f"\n[port.{_value(name)}]\n")
        for k, v in spec.items():
            if k == "filter" and v.get("unknown"):
                out.append("# filter = ? (the board cannot tell which eBPF filter is installed: apply removes it)\n")
                continue
            out.append(f"{k} = {_value(v)}\n")
    for peer in setup.peers:
        out.append("\n[[peer]]\n")
        out += [f"{k} = {_value(v)}\n" for k, v in peer.items()]
    return "".join(out)
