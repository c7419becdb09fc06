"""Bad input to the evl.net modules: one clear message each, no traceback, and the board left as it was.

Every case is a task of one playbook on ``localhost`` (``ignore_errors``), run
on a board with a port, a filter and a VLAN filter already set; after the
cases, the board's state file must hold exactly what it held before them and
the filter object kept on the board must be the one installed.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

import ansible_lab
import bpf_build

pytestmark = pytest.mark.slow

SETUP = [
    ("set up: port", "evl.net.port", {"name": "eth0.42", "pool_size": 512}),
    ("set up: filter", "evl.net.rx_filter", {"name": "eth0.42", "src": "accept.o", "dest": "{{ evl_dir }}/f/kept.o"}),
    ("set up: vlans", "evl.net.vlan_filter", {"vlans": [42]}),
]

#: (module, arguments, what the message says)
CASES: list[tuple[str, dict[str, Any], str]] = [
    ("evl.net.port", {"name": "eth0.42", "pool_size": 99999}, "pool_size must be in 1..32768, not 99999"),
    ("evl.net.port", {"name": "eth0.42", "pool_size": "many"}, "pool_size"),
    ("evl.net.port", {"name": "eth9"}, "no device eth9 on the board"),
    ("evl.net.port", {"name": "eth0.42\nx"}, "no device eth0.42"),
    ("evl.net.port", {"name": "eth0.42", "buffer_size": 1 << 20}, "above the board's limit"),
    ("evl.net.port", {"name": "eth0.42", "state": "disabled", "pool_size": 4}, "for an enabled port"),
    ("evl.net.port", {"name": "eth0.42", "pool_size": True}, "pool_size must be in 1..32768, not True"),
    ("evl.net.port", {"name": "eth0.42", "transport": "remote"}, "transport"),
    ("evl.net.port", {"name": "eth0.42", "lock_timeout": -1}, "lock_timeout must be seconds in 0..3600"),
    ("evl.net.port", {"name": "eth0.42", "transport": "ioctl"}, "no EVL core in this kernel"),
    ("evl.net.vlan_filter", {"vlans": "abc"}, "invalid VLAN list 'abc'"),
    ("evl.net.vlan_filter", {"vlans": [5000]}, "invalid VLAN id 5000: expected an integer in 2..4094"),
    ("evl.net.vlan_filter", {"vlans": {"a": 1}}, "vlans must be a list of VLAN ids or a VLAN list, not dict"),
    ("evl.net.vlan_filter", {"vlans": True}, "vlans must be a list of VLAN ids or a VLAN list"),
    ("evl.net.vlan_filter", {"vlans": [1]}, "invalid VLAN id 1: expected an integer in 2..4094"),
    ("evl.net.vlan_filter", {"vlans": "42\n43"}, "invalid VLAN list"),
    ("evl.net.vlan_filter", {"vlans": ["\u0664\u0662"]}, "invalid VLAN id"),
    ("evl.net.vlan_filter", {}, "state is present but all of the following are missing: vlans"),
    ("evl.net.vlan_filter", {"state": "absent", "append": True}, "append is for state=present"),
    ("evl.net.rx_filter", {"name": "eth0.42", "src": "no-such.o"}, "no-such.o"),
    ("evl.net.rx_filter", {"name": "eth0.42", "src": "{{ evl_dir }}/fifo"}, "not a regular file"),
    ("evl.net.rx_filter", {"name": "eth0.42", "src": "{{ evl_dir }}"}, "not a regular file"),
    ("evl.net.rx_filter", {"name": "eth0.42", "src": "accept.o", "path": "/x.o"}, "not both"),
    ("evl.net.rx_filter", {"name": "eth0.42", "path": "relative.o"}, "must be absolute"),
    ("evl.net.rx_filter", {"name": "eth0.42", "path": "/nonexistent/x.o"}, "cannot read eBPF object /nonexistent/x.o"),
    ("evl.net.rx_filter", {"name": "eth0.42", "path": "{{ evl_dir }}/fifo"}, "not a regular file"),
    ("evl.net.rx_filter", {"name": "eth0.42", "path": "{{ evl_dir }}"}, "not a regular file"),
    (
        "evl.net.rx_filter",
        {"name": "eth0.42", "src": "accept.o", "dest": "{{ evl_dir }}/f/link.o"},
        "cannot keep the eBPF object at",
    ),
    ("evl.net.rx_filter", {"name": "eth0.42", "src": "accept.o", "sha256": "xyz"}, "has sha256"),
    ("evl.net.rx_filter", {"name": "eth0.42", "path": "/etc/hostname", "sha256": "ab"}, "sha256 must be 64 hex digits"),
    (
        "evl.net.rx_filter",
        {"name": "eth0.42", "src": "garbage.o", "dest": "{{ evl_dir }}/f/kept.o"},
        "cannot set BPF filter on eth0.42",
    ),
    (
        "evl.net.rx_filter",
        {"name": "eth1", "src": "accept.o", "dest": "{{ evl_dir }}/f/b.o"},
        "not an out-of-band port",
    ),
    ("evl.net.rx_filter", {"name": "eth0.42", "state": "absent", "path": "/x.o"}, "path and sha256 are for state"),
    ("evl.net.peer", {"address": ""}, "invalid host"),
    ("evl.net.peer", {"address": "10.10.10.10\n"}, "invalid host"),
    ("evl.net.peer", {"address": "10.10.10.10", "interface": "eth9"}, "eth9"),
    ("evl.net.peer", {"address": "10.10.10.10", "interface": "eth1.42"}, "no out-of-band port"),
    ("evl.net.peer", {"address": "10.10.10.10", "interface": "eth0.42\n"}, "invalid interface name"),
    ("evl.net.config", {"config": {"port": {"eth0.42": {"pool": "big"}}}}, "invalid setup: config:1: port"),
    ("evl.net.config", {"config": {"bogus": 1}}, "invalid setup"),
    ("evl.net.config", {"src": "missing.toml"}, "missing.toml"),
    ("evl.net.config", {"src": "empty"}, "no net-config file (*.toml) in"),
    ("evl.net.config", {"src": "{{ evl_dir }}/fifo"}, "not a regular file"),
    ("evl.net.config", {"src": "bad.toml"}, "not TOML"),
    ("evl.net.config", {"src": "latin1.toml"}, "not UTF-8 text"),
    ("evl.net.config", {"src": "huge.toml"}, "is larger than 16777216 bytes"),
    ("evl.net.rx_filter", {"name": "eth0.42", "src": "huge.o"}, "is larger than 67108864 bytes"),
    ("evl.net.config", {"path": ["/nonexistent.toml"]}, "cannot read net-config file /nonexistent.toml"),
    ("evl.net.config", {"path": ["{{ evl_dir }}/fifo"]}, "not a regular file"),
    ("evl.net.config", {"config": {"port": {}}, "base_dir": "rel"}, "base_dir must be an absolute path"),
    ("evl.net.config", {"_content": [{"name": "x", "text": ""}]}, "_content is the action plugin's own"),
    ("evl.net.config", {"config": {"port": {"eth9": {}}}}, "no device eth9 on the board"),
    ("evl.net.info", {"transport": "ioctl"}, "no EVL core in this kernel"),
]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> ansible_lab.Results:
    tmp = tmp_path_factory.mktemp("ansible-hostile")
    obj = bpf_build.user_objects(["users_accept_all"], tmp_path_factory)["users_accept_all"]
    files = tmp / "files"
    files.mkdir()
    (files / "accept.o").write_bytes(obj)
    (files / "garbage.o").write_bytes(b"\x7fELF" + os.urandom(300))
    (files / "empty").mkdir()
    (files / "bad.toml").write_text("port = [\n")
    (files / "latin1.toml").write_bytes(b'vlan_filter = "\xe9"\n')
    for name, limit in (("huge.toml", 16 << 20), ("huge.o", 64 << 20)):  # one byte over the limit, sparse
        with open(files / name, "wb") as f:
            f.truncate(limit + 1)
    inventory = ansible_lab.board_inventory(tmp, None, [])
    board = tmp / "boards" / "localhost"
    os.mkfifo(board / "fifo")
    (board / "f").mkdir()
    (board / "f" / "link.o").symlink_to(files / "accept.o")  # a dest through a link: refused, never removed
    tasks: list[dict[str, Any]] = [{"name": label, module: args} for label, module, args in SETUP]
    stat = {"ansible.builtin.stat": {"path": "{{ evl_dir }}/sim.json", "checksum_algorithm": "sha256"}}
    tasks.append({"name": "state before", **stat})
    for i, (module, args, _) in enumerate(CASES):
        tasks.append({"name": f"case {i}", module: args, "ignore_errors": True})
    tasks.append({"name": "state after", **stat})
    play = [
        {
            "name": "bad input",
            "hosts": "boards",
            "gather_facts": False,
            "environment": {
                "EVL_SIM_STATE": "{{ evl_dir }}/sim.json",
                "EVL_NET_AGENT_DIR": "{{ evl_dir }}/run",
                "EVL_DEVDIR": "{{ evl_dir }}/nodev",
            },
            "module_defaults": {"group/evl.net.all": {"transport": "sim"}},
            "tasks": tasks,
        }
    ]
    env = ansible_lab.clean_env(tmp) | {"ANSIBLE_COLLECTIONS_PATH": str(ansible_lab.REPO / "ansible")}
    results = ansible_lab.playbook(tmp, play, inventory, env, timeout=300)
    results.given["accept.o"] = obj
    results.given["kept"] = (board / "f" / "kept.o").read_bytes()
    results.given["link"] = b"link" if (board / "f" / "link.o").is_symlink() else b"gone"
    return results


@pytest.mark.parametrize("i", range(len(CASES)))
def test_bad_input_fails_with_one_clear_message(run: ansible_lab.Results, i: int) -> None:
    module, args, said = CASES[i]
    record = run.get(f"case {i}", "localhost")
    result = record["result"]
    assert record["status"] == "failed", (module, args, result)
    msg = str(result.get("msg", ""))
    assert said in msg, (module, args, msg)
    assert "Traceback" not in msg and "MODULE FAILURE" not in msg and "module_stderr" not in result, result
    assert not result.get("changed"), result


def test_the_board_is_as_it_was(run: ansible_lab.Results) -> None:
    for label, _, _ in SETUP:
        assert run.result(label, "localhost")["changed"] is True
    before, after = run.result("state before", "localhost")["stat"], run.result("state after", "localhost")["stat"]
    assert before["exists"] and before["checksum"] == after["checksum"]
    assert run.given["kept"] == run.given["accept.o"], "a refused object did not replace the one kept"
    assert run.given["link"] == b"link", "the symlink given as dest is still there"
    for i, (module, _, _) in enumerate(CASES):
        msg = run.get(f"case {i}", "localhost")["result"].get("msg", "")
        keyed = msg.startswith(("peer[", "port.", "vlan_filter"))
        assert module == "evl.net.config" or not keyed, f"a key of no file of the user's: {msg}"
