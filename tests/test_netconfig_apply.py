"""``evl net-config plan / apply / export`` on the simulator: steps, idempotence, rollback, round trips.

The oracle is the simulator's own state (``evl sim show --json``, the state
the kernel semantics keep), read independently of the planner: what a port,
pool, filter, VLAN map and ARP cache are after an apply is checked there, not
in ``export`` (which is the planner's own view of the board).  Failures are
injected at the transport boundary (a kernel refusal of the k-th request) and
by the world changing between plan and apply (an eBPF object deleted, a VLAN
device deleted, a device taken down).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import bpf_build

BOARD = """\
page_size = 4096
solicit_timeout = 0.2

[[interface]]
name = "lo"
loopback = true
mtu = 65536
addresses = ["127.0.0.1/8"]

[[interface]]
name = "eth0"
driver = "fec"
bus = "2188000.ethernet"

[[interface]]
name = "eth0.42"
parent = "eth0"
vlan_id = 42
addresses = ["10.10.10.11/24"]

[[interface]]
name = "eth1"
driver = "stmmaceth"
addresses = ["192.0.2.11/24"]

[[interface]]
name = "eth1.42"
parent = "eth1"
vlan_id = 42
addresses = ["10.10.20.11/24"]

[[interface]]
name = "eth2"
oob_capable = false
addresses = ["198.51.100.11/24"]

[[route]]
dst = "default"
via = "192.0.2.1"
dev = "eth1"

[[peer]]
ip = "10.10.10.10"
mac = "50:2d:f4:1d:40:10"

[[peer]]
ip = "10.10.10.12"
mac = "50:2d:f4:1d:40:12"

[[peer]]
ip = "192.0.2.1"
mac = "50:2d:f4:1d:40:01"

[[peer]]
ip = "10.10.20.10"
mac = "50:2d:f4:1d:40:30"

[[peer]]
ip = "10.10.43.10"
mac = "50:2d:f4:1d:40:43"

[hosts]
evl-peer = "10.10.10.10"
"""

SETUP = """\
vlan_filter = "41-42,55-57"

[requires]
abi = "45"
oob_capable = ["eth0"]

[interface."eth0.43"]
parent = "eth0"
vlan_id = 43
addresses = ["10.10.43.11/24"]

[port."eth0.42"]
pool = 4096
filter = { object = "accept_vlan42.o" }

[port."eth0.43"]

[[peer]]
host = "10.10.10.10"
via = "eth0.42"
permanent = true

[[peer]]
host = "10.10.43.10"
"""

PLAN = [
    "+ create vlan eth0.43 (eth0, id 43)",
    "~ link eth0.43: down → up",
    "+ address 10.10.43.11/24 on eth0.43",
    "+ port eth0.42 (pool 4096)",
    "+ port eth0.43 (shares eth0's pool)",
    "+ eBPF filter on eth0.42: {D}/accept_vlan42.o",
    "~ vlan filter (none) → 41-42,55-57",
    "+ solicit 10.10.10.10 via eth0.42 (permanent)",
    "+ solicit 10.10.43.10",
    "plan: 7 to add, 2 to change, 0 to remove",
]


@pytest.fixture(scope="module")
def objects(tmp_path_factory) -> Path:
    """A directory holding two eBPF objects built from tests/bpf/ (clang -target bpf)."""
    if not bpf_build.have_clang():
        pytest.skip("needs clang with the bpf target")
    out = tmp_path_factory.mktemp("objects")
    for name in ("accept_vlan42", "drop_udp9"):
        bpf_build.build(name, out)
    return out


@pytest.fixture
def work(tmp_path, objects, sim_env) -> dict[str, Any]:
    """A board file, the setup beside the objects, and an environment using them."""
    board = tmp_path / "board.toml"
    board.write_text(BOARD)
    for obj in objects.iterdir():
        shutil.copy(obj, tmp_path / obj.name)
    (tmp_path / "net.toml").write_text(SETUP)
    env = dict(sim_env, EVL_SIM_BOARD=str(board), EVL_NET_AGENT_DIR=str(tmp_path / "agent"))
    return {"dir": tmp_path, "board": board, "env": env, "file": str(tmp_path / "net.toml")}


def write(work: dict[str, Any], name: str, text: str) -> str:
    path = work["dir"] / name
    path.write_text(text)
    return str(path)


def state(work: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    """The simulator's state (the oracle), as ``evl sim show --json`` prints it, with its lists in one order."""
    import io

    from evl_core.cli import main

    out, err = io.StringIO(), io.StringIO()
    assert main(["sim", "--json", "show"], stdout=out, stderr=err, env=env or work["env"]) == 0, err.getvalue()
    raw = json.loads(out.getvalue())
    return {
        "ports": sorted(raw["ports"]),
        "pools": {k: (v["skb_total"], v["skb_size"]) for k, v in raw["pools"].items()},
        "filters": {k: (v["object"], v["sha256"], v["insns"]) for k, v in raw["filters"].items()},
        "vlans": raw["vlans"],
        "arp": sorted((e["dev"], e["ip"], e["mac"], e["state"]) for e in raw["arp"]),
        "links": {
            i["name"]: (i.get("parent"), i.get("vlan_id"), i["mtu"], i["up"], sorted(i["addresses"]))
            for i in raw["board"]["interfaces"].values()
        },
    }


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- plan, apply, plan again ---------------------------------------------------------------------


