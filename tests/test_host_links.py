"""Link requests on a host board (``host:NETNS``): rtnetlink on the live namespace, mirrored back.

The simulator runs them on the kernel through :mod:`evl_net.transports.rtnetlink`
and re-reads its mirror; ``ip -j`` in the namespace is the oracle for both.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from typing import Any

import pytest

from evl_net.transports.sim import SimTransport
from test_ioctl_links import errno_of_ip

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"), reason="needs root and iproute2")


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30).stdout


@pytest.fixture
def lab():
    """eth0 (192.0.2.11/24, up) and eth1 (down), veths whose far ends sit down in a second namespace."""
    ns, peer = f"evlhl-{os.getpid()}", f"evlhlpeer-{os.getpid()}"
    ip("netns", "add", ns)
    try:
        ip("netns", "add", peer)
        ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "p0", "netns", peer)
        ip("-n", ns, "link", "add", "eth1", "type", "veth", "peer", "name", "p1", "netns", peer)
        ip("-n", ns, "addr", "add", "192.0.2.11/24", "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "up")
        ip("-n", ns, "link", "set", "lo", "up")
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "netns", "del", peer], capture_output=True)


@pytest.fixture
def sim(lab, tmp_path):
    def open_() -> SimTransport:
        return SimTransport(board=f"host:{lab}", state_path=str(tmp_path / "state.json"))

    return open_


def ip_view(ns: str) -> dict[str, tuple[int, bool, list[str]]]:
    """(MTU, admin up, IPv4 addresses) of each link, as ``ip -j addr`` says."""
    return {
        link["ifname"]: (
            link["mtu"],
            "UP" in link["flags"],
            sorted(f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []) if a["family"] == "inet"),
        )
        for link in json.loads(ip("-j", "-n", ns, "addr", "show"))
    }


def sim_view(t: SimTransport) -> dict[str, tuple[int, bool, list[str]]]:
    return {link.name: (link.mtu, link.up, link.addresses) for link in t.links()}


def changed(outcome: Any) -> bool:
    return bool(outcome.changed)


def test_link_changes_reach_the_kernel_and_the_mirror(sim, lab):
    with sim() as t:
        assert changed(t.add_address("eth1", "10.20.30.40/24"))
        assert changed(t.set_mtu("eth1", 1400))
        assert changed(t.set_link_up("eth1", 1))
        assert not changed(t.set_link_up("eth1", 1))
        assert not changed(t.set_mtu("eth1", 1400))
        assert sim_view(t) == ip_view(lab)
        assert ip_view(lab)["eth1"] == (1400, True, ["10.20.30.40/24"])
    with sim() as t:  # stored, and still what the kernel says
        assert sim_view(t) == ip_view(lab)
        with pytest.raises(OSError) as exc:
            t.add_address("eth1", "10.20.30.40/24")
        assert exc.value.errno == errno.EEXIST  # the kernel's
        assert changed(t.remove_address("eth0", "192.0.2.11/24"))
        with pytest.raises(OSError) as exc:
            t.remove_address("eth0", "192.0.2.11/24")
        assert exc.value.errno == errno.EADDRNOTAVAIL
        assert sim_view(t) == ip_view(lab)
        assert ip_view(lab)["eth0"][2] == []


def test_bringing_a_device_down_dismantles_its_port(sim, lab):
    with sim() as t:
        t.enable_port("eth0", 0, 0)
        assert t.get_stat("eth0").oob_port
        assert changed(t.set_link_up("eth0", 0))
        assert not t.get_stat("eth0").oob_port
        assert ip_view(lab)["eth0"][1] is False
    with sim() as t:
        assert not t.get_stat("eth0").oob_port
        assert [link.up for link in t.links() if link.name == "eth0"] == [False]


def test_vlans_and_deletion_on_the_host(sim, lab):
    with sim() as t:
        with pytest.raises(OSError) as exc:
            t.delete_link("eth1")
        assert exc.value.errno == errno.EOPNOTSUPP  # only VLAN devices are deleted
        try:
            t.create_vlan("eth1.5", "eth1", 5)
        except OSError as err:  # no 802.1Q in this kernel: the errno ip(8) gets too, and nothing made
            assert err.errno == errno_of_ip(
                "-n", lab, "link", "add", "link", "eth1", "name", "eth1.5", "type", "vlan", "id", "5"
            )
            assert "eth1.5" not in ip_view(lab)
            return
        (vlan,) = [link for link in t.links() if link.name == "eth1.5"]
        assert (vlan.parent, vlan.vlan_id) == ("eth1", 5)
        assert changed(t.delete_link("eth1.5"))
        assert "eth1.5" not in ip_view(lab)
