"""``evl net-config`` on the real kernel's ABI (the kernel double) and on the host board, in a namespace of its own.

The ioctl transport runs against tests/kdouble/ (LD_PRELOADed, every request's
bytes checked) in a network namespace whose veths carry the manual board's
names; links and addresses are the namespace's own, changed through
rtnetlink and read back with ``ip -j`` (the oracle), and what the EVL core
holds is read from the double's state.  This kernel has no VLAN link type:
creating one is a clear error, and the changes made before it are rolled back.
The host board (``--board host:NETNS``) takes the same file.
"""

from __future__ import annotations

import json
import subprocess

import pytest

import bpf_build
from conftest import Run, script
from test_ioctl_links import IFACES, double, env, ip, kdouble_so, netns  # noqa: F401

pytestmark = pytest.mark.skipif(not bpf_build.have_clang(), reason="needs clang with the bpf target")

SETUP = """\
vlan_filter = "42"

[interface.eth2]
mtu = 1400
addresses = ["198.51.100.11/24", "198.51.100.12/24"]

[port."eth0.42"]
pool = 4096

[port.eth1]
filter = { object = "netrx.o" }

[[peer]]
host = "10.10.10.10"
via = "eth0.42"
permanent = true
"""

PLAN = [
    "~ mtu eth2: 1500 → 1400",
    "+ address 198.51.100.12/24 on eth2",
    "+ port eth0.42 (pool 4096)",
    "+ port eth1",
    "+ eBPF filter on eth1: {D}/netrx.o",
    "~ vlan filter (none) → 42",
    "+ solicit 10.10.10.10 via eth0.42 (permanent)",
    "plan: 5 to add, 2 to change, 0 to remove",
]


@pytest.fixture
def files(tmp_path):
    bpf_build.build("netrx", tmp_path)
    (tmp_path / "net.toml").write_text(SETUP)
    return tmp_path


@pytest.fixture
def config(netns, double, env):  # noqa: F811
    """``config(command, *args)``: ``evl net-config COMMAND ARGS`` in the namespace, with the double preloaded."""

    def run(command: str, *args: str, board: list[str] | None = None) -> Run:
        where = board if board is not None else ["--transport=ioctl"]
        cmd = ["ip", "netns", "exec", netns, "env", f"LD_PRELOAD={double.so_path}", script("evl"), "net-config"]
        proc = subprocess.run([*cmd, command, *where, *args], env=env, capture_output=True, text=True, timeout=120)
        assert double.violations == [], "\n".join(double.violations)
        return Run(proc.returncode, proc.stdout, proc.stderr)

    return run


def links(ns: str) -> dict[str, tuple[int, list[str]]]:
    """The namespace's links as ``ip -j addr`` shows them: MTU and IPv4 addresses."""
    out = json.loads(ip("-n", ns, "-j", "addr").stdout)
    return {
        i["ifname"]: (
            i["mtu"],
            sorted(f"{a['local']}/{a['prefixlen']}" for a in i["addr_info"] if a["family"] == "inet"),
        )
        for i in out
    }


def test_plan_apply_and_nothing_left_to_do_on_the_kernel_abi(config, double, netns, files):  # noqa: F811
    path = str(files / "net.toml")
    r = config("plan", path)
    assert (r.code, r.err) == (2, "")
    assert r.out.splitlines() == [line.format(D=files) for line in PLAN]
    r = config("apply", path)
    assert r.code == 0, r.err
    assert r.out.splitlines()[-1] == "apply: 7 steps done"
    assert links(netns)["eth2"] == (1400, ["198.51.100.11/24", "198.51.100.12/24"])
    with double.sim() as sim:
        snap = sim.snapshot()
    assert sorted(snap["ports"]) == ["eth0.42", "eth1"]
    assert snap["pools"]["eth0"]["skb_total"] == 4096 and "eth1" in snap["filters"]
    assert snap["vlans"] == [42]
    assert [(e["dev"], e["ip"], e["state"]) for e in snap["arp"]] == [("eth0.42", "10.10.10.10", "P")]
    # What the kernel cannot be asked (which filter, which ARP entries) the ledger knows: nothing to do.
    r = config("plan", path)
    assert (r.code, r.out) == (0, "no changes: the board matches the files\n"), r.out
    r = config("export")
    assert r.code == 0 and f'filter = {{ object = "{files}/netrx.o", sha256 = ' in r.out


def test_a_vlan_device_this_kernel_cannot_make_is_a_clear_error_and_rolled_back(config, double, netns, files):  # noqa: F811
    bad = files / "vlan.toml"
    bad.write_text(SETUP + '\n[interface."eth0.43"]\nparent = "eth0"\nvlan_id = 43\n')
    before = links(netns)
    with double.sim() as sim:
        core = sim.snapshot()
    r = config("apply", str(bad))
    assert r.code == 1
    out = r.out.splitlines()
    assert out[:3] == [
        "~ mtu eth2: 1500 → 1400: done",
        "+ address 198.51.100.12/24 on eth2: done",
        "+ create vlan eth0.43 (eth0, id 43): failed: cannot create VLAN device eth0.43 on eth0: "
        "Operation not supported",
    ]
    assert "rollback: the board is back where it started" in out
    assert r.err.splitlines()[-1].startswith("evl-net-config: apply failed: + create vlan eth0.43")
    assert links(netns) == before
    with double.sim() as sim:
        after = sim.snapshot()
    assert (after["ports"], after["pools"], after["vlans"], after["arp"]) == (
        core["ports"],
        core["pools"],
        core["vlans"],
        core["arp"],
    )


def test_the_host_board_takes_the_same_file(config, netns, files):  # noqa: F811
    """``--board host:NETNS``: links and addresses live through rtnetlink, the EVL core simulated."""
    board = ["--transport=sim", f"--board=host:{netns}"]
    no_peer = SETUP[: SETUP.index("[[peer]]")]  # a solicitation there would send ARP requests for real
    (files / "host.toml").write_text(no_peer)
    path = str(files / "host.toml")
    r = config("apply", path, board=board)
    assert r.code == 0, r.err
    assert links(netns)["eth2"] == (1400, ["198.51.100.11/24", "198.51.100.12/24"])
    r = config("plan", path, board=board)
    assert (r.code, r.out) == (0, "no changes: the board matches the files\n")
    bad = files / "vlan.toml"
    bad.write_text(
        no_peer.replace("mtu = 1400", "mtu = 1300") + '[interface."eth0.43"]\nparent = "eth0"\nvlan_id = 43\n'
    )
    r = config("apply", str(bad), board=board)
    assert r.code == 1 and "Operation not supported" in r.out
    assert "rollback: the board is back where it started" in r.out.splitlines()
    assert links(netns)["eth2"][0] == 1400
