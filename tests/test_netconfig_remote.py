"""``evl net-config`` on remote boards: one board over SSH (``--remote``), several (``--hosts``).

The boards are the loopback SSH lab of test_remote_ssh (an in-process SSH
server on 127.0.0.1 running the real ``evl net-agent`` over the simulator,
reached with the system's OpenSSH client).  The plan is computed from the
board's state read through the agent and executed through it; what the
board then holds is read from the board's own state file (the oracle).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from fslock import lock_is_free
from test_netconfig_apply import BOARD, PLAN, SETUP, objects, state  # noqa: F401
from test_remote_fleet import closed_port, hosts_file
from test_remote_ssh import lab  # noqa: F401


@pytest.fixture
def files(tmp_path, objects):  # noqa: F811
    board = tmp_path / "board.toml"
    board.write_text(BOARD)
    for obj in objects.iterdir():
        shutil.copy(obj, tmp_path / obj.name)
    (tmp_path / "net.toml").write_text(SETUP)
    return tmp_path


def _board_state(board, files: Path, sim_env):
    env = dict(sim_env, EVL_SIM_STATE=str(board.state / "sim-state.json"), EVL_SIM_BOARD=str(files / "board.toml"))
    return state({"env": env})


def test_plan_apply_export_on_one_remote_board(lab, sim_env, evl, files):  # noqa: F811
    board = lab.board("b1", env={"EVL_SIM_BOARD": str(files / "board.toml")})
    env = lab.env(sim_env)
    target = f"--remote={lab.target(board)}"
    path = str(files / "net.toml")
    r = evl("net-config", "plan", target, path, env=env)
    assert (r.code, r.err) == (2, "")
    assert r.out.splitlines() == [line.format(D=files) for line in PLAN]
    r = evl("net-config", "apply", target, path, env=env)
    assert r.code == 0, r.err
    assert r.out.splitlines()[-1] == "apply: 9 steps done"
    s = _board_state(board, files, sim_env)
    assert s["ports"] == ["eth0.42", "eth0.43"] and s["vlans"] == [41, 42, 55, 56, 57]
    assert s["links"]["eth0.43"] == ("eth0", 43, 1500, True, ["10.10.43.11/24"])
    r = evl("net-config", "plan", target, path, env=env)
    assert (r.code, r.out) == (0, "no changes: the board matches the files\n")

    # The remote export is what the same setup exports locally.
    remote = evl("net-config", "export", target, env=env)
    local_env = dict(sim_env, EVL_SIM_BOARD=str(files / "board.toml"), EVL_NET_AGENT_DIR=str(files / "agent"))
    assert evl("net-config", "apply", path, env=local_env).code == 0
    local = evl("net-config", "export", env=local_env)
    assert remote.out.splitlines()[1:] == local.out.splitlines()[1:]
    assert remote.out.splitlines()[0] == f"# evl net-config export: {lab.target(board)}"


def test_a_failure_on_a_remote_board_is_rolled_back_through_the_agent(lab, sim_env, evl, files):  # noqa: F811
    board = lab.board("b1", env={"EVL_SIM_BOARD": str(files / "board.toml")})
    env = lab.env(sim_env)
    bad = files / "bad.toml"
    bad.write_text(SETUP + '[[peer]]\nhost = "nosuch"\n')
    assert evl("net-config", "plan", f"--remote={lab.target(board)}", str(files / "net.toml"), env=env).code == 2
    before = _board_state(board, files, sim_env)
    r = evl("net-config", "apply", f"--remote={lab.target(board)}", str(bad), env=env)
    assert r.code == 1
    assert "rollback: the board is back where it started" in r.out.splitlines()
    assert _board_state(board, files, sim_env) == before


def test_a_fleet_plans_applies_and_says_which_board_did_what(lab, sim_env, evl, files, tmp_path):  # noqa: F811
    boards = [lab.board(f"b{i}", env={"EVL_SIM_BOARD": str(files / "board.toml")}) for i in range(4)]
    gone = f"evl@127.0.0.1:{closed_port()}"
    env = lab.env(sim_env, connect_timeout=2)
    hosts = hosts_file(tmp_path, [lab.target(b) for b in boards])
    path = str(files / "net.toml")

    r = evl("net-config", "plan", f"--hosts={hosts}", path, env=env)
    assert r.code == 2, r.err
    rows = _rows(r.out)
    assert [(row[0], row[1], row[2]) for row in rows] == [(lab.target(b), "changes", "9 steps") for b in boards]

    r = evl("net-config", "apply", f"--hosts={hosts}", path, env=env)
    assert r.code == 0, r.err
    assert {(row[1], row[2]) for row in _rows(r.out)} == {("changed", "9 steps done")}
    for b in boards:
        assert _board_state(b, files, sim_env)["ports"] == ["eth0.42", "eth0.43"]

    with_gone = hosts_file(tmp_path, [lab.target(b) for b in boards] + [gone], name="hosts2")
    r = evl("net-config", "plan", f"--hosts={with_gone}", path, env=env)
    assert r.code == 8, r.err
    rows = _rows(r.out)
    assert [(row[0], row[1], row[2]) for row in rows[:4]] == [(lab.target(b), "ok", "0 steps") for b in boards]
    assert rows[4][0] == gone and rows[4][1] == "unreachable" and "Connection refused" in rows[4][2]
    assert f"evl-net-config: {gone}: " in r.err

    r = evl("net-config", "export", f"--hosts={hosts}", env=env)
    assert (r.code, r.err) == (1, "evl-net-config: export reads one board, and 4 are given (--remote, --hosts)\n")


def _rows(out: str) -> list[list[str]]:
    lines = out.splitlines()
    assert lines[0].split() == ["BOARD", "STATUS", "RESULT", "MS"]
    return [re.split(r"\s{2,}", line.strip()) for line in lines[2:]]


def test_a_remote_apply_holds_the_boards_lock_for_the_whole_run(lab, sim_env, evl, files):  # noqa: F811
    """``board.lock``: held until the session releases it or ends; meanwhile another apply waits, then fails."""
    from evl_net import api

    board = lab.board("b1", env={"EVL_SIM_BOARD": str(files / "board.toml")})
    env = lab.env(sim_env)
    board.lock_path.parent.mkdir(parents=True, exist_ok=True)
    with api.open_board(transport="remote", remote=lab.target(board), env=env) as holder:
        assert lock_is_free(board.lock_path)
        holder.transport.hold_board_lock(True)
        assert not lock_is_free(board.lock_path)
        holder.enable("eth1")  # the holder's own mutations do not wait for themselves
        before = _board_state(board, files, sim_env)
        r = evl("net-config", "apply", f"--remote={lab.target(board)}", str(files / "net.toml"), env=env)
        assert r.code == 1 and r.out == ""
        assert r.err.endswith("another session kept the board busy): Device or resource busy\n"), r.err
        assert _board_state(board, files, sim_env) == before
        holder.transport.hold_board_lock(False)
        assert lock_is_free(board.lock_path)
        holder.transport.hold_board_lock(True)
    assert lock_is_free(board.lock_path)  # the session ended: the kernel dropped the lock
    r = evl("net-config", "apply", f"--remote={lab.target(board)}", str(files / "net.toml"), env=env)
    assert r.code == 0, r.err
