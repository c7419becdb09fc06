"""Filters written the way board users write them (tests/bpf/users_*.c) run unchanged on the simulator.

Each is built as the README tells users (``clang -O2 -g -target bpf $(evl sim
filter --cflags)``) and loaded by the simulator as ``evl net -F`` does; every
frame of tests/user_frames.py runs through it.  Two oracles:

* this machine's kernel, through the system libbpf (tests/kernel_bpf.py):
  the verdict of every frame (BPF_PROG_TEST_RUN) and every map afterwards
  must be the simulator's;
* tables worked out by hand from each filter's documented behaviour and the
  frames (the verdicts, and the maps derived from them), which also hold
  where the kernel cannot serve.

The kernel's skb for BPF_PROG_TEST_RUN has VLAN tags in the data (no NIC
stripping), so the simulator runs with ``vlan_offload=False`` for the
comparison.  ``runt_14`` (an IPv4 ethertype and no IPv4 header) is left out:
BPF_PROG_TEST_RUN refuses such frames.
"""

from __future__ import annotations

import json
import socket
import struct
from collections import OrderedDict
from typing import Any

import pytest

import bpf_build
import kernel_bpf
from evl_net.transports.sim import filtermaps, loader
from evl_net.transports.sim.ebpf import SkbContext
from evl_net.transports.sim.ebpf import maps as vmmaps
from user_frames import FRAMES

D, A, S, V = 0, 1, 2, 3
RUN = OrderedDict((name, frame) for name, frame in FRAMES.items() if name != "runt_14")
UNTAGGED_V4 = ["ipv4_udp_7000", "ipv4_udp_53", "ipv4_tcp_80", "ipv4_opts_udp_7000"]
SOURCES = [name for name in RUN if name.startswith("ipv4_src_")]
TAGGED_V4 = ["vlan42_ipv4_udp_7000", "vlan0_prio_ipv4_udp_7000", "qinq_ipv4_udp_7000"]


def expect(default: int, **by_frame: int) -> dict[str, int]:
    table = dict.fromkeys(RUN, default)
    table.update(by_frame)
    return table


def named(names: list[str], verdict: int) -> dict[str, int]:
    return dict.fromkeys(names, verdict)


#: The verdict of each frame, from each filter's header comment.
VERDICTS: dict[str, dict[str, int]] = {
    "users_accept_all": expect(A),
    "users_ipv4_vlan": expect(A, arp=S, ipv6_udp_7000=S, qinq_truncated=D, runt_14_experimental=S, vlan42_ipv4_short=D),
    "users_udp_port": expect(
        A,
        ipv4_udp_53=S,
        ipv4_tcp_80=S,
        arp=S,
        ipv6_udp_7000=S,
        qinq_ipv4_udp_7000=S,
        qinq_truncated=S,
        runt_14_experimental=S,
        vlan42_ipv4_short=D,
    ),
    "users_percpu_count": expect(
        A,
        arp=S,
        ipv6_udp_7000=D,
        runt_14_experimental=D,
        **named([*TAGGED_V4, "qinq_truncated", "vlan42_ipv4_short"], V),
    ),
    "users_hash_src": expect(S, **named([*UNTAGGED_V4, *SOURCES], A)),
    "users_lru_src": expect(S, **named([*UNTAGGED_V4, *SOURCES], A)),
    "users_loop": expect(
        A,
        arp=S,
        ipv6_udp_7000=S,
        qinq_truncated=D,
        runt_14_experimental=S,
        **named([*TAGGED_V4, "vlan42_ipv4_short"], V),
    ),
    "users_global": expect(S, ipv4_udp_7000=A),
    "users_ringbuf": expect(
        A,
        arp=S,
        ipv6_udp_7000=S,
        qinq_ipv4_udp_7000=S,
        qinq_truncated=S,
        runt_14_experimental=S,
        vlan42_ipv4_short=D,
    ),
}
USERS = list(VERDICTS)


