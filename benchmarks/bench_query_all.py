#!/usr/bin/env python3
"""What ``evl net -Q --all-interfaces`` costs per row: a 4000-interface board, against ``-Q -i IF`` on it.

Run it with the interpreter whose ``bin/`` holds the ``evl`` scripts::

    /tmp/venv/bin/python benchmarks/bench_query_all.py [--rounds N] [--warmup N] [--vlans N] [--before DIR]

The board (:func:`big_board`, written to a temporary directory): the
loopback, three real devices (two out-of-band capable) and ``--vlans`` VLAN
devices spread over the two capable ones (4000 by default); every third
device that is up boots as a port with counters of its own.  The
simulator's state, the caches (XDG_CACHE_HOME) and the bytecode
(PYTHONPYCACHEPREFIX: compiled once, as an install has it, even under
PYTHONDONTWRITEBYTECODE) live in the same directory, and one
``-Q --all-interfaces`` runs first so that every command finds the state made.

The commands use the same board, so what the board costs to read (its
parse, the state) is in all of them and the ratios show what the rows cost:
``-Q -i eth0.2`` (one port), ``-Q --all-interfaces`` (the table) and
``-Q --all-interfaces --json``, each a fresh process, timed side by side in
one run with benchmarks/run.py's method (its forking helper; interleaved
rounds, each starting one command further; ``--warmup`` rounds discarded,
medians of ``--rounds``).  Target: each ``--all-interfaces`` form within 3x
the single query.  ``--before DIR`` runs the same commands from an earlier
source tree (``git archive HEAD | tar -x -C DIR``) in the same rounds, each
variant with its own state and caches, for a before/after table from one run.
The runner reports; it does not assert.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import BIN, MIB, Launcher, print_table

TARGET = 3.0
PARENTS = ("eth0", "eth1")


def big_board(vlans: int = 4000) -> str:
    """A board of ``vlans`` VLAN devices on two oob-capable NICs (plus lo and a NIC that is not capable)."""
    out = [
        "page_size = 4096\n",
        '[[interface]]\nname = "lo"\nloopback = true\nmtu = 65536\ndriver = "loopback"\n',
    ]
    for i, parent in enumerate(PARENTS):
        out.append(f'[[interface]]\nname = "{parent}"\ndriver = "fec"\nmac = "50:2d:f4:1d:32:d{i}"\n')
    out.append('[[interface]]\nname = "eth2"\ndriver = "r8169"\noob_capable = false\n')
    per_parent = -(-vlans // len(PARENTS))
    for n in range(vlans):
        parent, vid = PARENTS[n // per_parent], 2 + n % per_parent
        text = f'[[interface]]\nname = "{parent}.{vid}"\nparent = "{parent}"\nvlan_id = {vid}\n'
        if n % 7 == 3:
            text += "up = false\n"
        if n % 3 == 0 and n % 7 != 3:  # a port (on a device that is up)
            text += "port = true\n"
            text += (
                f"counters = {{ rx_packets = {n * 11}, rx_bytes = {n * 1500}, tx_packets = {n * 5},"
                f" tx_bytes = {n * 700}, csum_errors = {n % 5}, rx_nomem = {n % 3}, tx_nomem = {n % 2} }}\n"
            )
        out.append(text)
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="measured rounds (default 15)")
    parser.add_argument("--warmup", type=int, default=3, help="discarded rounds first (default 3)")
    parser.add_argument("--vlans", type=int, default=4000, help="VLAN devices on the board (default 4000)")
    parser.add_argument(
        "--before",
        metavar="DIR",
        help="also measure the source tree DIR (an earlier version, e.g. from git archive) through the same "
        "scripts (PYTHONPATH=DIR:DIR/plugins/net), interleaved with this one",
    )
    opts = parser.parse_args()

    evl = BIN / "evl"
    if not evl.exists():
        print(
            f"benchmarks: no evl script beside {sys.executable}; run this file with the venv's python", file=sys.stderr
        )
        return 0
    tmp = tempfile.TemporaryDirectory(prefix="evl-bench-all-")
    board = Path(tmp.name, "board.toml")
    board.write_text(big_board(opts.vlans))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("EVL_") and k != "PYTHONDONTWRITEBYTECODE"}
    variants = [("", base_env)]
    if opts.before:
        tree = Path(opts.before).resolve()
        variants.insert(0, ("before: ", {**base_env, "PYTHONPATH": f"{tree}:{tree / 'plugins' / 'net'}"}))
    launcher = Launcher()
    commands = []  # (variant, label, argv, env)
    for n, (variant, env) in enumerate(variants):
        where = os.path.join(tmp.name, str(n))
        env = {
            **env,
            "EVL_NET_TRANSPORT": "sim",
            "EVL_SIM_STATE": os.path.join(where, "state.json"),
            "XDG_STATE_HOME": os.path.join(where, "xdg"),
            "XDG_CACHE_HOME": os.path.join(where, "cache"),
            # compiled once, as an install has it (whatever PYTHONDONTWRITEBYTECODE said), not in the tree
            "PYTHONPYCACHEPREFIX": os.path.join(where, "pycache"),
        }
        net = [str(evl), "net", f"--board={board}"]
        _, _, code = launcher.run([*net, "-Q", "--all-interfaces"], env)
        if code != 0:
            print(f"benchmarks: {variant}'evl net -Q --all-interfaces' failed (exit {code})", file=sys.stderr)
        commands += [
            (variant, "evl net -Q -i eth0.2", [*net, "-Q", "-i", "eth0.2"], env),
            (variant, "evl net -Q --all-interfaces", [*net, "-Q", "--all-interfaces"], env),
            (variant, "evl net -Q --all-interfaces --json", [*net, "-Q", "--all-interfaces", "--json"], env),
        ]
    times: list[list[float]] = [[] for _ in commands]
    rss = [0] * len(commands)
    failures = [0] * len(commands)
    for round_ in range(opts.warmup + opts.rounds):
        for k in range(len(commands)):
            i = (round_ + k) % len(commands)
            elapsed, peak, code = launcher.run(commands[i][2], commands[i][3])
            failures[i] += code != 0
            if round_ >= opts.warmup:
                times[i].append(elapsed)
                rss[i] = max(rss[i], peak)
    launcher.close()
    tmp.cleanup()

    headers = ["command", "median ms", "× -Q -i", "max RSS MiB", "target", "result"]
    rows = []
    for i, (variant, label, _argv, _env) in enumerate(commands):
        first = i - i % 3  # the variant's -Q -i
        median = statistics.median(times[i])
        ratio = median / statistics.median(times[first])
        target = "baseline" if i == first else f"≤ {TARGET:g}×"
        if failures[i]:
            mark = f"error ({failures[i]} failed)"
        else:
            mark = "" if i == first else "pass" if ratio <= TARGET else "MISS"
        rows.append([variant + label, f"{median:.1f}", f"{ratio:.2f}×", f"{rss[i] / MIB:.1f}", target, mark])
    print_table(headers, rows, right={1, 2, 3})
    print(
        f"\n{opts.vlans + 4} interfaces; {opts.rounds} rounds (+{opts.warmup} warm-up), interleaved;"
        f" interpreter {sys.executable}"
    )
    return 0


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # a report, never a failure
        print(f"benchmarks: {type(exc).__name__}: {exc}", file=sys.stderr)
    sys.exit(0)
