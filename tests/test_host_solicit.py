"""Solicitation on the host mirror sends ARP on the wire, as the EVL core does.

(docs/abi.md, "Solicitation and the ARP front cache".)

Offline: the ARP request and the reply filter (sim/host.py).  Live, as root:
two network namespaces made for the test, joined by a veth pair, with no
traffic between them before the test: ``evl net -S`` on the first one
(EVL_SIM_BOARD=host:A) must ask the wire who has the peer and take the MAC
that the second namespace's kernel answers with, read independently with
``ip``.  Frames only ever travel on that veth pair; both namespaces are
deleted even when a test fails.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from evl_net.transports.sim import host

NET = "10.99.7"
OURS, PEER, NOBODY = f"{NET}.1", f"{NET}.2", f"{NET}.3"
PROBE_NET = "10.99.8"  # on a second veth pair whose near end has no IPv4 address
TIMEOUT = 0.8  # the short solicit timeout of the negative tests


# -- offline: the request and the reply filter ---------------------------------


def reply(
    sha: str = "02:00:00:00:00:02", spa: str = PEER, tpa: str = OURS, op: int = 2, htype: int = 1, ptype: int = 0x0800
) -> bytes:
    return struct.pack(
        "!HHBBH6s4s6s4s",
        htype,
        ptype,
        6,
        4,
        op,
        bytes.fromhex(sha.replace(":", "")),
        socket.inet_aton(spa),
        bytes.fromhex("020000000001"),
        socket.inet_aton(tpa),
    )


def test_arp_request_layout() -> None:
    raw = host.arp_request(bytes.fromhex("020000000001"), OURS, PEER)
    assert raw == bytes.fromhex("0001 0800 06 04 0001 020000000001 0a630701 000000000000 0a630702")


def test_reply_filter_is_strict() -> None:
    assert host.arp_reply_mac(reply(), PEER, OURS) == "02:00:00:00:00:02"
    assert host.arp_reply_mac(reply() + bytes(18), PEER, OURS) == "02:00:00:00:00:02"  # Ethernet padding
    assert host.arp_reply_mac(reply(tpa="0.0.0.0"), PEER, "0.0.0.0") == "02:00:00:00:00:02"  # answer to a probe
    rejected = [
        reply(op=1),  # a request, not a reply
        reply(spa=NOBODY),  # from someone else
        reply(tpa="10.99.7.9"),  # to someone else
        reply(sha="01:00:5e:00:00:01"),  # multicast sender
        reply(sha="ff:ff:ff:ff:ff:ff"),
        reply(sha="00:00:00:00:00:00"),
        reply(htype=6),  # not Ethernet
        reply(ptype=0x86DD),  # not IPv4
        reply()[:27],  # short
    ]
    for payload in rejected:
        assert host.arp_reply_mac(payload, PEER, OURS) is None, payload.hex()


def test_sender_address_choice() -> None:
    assert host.arp_source(["192.0.2.10/24", f"{OURS}/24"], PEER) == OURS  # on the peer's subnet
    assert host.arp_source(["192.0.2.10/24", f"{OURS}/24"], "198.51.100.1") == "192.0.2.10"  # else the first
    assert host.arp_source([], PEER) == "0.0.0.0"  # no address: an ARP probe


def test_netns_path() -> None:
    assert host.netns_path("lab") == "/var/run/netns/lab"
    assert host.netns_path("/proc/1/ns/net") == "/proc/1/ns/net"


# -- live: two namespaces joined by veth ----------------------------------------


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["ip", *args], check=False, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


@dataclass
class Pair:
    a: str  # the mirrored namespace: vethA (OURS/24), vethA2 (no IPv4 address)
    b: str  # the peer's: vethB (PEER/24), vethB2 (PROBE_NET.2/24)

    def neigh(self, ns: str, dst: str) -> list:
        return json.loads(ip("-n", ns, "-4", "-j", "neigh", "show", dst).stdout or "[]")

    def mac(self, ns: str, dev: str) -> str:
        (entry,) = json.loads(ip("-n", ns, "-j", "link", "show", dev).stdout)
        return entry["address"]


@pytest.fixture
def pair():
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2's ip")
    a, b = f"evlsolA-{os.getpid()}", f"evlsolB-{os.getpid()}"
    created: list[str] = []
    try:
        for name in (a, b):
            proc = ip("netns", "add", name, check=False)
            if proc.returncode != 0:
                pytest.skip(f"cannot create a network namespace: {proc.stderr.strip()}")
            created.append(name)
        probe = ip("-n", a, "link", "add", "vethA", "type", "veth", "peer", "name", "vethB", "netns", b, check=False)
        if probe.returncode != 0:
            pytest.skip(f"cannot create veth links: {probe.stderr.strip()}")
        ip("-n", a, "link", "add", "vethA2", "type", "veth", "peer", "name", "vethB2", "netns", b)
        ip("-n", a, "addr", "add", f"{OURS}/24", "dev", "vethA")
        ip("-n", b, "addr", "add", f"{PEER}/24", "dev", "vethB")
        ip("-n", b, "addr", "add", f"{PROBE_NET}.2/24", "dev", "vethB2")
        for ns, devs in ((a, ("lo", "vethA", "vethA2")), (b, ("lo", "vethB", "vethB2"))):
            for dev in devs:
                ip("-n", ns, "link", "set", dev, "up")
        yield Pair(a, b)
    finally:
        for name in created:
            ip("netns", "del", name, check=False)


@pytest.fixture
def on_a(sim_env, pair):
    sim_env["EVL_SIM_BOARD"] = f"host:{pair.a}"
    return sim_env


def set_solicit_timeout(env: dict[str, str], seconds: float) -> None:
    """The board's solicit timeout, as writing ipv4_solicit_timeout would set it.

    The host board has no knob for it (the mirror takes the kernel default):
    the stored board is edited, which lasts while the namespace's fingerprint
    does not change.
    """
    path = Path(env["EVL_SIM_STATE"])
    state = json.loads(path.read_text())
    state["board"]["solicit_timeout"] = seconds
    path.write_text(json.dumps(state))


def cached(evl) -> list[tuple[str, str, str, str]]:
    """The ARP front cache: (dev, ip, mac, state) of each entry, from ``evl sim --json show``."""
    run = evl("sim", "--json", "show")
    assert run.code == 0, run.err
    return [(e["dev"], e["ip"], e["mac"], e["state"]) for e in json.loads(run.out)["arp"]]


def solicit_json(evl, *args: str) -> dict:
    run = evl("net", "--json", *args)
    assert run.code == 0, run.err
    (res,) = [json.loads(line) for line in run.out.splitlines()]
    return res


def test_solicit_resolves_a_peer_the_host_never_saw(sh, evl, on_a, pair):
    assert pair.neigh(pair.a, PEER) == []  # no prior traffic: the kernel of A does not know the peer
    assert pair.neigh(pair.b, OURS) == []
    peer_mac, our_mac = pair.mac(pair.b, "vethB"), pair.mac(pair.a, "vethA")
    assert sh("evl", "net", "--transport=sim", "-ei", "vethA", env=on_a).code == 0
    started = time.monotonic()
    run = sh("evl", "net", "--transport=sim", "-S", PEER, env=on_a)
    assert (run.code, run.err) == (0, ""), run.err
    assert time.monotonic() - started < 4  # answered, not timed out (the host board waits 5 s)
    show = evl("sim", "--json", "show")
    assert show.code == 0, show.err
    assert json.loads(show.out)["arp"] == [{"dev": "vethA", "ip": PEER, "mac": peer_mac, "state": "P"}]
    # The request really went over the wire: B's kernel learnt A from it.
    (learnt,) = pair.neigh(pair.b, OURS)
    assert (learnt["dev"], learnt["lladdr"]) == ("vethB", our_mac)
    # A permanent entry stands: soliciting again needs no answer and changes nothing.
    res = solicit_json(evl, "-S", PEER)
    assert res["changed"] is False
    assert cached(evl) == [("vethA", PEER, peer_mac, "P")]


def test_non_permanent_solicit_and_a_forced_device(evl, on_a, pair):
    assert pair.neigh(pair.a, PEER) == []
    assert evl("net", "-ei", "vethA").code == 0
    res = solicit_json(evl, "-s", PEER, "-i", "vethA")
    assert (res["ip"], res["permanent"], res["changed"]) == (PEER, False, True)
    assert cached(evl) == [("vethA", PEER, pair.mac(pair.b, "vethB"), "R")]
    res = solicit_json(evl, "-s", PEER)  # asked again on the wire: already in the oob cache
    assert res["changed"] is False
    assert cached(evl) == [("vethA", PEER, pair.mac(pair.b, "vethB"), "R")]


def test_a_device_without_an_ipv4_address_sends_a_probe(evl, on_a, pair):
    target = f"{PROBE_NET}.2"
    assert pair.neigh(pair.a, target) == []
    assert evl("net", "-ei", "vethA2").code == 0
    res = solicit_json(evl, "-S", target, "-i", "vethA2")
    assert res["changed"] is True
    assert cached(evl) == [("vethA2", target, pair.mac(pair.b, "vethB2"), "P")]


def test_nobody_answers(evl, on_a, pair):
    assert evl("net", "-ei", "vethA").code == 0
    set_solicit_timeout(on_a, TIMEOUT)
    assert pair.neigh(pair.a, NOBODY) == []
    started = time.monotonic()
    run = evl("net", "-S", NOBODY)
    elapsed = time.monotonic() - started
    assert (run.code, run.err) == (1, f"evl-net: {NOBODY} did not respond: Connection timed out\n")
    assert TIMEOUT <= elapsed < TIMEOUT + 1.5
    assert json.loads(evl("sim", "--json", "show").out)["arp"] == []
    # The peer that does answer still does, within the same short timeout.
    res = solicit_json(evl, "-s", PEER)
    assert res["changed"] is True
    assert cached(evl) == [("vethA", PEER, pair.mac(pair.b, "vethB"), "R")]


def test_the_peer_down_is_a_timeout(evl, on_a, pair):
    assert evl("net", "-ei", "vethA").code == 0
    set_solicit_timeout(on_a, TIMEOUT)
    ip("-n", pair.b, "link", "set", "vethB", "down")  # carrier lost on A's side: requests go nowhere
    run = evl("net", "-s", PEER)
    assert (run.code, run.err) == (1, f"evl-net: {PEER} did not respond: Connection timed out\n")


def test_arp_solicit_errors(pair):
    with pytest.raises(OSError) as caught:
        host.arp_solicit(PEER, "nosuch0", 0.5, pair.a, OURS)
    assert caught.value.errno == errno.ENODEV and "nosuch0" in getattr(caught.value, "detail", "")
    missing = f"evlsolmissing-{os.getpid()}"
    with pytest.raises(OSError) as caught:
        host.arp_solicit(PEER, "vethA", 0.5, missing, OURS)
    assert caught.value.errno == errno.ENOENT and missing in getattr(caught.value, "detail", "")
    assert missing not in ip("netns", "list").stdout
    assert host.arp_solicit(PEER, "lo", 0.5, pair.a, OURS) is None  # loopback: nobody to ask
    ip("-n", pair.a, "link", "set", "vethA", "arp", "off")
    started = time.monotonic()
    assert host.arp_solicit(PEER, "vethA", 0.5, pair.a, OURS) is None  # NOARP: nobody to ask either
    assert time.monotonic() - started < 0.4


def test_unprivileged_solicit_is_eperm(pair):
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv")
    code = (
        "import sys\n"
        "from evl_net.transports.sim import host\n"
        f"for ns in ({pair.a!r}, None):\n"
        "    try:\n"
        f"        host.arp_solicit({PEER!r}, 'vethA', 0.5, ns, {OURS!r})\n"
        "    except OSError as exc:\n"
        "        print(exc.errno, exc.detail)\n"
    )
    proc = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        cwd="/",
    )
    if proc.returncode != 0 and "Traceback" in proc.stderr and "arp_solicit" not in proc.stderr:
        pytest.skip(f"cannot run the interpreter as nobody: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout.splitlines() == [
        f"{errno.EPERM} cannot enter the network namespace {pair.a}",
        f"{errno.EPERM} cannot open an ARP packet socket",
    ]
