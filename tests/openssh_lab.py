"""A lab with a real OpenSSH sshd on 127.0.0.1: boards reached the way the README sets them up.

One :class:`OpensshLab` is one ``/usr/sbin/sshd -D`` listening on 127.0.0.1 on
one or more free ports (one board per port), every file of it under its root
directory: host key, ``sshd_config`` (stock limits: ``MaxStartups 10:30:100``,
``ExposeAuthInfo yes``), ``authorized_keys`` whose lines are the README's
forced command::

    restrict,command="<python> -m evl_core net-agent --stdio --transport=sim ..." ssh-ed25519 AAAA...

The board's environment (``EVL_SIM_STATE``, ``EVL_NET_AGENT_DIR``) comes from
sshd's ``SetEnv``.  The client side is the system ``ssh`` with a config file
made here (``-F``): the key, a known_hosts file, nothing of the user's set-up.

``EVL_OPENSSH_LAB_PYTHON`` names the Python that runs both ``evl`` (the
workstation) and the agent (the board's forced command): another checkout's
venv, to run the same tests against other code.
"""

from __future__ import annotations

import json
import os
import pathlib
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

SSHD = "/usr/sbin/sshd"
PYTHON_ENV = "EVL_OPENSSH_LAB_PYTHON"
#: Host names of the client config that are 127.0.0.1: as many boards as wanted behind one sshd
#: (which listens on at most 16 sockets).
ALIAS = "lab-board-"
HELLO = {"proto": [2, 2], "client": "openssh-lab"}


def lab_python() -> str:
    """The Python running evl and the agent: $EVL_OPENSSH_LAB_PYTHON, else the one running the tests."""
    return os.environ.get(PYTHON_ENV) or sys.executable


def need_openssh() -> None:
    if not os.path.exists(SSHD):
        pytest.fail("these tests need OpenSSH's sshd (/usr/sbin/sshd): apt-get install openssh-server")
    for tool in ("ssh", "ssh-keygen"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode != 0:
            pytest.fail(f"these tests need {tool}: apt-get install openssh-client")


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports of 127.0.0.1 (held together while chosen, so never twice the same)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def keygen(path: pathlib.Path, comment: str) -> pathlib.Path:
    if not path.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)
    return path


def fingerprint(pub: pathlib.Path) -> str:
    """The key's SHA256 fingerprint as ``ssh-keygen -lf`` prints it (the oracle for the agent's audit lines)."""
    out = subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True, check=True).stdout
    return out.split()[1]


@dataclass
class Key:
    """A workstation key, and the agent arguments its forced command adds to ``--stdio --transport=sim``."""

    name: str
    path: pathlib.Path
    agent_args: str

    @property
    def pub(self) -> pathlib.Path:
        return pathlib.Path(f"{self.path}.pub")

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.pub)


@dataclass
class Run:
    code: int
    out: str
    err: str
    seconds: float