def test_plan_apply_then_nothing_to_do(evl, work):
    d = work["dir"]
    r = evl("net-config", "plan", work["file"], env=work["env"])
    assert (r.code, r.err) == (2, "")
    assert r.out.splitlines() == [line.format(D=d) for line in PLAN]

    r = evl("net-config", "apply", work["file"], env=work["env"])
    assert r.code == 0, r.err
    assert r.out.splitlines() == [f"{line.format(D=d)}: done" for line in PLAN[:-1]] + ["apply: 9 steps done"]

    s = state(work)
    assert s["ports"] == ["eth0.42", "eth0.43"]
    assert s["pools"] == {"eth0": (4096, 4096)}
    assert s["filters"]["eth0"][:2] == (str(d / "accept_vlan42.o"), sha(d / "accept_vlan42.o"))
    assert s["vlans"] == [41, 42, 55, 56, 57]
    assert s["arp"] == [
        ("eth0.42", "10.10.10.10", "50:2d:f4:1d:40:10", "P"),
        ("eth0.43", "10.10.43.10", "50:2d:f4:1d:40:43", "R"),
    ]
    assert s["links"]["eth0.43"] == ("eth0", 43, 1500, True, ["10.10.43.11/24"])

    r = evl("net-config", "plan", work["file"], env=work["env"])
    assert (r.code, r.out, r.err) == (0, "no changes: the board matches the files\n", "")
    r = evl("net-config", "apply", work["file"], env=work["env"])
    assert (r.code, r.out) == (0, "apply: nothing to do: the board matches the files\n")
    assert state(work) == s


def test_plan_json_is_the_same_steps_as_data(evl, work):
    r = evl("net-config", "--json", "plan", work["file"], env=work["env"])
    assert r.code == 2
    data = json.loads(r.out)
    assert data["status"] == "changes" and data["problems"] == [] and data["error"] is None
    assert [s["text"] for s in data["steps"]] == [line.format(D=work["dir"]) for line in PLAN[:-1]]
    assert [s["op"] for s in data["steps"]][:4] == ["create-vlan", "set-up", "add-address", "enable-port"]
    vlan = next(s for s in data["steps"] if s["op"] == "set-vlans")
    assert (vlan["before"], vlan["after"]) == ("(none)", "41-42,55-57")


def test_changes_that_take_ports_down_and_up(evl, work):
    """A pool resize takes every port on the real device down and up: filter and ARP entries come back too."""
    d = work["dir"]
    assert evl("net-config", "apply", work["file"], env=work["env"]).code == 0
    bigger = write(work, "bigger.toml", SETUP.replace("pool = 4096", "pool = 8192\nbuffer = 2048"))
    r = evl("net-config", "plan", bigger, env=work["env"])
    assert r.code == 2
    assert r.out.splitlines() == [
        "~ port eth0.42: pool 4096 → 8192, buffer 4096 → 2048 (ports eth0.42, eth0.43 go down and up: "
        "in-flight oob traffic on them is dropped)",
        f"+ eBPF filter on eth0.42: {d}/accept_vlan42.o",
        "+ solicit 10.10.10.10 via eth0.42 (permanent)",
        "+ solicit 10.10.43.10 via eth0.43",
        "plan: 3 to add, 1 to change, 0 to remove",
    ]
    assert evl("net-config", "apply", bigger, env=work["env"]).code == 0
    s = state(work)
    assert s["pools"] == {"eth0": (8192, 2048)}
    assert s["filters"]["eth0"][1] == sha(d / "accept_vlan42.o")
    assert [e[:2] + e[3:] for e in s["arp"]] == [("eth0.42", "10.10.10.10", "P"), ("eth0.43", "10.10.43.10", "R")]
    assert evl("net-config", "plan", bigger, env=work["env"]).code == 0


