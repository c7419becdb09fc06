"""The ioctl transport's link requests and ledger, at the syscall boundary.

Each request runs in a fresh process inside a network namespace made for the
test (veth pairs whose far ends sit, down, in a second namespace: nothing can
ever be sent), with the kernel double (``tests/kdouble``) preloaded for the
EVL requests.  Links are checked against ``ip -j`` in that namespace, the
errno of a refused VLAN against what ``ip link add`` itself gets from the
kernel (strace), the ledger through the transport's own answers and the
double's records.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import bpf_build
from conftest import script
from kdouble.server import KernelDouble, build

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"), reason="needs root and iproute2")

# The manual board's interface names, so that the double's board knows them too.
IFACES = {
    "eth0": [],
    "eth0.42": ["10.10.10.11/24"],
    "eth1": ["192.0.2.11/24"],
    "eth1.42": ["10.10.20.11/24"],
    "eth2": ["198.51.100.11/24"],
}

CALL = """
import json, os, sys
from evl_net.model import to_json
from evl_net.transports import ioctl

method, args = json.loads(sys.argv[1])
if method == "install_rx_filter":
    with open(args[1], "rb") as f:
        args[1] = f.read()
transport = ioctl.factory(None, os.environ)
try:
    print(json.dumps({"ok": to_json(getattr(transport, method)(*args))}))
except OSError as exc:
    print(json.dumps({"errno": exc.errno, "detail": getattr(exc, "detail", None)}))
