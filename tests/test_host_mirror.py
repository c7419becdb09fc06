"""The host mirror: a simulated board taken from the live kernel (sim/host.py).

Two kinds of tests:

* offline: synthetic rtnetlink messages, encoded and decoded by pyroute2 as
  the kernel's would be, fed to ``board_from_dumps`` (VLAN devices cannot be
  created on this kernel, so this is where VLAN parsing is tested);
* live, as root: a network namespace made for the test, with veth pairs whose
  other ends sit in a second namespace acting as the LAN, addresses from the
  documentation ranges, a route via a gateway and neighbour entries.  Nothing
  is sent on any network; both namespaces are deleted even when a test fails.
  ``ip`` (iproute2) in the same namespace is the oracle.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest

from evl_core.errors import EvlError
from evl_net.transports.sim import host
from evl_net.transports.sim.board import Board, Peer, Route
from evl_net.transports.sim.records import decode, encode

pyroute2 = pytest.importorskip("pyroute2")

IFF_UP, IFF_BROADCAST, IFF_LOOPBACK, IFF_RUNNING, IFF_MULTICAST, IFF_LOWER_UP = 0x1, 0x2, 0x8, 0x40, 0x1000, 0x10000
UP_FLAGS = IFF_UP | IFF_BROADCAST | IFF_RUNNING | IFF_MULTICAST | IFF_LOWER_UP


# -- synthetic messages ---------------------------------------------------


def _roundtrip(cls: type, fields: dict, attrs: list) -> Any:
    """A message as the kernel would send it: encoded, then decoded from bytes."""
    msg = cls()
    for key, value in fields.items():
        msg[key] = value
    msg["attrs"] = attrs
    msg.encode()
    decoded = cls(msg.data)
    decoded.decode()
    return decoded


def link(
    index: int,
    name: str,
    *,
    flags: int = UP_FLAGS,
    operstate: str = "UP",
    mtu: int = 1500,
    mac: str | None = "02:00:00:00:00:00",
    kind: str | None = None,
    lower: int | None = None,
    vlan_id: int | None = None,
    netnsid: int | None = None,
) -> Any:
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    attrs: list = [("IFLA_IFNAME", name), ("IFLA_MTU", mtu), ("IFLA_OPERSTATE", operstate)]
    if mac is not None:  # a tun device has no link-layer address
        attrs.append(("IFLA_ADDRESS", mac))
    if lower is not None:
        attrs.append(("IFLA_LINK", lower))
    if netnsid is not None:
        attrs.append(("IFLA_LINK_NETNSID", netnsid))
    if kind is not None:
        info: list = [("IFLA_INFO_KIND", kind)]
        if vlan_id is not None:
            info.append(("IFLA_INFO_DATA", {"attrs": [("IFLA_VLAN_ID", vlan_id), ("IFLA_VLAN_PROTOCOL", 0x8100)]}))
        attrs.append(("IFLA_LINKINFO", {"attrs": info}))
    return _roundtrip(ifinfmsg, {"family": 0, "index": index, "flags": flags, "change": 0}, attrs)


def addr(index: int, cidr: str) -> Any:
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

    ip, plen = cidr.split("/")
    return _roundtrip(
        ifaddrmsg,
        {"family": 2, "prefixlen": int(plen), "flags": 0, "scope": 0, "index": index},
        [("IFA_ADDRESS", ip), ("IFA_LOCAL", ip)],
    )


def route(
    dst: str,
    *,
    gateway: str | None = None,
    oif: int | None = None,
    table: int = 254,
    rtype: int = 1,
    metric: int | None = None,
    multipath: list | None = None,
) -> Any:
    from pyroute2.netlink.rtnl.rtmsg import rtmsg

    net, plen = dst.split("/")
    attrs: list = [("RTA_TABLE", table)]
    if int(plen):
        attrs.append(("RTA_DST", net))
    if gateway:
        attrs.append(("RTA_GATEWAY", gateway))
    if oif is not None:
        attrs.append(("RTA_OIF", oif))
    if metric is not None:
        attrs.append(("RTA_PRIORITY", metric))
    if multipath:
        attrs.append(
            (
                "RTA_MULTIPATH",
                [{"oif": o, "hops": 0, "flags": f, "attrs": [("RTA_GATEWAY", g)]} for g, o, f in multipath],
            )
        )
    header = {
        "family": 2,
        "dst_len": int(plen),
        "src_len": 0,
        "tos": 0,
        "table": min(table, 252) if table > 255 else table,
        "proto": 3,
        "scope": 0,
        "type": rtype,
        "flags": 0,
    }
    return _roundtrip(rtmsg, header, attrs)


def neigh(index: int, ip: str, state: int, lladdr: str | None = None) -> Any:
    from pyroute2.netlink.rtnl.ndmsg import ndmsg

    attrs: list = [("NDA_DST", ip)]
    if lladdr is not None:
        attrs.append(("NDA_LLADDR", lladdr))
    return _roundtrip(ndmsg, {"family": 2, "ifindex": index, "state": state, "flags": 0, "ndm_type": 1}, attrs)


def lo() -> Any:
    return link(
        1,
        "lo",
        flags=IFF_UP | IFF_LOOPBACK | IFF_RUNNING | IFF_LOWER_UP,
        operstate="UNKNOWN",
        mtu=65536,
        mac="00:00:00:00:00:00",
    )


# -- offline: VLAN parsing --------------------------------------------------


def test_vlan_device_from_synthetic_ifinfmsg() -> None:
    links = [
        lo(),
        link(2, "eth0", mac="02:00:00:00:00:02"),
        link(5, "eth0.42", mac="02:00:00:00:00:02", kind="vlan", lower=2, vlan_id=42),
    ]
    # The message really went through bytes: the decoded form carries what the kernel would send.
    assert links[2].get(("linkinfo", "data", "vlan_id")) == 42 and links[2].get("link") == 2
    board = host.board_from_dumps(links, [addr(5, "10.10.10.11/24")], [], [], None, page_size=4096)
    vlan = board.interfaces["eth0.42"]
    assert (vlan.parent, vlan.vlan_id, vlan.driver, vlan.up) == ("eth0", 42, "vlan", True)
    assert vlan.addresses == ["10.10.10.11/24"]
    assert board.real_device("eth0.42") == "eth0"
    eth0 = board.interfaces["eth0"]
    assert (eth0.parent, eth0.vlan_id) == (None, None)


def test_stacked_vlan_names_the_real_device() -> None:
    links = [
        link(2, "eth0"),
        link(5, "eth0.42", kind="vlan", lower=2, vlan_id=42),
        link(6, "eth0.42.7", kind="vlan", lower=5, vlan_id=7),
    ]
    board = host.board_from_dumps(links, [], [], [], None, page_size=4096)
    inner = board.interfaces["eth0.42.7"]
    assert (inner.parent, inner.vlan_id) == ("eth0", 7)  # vlan_dev_real_dev(): the pool's device
    assert board.real_device("eth0.42.7") == "eth0"


def test_vlan_whose_lower_device_is_elsewhere_is_a_plain_device() -> None:
    links = [
        link(2, "eth0"),
        link(5, "eth0.42", kind="vlan", lower=2, vlan_id=42, netnsid=0),  # lower device in another netns
        link(6, "eth9.3", kind="vlan", lower=77, vlan_id=3),  # lower index unknown here
    ]
    board = host.board_from_dumps(links, [], [], [], None, page_size=4096)
    for name in ("eth0.42", "eth9.3"):
        iface = board.interfaces[name]
        assert (iface.parent, iface.vlan_id) == (None, None)
        assert board.real_device(name) == name


# -- offline: links, addresses, routes, neighbours ---------------------------


def synthetic_board() -> host.Snapshot:
    links = [
        lo(),
        link(2, "eth0", mac="02:00:00:00:00:02"),
        link(3, "eth1", mac="02:00:00:00:00:03", mtu=9000),
        link(4, "eth2", mac="02:00:00:00:00:04", flags=IFF_BROADCAST | IFF_MULTICAST, operstate="DOWN"),
        # administratively up, no carrier: operationally down
        link(6, "eth3", mac="02:00:00:00:00:06", flags=IFF_UP | IFF_BROADCAST | IFF_MULTICAST, operstate="DOWN"),
        link(7, "tun0", mac=None, flags=IFF_UP | IFF_RUNNING, operstate="UNKNOWN", kind="tun"),
    ]
    addrs = [
        addr(1, "127.0.0.1/8"),
        addr(2, "192.0.2.10/24"),
        addr(3, "198.51.100.10/25"),
        addr(4, "198.51.100.130/25"),
        addr(3, "198.51.100.11/25"),
    ]
    routes = [
        route("0.0.0.0/0", gateway="198.51.100.1", oif=3, metric=200),
        route("0.0.0.0/0", gateway="192.0.2.1", oif=2, metric=100),
        route("192.0.2.0/24", oif=2),  # on-link: not a gateway route
        route("203.0.113.0/24", gateway="192.0.2.1", oif=2),
        route("203.0.113.128/25", multipath=[("192.0.2.1", 2, 0), ("198.51.100.1", 3, 1)]),  # second hop dead
        route("192.0.2.10/32", oif=2, table=255, rtype=2),  # local table
        route("198.18.0.0/15", gateway="192.0.2.9", oif=2, table=1000),  # policy table: not the main FIB
    ]
    neighs = [
        neigh(1, "127.0.0.5", host.NUD_NOARP, "00:00:00:00:00:00"),
        neigh(2, "192.0.2.1", host.NUD_PERMANENT, "02:00:00:00:00:01"),
        neigh(2, "192.0.2.50", host.NUD_FAILED),
        neigh(2, "192.0.2.51", host.NUD_INCOMPLETE),
        neigh(2, "192.0.2.52", host.NUD_STALE, "02:00:00:00:00:52"),
        neigh(3, "198.51.100.20", host.NUD_REACHABLE, "02:00:00:00:00:20"),
        neigh(3, "198.51.100.21", host.NUD_DELAY, "02:00:00:00:00:21"),
        neigh(3, "198.51.100.22", host.NUD_PROBE, "02:00:00:00:00:22"),
        neigh(3, "198.51.100.23", host.NUD_REACHABLE),  # no lladdr: not resolved
        neigh(99, "203.0.113.99", host.NUD_PERMANENT, "02:00:00:00:00:99"),  # unknown device
    ]
    return host.snapshot_from_dumps(links, addrs, routes, neighs, "lab", page_size=4096)


def test_interfaces_from_synthetic_dumps() -> None:
    snap = synthetic_board()
    board = snap.board
    assert board.name == "host:lab" and board.page_size == 4096 and board.solicit_timeout == 5.0
    assert list(board.interfaces) == ["lo", "eth0", "eth1", "eth2", "eth3", "tun0"]
    lo_ = board.interfaces["lo"]
    assert (lo_.loopback, lo_.up, lo_.mtu, lo_.driver, lo_.addresses) == (
        True,
        True,
        65536,
        "loopback",
        ["127.0.0.1/8"],
    )
    assert board.interfaces["eth1"].mtu == 9000
    assert board.interfaces["eth1"].addresses == ["198.51.100.10/25", "198.51.100.11/25"]
    assert board.interfaces["eth0"].mac == "02:00:00:00:00:02"
    assert board.interfaces["eth0"].driver == "unknown"
    assert not board.interfaces["eth2"].up and not snap.admin_up["eth2"]
    # carrier loss: operstate down but IFF_UP set, which is what the kernel checks (ENETDOWN)
    assert board.interfaces["eth3"].up and snap.admin_up["eth3"]
    tun = board.interfaces["tun0"]
    assert (tun.up, tun.mac, tun.driver, tun.loopback) == (True, host.ZERO_MAC, "tun", False)
    assert all(i.oob_capable and i.bus == "" and i.counters == {} and not i.port for i in board.interfaces.values())
    assert snap.ifindex == {"lo": 1, "eth0": 2, "eth1": 3, "eth2": 4, "eth3": 6, "tun0": 7}


def test_routes_from_synthetic_dumps() -> None:
    board = synthetic_board().board
    assert board.routes == [
        Route("203.0.113.128/25", "192.0.2.1", "eth0"),  # the dead nexthop is left out
        Route("203.0.113.0/24", "192.0.2.1", "eth0"),
        Route("0.0.0.0/0", "192.0.2.1", "eth0"),  # lowest metric first among equal prefixes
        Route("0.0.0.0/0", "198.51.100.1", "eth1"),
    ]


def test_peers_from_synthetic_dumps() -> None:
    peers = {p.ip: p for p in synthetic_board().board.peers}
    assert peers["127.0.0.5"] == Peer("127.0.0.5", host.ZERO_MAC, True, "lo")  # NOARP on the loopback
    assert peers["192.0.2.1"] == Peer("192.0.2.1", "02:00:00:00:00:01", True, "eth0")
    assert peers["192.0.2.50"] == Peer("192.0.2.50", host.ZERO_MAC, False, "eth0")  # FAILED
    assert peers["192.0.2.51"] == Peer("192.0.2.51", host.ZERO_MAC, False, "eth0")  # INCOMPLETE
    for ip in ("192.0.2.52", "198.51.100.20", "198.51.100.21", "198.51.100.22"):  # STALE, REACHABLE, DELAY, PROBE
        assert peers[ip].reachable, ip
    assert not peers["198.51.100.23"].reachable
    assert "203.0.113.99" not in peers


def test_board_round_trips_through_the_state_file_form() -> None:
    board = synthetic_board().board
    again = decode(Board, json.loads(json.dumps(encode(board))))
    assert again == board


def test_fingerprint_ignores_neighbours_and_drivers_but_not_links() -> None:
    links = [lo(), link(2, "eth0")]
    base = host.board_from_dumps(links, [addr(2, "192.0.2.10/24")], [], [], None, page_size=4096).fingerprint
    assert base.startswith("host:")
    same = host.board_from_dumps(
        links,
        [addr(2, "192.0.2.10/24")],
        [],
        [neigh(2, "192.0.2.1", host.NUD_REACHABLE, "02:00:00:00:00:01")],
        None,
        drivers={"eth0": "e1000e"},
        page_size=4096,
    ).fingerprint
    assert same == base
    changes = [
        ([lo(), link(2, "eth0")], [addr(2, "192.0.2.11/24")], []),  # address
        ([lo(), link(2, "eth0")], [addr(2, "192.0.2.10/24")], [route("0.0.0.0/0", gateway="192.0.2.1", oif=2)]),
        ([lo(), link(2, "eth0", mtu=1400)], [addr(2, "192.0.2.10/24")], []),
        ([lo(), link(2, "eth0", flags=IFF_BROADCAST, operstate="DOWN")], [addr(2, "192.0.2.10/24")], []),
        ([lo(), link(3, "eth0")], [addr(3, "192.0.2.10/24")], []),  # deleted and created again
    ]
    for ls, ads, rts in changes:
        assert host.board_from_dumps(ls, ads, rts, [], None, page_size=4096).fingerprint != base
    assert host.board_from_dumps(links, [addr(2, "192.0.2.10/24")], [], [], "ns1", page_size=4096).fingerprint != base


def test_state_classifiers() -> None:
    resolved = (host.NUD_REACHABLE, host.NUD_PERMANENT, host.NUD_STALE, host.NUD_DELAY, host.NUD_PROBE, host.NUD_NOARP)
    for state in resolved:
        assert host.nud_reachable(state, "02:00:00:00:00:01")
        assert not host.nud_reachable(state, None)
    for state in (host.NUD_FAILED, host.NUD_INCOMPLETE, 0):
        assert not host.nud_reachable(state, "02:00:00:00:00:01")


def test_pyroute2_is_not_imported_by_the_module() -> None:
    code = "import sys; import evl_net.transports.sim.host; print('pyroute2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# -- live: a namespace with veth pairs ---------------------------------------


@dataclass
class Lab:
    ns: str
    peer: str

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return ip("-n", self.ns, *args, check=check)

    def ip_json(self, *args: str) -> list:
        return json.loads(self.ip("-j", *args).stdout)


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


@pytest.fixture
def lab():
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2's ip")
    ns, peer = f"evlmirror-{os.getpid()}", f"evlpeer-{os.getpid()}"
    created: list[str] = []
    try:
        for name in (ns, peer):
            proc = ip("netns", "add", name, check=False)
            if proc.returncode != 0:
                pytest.skip(f"cannot create a network namespace: {proc.stderr.strip()}")
            created.append(name)
        lab = Lab(ns, peer)
        probe = lab.ip("link", "add", "eth0", "type", "veth", "peer", "name", "peer0", "netns", peer, check=False)
        if probe.returncode != 0:
            pytest.skip(f"cannot create veth links: {probe.stderr.strip()}")
        for i in (1, 2):
            lab.ip("link", "add", f"eth{i}", "type", "veth", "peer", "name", f"peer{i}", "netns", peer)
        lab.ip("link", "set", "lo", "up")
        lab.ip("link", "set", "eth1", "mtu", "9000")
        ip("-n", peer, "link", "set", "peer1", "mtu", "9000")
        for i in (0, 1):
            lab.ip("link", "set", f"eth{i}", "up")
            ip("-n", peer, "link", "set", f"peer{i}", "up")
        # eth2 stays down
        lab.ip("addr", "add", "192.0.2.10/24", "dev", "eth0")
        lab.ip("addr", "add", "198.51.100.10/25", "dev", "eth1")
        lab.ip("addr", "add", "198.51.100.130/25", "dev", "eth2")
        ip("-n", peer, "addr", "add", "192.0.2.1/24", "dev", "peer0")
        ip("-n", peer, "addr", "add", "198.51.100.1/25", "dev", "peer1")
        lab.ip("route", "add", "203.0.113.0/24", "via", "192.0.2.1")
        lab.ip("route", "add", "203.0.113.128/25", "nexthop", "via", "192.0.2.1", "nexthop", "via", "198.51.100.1")
        lab.ip("neigh", "add", "192.0.2.1", "lladdr", "02:00:00:00:00:01", "dev", "eth0", "nud", "permanent")
        lab.ip("neigh", "add", "192.0.2.50", "dev", "eth0", "nud", "failed")
        lab.ip("neigh", "add", "198.51.100.20", "lladdr", "02:00:00:00:00:20", "dev", "eth1", "nud", "stale")
        yield lab
    finally:
        for name in created:
            ip("netns", "del", name, check=False)


def test_mirror_interfaces_match_ip(lab: Lab) -> None:
    board = host.mirror(lab.ns)
    assert board.name == f"host:{lab.ns}"
    assert board.page_size == os.sysconf("SC_PAGE_SIZE") and board.solicit_timeout == 5.0
    shown = lab.ip_json("addr", "show")
    assert list(board.interfaces) == [entry["ifname"] for entry in shown]
    for entry in shown:
        iface = board.interfaces[entry["ifname"]]
        up = entry["operstate"] == "UP" or (entry["operstate"] == "UNKNOWN" and "UP" in entry["flags"])
        assert iface.mtu == entry["mtu"], iface.name
        assert iface.up == up, iface.name
        assert iface.mac == entry["address"], iface.name
        assert iface.loopback == ("LOOPBACK" in entry["flags"]), iface.name
        assert iface.addresses == [
            f"{a['local']}/{a['prefixlen']}" for a in entry.get("addr_info", []) if a["family"] == "inet"
        ], iface.name
        assert iface.oob_capable and iface.parent is None and iface.vlan_id is None
    assert board.interfaces["lo"].up and board.interfaces["lo"].loopback
    assert board.interfaces["eth0"].up and board.interfaces["eth1"].up and not board.interfaces["eth2"].up
    assert board.interfaces["eth1"].mtu == 9000 and board.interfaces["eth0"].mtu == 1500
    assert board.interfaces["eth0"].addresses == ["192.0.2.10/24"]
    assert board.interfaces["eth2"].addresses == ["198.51.100.130/25"]
    assert board.interfaces["eth0"].driver == "veth" and board.interfaces["lo"].driver == "loopback"
    assert not lab.ip_json("link", "show", "eth2")[0]["flags"].count("UP")


def test_mirror_routes_and_peers(lab: Lab) -> None:
    board = host.mirror(lab.ns)
    assert board.routes == [
        Route("203.0.113.128/25", "192.0.2.1", "eth0"),
        Route("203.0.113.128/25", "198.51.100.1", "eth1"),
        Route("203.0.113.0/24", "192.0.2.1", "eth0"),
    ]
    peers = {(p.ip, p.dev): p for p in board.peers}
    assert peers[("192.0.2.1", "eth0")] == Peer("192.0.2.1", "02:00:00:00:00:01", True, "eth0")
    assert peers[("198.51.100.20", "eth1")].reachable  # STALE with a lladdr
    assert not peers[("192.0.2.50", "eth0")].reachable  # FAILED
    assert not any(p.ip == "192.0.2.99" for p in board.peers)  # the kernel does not know it
    assert set(peers) == {
        (e["dst"], e["dev"]) for e in lab.ip_json("neigh", "show", "nud", "all") if ":" not in e["dst"]
    }


ROUTE_CASES = [
    ("203.0.113.5", None),  # via the gateway
    ("203.0.113.200", None),  # multipath, via a gateway
    ("192.0.2.77", None),  # on-link
    ("198.51.100.20", None),  # on-link, eth1
    ("192.0.2.10", None),  # local: through lo
    ("127.0.0.1", None),
    ("198.18.0.1", None),  # no route
    ("192.0.2.77", "eth0"),
    ("203.0.113.5", "eth0"),
    ("203.0.113.5", "eth1"),  # no route through eth1: the kernel decides
    ("192.0.2.77", "eth2"),  # down device
]


@pytest.mark.parametrize("dst,oif", ROUTE_CASES)
def test_route_get_agrees_with_ip(lab: Lab, dst: str, oif: str | None) -> None:
    args = ["-j", "route", "get", dst] + (["oif", oif] if oif else [])
    proc = lab.ip(*args, check=False)
    if proc.returncode == 0:
        (expected,) = json.loads(proc.stdout)
        assert host.route_get(dst, oif, lab.ns) == (expected["dev"], expected.get("gateway"))
    else:
        with pytest.raises(OSError) as caught:
            host.route_get(dst, oif, lab.ns)
        assert caught.value.errno is not None and os.strerror(caught.value.errno) in proc.stderr, proc.stderr


def test_route_get_answers(lab: Lab) -> None:
    assert host.route_get("203.0.113.5", None, lab.ns) == ("eth0", "192.0.2.1")
    assert host.route_get("192.0.2.77", None, lab.ns) == ("eth0", None)
    assert host.route_get("192.0.2.10", None, lab.ns) == ("lo", None)
    with pytest.raises(OSError) as caught:
        host.route_get("198.18.0.1", None, lab.ns)
    assert caught.value.errno == errno.ENETUNREACH and not isinstance(caught.value, EvlError)
    with pytest.raises(OSError) as caught:
        host.route_get("192.0.2.77", "nosuch0", lab.ns)
    assert caught.value.errno == errno.ENODEV
    with pytest.raises(OSError) as caught:
        host.route_get("not-an-ip", None, lab.ns)
    assert caught.value.errno == errno.EINVAL


def test_neighbour_asks_the_kernel(lab: Lab) -> None:
    assert host.neighbour("192.0.2.1", "eth0", lab.ns) == ("02:00:00:00:00:01", True)
    assert host.neighbour("192.0.2.1", None, lab.ns) == ("02:00:00:00:00:01", True)
    assert host.neighbour("192.0.2.1", "eth1", lab.ns) is None
    assert host.neighbour("192.0.2.99", "eth0", lab.ns) is None
    assert host.neighbour("192.0.2.99", None, lab.ns) is None
    assert host.neighbour("192.0.2.50", "eth0", lab.ns) == (host.ZERO_MAC, False)
    assert host.neighbour("198.51.100.20", "eth1", lab.ns) == ("02:00:00:00:00:20", True)
    # live, not the mirror's copy: a new entry is seen at once
    lab.ip("neigh", "add", "192.0.2.99", "lladdr", "02:00:00:00:00:99", "dev", "eth0", "nud", "permanent")
    assert host.neighbour("192.0.2.99", "eth0", lab.ns) == ("02:00:00:00:00:99", True)
    with pytest.raises(OSError) as caught:
        host.neighbour("192.0.2.1", "nosuch0", lab.ns)
    assert caught.value.errno == errno.ENODEV


def test_fingerprint_follows_the_kernel(lab: Lab) -> None:
    first = host.fingerprint(lab.ns)
    assert host.mirror(lab.ns).fingerprint == first
    assert host.fingerprint(lab.ns) == first
    lab.ip("neigh", "add", "192.0.2.98", "lladdr", "02:00:00:00:00:98", "dev", "eth0", "nud", "permanent")
    assert host.fingerprint(lab.ns) == first  # neighbours are asked live, not fingerprinted
    lab.ip("addr", "add", "192.0.2.20/24", "dev", "eth0")
    second = host.fingerprint(lab.ns)
    assert second != first
    lab.ip("route", "add", "198.18.0.0/15", "via", "192.0.2.1")
    third = host.fingerprint(lab.ns)
    assert third != second
    lab.ip("link", "set", "eth1", "down")
    fourth = host.fingerprint(lab.ns)
    assert fourth != third
    board = host.mirror(lab.ns)
    assert board.fingerprint == fourth and not board.interfaces["eth1"].up
    # the multipath route lost its eth1 nexthop with the link
    assert Route("203.0.113.128/25", "198.51.100.1", "eth1") not in board.routes
    assert host.fingerprint(lab.peer) != fourth


def test_ifindex_tells_a_recreated_device(lab: Lab) -> None:
    before = host.snapshot(lab.ns)
    lab.ip("link", "del", "eth2")
    lab.ip("link", "add", "eth2", "type", "veth", "peer", "name", "peer2b", "netns", lab.peer)
    after = host.snapshot(lab.ns)
    assert after.ifindex["eth2"] != before.ifindex["eth2"]
    assert after.board.fingerprint != before.board.fingerprint
    assert after.admin_up == {**before.admin_up, "eth2": False}


def test_missing_namespace_is_not_created(lab: Lab) -> None:
    missing = f"evlmissing-{os.getpid()}"
    with pytest.raises(EvlError) as caught:
        host.mirror(missing)
    assert caught.value.errno == errno.ENOENT and missing in caught.value.message
    assert missing not in ip("netns", "list").stdout


def test_current_namespace_mirror(lab: Lab) -> None:
    """mirror() with no namespace, run inside the lab's: same board, drivers by ethtool."""
    code = (
        "import json; from evl_net.transports.sim import host; from evl_net.transports.sim.records import encode; "
        "print(json.dumps(encode(host.mirror())))"
    )
    proc = ip("netns", "exec", lab.ns, sys.executable, "-c", code)
    inside = decode(Board, json.loads(proc.stdout))
    named = host.mirror(lab.ns)
    assert inside.name == "host" and named.name == f"host:{lab.ns}"
    assert inside.fingerprint.split(":")[-1] == named.fingerprint.split(":")[-1]
    assert inside.interfaces == named.interfaces  # veth answers ETHTOOL_GDRVINFO with "veth"
    assert inside.routes == named.routes and inside.peers == named.peers


def test_pyroute2_version_parsing() -> None:
    assert host._version("0.9.7") == (0, 9, 7) and host._version("0.9.1rc1") == (0, 9, 1)
    assert host._version("0.7.12") < (0, 9, 1) <= host._version("0.9.1.post2")
    assert host._version("unknown") >= (0, 9, 1)