def test_what_the_file_leaves_out_is_removed(evl, work):
    """Ports not declared are disabled, a filter no port names is removed, extra ARP entries flushed."""
    d = work["dir"]
    first = write(
        work,
        "first.toml",
        '[port.eth1]\nfilter = { object = "drop_udp9.o" }\n[port."eth0.42"]\n'
        '[[peer]]\nhost = "10.10.10.12"\nvia = "eth0.42"\n[[peer]]\nhost = "10.10.10.10"\nvia = "eth0.42"\n',
    )
    assert evl("net-config", "apply", first, env=work["env"]).code == 0
    second = write(work, "second.toml", '[port.eth1]\n[port."eth0.42"]\n[[peer]]\nhost = "evl-peer"\n')
    r = evl("net-config", "plan", second, env=work["env"])
    assert r.out.splitlines() == [
        "- eBPF filter on eth1",
        "- ARP entries 10.10.10.12 on eth0.42 "
        "(the kernel flushes the whole front cache: every peer is solicited again)",
        "+ solicit evl-peer via eth0.42",
        "plan: 1 to add, 0 to change, 2 to remove",
    ]
    assert evl("net-config", "apply", second, env=work["env"]).code == 0
    s = state(work)
    assert s["filters"] == {} and s["arp"] == [("eth0.42", "10.10.10.10", "50:2d:f4:1d:40:10", "R")]
    third = write(work, "third.toml", "")
    r = evl("net-config", "plan", third, env=work["env"])
    assert r.out.splitlines()[:2] == ["- port eth0.42", "- port eth1"]
    assert evl("net-config", "apply", third, env=work["env"]).code == 0
    assert state(work)["ports"] == [] and state(work)["arp"] == []
    assert (d / "drop_udp9.o").exists()


