"""The traffic model moves every -Q counter as the kernel would (hand-computed expectations)."""

from __future__ import annotations

import json

import pytest

import bpf_build
from evl_net.transports.sim import frames


def q(evl, ifname):
    run = evl("net", "--json", "-Q", "-i", ifname)
    assert run.code == 0, run.err
    return json.loads(run.out)


def sim(evl, *argv):
    run = evl("sim", "--json", *argv)
    assert run.code == 0, run.err
    return json.loads(run.out)


def test_rx_vlan_rules_and_accounting(evl):
    assert evl("net", "-ei", "eth0.42").code == 0
    # No VID in the map yet: IPv4 on VLAN 42 stays in-band.
    assert sim(evl, "rx", "eth0.42", "--count", "5")["dispositions"] == {"in-band": 5}
    assert evl("net", "-N42").code == 0
    assert sim(evl, "rx", "eth0.42", "--count", "5", "--size", "100")["dispositions"] == {"oob": 5}
    assert sim(evl, "rx", "eth0", "--count", "2")["dispositions"] == {"in-band": 2}  # untagged
    assert sim(evl, "rx", "eth0.42", "--proto", "arp")["dispositions"] == {"in-band": 1}  # ARP stays in-band
    assert sim(evl, "rx", "eth0.42", "--proto", "ipv6")["dispositions"] == {"in-band": 1}
    assert sim(evl, "rx", "eth0", "--vlan", "43")["dispositions"] == {"in-band": 1}
    assert sim(evl, "rx", "eth0.42", "--bad-csum", "--size", "80")["dispositions"] == {"csum-error": 1}
    stat = q(evl, "eth0.42")
    assert (stat["rx_packets"], stat["rx_bytes"], stat["csum_errors"]) == (6, 5 * 100 + 80, 1)
    assert q(evl, "eth0")["rx_packets"] == 0


def test_rx_without_port_is_not_diverted(evl):
    evl("net", "-N42")
    assert sim(evl, "rx", "eth0.42")["dispositions"] == {"not-diverted": 1}
    assert q(evl, "eth0.42")["rx_packets"] == 0


def test_rx_nomem_counts_on_tx_nomem_of_the_real_device(evl):
    evl("net", "-ei", "eth0.42")
    assert sim(evl, "rx", "eth0.42", "--nomem", "--count", "3")["dispositions"] == {"nomem": 3}
    assert (q(evl, "eth0")["rx_nomem"], q(evl, "eth0")["tx_nomem"]) == (0, 3)


def test_tx_pool_exhaustion_and_drain(evl):
    evl("net", "-ei", "eth1.42", "-p", "10")
    assert sim(evl, "tx", "eth1.42", "--count", "4", "--size", "200") == {
        "sent": 4,
        "nomem": 0,
        "skb_free": 10,
        "skb_total": 10,
    }
    assert sim(evl, "tx", "eth1.42", "--count", "13", "--size", "100", "--stall") == {
        "sent": 10,
        "nomem": 3,
        "skb_free": 0,
        "skb_total": 10,
    }
    stat = q(evl, "eth1.42")
    assert (stat["tx_packets"], stat["tx_bytes"], stat["tx_nomem"], stat["skb_free"]) == (14, 4 * 200 + 10 * 100, 3, 0)
    assert evl("net", "-Qf", "-i", "eth1.42").out == "0\n"
    assert sim(evl, "drain", "eth1.42") == {"released": 10}
    assert evl("net", "-Qfa", "-i", "eth1.42").out == "10 10\n"


def test_tx_errors(evl):
    run = evl("sim", "tx", "eth0.42")
    assert (run.code, run.err) == (
        1,
        "evl-sim: cannot tx on eth0.42 (eth0.42 is not an out-of-band port): No such device\n",
    )
    evl("net", "-ei", "eth0.42")
    run = evl("sim", "tx", "eth0.42", "--size", "5000")
    assert run.code == 1 and run.err.endswith("Message too long\n")


def test_link_down_dismantles_ports_and_up_does_not_restore(evl):
    evl("net", "-ei", "eth0.42")
    evl("net", "-ei", "eth0")
    evl("net", "-S", "10.10.10.10")
    data = sim(evl, "link", "eth0", "down")
    assert data["dismantled"] == ["eth0", "eth0.42"]
    assert evl("net", "-Qa", "-i", "eth0.42").out == "0\n"
    run = evl("net", "-ei", "eth0.42")
    assert (run.code, run.err) == (1, "evl-net: cannot enable out-of-band port on eth0.42: Network is down\n")
    assert sim(evl, "link", "eth0", "up")["dismantled"] == []
    assert json.loads(evl("net", "--json", "-Q", "-i", "eth0.42").out)["oob_port"] is False
    show = sim(evl, "show")
    assert show["arp"] == [] and show["ports"] == []


