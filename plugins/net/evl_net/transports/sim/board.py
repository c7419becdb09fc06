"""A simulated board: its interfaces, routes, peers and host names.

Boards are TOML files (``--board FILE`` or ``EVL_SIM_BOARD``); the default one
reproduces the setup of the ``evl net`` manual.  A bad file gets one line
naming the file, the key and the problem.  A board is stored with its state
(:mod:`evl_net.transports.sim.records` gives the JSON form).
"""

# No "from __future__ import annotations": the records' hints are read at run time, cheaper as objects.

import os
from dataclasses import dataclass, field
from typing import Any

from evl_core.errors import EvlError

DEFAULT_BOARD = "manual"
BOARDS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "boards")
COUNTERS = (
    "rx_packets",
    "rx_bytes",
    "tx_packets",
    "tx_bytes",
    "skb_size",
    "skb_free",
    "skb_total",
    "csum_errors",
    "rx_nomem",
    "tx_nomem",
)
IFNAMSIZ = 16


@dataclass
class Iface:
    name: str
    parent: str | None = None
    vlan_id: int | None = None
    mtu: int = 1500
    up: bool = True
    oob_capable: bool = True
    loopback: bool = False
    addresses: list[str] = field(default_factory=list)
    mac: str = "00:00:00:00:00:00"
    driver: str = "sim"
    bus: str = ""
    counters: dict[str, int] = field(default_factory=dict)
    port: bool = False


@dataclass
class Route:
    dst: str
    via: str
    dev: str | None = None


@dataclass
class Peer:
    ip: str
    mac: str
    reachable: bool = True
    dev: str | None = None


@dataclass
class Board:
    name: str
    fingerprint: str
    page_size: int = 4096
    solicit_timeout: float = 5.0
    interfaces: dict[str, Iface] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)
    peers: list[Peer] = field(default_factory=list)
    hosts: dict[str, str] = field(default_factory=dict)

    def real_device(self, name: str) -> str:
        """The device under a VLAN device, where EVL keeps a port's pool."""
        iface = self.interfaces[name]
        return iface.parent if iface.parent else name


def locate(spec: str | None) -> tuple[str, str]:
    """(display name, path) of a board given by name or file path."""
    spec = spec or DEFAULT_BOARD
    if os.sep in spec or spec.endswith(".toml") or os.path.exists(spec):
        return spec, spec
    return spec, os.path.join(BOARDS_DIR, spec + ".toml")