PROBLEMS = {
    # name: (file, exact stderr lines)
    "no device": (
        "[port.eth9]\n[interface.eth8]\nmtu = 1400\n",
        [
            "interface.eth8: no device eth8 on the board (only VLAN devices, with parent and vlan_id, are created)",
            "port.eth9: no device eth9 on the board",
        ],
    ),
    "vlan mismatch": (
        '[interface."eth0.42"]\nparent = "eth0"\nvlan_id = 43\n',
        [
            'interface."eth0.42": eth0.42 is VLAN 42 on eth0 on the board, not VLAN 43 on eth0',
        ],
    ),
    "parent": (
        '[interface."eth9.5"]\nparent = "eth9"\nvlan_id = 5\n[interface."x.5"]\nparent = "eth0"\nvlan_id = 42\n',
        [
            'interface."eth9.5".parent: no device eth9 on the board',
            'interface."x.5".vlan_id: VLAN 42 on eth0 is eth0.42 on the board',
        ],
    ),
    "shared pool": (
        '[port."eth0.42"]\npool = 4096\n[port.eth0]\npool = 1024\n',
        [
            "port.eth0.pool: eth0.42 and eth0 share eth0's pool: pool 4096 and 1024",
        ],
    ),
    "limits": (
        "[port.eth0]\npool = 40000\n[port.eth1]\nbuffer = 16385\n",
        [
            "port.eth0.pool: 40000 is above the kernel's limit of 32768",
            "port.eth1.buffer: 16385 is above the board's limit of 16384 (4 x pages)",
        ],
    ),
    "down": (
        '[interface.eth1]\nup = false\n[port."eth1.42"]\n',
        [
            'port."eth1.42": eth1 is down: a port needs its device up',
        ],
    ),
    "mtu above parent": (
        '[interface."eth0.42"]\nmtu = 9000\n',
        [
            'interface."eth0.42".mtu: 9000 is above the MTU of eth0 (1500)',
        ],
    ),
    "requires": (
        '[requires]\nabi = "46-50"\noob_capable = ["eth2", "eth7"]\n',
        [
            "requires.abi: the board's EVL core speaks ABI 45, not 46-50",
            "requires.oob_capable[0]: the driver of eth2 is not oob-capable",
            "requires.oob_capable[1]: no device eth7 on the board",
        ],
    ),
    "peers": (
        '[port.eth1]\n[[peer]]\nhost = "nosuch"\n[[peer]]\nhost = "10.10.10.10"\n',
        [
            "peer[0].host: cannot route nosuch (unknown host 'nosuch' on this board): No such process",
            "peer[1]: 10.10.10.10 goes out through eth0.42, which is no out-of-band port here",
        ],
    ),
    "filters": (
        '[port."eth0.42"]\nfilter = { object = "accept_vlan42.o" }\n[port.eth0]\nfilter = { object = "drop_udp9.o" }\n',
        [
            "port.eth0.filter: eth0.42 and eth0 share eth0's eBPF filter: {D}/accept_vlan42.o and {D}/drop_udp9.o",
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_what_the_board_cannot_take_is_an_error_naming_the_key(evl, work, name):
    text, lines = PROBLEMS[name]
    path = write(work, "bad.toml", text)
    before = state(work)
    for command in ("plan", "apply"):
        r = evl("net-config", command, path, env=work["env"])
        assert r.code == 1 and r.out == ""
        assert r.err.splitlines() == [f"evl-net-config: {line.format(D=work['dir'])}" for line in lines]
    assert state(work) == before


def test_check_and_diff(evl, work):
    r = evl("net-config", "apply", "--check", "--diff", work["file"], env=work["env"])
    assert r.code == 2
    assert r.out.startswith("--- before\n+++ after\n")
    assert '+[interface."eth0.43"]\n' in r.out and '-vlan_filter = ""\n' in r.out
    assert '+vlan_filter = "41-42,55-57"\n' in r.out and "+permanent = true\n" in r.out
    assert r.out.endswith("\n".join(line.format(D=work["dir"]) for line in PLAN) + "\n")
    assert state(work)["ports"] == []  # --check changes nothing


def test_export_apply_export_on_a_fresh_board_is_identical(evl, work, tmp_path):
    assert evl("net-config", "apply", work["file"], env=work["env"]).code == 0
    first = evl("net-config", "export", env=work["env"])
    assert first.code == 0 and first.out.startswith("# evl net-config export")
    exported = write(work, "exported.toml", first.out)
    assert evl("net-config", "validate", exported, env=work["env"]).code == 0
    fresh = dict(work["env"], EVL_SIM_STATE=str(tmp_path / "fresh-state.json"))
    assert state(work, fresh)["ports"] == []
    assert evl("net-config", "apply", exported, env=fresh).code == 0
    again = evl("net-config", "export", env=fresh)
    assert again.out == first.out
    oracle, copy = state(work), state(work, fresh)
    assert {k: v for k, v in copy.items() if k != "arp"} == {k: v for k, v in oracle.items() if k != "arp"}
    assert [e[:3] for e in copy["arp"]] == [e[:3] for e in oracle["arp"]]  # permanence follows the file


def test_export_output_is_written_whole_or_not_at_all(evl, work, tmp_path):
    target = tmp_path / "out.toml"
    target.write_text("what the user had\n")
    assert evl("net-config", "export", "--output", str(target), env=work["env"]).code == 0
    assert target.read_text().startswith("# evl net-config export") and oct(target.stat().st_mode)[-3:] == "644"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    r = evl("net-config", "export", "--output", str(fifo), env=work["env"])
    assert (r.code, r.err) == (1, f"evl-net-config: cannot write {fifo}: not a regular file\n")
    r = evl("net-config", "export", "--output", str(tmp_path / "no" / "dir.toml"), env=work["env"])
    assert r.code == 1 and r.err.endswith("No such file or directory\n")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".evl-net-config")) == []


# -- failures and rollback ---------------------------------------------------------------------------


class Refusing:
    """The simulator, refusing its ``at``-th mutating request as a kernel would (EPERM)."""

    def __init__(self, transport: Any, at: int) -> None:
        from evl_net.transports.contract import BY_METHOD

        self._t, self._at, self._n, self._mutating = transport, at, 0, {m for m, p in BY_METHOD.items() if p.mutates}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._t, name)
        if name not in self._mutating:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            from evl_net.errors import KernelError

            self._n += 1
            if self._n == self._at:
                raise KernelError(1, "refused by the test's kernel")
            return attr(*args, **kwargs)

        return call


