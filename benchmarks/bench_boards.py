#!/usr/bin/env python3
"""What a large board and a state file of many boards cost ``evl net -Q`` on the simulator (issue 17).

Run it with the interpreter whose ``bin/`` holds the ``evl`` scripts::

    .venv/bin/python benchmarks/bench_boards.py [--rounds N] [--warmup N] [--before PYTHON]

Two targets, each a ratio of two commands measured side by side:

1. ``evl net --board big.toml -Q -i eth3.999`` on a generated board of 4000
   interfaces (a loopback, four NICs, 3995 VLAN devices with addresses) costs
   at most 1.2x ``evl net -Q -i eth0.42`` on the default board;
2. on a state file holding the state of 100 boards (generated copies of the
   default board, each used once), ``evl net --board bNNN.toml -Q -i eth0.42``
   alternating between two of the boards costs at most 1.05x the same command
   always on the same board (each on its own copy of the state file, so that
   the "same board" one never switches).

Method (that of ``benchmarks/run.py``).  Every command runs as a fresh
process, forked by a small helper (``python -I -S``, fed over a pipe); its
wall time is taken from fork to reap.  Each round runs every command once,
round-robin, starting one command further each round; the first
``--warmup`` rounds are discarded (they also boot every board and fill the
board cache), the next ``--rounds`` kept.  The table shows each command's
median, and each target's ratio of medians.  Everything (boards, state files,
the board cache: ``XDG_CACHE_HOME``) lives in a temporary directory, and so
does the bytecode of the modules (``PYTHONPYCACHEPREFIX``, with
``PYTHONDONTWRITEBYTECODE`` unset: an installed package has its bytecode, and
compiling every module on every call would swamp what is measured;
``--no-bytecode`` keeps the environment's setting).  The benchmark reports;
it does not assert: it always exits 0.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import PYTHON, Launcher, print_table  # the method of run.py, its forking helper

BIN = PYTHON.parent
MANUAL = Path(__file__).resolve().parent.parent / "plugins" / "net" / "evl_net" / "boards" / "manual.toml"
BIG_INTERFACES = 4000
BOARDS = 100


def big_board() -> str:
    """A board of BIG_INTERFACES interfaces: lo, eth0..eth3, and VLAN devices on them, with addresses."""
    out = [
        "page_size = 4096\n",
        '[[interface]]\nname = "lo"\nloopback = true\nmtu = 65536\ndriver = "loopback"\naddresses = ["127.0.0.1/8"]\n',
    ]
    for nic in range(4):
        out.append(
            f'[[interface]]\nname = "eth{nic}"\ndriver = "fec"\nbus = "21{nic:02d}000.ethernet"\n'
            f'mac = "50:2d:f4:1d:32:{nic:02x}"\naddresses = ["192.0.{nic}.11/24"]\n'
        )
    count = BIG_INTERFACES - 5
    for i in range(count):
        nic, vid = i % 4, 2 + i // 4
        out.append(
            f'[[interface]]\nname = "eth{nic}.{vid}"\nparent = "eth{nic}"\nvlan_id = {vid}\n'
            f'mac = "50:2d:f4:1d:32:{nic:02x}"\naddresses = ["10.{nic}.{vid // 256}.{vid % 256}/16"]\n'
        )
    out.append('[[route]]\ndst = "default"\nvia = "192.0.0.1"\ndev = "eth0"\n')
    return "".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30, help="measured rounds (default 30)")
    parser.add_argument("--warmup", type=int, default=5, help="discarded rounds first (default 5)")
    parser.add_argument(
        "--no-bytecode", action="store_true", help="keep PYTHONDONTWRITEBYTECODE as it is (no bytecode in a temp dir)"
    )
    parser.add_argument(
        "--before",
        metavar="PYTHON",
        help="also measure the evl scripts beside PYTHON (an earlier install) in the same rounds: before/after columns",
    )
    opts = parser.parse_args()

    variants = [("after", BIN / "evl")] + ([("before", Path(opts.before).parent / "evl")] if opts.before else [])
    for _, evl in variants:
        if not evl.exists():
            print(f"bench_boards: no evl script at {evl}; run this file with the venv's python", file=sys.stderr)
            return 0
    tmp = tempfile.TemporaryDirectory(prefix="evl-bench-boards-")
    launcher = Launcher()
    commands: list[tuple[str, str, Any, dict[str, str]]] = []  # (variant, label, argv maker, env)
    state_sizes: dict[str, dict[str, int]] = {}
    try:
        for variant, evl in variants:
            made = _setup(Path(tmp.name) / variant, evl, launcher, opts.no_bytecode)
            if made is None:
                return 0
            commands += [(variant, label, argv, env) for label, argv, env in made]
        times: list[list[float]] = [[] for _ in commands]
        failures = [0] * len(commands)
        for round_ in range(opts.warmup + opts.rounds):
            for k in range(len(commands)):
                i = (round_ + k) % len(commands)
                _, _, argv, cmd_env = commands[i]
                elapsed, _, code = launcher.run(argv(), cmd_env)
                failures[i] += code != 0
                if round_ >= opts.warmup:
                    times[i].append(elapsed)
        for variant, _ in variants:
            d = Path(tmp.name) / variant
            state_sizes[variant] = {name: (d / name).stat().st_size for name in ("big.json", "switch.json")}
    finally:
        launcher.close()
        tmp.cleanup()

    medians = {
        (v, label): statistics.median(t) if t else float("nan")
        for (v, label, _, _), t in zip(commands, times, strict=True)
    }
    failed = {(v, label): f for (v, label, _, _), f in zip(commands, failures, strict=True)}
    names = [v for v, _ in variants][::-1]  # before first
    labels = list(dict.fromkeys(label for _, label, _, _ in commands))
    headers = ["command", *(f"{v} ms" for v in names)]
    rows = [
        [
            label,
            *(
                f"{medians[v, label]:.1f}" + (f" ({failed[v, label]} failed)" if failed[v, label] else "")
                for v in names
            ),
        ]
        for label in labels
    ]
    print_table(headers, rows, right=set(range(1, len(headers))))
    print()
    for v in names:
        for label, ratio, limit in (
            (f"1. {BIG_INTERFACES} interfaces / manual board", medians[v, labels[2]] / medians[v, labels[1]], 1.2),
            (f"2. switching / same board ({BOARDS} boards)", medians[v, labels[4]] / medians[v, labels[3]], 1.05),
        ):
            print(f"{v}: {label}: {ratio:.3f}x (target <= {limit}x): {'pass' if ratio <= limit else 'MISS'}")
        sizes = state_sizes[v]
        print(
            f"{v}: state files: {BIG_INTERFACES}-interface board {sizes['big.json']} bytes, "
            f"{BOARDS} boards {sizes['switch.json']} bytes"
        )
    bytecode = "as the environment says" if opts.no_bytecode else "cached in the temporary directory"
    interpreters = "; ".join(f"{v}: {e.parent}" for v, e in variants)
    print(f"{opts.rounds} rounds (+{opts.warmup} warm-up), interleaved; {interpreters}; bytecode {bytecode}")
    return 0


def _setup(d: Path, evl: Path, launcher: Launcher, no_bytecode: bool) -> list[tuple[str, Any, dict[str, str]]] | None:
    """One variant's boards and state files in ``d``; its commands (label, argv maker, environment)."""
    d.mkdir(parents=True)
    python = evl.parent / "python"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("EVL_")}
    base_env.update(EVL_NET_TRANSPORT="sim", XDG_STATE_HOME=str(d / "xdg"), XDG_CACHE_HOME=str(d / "cache"))
    if not no_bytecode:
        base_env.pop("PYTHONDONTWRITEBYTECODE", None)
        base_env["PYTHONPYCACHEPREFIX"] = str(d / "pycache")

    def env(state: str) -> dict[str, str]:
        return {**base_env, "EVL_SIM_STATE": str(d / state)}

    big = d / "big.toml"
    big.write_text(big_board())
    manual = MANUAL.read_text()
    boards = []
    for i in range(BOARDS):
        path = d / f"b{i:03d}.toml"
        path.write_text(f"# board {i}\n{manual}")
        boards.append(str(path))
    # The 100 boards' state: each one used once (a port enabled); then a copy for each command.
    for path in boards:
        _, _, code = launcher.run([str(evl), "net", "--board", path, "-ei", "eth0.42"], env("many.json"))
        if code != 0:
            print(f"bench_boards: setting up board {path} failed (exit {code})", file=sys.stderr)
            return None
    shutil.copy(d / "many.json", d / "same.json")
    shutil.copy(d / "many.json", d / "switch.json")
    launcher.run([str(evl), "net", "-ei", "eth0.42"], env("manual.json"))
    launcher.run([str(evl), "net", "--board", str(big), "-ei", "eth3.999"], env("big.json"))

    toggle = [0]

    def switching() -> list[str]:
        toggle[0] ^= 1
        return [str(evl), "net", "--board", boards[toggle[0]], "-Q", "-i", "eth0.42"]

    return [
        ("python -c pass", lambda: [str(python), "-c", "pass"], base_env),
        ("manual board: evl net -Q -i eth0.42", lambda: [str(evl), "net", "-Q", "-i", "eth0.42"], env("manual.json")),
        (
            f"{BIG_INTERFACES} interfaces: evl net -Q -i eth3.999",
            lambda: [str(evl), "net", "--board", str(big), "-Q", "-i", "eth3.999"],
            env("big.json"),
        ),
        (
            f"{BOARDS} boards, same board: -Q -i eth0.42",
            lambda: [str(evl), "net", "--board", boards[0], "-Q", "-i", "eth0.42"],
            env("same.json"),
        ),
        (f"{BOARDS} boards, switching: -Q -i eth0.42", switching, env("switch.json")),
    ]


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # a report, never a failure
        print(f"bench_boards: {type(exc).__name__}: {exc}", file=sys.stderr)
    sys.exit(0)
