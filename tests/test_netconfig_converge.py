"""``netconfig.converge`` and ``netconfig.edits``: one part of a board changed, the kernel's knock-on effects kept.

What the Ansible modules run.  The oracle is the simulator's state as ``evl
sim show --json`` prints it (:func:`test_netconfig_apply.state`), not the
planner's projection: a pool resize must leave the device's filter installed
and its peers cached, a port going must leave its real device's filter to
the port that stays, an entry dropped must leave the other peers cached.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from evl_net import api, netconfig
from evl_net.netconfig import edits
from evl_net.netconfig.converge import converge
from test_netconfig_apply import objects, state, work  # noqa: F401  (fixtures)


def board(work: dict[str, Any]) -> api.Board:
    return api.open_board(transport="sim", env=work["env"])


def run(work: dict[str, Any], edit: Any = None, setup: Any = None, check: bool = False, **kw: Any) -> Any:
    with board(work) as b:
        return converge(
            b,
            setup=setup,
            edit=(lambda s, live: edit(s, live, b)) if edit else None,
            check=check,
            env=work["env"],
            **kw,
        )


def enable(name: str, pool: int | None = None, buffer: int | None = None) -> Any:
    return lambda s, live, b: edits.enable_port(s, live, name, pool, buffer)


def test_enable_then_nothing_to_do(work):
    done = run(work, enable("eth0.42", 4096))
    assert (done.changed, done.failed, [s.line() for s in done.steps]) == (True, False, ["+ port eth0.42 (pool 4096)"])
    assert state(work)["ports"] == ["eth0.42"] and state(work)["pools"]["eth0"][0] == 4096
    again = run(work, enable("eth0.42", 4096))
    assert (again.changed, again.steps, again.before) == (False, [], again.after)
    assert run(work, enable("eth0.42")).steps == [], "no size given: the pool is left as it is"


def _filtered_with_peer(work: dict[str, Any], objects: Path) -> str:
    """eth0.42 and eth0.43's real device eth0 with a filter, and a peer cached on eth0.42."""
    obj = str(objects / "accept_vlan42.o")
    run(work, enable("eth0.42", 1024))
    run(work, enable("eth0"))
    run(work, lambda s, live, b: edits.set_filter(s, live, "eth0.42", obj))
    run(work, lambda s, live, b: edits.add_peer(s, edits.peer("10.10.10.10", "eth0.42", True, False)))
    before = state(work)
    assert before["ports"] == ["eth0", "eth0.42"] and list(before["filters"]) == ["eth0"]
    assert [a[:2] for a in before["arp"]] == [("eth0.42", "10.10.10.10")]
    return obj


def test_a_resize_keeps_the_filter_and_the_peers(work, objects):
    obj = _filtered_with_peer(work, objects)
    done = run(work, enable("eth0", 2048))
    assert done.changed and not done.failed, done.message
    assert [s.op for s in done.steps] == ["resize-pool", "install-filter", "solicit"]
    assert "ports eth0, eth0.42 go down and up" in (done.steps[0].note or "")
    after = state(work)
    assert after["ports"] == ["eth0", "eth0.42"] and after["pools"]["eth0"][0] == 2048
    assert after["filters"]["eth0"][:2] == (obj, hashlib.sha256(Path(obj).read_bytes()).hexdigest())
    assert [(a[0], a[1], a[3]) for a in after["arp"]] == [("eth0.42", "10.10.10.10", "P")]
    assert run(work, enable("eth0", 2048)).steps == []


def test_disabling_the_port_named_with_the_filter_leaves_it_to_the_other(work, objects):
    obj = _filtered_with_peer(work, objects)
    done = run(work, lambda s, live, b: edits.disable_port(s, live, "eth0.42"))
    assert [s.line() for s in done.steps] == ["- port eth0.42"], done.message
    after = state(work)
    assert after["ports"] == ["eth0"] and after["filters"]["eth0"][0] == obj, "the filter stayed on eth0"
    assert after["arp"] == [], "the port's ARP entry went with it"
    assert run(work, lambda s, live, b: edits.disable_port(s, live, "eth0.42")).steps == []


def test_dropping_one_peer_flushes_and_solicits_the_others(work, objects):
    _filtered_with_peer(work, objects)
    run(work, lambda s, live, b: edits.add_peer(s, edits.peer("10.10.10.12", "eth0.42", False, False)))
    assert [a[1] for a in state(work)["arp"]] == ["10.10.10.10", "10.10.10.12"]
    gone = edits.peer("10.10.10.10", "eth0.42", False, False)
    done = run(work, lambda s, live, b: edits.remove_peer(s, b, gone))
    assert [s.op for s in done.steps] == ["flush-arp", "solicit"], done.message
    assert [(a[1], a[3]) for a in state(work)["arp"]] == [("10.10.10.12", "R")]
    assert run(work, lambda s, live, b: edits.remove_peer(s, b, gone)).steps == []
    nowhere = edits.peer("203.0.113.9", None, False, False)
    assert run(work, lambda s, live, b: edits.remove_peer(s, b, nowhere)).steps == [], "an unroutable host has no entry"