def _board(work: dict[str, Any], env: dict[str, str] | None = None):
    from evl_net import api

    return api.open_board(transport="sim", env=env or work["env"])


def _plan(board, paths: list[str]):
    from evl_net.netconfig import live, plan, read

    setup, problems = read(paths)
    assert problems == []
    start = live.read(board, setup)
    return start, plan.make(setup, start)


def _mutations(work: dict[str, Any], path: str) -> int:
    """How many mutating requests applying ``path`` makes from the current state (on a throw-away copy)."""
    from evl_net.netconfig import apply

    copy = dict(work["env"], EVL_SIM_STATE=str(work["dir"] / "count-state.json"))
    if os.path.exists(work["env"]["EVL_SIM_STATE"]):
        shutil.copy(work["env"]["EVL_SIM_STATE"], copy["EVL_SIM_STATE"])
    with _board(work, copy) as board:
        start, the_plan = _plan(board, [path])
        counter = Refusing(board.transport, at=-1)
        board.transport = counter
        assert apply.execute(board, the_plan.steps, start).ok
    return counter._n


@pytest.mark.parametrize("first", [False, True], ids=["fresh", "set-up"])
def test_a_refusal_at_every_step_rolls_the_board_back(work, first):
    from evl_net.netconfig import apply

    target = work["file"]
    if first:  # start from a set-up board, and change most of it
        with _board(work) as board:
            start, the_plan = _plan(board, [work["file"]])
            assert apply.execute(board, the_plan.steps, start).ok
        target = write(
            work,
            "changed.toml",
            SETUP.replace("pool = 4096", "pool = 8192")
            .replace('"accept_vlan42.o"', '"drop_udp9.o"')
            .replace("10.10.43.11/24", "10.10.43.12/24")
            .replace('"41-42,55-57"', '"7"')
            + '[port.eth1]\n[interface."eth1.42"]\nup = false\n',
        )
    total = _mutations(work, target)
    assert total >= 8
    for at in range(1, total + 1):
        before = state(work)
        with _board(work) as board:
            start, the_plan = _plan(board, [target])
            board.transport = Refusing(board.transport, at)
            applied = apply.execute(board, the_plan.steps, start)
        assert not applied.ok and applied.error.endswith("(refused by the test's kernel): Operation not permitted")
        assert applied.rollback_failures == []
        statuses = [r.status for r in applied.results]
        k = statuses.index("failed")
        assert statuses[:k] == ["undone"] * k and statuses[k + 1 :] == ["not run"] * (len(statuses) - k - 1)
        after = state(work)
        assert after == before, f"refusal of request {at}: the board differs after the rollback"


def test_a_refusal_without_rollback_stays_and_says_so(evl, work):
    from evl_net.netconfig import apply

    with _board(work) as board:
        start, the_plan = _plan(board, [work["file"]])
        board.transport = Refusing(board.transport, 4)
        applied = apply.execute(board, the_plan.steps, start, rollback=False)
    assert [r.status for r in applied.results][:5] == ["done", "done", "done", "failed", "not run"]
    assert not applied.rolled_back
    assert "eth0.43" in state(work)["links"]


def test_the_world_changing_between_plan_and_apply(evl, work):
    """A missing eBPF object, an interface that vanished, a device gone down: each fails its step, rolled back."""
    from evl_net.netconfig import apply

    d = work["dir"]
    cases = []

    def object_gone(board):
        (d / "accept_vlan42.o").rename(d / "moved.o")

    def vlan_gone(board):
        board.delete_link("eth1.42")

    def device_down(board):
        board.set_link_up("eth0", False)

    file2 = write(work, "two.toml", SETUP + '[port."eth1.42"]\n')
    for change, needle in (
        (object_gone, "cannot read eBPF object"),
        (vlan_gone, "+ port eth1.42: cannot open out-of-band port eth1.42: No such device"),
        (device_down, "Network is down"),
    ):
        before = state(work)
        with _board(work) as board:
            start, the_plan = _plan(board, [file2])
            change(board)
            applied = apply.execute(board, the_plan.steps, start)
        cases.append((change.__name__, applied.error))
        assert not applied.ok and needle in applied.error, applied.error
        assert applied.rollback_failures == []
        assert state(work) == before, change.__name__
        if (d / "moved.o").exists():
            (d / "moved.o").rename(d / "accept_vlan42.o")
    assert len(cases) == 3