def test_show_reset_and_log(evl):
    evl("net", "-ei", "eth0.42", "-N42")
    out = evl("sim", "show").out
    assert "board: manual" in out and "vlan filter: 42" in out
    assert evl("sim", "reset").code == 0
    assert "eth0.42" not in json.loads(evl("sim", "--json", "show").out)["ports"]
    assert evl("sim", "log").out == ""


def test_frames_are_well_formed():
    frame = frames.build(frames.FrameSpec(vlan=42, size=100, dport=9))
    info = frames.inspect(frame)
    assert (len(frame), info.vlan, info.ipv4, info.udp, info.udp_csum_ok) == (100, 42, True, True, True)
    bad = frames.inspect(frames.build(frames.FrameSpec(bad_csum=True)))
    assert bad.udp_csum_ok is False
    assert list(frames.read_pcap(frames.write_pcap([frame, frame]))) == [frame, frame]
    with pytest.raises(ValueError):
        list(frames.read_pcap(b"\x0a\x0d\x0d\x0a" + bytes(40)))


needs_clang = pytest.mark.skipif(not bpf_build.have_clang(), reason="clang with the BPF target is needed")


@needs_clang
def test_installed_filter_decides(evl, tmp_path):
    obj = bpf_build.build("accept_vlan42", tmp_path)
    evl("net", "-ei", "eth0.42")
    evl("net", "-ei", "eth1.42")
    assert evl("net", f"-F{obj}", "-i", "eth0.42").code == 0
    # accept_vlan42: VLAN 42 accepted whatever the map says; others skipped (in-band).
    assert sim(evl, "rx", "eth0.42", "--count", "3")["dispositions"] == {"oob": 3}
    assert sim(evl, "rx", "eth0", "--vlan", "43")["dispositions"] == {"in-band": 1}
    assert sim(evl, "rx", "eth0.42", "--proto", "arp")["dispositions"] == {"in-band": 1}  # accept is IPv4 only
    assert q(evl, "eth0.42")["rx_packets"] == 3
    # The filter lives on eth0 only: eth1.42 still follows the (empty) VLAN map.
    assert sim(evl, "rx", "eth1.42")["dispositions"] == {"in-band": 1}


@needs_clang
def test_drop_verdict_and_vlan_verdict(evl, tmp_path):
    obj = bpf_build.build("drop_udp9", tmp_path)
    evl("net", "-ei", "eth0.42", "-N42")
    evl("net", f"-F{obj}", "-i", "eth0.42")
    assert sim(evl, "rx", "eth0.42", "--dport", "9")["dispositions"] == {"dropped": 1}
    assert sim(evl, "rx", "eth0.42", "--dport", "10")["dispositions"] == {"oob": 1}  # verdict 3: VLAN rules


@needs_clang
def test_sim_filter_over_pcap_and_frames(evl, tmp_path):
    obj = bpf_build.build("accept_vlan42", tmp_path)
    pcap = tmp_path / "in.pcap"
    pcap.write_bytes(
        frames.write_pcap(
            [
                frames.build(frames.FrameSpec(vlan=42)),
                frames.build(frames.FrameSpec(vlan=7)),
                frames.build(frames.FrameSpec()),
            ]
        )
    )
    run = evl("sim", "--json", "filter", str(obj), "--pcap", str(pcap))
    assert [r["verdict"] for r in json.loads(run.out)] == [1, 2, 2]
    lines = tmp_path / "frames.jsonl"
    lines.write_text('{"vlan": 42, "size": 90}\n{"proto": "arp", "vlan": 42}\n')
    run = evl("sim", "--json", "filter", str(obj), "--frames", str(lines))
    assert [r["verdict"] for r in json.loads(run.out)] == [1, 1]
    lines.write_text('{"vlan": 42, "colour": "red"}\n')
    run = evl("sim", "filter", str(obj), "--frames", str(lines))
    assert run.code == 1 and run.err.startswith(f"evl-sim: {lines}:1: bad frame: unknown fields ['colour']")
