"""Start-up and query costs of the evl commands, against ``python -c pass``.

Run it with the interpreter whose ``bin/`` holds the ``evl`` scripts::

    /tmp/venv/bin/python benchmarks/run.py [--rounds N] [--warmup N]

Method.  Every command runs as a fresh process and its wall time (fork to
reap, ``perf_counter_ns``) and peak resident set size (``ru_maxrss`` from
``os.wait4``: the process and any child it waited for) are taken at once.  The
processes are forked by a small helper (``python -I -S``, fed over a pipe), not
by this runner: ``ru_maxrss`` survives exec and starts from what the forking
process had mapped (``posix_spawn``/``vfork`` would report at least this
runner's own peak, ~13 MiB, for every command); forked from the helper the
floor is ~5 MiB, below any Python process measured here.  The commands are
measured side by side in one run: each round runs every command once,
round-robin, starting one command further each round so that no command
always follows the same one; the first ``--warmup`` rounds (7) fill the page
cache and are discarded, the next ``--rounds`` rounds (30) are kept.  The
table shows, per command, the median wall time, its ratio to the median of
``python -c pass`` run by the same interpreter as the ``evl`` scripts
(``sys.executable``, not resolved: the venv's own start-up is part of the
baseline), the largest peak RSS seen, the target and whether it is met.

The ``evl net`` queries use the simulator (EVL_NET_TRANSPORT=sim) with its
state in a temporary directory, where ``evl net -ei eth0.42`` ran once first;
the registry cache (``XDG_CACHE_HOME``) is in that directory too, filled by
the warm-up rounds.  ``--before PYTHON`` measures an earlier install's
scripts in the same rounds, for a before/after table from one run.
The runner reports; it does not assert: it always exits 0.
"""

from __future__ import annotations

import argparse
import marshal
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PYTHON = Path(sys.executable)
BIN = PYTHON.parent
MIB = 1024 * 1024


# Runs in the helper: (argv, env) in, (wall ns, ru_maxrss KiB, exit code) out, marshalled.
HELPER = r"""
import marshal, os, sys, time
inp, out = sys.stdin.buffer, sys.stdout.buffer
null = os.open(os.devnull, os.O_RDWR)
while True:
    try:
        argv, env = marshal.load(inp)
    except EOFError:
        break
    start = time.perf_counter_ns()
    pid = os.fork()
    if pid == 0:
        try:
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter_ns() - start
    marshal.dump((elapsed, usage.ru_maxrss, os.waitstatus_to_exitcode(status)), out)
    out.flush()
"""


