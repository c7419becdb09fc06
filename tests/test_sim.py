"""The simulator behaves like the EVL core (docs/abi.md)."""

from __future__ import annotations

import errno
import json
import time

import pytest

import bpf_build
from evl_net.transports.sim import SimTransport

BOARD = """
page_size = 4096
solicit_timeout = 0.2

[[interface]]
name = "lo"
loopback = true
addresses = ["127.0.0.1/8"]

[[interface]]
name = "eth0"
driver = "fec"
bus = "2188000.ethernet"
mtu = 9000
addresses = ["192.0.2.11/24"]

[[interface]]
name = "eth0.7"
parent = "eth0"
vlan_id = 7
addresses = ["10.7.0.1/24"]

[[interface]]
name = "eth3"
up = false
addresses = ["198.51.100.1/24"]

[[route]]
dst = "default"
via = "192.0.2.1"
dev = "eth0"

[[peer]]
ip = "192.0.2.1"
mac = "02:00:00:00:00:01"

[[peer]]
ip = "10.7.0.2"
mac = "02:00:00:00:00:02"

[[peer]]
ip = "10.7.0.3"
mac = "02:00:00:00:00:03"
reachable = false
"""


@pytest.fixture
def board(tmp_path, sim_env):
    path = tmp_path / "board.toml"
    path.write_text(BOARD)
    sim_env["EVL_SIM_BOARD"] = str(path)
    return path


def jsonl(run):
    return [json.loads(line) for line in run.out.splitlines()]


def cached(evl):
    """The ARP front cache: (dev, ip, mac, state) of each entry, from ``evl sim --json show``."""
    run = evl("sim", "--json", "show")
    assert run.code == 0, run.err
    return [(e["dev"], e["ip"], e["mac"], e["state"]) for e in json.loads(run.out)["arp"]]


def fails(run, message):
    assert (run.code, run.out, run.err) == (1, "", f"evl-net: {message}\n")


def test_buffer_is_raised_to_the_mtu_and_defaults_apply(evl, board):
    assert evl("net", "-ei", "eth0", "-b", "1000").code == 0
    assert evl("net", "-Qsa", "-i", "eth0").out == "9000 2048\n"


def test_buffer_size_limit_depends_on_page_size(evl, board, tmp_path, sim_env):
    big = tmp_path / "big.toml"
    big.write_text(BOARD.replace("page_size = 4096", "page_size = 16384"))
    sim_env["EVL_SIM_BOARD"] = str(big)
    assert evl("net", "-ei", "eth0", "-b", "65536").code == 0
    assert evl("net", "-Qs", "-i", "eth0").out == "65536\n"


def test_kernel_limits_give_einval_at_the_transport(tmp_path, board):
    sim = SimTransport(board=str(board), state_path=str(tmp_path / "s.json"))
    with sim:
        for pool, buf in ((32769, 0), (0, 4 * 4096 + 1), (-1, 0)):
            with pytest.raises(OSError) as info:
                sim.enable_port("eth0", pool, buf)
            assert info.value.errno == errno.EINVAL
        assert sim.enable_port("eth0", 32768, 4 * 4096).changed is True


def test_enabling_twice_succeeds_and_keeps_the_first_parameters(evl, board):
    assert evl("net", "-ei", "eth0", "-p", "100").code == 0
    (again,) = jsonl(evl("net", "--json", "-ei", "eth0", "-p", "200"))
    assert again["changed"] is False and again["pool_size"] == 100


def test_vlan_port_shares_the_real_device_pool(evl, board):
    assert evl("net", "-ei", "eth0.7", "-p", "64").code == 0
    assert evl("net", "-ei", "eth0", "-p", "999").code == 0  # later ports reuse the pool silently
    assert evl("net", "-Qfa", "-i", "eth0").out == "64 64\n"
    assert evl("net", "-di", "eth0.7").code == 0
    assert evl("net", "-Qa", "-i", "eth0").out == "64\n"  # eth0 is still a port
    assert evl("net", "-di", "eth0").code == 0
    assert evl("net", "-Qa", "-i", "eth0").out == "0\n"  # last port gone: pool freed