class OpensshLab:
    """An sshd on 127.0.0.1 (``ports``: one board each), its keys, and the client files that reach it."""

    def __init__(self, root: pathlib.Path, ports: int = 1, max_startups: str = "10:30:100") -> None:
        need_openssh()
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.python = lab_python()
        self.state = root / "board" / "sim-state.json"
        self.agent_dir = root / "board" / "agent"
        self.agent_dir.mkdir(parents=True, exist_ok=True)
        self.host_key = keygen(root / "host_ed25519", "lab-host")
        self.other_host_key = keygen(root / "other_host_ed25519", "lab-other-host")
        self.keys: dict[str, Key] = {}
        self.authorized = root / "authorized_keys"
        self.authorized.write_text("")
        self.authorized.chmod(0o600)
        self.ports = free_ports(ports)
        # The workstation's XDG_RUNTIME_DIR: a fleet's ssh control sockets (short: a socket path has 108 bytes)
        self.runtime = pathlib.Path(tempfile.mkdtemp(prefix="evl-run-"))
        self.log = root / "sshd.log"
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        config = root / "sshd_config"
        config.write_text(
            "".join(f"Port {p}\n" for p in self.ports)
            + f"ListenAddress 127.0.0.1\nHostKey {self.host_key}\nPidFile {root / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.authorized}\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            f"MaxStartups {max_startups}\nExposeAuthInfo yes\nLogLevel VERBOSE\n"
            f"SetEnv EVL_SIM_STATE={self.state} EVL_NET_AGENT_DIR={self.agent_dir}\n"
        )
        self.process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=self.log.open("wb"))
        self.known_hosts = self.write_known_hosts(root / "known_hosts")
        self.no_global_hosts = root / "global_known_hosts"  # empty: nothing of the machine's own
        self.no_global_hosts.write_text("")
        deadline = time.monotonic() + 10
        for port in self.ports:
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        self.close()
                        pytest.fail(f"sshd did not start: {self.log.read_text()}")
                    time.sleep(0.05)

    # -- keys and files --------------------------------------------------------------------

    def add_key(self, name: str, agent_args: str = "", command: str | None = None, options: str = "restrict") -> Key:
        """A workstation key whose forced command is the agent (sshd reads authorized_keys at every login).

        ``options``: the authorized_keys options before ``command=`` (the README's ``restrict``).
        """
        key = Key(name, keygen(self.root / f"key_{name}", f"evl-net@{name}"), agent_args)
        self.keys[name] = key
        if command is None:
            command = f"{self.python} -m evl_core net-agent --stdio --transport=sim {agent_args}".strip()
        with open(self.authorized, "a") as f:
            f.write(f'{options + "," if options else ""}command="{command}" {key.pub.read_text().strip()}\n')
        return key

    def host_pub(self, other: bool = False) -> str:
        text = pathlib.Path(f"{self.other_host_key if other else self.host_key}.pub").read_text().split()
        return f"{text[0]} {text[1]}"

    def write_known_hosts(
        self, path: pathlib.Path, other: bool = False, ports: Iterable[int] | None = None
    ) -> pathlib.Path:
        """A known_hosts pinning the lab's host key (``other``: a different key, as if it had changed)."""
        pub = self.host_pub(other)
        path.write_text("".join(f"[127.0.0.1]:{p} {pub}\n" for p in (self.ports if ports is None else ports)))
        return path

    def client_config(
        self, name: str, key: Key, known_hosts: pathlib.Path | None = None, extra: str = ""
    ) -> pathlib.Path:
        """An ssh config (for ``-F``) that logs in as root with ``key``, checking the host against ``known_hosts``."""
        path = self.root / f"ssh_config_{name}"
        path.write_text(
            f"Host {ALIAS}*\n  HostName 127.0.0.1\n"
            "Host *\n"
            "  User root\n"
            f"  IdentityFile {key.path}\n"
            "  IdentitiesOnly yes\n"
            "  IdentityAgent none\n"
            f"  UserKnownHostsFile {known_hosts or self.known_hosts}\n"
            f"  GlobalKnownHostsFile {self.no_global_hosts}\n"
            "  PasswordAuthentication no\n"
            "  KbdInteractiveAuthentication no\n"
            "  CheckHostIP no\n"
            "  HashKnownHosts no\n"
            "  AddressFamily inet\n" + "".join(f"  {line.strip()}\n" for line in extra.splitlines() if line.strip())
        )
        return path

    def target(self, index: int = 0) -> str:
        return f"root@127.0.0.1:{self.ports[index]}"

    def alias(self, index: int) -> str:
        """Board ``index`` of a fleet: a name the client config maps to 127.0.0.1 (sshd's first port)."""
        return f"root@{ALIAS}{index:02d}:{self.ports[0]}"

    # -- the workstation: evl and ssh ------------------------------------------------------------

    def env(self, config: pathlib.Path | None = None, **extra: str) -> dict[str, str]:
        """evl's environment on the workstation: none of the user's EVL_ settings; ssh gets ``-F config``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("EVL_")}
        env["XDG_STATE_HOME"] = str(self.root / "workstation-xdg")
        env["XDG_RUNTIME_DIR"] = str(self.runtime)
        if config is not None:
            env["EVL_NET_SSH"] = f"-F {config}"
        env.update(extra)
        return env

    def evl(self, *args: str, config: pathlib.Path | None = None, timeout: float = 120, **extra: str) -> Run:
        """``evl net ARGS`` on the workstation, in a fresh process of the lab's Python."""
        start = time.monotonic()
        proc = subprocess.run(
            [self.python, "-m", "evl_core", "net", *args],
            env=self.env(config, **extra),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)

    def local(self, *args: str, state: pathlib.Path | None = None) -> Run:
        """``evl net ARGS`` run on the board itself (the simulator, the board's state file)."""
        start = time.monotonic()
        env = self.env(EVL_SIM_STATE=str(state or self.state), EVL_NET_TRANSPORT="sim")
        proc = subprocess.run([self.python, "-m", "evl_core", "net", *args], env=env, capture_output=True, text=True)
        return Run(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)

    def ssh_argv(self, config: pathlib.Path, *args: str, port: int | None = None) -> list[str]:
        return ["ssh", "-F", str(config), "-o", "BatchMode=yes", "-p", str(port or self.ports[0]), *args]

    def raw(self, config: pathlib.Path, *args: str) -> RawSession:
        """A session with the agent through ssh, frames written and read by the test."""
        return RawSession(self.ssh_argv(config, "-T", *args, "root@127.0.0.1"), self.env())

    # -- the board: sshd, its agents ------------------------------------------------------------

    def agent_pids(self) -> list[int]:
        """The ``evl_core net-agent`` processes sshd started (descendants of the lab's sshd)."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                cmdline = pathlib.Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"net-agent" not in cmdline or b"evl_core" not in cmdline:
                continue
            if self._descends(int(entry)):
                found.append(int(entry))
        return found

    def _descends(self, pid: int) -> bool:
        while pid > 1:
            if pid == self.process.pid:
                return True
            try:
                stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                return False
            pid = int(stat.rsplit(")", 1)[1].split()[1])
        return False

    def logins(self) -> int:
        """How many logins sshd accepted so far (its log at LogLevel VERBOSE)."""
        return self.log.read_text(errors="replace").count("Accepted publickey for root")

    def freeze(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def mux_masters(self) -> list[int]:
        """The ssh processes keeping a fleet's connections open (their command line names the control socket)."""
        found = []
        mark = str(self.runtime).encode()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                cmdline = pathlib.Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if mark in cmdline and b"ControlPath=" in cmdline:
                found.append(int(entry))
        return found

    def close(self) -> None:
        for pid in self.mux_masters():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.runtime, ignore_errors=True)
        for pid in self.agent_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.process.poll() is None:
            try:
                os.kill(self.process.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class RawSession:
    """``ssh ... root@127.0.0.1`` with pipes: JSON frames to the agent and its replies back."""

    def __init__(self, argv: Sequence[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, bufsize=0
        )
        self.buf = b""
        self.next_id = 0
        self.replies: list[dict[str, Any]] = []  # every reply read, in order

    def send(self, frame: dict[str, Any] | bytes) -> None:
        data = frame if isinstance(frame, bytes) else json.dumps(frame, separators=(",", ":")).encode() + b"\n"
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)

    def recv(self, timeout: float = 20) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                raise TimeoutError(f"no reply from the agent within {timeout:g} s")
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise EOFError(f"the session ended: {self.stderr_text()}")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        reply: dict[str, Any] = json.loads(line)
        self.replies.append(reply)
        return reply

    def request(self, op: str, args: dict[str, Any]) -> int:
        self.next_id += 1
        self.send({"id": self.next_id, "op": op, "args": args})
        return self.next_id

    def reply_to(self, rid: int, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            reply = self.recv(max(0.01, deadline - time.monotonic()))
            if reply.get("id") == rid:
                return reply

    def call(self, op: str, args: dict[str, Any], timeout: float = 20) -> dict[str, Any]:
        return self.reply_to(self.request(op, args), timeout)

    def hello(self, **extra: Any) -> dict[str, Any]:
        reply = self.call("hello", {**HELLO, **extra})
        assert reply["ok"], reply
        return dict(reply["result"])

    def stderr_text(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read().decode(errors="replace")

    def close(self, timeout: float = 5) -> int:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()
        return self.proc.returncode