@pytest.fixture(scope="module")
def objects(tmp_path_factory) -> dict[str, bytes]:
    return bpf_build.user_objects([*USERS, "users_legacy_map"], tmp_path_factory)


def run_sim(obj: bytes, name: str) -> tuple[dict[str, int], dict[str, Any], list[str]]:
    """(verdict per frame, maps by name -> {key: value}, trace lines) on the simulator."""
    loaded = loader.load(obj, f"{name}.o")
    states = filtermaps.created(loaded.maps, 1)
    live = filtermaps.live(states)
    verdicts = {}
    trace: list[str] = []
    for fname, frame in RUN.items():
        skb = SkbContext.for_frame(frame, vlan_offload=False)
        verdicts[fname] = loaded.program.run(frame, skb, trace.append, live)
    filtermaps.store(live, states)
    maps = {}
    for m in live:
        if isinstance(m, vmmaps.RingBuf):
            maps[m.defn.name] = list(m.records)
        else:
            maps[m.defn.name] = {k: _combined(vs) for k, vs in m.dump()}
    return verdicts, maps, trace


def _combined(values: list[bytes]) -> bytes:
    """A per-CPU value as the sum over the CPUs (u64 words); a plain value as it is."""
    if len(values) == 1:
        return values[0]
    n = len(values[0]) // 8
    sums = [sum(struct.unpack_from("<Q", v, 8 * i)[0] for v in values) & (2**64 - 1) for i in range(n)]
    return struct.pack(f"<{n}Q", *sums)


def run_kernel(obj: bytes, name: str) -> tuple[dict[str, int], dict[str, Any]]:
    reason = kernel_bpf.available()
    if reason:
        pytest.skip(f"kernel oracle unavailable: {reason}")
    with kernel_bpf.KernelObject(obj, name) as ko:
        verdicts = {fname: ko.run(frame) for fname, frame in RUN.items()}
        maps: dict[str, Any] = {}
        for dump in ko.maps():
            assert dump.skipped is None, dump
            if dump.type == vmmaps.RINGBUF:
                maps[dump.name] = list(dump.records)
            else:
                maps[dump.name] = {k: _combined(v if isinstance(v, list) else [v]) for k, v in dump.entries}
    return verdicts, maps


# -- hand-computed map contents -----------------------------------------------------------------


def _ipv4_at(frame: bytes) -> tuple[int, bytes, int] | None:
    """(IP offset, source address, protocol) of an IPv4 frame under at most one tag, else None."""
    off, etype = 12, struct.unpack_from("!H", frame, 12)[0]
    if etype in (0x8100, 0x88A8):
        off, etype = 16, struct.unpack_from("!H", frame, 16)[0]
    if etype != 0x0800 or len(frame) < off + 2 + 20:
        return None
    return off + 2, frame[off + 2 + 12 : off + 2 + 16], frame[off + 2 + 9]


def hand_maps(name: str) -> dict[str, Any]:
    verdicts = VERDICTS[name]
    if name == "users_percpu_count":
        counts = [sum(1 for v in verdicts.values() if v == verdict) for verdict in range(4)]
        return {"counts": {struct.pack("<I", i): struct.pack("<Q", c) for i, c in enumerate(counts)}}
    if name in ("users_hash_src", "users_lru_src"):
        table: OrderedDict[bytes, list[int]] = OrderedDict()
        for fname, frame in RUN.items():
            if verdicts[fname] != A:
                continue
            src = frame[26:30]
            stats = table.pop(src, [0, 0])
            stats[0] += 1
            stats[1] += len(frame) - 14
            table[src] = stats  # most recent last
            if name == "users_lru_src" and len(table) > 4:
                table.popitem(last=False)
        key = "by_src" if name == "users_hash_src" else "lru_src"
        return {key: {k: struct.pack("<QQ", *v) for k, v in table.items()}}
    if name == "users_global":
        seen, matched = len(RUN), sum(1 for v in verdicts.values() if v == A)
        return {
            "users_gl.bss": {bytes(4): struct.pack("<QQ", matched, seen)},
            "users_gl.data": {bytes(4): struct.pack("<I", 1)},
            "users_gl.rodata": {bytes(4): struct.pack("<H", 7000)},
        }
    if name == "users_ringbuf":
        events = []
        for frame in RUN.values():
            at = _ipv4_at(frame)
            if at is None:
                continue
            off, src, proto = at
            tagged = off == 18
            if tagged or proto == 17:
                events.append(src + struct.pack("<I", len(frame) - 14))
        return {"events": events}
    return {}


