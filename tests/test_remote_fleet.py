"""``evl net`` on many boards at once: fan-out, per-board status, table / JSON / JSONL, exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from test_remote_ssh import (  # noqa: F401  (lab is a fixture)
    RESET,
    ServerProcess,
    attempts,
    closed_port,
    fake_ssh_on_path,
    flaky,
    lab,
)

BOARDS = Path(__file__).resolve().parent.parent / "plugins" / "net" / "evl_net" / "boards"

#: Agents that misbehave, run by the lab's server instead of the real one.
NOT_AN_AGENT = [sys.executable, "-c", "print('Welcome to board 7!')"]
FROZEN_AGENT = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSTOP)"]
DIES_ON_FIRST_REQUEST = [
    sys.executable,
    "-c",
    textwrap.dedent("""
    import json, os, sys
    hello = json.loads(sys.stdin.readline())
    caps = ["page_size", "interfaces", "stat.get", "vlans.get", "port.enable", "port.disable", "bpf.load",
            "bpf.remove", "solicit", "vlans.set"]
    sys.stdout.write(json.dumps({"id": hello["id"], "ok": True, "result": {"proto": 2, "caps": caps,
                     "limits": {}, "abi": {"base": 45, "current": 45}}}) + "\\n")
    sys.stdout.flush()
    sys.stdin.readline()
    os._exit(137)