def test_cli_reports_each_step_and_the_rollback(evl, work):
    bad = write(work, "bad.toml", SETUP + '[[peer]]\nhost = "nosuch"\n')  # routed only once the links are set up
    before = state(work)
    r = evl("net-config", "apply", bad, env=work["env"])
    assert r.code == 1
    d = work["dir"]
    lines = [line.format(D=d) for line in PLAN[:-1]]
    assert r.out.splitlines() == [
        *[f"{line}: done" for line in lines],
        "+ solicit nosuch: failed: invalid host/IP address 'nosuch'",
        "rollback: the board is back where it started",
        *[f"{line}: undone" for line in lines],
    ]
    assert r.err.splitlines()[-1] == "evl-net-config: apply failed: + solicit nosuch: invalid host/IP address 'nosuch'"
    assert state(work) == before
    r = evl("net-config", "--json", "apply", bad, env=work["env"])
    data = json.loads(r.out)
    assert r.code == 1 and data["rolled_back"] is True and data["rollback_failures"] == []
    assert [s["status"] for s in data["steps"]] == ["undone"] * len(lines) + ["failed"]


def test_apply_holds_the_board_lock(work, sh):
    """While another apply (or an agent session) holds the board's lock, apply waits, then gives up cleanly."""
    agent_dir = Path(work["env"]["EVL_NET_AGENT_DIR"])
    agent_dir.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(agent_dir / 'net-agent.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(30)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        before = state(work)
        r = sh("evl", "net-config", "apply", "--lock-timeout", "0.3", work["file"], env=work["env"])
        assert r.code == 1 and r.out == ""
        assert r.err == (
            f"evl-net-config: cannot lock the board ({agent_dir}/net-agent.lock): another apply or session "
            "holds it: Device or resource busy\n"
        )
        assert state(work) == before
    finally:
        holder.kill()
        holder.wait()
    assert sh("evl", "net-config", "apply", "--lock-timeout", "0.3", work["file"], env=work["env"]).code == 0


def test_usage_errors(evl, work):
    r = evl("net-config", "apply", "--lock-timeout", "soon", work["file"], env=work["env"])
    assert r.code == 2 and "invalid lock timeout 'soon': expected seconds in 0..3600" in r.err
    r = evl("net-config", "plan", env=work["env"])
    assert r.code == 2 and "usage:" in r.err


# -- the unit ------------------------------------------------------------------------------------------


def test_the_systemd_unit_verifies(tmp_path):
    """``systemd-analyze verify`` of the shipped unit, with the man pages it documents itself with installed."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    root = Path(__file__).resolve().parent.parent
    unit = root / "systemd" / "evl-net-config.service"
    for section in ("5", "8"):
        (tmp_path / f"man{section}").mkdir()
        for page in (root / "man").glob(f"*.{section}"):
            shutil.copy(page, tmp_path / f"man{section}" / page.name)
    env = dict(os.environ, MANPATH=str(tmp_path), SYSTEMD_LOG_LEVEL="notice")
    r = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, env=env, timeout=60)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    text = unit.read_text()
    for line in (
        "Type=oneshot",
        "RemainAfterExit=yes",
        "After=network-online.target",
        "ExecStart=/usr/bin/env evl net-config apply /etc/evl/net.toml",
        "ExecReload=/usr/bin/env evl net-config apply /etc/evl/net.toml",
    ):
        assert line in text.splitlines()
    broken = tmp_path / "evl-net-config.service"
    broken.write_text(text.replace("Type=oneshot", "Type=oneshoot"))
    r = subprocess.run([tool, "verify", str(broken)], capture_output=True, text=True, env=env, timeout=60)
    assert "Failed to parse service type, ignoring: oneshoot" in r.stderr  # it reads our unit, key by key