class Launcher:
    """The forking helper: ``run(argv, env)`` -> (wall ms, peak RSS bytes, exit code)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [str(PYTHON), "-I", "-S", "-c", HELPER], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )

    def run(self, argv: list[str], env: dict[str, str]) -> tuple[float, int, int]:
        marshal.dump((argv, env), self.proc.stdin)
        self.proc.stdin.flush()
        elapsed, maxrss, code = marshal.load(self.proc.stdout)
        return elapsed / 1e6, maxrss * 1024, code  # ru_maxrss is in KiB on Linux

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def print_table(headers: list[str], rows: list[list[str]], right: set[int]) -> None:
    """``rows`` under ``headers``, columns ``right`` aligned right, the others left (every benchmark's table)."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]
    for row in [headers, ["-" * w for w in widths], *rows]:
        cells = [c.rjust(w) if j in right else c.ljust(w) for j, (c, w) in enumerate(zip(row, widths, strict=True))]
        print("  ".join(cells).rstrip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30, help="measured rounds (default 30)")
    parser.add_argument("--warmup", type=int, default=7, help="discarded rounds first (default 7)")
    parser.add_argument(
        "--before",
        metavar="PYTHON",
        help="also measure the evl scripts beside PYTHON (an install of an earlier version), "
        "interleaved with these: the table then has a before and an after column",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="then run every benchmarks/bench_*.py (traffic model, eBPF interpreter, remote)",
    )
    opts = parser.parse_args()

    variants = [("after", PYTHON)] + ([("before", Path(opts.before))] if opts.before else [])
    for _, python in variants:
        if not (python.parent / "evl").exists():
            print(f"benchmarks: no evl script beside {python}; run this file with the venv's python", file=sys.stderr)
            return 0
    tmp = tempfile.TemporaryDirectory(prefix="evl-bench-")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("EVL_")}
    launcher = Launcher()
    commands = []  # (variant, label, argv, env)
    for variant, python in variants:
        evl = str(python.parent / "evl")
        where = os.path.join(tmp.name, variant)
        # each variant its own state and caches (the registry cache is per interpreter anyway)
        env = {**base_env, "XDG_CACHE_HOME": os.path.join(where, "cache")}
        sim_env = {
            **env,
            "EVL_NET_TRANSPORT": "sim",
            "EVL_SIM_STATE": os.path.join(where, "sim-state.json"),
            "XDG_STATE_HOME": os.path.join(where, "xdg"),
        }
        _, _, code = launcher.run([evl, "net", "-ei", "eth0.42"], sim_env)
        if code != 0:
            print(f"benchmarks: {variant}: 'evl net -ei eth0.42' failed (exit {code})", file=sys.stderr)
        commands += [
            (variant, "python -c pass", [str(python), "-c", "pass"], env),
            (variant, "evl --version", [evl, "--version"], env),
            (variant, "evl help", [evl, "help"], env),
            (variant, "evl net -QoRTf -i eth0.42", [evl, "net", "-QoRTf", "-i", "eth0.42"], sim_env),
            (variant, "evl net -Q -i eth0.42", [evl, "net", "-Q", "-i", "eth0.42"], sim_env),
        ]
    # label -> (target text, max ratio, max RSS MiB, goal ratio)
    targets = {
        "python -c pass": ("baseline", None, None, None),
        "evl --version": ("≤ 2×", 2.0, None, None),
        "evl help": ("≤ 3.5×", 3.5, None, None),
        "evl net -QoRTf -i eth0.42": ("≤ 3× (goal 2.5×)", 3.0, 12.0, 2.5),
        "evl net -Q -i eth0.42": ("≤ 3× (goal 2.5×)", 3.0, 12.0, 2.5),
    }
    times: list[list[float]] = [[] for _ in commands]
    rss: list[int] = [0] * len(commands)
    failures: list[int] = [0] * len(commands)
    for round_ in range(opts.warmup + opts.rounds):
        for k in range(len(commands)):
            i = (round_ + k) % len(commands)
            argv, env = commands[i][2], commands[i][3]
            elapsed, peak, code = launcher.run(argv, env)
            failures[i] += code != 0
            if round_ >= opts.warmup:
                times[i].append(elapsed)
                rss[i] = max(rss[i], peak)
    launcher.close()
    tmp.cleanup()

    figures = {}  # (variant, label) -> (median ms, ratio, MiB, failures)
    for variant, _ in variants:
        base_i = next(i for i, c in enumerate(commands) if c[0] == variant and c[1] == "python -c pass")
        base = statistics.median(times[base_i]) if times[base_i] else float("nan")
        for i, (v, label, _, _) in enumerate(commands):
            if v == variant:
                median = statistics.median(times[i]) if times[i] else float("nan")
                figures[variant, label] = (median, median / base, rss[i] / MIB, failures[i])

    headers = ["command", "median ms", "× python", "max RSS MiB"]
    if opts.before:
        headers = ["command", "before ms", "before ×", "before MiB", "after ms", "after ×", "after MiB"]
    headers += ["target", "result"]
    rows = []
    for label, (target, max_ratio, max_mib, goal) in targets.items():
        row = [label]
        for variant in ("before", "after") if opts.before else ("after",):
            median, ratio, mib, _ = figures[variant, label]
            row += [f"{median:.1f}", f"{ratio:.2f}×", f"{mib:.1f}"]
        median, ratio, mib, failed = figures["after", label]
        if failed:
            mark = f"error ({failed} failed)"
        elif max_ratio is None and max_mib is None:
            mark = ""
        else:
            ok = (max_ratio is None or ratio <= max_ratio) and (max_mib is None or mib <= max_mib)
            mark = "pass" if ok else "MISS"
            if goal is not None:
                mark += ", goal met" if ratio <= goal else ", goal not met"
        if max_mib is not None:
            target = f"{target}, ≤ {max_mib:g} MiB"
        rows.append([*row, target, mark])

    print_table(headers, rows, right=set(range(1, len(headers) - 2)))
    interpreters = "; ".join(f"{v}: {p}" for v, p in variants)
    print(f"\n{opts.rounds} rounds (+{opts.warmup} warm-up), interleaved; {interpreters}")
    if opts.all:
        for script in sorted(Path(__file__).resolve().parent.glob("bench_*.py")):
            print(f"\n== {script.name}")
            sys.stdout.flush()
            subprocess.run([str(PYTHON), str(script)], check=False)
    return 0


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # a report, never a failure
        print(f"benchmarks: {type(exc).__name__}: {exc}", file=sys.stderr)
    sys.exit(0)
