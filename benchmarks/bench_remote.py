"""Costs of ``evl net --remote``, on loopback, printed as a table.

Run it with the interpreter whose ``bin/`` holds the ``evl`` scripts, with the
test dependencies installed (asyncssh)::

    /tmp/venv/bin/python benchmarks/bench_remote.py [--requests N] [--boards N] [--jobs N] [--rounds N]

The boards are the tests' lab (tests/test_remote_ssh.py): an asyncssh server
on 127.0.0.1, here in a separate process, running the real
``evl net-agent --stdio --transport=sim`` for every session; the workstation
side is the real client, driving the system ``ssh``.

* **round trip**: one request and its reply on an open session (hello done):
  ``vlans.get`` and ``stat.get`` (reads) and ``vlans.set`` to the value already
  set (an idempotent mutation, which takes the board lock); median and 95th
  percentile of ``--requests`` sequential requests.  Target: <= 2 ms.
* **fleet**: the wall time of ``evl net --hosts FILE -n`` (run in this
  process) on one board and on ``--boards`` boards (default 64, with evl
  net's default ``--jobs`` unless ``--jobs`` is given), and for comparison
  in the same run with ``--before-jobs`` (16) and no connection sharing, the
  former defaults.  The first round logs in; later rounds find the
  connections it kept (ssh's ControlPersist): both are shown, later rounds
  as their median.  Target: the fleet <= 2.5 x one board.
  On loopback every board's SSH server and agent run on this machine's cores
  next to the workstation's ssh clients, which a real fleet does not; so the
  table also splits the CPU time per board into the workstation's part (this
  process and its ssh children) and the boards' part (the server process and
  its agents), and gives the ratio a fleet of real boards would see (a model,
  marked so): ceil(boards / jobs) waves of one board's latency, or the
  workstation's CPU work shared between its cores, whichever is longer.

The runner reports; it does not assert: it always exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import resource
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def round_trips(lab, board, count: int) -> dict[str, list[float]]:
    from evl_net.transports.remote.client import Options, Session, Target

    opts = Options(ssh_args=tuple(shlex.split(lab.ssh_args())), timeout=30)

    async def go() -> dict[str, list[float]]:
        session = Session(Target.parse(lab.target(board)), opts)
        await session.open()
        times: dict[str, list[float]] = {"vlans.get": [], "vlans.set": [], "stat.get": []}
        try:
            await session.call("vlans.set", {"text": "42"})
            for op, args in (("vlans.get", {}), ("stat.get", {"ifname": "eth0.42"}), ("vlans.set", {"text": "42"})):
                for _ in range(20):  # warm-up
                    await session.call(op, args)
                for _ in range(count):
                    start = time.perf_counter()
                    reply = await session.call(op, args)
                    times[op].append((time.perf_counter() - start) * 1000)
                    assert reply.ok, reply
        finally:
            await session.close()
        return times

    return asyncio.run(go())


def board_cpu_seconds(pid: int) -> float:
    """utime + stime + the reaped children's, of the server process (its agents)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


#: The fleet's target: 64 boards cost at most this many times one board.
TARGET = 2.5
#: The former defaults also had no connection sharing.
BEFORE_SSH = ("--ssh=-o ControlMaster=no",)