def test_check_mode_plans_and_changes_nothing(work):
    before = state(work)
    done = run(work, enable("eth0.42", 4096), check=True)
    assert done.changed and done.results is None and [s.op for s in done.steps] == ["enable-port"]
    assert '[port."eth0.42"]' in done.after and '[port."eth0.42"]' not in done.before
    assert state(work) == before


def test_an_edit_problem_or_a_plan_problem_changes_nothing(work):
    before = state(work)
    done = run(work, enable("eth9"))
    assert (done.failed, done.message, done.steps) == (True, "no device eth9 on the board", [])
    done = run(work, lambda s, live, b: edits.set_filter(s, live, "eth0.42", "/nonexistent.o"))
    assert done.message == "eth0.42 is no out-of-band port: a filter needs the port enabled first"
    done = run(work, enable("eth0.42", 4096, 1 << 20))
    assert done.failed and "above the board's limit" in done.message
    assert state(work) == before


def test_a_failing_step_is_rolled_back(work):
    """A silent peer fails its solicitation: the port enabled before it is disabled again."""
    setup, problems = netconfig.read_sources(
        [("inline", {"port": {"eth1.42": {}}, "peer": [{"host": "10.10.20.99", "via": "eth1.42"}]}, "/")]
    )
    assert problems == []
    before = state(work)
    done = run(work, setup=setup)
    assert done.failed and done.rolled_back and not done.rollback_failures, done.message
    assert done.message.startswith("apply failed: + solicit 10.10.20.99 via eth1.42: ")
    assert done.message.endswith("; the board was restored")
    assert [r.status for r in done.results] == ["undone", "failed"]
    assert done.changed is False
    assert state(work) == before


def test_the_lock_held_elsewhere_is_an_error_not_a_wait_forever(work):
    from evl_net.boardlock import BoardLock, default_state_dir

    lock = BoardLock(default_state_dir(work["env"]))
    lock.acquire(0)
    try:
        done = run(work, enable("eth0.42"), lock_timeout=0.2)
    finally:
        lock.release()
        lock.close()
    assert done.failed and done.message.startswith("cannot lock the board"), done.message
    assert state(work)["ports"] == []
    assert run(work, enable("eth0.42"), check=True).changed, "check mode takes no lock"


def test_either_a_setup_or_an_edit():
    with pytest.raises(TypeError):
        converge(None, None, None)  # type: ignore[arg-type]


# -- a setup as data: what the config module's inline config: and src are -----------------------------


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ({"port": {"eth0.42": {"pool": "big"}}}, 'inline:1: port."eth0.42".pool: expected an integer'),
        ({"vlan_filter": "1-"}, "inline:1: vlan_filter: not a VLAN list"),
        ({"peer": [{"host": "10.0.0.300"}]}, "inline:1: peer[0].host: not an IPv4 address or host name"),
        ({"nonsense": 1}, "inline:1: "),
        ([1, 2], "inline:1: not a table of settings but list"),
        ("x = [", "inline:1: not TOML: "),
        ({"port": {"eth0.42": {"filter": {"object": "missing.o"}}}}, "cannot read eBPF object /base/missing.o"),
    ],
)
def test_an_invalid_document_is_a_problem_with_its_key(doc, problem):
    _, problems = netconfig.read_sources([("inline", doc, "/base")])
    assert problems, doc
    assert problem in str(problems[0]), [str(p) for p in problems]


def test_documents_layer_as_files_do(tmp_path):
    text = '[port."eth0.42"]\npool = 4096\n'
    setup, problems = netconfig.read_sources(
        [("a", text, str(tmp_path)), ("b", {"port": {"eth0.42": {"pool": 1024}}}, "")]
    )
    assert [str(p) for p in problems] == ['b:1: port."eth0.42".pool: set to another value in a:2']
    setup, problems = netconfig.read_sources([("a", text, ""), ("b", {"vlan_filter": [42], "port": {"eth1": {}}}, "")])
    assert problems == [] and setup.ports == {"eth0.42": {"pool": 4096}, "eth1": {}} and setup.vlan_filter == {42}


def test_a_filter_object_gone_since_it_was_installed_blocks_nothing_else(work, objects, tmp_path):
    """The kernel holds the program: only a change that installs the filter again needs its object."""
    import shutil

    obj = tmp_path / "gone.o"
    shutil.copy(objects / "accept_vlan42.o", obj)
    run(work, enable("eth0.42"))
    run(work, lambda s, live, b: edits.set_filter(s, live, "eth0.42", str(obj)))
    obj.unlink()
    done = run(work, lambda s, live, b: edits.set_vlans(s, frozenset({42})))
    assert (done.failed, [st.op for st in done.steps]) == (False, ["set-vlans"]), done.message
    assert run(work, enable("eth1")).steps and not run(work, enable("eth1")).steps
    resize = run(work, enable("eth0.42", 4096))
    assert resize.failed and "cannot read eBPF object" in resize.message and str(obj) in resize.message
    assert list(state(work)["filters"]) == ["eth0"], "the failed resize changed nothing"


def test_a_failed_change_says_nothing_of_what_the_plan_expected(work):
    setup, _ = netconfig.read_sources([("inline", {"port": {"eth1.42": {}}, "peer": [{"host": "10.10.20.99"}]}, "/")])
    done = run(work, setup=setup)
    assert done.failed and done.end is None and done.after == "" and done.before