@pytest.mark.parametrize("name", USERS)
def test_the_simulator_gives_the_documented_verdicts_and_maps(objects, name):
    verdicts, maps, _ = run_sim(objects[name], name)
    assert verdicts == VERDICTS[name]
    for map_name, content in hand_maps(name).items():
        assert maps[map_name] == content, map_name


@pytest.mark.parametrize("name", USERS)
def test_the_simulator_and_the_kernel_agree(objects, name):
    sim_verdicts, sim_maps, _ = run_sim(objects[name], name)
    k_verdicts, k_maps = run_kernel(objects[name], name)
    assert sim_verdicts == k_verdicts
    assert set(sim_maps) == set(k_maps)
    for map_name, content in k_maps.items():
        if map_name == "lru_src":
            # The kernel's LRU evicts by per-CPU free lists, only nearly in LRU order: what it keeps, the
            # simulator's strict LRU kept too, with the same counts, unless it was evicted and counted anew.
            assert len(content) <= 4 and set(content) <= {frame[26:30] for frame in RUN.values()}
            continue
        assert sim_maps[map_name] == content, map_name


def test_bpf_printk_lines_name_the_failure(objects):
    """users_ipv4_vlan's bpf_printk() formats live in .rodata: the trace lines show them filled in."""
    _, _, trace = run_sim(objects["users_ipv4_vlan"], "users_ipv4_vlan")
    texts = [line.split("bpf_trace_printk: ", 1)[1] for line in trace]
    # qinq_truncated: 6 bytes after the Ethernet header, a tag needs 4 and the inner one 4 more
    frame = RUN["qinq_truncated"]
    assert f"evl rx: short vlan tag at 4, len {len(frame) - 14}" in texts
    short = RUN["vlan42_ipv4_short"]
    assert f"evl rx: short ipv4 header at 4, len {len(short) - 14}" in texts
    assert all(line.startswith("          <idle>-0       [000] ..s11 ") for line in trace)


def test_the_legacy_maps_section_loads_as_older_libbpf_loads_it(objects):
    """libbpf >= 1.0 refuses a 'maps' section; the simulator reads it as libbpf 0.x did, and the map works."""
    verdicts, maps, _ = run_sim(objects["users_legacy_map"], "users_legacy_map")
    loaded = loader.load(objects["users_legacy_map"], "users_legacy_map.o")
    legacy = [(m.name, m.type, m.key_size, m.value_size, m.max_entries, m.section) for m in loaded.maps]
    assert legacy == [("hits", vmmaps.ARRAY, 4, 8, 1, "maps")]  # struct bpf_map_def hits, as written
    ipv4 = [name for name, frame in RUN.items() if frame[12:14] == b"\x08\x00"]  # skb->protocol IPv4
    assert [n for n, v in verdicts.items() if v == A] == ipv4
    assert maps["hits"] == {bytes(4): struct.pack("<Q", len(ipv4))}


# -- through the commands ----------------------------------------------------------------------------


@pytest.fixture
def installed(evl, objects, tmp_path):
    """users_percpu_count installed with -F on eth0 of the simulated board."""
    obj = tmp_path / "users_percpu_count.o"
    obj.write_bytes(objects["users_percpu_count"])
    assert evl("net", "-e", "-i", "eth0").code == 0
    r = evl("net", f"-F{obj}", "-i", "eth0")
    assert r.code == 0, r.err
    return obj


