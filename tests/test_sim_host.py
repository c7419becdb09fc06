"""`evl net` on a board mirrored from a live network namespace (EVL_SIM_BOARD=host:NETNS)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"), reason="needs root and iproute2")


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def cached(evl):
    """The ARP front cache: (dev, ip, mac, state) of each entry, from ``evl sim --json show``."""
    run = evl("sim", "--json", "show")
    assert run.code == 0, run.err
    return [(e["dev"], e["ip"], e["mac"], e["state"]) for e in json.loads(run.out)["arp"]]


@pytest.fixture
def lab():
    """A namespace with eth0 (192.0.2.11/24, up), eth1 (down), a gateway route and a known neighbour."""
    ns, peer = f"evlsim-{os.getpid()}", f"evlsimpeer-{os.getpid()}"
    ip("netns", "add", ns)
    try:
        ip("netns", "add", peer)
        ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "p0", "netns", peer)
        ip("-n", ns, "link", "add", "eth1", "type", "veth", "peer", "name", "p1", "netns", peer)
        ip("-n", ns, "addr", "add", "192.0.2.11/24", "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "up")
        ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", peer, "link", "set", "p0", "up")
        ip("-n", ns, "route", "add", "203.0.113.0/24", "via", "192.0.2.1")
        ip("-n", ns, "neigh", "add", "192.0.2.1", "lladdr", "02:00:00:00:00:01", "dev", "eth0", "nud", "permanent")
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "netns", "del", peer], capture_output=True)


@pytest.fixture
def host_env(sim_env, lab):
    sim_env["EVL_SIM_BOARD"] = f"host:{lab}"
    return sim_env


def test_enable_query_and_solicit_on_the_mirror(evl, host_env, lab):
    assert evl("net", "-ei", "eth0").code == 0
    assert evl("net", "-Qs", "-i", "eth0").out == "4096\n"
    run = evl("net", "-ei", "eth1")
    assert (run.code, run.err) == (1, "evl-net: cannot enable out-of-band port on eth1: Network is down\n")
    (res,) = [json.loads(x) for x in evl("net", "--json", "-S", "192.0.2.1").out.splitlines()]
    assert (res["ip"], res["permanent"], res["changed"]) == ("192.0.2.1", True, True)
    assert cached(evl) == [("eth0", "192.0.2.1", "02:00:00:00:00:01", "P")]
    run = evl("net", "-s", "203.0.113.5")
    assert run.code == 1 and run.err.endswith("Network is unreachable\n")
    (res,) = [json.loads(x) for x in evl("net", "--json", "-gs", "203.0.113.5").out.splitlines()]
    assert (res["ip"], res["changed"]) == ("203.0.113.5", False)  # via 192.0.2.1 on eth0, cached already
    assert cached(evl) == [("eth0", "192.0.2.1", "02:00:00:00:00:01", "P")]
    table = evl("net", "-Qo", "--all-interfaces").out
    assert {line.split()[0] for line in table.splitlines()[2:]} == {"lo", "eth0", "eth1"}


def test_a_device_going_down_dismantles_its_port(evl, host_env, lab):
    assert evl("net", "-ei", "eth0", "-N42").code == 0
    ip("-n", lab, "link", "set", "eth0", "down")
    (stat,) = [json.loads(x) for x in evl("net", "--json", "-Q", "-i", "eth0").out.splitlines()]
    assert stat["oob_port"] is False and stat["skb_total"] == 0
    assert evl("net", "-n").out == "42\n"  # the global VLAN map is not the device's
    ip("-n", lab, "link", "set", "eth0", "up")
    (stat,) = [json.loads(x) for x in evl("net", "--json", "-Q", "-i", "eth0").out.splitlines()]
    assert stat["oob_port"] is False  # not re-enabled when the device comes back


def test_a_missing_namespace_is_a_clear_error(evl, sim_env):
    sim_env["EVL_SIM_BOARD"] = "host:evl-no-such-netns"
    run = evl("net", "-n")
    assert run.code == 1 and run.err.startswith("evl-net: ") and "evl-no-such-netns" in run.err
    assert not os.path.exists("/var/run/netns/evl-no-such-netns")
