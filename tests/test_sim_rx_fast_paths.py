"""The RX path's shortcuts decide as the full inspection would (issue 17).

Without a filter, ``traffic.receive`` looks only at the outer tag and the IPv4
header of a frame (``traffic.ipv4_vlan``) before it sums a checksum, and tests
VLAN membership against a set (``SimTransport.vlan_members``).
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from evl_net.transports.sim import SimTransport, traffic
from evl_net.transports.sim import frames as framelib
from evl_net.transports.sim.frames import FrameSpec, build


def _frames() -> list[bytes]:
    out = []
    for proto in ("udp", "tcp", "icmp", "arp", "ipv6"):
        for vlan in (None, 0, 1, 42, 4095):
            out.append(build(FrameSpec(proto=proto, vlan=vlan)))
    ip = build(FrameSpec())[14:]
    mac = bytes.fromhex("502df41d32d0502df41d4010")
    for tags in ([0x88A8], [0x8100, 0x8100], [0x88A8, 0x8100, 0x8100], [0x8100, 0x88A8]):
        out.append(mac + b"".join(struct.pack("!HH", t, 0x3000 | 42) for t in tags) + b"\x08\x00" + ip)
    out.append(mac + b"\x81\x00\x00\x2a\x08\x00" + b"\x65" + ip[1:])  # IP version 6 in an IPv4 ethertype
    longest = list(out)
    for frame in longest[:6] + longest[-5:]:
        out.extend(frame[:n] for n in range(0, len(frame), 3))  # every truncation, tags cut included
    return out


def test_ipv4_vlan_is_what_inspect_finds():
    for frame in _frames():
        info = framelib.inspect(frame)
        want = info.vlan if info.ipv4 and info.vlan is not None else None
        assert traffic.ipv4_vlan(frame) == want, frame.hex()


@pytest.fixture
def sim(tmp_path: Path):
    sim = SimTransport(board=None, state_path=str(tmp_path / "state.json"), console=None)
    with sim:
        sim.enable_port("eth0.42", 0, 0)
        yield sim


def test_vlan_membership_follows_the_map(sim):
    tagged = build(FrameSpec(vlan=42, size=100))
    assert traffic.receive(sim, "eth0", tagged).disposition == "in-band"
    sim.set_vlans("42")
    assert sim.vlan_members() == {42}
    assert traffic.receive(sim, "eth0", tagged) == traffic.Delivery("none", "oob", "eth0.42")
    sim.set_vlans("2-41,43-4094")  # a full map, but 42
    assert len(sim.vlan_members()) == 4092
    assert traffic.receive(sim, "eth0", tagged).disposition == "in-band"
    assert traffic.receive(sim, "eth0", build(FrameSpec(vlan=43))) == traffic.Delivery("none", "oob", "eth0")
    sim.set_vlans("2-4094")
    assert traffic.receive(sim, "eth0", build(FrameSpec(vlan=42, bad_csum=True))).disposition == "csum-error"
    assert traffic.receive(sim, "eth0", build(FrameSpec(proto="arp", vlan=42))).disposition == "in-band"
    assert traffic.receive(sim, "eth0", build(FrameSpec())).disposition == "in-band"
    counters = sim.load().counters
    assert (counters["eth0.42"]["rx_packets"], counters["eth0"]["rx_packets"]) == (2, 1)