def counts_of(evl) -> list[int]:
    r = evl("sim", "--json", "maps", "eth0")
    assert r.code == 0, r.err
    (counts,) = [m for m in json.loads(r.out)["eth0"] if m["name"] == "counts"]
    return [
        sum(int("".join(b[2:] for b in reversed(v["value"])), 16) for v in el["values"]) for el in counts["elements"]
    ]


def test_map_contents_persist_across_invocations(evl, installed):
    assert counts_of(evl) == [0, 0, 0, 0]
    assert evl("sim", "rx", "eth0", "--count", "3").code == 0  # IPv4 UDP, untagged: ACCEPT
    assert evl("sim", "rx", "eth0", "--proto", "arp").code == 0  # SKIP
    assert counts_of(evl) == [0, 3, 1, 0]
    assert evl("sim", "rx", "eth0", "--count", "2").code == 0
    assert counts_of(evl) == [0, 5, 1, 0]
    show = evl("sim", "show")
    assert "eth0: counts (percpu_array, 4 elements)  (evl sim maps eth0)" in show.out
    # Installing again loads the object again: new maps, zeroed.
    assert evl("net", f"-F{installed}", "-i", "eth0").code == 0
    assert counts_of(evl) == [0, 0, 0, 0]
    # Removing the filter frees its maps.
    assert evl("net", "-F", "-i", "eth0").code == 0
    assert evl("sim", "maps").out == "no eBPF maps\n"


def test_maps_text_dump_is_bpftool_like(evl, installed):
    evl("sim", "rx", "eth0")
    out = evl("sim", "maps").out
    assert "map 0: counts  percpu_array  key 4B  value 8B  max_entries 4" in out
    assert "  key: 01 00 00 00\n    value (CPU 00): 01 00 00 00 00 00 00 00" in out
    assert "  Found 4 elements" in out


def test_ring_buffer_records_wait_for_a_consumer(evl, objects, tmp_path):
    obj = tmp_path / "users_ringbuf.o"
    obj.write_bytes(objects["users_ringbuf"])
    evl("net", "-e", "-i", "eth0")
    assert evl("net", f"-F{obj}", "-i", "eth0").code == 0
    assert evl("sim", "rx", "eth0", "--count", "2", "--src", "10.0.0.9").code == 0

    def records() -> list[str]:
        (rb,) = json.loads(evl("sim", "--json", "maps").out)["eth0"]
        return rb["records"]

    want = (socket.inet_aton("10.0.0.9") + struct.pack("<I", 64 - 14)).hex()  # skb->len of a 64-byte frame
    assert records() == [want, want]
    consumed = evl("sim", "maps", "--consume")
    assert consumed.code == 0 and consumed.out.count("record: ") == 2
    assert records() == []


def test_evl_sim_filter_prints_the_maps_after_the_frames(evl, objects, tmp_path):
    obj = tmp_path / "users_hash_src.o"
    obj.write_bytes(objects["users_hash_src"])
    r = evl("sim", "filter", str(obj), "--src", "10.1.2.3")
    assert r.code == 0, r.err
    assert "1 accept" in r.out.splitlines()[0]
    assert "map 0: by_src  hash  key 4B  value 16B  max_entries 64" in r.out
    # one packet of 50 bytes (skb->len: the 64-byte frame without its Ethernet header)
    assert "  key: 0a 01 02 03  value: 01 00 00 00 00 00 00 00 32 00 00 00 00 00 00 00" in r.out


def test_a_state_whose_maps_the_program_lacks_is_corrupt(evl, installed, sim_env):
    """The program loads map 0: a state file without it is refused as corrupt, not run into a fault."""
    path = sim_env["EVL_SIM_STATE"]
    with open(path) as f:
        state = json.load(f)
    state["filters"]["eth0"]["maps"] = []
    with open(path, "w") as f:
        json.dump(state, f)
    r = evl("sim", "rx", "eth0")
    assert r.code == 1 and "corrupt" in r.err and "loads map 0, and the filter has 0 maps" in r.err, r.err
