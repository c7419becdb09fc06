#!/usr/bin/env python3
"""What ``evl net-config`` costs: plan and apply of a large setup, and a no-op plan against ``evl net -Q``.

Run it with the interpreter whose ``bin/`` holds the ``evl`` scripts::

    /tmp/venv/bin/python benchmarks/bench_netconfig.py [--rounds N]

Two boards on the simulator:

* the manual's: the setup of README's example (a port with its pool, the
  VLAN filter, a permanent peer), applied once; then ``evl net-config plan``
  of it (nothing to do) and ``evl net -Q -i eth0.42`` are timed as fresh
  processes side by side (the forking helper and the interleaved rounds of
  benchmarks/run.py); target: the no-op plan within 2x the query;
* a large one: four real devices, and a setup creating 64 VLAN devices, each
  with an address and an oob port (pools on the four real devices), with 256
  peers to solicit.  In-process (the library API), medians of ``--rounds``:
  the plan on a freshly booted board, the apply from there (a fresh state
  each round), and the no-op plan once applied; and the no-op plan as a
  process too.

The runner reports; it does not assert.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import BIN, PYTHON, Launcher

MANUAL_SETUP = """\
vlan_filter = "42"

[interface."eth0.42"]
parent = "eth0"
vlan_id = 42
addresses = ["10.10.10.11/24"]

[port."eth0.42"]
pool = 4096

[[peer]]
host = "10.10.10.10"
via = "eth0.42"
permanent = true
"""

REALS = 4
VLANS = 64
PEERS_PER_VLAN = 4


def big_board() -> str:
    lines = ["page_size = 4096\nsolicit_timeout = 1\n"]
    for r in range(REALS):
        lines.append(f'[[interface]]\nname = "eth{r}"\nmac = "50:2d:f4:1d:32:{r:02x}"\n')
    for v in range(VLANS):
        for p in range(PEERS_PER_VLAN):
            lines.append(f'[[peer]]\nip = "10.{v}.0.{10 + p}"\nmac = "50:2d:f4:1e:{v:02x}:{p:02x}"\n')
    return "\n".join(lines)


def big_setup() -> str:
    lines = [f'vlan_filter = "100-{99 + VLANS}"\n']
    for v in range(VLANS):
        name = f"eth{v % REALS}.{100 + v}"
        lines.append(
            f'[interface."{name}"]\nparent = "eth{v % REALS}"\nvlan_id = {100 + v}\naddresses = ["10.{v}.0.1/24"]\n'
        )
        lines.append(f'[port."{name}"]\n' + ("pool = 4096\n" if v < REALS else ""))
        for p in range(PEERS_PER_VLAN):
            lines.append(f'[[peer]]\nhost = "10.{v}.0.{10 + p}"\nvia = "{name}"\npermanent = {str(p == 0).lower()}\n')
    return "\n".join(lines)


def timed(fn, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="measured rounds (default 15)")
    opts = parser.parse_args()
    evl = BIN / "evl"
    if not evl.exists():
        print(f"bench_netconfig: no evl script beside {PYTHON}", file=sys.stderr)
        return 0
    from evl_net import api
    from evl_net.netconfig import apply, live, plan, read

    tmp = Path(tempfile.mkdtemp(prefix="evl-bench-nc-"))
    base = {k: v for k, v in os.environ.items() if not k.startswith("EVL_")}
    env = {**base, "EVL_NET_TRANSPORT": "sim", "EVL_NET_AGENT_DIR": str(tmp / "agent")}
    manual_env = {**env, "EVL_SIM_STATE": str(tmp / "manual-state.json")}
    (tmp / "manual.toml").write_text(MANUAL_SETUP)
    (tmp / "big-board.toml").write_text(big_board())
    (tmp / "big.toml").write_text(big_setup())
    big_env = {**env, "EVL_SIM_BOARD": str(tmp / "big-board.toml"), "EVL_SIM_STATE": str(tmp / "big-state.json")}

    launcher = Launcher()
    launcher.run([str(evl), "net-config", "apply", str(tmp / "manual.toml")], manual_env)
    setup, problems = read([str(tmp / "big.toml")])
    assert not problems, problems

    def plan_big() -> int:
        with api.open_board(transport="sim", env=big_env) as board:
            return len(plan.make(setup, live.read(board, setup)).steps)

    def apply_big() -> None:
        os.unlink(big_env["EVL_SIM_STATE"])
        with api.open_board(transport="sim", env=big_env) as board:
            start = live.read(board, setup)
            assert apply.execute(board, plan.make(setup, start).steps, start).ok

    with api.open_board(transport="sim", env=big_env) as board:  # boot the board
        board.links()
    steps = plan_big()
    plan_fresh = timed(plan_big, opts.rounds)
    apply_fresh = timed(apply_big, opts.rounds)
    assert plan_big() == 0
    plan_noop = timed(plan_big, opts.rounds)

    commands = [
        ("python -c pass", [str(PYTHON), "-c", "pass"], base),
        ("evl net -Q -i eth0.42 (manual)", [str(evl), "net", "-Q", "-i", "eth0.42"], manual_env),
        ("evl net-config plan (manual, no-op)", [str(evl), "net-config", "plan", str(tmp / "manual.toml")], manual_env),
        ("evl net-config plan (64 VLANs, no-op)", [str(evl), "net-config", "plan", str(tmp / "big.toml")], big_env),
    ]
    times: list[list[float]] = [[] for _ in commands]
    codes: list[set[int]] = [set() for _ in commands]
    warmup = 5
    for round_ in range(warmup + opts.rounds):
        for k in range(len(commands)):
            i = (round_ + k) % len(commands)
            elapsed, _, code = launcher.run(commands[i][1], commands[i][2])
            codes[i].add(code)
            if round_ >= warmup:
                times[i].append(elapsed)
    launcher.close()
    medians = [statistics.median(t) for t in times]
    query = medians[1]
    rows = [
        [label, f"{m:.1f}", f"{m / medians[0]:.2f}×", f"{m / query:.2f}×", ",".join(map(str, sorted(c)))]
        for (label, _, _), m, c in zip(commands, medians, codes, strict=True)
    ]
    from tabulate import tabulate

    print(
        tabulate(
            rows,
            ["process", "median ms", "× python", "× evl net -Q", "exit"],
            disable_numparse=True,
            colalign=("left", "right", "right", "right", "left"),
        )
    )
    ok = "met" if medians[2] <= 2 * query else "MISSED"
    print(f"\ntarget: the manual's no-op plan within 2× evl net -Q: {medians[2] / query:.2f}× ({ok})")
    print(
        f"\nin-process, {VLANS} VLAN ports on {REALS} real devices, {VLANS * PEERS_PER_VLAN} peers "
        f"({steps} steps from a fresh board), medians of {opts.rounds}:"
    )
    print(
        tabulate(
            [
                ["plan, fresh board", f"{plan_fresh:.1f}"],
                ["apply, fresh board", f"{apply_fresh:.1f}"],
                ["plan, nothing to do", f"{plan_noop:.1f}"],
            ],
            ["library API", "median ms"],
            disable_numparse=True,
            colalign=("left", "right"),
        )
    )
    return 0


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # a report, never a failure
        print(f"bench_netconfig: {type(exc).__name__}: {exc}", file=sys.stderr)
    sys.exit(0)
