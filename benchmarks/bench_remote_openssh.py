"""``evl net --remote`` behind a real OpenSSH sshd on 127.0.0.1: the agent's memory under a flood, a fleet's retries.

Run it as root (sshd must be started) with the interpreter whose ``bin/`` holds the ``evl``
scripts, from the repository's root::

    .venv/bin/python benchmarks/bench_remote_openssh.py [--rounds N] [--flood-seconds S] [--old PYTHON]

The board is tests/openssh_lab.py: ``/usr/sbin/sshd -D`` on a free port of 127.0.0.1 with the
stock ``MaxStartups 10:30:100``, every workstation key's forced command being the agent
(``restrict,command="<python> -m evl_core net-agent --stdio --transport=sim ..."``), every file
in a temporary directory.

* **agent peak RSS**: a session through sshd enables eth1.42 and solicits the manual board's
  silent peer (the simulator answers after its 5 s solicit timeout); meanwhile the workstation
  writes newline-terminated garbage for ``--flood-seconds`` (3): lines of 4 MB (under the 4 MiB
  frame cap), and the same 4 MB blocks as 1-byte frames (``x\\n``).  The figure is the agent's
  ``VmHWM`` when the solicitation is answered.  Target: <= 64 MiB.  Measured side by side, in one
  run, for this tree's agent and, when ``--old`` names another checkout's Python (default
  ``/tmp/evl-old/.venv/bin/python`` if it exists), for that agent too; a flood is capped at
  ``--flood-cap`` MB (512) so that an agent that takes it all keeps the run short.
* **fleet**: ``evl net --hosts FILE --jobs 64 -Q -i eth0.42 --json`` on 64 boards behind that
  one sshd (64 names the client config maps to 127.0.0.1), with the default ``--retries`` and
  with ``--retries=0``, alternated over ``--rounds`` (2) rounds: the share of boards ok (all
  rounds) and the median wall time.

The runner reports; it does not assert: it always exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

BOARDS = 64
BLOCK = 4_000_000
RSS_TARGET_MIB = 64
OLD_DEFAULT = "/tmp/evl-old/.venv/bin/python"


def peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def flood(lab: Any, config: Path, seconds: float, line_size: int, cap_mb: int) -> dict[str, Any]:
    """The agent's peak RSS when its long request is answered, under a flood of ``line_size``-byte lines."""
    before = set(lab.agent_pids())
    session = lab.raw(config)
    try:
        session.hello()
        (pid,) = set(lab.agent_pids()) - before
        enabled = session.call("port.enable", {"ifname": "eth1.42", "pool_size": 0, "buffer_size": 0})
        if not enabled["ok"]:
            return {"error": f"port.enable: {enabled['error']}"}
        start = time.monotonic()
        rid = session.request("solicit", {"host": "10.10.20.10", "ifname": None, "flags": 0})
        block = (b"x" * (line_size - 1) + b"\n") * (BLOCK // line_size)
        sent = [0]
        stop = start + seconds
        stdin = session.proc.stdin

        def write() -> None:
            try:
                while time.monotonic() < stop and sent[0] * BLOCK < cap_mb * 1_000_000:
                    stdin.write(block)
                    sent[0] += 1
            except OSError:
                pass

        threading.Thread(target=write, daemon=True).start()
        reply = session.reply_to(rid, timeout=120)
        elapsed = time.monotonic() - start
        rss = peak_rss_kib(pid)
        session.proc.kill()
        code = reply.get("error", {}).get("code") if not reply.get("ok") else "ok"
        return {"rss_mib": rss / 1024, "blocks": sent[0], "answer": code, "seconds": elapsed}
    finally:
        session.close()


def fleet(lab: Any, config: Path, hosts: Path, *args: str) -> dict[str, Any]:
    run = lab.evl(f"--hosts={hosts}", "--jobs=64", "-Q", "-i", "eth0.42", "--json", *args, config=config, timeout=300)
    try:
        boards = json.loads(run.out)
    except ValueError:
        boards = []
    ok = sum(1 for b in boards if b.get("status") == "ok")
    return {"ok": ok, "wall": run.seconds, "code": run.code}


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2, help="fleet runs per setting, alternated (default 2)")
    ap.add_argument("--flood-seconds", type=float, default=3.0, help="how long each flood lasts (default 3)")
    ap.add_argument("--flood-cap", type=int, default=512, help="at most this many MB per flood (default 512)")
    ap.add_argument("--old", default=OLD_DEFAULT if os.path.exists(OLD_DEFAULT) else None, help="another Python")
    args = ap.parse_args()
    try:
        from tabulate import tabulate

        import openssh_lab
    except ImportError as exc:
        print(f"bench_remote_openssh: the test dependencies are needed (pip install -r requirements-test.txt): {exc}")
        return 0
    if not os.path.exists(openssh_lab.SSHD):
        print("bench_remote_openssh: OpenSSH's sshd is needed: apt-get install openssh-server")
        return 0

    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="evl-bench-openssh-") as tmp:
        # the "pytest.fail" of the lab raises an exception of pytest's own: no pytest run is needed here
        lab = openssh_lab.OpensshLab(Path(tmp) / "lab")
        try:
            agents = {"this tree": lab.add_key("new", "--log=none")}
            if args.old:
                command = f"{args.old} -m evl_core net-agent --stdio --transport=sim --log=none"
                agents[f"old ({args.old})"] = lab.add_key("old", command=command)
            for line_size, what in ((BLOCK, "4 MB lines"), (2, "1-byte frames")):
                for label, key in agents.items():
                    config = lab.client_config(key.name, key)
                    r = flood(lab, config, args.flood_seconds, line_size, args.flood_cap)
                    if "error" in r:
                        rows.append([f"agent peak RSS, {what}", label, r["error"], "", ""])
                        continue
                    rows.append(
                        [
                            f"agent peak RSS, {what}",
                            label,
                            f"{r['rss_mib']:.1f} MiB",
                            f"{r['blocks']} x 4 MB taken, answer {r['answer']} after {r['seconds']:.1f} s",
                            f"<= {RSS_TARGET_MIB} MiB: " + ("yes" if r["rss_mib"] <= RSS_TARGET_MIB else "no"),
                        ]
                    )

            key = agents["this tree"]
            config = lab.client_config("fleet", key)
            hosts = Path(tmp) / "hosts"
            hosts.write_text("".join(f"{lab.alias(i)}\n" for i in range(BOARDS)))
            results: dict[str, list[dict[str, Any]]] = {"default retries": [], "--retries=0": []}
            for _ in range(args.rounds):
                results["default retries"].append(fleet(lab, config, hosts))
                results["--retries=0"].append(fleet(lab, config, hosts, "--retries=0"))
            for label, runs in results.items():
                ok = sum(r["ok"] for r in runs)
                total = BOARDS * len(runs)
                codes = sorted({r["code"] for r in runs})
                rows.append(
                    [
                        f"fleet of {BOARDS}, MaxStartups 10:30:100",
                        label,
                        f"{100 * ok / total:.1f} % ok",
                        f"{ok}/{total} boards; median wall {statistics.median(r['wall'] for r in runs):.1f} s; "
                        f"exit {','.join(map(str, codes))}",
                        "100 %: " + ("yes" if ok == total else "no"),
                    ]
                )
        finally:
            lab.close()
    print(tabulate(rows, headers=["measure", "code", "value", "detail", "target met"], tablefmt="simple"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