def fingerprint(path: str) -> str:
    """Identity of a board file's content: an edited board boots afresh.

    A stat is enough (and cheaper than hashing on every invocation).
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        raise EvlError(f"cannot read board file {path}: {exc.strerror}") from None
    return f"{os.path.abspath(path)}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"


def load(spec: str | None) -> Board:
    name, path = locate(spec)
    digest = fingerprint(path)
    import tomllib

    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise EvlError(f"board file {path}: {exc}") from None
    except OSError as exc:
        raise EvlError(f"cannot read board file {path}: {exc.strerror}") from None
    return _Checker(path).board(data, name, digest)


class _Checker:
    """Turns parsed TOML into a Board, naming the file and key of any problem."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> EvlError:
        return EvlError(f"board file {self.path}: {key}: {problem}")

    def get(
        self, table: dict, key: str, where: str, kind: type | tuple, default: Any = None, required: bool = False
    ) -> Any:
        if key not in table:
            if required:
                raise self.fail(f"{where}{key}", "missing")
            return default
        value = table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise self.fail(f"{where}{key}", f"expected {kinds[0].__name__}, got a boolean")
        if not isinstance(value, kinds):
            raise self.fail(f"{where}{key}", f"expected {kinds[0].__name__}, got {type(value).__name__}")
        return value

    def unknown(self, table: dict, allowed: set[str], where: str) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail(f"{where}{key}", "unknown key")

    def ipv4(self, value: str, key: str) -> str:
        import ipaddress

        try:
            return str(ipaddress.IPv4Address(value))
        except ValueError:
            raise self.fail(key, f"not an IPv4 address: {value!r}") from None

    def mac(self, value: str, key: str) -> str:
        parts = value.split(":")
        if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts):
            raise self.fail(key, f"not a MAC address: {value!r}")
        return value.lower()

    def board(self, data: dict, name: str, digest: str) -> Board:
        import ipaddress

        self.unknown(data, {"page_size", "solicit_timeout", "interface", "route", "peer", "hosts"}, "")
        page_size = self.get(data, "page_size", "", int, 4096)
        if page_size not in (4096, 16384, 65536):
            raise self.fail("page_size", "must be 4096, 16384 or 65536")
        timeout = self.get(data, "solicit_timeout", "", (int, float), 5)
        if timeout <= 0:
            raise self.fail("solicit_timeout", "must be positive")
        board = Board(name=name, fingerprint=digest, page_size=page_size, solicit_timeout=float(timeout))
        interfaces = self.get(data, "interface", "", list, [])
        for i, table in enumerate(interfaces):
            iface = self.interface(table, f"interface[{i}].")
            if iface.name in board.interfaces:
                raise self.fail(f"interface[{i}].name", f"duplicate interface {iface.name!r}")
            board.interfaces[iface.name] = iface
        for i, iface in enumerate(board.interfaces.values()):
            if iface.parent is not None:
                parent = board.interfaces.get(iface.parent)
                if parent is None:
                    raise self.fail(f"interface[{i}].parent", f"no interface {iface.parent!r}")
                if parent.parent is not None:
                    raise self.fail(f"interface[{i}].parent", f"{iface.parent!r} is itself a VLAN device")
                iface.oob_capable = parent.oob_capable
        for i, table in enumerate(self.get(data, "route", "", list, [])):
            where = f"route[{i}]."
            self.unknown(table, {"dst", "via", "dev"}, where)
            dst = self.get(table, "dst", where, str, required=True)
            if dst != "default":
                try:
                    dst = str(ipaddress.IPv4Network(dst, strict=False))
                except ValueError:
                    raise self.fail(where + "dst", f"not an IPv4 network: {dst!r}") from None
            via = self.ipv4(self.get(table, "via", where, str, required=True), where + "via")
            dev = self.get(table, "dev", where, str)
            if dev is not None and dev not in board.interfaces:
                raise self.fail(where + "dev", f"no interface {dev!r}")
            board.routes.append(Route(dst="0.0.0.0/0" if dst == "default" else dst, via=via, dev=dev))
        for i, table in enumerate(self.get(data, "peer", "", list, [])):
            where = f"peer[{i}]."
            self.unknown(table, {"ip", "mac", "reachable", "dev"}, where)
            dev = self.get(table, "dev", where, str)
            if dev is not None and dev not in board.interfaces:
                raise self.fail(where + "dev", f"no interface {dev!r}")
            board.peers.append(
                Peer(
                    ip=self.ipv4(self.get(table, "ip", where, str, required=True), where + "ip"),
                    mac=self.mac(self.get(table, "mac", where, str, required=True), where + "mac"),
                    reachable=self.get(table, "reachable", where, bool, True),
                    dev=dev,
                )
            )
        hosts = self.get(data, "hosts", "", dict, {})
        for host, ip in hosts.items():
            if not isinstance(ip, str):
                raise self.fail(f"hosts.{host}", "expected an IPv4 address string")
            board.hosts[host] = self.ipv4(ip, f"hosts.{host}")
        return board

    def interface(self, table: Any, where: str) -> Iface:
        if not isinstance(table, dict):
            raise self.fail(where.rstrip("."), "expected a table")
        self.unknown(
            table,
            {
                "name",
                "parent",
                "vlan_id",
                "mtu",
                "up",
                "oob_capable",
                "loopback",
                "addresses",
                "mac",
                "driver",
                "bus",
                "counters",
                "port",
            },
            where,
        )
        name = self.get(table, "name", where, str, required=True)
        if not name or len(name.encode()) >= IFNAMSIZ or "/" in name or any(c.isspace() for c in name):
            raise self.fail(where + "name", f"invalid interface name {name!r}")
        parent = self.get(table, "parent", where, str)
        vlan_id = self.get(table, "vlan_id", where, int)
        if (parent is None) != (vlan_id is None):
            raise self.fail(where + ("vlan_id" if parent else "parent"), "a VLAN device needs both parent and vlan_id")
        if vlan_id is not None and not 1 <= vlan_id <= 4094:
            raise self.fail(where + "vlan_id", "must be in 1..4094")
        mtu = self.get(table, "mtu", where, int, 65536 if table.get("loopback") else 1500)
        if not 68 <= mtu <= 65536:
            raise self.fail(where + "mtu", "must be in 68..65536")
        import ipaddress

        addresses = []
        for j, cidr in enumerate(self.get(table, "addresses", where, list, [])):
            try:
                addresses.append(str(ipaddress.IPv4Interface(cidr)))
            except (ValueError, TypeError):
                raise self.fail(f"{where}addresses[{j}]", f"not an IPv4 address/prefix: {cidr!r}") from None
        counters = self.get(table, "counters", where, dict, {})
        for key, value in counters.items():
            if key not in COUNTERS:
                raise self.fail(
                    f"{where}counters.{key}", "unknown counter (expected one of " + ", ".join(COUNTERS) + ")"
                )
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
                raise self.fail(f"{where}counters.{key}", "must be a non-negative integer")
        return Iface(
            name=name,
            parent=parent,
            vlan_id=vlan_id,
            mtu=mtu,
            up=self.get(table, "up", where, bool, True),
            oob_capable=self.get(table, "oob_capable", where, bool, True),
            loopback=self.get(table, "loopback", where, bool, False),
            addresses=addresses,
            mac=self.mac(self.get(table, "mac", where, str, "00:00:00:00:00:00"), where + "mac"),
            driver=self.get(table, "driver", where, str, "sim"),
            bus=self.get(table, "bus", where, str, ""),
            counters=dict(counters),
            port=self.get(table, "port", where, bool, False),
        )
