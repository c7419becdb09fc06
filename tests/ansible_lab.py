"""A lab for the Ansible tests: an OpenSSH sshd on a loopback port, boards behind it, ansible-playbook runs.

Each board is an inventory host with its own directory (its simulator state,
its lock, its filters) and its own Python; every board but ``localhost``
(``connection: local``) is reached over real SSH, as root, with a key the lab
made and a known_hosts file holding the sshd's host key, checked strictly.
Results come from the ``evl_results`` callback (``tests/ansible/callback_plugins``):
one JSON record per task and host, read back as :class:`Results`.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
COLLECTION = REPO / "ansible" / "ansible_collections" / "evl" / "net"
SSHD = "/usr/sbin/sshd"


def bin_of(name: str) -> str:
    """An executable of this venv (ansible-playbook...), next to the Python running the tests."""
    return str(pathlib.Path(sys.executable).parent / name)


def need_ansible() -> None:
    if not os.path.exists(bin_of("ansible-playbook")):
        pytest.fail("the Ansible tests need ansible-core in the test venv (requirements-test.txt)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Sshd:
    """An sshd on 127.0.0.1:``port`` letting in ``key`` as root; ``known_hosts`` pins its host key."""

    port: int
    key: pathlib.Path
    known_hosts: pathlib.Path
    process: subprocess.Popen[bytes]
    log: pathlib.Path

    def ssh_args(self) -> str:
        return (
            f"-o UserKnownHostsFile={self.known_hosts} -o GlobalKnownHostsFile=/dev/null "
            "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -o BatchMode=yes"
        )


def start_sshd(root: pathlib.Path) -> Sshd:
    """Start sshd in the foreground on a free loopback port, every file of it under ``root``."""
    if not os.path.exists(SSHD):
        pytest.fail("the Ansible SSH tests need OpenSSH's sshd: apt-get install openssh-server")
    root.mkdir(parents=True, exist_ok=True)
    host_key, key = root / "host_ed25519", root / "client_ed25519"
    for path in (host_key, key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    authorized = root / "authorized_keys"
    authorized.write_text((root / "client_ed25519.pub").read_text())
    authorized.chmod(0o600)
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # its privilege separation directory
    port = free_port()
    config = root / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {root / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {authorized}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nSubsystem sftp internal-sftp\n"
        "MaxStartups 64:30:128\nMaxSessions 64\nLogLevel VERBOSE\n"
    )
    log = root / "sshd.log"
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=log.open("wb"))
    host_pub = (root / "host_ed25519.pub").read_text().split()
    known = root / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"sshd did not start: {log.read_text()}")
            time.sleep(0.05)
    return Sshd(port, key, known, process, log)


@dataclass
class Results:
    """The task results of one ansible-playbook run, by (task, host)."""

    returncode: int
    output: str
    records: list[dict[str, Any]] = field(default_factory=list)
    #: what the test gave the run (objects, files), for its assertions
    given: dict[str, bytes] = field(default_factory=dict)

    def get(self, task: str, host: str) -> dict[str, Any]:
        found = [r for r in self.records if r["task"] == task and r["host"] == host]
        assert found, f"no result of {task!r} on {host}:\n{self.output[-3000:]}"
        return found[-1]

    def result(self, task: str, host: str) -> dict[str, Any]:
        record = self.get(task, host)
        assert record["status"] == "ok", f"{task} on {host}: {record['status']}: {record['result']}"
        return dict(record["result"])

    def hosts_of(self, task: str) -> set[str]:
        return {r["host"] for r in self.records if r["task"] == task}


def clean_env(tmp: pathlib.Path) -> dict[str, str]:
    """ansible-playbook's environment: nothing of the user's Ansible set-up, every path of it under ``tmp``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "EVL_"))}
    env.update(
        ANSIBLE_HOME=str(tmp / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-local"),
        ANSIBLE_REMOTE_TMP=str(tmp / "ansible-remote"),
        ANSIBLE_SSH_CONTROL_PATH_DIR=str(tmp / "cp"),
        ANSIBLE_CALLBACK_PLUGINS=str(HERE / "ansible" / "callback_plugins"),
        ANSIBLE_CALLBACKS_ENABLED="evl_results",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_DEPRECATION_WARNINGS="0",
        ANSIBLE_PIPELINING="1",
        ANSIBLE_FORKS="8",
        ANSIBLE_HOST_KEY_CHECKING="1",
    )
    return env


def playbook(
    tmp: pathlib.Path,
    play: list[dict[str, Any]],
    inventory: dict[str, Any],
    env: dict[str, str],
    *args: str,
    timeout: float = 600,
) -> Results:
    """Run ``play`` (written as JSON, which is YAML) on ``inventory``; the results the callback wrote."""
    need_ansible()
    tmp.mkdir(parents=True, exist_ok=True)
    stamp = f"{time.monotonic_ns()}"
    book, hosts, out = tmp / f"play-{stamp}.yml", tmp / f"hosts-{stamp}.yml", tmp / f"results-{stamp}.jsonl"
    book.write_text(json.dumps(play, indent=1))
    hosts.write_text(json.dumps(inventory, indent=1))
    proc = subprocess.run(
        [bin_of("ansible-playbook"), "-i", str(hosts), str(book), *args],
        env={**env, "EVL_RESULTS": str(out)},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp,
    )
    records = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return Results(proc.returncode, proc.stdout + proc.stderr, records)


def board_inventory(tmp: pathlib.Path, sshd: Sshd | None, names: list[str], broken: list[str] = ()) -> dict[str, Any]:
    """An inventory group ``boards``: ``localhost`` (local) and ``names`` over SSH, each with its directory.

    A board of ``broken`` has a Python without evl-tools (an empty venv).
    """
    hosts: dict[str, Any] = {}
    empty = tmp / "empty-venv"
    if broken and not empty.exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(empty)], check=True)
    for name in ["localhost", *names, *broken]:
        board = tmp / "boards" / name
        board.mkdir(parents=True, exist_ok=True)
        host: dict[str, Any] = {"evl_dir": str(board), "ansible_python_interpreter": sys.executable}
        if name == "localhost":
            host["ansible_connection"] = "local"
        else:
            assert sshd is not None
            host.update(
                ansible_host="127.0.0.1",
                ansible_port=sshd.port,
                ansible_user="root",
                ansible_ssh_private_key_file=str(sshd.key),
                ansible_ssh_common_args=sshd.ssh_args(),
            )
        if name in broken:
            host["ansible_python_interpreter"] = str(empty / "bin" / "python")
        hosts[name] = host
    return {"boards": {"hosts": hosts}}


def stop(sshd: Sshd) -> None:
    sshd.process.terminate()
    try:
        sshd.process.wait(5)
    except subprocess.TimeoutExpired:
        sshd.process.kill()


def install_collection(dest: pathlib.Path) -> pathlib.Path:
    """The collection built with ``ansible-galaxy collection build`` and installed from the tarball under ``dest``.

    Returns the directory to name in ANSIBLE_COLLECTIONS_PATH: what the
    tests run is what a user installs.
    """
    need_ansible()
    dest.mkdir(parents=True, exist_ok=True)
    env = clean_env(dest)

    def galaxy(*args: str) -> None:
        done = subprocess.run(
            [bin_of("ansible-galaxy"), "collection", *args], capture_output=True, text=True, env=env, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr

    galaxy("build", "--output-path", str(dest), str(COLLECTION))
    (tarball,) = dest.glob("evl-net-*.tar.gz")
    target = dest / "collections"
    galaxy("install", "-p", str(target), str(tarball))
    return target