def test_enable_on_a_down_device(evl, board):
    fails(evl("net", "-ei", "eth3"), "cannot enable out-of-band port on eth3: Network is down")


def test_disabling_a_non_port_succeeds(evl, board):
    (res,) = jsonl(evl("net", "--json", "-di", "eth0"))
    assert res["changed"] is False


def test_solicit_on_link_and_permanent_entries(evl, board):
    fails(
        evl("net", "-s", "10.7.0.2"),
        "10.7.0.2 did not respond (eth0.7, the way to 10.7.0.2, is not an out-of-band port): No such device",
    )
    assert evl("net", "-ei", "eth0.7").code == 0
    (res,) = jsonl(evl("net", "--json", "-s", "10.7.0.2"))
    assert (res["ip"], res["permanent"], res["changed"]) == ("10.7.0.2", False, True)
    assert cached(evl) == [("eth0.7", "10.7.0.2", "02:00:00:00:00:02", "R")]
    (res,) = jsonl(evl("net", "--json", "-S", "10.7.0.2"))
    assert (res["permanent"], res["changed"]) == (True, True)
    assert cached(evl) == [("eth0.7", "10.7.0.2", "02:00:00:00:00:02", "P")]
    (res,) = jsonl(evl("net", "--json", "-s", "10.7.0.2"))
    assert res["changed"] is False
    assert cached(evl) == [("eth0.7", "10.7.0.2", "02:00:00:00:00:02", "P")]  # a permanent entry is never downgraded


def test_solicit_off_link_needs_gateway_flag(evl, board):
    assert evl("net", "-ei", "eth0").code == 0
    fails(
        evl("net", "-s", "203.0.113.9"),
        "203.0.113.9 did not respond (203.0.113.9 is off-link: allow gateways with -g): Network is unreachable",
    )
    (res,) = jsonl(evl("net", "--json", "-gs", "203.0.113.9"))
    assert (res["ip"], res["may_route"], res["changed"]) == ("203.0.113.9", True, True)
    assert cached(evl) == [("eth0", "192.0.2.1", "02:00:00:00:00:01", "R")]  # the gateway is what gets cached


def test_silent_peer_times_out_after_the_board_timeout(evl, board):
    assert evl("net", "-ei", "eth0.7").code == 0
    start = time.monotonic()
    fails(evl("net", "-S", "10.7.0.3"), "10.7.0.3 did not respond: Connection timed out")
    assert time.monotonic() - start >= 0.2
    fails(evl("net", "-s", "10.7.0.99"), "10.7.0.99 did not respond: Connection timed out")


def test_broadcast_and_loopback_need_a_port_and_are_not_cached(evl, board):
    fails(
        evl("net", "-s", "broadcast", "-i", "eth0"),
        "broadcast did not respond (eth0 is not an out-of-band port): No such device",
    )
    assert evl("net", "-ei", "eth0").code == 0
    (res,) = jsonl(evl("net", "--json", "-s", "broadcast", "-i", "eth0"))
    assert (res["ip"], res["changed"]) == ("255.255.255.255", False)
    assert cached(evl) == []
    fails(
        evl("net", "-s", "127.0.0.1"),
        "127.0.0.1 did not respond (lo, the way to 127.0.0.1, is not an out-of-band port): No such device",
    )
    assert evl("net", "-ei", "lo").code == 0
    assert evl("net", "-s", "localhost").code == 0
    assert cached(evl) == []


def test_disabling_a_port_flushes_its_arp_entries(evl, board, tmp_path, sim_env):
    evl("net", "-ei", "eth0.7")
    evl("net", "-S", "10.7.0.2")
    evl("net", "-di", "eth0.7")
    state = json.loads((tmp_path / "sim-state.json").read_text())
    assert state["arp"] == []


