#!/usr/bin/env python3
"""What a fleet on Ansible costs: one ``evl.net.config`` task against ``evl net-config plan`` on the board.

Run it with the test venv's interpreter (ansible-core and the evl scripts in its ``bin/``)::

    .venv/bin/python benchmarks/bench_ansible.py [--rounds N] [--boards N]

The boards are the Ansible tests' lab (tests/ansible_lab.py): an OpenSSH sshd
on a loopback port, every board a host of the inventory with its own
simulator state, reached as root with a pinned host key.  Each board holds
the README's setup, applied once; then, medians of ``--rounds``:

* ``evl net-config plan`` of it, a fresh process on the board: the floor;
* ``ansible-playbook`` running ``evl.net.config`` with it (nothing to do) on
  localhost (``connection: local``), on one board over SSH, and on
  ``--boards`` boards over SSH (forks = boards; pipelining on, as the tests
  run it), each from a cold start (no ssh connection kept between rounds).

On loopback the boards' sshd and module processes share this machine's cores
with the controller, which a real fleet does not: the per-board figure is an
upper bound.  The runner reports; it does not assert.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

SETUP = {
    "vlan_filter": "42",
    "interface": {"eth0.42": {"parent": "eth0", "vlan_id": 42, "addresses": ["10.10.10.11/24"]}},
    "port": {"eth0.42": {"pool": 4096}},
    "peer": [{"host": "10.10.10.10", "via": "eth0.42", "permanent": True}],
}


def _median_s(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--boards", type=int, default=16)
    args = parser.parse_args()

    import ansible_lab

    evl = str(Path(sys.executable).parent / "evl")
    tmp = Path(tempfile.mkdtemp(prefix="bench-ansible-"))
    sshd = ansible_lab.start_sshd(tmp / "sshd")
    try:
        names = [f"board{i:02d}" for i in range(1, args.boards + 1)]
        inventory = ansible_lab.board_inventory(tmp, sshd, names)
        hosts = inventory["boards"]["hosts"]
        env = ansible_lab.clean_env(tmp) | {"ANSIBLE_COLLECTIONS_PATH": str(ansible_lab.REPO / "ansible")}
        env["ANSIBLE_FORKS"] = str(max(args.boards, 1))
        toml = tmp / "net.toml"
        toml.write_text(_toml())
        play = [
            {
                "hosts": "{{ target }}",
                "gather_facts": False,
                "environment": {"EVL_SIM_STATE": "{{ evl_dir }}/sim.json", "EVL_NET_AGENT_DIR": "{{ evl_dir }}/run"},
                "tasks": [{"name": "setup", "evl.net.config": {"config": SETUP, "transport": "sim"}}],
            }
        ]

        def run(target: str) -> None:
            shutil.rmtree(tmp / "cp", ignore_errors=True)  # a cold start: no kept ssh connection
            res = ansible_lab.playbook(tmp / "runs", play, inventory, env, "-e", f"target={target}")
            bad = [r for r in res.records if r["status"] != "ok" or r["result"].get("changed")]
            if res.returncode != 0 or bad:
                raise SystemExit(f"the playbook failed on {target}:\n{res.output[-2000:]}")

        # apply once everywhere (the first run changes; every later one must be a no-op)
        first = ansible_lab.playbook(tmp / "runs", play, inventory, env, "-e", "target=boards")
        assert first.returncode == 0, first.output[-2000:]
        board_env = {**os.environ, "EVL_SIM_STATE": str(Path(hosts["localhost"]["evl_dir"]) / "sim.json")}

        def plan() -> None:
            out = subprocess.run([evl, "net-config", "plan", str(toml)], env=board_env, capture_output=True)
            assert out.returncode == 0, out.stderr

        rows = [("evl net-config plan (no-op), on the board", _median_s(plan, args.rounds), 1)]
        rows.append(
            ("ansible-playbook evl.net.config, localhost (local)", _median_s(lambda: run("localhost"), args.rounds), 1)
        )
        rows.append(
            ("ansible-playbook evl.net.config, 1 board over SSH", _median_s(lambda: run(names[0]), args.rounds), 1)
        )
        group = ",".join(names)
        rows.append(
            (
                f"ansible-playbook evl.net.config, {args.boards} boards over SSH",
                _median_s(lambda: run(group), args.rounds),
                args.boards,
            )
        )
    finally:
        ansible_lab.stop(sshd)
        shutil.rmtree(tmp, ignore_errors=True)
    base = rows[0][1]
    one_ssh = rows[2][1]
    print(f"{'measure':58} {'median':>9} {'x plan':>7} {'x 1 ssh':>8} {'per board':>10}")
    for label, seconds, boards in rows:
        print(
            f"{label:58} {seconds * 1000:7.0f}ms {seconds / base:6.1f}x {seconds / one_ssh:7.2f}x "
            f"{seconds / boards * 1000:8.0f}ms"
        )
    print(json.dumps({"cpus": os.cpu_count(), "rounds": args.rounds, "boards": args.boards}))
    return 0


def _toml() -> str:
    return (
        'vlan_filter = "42"\n\n[interface."eth0.42"]\nparent = "eth0"\nvlan_id = 42\naddresses = ["10.10.10.11/24"]\n\n'
        '[port."eth0.42"]\npool = 4096\n\n[[peer]]\nhost = "10.10.10.10"\nvia = "eth0.42"\npermanent = true\n'
    )


if __name__ == "__main__":
    sys.exit(main())
