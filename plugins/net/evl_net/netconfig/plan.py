"""From a board's live setup to a setup's files: the ordered steps, predicted one by one.

:func:`make` walks the phases in dependency order -- devices (VLAN devices
created, MTU, link state), then addresses, ports, eBPF filters, the VLAN
filter, and last the peers -- on a *projection* of the board (a copy of
:class:`~evl_net.netconfig.live.Live`), applying to it what the kernel does
for each step (docs/abi.md): a device going down dismantles its port and
those of the VLAN devices on it; the last port on a real device takes its
pool and filter along; a pool's sizes are fixed when its first port comes up,
so resizing one takes every port on it down and up, and with them their
filter and ARP entries, which later phases then restore.  What the file
leaves unsaid is decided here:

* an interface not declared is left alone; a declared one is brought up
  unless ``up = false``; its ``addresses``, when given, are exactly its IPv4
  addresses; ``mtu``, when given, is set;
* a port not declared is disabled; ``pool``/``buffer`` absent or 0 mean the
  kernel's default when the pool is made, and leave an existing pool as it is;
* no ``filter`` on any port of a real device means no filter there; no
  ``vlan_filter`` means an empty VLAN map; the ARP front cache holds exactly
  the peers' entries (the kernel has only a whole-cache flush, so one entry
  too many costs a flush and a new solicitation of every peer).

A setup the board cannot take (a port on a device that does not exist, two
ports sharing a pool with two sizes...) gives problems, each against the key
of the file, and the steps that could be planned.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evl_core import record
from evl_net.netconfig.live import Live, Pool, peer_key

if TYPE_CHECKING:
    from evl_net.netconfig import Setup

POOL_MAX = 32768
DEFAULT_POOL = 2048
#: The operations of the first phase: after them, where a peer is routed is only known once applied.
LINK_OPS = frozenset({"create-vlan", "delete-vlan", "set-mtu", "set-up", "add-address", "remove-address"})


@dataclass(frozen=True)
class Step:
    """One change: ``op`` what it does, ``sign`` "+" (adds), "~" (changes) or "-" (removes), ``args`` its input."""

    op: str
    sign: str
    target: str
    text: str
    args: dict[str, Any] = field(default_factory=dict)
    before: Any = None
    after: Any = None
    note: str | None = None

    def line(self) -> str:
        """The step as ``plan`` prints it: ``+ create vlan eth0.42 (eth0, id 42)``."""
        return f"{self.sign} {self.text}" + (f" ({self.note})" if self.note else "")

    def to_json(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "sign": self.sign,
            "target": self.target,
            "text": self.line(),
            "before": self.before,
            "after": self.after,
            "note": self.note,
        }


@dataclass
class Plan:
    """The steps from the board to the setup, the problems that keep some of it from being planned, the result."""

    steps: list[Step]
    problems: list[str]
    after: Live
    #: the problems without their key (for a setup that is no file of the user's: an edit of the board's own)
    messages: list[str] = field(default_factory=list)


def make(setup: Setup, live: Live, delete: tuple[str, ...] = ()) -> Plan:
    """The plan bringing ``live`` to ``setup``; ``delete`` names VLAN devices to delete first (rollbacks)."""
    planner = _Planner(setup, live.copy())
    planner.requires()
    planner.devices(delete)
    planner.ports()
    planner.filters()
    planner.vlan_filter()
    planner.peers()
    return Plan(planner.steps, planner.problems, planner.proj, planner.messages)


def _key(*path: str | int) -> str:
    from evl_net.schema import key_path

    return key_path(path)


def _cidr(text: str) -> str:
    import ipaddress

    return str(ipaddress.IPv4Interface(text))


def _vlan_text(ids: frozenset[int]) -> str:
    from evl_net.kernel import vlans

    return vlans.format(ids) or "(none)"


class _Planner:
    def __init__(self, setup: Setup, proj: Live) -> None:
        self.setup = setup
        self.proj = proj
        self.steps: list[Step] = []
        self.problems: list[str] = []
        self.messages: list[str] = []
        self.wanted: dict[str, list[str]] = {}  # real device -> the setup's ports on it

    def step(self, op: str, sign: str, target: str, text: str, **kw: Any) -> None:
        self.steps.append(Step(op, sign, target, text, **kw))

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{key}: {message}")
        self.messages.append(message)

    # -- what the projection does as the kernel would --------------------------------------------

    def dismantle(self, port: str) -> None:
        proj = self.proj
        if port not in proj.ports:
            return
        proj.ports.remove(port)
        proj.arp = [e for e in proj.arp if e.dev != port]
        real = proj.real(port)
        if not proj.ports_on(real):
            proj.pools.pop(real, None)
            proj.filters.pop(real, None)

    def effective_size(self, real: str, size: int) -> int:
        """The buffer size a pool made with ``size`` gets: raised to the real device's MTU but on a loopback."""
        link = self.proj.links[real]
        return size if link.loopback or size >= link.mtu else link.mtu

    def set_link(self, name: str, **changes: Any) -> None:
        self.proj.links[name] = record.replace(self.proj.links[name], **changes)

    # -- the phases --------------------------------------------------------------------------

    def requires(self) -> None:
        req = self.setup.requires
        base, current = self.proj.abi
        abi = req.get("abi")
        if abi is not None:
            lo, _, hi = abi.partition("-")
            if int(hi or lo) < base or int(lo) > current:
                speaks = str(base) if base == current else f"{base}-{current}"
                self.problem(_key("requires", "abi"), f"the board's EVL core speaks ABI {speaks}, not {abi}")
        for i, name in enumerate(req.get("oob_capable", [])):
            link = self.proj.links.get(name)
            if link is None:
                self.problem(_key("requires", "oob_capable", i), f"no device {name} on the board")
            elif not link.oob_capable:
                self.problem(_key("requires", "oob_capable", i), f"the driver of {name} is not oob-capable")

    def devices(self, delete: tuple[str, ...]) -> None:
        proj = self.proj
        for name in delete:
            if name in proj.links:
                self.step("delete-vlan", "-", name, f"vlan {name}", args={"ifname": name})
                self.dismantle(name)
                del proj.links[name]
        declared = self.setup.interfaces
        order = [n for n in declared if "parent" not in declared[n]] + [n for n in declared if "parent" in declared[n]]
        for name in order:
            spec = declared[name]
            link = proj.links.get(name)
            if link is None:
                if not self.create(name, spec):
                    continue
                link = proj.links[name]
            elif "parent" in spec and (link.parent, link.vlan_id) != (spec["parent"], spec["vlan_id"]):
                what = f"VLAN {link.vlan_id} on {link.parent}" if link.parent else "a real device"
                self.problem(
                    _key("interface", name),
                    f"{name} is {what} on the board, not VLAN {spec['vlan_id']} on {spec['parent']}",
                )
                continue
            self.mtu(name, spec.get("mtu"))
            self.updown(name, bool(spec.get("up", True)))
            if "addresses" in spec:
                self.addresses(name, [_cidr(a) for a in spec["addresses"]])

    def create(self, name: str, spec: dict[str, Any]) -> bool:
        proj = self.proj
        if "parent" not in spec:
            self.problem(
                _key("interface", name),
                f"no device {name} on the board (only VLAN devices, with parent and vlan_id, are created)",
            )
            return False
        parent, vid = spec["parent"], spec["vlan_id"]
        plink = proj.links.get(parent)
        if plink is None:
            self.problem(_key("interface", name, "parent"), f"no device {parent} on the board")
            return False
        if plink.parent:
            self.problem(_key("interface", name, "parent"), f"{parent} is a VLAN device on the board")
            return False
        other = next((n for n, lk in proj.links.items() if lk.parent == parent and lk.vlan_id == vid), None)
        if other is not None:
            self.problem(_key("interface", name, "vlan_id"), f"VLAN {vid} on {parent} is {other} on the board")
            return False
        self.step(
            "create-vlan",
            "+",
            name,
            f"create vlan {name} ({parent}, id {vid})",
            args={"ifname": name, "parent": parent, "vlan_id": vid},
        )
        from evl_net.outcomes import Link

        proj.links[name] = Link(name, parent, vid, plink.mtu, False, False, [], plink.oob_capable, False)
        return True

    def mtu(self, name: str, mtu: int | None) -> None:
        link = self.proj.links[name]
        if mtu is None or mtu == link.mtu:
            return
        if link.parent and mtu > self.proj.links[link.parent].mtu:
            pmtu = self.proj.links[link.parent].mtu
            self.problem(_key("interface", name, "mtu"), f"{mtu} is above the MTU of {link.parent} ({pmtu})")
            return
        self.step(
            "set-mtu",
            "~",
            name,
            f"mtu {name}: {link.mtu} → {mtu}",
            args={"ifname": name, "mtu": mtu},
            before=link.mtu,
            after=mtu,
        )
        self.set_link(name, mtu=mtu)
        for vlan in [lk for lk in self.proj.links.values() if lk.parent == name and lk.mtu > mtu]:
            self.set_link(vlan.name, mtu=mtu)  # the VLAN driver follows its real device down

    def updown(self, name: str, up: bool) -> None:
        link = self.proj.links[name]
        if up == link.up:
            return
        word = {True: "up", False: "down"}
        ports = [p for p in self.proj.ports if p == name or self.proj.links[p].parent == name]
        note = None
        if not up and ports:
            note = f"out-of-band port{'s' * (len(ports) > 1)} {', '.join(ports)} dismantled"
        self.step(
            "set-up",
            "~",
            name,
            f"link {name}: {word[link.up]} → {word[up]}",
            args={"ifname": name, "up": up},
            before=word[link.up],
            after=word[up],
            note=note,
        )
        self.set_link(name, up=up)
        if not up:
            for port in ports:
                self.dismantle(port)

    def addresses(self, name: str, want: list[str]) -> None:
        have = self.proj.links[name].addresses
        for cidr in want:
            if cidr not in have:
                self.step("add-address", "+", name, f"address {cidr} on {name}", args={"ifname": name, "address": cidr})
        for cidr in have:
            if cidr not in want:
                self.step(
                    "remove-address", "-", name, f"address {cidr} on {name}", args={"ifname": name, "address": cidr}
                )
        self.set_link(name, addresses=sorted(set(want)))

    def ports(self) -> None:
        proj = self.proj
        desired = self.setup.ports
        for name, spec in desired.items():
            link = proj.links.get(name)
            if link is None:
                self.problem(_key("port", name), f"no device {name} on the board")
                continue
            real = proj.real(name)
            if not link.up or not proj.links[real].up:
                down = name if not link.up else real
                self.problem(_key("port", name), f"{down} is down: a port needs its device up")
                continue
            pool, buf = spec.get("pool", 0), spec.get("buffer", 0)
            if pool > POOL_MAX:
                self.problem(_key("port", name, "pool"), f"{pool} is above the kernel's limit of {POOL_MAX}")
                continue
            if buf > 4 * proj.page_size:
                limit = 4 * proj.page_size
                self.problem(_key("port", name, "buffer"), f"{buf} is above the board's limit of {limit} (4 x pages)")
                continue
            self.wanted.setdefault(real, []).append(name)
        sizes: dict[str, tuple[int, int]] = {}
        for real, names in self.wanted.items():
            pool = buf = 0
            for key in ("pool", "buffer"):
                given = [(n, desired[n][key]) for n in names if desired[n].get(key)]
                for (n1, v1), (n2, v2) in itertools.pairwise(given):
                    if v1 != v2:
                        self.problem(_key("port", n2, key), f"{n1} and {n2} share {real}'s pool: {key} {v1} and {v2}")
                if given:
                    pool, buf = (given[0][1], buf) if key == "pool" else (pool, given[0][1])
            sizes[real] = (pool, buf)
        for port in list(proj.ports):
            if port not in desired:
                self.step("disable-port", "-", port, f"port {port}", args={"ifname": port})
                self.dismantle(port)
        for real, names in self.wanted.items():
            want_pool, want_buf = sizes[real]
            pool = proj.pools.get(real)
            want_size = self.effective_size(real, want_buf) if want_buf else None
            if pool is not None and (
                (want_pool and want_pool != pool.total) or (want_size is not None and want_size != pool.size)
            ):
                self.resize(real, names, pool, want_pool or pool.total, want_buf or pool.size)
                continue
            for name in names:
                if name in proj.ports:
                    continue
                if real not in proj.pools:
                    total = want_pool or DEFAULT_POOL
                    size = self.effective_size(real, want_buf or proj.page_size)
                    said = [f"pool {want_pool}"] * bool(want_pool) + [f"buffer {want_buf}"] * bool(want_buf)
                    text = f"port {name}" + (f" ({', '.join(said)})" if said else "")
                    args = {"ifname": name, "pool": want_pool, "buffer": want_buf}
                    from evl_net.outcomes import FilterState

                    proj.pools[real] = Pool(total, size)
                    proj.filters[real] = FilterState(real, False)
                    self.step("enable-port", "+", name, text, args=args, after={"pool": total, "buffer": size})
                else:
                    args = {"ifname": name, "pool": 0, "buffer": 0}
                    self.step("enable-port", "+", name, f"port {name}", args=args, note=f"shares {real}'s pool")
                proj.ports.append(name)

    def resize(self, real: str, names: list[str], pool: Pool, total: int, buf: int) -> None:
        proj = self.proj
        size = self.effective_size(real, buf)
        current = proj.ports_on(real)
        changes = [f"pool {pool.total} → {total}"] * (total != pool.total)
        changes += [f"buffer {pool.size} → {size}"] * (size != pool.size)
        moved = sorted(set(current) | set(names), key=lambda n: (n not in current, n))
        if len(moved) == 1:
            note = f"port goes down and up: in-flight oob traffic on {moved[0]} is dropped"
        else:
            note = f"ports {', '.join(moved)} go down and up: in-flight oob traffic on them is dropped"
        self.step(
            "resize-pool",
            "~",
            names[0],
            f"port {names[0]}: {', '.join(changes)}",
            args={"down": current, "up": names, "pool": total, "buffer": buf},
            before={"pool": pool.total, "buffer": pool.size},
            after={"pool": total, "buffer": size},
            note=note,
        )
        for port in current:
            self.dismantle(port)
        from evl_net.outcomes import FilterState

        proj.pools[real] = Pool(total, size)
        proj.filters[real] = FilterState(real, False)
        proj.ports.extend(names)

    def filters(self) -> None:
        import hashlib

        from evl_core.errors import EvlError
        from evl_core.files import read_regular
        from evl_net.netconfig import OBJECT_MAX
        from evl_net.outcomes import FilterState

        proj = self.proj
        for real, names in self.wanted.items():
            if real not in proj.pools:
                continue
            specs = [(n, self.setup.ports[n]["filter"]) for n in names if "filter" in self.setup.ports[n]]
            for (n1, f1), (n2, f2) in itertools.pairwise(specs):
                if f1.get("object") != f2.get("object"):
                    self.problem(
                        _key("port", n2, "filter"),
                        f"{n1} and {n2} share {real}'s eBPF filter: {f1.get('object')} and {f2.get('object')}",
                    )
            have = proj.filters.get(real)
            before = _filter_text(have)
            if not specs:
                if have is not None and have.installed is not False:
                    port = names[0]
                    note = "the board cannot tell which filter is installed" if have.installed is None else None
                    self.step(
                        "remove-filter",
                        "-",
                        port,
                        f"eBPF filter on {port}",
                        args={"ifname": port},
                        before=before,
                        note=note,
                    )
                    proj.filters[real] = FilterState(real, False)
                continue
            name, spec = specs[0]
            if spec.get("unknown"):
                continue  # a rollback leaves what nobody could tell as it is
            obj = spec["object"]
            if have is not None and have.installed is True and (have.object, have.sha256) == (obj, spec.get("sha256")):
                continue  # pinned and installed: nothing reads the object (it may be gone since)
            try:
                sha = hashlib.sha256(read_regular(obj, "eBPF object", OBJECT_MAX)).hexdigest()
            except EvlError as exc:
                self.problem(_key("port", name, "filter", "object"), exc.said())
                continue
            if spec.get("sha256") not in (None, sha):
                self.problem(_key("port", name, "filter", "sha256"), f"{obj} has sha256 {sha}")
                continue
            if have is not None and have.installed is True and have.sha256 == sha:
                continue
            fresh = have is None or have.installed is False
            text = f"eBPF filter on {name}: {obj}" if fresh else f"eBPF filter on {name}: {before} → {obj}"
            self.step(
                "install-filter",
                "+" if fresh else "~",
                name,
                text,
                args={"ifname": name, "object": obj, "sha256": sha},
                before=None if fresh else before,
                after=f"{obj} (sha256 {sha})",
            )
            proj.filters[real] = FilterState(real, True, obj, sha)

    def vlan_filter(self) -> None:
        want = self.setup.vlan_filter or frozenset()
        have = self.proj.vlans
        if want == have:
            return
        before, after = _vlan_text(have), _vlan_text(want)
        self.step(
            "set-vlans",
            "~",
            "vlan filter",
            f"vlan filter {before} → {after}",
            args={"vlans": sorted(want)},
            before=before,
            after=after,
        )
        self.proj.vlans = want

    def peers(self) -> None:
        from evl_net.outcomes import Neighbour

        proj = self.proj
        touched = any(s.op in LINK_OPS for s in self.steps)
        wanted: dict[tuple[str, str], tuple[dict[str, Any], bool]] = {}
        later: list[dict[str, Any]] = []
        for i, peer in enumerate(self.setup.peers):
            route = proj.routes.get(peer_key(peer))
            if touched or route is None:
                later.append(peer)  # where it goes is known once the interfaces are set up
                continue
            if route.error is not None:
                self.problem(_key("peer", i, "host"), route.error)
                continue
            if route.cached == "N":
                continue  # a destination needing no ARP is never cached
            assert route.dev is not None and route.nexthop is not None
            if route.dev not in proj.ports:
                self.problem(
                    _key("peer", i), f"{peer['host']} goes out through {route.dev}, which is no out-of-band port here"
                )
                continue
            key = (route.dev, route.nexthop)
            first = wanted.get(key)
            permanent = bool(peer.get("permanent")) or (first is not None and first[1])
            wanted[key] = (first[0] if first else peer, permanent)
        extra = [
            e
            for e in proj.arp
            if (e.dev, e.ip) not in wanted or (e.permanent and not wanted[(e.dev, e.ip)][1]) or later
        ]
        if extra:
            shown = ", ".join(f"{e.ip} on {e.dev}" for e in extra[:4]) + (", ..." if len(extra) > 4 else "")
            self.step(
                "flush-arp",
                "-",
                "arp",
                f"ARP entries {shown}",
                args={},
                before=[f"{e.ip} on {e.dev}{' (permanent)' if e.permanent else ''}" for e in proj.arp],
                note="the kernel flushes the whole front cache: every peer is solicited again",
            )
            proj.arp = []
        for (dev, nexthop), (peer, permanent) in wanted.items():
            cached = next((e for e in proj.arp if e.dev == dev and e.ip == nexthop), None)
            if cached is not None and (cached.permanent or not permanent):
                continue
            self.solicit(peer, permanent, dev)
            proj.arp = [e for e in proj.arp if (e.dev, e.ip) != (dev, nexthop)]
            proj.arp.append(Neighbour(dev, nexthop, "", permanent))
        for peer in later:
            self.solicit(peer, bool(peer.get("permanent")), peer.get("via"))
            if peer.get("via") and not peer.get("gateway") and _is_ipv4(peer["host"]):
                proj.arp.append(Neighbour(peer["via"], peer["host"], "", bool(peer.get("permanent"))))  # likely

    def solicit(self, peer: dict[str, Any], permanent: bool, dev: str | None) -> None:
        said = ["permanent"] * permanent + ["through gateways"] * bool(peer.get("gateway"))
        via = f" via {dev}" if dev else ""
        self.step(
            "solicit",
            "+",
            peer["host"],
            f"solicit {peer['host']}{via}",
            args={
                "host": peer["host"],
                "ifname": peer.get("via"),
                "permanent": permanent,
                "may_route": bool(peer.get("gateway")),
            },
            note=", ".join(said) or None,
        )


def _is_ipv4(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _filter_text(state: Any) -> str | None:
    if state is None or state.installed is False:
        return None
    if state.installed is None:
        return "unknown"
    if state.object is None:
        return f"sha256 {state.sha256}" if state.sha256 else "a filter"
    return state.object
