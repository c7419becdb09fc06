"""Start-up and query costs of the evl commands, against ``python -c pass``.

Run it with the interpreter whose ``bin/`` holds the ``evl`` scripts::

    /tmp/venv/bin/python benchmarks/run.py [--rounds N] [--warmup N]

Method.  Every command runs as a fresh process (``os.posix_spawn``, output to
/dev/null) and is reaped with ``os.wait4``, which gives its wall time (spawn
to reap, ``perf_counter``) and its peak resident set size (``ru_maxrss``, the
process and any child it waited for).  The commands are measured side by side
in one run: each round runs every command once, round-robin, starting one
command further each round so that no command always follows the same one;
the first ``--warmup`` rounds (7) fill the page cache and are discarded, the
next ``--rounds`` rounds (30) are kept.  The table shows, per command, the
median wall time, its ratio to the median of ``python -c pass`` run by the
same interpreter (``sys.executable``, not resolved: the venv's own start-up is
part of the baseline), the largest peak RSS seen, the target and whether the
median meets it.

The ``evl net`` queries use the simulator (EVL_NET_TRANSPORT=sim) with its
state in a temporary directory, where ``evl net -ei eth0.42`` ran once first.
The runner reports; it does not assert: it always exits 0.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

PYTHON = Path(sys.executable)
BIN = PYTHON.parent
MIB = 1024 * 1024  # ru_maxrss is in KiB on Linux


def spawn(argv: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """(wall ms, peak RSS bytes, exit code) of one fresh process."""
    null = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)]
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=null)
    _, status, usage = os.wait4(pid, 0)
    elapsed = (time.perf_counter() - start) * 1000
    return elapsed, usage.ru_maxrss * 1024, os.waitstatus_to_exitcode(status)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30, help="measured rounds (default 30)")
    parser.add_argument("--warmup", type=int, default=7, help="discarded rounds first (default 7)")
    opts = parser.parse_args()

    evl = BIN / "evl"
    if not evl.exists():
        print(f"benchmarks: no evl script beside {PYTHON}; run this file with the venv's python", file=sys.stderr)
        return 0
    tmp = tempfile.TemporaryDirectory(prefix="evl-bench-")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("EVL_")}
    sim_env = {
        **base_env, "EVL_NET_TRANSPORT": "sim",
        "EVL_SIM_STATE": os.path.join(tmp.name, "sim-state.json"),
        "XDG_STATE_HOME": os.path.join(tmp.name, "xdg"),
    }
    _, _, code = spawn([str(evl), "net", "-ei", "eth0.42"], sim_env)
    if code != 0:
        print(f"benchmarks: 'evl net -ei eth0.42' failed (exit {code})", file=sys.stderr)

    net_target = ("≤ 6× (goal 3.5×)", 6.0, 30.0)
    # (label, argv, env, (target text, max ratio, max RSS MiB))
    commands = [
        ("python -c pass", [str(PYTHON), "-c", "pass"], base_env, ("baseline", None, None)),
        ("evl --version", [str(evl), "--version"], base_env, ("≤ 4×", 4.0, None)),
        ("evl help", [str(evl), "help"], base_env, ("—", None, None)),
        ("evl net -QoRTf -i eth0.42", [str(evl), "net", "-QoRTf", "-i", "eth0.42"], sim_env, net_target),
        ("evl net -Q -i eth0.42", [str(evl), "net", "-Q", "-i", "eth0.42"], sim_env, net_target),
    ]
    times: list[list[float]] = [[] for _ in commands]
    rss: list[int] = [0] * len(commands)
    failures: list[int] = [0] * len(commands)
    for round_ in range(opts.warmup + opts.rounds):
        for k in range(len(commands)):
            i = (round_ + k) % len(commands)
            _, argv, env, _ = commands[i]
            elapsed, peak, code = spawn(argv, env)
            failures[i] += code != 0
            if round_ >= opts.warmup:
                times[i].append(elapsed)
                rss[i] = max(rss[i], peak)
    tmp.cleanup()

    base = statistics.median(times[0]) if times[0] else float("nan")
    rows = []
    for (label, _, _, (target, max_ratio, max_mib)), samples, peak, failed in zip(commands, times, rss, failures):
        median = statistics.median(samples) if samples else float("nan")
        ratio = median / base
        mib = peak / MIB
        if failed:
            mark = f"error ({failed} failed)"
        elif max_ratio is None and max_mib is None:
            mark = ""
        else:
            ok = (max_ratio is None or ratio <= max_ratio) and (max_mib is None or mib <= max_mib)
            mark = "pass" if ok else "MISS"
        if max_mib is not None:
            target = f"{target}, ≤ {max_mib:g} MiB"
        rows.append([label, f"{median:.1f}", f"{ratio:.2f}×", f"{mib:.1f}", target, mark])

    headers = ["command", "median ms", "× python", "max RSS MiB", "target", ""]
    try:
        from tabulate import tabulate

        print(tabulate(rows, headers, colalign=("left", "right", "right", "right", "left", "left")))
    except ImportError:
        widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]
        for row in [headers, ["-" * w for w in widths], *rows]:
            print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    print(f"\n{opts.rounds} rounds (+{opts.warmup} warm-up), interleaved; interpreter {PYTHON}")
    return 0


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # a report, never a failure
        print(f"benchmarks: {type(exc).__name__}: {exc}", file=sys.stderr)
    sys.exit(0)
