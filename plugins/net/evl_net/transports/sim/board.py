"""A simulated board: its interfaces, routes, peers and host names.

Boards are TOML files (``--board FILE`` or ``EVL_SIM_BOARD``); the default one
reproduces the setup of the ``evl net`` manual.  A file is checked against
``boards/board.schema.json`` (which editors can use too), then for what a
schema cannot say -- a board the kernel could never have (a VLAN device
without its parent, or wider than it...).  A bad file gets one line naming
the file, the key and the first problem, with the count of the others.  A
board is known by the fingerprint of its file's content: it is parsed and
checked once per content, then comes from the board cache
(:mod:`~evl_net.transports.sim.boardcache`); the state only names it
(:mod:`~evl_net.transports.sim.records`).
"""

from __future__ import annotations

import os

from evl_core.errors import EvlError, shown
from evl_core.files import MiB, read_regular
from evl_core.record import field, record
from evl_net.kernel.names import name_problem

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:  # the schema is needed when a board boots, not on every invocation
    from typing import Any

    from evl_net.schema import Problem, Validator

DEFAULT_BOARD = "manual"
BOARDS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "boards")
#: The JSON Schema of board files.
SCHEMA_PATH = os.path.join(BOARDS_DIR, "board.schema.json")
#: The largest board file read: far above any real board, far below a memory problem.
MAX_BOARD_BYTES = 16 * MiB
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


@record
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


@record
class Route:
    dst: str
    via: str
    dev: str | None = None


@record
class Peer:
    ip: str
    mac: str
    reachable: bool = True
    dev: str | None = None


@record
class Board:
    name: str
    fingerprint: str
    page_size: int = 4096
    solicit_timeout: float = 5.0
    cpus: int = 1
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


# -- reading and identity ------------------------------------------------------

#: The bytes fingerprint() last read, kept for the load() that usually follows: (path, stamp, bytes).
_last: tuple[str, tuple[int, ...], bytes] | None = None


def read(path: str) -> bytes:
    """The bytes of board file ``path``; EvlError ``cannot read board file ...`` unless a sane regular file."""
    return read_regular(path, "board file", MAX_BOARD_BYTES)


def digest(data: bytes) -> str:
    """The fingerprint of a board file's content."""
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


def _stamp(path: str) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def stamp(path: str) -> str | None:
    """What a stat says of a board file (None: it cannot be stat'ed): while it holds, the content is unchanged.

    The store keeps it with the board's state, so that an invocation on an
    untouched board file neither reads nor hashes it; when it changes, the
    content's :func:`fingerprint` decides.
    """
    found = _stamp(path)
    return None if found is None else ":".join(map(str, (os.path.abspath(path), *found)))


def stamp_settled(path: str, now: float | None = None) -> bool:
    """Whether a stamp of ``path`` can stand for its content: not modified within the last two seconds.

    A same-size edit within one timestamp tick of the stat would keep the
    stamp (git's "racily clean" entries); such a file is hashed again next time.
    """
    import time

    try:
        mtime = os.stat(path).st_mtime
    except (OSError, ValueError):
        return False
    return (time.time() if now is None else now) - mtime > 2.0


def legacy_fingerprint_holds(fingerprint: str, path: str) -> bool:
    """Whether an older release's fingerprint (``path:size:mtime_ns:ino``) still describes ``path``."""
    if fingerprint.startswith("sha256:"):
        return False
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return False
    return fingerprint == f"{os.path.abspath(path)}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"


def fingerprint(path: str) -> str:
    """Identity of a board file's content: an edited board boots afresh; a touched, moved or reinstalled one does not.

    One bounded read and a hash: the bytes are kept, so that a load() of the
    same unchanged file that follows (a board booting) does not read it again.
    """
    global _last
    stamp = _stamp(path)
    data = read(path)
    _last = (path, stamp, data) if stamp is not None else None
    return digest(data)


def content(path: str) -> bytes:
    """The file's bytes: those fingerprint() just read if the file did not change since, else read anew."""
    global _last
    last, _last = _last, None
    if last is not None and last[0] == path and last[1] == _stamp(path):
        return last[2]
    return read(path)


def load(spec: str | None) -> Board:
    """The board ``spec`` names (a shipped board's name or a file), checked; EvlError naming file and key if bad.

    Its fingerprint is that of the bytes parsed, read once when
    fingerprint() of the same file came just before.
    """
    name, path = locate(spec)
    return parse(content(path), path, name)