def fleet_wall(
    lab, boards, env: dict[str, str], rounds: int, jobs: int, server_pid: int, extra: tuple[str, ...] = ()
) -> dict[str, float]:
    from evl_core.cli import main

    hosts = lab.root / f"hosts-{len(boards)}"
    hosts.write_text("".join(lab.target(b) + "\n" for b in boards))
    walls, mine, theirs = [], [], []
    code = 0
    for _ in range(rounds):
        out, err = io.StringIO(), io.StringIO()
        cpu, board_cpu = cpu_seconds(), board_cpu_seconds(server_pid)
        start = time.perf_counter()
        jobs_opt = [f"--jobs={jobs}"] if jobs else []
        code = main(["net", f"--hosts={hosts}", *jobs_opt, *extra, "-n"], stdout=out, stderr=err, env=env)
        walls.append(time.perf_counter() - start)
        time.sleep(0.3)  # let the server reap the last agents
        mine.append(cpu_seconds() - cpu)
        theirs.append(board_cpu_seconds(server_pid) - board_cpu)
        if code != 0:
            print(err.getvalue(), file=sys.stderr)
    n = len(boards)
    # the first round logs in; later ones find the connections the first kept (ssh ControlPersist)
    warm = slice(1, None) if rounds > 1 else slice(None)
    return {
        "wall": statistics.median(walls[warm]),
        "ws_cpu": statistics.median(mine[warm]) / n,
        "board_cpu": statistics.median(theirs[warm]) / n,
        "cold_wall": walls[0],
        "cold_ws_cpu": mine[0] / n,
        "cold_board_cpu": theirs[0] / n,
        "code": code,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=500, help="requests per round-trip series (default 500)")
    ap.add_argument("--boards", type=int, default=64, help="boards in the fleet (default 64)")
    ap.add_argument("--jobs", type=int, default=0, help="--jobs of the fleet run (default: evl net's own default)")
    ap.add_argument(
        "--before-jobs",
        type=int,
        default=16,
        help="also run the fleet with this --jobs, the default before it was sized from the boards (16; 0: not)",
    )
    ap.add_argument("--rounds", type=int, default=3, help="fleet runs per size; the median is kept (default 3)")
    args = ap.parse_args()
    try:
        from test_remote_ssh import ServerProcess, SshLab
    except ImportError as exc:
        print(f"bench_remote: the test dependencies are needed (pip install -r requirements-test.txt): {exc}")
        return 0
    from tabulate import tabulate

    with tempfile.TemporaryDirectory(prefix="evl-bench-remote-") as tmp:
        lab = SshLab(Path(tmp) / "lab")
        server = None
        try:
            server = ServerProcess(lab, [f"b{i}" for i in range(args.boards)])
            boards = server.boards
            env = {k: v for k, v in os.environ.items() if not k.startswith("EVL_")}
            env["EVL_NET_SSH"] = lab.ssh_args(connect_timeout=30)
            times = round_trips(lab, boards[0], args.requests)
            one = fleet_wall(lab, boards[:1], env, args.rounds, args.jobs, server.proc.pid)
            many = fleet_wall(lab, boards, env, args.rounds, args.jobs, server.proc.pid)
            before = (
                fleet_wall(lab, boards, env, args.rounds, args.before_jobs, server.proc.pid, BEFORE_SSH)
                if args.before_jobs
                else None
            )
        finally:
            if server is not None:
                server.close()
            lab.close()

    cores = os.cpu_count() or 1
    rows = []
    for op, series in times.items():
        series.sort()
        p95 = series[max(0, int(len(series) * 0.95) - 1)]
        median = statistics.median(series)
        rows.append(
            [f"round trip {op}", f"{median:.2f} ms", f"p95 {p95:.2f} ms", "<= 2 ms", "yes" if median <= 2 else "no"]
        )
    from evl_net.engine.fleet import default_jobs

    jobs = args.jobs or default_jobs(args.boards)
    fleets = [(f"{args.boards} boards (jobs {jobs})", many, jobs)]
    if before is not None:
        fleets.insert(
            0, (f"{args.boards} boards (jobs {args.before_jobs}, the former default)", before, args.before_jobs)
        )
    for label, r in [("1 board", one)] + [(label, r) for label, r, _ in fleets]:
        for when, prefix in (("first round", "cold_"), ("later rounds", "")):
            rows.append(
                [
                    f"fleet, {label}, {when}",
                    f"{r[prefix + 'wall'] * 1000:.0f} ms",
                    f"cpu/board: workstation {r[prefix + 'ws_cpu'] * 1000:.0f} ms, "
                    f"board {r[prefix + 'board_cpu'] * 1000:.0f} ms",
                    "",
                    "" if r["code"] == 0 else f"exit {r['code']}",
                ]
            )
    for label, r, used in fleets:
        for when, prefix in (("first round", "cold_"), ("later rounds", "")):
            ratio = r[prefix + "wall"] / one[prefix + "wall"]
            rows.append(
                [
                    f"{label} / 1 board, {when}, measured",
                    f"{ratio:.1f} x",
                    f"everything on {cores} cores",
                    f"<= {TARGET:g} x",
                    "yes" if ratio <= TARGET else "no",
                ]
            )
            # Boards on their own CPUs: ceil(boards / jobs) waves of one board's latency, unless the
            # workstation's own CPU work (ssh clients, sessions) is the bottleneck.
            waves = -(-args.boards // used)
            one_wall = one[prefix + "wall"]
            modelled = max(waves * one_wall, args.boards * r[prefix + "ws_cpu"] / cores) / one_wall
            rows.append(
                [
                    f"{label} / 1 board, {when}, model",
                    f"{modelled:.1f} x",
                    f"boards on their own CPUs: max({waves} waves, workstation cpu / {cores} cores)",
                    f"<= {TARGET:g} x",
                    "yes" if modelled <= TARGET else "no",
                ]
            )
    print(tabulate(rows, headers=["measure", "value", "detail", "target", "met"], tablefmt="simple"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