@pytest.mark.skipif(not bpf_build.have_clang(), reason="clang with the BPF target is needed")
def test_ebpf_objects_are_checked_like_libbpf_and_the_kernel(evl, board, tmp_path):
    xdp = bpf_build.build("xdp_pass", tmp_path)
    netrx = bpf_build.build("netrx", tmp_path)
    fails(
        evl("net", f"-F{netrx}", "-i", "eth0"),
        "cannot set BPF filter on eth0 (eth0 is not an out-of-band port): No such device",
    )
    evl("net", "-ei", "eth0.7")
    run = evl("net", f"-F{xdp}", "-i", "eth0.7")
    assert run.code == 1 and run.err.endswith(
        f"evl-net: cannot set BPF filter on eth0.7 ({xdp}: program 'xdp' is not a socket filter): Invalid argument\n"
    )
    assert "fec 2188000.ethernet eth0: invalid out-of-band eBPF program" in run.err
    not_elf = tmp_path / "junk.o"
    not_elf.write_bytes(b"this is not an ELF object")
    run = evl("net", f"-F{not_elf}", "-i", "eth0.7")
    assert (
        run.code == 1
        and run.err.startswith(f"evl-net: cannot set BPF filter on eth0.7 ({not_elf}: ")
        and run.err.endswith(": Invalid argument\n")
    )
    fails(
        evl("net", "-Fmissing.o", "-i", "eth0.7"),
        "cannot set BPF filter on eth0.7: cannot read eBPF object missing.o: No such file or directory",
    )
    run = evl("net", f"-F{netrx}", "-i", "eth0.7")
    assert run.code == 0 and run.err.endswith("fec 2188000.ethernet eth0: out-of-band eBPF program installed\n")
    # The last port on eth0 going away drops the filter silently.
    run = evl("net", "-di", "eth0.7")
    assert (run.code, run.err) == (0, "")
    evl("net", "-ei", "eth0.7")
    assert evl("net", "-F", "-i", "eth0.7").err == ""


@pytest.mark.parametrize(
    "text, message",
    [
        ("page_size = 1000", "page_size: must be 4096, 16384 or 65536"),
        ("bogus = 1", "bogus: unknown key"),
        ("[[interface]]\nmtu = 1500", "interface[0].name: missing"),
        ('[[interface]]\nname = "eth0"\nmtu = "big"', "interface[0].mtu: expected an integer, got a string"),
        ('[[interface]]\nname = "eth0.5"\nparent = "eth0"\nvlan_id = 5', "interface[0].parent: no interface 'eth0'"),
        (
            '[[interface]]\nname = "eth0"\naddresses = ["10.0.0.300/24"]',
            "interface[0].addresses[0]: not an IPv4 address/prefix: '10.0.0.300/24'",
        ),
        (
            '[[interface]]\nname = "eth0"\ncounters = { rx_pakets = 1 }',
            "interface[0].counters.rx_pakets: unknown counter",
        ),
        ('[[peer]]\nip = "10.0.0.1"\nmac = "zz"', "peer[0].mac: not a MAC address: 'zz'"),
        ("this is = not toml", None),
    ],
)
def test_bad_board_files_get_one_line_naming_file_and_key(evl, tmp_path, sim_env, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    sim_env["EVL_SIM_BOARD"] = str(path)
    run = evl("net", "-n")
    assert run.code == 1 and run.out == ""
    assert run.err.startswith(f"evl-net: board file {path}: ") and run.err.count("\n") == 1
    if message:
        assert run.err.startswith(f"evl-net: board file {path}: {message}")


def test_builtin_board_by_name_and_missing_board(evl, sim_env):
    sim_env["EVL_SIM_BOARD"] = "manual-traffic"
    assert evl("net", "-QR", "-i", "eth0.42").out == "2092625\n"
    run = evl("net", "--board=/nonexistent/board.toml", "-n")
    assert (run.code, run.err) == (
        1,
        "evl-net: cannot read board file /nonexistent/board.toml: No such file or directory\n",
    )
