"""Property: from any setup of a simulated board, one apply of any setup reaches it exactly, and a second plan is empty.

Hypothesis draws two setups of the board of test_netconfig_apply (interfaces,
VLAN devices, MTUs, link states, addresses, ports and their pool sizes, eBPF
filters, the VLAN filter, peers); the board is brought to the first (a random
starting state), then the second is applied.  What the board is afterwards is
read from the simulator's state (the oracle), and compared with what the
second file says, key by key, as the file format defines it; then a plan must
have no step.  Interrupting an apply anywhere is test_netconfig_apply's job.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bpf_build
from test_netconfig_apply import BOARD, state

OBJECTS = ("accept_vlan42", "drop_udp9")
PEERS = {  # host: the port it is solicited through
    "10.10.10.10": "eth0.42",
    "10.10.10.12": "eth0.42",
    "10.10.20.10": "eth1.42",
    "192.0.2.1": "eth1",
    "10.10.43.10": "eth0.43",
}
REALS = {"eth0": ["eth0", "eth0.42", "eth0.43"], "eth1": ["eth1", "eth1.42"], "eth2": ["eth2"], "lo": ["lo"]}


@st.composite
def setups(draw: Any) -> dict[str, Any]:
    """A setup the board can take, as data: what the file says (and nothing it does not)."""
    interfaces: dict[str, dict[str, Any]] = {}
    if draw(st.booleans()):
        spec: dict[str, Any] = {"parent": "eth0", "vlan_id": 43}
        if draw(st.booleans()):
            spec["addresses"] = draw(st.lists(st.sampled_from(["10.10.43.11/24", "10.10.44.11/24"]), unique=True))
        interfaces["eth0.43"] = spec
    for name in ("eth0", "eth1"):
        mtu = draw(st.sampled_from([None, 1400, 1500, 9000]))
        if mtu is not None:
            interfaces.setdefault(name, {})["mtu"] = mtu
    if draw(st.booleans()):
        interfaces.setdefault("eth1", {})["addresses"] = draw(
            st.lists(st.sampled_from(["192.0.2.11/24", "192.0.2.12/24"]), min_size=1, unique=True)
        )
    for name in ("eth0.42", "eth1.42"):
        choice = draw(st.sampled_from(["-", "up", "down", "mtu"]))
        if choice in ("up", "down"):
            interfaces.setdefault(name, {})["up"] = choice == "up"
        elif choice == "mtu":
            interfaces.setdefault(name, {})["mtu"] = 1300
    available = [
        n
        for names in REALS.values()
        for n in names
        if (n != "eth0.43" or "eth0.43" in interfaces) and interfaces.get(n, {}).get("up", True)
    ]
    ports = draw(st.lists(st.sampled_from(available), unique=True))
    for name in ports:  # a VLAN port's device is declared: left alone, it could be down from an earlier setup
        if name in ("eth0.42", "eth1.42"):
            interfaces.setdefault(name, {})
    port_specs: dict[str, dict[str, Any]] = {name: {} for name in ports}
    for names in REALS.values():
        mine = [n for n in ports if n in names]
        if not mine:
            continue
        first = port_specs[mine[0]]
        for key, values in (("pool", [0, 1024, 4096]), ("buffer", [0, 2048, 8192])):
            value = draw(st.sampled_from(values))
            if value:
                first[key] = value
        obj = draw(st.sampled_from([None, *OBJECTS]))
        if obj is not None:
            port_specs[draw(st.sampled_from(mine))]["filter"] = obj
    peers = [
        {"host": host, "via": via, "permanent": draw(st.booleans())}
        for host, via in PEERS.items()
        if via in ports and draw(st.booleans())
    ]
    vlans = draw(st.lists(st.integers(2, 4094), max_size=6, unique=True))
    return {"interfaces": interfaces, "ports": port_specs, "peers": peers, "vlans": sorted(vlans)}


def toml(setup: dict[str, Any]) -> str:
    from evl_net.netconfig.export import _value

    out = [f"vlan_filter = {_value(setup['vlans'])}\n"]
    for name, spec in setup["interfaces"].items():
        out.append(f"[interface.{_value(name)}]\n" + "".join(f"{k} = {_value(v)}\n" for k, v in spec.items()))
    for name, spec in setup["ports"].items():
        lines = [f"{k} = {_value(v)}\n" for k, v in spec.items() if k != "filter"]
        if "filter" in spec:
            lines.append(f'filter = {{ object = "{spec["filter"]}.o" }}\n')
        out.append(f"[port.{_value(name)}]\n" + "".join(lines))
    for peer in setup["peers"]:
        out.append("[[peer]]\n" + "".join(f"{k} = {_value(v)}\n" for k, v in peer.items()))
    return "".join(out)


class Objects(dict):
    """The eBPF objects by name (shown by name only in a falsifying example)."""

    def __repr__(self) -> str:
        return f"<objects {', '.join(self)}>"


@pytest.fixture(scope="module")
def objects(tmp_path_factory) -> dict[str, bytes]:
    return Objects(bpf_build.objects(list(OBJECTS), tmp_path_factory))


def _apply(env: dict[str, str], path: Path) -> tuple[list[str], Any]:
    from evl_net import api
    from evl_net.netconfig import apply, live, plan, read

    setup, problems = read([str(path)])
    assert problems == []
    with api.open_board(transport="sim", env=env) as board:
        start = live.read(board, setup)
        the_plan = plan.make(setup, start)
        assert the_plan.problems == []
        applied = apply.execute(board, the_plan.steps, start)
        assert applied.ok, applied.error
        again = plan.make(setup, live.read(board, setup))
    return [s.line() for s in again.steps], again


def _effective(size: int, mtu: int) -> int:
    return size if size >= mtu else mtu


def check(setup: dict[str, Any], got: dict[str, Any], objects: dict[str, bytes], base: dict[str, Any]) -> None:
    """The board (``got``, the simulator's state) is what ``setup`` says, key by key."""
    links = got["links"]
    for name, spec in setup["interfaces"].items():
        parent, vid, mtu, up, addresses = links[name]
        if "parent" in spec:
            assert (parent, vid) == (spec["parent"], spec["vlan_id"])
        if "mtu" in spec:
            assert mtu == spec["mtu"], name
        assert up == spec.get("up", True), name
        if "addresses" in spec:
            assert addresses == sorted(spec["addresses"]), name
    for name, (parent, vid, mtu, up, addresses) in base["links"].items():  # what the file does not declare stays
        if name in setup["interfaces"]:
            continue
        assert links[name][:2] == (parent, vid) and links[name][3:] == (up, addresses), name
        parent_mtu = setup["interfaces"].get(parent or "", {}).get("mtu")
        assert links[name][2] == (min(mtu, parent_mtu) if parent_mtu else mtu), name  # a VLAN follows its parent down
    assert got["ports"] == sorted(setup["ports"])
    for real, names in REALS.items():
        mine = [n for n in setup["ports"] if n in names]
        if not mine:
            assert real not in got["pools"] and real not in got["filters"]
            continue
        total, size = got["pools"][real]
        pool = next((setup["ports"][n]["pool"] for n in mine if "pool" in setup["ports"][n]), 0)
        buffer = next((setup["ports"][n]["buffer"] for n in mine if "buffer" in setup["ports"][n]), 0)
        if pool:
            assert total == pool
        if buffer:
            assert size == (buffer if real == "lo" else _effective(buffer, links[real][2]))
        obj = next((setup["ports"][n]["filter"] for n in mine if "filter" in setup["ports"][n]), None)
        if obj is None:
            assert real not in got["filters"]
        else:
            assert got["filters"][real][1] == hashlib.sha256(objects[obj]).hexdigest()
    assert got["vlans"] == setup["vlans"]
    assert sorted((dev, ip, st == "P") for dev, ip, _mac, st in got["arp"]) == sorted(
        (p["via"], p["host"], p["permanent"]) for p in setup["peers"]
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=setups(), second=setups())
def test_one_apply_reaches_any_setup_from_any_setup(objects, sim_env, first, second):
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "board.toml").write_text(BOARD)
        for name, data in objects.items():
            (d / f"{name}.o").write_bytes(data)
        env = dict(sim_env, EVL_SIM_STATE=str(d / "state.json"), EVL_SIM_BOARD=str(d / "board.toml"))
        work = {"env": env}
        (d / "first.toml").write_text(toml(first))
        (d / "second.toml").write_text(toml(second))
        steps, _ = _apply(env, d / "first.toml")
        assert steps == []
        check(first, state(work), objects, state(work))
        base = state(work)
        steps, _ = _apply(env, d / "second.toml")
        assert steps == [], f"a second plan is not empty:\n{toml(second)}"
        check(second, state(work), objects, base)