# -- checking ------------------------------------------------------------------

_validator: Validator | None = None


def validator() -> Validator:
    """The board schema, read and compiled once per process."""
    global _validator
    if _validator is None:
        import json

        try:
            with open(SCHEMA_PATH, encoding="utf-8") as f:
                schema = json.load(f)
        except (OSError, ValueError) as exc:
            raise EvlError(f"cannot read the board schema {SCHEMA_PATH} (reinstall evl-net): {exc}") from None
        from evl_net.schema import TOML_NAMES, Validator

        _validator = Validator(schema, TOML_NAMES, integral_floats=False)
    return _validator


def parse(data: bytes, path: str, name: str | None = None) -> Board:
    """The board in ``data``, the content of file ``path``: EvlError ``board file PATH: KEY: PROBLEM`` if bad."""
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")  # a byte-order mark some editors write
    except UnicodeDecodeError as exc:
        start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, start) + 1
        column = len(data[start : exc.start].decode("utf-8")) + 1  # in characters, as TOML errors count
        raise EvlError(
            f"board file {path}: line {line}, column {column}: not UTF-8 text "
            f"(byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None
    from evl_core.files import TomlError, parse_toml

    try:
        document = parse_toml(text)
    except TomlError as exc:
        where = f"line {exc.line}: " if exc.line else ""
        raise EvlError(f"board file {path}: {where}{exc.message}") from None
    found = problems(document)
    if found:
        more = f" (and {len(found) - 1} more problem{'s' if len(found) > 2 else ''})" if len(found) > 1 else ""
        raise EvlError(f"board file {path}: {describe(found[0])}{more}")
    return _board(document, name if name is not None else path, digest(data))


def problems(document: dict[str, Any]) -> list[Problem]:
    """Everything wrong with a decoded board file, in document order (empty: it is a board).

    The schema first; the consistency of a document the schema accepts next
    (a document of the wrong shape would only give confusing sequels).
    """
    from evl_net.schema import position

    found = validator().problems(document)
    if not found:
        found = sorted(_consistency(document), key=lambda p: position(document, p.path))
    return found


def describe(problem: Problem) -> str:
    """``key.path: what is wrong`` for a message, with the file's words escaped and shortened."""
    message = problem.message
    if problem.keyword == "additionalProperties" and problem.path[-2:-1] == ("counters",):
        message = "unknown counter (expected one of " + ", ".join(COUNTERS) + ")"
    elif problem.keyword == "pattern" and isinstance(problem.value, str):
        message += ": " + shown(repr(problem.value))
    return f"{shown(problem.key)}: {message}" if problem.path else message


def _quote(value: str) -> str:
    return shown(repr(value))


def _consistency(doc: dict[str, Any]) -> list[Problem]:
    """What the schema cannot say: a board the kernel could not have, references to nothing."""
    import ipaddress

    from evl_net.schema import Problem

    found: list[Problem] = []

    def bad(path: tuple[str | int, ...], message: str) -> None:
        found.append(Problem(path, message, "consistency"))

    tables: list[dict[str, Any]] = doc.get("interface", [])
    index: dict[str, int] = {}
    for i, t in enumerate(tables):
        name = t["name"]
        problem = name_problem(name)  # the kernel's rules, as evl net checks -i
        if problem is not None:
            bad(("interface", i, "name"), f"not an interface name: {_quote(name)} ({problem})")
        if name in index:
            bad(("interface", i, "name"), f"duplicate interface {_quote(name)} (also interface[{index[name]}])")
        else:
            index[name] = i
        if ("parent" in t) != ("vlan_id" in t):
            missing = "vlan_id" if "parent" in t else "parent"
            bad(("interface", i, missing), "missing: a VLAN device needs both parent and vlan_id")
        for j, cidr in enumerate(t.get("addresses", [])):
            try:
                ipaddress.IPv4Interface(cidr)
            except ValueError:
                bad(("interface", i, "addresses", j), f"not an IPv4 address/prefix: {_quote(cidr)}")
        counters = t.get("counters", {})
        if "skb_free" in counters and "skb_total" in counters and counters["skb_free"] > counters["skb_total"]:
            bad(("interface", i, "counters", "skb_free"), f"must be at most skb_total ({counters['skb_total']})")
    vlans: dict[tuple[str, int], int] = {}
    for i, t in enumerate(tables):
        if "parent" not in t:
            continue
        where = ("interface", i)
        parent_name = t["parent"]
        if t.get("loopback"):
            bad((*where, "loopback"), "a VLAN device cannot be the loopback")
        at = index.get(parent_name)
        if at is None:
            bad((*where, "parent"), f"no interface {_quote(parent_name)}")
            continue
        parent = tables[at]
        if "parent" in parent:
            bad((*where, "parent"), f"{_quote(parent_name)} is itself a VLAN device")
            continue
        if parent.get("loopback"):
            bad((*where, "parent"), f"{_quote(parent_name)} is the loopback, which cannot carry VLANs")
            continue
        if "vlan_id" in t:
            pair = (parent_name, int(t["vlan_id"]))
            if pair in vlans:
                other = tables[vlans[pair]]["name"]
                bad(
                    (*where, "vlan_id"),
                    f"{_quote(t['name'])} and {_quote(other)} (interface[{vlans[pair]}]) "
                    f"are both VLAN {pair[1]} on {_quote(parent_name)}",
                )
            else:
                vlans[pair] = i
        parent_mtu = _mtu(parent)
        if "mtu" in t and t["mtu"] > parent_mtu:
            bad((*where, "mtu"), f"must be at most {parent_mtu}, the MTU of its parent {_quote(parent_name)}")
    for kind in ("route", "peer"):
        for i, t in enumerate(doc.get(kind, [])):
            if "dev" in t and t["dev"] not in index:
                bad((kind, i, "dev"), f"no interface {_quote(t['dev'])}")
    for i, t in enumerate(doc.get("route", [])):
        if t["dst"] != "default":
            try:
                ipaddress.IPv4Network(t["dst"], strict=False)
            except ValueError:
                bad(("route", i, "dst"), f"not an IPv4 network: {_quote(t['dst'])}")
    return found


def _mtu(table: dict[str, Any]) -> int:
    """The MTU of a real device or the loopback, given or by default."""
    return int(table.get("mtu", 65536 if table.get("loopback") else 1500))


def _board(doc: dict[str, Any], name: str, fingerprint: str) -> Board:
    """The Board of a checked document."""
    import ipaddress

    board = Board(
        name=name,
        fingerprint=fingerprint,
        page_size=int(doc.get("page_size", 4096)),
        solicit_timeout=float(doc.get("solicit_timeout", 5)),
        cpus=int(doc.get("cpus", 1)),
    )
    tables = {t["name"]: t for t in doc.get("interface", [])}
    for t in doc.get("interface", []):
        parent = tables.get(t["parent"]) if "parent" in t else None
        if parent is not None:
            mtu = int(t.get("mtu", min(1500, _mtu(parent))))  # a VLAN device fits in its parent
        else:
            mtu = _mtu(t)
        iface = Iface(
            name=t["name"],
            parent=t.get("parent"),
            vlan_id=int(t["vlan_id"]) if "vlan_id" in t else None,
            mtu=mtu,
            up=t.get("up", True),
            oob_capable=parent.get("oob_capable", True) if parent is not None else t.get("oob_capable", True),
            loopback=t.get("loopback", False),
            addresses=[str(ipaddress.IPv4Interface(a)) for a in t.get("addresses", [])],
            mac=t.get("mac", "00:00:00:00:00:00").lower(),
            driver=t.get("driver", "sim"),
            bus=t.get("bus", ""),
            counters={k: int(v) for k, v in t.get("counters", {}).items()},
            port=t.get("port", False),
        )
        board.interfaces[iface.name] = iface
    for t in doc.get("route", []):
        dst = "0.0.0.0/0" if t["dst"] == "default" else str(ipaddress.IPv4Network(t["dst"], strict=False))
        board.routes.append(Route(dst=dst, via=str(ipaddress.IPv4Address(t["via"])), dev=t.get("dev")))
    for t in doc.get("peer", []):
        board.peers.append(
            Peer(
                ip=str(ipaddress.IPv4Address(t["ip"])),
                mac=t["mac"].lower(),
                reachable=t.get("reachable", True),
                dev=t.get("dev"),
            )
        )
    for host, ip in doc.get("hosts", {}).items():
        board.hosts[host] = str(ipaddress.IPv4Address(ip))
    return board
