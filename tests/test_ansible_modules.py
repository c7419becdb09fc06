"""The evl.net modules under ansible-playbook: on localhost and on four boards over real OpenSSH.

One playbook takes every module through the same sequence on every board:
check mode (reported changed, with a diff, and the board's state file
untouched), the change (changed, the board read back with ``evl net`` and
``evl net-config export`` as the proof), the same task again (ok), check mode
again (ok).  A fifth SSH board has a Python without evl-tools: it fails with
the module's message, and the others go on.
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Any

import pytest

import ansible_lab
import bpf_build

pytestmark = pytest.mark.slow

BOARDS = ["board1", "board2", "board3", "board4"]
EVERY = ["localhost", *BOARDS]

CONFIG_FILE = """\
vlan_filter = "42"

[port."eth1.42"]
pool = 512

[port."eth0.42"]

[[peer]]
host = "10.10.10.10"
via = "eth0.42"
"""

INLINE = {
    "vlan_filter": [42, 43],
    "port": {"eth0.42": {"pool": 256}},
    "peer": [{"host": "10.10.10.10", "via": "eth0.42", "permanent": True}],
}


def cases(obj: str) -> list[tuple[str, str, dict[str, Any], list[str]]]:
    """(label, module, arguments, the command that reads the board back afterwards)."""
    query = ["net", "-Q", "-i", "eth0.42", "--json"]
    export = ["net-config", "export"]
    return [
        ("port enable", "evl.net.port", {"name": "eth0.42", "pool_size": 4096}, query),
        ("port resize", "evl.net.port", {"name": "eth0.42", "pool_size": 1024}, query),
        ("vlans", "evl.net.vlan_filter", {"vlans": "41,42,55-57"}, ["net", "-n"]),
        ("vlans append", "evl.net.vlan_filter", {"vlans": [100], "append": True}, ["net", "-n"]),
        ("filter", "evl.net.rx_filter", {"name": "eth0.42", "src": obj, "dest": "{{ evl_dir }}/f/accept.o"}, export),
        ("filter absent", "evl.net.rx_filter", {"name": "eth0.42", "state": "absent"}, export),
        ("peer", "evl.net.peer", {"address": "10.10.10.10", "interface": "eth0.42", "permanent": True}, export),
        ("peer absent", "evl.net.peer", {"address": "10.10.10.10", "interface": "eth0.42", "state": "absent"}, export),
        ("config src", "evl.net.config", {"src": "net.toml"}, export),
        (
            "port disable",
            "evl.net.port",
            {"name": "eth1.42", "state": "disabled"},
            ["net", "-Q", "--all-interfaces", "--json"],
        ),
        ("config inline", "evl.net.config", {"config": INLINE}, export),
    ]


def the_play(obj: str) -> list[dict[str, Any]]:
    evl = "{{ ansible_python_interpreter | dirname }}/evl"
    stat = {"ansible.builtin.stat": {"path": "{{ evl_dir }}/sim.json", "checksum_algorithm": "sha256"}}
    tasks: list[dict[str, Any]] = [{"name": "info first", "evl.net.info": {}}]
    for label, module, args, reader in cases(obj):
        tasks += [
            {"name": f"{label}: state before", **stat},
            {"name": f"{label}: check", module: args, "check_mode": True, "diff": True},
            {"name": f"{label}: state after check", **stat},
            {"name": f"{label}: apply", module: args, "diff": True},
            {"name": f"{label}: read back", "ansible.builtin.command": {"argv": [evl, *reader]}, "changed_when": False},
            {"name": f"{label}: again", module: args},
            {"name": f"{label}: check again", module: args, "check_mode": True},
        ]
    tasks += [
        {"name": "info", "evl.net.info": {}},
        {"name": "info in check mode", "evl.net.info": {}, "check_mode": True},
        {
            "name": "query all",
            "ansible.builtin.command": {"argv": [evl, "net", "-Q", "--all-interfaces", "--json"]},
            "changed_when": False,
        },
    ]
    env = {
        "EVL_SIM_STATE": "{{ evl_dir }}/sim.json",
        "EVL_NET_AGENT_DIR": "{{ evl_dir }}/run",
        "EVL_RUNDIR": "{{ evl_dir }}/run",
    }
    return [
        {
            "name": "every evl.net module on every board",
            "hosts": "boards",
            "gather_facts": False,
            "environment": env,
            "module_defaults": {"group/evl.net.all": {"transport": "sim"}},
            "tasks": tasks,
        }
    ]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> ansible_lab.Results:
    tmp = tmp_path_factory.mktemp("ansible-modules")
    obj = bpf_build.user_objects(["users_accept_all"], tmp_path_factory)["users_accept_all"]
    (tmp / "files").mkdir()
    (tmp / "files" / "accept.o").write_bytes(obj)
    (tmp / "files" / "net.toml").write_text(CONFIG_FILE)
    collections = ansible_lab.install_collection(tmp / "galaxy")
    sshd = ansible_lab.start_sshd(tmp / "sshd")
    try:
        inventory = ansible_lab.board_inventory(tmp, sshd, BOARDS, broken=["broken"])
        env = ansible_lab.clean_env(tmp) | {"ANSIBLE_COLLECTIONS_PATH": str(collections)}
        results = ansible_lab.playbook(tmp, the_play("accept.o"), inventory, env)
    finally:
        ansible_lab.stop(sshd)
    results.given["accept.o"] = obj
    return results


def test_every_board_ran_every_task_and_the_broken_one_failed_alone(run: ansible_lab.Results) -> None:
    assert run.returncode == 2, run.output[-3000:]  # a host failed; the others went on
    broken = [r for r in run.records if r["host"] == "broken"]
    failed = [r for r in broken if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["task"] == "info first", broken
    msg = failed[0]["result"]["msg"]
    assert "evl-tools library (evl_net) cannot be imported" in msg and "pip install evl-tools evl-net" in msg
    assert "Traceback" not in msg
    for host in EVERY:
        mine = [r for r in run.records if r["host"] == host]
        assert all(r["status"] == "ok" for r in mine), [r for r in mine if r["status"] != "ok"][:1]
        assert run.hosts_of("query all") == set(EVERY)
    assert "broken" in run.output and "failed=1" in run.output


@pytest.mark.parametrize("host", EVERY)
@pytest.mark.parametrize("label", [c[0] for c in cases("x")])
def test_check_changes_nothing_apply_changes_again_is_ok(run: ansible_lab.Results, host: str, label: str) -> None:
    check = run.result(f"{label}: check", host)
    assert check["changed"] is True, check
    assert check["diff"]["before"] != check["diff"]["after"], check["diff"]
    before, after = run.result(f"{label}: state before", host), run.result(f"{label}: state after check", host)
    unchanged = ("exists", "checksum", "mtime", "size", "inode")
    assert [before["stat"].get(k) for k in unchanged] == [after["stat"].get(k) for k in unchanged], "check mode wrote"
    applied = run.result(f"{label}: apply", host)
    assert applied["changed"] is True, applied
    assert applied["diff"] == check["diff"], "check mode did not predict what the change did"
    assert run.result(f"{label}: again", host)["changed"] is False
    assert run.result(f"{label}: check again", host)["changed"] is False


def _read(run: ansible_lab.Results, label: str, host: str) -> str:
    return str(run.result(f"{label}: read back", host)["stdout"])


@pytest.mark.parametrize("host", EVERY)
def test_what_each_change_left_on_the_board(run: ansible_lab.Results, host: str) -> None:
    port = json.loads(_read(run, "port enable", host))
    assert (port["skb_total"], port["oob_port"]) == (4096, True)
    assert json.loads(_read(run, "port resize", host))["skb_total"] == 1024
    resize = run.result("port resize: apply", host)
    assert any("go down and up" in line or "goes down and up" in line for line in resize["plan"]), resize["plan"]
    assert _read(run, "vlans", host).strip() == "41-42,55-57"
    assert _read(run, "vlans append", host).strip() == "41-42,55-57,100"

    import hashlib

    exported = _read(run, "filter", host)
    sha = hashlib.sha256(run.given["accept.o"]).hexdigest()
    kept = pathlib.Path(run.result("filter: apply", host)["object"])
    assert kept.read_bytes() == run.given["accept.o"]
    assert f'filter = {{ object = "{kept}", sha256 = "{sha}" }}' in exported
    assert "\nfilter = " not in _read(run, "filter absent", host)

    peer = _read(run, "peer", host)
    assert 'host = "10.10.10.10"\nvia = "eth0.42"\npermanent = true' in peer
    assert "[[peer]]" not in _read(run, "peer absent", host)

    config = _read(run, "config src", host)
    assert 'vlan_filter = "42"' in config and '[port."eth1.42"]\npool = 512' in config
    assert 'host = "10.10.10.10"' in config
    inline = _read(run, "config inline", host)
    assert 'vlan_filter = "42-43"' in inline and '[port."eth0.42"]\npool = 256' in inline
    assert '[port."eth1.42"]' not in inline and "permanent = true" in inline
    assert run.result("config inline: apply", host)["plan"], "the plan is returned"


@pytest.mark.parametrize("host", EVERY)
def test_info_facts_agree_with_evl_net_query(run: ansible_lab.Results, host: str) -> None:
    rows = {r["ifname"]: r for r in json.loads(run.result("query all", host)["stdout"])["interfaces"]}
    for task in ("info", "info in check mode"):
        facts = run.result(task, host)["ansible_facts"]["evl_net"]
        ports = {n for n, r in rows.items() if r["oob_port"]}
        assert set(facts["ports"]) == ports == {"eth0.42"}
        port = facts["ports"]["eth0.42"]
        assert (port["pool_size"], port["buffer_size"], port["real"]) == (256, rows["eth0.42"]["skb_size"], "eth0")
        for key in ("rx_packets", "tx_packets", "skb_free", "rx_nomem", "tx_nomem", "csum_errors"):
            assert port[key] == rows["eth0.42"][key]
        assert [i["ifname"] for i in facts["interfaces"]] == list(rows)
        assert facts["vlan_filter"] == "42-43" and facts["vlan_ids"] == [42, 43]
        assert [(e["dev"], e["ip"], e["permanent"]) for e in facts["arp_cache"]] == [("eth0.42", "10.10.10.10", True)]
        assert facts["filters"] == {"eth0": {"installed": False, "object": None, "sha256": None, "program": None}}
        assert facts["transport"] == "sim" and facts["abi"]["base"] <= facts["abi"]["current"]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