"""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


@pytest.fixture
def netns():
    name, peers = f"evllinks-{os.getpid()}", f"evllinks-{os.getpid()}-peers"
    try:
        ip("netns", "add", name)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot create a network namespace: {exc.stderr.strip()}")
    try:
        ip("netns", "add", peers)
        for ns in (name, peers):  # no IPv6: not a packet of any kind
            ip("netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", check=False)
            ip("netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", check=False)
        ip("-n", name, "link", "set", "lo", "up")
        for i, (ifname, addresses) in enumerate(IFACES.items()):
            ip("-n", name, "link", "add", ifname, "type", "veth", "peer", "name", f"peer{i}", "netns", peers)
            for cidr in addresses:
                ip("-n", name, "addr", "add", cidr, "dev", ifname)
            ip("-n", name, "link", "set", ifname, "up")
        yield name
    finally:
        ip("netns", "del", name, check=False)
        ip("netns", "del", peers, check=False)


@pytest.fixture(scope="module")
def kdouble_so(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the kernel double")
    return build(tmp_path_factory.mktemp("kdouble"))


@pytest.fixture
def double(tmp_path, kdouble_so):
    with KernelDouble(tmp_path / "kernel", kdouble_so) as d:
        yield d
    assert d.violations == [], "\n".join(d.violations)


@pytest.fixture
def env(sim_env, double):
    env = double.env(sim_env)
    env.pop("LD_PRELOAD")  # for the request's process only, not for ip(8)
    return env


@pytest.fixture
def call(netns, double, env):
    """``call(method, *args)``: the ioctl transport's answer (JSON), or ``{"errno": ...}``."""

    def run(method: str, *args: Any) -> dict[str, Any]:
        cmd = ["ip", "netns", "exec", netns, "env", f"LD_PRELOAD={double.so_path}", sys.executable, "-c", CALL]
        proc = subprocess.run(
            [*cmd, json.dumps([method, list(args)])], env=env, capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr
        assert double.violations == [], "\n".join(double.violations)
        return json.loads(proc.stdout)

    return run


@pytest.fixture
def net(netns, double, env):
    """Run ``evl net --transport=ioctl ARGS`` in the namespace; ``importtime=True`` also gives what it imported."""

    def run(*args: str, importtime: bool = False, cwd: str | None = None) -> tuple[int, str, str]:
        python = [sys.executable, *(["-X", "importtime"] if importtime else [])]
        cmd = ["ip", "netns", "exec", netns, "env", f"LD_PRELOAD={double.so_path}", *python, script("evl")]
        proc = subprocess.run(
            [*cmd, "net", "--transport=ioctl", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
        )
        assert double.violations == [], "\n".join(double.violations)
        return proc.returncode, proc.stdout, proc.stderr

    return run


def ok(answer: dict[str, Any]) -> Any:
    assert "ok" in answer, answer
    return answer["ok"]


def ip_links(ns: str) -> dict[str, dict[str, Any]]:
    """What ``ip -d -j addr`` says of each link: the oracle for links()."""
    out = {}
    for link in json.loads(ip("-d", "-j", "-n", ns, "addr", "show").stdout):
        info = link.get("linkinfo", {})
        vlan = info.get("info_kind") == "vlan"
        out[link["ifname"]] = {
            "parent": link.get("link") if vlan else None,
            "vlan_id": info.get("info_data", {}).get("id") if vlan else None,
            "mtu": link["mtu"],
            "up": "UP" in link["flags"],
            "loopback": "LOOPBACK" in link["flags"],
            "addresses": sorted(
                f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []) if a["family"] == "inet"
            ),
        }
    return out


def links_of(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {link.pop("name"): link for link in ok(answer)}


# -- links ---------------------------------------------------------------------------------------------


def test_links_match_ip(call, netns, double):
    with double.sim() as sim:
        sim.enable_port("eth1", 0, 0)
    got = links_of(call("links"))
    flags = {name: (link.pop("oob_capable"), link.pop("oob_port")) for name, link in got.items()}
    assert got == ip_links(netns)
    # GETSTAT of each, as the double's board answers it (a device it lacks fails DEVOPEN: neither).
    with double.sim() as sim:
        board = sim.board.interfaces
        expected = {n: (board[n].oob_capable, n == "eth1") if n in board else (False, False) for n in got}
    assert flags == expected and flags["eth1"] == (True, True)


def test_address_mtu_and_state_changes_show_in_ip(call, netns):
    assert ok(call("add_address", "eth2", "10.1.2.3/16")) == {"changed": True}
    assert call("add_address", "eth2", "10.1.2.3/16")["errno"] == errno.EEXIST
    assert ip_links(netns)["eth2"]["addresses"] == ["10.1.2.3/16", "198.51.100.11/24"]
    assert ok(call("remove_address", "eth2", "198.51.100.11/24")) == {"changed": True}
    assert call("remove_address", "eth2", "198.51.100.11/24")["errno"] == errno.EADDRNOTAVAIL
    assert call("add_address", "eth2", "10.1.2.3") == {
        "errno": errno.EINVAL,
        "detail": "not an IPv4 address/prefix: '10.1.2.3'",
    }
    assert ok(call("set_mtu", "eth2", 1400)) == {"changed": True}
    assert ok(call("set_mtu", "eth2", 1400)) == {"changed": False}
    assert call("set_mtu", "eth2", 10)["errno"] == errno.EINVAL  # below the minimum, the kernel says
    assert ok(call("set_link_up", "eth2", 0)) == {"changed": True}
    assert ok(call("set_link_up", "eth2", 0)) == {"changed": False}
    assert call("set_mtu", "nosuch0", 1400)["errno"] == errno.ENODEV
    assert ip_links(netns)["eth2"] | {"addresses": None} == {
        "parent": None,
        "vlan_id": None,
        "mtu": 1400,
        "up": False,
        "loopback": False,
        "addresses": None,
    }
    assert ip_links(netns)["eth2"]["addresses"] == ["10.1.2.3/16"]
    assert ok(call("set_link_up", "eth2", 1)) == {"changed": True}
    assert ip_links(netns)["eth2"]["up"] is True
    assert links_of(call("links"))["eth2"]["mtu"] == 1400


def errno_of_ip(*argv: str) -> int:
    """The errno the kernel answered ``ip ARGV``'s last netlink request with, as strace decodes it."""
    if shutil.which("strace") is None:
        pytest.skip("strace is needed to see the errno ip(8) gets")
    proc = subprocess.run(
        ["strace", "-e", "trace=recvmsg", "-e", "signal=none", "ip", *argv], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode != 0
    names = re.findall(r"error=-(E[A-Z0-9]+)", proc.stderr)
    assert names, proc.stderr
    return int(getattr(errno, names[-1]))


def test_create_vlan_carries_the_kernels_errno(call, netns):
    expected = errno_of_ip("-n", netns, "link", "add", "link", "eth2", "name", "eth2.7", "type", "vlan", "id", "7")
    answer = call("create_vlan", "eth2.7", "eth2", 7)
    if "ok" in answer:  # a kernel with 802.1Q: the VLAN is there
        assert ip_links(netns)["eth2.7"] | {"mtu": 0} == {
            "parent": "eth2",
            "vlan_id": 7,
            "mtu": 0,
            "up": False,
            "loopback": False,
            "addresses": [],
        }
        return
    assert answer["errno"] == expected
    assert "eth2.7" not in ip_links(netns)
    assert call("create_vlan", "eth9.7", "eth9", 7)["errno"] == errno.ENODEV  # no parent


def test_delete_link_refuses_what_is_no_vlan(call, netns):
    assert call("delete_link", "eth2") == {
        "errno": errno.EOPNOTSUPP,
        "detail": "eth2 is no VLAN device: only VLAN devices are deleted",
    }
    assert "eth2" in ip_links(netns)
    assert call("delete_link", "nosuch0")["errno"] == errno.ENODEV


def test_core_abi(call, double):
    double.abi_range = (44, 46)
    assert ok(call("core_abi")) == {"base": 44, "current": 46}


# -- the ledger: filters ---------------------------------------------------------------------------------

needs_clang = pytest.mark.skipif(
    not bpf_build.have_clang(), reason="clang with the BPF target and libbpf headers is needed to build eBPF objects"
)


def _ledger(double: KernelDouble) -> Path:
    return double.rundir / "net-ledger.json"


@needs_clang
def test_filter_state_follows_what_was_installed(call, double, tmp_path):
    obj = bpf_build.build("netrx", tmp_path)
    assert call("filter_state", "eth1") == {"errno": errno.ENODEV, "detail": "eth1 is not an out-of-band port"}
    ok(call("enable_port", "eth1", 0, 0))
    assert ok(call("filter_state", "eth1")) == _state("eth1", False)  # first port: no filter
    installed = call("install_rx_filter", "eth1", str(obj), "netrx.o")
    if "errno" in installed:
        pytest.skip(f"this kernel or libbpf will not load netrx.o: {installed}")
    sha = hashlib.sha256(obj.read_bytes()).hexdigest()
    state = ok(call("filter_state", "eth1"))
    assert state == _state("eth1", True, "netrx.o", sha, ok(installed)["program"])
    ok(call("remove_rx_filter", "eth1"))
    assert ok(call("filter_state", "eth1")) == _state("eth1", False)
    ok(call("install_rx_filter", "eth1", str(obj), "netrx.o"))
    ok(call("disable_port", "eth1"))
    ok(call("enable_port", "eth1", 0, 0))
    assert ok(call("filter_state", "eth1")) == _state("eth1", False)  # the last port took the filter along
    mode = _ledger(double).stat().st_mode & 0o777
    assert mode == 0o644 and not list(double.rundir.glob(".*.tmp"))


def _state(real, installed, obj=None, sha=None, program=None):
    return {"real": real, "installed": installed, "object": obj, "sha256": sha, "program": program}


def test_a_port_enabled_behind_our_back_is_unknown(call, double):
    with double.sim() as sim:  # as the C tool would: no ledger entry
        sim.enable_port("eth1", 0, 0)
    assert ok(call("filter_state", "eth1")) == _state("eth1", None)


def test_a_corrupt_ledger_is_no_knowledge(call, double):
    ok(call("enable_port", "eth1", 0, 0))
    assert ok(call("filter_state", "eth1"))["installed"] is False
    for garbage in (b"{not json", b'{"netns": 3}', b"[]", b'{"netns": {"x": []}}', b"\xff" * 100):
        _ledger(double).write_bytes(garbage)
        assert ok(call("filter_state", "eth1")) == _state("eth1", None)
        assert ok(call("arp_cache")) == []
    _ledger(double).write_bytes(b"{not json")
    assert ok(call("peer_route", "192.0.2.1", None, 0))["cached"] == "?"  # cannot tell
    ok(call("disable_port", "eth1"))  # a corrupt ledger is replaced, not a failure
    ok(call("enable_port", "eth1", 0, 0))
    assert ok(call("filter_state", "eth1"))["installed"] is False


def test_a_device_recreated_voids_its_entry(call, double, netns):
    ok(call("enable_port", "eth2", 0, 0))
    assert ok(call("filter_state", "eth2"))["installed"] is False
    ip("-n", netns, "link", "del", "eth2")
    ip("-n", netns, "link", "add", "eth2", "type", "veth", "peer", "name", "again0")
    assert ok(call("filter_state", "eth2")) == _state("eth2", None)  # new ifindex: the entry no longer holds


def test_an_unwritable_rundir_does_not_fail_the_request(call, double, env, net):
    double.rundir.parent.mkdir(parents=True, exist_ok=True)
    double.rundir.write_text("a file where the directory should be")
    ok(call("enable_port", "eth1", 0, 0))
    assert ok(call("filter_state", "eth1")) == _state("eth1", None)
    code, _, err = net("-S", "192.0.2.1", "-i", "eth1")
    assert (code, err) == (0, "")


# -- the ledger: solicitations -----------------------------------------------------------------------------


def test_solicitations_show_in_the_cache_until_flushed(call, double, net):
    ok(call("enable_port", "eth0.42", 0, 0))
    ok(call("enable_port", "eth1", 0, 0))
    assert ok(call("peer_route", "10.10.10.10", None, 0)) == {
        "ip": "10.10.10.10",
        "dev": "eth0.42",
        "nexthop": "10.10.10.10",
        "cached": "",
    }
    ok(call("solicit", "10.10.10.10", None, 1))  # permanent
    ok(call("solicit", "192.0.2.1", "eth1", 0))
    with double.sim() as sim:  # the double's cache agrees
        assert sorted((e["dev"], e["ip"], e["state"]) for e in sim.snapshot()["arp"]) == [
            ("eth0.42", "10.10.10.10", "P"),
            ("eth1", "192.0.2.1", "R"),
        ]
    assert sorted(map(tuple_of, ok(call("arp_cache")))) == [
        ("eth0.42", "10.10.10.10", "00:00:00:00:00:00", True),  # no in-band neighbour: the zero MAC
        ("eth1", "192.0.2.1", "00:00:00:00:00:00", False),
    ]
    assert ok(call("peer_route", "10.10.10.10", None, 0))["cached"] == "P"
    assert ok(call("peer_route", "192.0.2.1", None, 0))["cached"] == "R"
    assert ok(call("peer_route", "192.0.2.11", None, 0))["cached"] == "N"  # local: through lo, NOARP
    assert ok(call("peer_route", "broadcast", "eth1", 0)) == {
        "ip": "255.255.255.255",
        "dev": "eth1",
        "nexthop": "255.255.255.255",
        "cached": "N",
    }
    assert call("peer_route", "192.0.2.1", None, 4)["errno"] == errno.EINVAL  # flags beyond PERMANENT|MAYROUTE
    assert call("peer_route", "203.0.113.9", None, 0)["errno"] == errno.ENETUNREACH  # no route

    assert ok(call("flush_arp")) == {"changed": True}
    assert [r["data"] for r in double.records if r["op"] == "write" and r["kind"] == "flush_arp"] == [b"1\n"]
    with double.sim() as sim:
        assert sim.snapshot()["arp"] == []
    assert ok(call("arp_cache")) == []
    assert ok(call("peer_route", "10.10.10.10", None, 0))["cached"] == ""


def tuple_of(n: dict[str, Any]) -> tuple[Any, ...]:
    return (n["dev"], n["ip"], n["mac"], n["permanent"])


def test_a_port_going_voids_its_solicitations(call, double, netns):
    ok(call("enable_port", "eth1", 0, 0))
    ok(call("enable_port", "eth2", 0, 0))
    ok(call("solicit", "192.0.2.1", None, 1))
    ok(call("solicit", "198.51.100.10", None, 1))
    ok(call("disable_port", "eth1"))
    ok(call("enable_port", "eth1", 0, 0))
    assert [n["dev"] for n in ok(call("arp_cache"))] == ["eth2"]
    ok(call("set_link_up", "eth2", 0))  # going down dismantles the port, in the kernel as in the ledger
    assert ok(call("arp_cache")) == []


def test_the_mac_comes_from_the_in_band_neighbour(call, netns):
    ok(call("enable_port", "eth1", 0, 0))
    ip("-n", netns, "neigh", "add", "192.0.2.1", "lladdr", "02:00:00:00:00:01", "dev", "eth1", "nud", "permanent")
    ok(call("solicit", "192.0.2.1", "eth1", 1))
    assert ok(call("arp_cache")) == [{"dev": "eth1", "ip": "192.0.2.1", "mac": "02:00:00:00:00:01", "permanent": True}]


# -- what the hot paths import ---------------------------------------------------------------------------


@needs_clang
def test_port_filter_and_solicit_commands_never_import_pyroute2(net, double, tmp_path):
    obj = bpf_build.build("netrx", tmp_path)
    for args in (
        ("-ei", "eth1"),
        ("-Q", "-i", "eth1"),
        ("-s", "192.0.2.1", "-i", "eth1"),
        ("-S", "192.0.2.1"),
        (f"-F{obj}", "-i", "eth1"),
        ("-F", "-i", "eth1"),
        ("-di", "eth1"),
    ):
        code, _, err = net(*args, importtime=True)
        modules = [line.rsplit("|", 1)[-1].strip() for line in err.splitlines() if line.startswith("import time:")]
        assert modules, err
        assert not [m for m in modules if m.startswith("pyroute2")], args
        assert code == 0 or args[0].startswith("-F/"), (args, err)
    assert _ledger(double).exists()  # and the ledger was written all the same