"""),
]


def board_without_eth0_42(tmp_path: Path) -> str:
    path = tmp_path / "no-eth0.42.toml"
    path.write_text((BOARDS / "manual.toml").read_text().replace('name = "eth0.42"', 'name = "eth0.43"'))
    return str(path)


def hosts_file(tmp_path: Path, targets: list[str], name: str = "hosts") -> Path:
    path = tmp_path / name
    path.write_text("# the lab\n\n" + "".join(f"{t}   # board\n" for t in targets))
    return path


def fleet_env(lab, sim_env, connect_timeout: int = 2) -> dict[str, str]:
    return lab.env(sim_env, keepalive=(1, 2), connect_timeout=connect_timeout)


def table_rows(out: str) -> list[list[str]]:
    lines = out.splitlines()
    assert lines[0].split() == ["BOARD", "STATUS", "RESULT", "MS"] and set(lines[1]) <= {"-", " "}
    return [re.split(r"\s{2,}", line.strip()) for line in lines[2:]]


@pytest.mark.slow  # two fan-outs over 50 boards, with 2-4 s deadlines: about 13 s
def test_fleet_of_50_boards_with_unreachable_and_frozen_ones(lab, sim_env, evl, tmp_path):
    """The test bar: 50 simulated boards, some failing, some unreachable, some frozen."""
    no_port = board_without_eth0_42(tmp_path)
    healthy = [lab.board(f"b{i:02d}") for i in range(1, 41)]
    failing = [lab.board(f"f{i}", env={"EVL_SIM_BOARD": no_port}) for i in (1, 2)]
    alien = lab.board("alien", agent=NOT_AN_AGENT)
    stuck = lab.board("stuck", agent=FROZEN_AGENT)
    frozen = ServerProcess(lab, ["frozen1", "frozen2"])
    try:
        frozen.freeze()
        unreachable = [f"evl@127.0.0.1:{closed_port()}" for _ in range(4)]
        targets = [lab.target(b) for b in healthy + failing + [alien, stuck] + frozen.boards] + unreachable
        assert len(targets) == 50
        hosts = hosts_file(tmp_path, targets)
        env = fleet_env(lab, sim_env)

        start = time.monotonic()
        run = evl("net", f"--hosts={hosts}", "-ei", "eth0.42", "--timeout=2", env=env)
        elapsed = time.monotonic() - start
        assert run.code == 12, run.err
        assert elapsed < 20
        rows = table_rows(run.out)
        assert len(rows) == 50
        status = {row[0]: row[1] for row in rows}
        expected = {lab.target(b): "changed" for b in healthy}
        expected.update({lab.target(b): "failed" for b in failing})
        expected[lab.target(alien)] = "incompatible"
        expected[lab.target(stuck)] = "timeout"
        expected.update({lab.target(b): "timeout" for b in frozen.boards})
        expected.update({t: "unreachable" for t in unreachable})
        assert status == expected
        # Successes first, then boards that failed, then those that did not answer.
        ranks = [0 if r[1] == "changed" else 1 if r[1] in ("failed", "incompatible") else 2 for r in rows]
        assert ranks == sorted(ranks)
        by_board = {row[0]: row for row in rows}
        assert by_board[lab.target(failing[0])][2] == "cannot open out-of-band port eth0.42: No such device"
        assert "Connection refused" in by_board[unreachable[0]][2]
        assert "timed out" in by_board[lab.target(frozen.boards[0])][2]
        assert by_board[lab.target(healthy[0])][2].isdigit()  # nothing to print: RESULT empty, MS follows
        err = run.err.splitlines()
        assert len(err) == 11 and err[-1] == "evl-net: 40 of 50 boards succeeded, 3 failed, 7 did not answer"
        assert f"evl-net: {lab.target(failing[0])}: failed: cannot open out-of-band port eth0.42: No such device" in err

        # Again, as JSON: idempotent (ok, not changed), the same failures, the same exit status.
        run = evl("net", f"--hosts={hosts}", "-ei", "eth0.42", "--timeout=2", "--json", env=env)
        assert run.code == 12
        boards = json.loads(run.out)
        assert isinstance(boards, list) and len(boards) == 50 and run.out.count("\n") == 1
        got = {b["board"]: b["status"] for b in boards}
        assert got == {t: ("ok" if s == "changed" else s) for t, s in expected.items()}
        for b in boards:
            assert set(b) == {"board", "status", "changed", "failed", "results", "error", "elapsed_ms"}
            if b["status"] == "ok":
                assert b["error"] is None and b["failed"] is False
                assert b["results"] == [
                    {"action": "enable", "ifname": "eth0.42", "changed": False, "pool_size": 2048, "buffer_size": 4096}
                ]
            else:
                assert b["failed"] is True and b["error"]["msg"]
        failed = next(b for b in boards if b["board"] == lab.target(failing[1]))
        assert failed["error"] == {
            "code": "ENODEV",
            "errno": 19,
            "msg": "cannot open out-of-band port eth0.42: No such device",
        }
    finally:
        frozen.close()


def test_exit_status_tells_failed_from_silent(lab, sim_env, evl, tmp_path):
    good = lab.target(lab.board("good"))
    bad = lab.target(lab.board("bad", env={"EVL_SIM_BOARD": board_without_eth0_42(tmp_path)}))
    gone = f"evl@127.0.0.1:{closed_port()}"
    env = fleet_env(lab, sim_env)

    def code(*targets):
        return evl("net", *(f"--remote={t}" for t in targets), "-Q", "-i", "eth0.42", env=env).code

    assert code(good, good) == 0  # one board named twice is served once: a fleet of one
    assert code(good, bad) == 4
    assert code(good, gone) == 8
    assert code(good, bad, gone) == 12


def test_query_results_in_the_table(lab, sim_env, evl):
    boards = [lab.board("q1"), lab.board("q2", env={"EVL_SIM_BOARD": "manual-traffic"})]
    run = evl(
        "net", *(f"--remote={lab.target(b)}" for b in boards), "-QoRTf", "-i", "eth0.42", env=fleet_env(lab, sim_env)
    )
    assert run.code == 0 and run.err == ""
    rows = table_rows(run.out)
    expected = sorted(
        [[lab.target(boards[0]), "ok", "yes 0 0 0"], [lab.target(boards[1]), "ok", "yes 2092625 137399 2048"]],
        key=lambda r: int(r[0].rsplit(":", 1)[1]),
    )
    assert [r[:3] for r in rows] == expected  # sorted by name, numbers by value


def test_jsonl_streams_one_object_per_board(lab, sim_env, evl):
    good = lab.target(lab.board("s1"))
    gone = f"evl@127.0.0.1:{closed_port()}"
    # --retries=0: a refused connection is otherwise tried again after a backoff, and may come back last
    run = evl(
        "net", f"--remote={good}", f"--remote={gone}", "-N42", "--jsonl", "--retries=0", env=fleet_env(lab, sim_env)
    )
    assert run.code == 8
    lines = [json.loads(line) for line in run.out.splitlines()]
    assert {(x["board"], x["status"]) for x in lines} == {(good, "changed"), (gone, "unreachable")}
    assert lines[0]["board"] == gone  # as each finishes: the refused connection comes back first
    ok = next(x for x in lines if x["board"] == good)
    assert ok["results"] == [{"action": "set-vlans", "cleared": False, "changed": True, "vlans": "42"}]
    # --jsonl alone makes even one board a fleet.
    run = evl("net", f"--remote={good}", "-n", "--jsonl", env=fleet_env(lab, sim_env))
    assert run.code == 0 and json.loads(run.out)["results"][0]["vlans"] == "42"
    run = evl("net", f"--remote={good}", "-n", "--jsonl", "--json", env=fleet_env(lab, sim_env))
    assert run.code == 1 and "exclude each other" in run.err


def test_connection_lost_during_a_mutation_is_never_ok(lab, sim_env, evl):
    dying = lab.board("dying", agent=DIES_ON_FIRST_REQUEST)
    good = lab.board("fine")
    run = evl(
        "net",
        f"--remote={lab.target(dying)}",
        f"--remote={lab.target(good)}",
        "-N42",
        "--json",
        env=fleet_env(lab, sim_env),
    )
    assert run.code == 8
    boards = {b["board"]: b for b in json.loads(run.out)}
    lost = boards[lab.target(dying)]
    assert lost["status"] == "lost" and lost["failed"] is True and lost["changed"] is False
    assert "during vlans.set: state unknown, re-query" in lost["error"]["msg"]
    assert boards[lab.target(good)]["status"] == "changed"


def test_environment_comma_list_is_a_fleet(lab, sim_env, evl):
    a, b = lab.board("e1"), lab.board("e2")
    env = dict(fleet_env(lab, sim_env), EVL_NET_REMOTE=f"{lab.target(a)}, {lab.target(b)}")
    run = evl("net", "-N7", "--jobs=1", env=env)
    assert run.code == 0
    assert sorted(r[:2] for r in table_rows(run.out)) == sorted(
        [[lab.target(a), "changed"], [lab.target(b), "changed"]]
    )


def test_hosts_file_and_jobs_errors(evl, tmp_path, sim_env):
    env = {k: v for k, v in sim_env.items() if k != "EVL_NET_TRANSPORT"}
    bad = tmp_path / "bad-hosts"
    bad.write_text("board1\nboard2 board3\n")
    run = evl("net", f"--hosts={bad}", "-n", env=env)
    assert (run.code, run.err) == (
        1,
        f"evl-net: {bad}:2: expected one [USER@]HOST[:PORT] per line, got 'board2 board3'\n",
    )
    bad.write_text("-oProxyCommand=sh\n")
    run = evl("net", f"--hosts={bad}", "-n", env=env)
    assert run.code == 1 and "bad host name" in run.err and f"{bad}:1" in run.err
    run = evl("net", f"--hosts={tmp_path / 'none'}", "-n", env=env)
    assert run.code == 1 and "cannot read hosts file" in run.err
    empty = tmp_path / "empty"
    empty.write_text("# nobody\n")
    run = evl("net", f"--hosts={empty}", "-n", env=env)
    assert (run.code, run.err) == (1, f"evl-net: no board in the hosts file {empty}\n")
    for jobs in ("0", "257", "x", "-1"):
        for boards in (["--remote=a", "--remote=b"], ["--remote=a"]):  # checked with one board too
            run = evl("net", *boards, f"--jobs={jobs}", "-n", env=env)
            assert run.code == 1 and "invalid number of jobs" in run.err
    run = evl("net", "--remote=a", "--timeout=0", "-n", env=env)
    assert run.code == 1 and "invalid timeout" in run.err


def test_busy_boards_have_their_own_exit_bit(lab, sim_env, evl, tmp_path):
    """Exit status: a bitmask, 4 failed, 8 did not answer, 16 busy; busy ranks between failed and silent."""
    from evl_net import api

    good = lab.target(lab.board("good"))
    held = lab.board("held")
    busy = lab.target(held)
    bad = lab.target(lab.board("bad", env={"EVL_SIM_BOARD": board_without_eth0_42(tmp_path)}))
    gone = f"evl@127.0.0.1:{closed_port()}"
    env = fleet_env(lab, sim_env)

    def run(*targets):
        boards = (f"--remote={t}" for t in targets)
        return evl("net", *boards, "-ei", "eth0.42", "--timeout=2", "--retries=0", env=env)

    held.lock_path.parent.mkdir(parents=True, exist_ok=True)
    with api.open_board(transport="remote", remote=busy, env=env) as holder:
        holder.transport.hold_board_lock(True)
        assert run(good, busy).code == 16
        assert run(good, busy, bad).code == 20
        assert run(good, busy, gone).code == 24
        everything = run(gone, busy, bad, good)
        assert everything.code == 28, everything.err
    rows = table_rows(everything.out)
    assert [(r[0], r[1]) for r in rows] == [(good, "ok"), (bad, "failed"), (busy, "busy"), (gone, "unreachable")]
    assert rows[2][2] == "another session kept the board busy for 1 s: nothing was done"
    assert everything.err.splitlines()[-1] == "evl-net: 1 of 4 boards succeeded, 1 failed, 1 busy, 1 did not answer"
    assert f"evl-net: {busy}: busy: another session kept the board busy for 1 s: nothing was done" in everything.err
    assert run(good, busy).code == 0  # the lock is free again: the board was left as it was, then enabled


def test_a_fleet_retries_each_board(tmp_path, sim_env, evl):
    count = tmp_path / "count"
    env = fake_ssh_on_path(tmp_path, sim_env, flaky(count, 2, RESET))
    run = evl("net", "--remote=a", "--remote=b", "-n", "--retries=3", "--json", env=env)
    assert run.code == 0, run.err
    assert {b["board"]: b["status"] for b in json.loads(run.out)} == {"a": "ok", "b": "ok"}
    assert (attempts(count, "a"), attempts(count, "b")) == (3, 3)
    run = evl("net", "--remote=c", "--remote=d", "-n", "--retries=0", "--json", env=env)
    assert run.code == 8
    assert {b["board"]: b["status"] for b in json.loads(run.out)} == {"c": "unreachable", "d": "unreachable"}
    assert (attempts(count, "c"), attempts(count, "d")) == (1, 1)


def test_default_jobs_is_every_board_within_the_limits():
    """Without --jobs, one wave: every board at once, bounded by the open-file and process limits."""
    code = r"""
import resource, sys
from evl_net.engine.fleet import default_jobs, parse_jobs
class R: jobs = None
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
roomy = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
resource.setrlimit(resource.RLIMIT_NOFILE, (roomy, hard))  # 4096: room for 504 boards, MAX_JOBS bounds them
print(default_jobs(1), default_jobs(64), default_jobs(1000), parse_jobs(R(), 40), roomy)
resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))
print(default_jobs(64))
resource.setrlimit(resource.RLIMIT_NOFILE, (60, hard))
print(default_jobs(64))
nproc = resource.getrlimit(resource.RLIMIT_NPROC)
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
nproc_hard = nproc[1] if nproc[1] == resource.RLIM_INFINITY or nproc[1] >= 40 else 40
resource.setrlimit(resource.RLIMIT_NPROC, (40, nproc_hard))
print(default_jobs(64))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split("\n")
    *jobs, roomy = lines[0].split()
    assert jobs == ["1", "64", str(min(256, (int(roomy) - 64) // 8)), "40"]  # 256 when the hard limit allows 4096
    assert lines[1] == str((128 - 64) // 8)  # 8: descriptors bound it
    assert lines[2] == "1"  # never below one
    assert lines[3] == str(40 // 4)  # a quarter of the process limit
