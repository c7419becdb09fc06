"""``evl net --remote`` through the system ``ssh`` against an in-process SSH server (loopback only).

The server (asyncssh, a test dependency) listens on 127.0.0.1 on random ports,
one per simulated board, and runs the real agent for every exec request:
``python -m evl_core net-agent --stdio --transport=sim`` with the board's own
simulator state.  Host and user keys, known_hosts and the ssh configuration
are generated here; ``ssh`` gets them through ``EVL_NET_SSH="-F <config>"``.

This module also holds the lab (:class:`SshLab`) that test_remote_fleet.py and
benchmarks/bench_remote.py use; run as a script it serves boards from a
separate process, which a test can freeze with SIGSTOP.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fslock import lock_is_free

asyncssh = pytest.importorskip("asyncssh") if __name__ != "__main__" else __import__("asyncssh")

HERE = Path(__file__).resolve().parent
USER = "evl"
AGENT = [sys.executable, "-m", "evl_core", "net-agent", "--stdio", "--transport=sim", "--log=none"]


# -- the lab ---------------------------------------------------------------------------------


@dataclass
class Board:
    name: str
    state: Path
    port: int = 0
    agents: list[int] = field(default_factory=list)
    server: Any = None
    #: the agent's command (default: the real agent over the simulator) and extra environment
    agent: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def env_overrides(self) -> dict[str, str]:
        return {
            "EVL_SIM_STATE": str(self.state / "sim-state.json"),
            "EVL_NET_AGENT_DIR": str(self.state / "agent"),
            **self.env,
        }

    @property
    def lock_path(self) -> Path:
        return self.state / "agent" / "net-agent.lock"


def _keys(root: Path) -> dict[str, Any]:
    """Generate (once per root) the lab's keys; private keys 0600, as ssh demands."""
    keys = {}
    for name in ("host", "other_host", "user", "wrong_user"):
        path = root / f"{name}_key"
        if not path.exists():
            key = asyncssh.generate_private_key("ssh-ed25519", comment=f"evl-lab-{name}")
            key.write_private_key(str(path))
            key.write_public_key(str(path) + ".pub")
            os.chmod(path, 0o600)
        keys[name] = asyncssh.read_private_key(str(path))
    return keys


class _Server(asyncssh.SSHServer):
    def __init__(self, lab: ServerCore, board: Board) -> None:
        self.lab, self.board = lab, board

    def connection_made(self, conn: Any) -> None:
        self.lab.event("connect", self.board.name)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: Any) -> bool:
        ok = username == USER and key.public_data == self.lab.user_key.public_data
        self.lab.event("auth-ok" if ok else "auth-refused", self.board.name)
        return ok


class ServerCore:
    """The asyncio side: listeners, the exec handler, events."""

    def __init__(self, root: Path, agent: list[str] | None = None) -> None:
        self.root = root
        keys = _keys(root)
        self.host_key, self.user_key = keys["host"], keys["user"]
        self.agent = agent or AGENT
        self.events: list[tuple[str, str]] = []
        self.boards: dict[str, Board] = {}
        self.base_env = {k: v for k, v in os.environ.items() if not k.startswith("EVL_")}
        self.lock = threading.Lock()

    def event(self, kind: str, board: str) -> None:
        with self.lock:
            self.events.append((kind, board))

    async def add(self, board: Board) -> Board:
        board.state.mkdir(parents=True, exist_ok=True)
        board.server = await asyncssh.create_server(
            lambda: _Server(self, board),
            "127.0.0.1",
            board.port,
            server_host_keys=[self.host_key],
            process_factory=lambda p: self._exec(board, p),
            encoding=None,
            login_timeout=5,
            allow_pty=False,
            agent_forwarding=False,
        )
        board.port = board.server.sockets[0].getsockname()[1]
        self.boards[board.name] = board
        return board

    async def _exec(self, board: Board, process: Any) -> None:
        self.event("exec", board.name)
        env = dict(self.base_env, **board.env_overrides)
        agent = await asyncio.create_subprocess_exec(
            *(board.agent or self.agent),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        board.agents.append(agent.pid)

        async def feed() -> None:  # channel -> agent; EOF or a dead connection closes the agent's stdin, as sshd does
            try:
                while True:
                    data = await process.stdin.read(65536)
                    if not data:
                        break
                    agent.stdin.write(data)
                    await agent.stdin.drain()
            except Exception:
                pass
            finally:
                try:
                    agent.stdin.close()
                except Exception:
                    pass

        async def pump(source: Any, sink: Any) -> None:
            try:
                while True:
                    data = await source.read(65536)
                    if not data:
                        break
                    sink.write(data)
            except Exception:
                pass

        feeder = asyncio.ensure_future(feed())
        await asyncio.gather(pump(agent.stdout, process.stdout), pump(agent.stderr, process.stderr))
        code = await agent.wait()
        feeder.cancel()
        try:
            if code < 0:
                process.exit_with_signal(signal.Signals(-code).name[3:])
            else:
                process.exit(code)
        except Exception:
            pass


class SshLab:
    """Boards on 127.0.0.1 behind an in-process SSH server, and the ssh client files to reach them."""

    def __init__(self, root: Path, agent: list[str] | None = None) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.core = ServerCore(root, agent)
        self.known_hosts = root / "known_hosts"
        self.known_hosts.write_text("")
        (root / "global_known_hosts").write_text("")
        self.config = root / "ssh_config"
        self.write_config(self.config, "user_key")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="ssh-lab", daemon=True)
        self.thread.start()

    def write_config(self, path: Path, key: str) -> Path:
        path.write_text(
            "Host *\n"
            f"  User {USER}\n"
            f"  IdentityFile {self.root / key}\n"
            "  IdentitiesOnly yes\n"
            "  IdentityAgent none\n"
            f"  UserKnownHostsFile {self.known_hosts}\n"
            f"  GlobalKnownHostsFile {self.root / 'global_known_hosts'}\n"  # empty: /dev/null is refused
            "  PasswordAuthentication no\n"
            "  KbdInteractiveAuthentication no\n"
            "  CheckHostIP no\n"
            "  HashKnownHosts no\n"
            "  UpdateHostKeys no\n"
            "  AddressFamily inet\n"
        )
        return path

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def board(
        self, name: str, known: bool | str = True, agent: list[str] | None = None, env: dict[str, str] | None = None
    ) -> Board:
        """A new board; ``known``: True (its key in known_hosts), False (absent) or "other" (another key)."""
        board = self.call(self.core.add(Board(name, self.root / "boards" / name, agent=agent, env=env or {})))
        if known:
            key = self.core.host_key if known is True else _keys(self.root)["other_host"]
            self.trust(board, key)
        return board

    def trust(self, board: Board, key: Any) -> None:
        line = f"[127.0.0.1]:{board.port} {key.export_public_key().decode().strip()}\n"
        with open(self.known_hosts, "a") as f:
            f.write(line)

    def target(self, board: Board) -> str:
        return f"{USER}@127.0.0.1:{board.port}"

    def ssh_args(
        self, keepalive: tuple[int, int] = (1, 2), connect_timeout: int = 5, config: Path | None = None
    ) -> str:
        return (
            f"-F {config or self.config} -o ConnectTimeout={connect_timeout} "
            f"-o ServerAliveInterval={keepalive[0]} -o ServerAliveCountMax={keepalive[1]}"
        )

    def env(self, base: dict[str, str], **kw: Any) -> dict[str, str]:
        env = {k: v for k, v in base.items() if k not in ("EVL_NET_TRANSPORT", "EVL_SIM_STATE")}
        env["EVL_NET_SSH"] = self.ssh_args(**kw)
        env.pop("EVL_NET_REMOTE", None)
        return env

    def events(self, board: Board | None = None) -> list[str]:
        with self.core.lock:
            return [k for k, b in self.core.events if board is None or b == board.name]

    def close(self) -> None:
        for board in self.core.boards.values():
            for pid in board.agents:
                _kill(pid)

        async def stop() -> None:
            for board in self.core.boards.values():
                board.server.close()
            for board in self.core.boards.values():
                await board.server.wait_closed()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if others:
                await asyncio.wait(others, timeout=5)

        try:
            self.call(stop(), 15)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGCONT)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """The lab's server in a child process (same keys and boards layout), so a test can SIGSTOP it."""

    def __init__(self, lab: SshLab, names: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, str(lab.root), *names], stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the lab server process did not start")
        self.boards = [Board(name, lab.root / "boards" / name, port=port) for name, port in json.loads(line)]
        for board in self.boards:
            lab.trust(board, lab.core.host_key)

    def freeze(self) -> None:
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def close(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGCONT)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)


def _serve_main(root: str, names: list[str]) -> None:
    async def main() -> None:
        core = ServerCore(Path(root))
        boards = [await core.add(Board(n, Path(root) / "boards" / n)) for n in names]
        print(json.dumps([[b.name, b.port] for b in boards]), flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def lab(tmp_path):
    import shutil

    if shutil.which("ssh") is None:
        pytest.fail("the remote tests need the system ssh client: apt-get install openssh-client")
    lab = SshLab(tmp_path / "lab")
    yield lab
    lab.close()


@pytest.fixture
def remote(lab, sim_env, evl):
    """One healthy board and a way to run ``evl net --remote=<it>`` in this process."""
    board = lab.board("b1")
    env = lab.env(sim_env)

    def run(*args: str, **kw: Any):
        return evl("net", f"--remote={lab.target(board)}", *args, env=kw.pop("env", env), **kw)

    run.board = board
    run.env = env
    return run


# -- the client alone: targets, the ssh command line, failure classification --------------------

from evl_net.transports.remote import client  # noqa: E402
from evl_net.transports.remote.client import Options, Session, SessionError, Target  # noqa: E402


@pytest.mark.parametrize(
    "text, expected",
    [
        ("board", ("board", None, None)),
        ("root@board", ("board", "root", None)),
        ("board:2222", ("board", None, 2222)),
        ("evl@10.0.0.7:22", ("10.0.0.7", "evl", 22)),
        ("[::1]:2200", ("::1", None, 2200)),
        ("::1", ("::1", None, None)),
        ("u@[fe80::1%eth0]:22", ("fe80::1%eth0", "u", 22)),
        ("board-3.lab.example", ("board-3.lab.example", None, None)),
    ],
)
def test_targets(text, expected):
    t = Target.parse(text)
    assert (t.host, t.user, t.port) == expected and t.label == text


@pytest.mark.parametrize(
    "text",
    [
        "-oProxyCommand=touch /tmp/x",
        "u@-oProxyCommand=x",
        "board:0",
        "board:65536",
        "board:x",
        "a b",
        "[::1",
        "[::1]x",
        "u;id@board",
        "@board",
        "bo ard:22",
        "board:22:33:gg",
        # a trailing newline (a hosts line read carelessly, a $(...) gone wrong) is not part of a name
        "board\n",
        "evl@board\n",
        "board:22\n",
        "[::1]\n",
        "board\r",
    ],
)
def test_bad_targets(text):
    with pytest.raises(client.EvlError):
        Target.parse(text)


def test_ssh_command_line():
    opts = Options(ssh_args=("-F", "lab.cfg", "-o", "StrictHostKeyChecking=no", "-o", "ConnectTimeout=3"))
    argv = client.ssh_argv(Target.parse("evl@board:2200"), opts)
    forced = argv.index("StrictHostKeyChecking=yes")
    assert forced < argv.index("StrictHostKeyChecking=no") < argv.index("ConnectTimeout=10")
    assert "BatchMode=yes" in argv[: forced + 2] and "-T" in argv
    assert argv[-3:] == ["--", "board", "evl net-agent --stdio"]
    assert argv[argv.index("-p") + 1] == "2200" and argv[argv.index("-l") + 1] == "evl"
    assert opts.connect_timeout == 3.0
    assert "StrictHostKeyChecking=accept-new" in client.ssh_argv(Target.parse("b"), Options(accept_new_host_key=True))
    assert not any("accept-new" in a for a in client.ssh_argv(Target.parse("b"), Options()))


def test_ssh_keeps_the_forced_options(tmp_path):
    """ssh takes the first value given: a user's extra arguments cannot weaken host-key checking."""
    config = tmp_path / "cfg"
    config.write_text("Host *\n  StrictHostKeyChecking no\n  BatchMode no\n  ServerAliveInterval 30\n")
    opts = Options(ssh_args=("-F", str(config), "-o", "StrictHostKeyChecking=no", "-o", "ServerAliveInterval=1"))
    argv = client.ssh_argv(Target.parse("evl@127.0.0.1:2200"), opts)
    argv = [*argv[:1], "-G", *argv[1:-1]]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
    settings = dict(line.split(" ", 1) for line in out.splitlines())
    assert settings["stricthostkeychecking"] == "true" and settings["batchmode"] == "yes"
    assert settings["serveraliveinterval"] == "1" and settings["serveralivecountmax"] == "3"
    assert settings["port"] == "2200" and settings["user"] == "evl"
    assert settings["clearallforwardings"] == "yes" and settings["forwardagent"] == "no"


@pytest.mark.parametrize(
    "rc, stderr, established, status",
    [
        (255, "ssh: connect to host 127.0.0.1 port 1: Connection refused\r\n", False, "unreachable"),
        (255, "ssh: Could not resolve hostname nope: Name or service not known\r\n", False, "unreachable"),
        (255, "ssh: connect to host 10.1.1.1 port 22: Connection timed out\r\n", False, "timeout"),
        (255, "Connection timed out during banner exchange\r\n", False, "timeout"),
        (255, "evl@127.0.0.1: Permission denied (publickey).\r\n", False, "auth-refused"),
        (255, "Host key verification failed.\r\n", False, "hostkey-refused"),
        (
            255,
            "@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n@@@@\nHost key verification failed.\n",
            False,
            "hostkey-refused",
        ),
        (255, "Timeout, server 127.0.0.1 not responding.\r\n", True, "timeout"),
        (255, "Connection to 127.0.0.1 closed by remote host.\r\n", True, "lost"),
        (255, "", True, "lost"),
        (0, "", True, "lost"),
        (127, "sh: 1: evl: not found\n", False, "incompatible"),
        (1, "evl: no 'net-agent' command. Try 'evl --help'.\n", False, "incompatible"),
    ],
)
def test_failure_classification(rc, stderr, established, status):
    assert client.classify(rc, stderr, established)[0] == status


# -- fake agents: the client's side of the protocol -----------------------------------------------------


REAL_SSH = shutil.which("ssh") or "ssh"


def fake_ssh(tmp_path: Path, body: str, name: str = "fake-ssh", config_check: str | None = None) -> Options:
    """An 'ssh' that ignores its arguments and runs ``body`` as the agent (stdin/stdout are the session).

    ``ssh -G`` (the configuration check before connecting) is the real ssh's,
    unless ``config_check`` is given: then that code runs instead.
    """
    script = tmp_path / name
    check = config_check or f"os.execv({REAL_SSH!r}, [{REAL_SSH!r}, *sys.argv[1:]])\n"
    script.write_text(
        f"#!{sys.executable}\nimport json, os, sys, time\n"
        "if '-G' in sys.argv:\n" + textwrap.indent(check, "    ") + "    sys.exit(0)\n"
        "def send(obj):\n    sys.stdout.write(json.dumps(obj) + '\\n'); sys.stdout.flush()\n"
        "def recv():\n    return json.loads(sys.stdin.readline())\n" + body
    )
    script.chmod(0o755)
    return Options(ssh=str(script), timeout=5)


HELLO_OK = (
    "r = recv(); send({'id': r['id'], 'ok': True, 'result': {'proto': 2, 'caps': CAPS, "
    "'limits': {'max_frame': 1048576}, 'abi': {'base': 45, 'current': 45}}})\n"
)
ALL_CAPS = "CAPS = " + repr(list(client.protocol.CAPS)) + "\n"


def session_error(opts: Options, op: str = "vlans.get", args: dict | None = None) -> SessionError:
    async def go():
        s = Session(Target.parse("fake"), opts)
        try:
            await s.open()
            await s.call(op, args or {})
        finally:
            await s.close()

    with pytest.raises(SessionError) as info:
        asyncio.run(go())
    return info.value


def test_reply_with_an_unknown_id_closes_the_session(tmp_path):
    exc = session_error(
        fake_ssh(
            tmp_path,
            ALL_CAPS + HELLO_OK + "r = recv(); send({'id': 999, 'ok': True, 'result': {}})\nsys.stdin.read()\n",
        )
    )
    assert exc.status == "lost" and "unknown request id 999" in exc.reason


def test_garbage_before_hello_is_incompatible(tmp_path):
    exc = session_error(
        fake_ssh(tmp_path, "recv(); print('Welcome to the board!'); sys.stdout.flush(); sys.stdin.read()\n")
    )
    assert exc.status == "incompatible" and "malformed reply" in exc.reason


def test_agent_gone_before_hello_is_incompatible(tmp_path):
    exc = session_error(fake_ssh(tmp_path, "sys.stderr.write(\"evl: no 'net-agent' command\\n\"); sys.exit(1)\n"))
    assert exc.status == "incompatible" and "net-agent" in exc.reason


def test_no_common_version_is_incompatible(tmp_path):
    exc = session_error(
        fake_ssh(
            tmp_path,
            "r = recv(); send({'id': r['id'], 'ok': False, 'error': "
            "{'code': 'EPROTONOSUPPORT', 'errno': 93, 'msg': 'this agent speaks 2..3'}})\n",
        )
    )
    assert exc.status == "incompatible" and "2..3" in exc.reason
    exc = session_error(fake_ssh(tmp_path, ALL_CAPS + HELLO_OK.replace("'proto': 2", "'proto': 3")))
    assert exc.status == "incompatible"


def test_operations_missing_from_caps_are_refused_locally(tmp_path):
    opts = fake_ssh(tmp_path, "CAPS = ['vlans.get']\n" + HELLO_OK + "sys.stdin.read()\n")

    async def go():
        s = Session(Target.parse("fake"), opts)
        await s.open()
        try:
            with pytest.raises(OSError) as info:
                await s.call("bpf.remove", {"ifname": "eth0"})
            assert info.value.errno == client.errno.EOPNOTSUPP and "bpf.remove" in info.value.detail
        finally:
            await s.close()

    asyncio.run(go())


def test_silent_agent_times_out_and_mutations_are_lost(tmp_path):
    opts = fake_ssh(tmp_path, ALL_CAPS + HELLO_OK + "recv(); time.sleep(30)\n")
    opts = Options(ssh=opts.ssh, timeout=0.5)
    assert session_error(opts).status == "timeout"
    exc = session_error(opts, "vlans.set", {"text": "42"})
    assert exc.status == "lost" and "state unknown" in exc.reason


# -- through ssh: the manual's examples give the same output as local use --------------------------------

MANUAL = [
    ["-ei", "eth1.42", "-p", "4096"],
    ["-Qa", "-i", "eth1.42"],
    ["-di", "eth1.42"],
    ["-Qsfa", "-i", "eth1.42"],
    ["-ei", "eth0.42"],
    ["-S", "10.10.10.10"],
    ["-Q", "-i", "eth0.42"],
    ["-QoRTf", "-i", "eth0.42"],
    ["-N42"],
    ["-n"],
    ["-N41,42,55-57"],
    ["-N"],
    ["-n"],
    ["-N41,42,55-57"],
    ["-n"],
    ["--json", "-Q", "-i", "eth0.42"],
    ["-Q", "--all-interfaces"],
    ["-QoR", "--all-interfaces"],
    ["--json", "-N7"],
    ["-Q", "-i", "eth9"],
    ["-Sg", "-i", "eth0.42"],
    ["-ei", "eth2"],
    ["-e", "-i", "eth0.42", "-b", "99999"],
    ["-s", "broadcast", "-i", "eth0.42"],
    ["-F", "-i", "eth0.42"],
    ["-Fmissing.o", "-i", "eth0.42"],
    ["-di", "eth0.42", "-ei", "eth0.42", "-n", "-Q", "-i", "eth0.42"],
    ["-di", "eth9"],
    ["-s", "10.10.10.10", "-i", "eth9"],
    ["--filter", "-i", "eth0.42"],
    ["-N", "-n"],
]


def test_manual_examples_through_remote_match_local(lab, sim_env, evl):
    board = lab.board("manual")
    env = lab.env(sim_env)
    for args in MANUAL:
        local = evl("net", *args)
        remote = evl("net", f"--remote={lab.target(board)}", *args, env=env)
        assert (remote.code, remote.out, remote.err) == (local.code, local.out, local.err), args


def test_c_tool_words_through_remote(lab, sim_env, evl):
    """What the C tool says of a removal, a clear and a failed step, said the same over SSH."""
    board = lab.board("words")
    env = lab.env(sim_env)
    target = f"--remote={lab.target(board)}"
    assert evl("net", target, "-ei", "eth0.42", env=env).code == 0
    run = evl("net", target, "-F", "-i", "eth0.42", env=env)
    assert (run.code, run.out) == (0, "eBPF module removed from eth0.42\n")
    run = evl("net", target, "-N", env=env)
    assert (run.code, run.out) == (0, "VLAN filter cleared\n")
    run = evl("net", target, "-Q", "-i", "eth9", env=env)
    assert (run.code, run.out, run.err) == (1, "", "evl-net: cannot open out-of-band port eth9: No such device\n")
    run = evl("net", target, "-s", "10.10.10.10", "-i", "eth9", env=env)
    assert run.err == "evl-net: cannot bind UDP socket to device eth9: No such device\n"


def test_manual_traffic_board_through_remote(lab, sim_env, evl):
    board = lab.board("traffic", env={"EVL_SIM_BOARD": "manual-traffic"})
    run = evl("net", f"--remote={lab.target(board)}", "-QoRTf", "-i", "eth0.42", env=lab.env(sim_env))
    assert (run.code, run.out, run.err) == (0, "yes 2092625 137399 2048\n", "")


def test_ebpf_filter_through_remote(lab, sim_env, evl, tmp_path):
    import re

    import bpf_build

    if not bpf_build.have_clang():
        pytest.skip("clang with the BPF target and libbpf headers is needed to build netrx.o")
    obj = bpf_build.build("netrx", tmp_path)
    board = lab.board("bpf")
    env = lab.env(sim_env)
    stamp = re.compile(r"^\[ *\d+\.\d{6}\] ", re.M)
    for args in (
        ["-ei", "eth0.42"],
        [f"-F{obj}", "-i", "eth0.42"],
        ["-F", "-i", "eth0.42"],
        ["-F", "-i", "eth0.42"],
        [f"-F{obj}", "-i", "eth1.42"],
    ):
        local = evl("net", *args)
        remote = evl("net", f"--remote={lab.target(board)}", *args, env=env)
        assert (remote.code, remote.out) == (local.code, local.out), args
        assert stamp.sub("[T] ", remote.err) == stamp.sub("[T] ", local.err), args
    state = json.loads((board.state / "sim-state.json").read_text())
    assert state["filters"] == {}


def test_remote_from_the_environment(lab, sim_env, evl):
    board = lab.board("envb")
    env = dict(lab.env(sim_env), EVL_NET_REMOTE=lab.target(board))
    assert evl("net", "-N42", env=env).code == 0
    run = evl("net", "-n", env=env)
    assert (run.code, run.out, run.err) == (0, "42\n", "")
    # --transport wins over the environment; a board on the command line wins over EVL_NET_TRANSPORT.
    assert evl("net", "--transport=sim", "-n", env=dict(env, EVL_SIM_STATE=str(board.state / "x"))).out == ""
    run = evl("net", f"--remote={lab.target(board)}", "-n", env=dict(env, EVL_NET_TRANSPORT="sim"))
    assert run.out == "42\n"
    run = evl("net", f"--remote={lab.target(board)}", "--transport=sim", "-n", env=env)
    assert run.code == 1 and "need the remote transport" in run.err


def test_a_board_without_evl_core_says_it_is_simulated(lab, sim_env, evl):
    auto = [a for a in AGENT if a != "--transport=sim"]
    board = lab.board("nocore", agent=auto, env={"EVL_DEVDIR": "/nonexistent-evl"})
    run = evl("net", f"--remote={lab.target(board)}", "-n", env=lab.env(sim_env))
    assert run.code == 0
    assert run.err == (
        f"evl-net: {lab.target(board)}: no EVL core there (no /nonexistent-evl/net): "
        "the board's agent uses the simulator\n"
    )


def test_remote_only_options_need_a_remote(evl):
    run = evl("net", "-n", "--jobs", "4")
    assert run.code == 1 and run.err == "evl-net: --jobs applies to remote boards only\n"


def test_local_use_imports_nothing_of_remote(sim_env):
    code = (
        "import io, sys; from evl_core.cli import main; "
        "main(['net', '-n'], stdout=io.StringIO(), stderr=io.StringIO()); "
        "print(sorted(m for m in sys.modules if m == 'asyncio' or m.startswith("
        "('evl_net.transports.remote', 'evl_net.engine.fleet', 'evl_net.agent'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=sim_env, capture_output=True, text=True, timeout=30)
    assert out.stdout == "[]\n", out.stderr


# -- security -------------------------------------------------------------------------------------------


def test_wrong_user_key_is_refused_before_any_request(lab, sim_env, evl):
    board = lab.board("auth")
    wrong = lab.write_config(lab.root / "wrong.cfg", "wrong_user_key")
    start = time.monotonic()
    run = evl("net", f"--remote={lab.target(board)}", "-N42", env=lab.env(sim_env, config=wrong))
    assert time.monotonic() - start < 2
    assert run.code == 8 and run.out == ""
    assert run.err.startswith(f"evl-net: {lab.target(board)}: auth-refused: ") and "Permission denied" in run.err
    assert "auth-refused" in lab.events(board) and "exec" not in lab.events(board) and not board.agents


def test_unknown_host_key_is_refused_before_authentication(lab, sim_env, evl):
    board = lab.board("unknown", known=False)
    before = lab.known_hosts.read_text()
    run = evl("net", f"--remote={lab.target(board)}", "-N42", env=lab.env(sim_env))
    assert run.code == 8 and "hostkey-refused" in run.err and "not known" in run.err
    assert lab.events(board) == ["connect"] and not board.agents
    assert lab.known_hosts.read_text() == before  # nothing added without the explicit flag


def test_changed_host_key_is_refused_even_with_accept_new(lab, sim_env, evl):
    board = lab.board("changed", known="other")
    for extra in ([], ["--accept-new-host-key"]):
        run = evl("net", f"--remote={lab.target(board)}", "-N42", *extra, env=lab.env(sim_env))
        assert run.code == 8 and "hostkey-refused" in run.err and "CHANGED" in run.err, run.err
    assert lab.events(board) == ["connect", "connect"] and not board.agents


def test_accept_new_host_key_is_explicit_trust_on_first_use(lab, sim_env, evl):
    board = lab.board("tofu", known=False)
    env = lab.env(sim_env)
    run = evl("net", f"--remote={lab.target(board)}", "-N42", "--accept-new-host-key", env=env)
    assert (run.code, run.out) == (0, "")
    assert "Permanently added" in run.err
    assert f"[127.0.0.1]:{board.port}" in lab.known_hosts.read_text()
    run = evl("net", f"--remote={lab.target(board)}", "-n", env=env)
    assert (run.code, run.out, run.err) == (0, "42\n", "")


def test_unreachable_board(lab, sim_env, evl):
    port = closed_port()
    run = evl("net", f"--remote=evl@127.0.0.1:{port}", "-n", env=lab.env(sim_env))
    assert run.code == 8
    assert run.err == (
        f"evl-net: evl@127.0.0.1:{port}: unreachable: ssh: connect to host 127.0.0.1 port {port}: Connection refused\n"
    )


# -- reliability -------------------------------------------------------------------------------------------


def lab_options(lab: SshLab, timeout: float = 10, **kw: Any) -> Options:
    import shlex

    return Options(ssh_args=tuple(shlex.split(lab.ssh_args(**kw))), timeout=timeout)


def test_64_concurrent_sessions_of_50_requests(lab):
    board = lab.board("busy")
    opts = lab_options(lab, timeout=60, connect_timeout=30)
    requests = [
        ("vlans.get", {}),
        ("stat.get", {"ifname": "eth0.42"}),
        ("page_size", {}),
        ("vlans.set", {"text": "42"}),
        ("interfaces", {}),
    ]

    async def one(n: int) -> int:
        s = Session(Target.parse(lab.target(board)), opts)
        await s.open()
        ok = 0
        try:
            for i in range(50):
                op, args = requests[(n + i) % len(requests)]
                reply = await s.call(op, args)
                ok += reply.ok
        finally:
            await s.close()
        return ok

    async def all_of_them() -> list[int]:
        return await asyncio.gather(*(one(n) for n in range(64)))

    start = time.monotonic()
    counts = asyncio.run(all_of_them())
    assert counts == [50] * 64
    assert len(board.agents) == 64
    print(f"64 sessions x 50 requests: {time.monotonic() - start:.2f} s")


def test_agent_killed_mid_request_is_lost_within_a_second(lab):
    board = lab.board("killed")
    opts = lab_options(lab)

    async def go() -> tuple[SessionError, float]:
        s = Session(Target.parse(lab.target(board)), opts)
        await s.open()
        try:
            assert (await s.call("port.enable", {"ifname": "eth1.42", "pool_size": 0, "buffer_size": 0})).ok
            call = asyncio.ensure_future(s.call("solicit", {"host": "10.10.20.10", "ifname": None, "flags": 0}))
            await asyncio.sleep(0.5)  # the agent is now inside the 5 s solicitation
            assert not call.done()
            os.kill(board.agents[-1], signal.SIGKILL)
            killed = time.monotonic()
            with pytest.raises(SessionError) as info:
                await call
            return info.value, time.monotonic() - killed
        finally:
            await s.close()

    exc, elapsed = asyncio.run(go())
    assert exc.status == "lost" and "state unknown" in exc.reason
    assert elapsed < 1.0


def test_frozen_server_is_detected_within_the_keepalive_budget(lab):
    server = ServerProcess(lab, ["frozen"])
    try:
        board = server.boards[0]
        opts = lab_options(lab, timeout=30, keepalive=(1, 2))

        async def go() -> tuple[SessionError, float]:
            s = Session(Target.parse(lab.target(board)), opts)
            await s.open()
            try:
                assert (await s.call("vlans.get", {})).ok
                server.freeze()
                frozen = time.monotonic()
                with pytest.raises(SessionError) as info:
                    await s.call("vlans.get", {})
                return info.value, time.monotonic() - frozen
            finally:
                await s.close()

        exc, elapsed = asyncio.run(go())
        assert exc.status == "timeout" and "not responding" in exc.reason
        assert elapsed < 1 * (2 + 1) + 1  # interval x (count + 1) + 1 s
    finally:
        server.close()


def test_frozen_agent_is_detected_by_the_request_deadline(lab):
    board = lab.board("stopped")
    opts = lab_options(lab, timeout=2)

    async def go() -> tuple[SessionError, float]:
        s = Session(Target.parse(lab.target(board)), opts)
        await s.open()
        try:
            os.kill(board.agents[-1], signal.SIGSTOP)
            start = time.monotonic()
            with pytest.raises(SessionError) as info:
                await s.call("stat.get", {"ifname": "eth0.42"})
            return info.value, time.monotonic() - start
        finally:
            await s.close()

    exc, elapsed = asyncio.run(go())
    assert exc.status == "timeout" and 1.9 < elapsed < 3


def test_client_killed_the_agent_exits_and_leaves_no_stale_lock(lab, sim_env, evl):
    from conftest import script

    board = lab.board("orphan")
    env = lab.env(sim_env)
    assert evl("net", f"--remote={lab.target(board)}", "-ei", "eth1.42", env=env).code == 0
    proc = subprocess.Popen(
        [script("evl"), "net", f"--remote={lab.target(board)}", "-S", "10.10.20.10"],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while len(board.agents) < 2 or lock_is_free(board.lock_path):
            assert time.monotonic() < deadline, "the solicitation never started"
            time.sleep(0.02)
        agent = board.agents[-1]
        os.killpg(proc.pid, signal.SIGKILL)  # the client and its ssh
        killed = time.monotonic()
        while alive(agent):
            assert time.monotonic() - killed < 1.5, "the agent outlived its client"
            time.sleep(0.02)
        assert lock_is_free(board.lock_path)
    finally:
        proc.wait(5)
    run = evl("net", f"--remote={lab.target(board)}", "-N5", env=env)
    assert run.code == 0


# -- issue 15: host-key checking no option weakens, status from ssh's exit code, retries, busy -------------------


def test_forced_options_come_before_the_users(tmp_path):
    opts = Options(ssh_args=("-o", "ConnectTimeout=3"), known_hosts=str(tmp_path / "lab known_hosts"))
    argv = client.ssh_argv(Target.parse("board"), opts)
    user = argv.index("ConnectTimeout=3")
    for forced in ("UpdateHostKeys=no", "LogLevel=INFO", f'UserKnownHostsFile="{tmp_path}/lab known_hosts"'):
        assert argv.index(forced) < user, forced
    assert not any(a.startswith("UserKnownHostsFile") for a in client.ssh_argv(Target.parse("b"), Options()))


def test_ssh_keeps_the_forced_log_level_and_known_hosts(tmp_path):
    """A configuration's LogLevel QUIET, UpdateHostKeys yes and UserKnownHostsFile lose to the forced ones."""
    config = tmp_path / "cfg"
    config.write_text("Host *\n  LogLevel QUIET\n  UpdateHostKeys yes\n  UserKnownHostsFile /tmp/theirs\n")
    pinned = tmp_path / "100% mine"
    opts = Options(ssh_args=("-F", str(config)), known_hosts=str(pinned))
    argv = client.effective_config_argv(client.ssh_argv(Target.parse("evl@127.0.0.1:2200"), opts))
    out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
    settings = dict(line.split(" ", 1) for line in out.splitlines())
    assert settings["loglevel"] == "INFO" and settings["updatehostkeys"] == "false"
    assert settings["userknownhostsfile"] == str(pinned)
    assert client.check_effective_config(out, Target.parse("b"), opts) is None


@pytest.mark.parametrize(
    "args, accept_new, known_hosts, refused",
    [
        (["-q"], False, False, "-q may not be given"),
        (["-4Cq"], False, False, "-q may not be given"),
        (["-o", "LogLevel=QUIET"], False, False, "LogLevel may not be set"),
        (["-ologlevel error"], False, False, "LogLevel may not be set"),
        (["-o", "UpdateHostKeys=yes"], False, False, "UpdateHostKeys may not be set"),
        (["-o", "UserKnownHostsFile=/dev/null"], False, False, "UserKnownHostsFile may not be /dev/null"),
        (["-oUserKnownHostsFile none"], False, False, "UserKnownHostsFile may not be none"),
        (["-E", "ssh.log"], False, False, "-E may not be given: it sends elsewhere the messages"),
        (["-Cy"], False, False, "-y may not be given: it sends to syslog the messages"),
        (["-oGlobalKnownHostsFile=none"], False, False, None),  # the lab's own file stays the user's
        (["-o", "UserKnownHostsFile=lab_kh /dev/null"], False, False, None),  # lab_kh is still checked
        (["-o", "UserKnownHostsFile=lab_kh"], False, True, "may not be set with --known-hosts"),
        (["-o", "GlobalKnownHostsFile=lab_kh"], False, True, None),
        (["-v", "-o", "UserKnownHostsFile=lab_kh"], False, False, None),  # -v is allowed
        (["-l", "-q"], False, False, None),  # -q is -l's argument there, a user name
    ],
)
def test_ssh_arguments_that_would_hide_or_skip_host_key_checks(args, accept_new, known_hosts, refused):
    if refused is None:
        client.check_ssh_args(args, accept_new, known_hosts)
        return
    with pytest.raises(client.EvlError) as info:
        client.check_ssh_args(args, accept_new, known_hosts)
    assert refused in info.value.message and info.value.message.startswith("invalid ssh arguments")


def test_a_config_file_that_empties_known_hosts_is_refused_before_connecting(lab, sim_env, evl):
    """``ssh -G`` sees what a config file sets: UserKnownHostsFile /dev/null never reaches the board."""
    board = lab.board("devnull")
    config = lab.write_config(lab.root / "devnull.cfg", "user_key")
    config.write_text(
        config.read_text().replace(f"UserKnownHostsFile {lab.known_hosts}", "UserKnownHostsFile /dev/null")
    )
    run = evl("net", f"--remote={lab.target(board)}", "-N42", env=lab.env(sim_env, config=config))
    assert (run.code, run.out) == (1, "")
    assert run.err == (
        "evl-net: the ssh configuration for 127.0.0.1 sets UserKnownHostsFile /dev/null: "
        "host keys could not be checked\n"
    )
    assert lab.events(board) == []  # not even a connection


def test_a_config_file_host_key_alias_is_refused_with_accept_new(lab, sim_env, evl):
    board = lab.board("alias", known=False)
    config = lab.write_config(lab.root / "alias.cfg", "user_key")
    config.write_text(config.read_text() + "  HostKeyAlias trusted-board\n")
    env = lab.env(sim_env, config=config)
    run = evl("net", f"--remote={lab.target(board)}", "-N42", "--accept-new-host-key", env=env)
    assert run.code == 1 and run.err == (
        "evl-net: the ssh configuration for 127.0.0.1 sets HostKeyAlias trusted-board: "
        "with --accept-new-host-key, a changed key could pass as a new one\n"
    )
    assert lab.events(board) == [] and "trusted-board" not in lab.known_hosts.read_text()


def _session_open(opts: Options, target: str = "fake") -> Any:
    async def go() -> Any:
        s = Session(Target.parse(target), opts)
        try:
            return await s.open()
        finally:
            await s.close()

    return asyncio.run(go())


def test_an_ssh_without_dash_g_fails_closed(tmp_path):
    old_ssh = "sys.stderr.write('unknown option -- G\\nusage: ssh [-1246AaCfgKkMNnqsTtVvXxYy] ...\\n'); sys.exit(255)\n"
    opts = fake_ssh(tmp_path, ALL_CAPS + HELLO_OK + "sys.stdin.read()\n", config_check=old_ssh)
    with pytest.raises(client.EvlError) as info:
        _session_open(opts)
    assert info.value.message == (
        "cannot check the ssh configuration for fake: this ssh has no -G (an OpenSSH of 6.8 or later is needed)"
    )


@pytest.mark.parametrize(
    "line, refused",
    [
        ("loglevel QUIET", "sets LogLevel QUIET, not INFO"),
        ("stricthostkeychecking false", "sets StrictHostKeyChecking false, not true"),
        ("updatehostkeys true", "sets UpdateHostKeys true, not false"),
        ("knownhostscommand /bin/cat", "sets KnownHostsCommand"),
        ("userknownhostsfile /dev/null", "sets UserKnownHostsFile /dev/null: host keys could not be checked"),
        ("userknownhostsfile none /dev/null", "sets UserKnownHostsFile none /dev/null"),
    ],
)
def test_an_effective_configuration_other_than_forced_is_refused(tmp_path, line, refused):
    """A defence in depth (ssh keeps the first value, so this should never happen): an ssh that disagrees."""
    effective = (
        "user evl\nbatchmode yes\nstricthostkeychecking true\nloglevel INFO\nupdatehostkeys false\n"
        "userknownhostsfile /lab/known_hosts\n"
    )
    key = line.split()[0]
    effective = "".join(x + "\n" for x in effective.splitlines() if not x.startswith(key)) + line + "\n"
    opts = fake_ssh(tmp_path, ALL_CAPS + HELLO_OK + "sys.stdin.read()\n", config_check=f"print({effective!r})\n")
    with pytest.raises(client.EvlError) as info:
        _session_open(opts)
    assert info.value.message.startswith("the ssh configuration for fake ") and refused in info.value.message


def test_the_configuration_check_runs_once_per_command_line(tmp_path):
    count = tmp_path / "checks"
    check = f"open({str(count)!r}, 'a').write('x')\nos.execv({REAL_SSH!r}, [{REAL_SSH!r}, *sys.argv[1:]])\n"
    opts = fake_ssh(tmp_path, ALL_CAPS + HELLO_OK + "sys.stdin.read()\n", config_check=check)
    for target in ("fake", "fake", "other"):
        assert _session_open(opts, target)["proto"] == 2
    assert count.read_text() == "xx"  # fake once, other once


def test_startup_cost_of_the_configuration_check(tmp_path):
    """What ``ssh -G`` adds to a session's start (printed: the report's figure), against the fake agent."""
    opts = fake_ssh(tmp_path, ALL_CAPS + HELLO_OK + "sys.stdin.read()\n")
    argv = client.effective_config_argv(client.ssh_argv(Target.parse("board"), opts))
    runs = 20
    start = time.monotonic()
    for _ in range(runs):
        subprocess.run([REAL_SSH, *argv[1:]], capture_output=True, timeout=10, check=True)
    per_check = (time.monotonic() - start) / runs
    print(f"ssh -G: {per_check * 1000:.1f} ms per board")
    assert per_check < 0.5


@pytest.mark.parametrize(
    "rc, stderr, established, status, said",
    [
        # the agent's own exit status, with a user's -v: its message, not ssh's last debug line
        (
            1,
            "debug1: Sending command: evl net-agent --stdio\r\nevl: no 'net-agent' command. Try 'evl --help'.\n"
            "debug1: client_input_channel_req: channel 0 rtype exit-status reply 0\r\ndebug1: Exit status 1\r\n",
            False,
            "incompatible",
            "no 'net-agent' command",
        ),
        (
            255,
            "debug1: Connecting to 127.0.0.1 [127.0.0.1] port 1.\r\n"
            "ssh: connect to host 127.0.0.1 port 1: Connection refused\r\ndebug2: fd 3 closing\r\n",
            False,
            "unreachable",
            "ssh: connect to host 127.0.0.1 port 1: Connection refused",
        ),
        # ssh -vvv prints "host key" words as it looks the key up: not a refusal
        (
            255,
            "debug1: Server host key: ssh-ed25519 SHA256:abc\r\n"
            "debug3: hostkeys_find_by_key_hostfile: no matching host key found in /lab/other\r\n"
            "Connection closed by 127.0.0.1 port 2200\r\n",
            False,
            "unreachable",
            "Connection closed by 127.0.0.1 port 2200",
        ),
    ],
)
def test_classification_ignores_debug_lines(rc, stderr, established, status, said):
    got, reason = client.classify(rc, stderr, established)
    assert got == status and said in reason and "debug" not in reason


def quiet_config(lab: SshLab, name: str) -> Path:
    config = lab.write_config(lab.root / f"{name}.cfg", "user_key")
    config.write_text(config.read_text() + "  LogLevel QUIET\n")
    return config


def test_a_quiet_config_still_tells_a_changed_host_key(lab, sim_env, evl):
    board = lab.board("quietkey", known="other")
    run = evl("net", f"--remote={lab.target(board)}", "-N42", env=lab.env(sim_env, config=quiet_config(lab, "q")))
    assert run.code == 8 and f"{lab.target(board)}: hostkey-refused: " in run.err and "CHANGED" in run.err, run.err
    assert not board.agents


def test_a_quiet_config_still_tells_a_frozen_server_timed_out(lab):
    server = ServerProcess(lab, ["quietfrozen"])
    try:
        board = server.boards[0]
        opts = lab_options(lab, timeout=30, keepalive=(1, 2), config=quiet_config(lab, "qf"))

        async def go() -> SessionError:
            s = Session(Target.parse(lab.target(board)), opts)
            await s.open()
            try:
                server.freeze()
                with pytest.raises(SessionError) as info:
                    await s.call("vlans.get", {})
                return info.value
            finally:
                await s.close()

        exc = asyncio.run(go())
        assert exc.status == "timeout" and "not responding" in exc.reason, exc.reason
    finally:
        server.close()


# -- known hosts pinned for the run -------------------------------------------------------------------------------


def test_known_hosts_pins_the_file_for_the_run(lab, sim_env, evl, tmp_path):
    board = lab.board("pinned")  # trusted in the lab's known_hosts, which the config names
    target = f"--remote={lab.target(board)}"
    env = lab.env(sim_env)
    assert evl("net", target, "-n", env=env).code == 0
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    run = evl("net", target, "-n", f"--known-hosts={empty}", env=env)
    assert run.code == 8 and "hostkey-refused" in run.err and "not known" in run.err, run.err
    fresh = tmp_path / "fresh_known_hosts"
    run = evl("net", target, "-N42", f"--known-hosts={fresh}", "--accept-new-host-key", env=env)
    assert run.code == 0, run.err
    assert f"[127.0.0.1]:{board.port}" in fresh.read_text()
    run = evl("net", target, "-n", f"--known-hosts={fresh}", env=env)
    assert (run.code, run.out) == (0, "42\n")


def test_known_hosts_errors(lab, sim_env, evl, tmp_path):
    env = lab.env(sim_env)
    missing = tmp_path / "missing"
    run = evl("net", "--remote=board", "-n", f"--known-hosts={missing}", env=env)
    assert (run.code, run.err) == (
        1,
        f"evl-net: --known-hosts {missing}: no such file (with --accept-new-host-key, ssh creates it)\n",
    )
    run = evl("net", "--remote=board", "-n", f"--known-hosts={tmp_path}/nodir/kh", "--accept-new-host-key", env=env)
    assert (run.code, run.err) == (1, f"evl-net: --known-hosts {tmp_path}/nodir/kh: its directory does not exist\n")
    run = evl("net", "--remote=board", "-n", f"--known-hosts={tmp_path}", env=env)
    assert (run.code, run.err) == (1, f"evl-net: --known-hosts {tmp_path}: not a regular file\n")
    kh = tmp_path / "kh"
    kh.write_text("")
    run = evl("net", "--remote=board", "-n", f"--known-hosts={kh}", "--ssh=-oUserKnownHostsFile=other", env=env)
    assert run.code == 1 and "UserKnownHostsFile may not be set with --known-hosts" in run.err
    run = evl("net", "-n", f"--known-hosts={kh}")
    assert (run.code, run.err) == (1, "evl-net: --known-hosts applies to remote boards only\n")


# -- retries ---------------------------------------------------------------------------------------------------------


def fake_ssh_on_path(tmp_path: Path, env: dict[str, str], body: str) -> dict[str, str]:
    """``ssh`` on PATH is a fake (see fake_ssh): the environment for ``evl net --remote``."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    fake_ssh(bindir, body, name="ssh")
    out = {k: v for k, v in env.items() if k not in ("EVL_NET_TRANSPORT", "EVL_NET_SSH", "EVL_NET_REMOTE")}
    out["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', os.defpath)}"
    return out


def flaky(count: Path, failures: int, message: str) -> str:
    """An ssh that fails ``failures`` times per host with ``message`` (counted in ``count``.HOST), then works."""
    return (
        f"path = {str(count)!r} + '.' + sys.argv[-2]\n"
        "n = len(open(path).read()) if os.path.exists(path) else 0\n"
        "open(path, 'a').write('x')\n"
        f"if n < {failures}:\n"
        f"    sys.stderr.write({message!r}); sys.exit(255)\n"
        + ALL_CAPS
        + HELLO_OK
        + "r = recv(); send({'id': r['id'], 'ok': True, 'result': {'value': '42'}})\nsys.stdin.read()\n"
    )


RESET = "kex_exchange_identification: read: Connection reset by peer\r\nConnection reset by 127.0.0.1 port 22\r\n"


def attempts(count: Path, host: str = "board") -> int:
    path = Path(f"{count}.{host}")
    return len(path.read_text()) if path.exists() else 0


def test_a_reset_before_hello_is_retried(tmp_path, sim_env, evl):
    count = tmp_path / "count"
    env = fake_ssh_on_path(tmp_path, sim_env, flaky(count, 2, RESET))
    run = evl("net", "--remote=board", "-n", "--retries=3", env=env)
    assert (run.code, run.out, run.err) == (0, "42\n", "")
    assert attempts(count) == 3
    count.with_name("count.board").unlink()
    run = evl("net", "--remote=board", "-n", "--retries=0", env=env)
    assert run.code == 8 and run.err == "evl-net: board: unreachable: Connection reset by 127.0.0.1 port 22\n"
    assert attempts(count) == 1


@pytest.mark.parametrize(
    "message, status",
    [
        ("evl@board: Permission denied (publickey).\r\n", "auth-refused"),
        ("Host key verification failed.\r\n", "hostkey-refused"),
        ("ssh: connect to host board port 22: Connection timed out\r\n", "timeout"),
        ("ssh: Could not resolve hostname board: Name or service not known\r\n", "unreachable"),
    ],
)
def test_refusals_and_timeouts_are_not_retried(tmp_path, sim_env, evl, message, status):
    count = tmp_path / "count"
    env = fake_ssh_on_path(tmp_path, sim_env, flaky(count, 5, message))
    run = evl("net", "--remote=board", "-n", "--retries=5", env=env)
    assert run.code == 8 and f"evl-net: board: {status}: " in run.err
    assert attempts(count) == 1


def test_a_session_is_never_retried_after_hello(tmp_path, sim_env, evl):
    count = tmp_path / "count"
    body = (
        f"open({str(count) + '.board'!r}, 'a').write('x')\n"
        + ALL_CAPS
        + HELLO_OK
        + f"recv(); sys.stderr.write({RESET!r}); sys.exit(255)\n"
    )
    env = fake_ssh_on_path(tmp_path, sim_env, body)
    run = evl("net", "--remote=board", "-N42", "--retries=5", env=env)
    assert run.code == 8 and "evl-net: board: lost: " in run.err and "state unknown" in run.err
    assert attempts(count) == 1


def test_retries_errors(evl, sim_env):
    env = {k: v for k, v in sim_env.items() if k != "EVL_NET_TRANSPORT"}
    for bad in ("11", "-1", "x", ""):
        run = evl("net", "--remote=board", "-n", f"--retries={bad}", env=env)
        assert (run.code, run.err) == (1, f"evl-net: invalid number of retries '{bad}': expected 0..10\n")
    run = evl("net", "-n", "--retries=2")
    assert (run.code, run.err) == (1, "evl-net: --retries applies to remote boards only\n")


def test_backoff_is_full_jitter_under_the_cap():
    for attempt in range(12):
        waits = [client.backoff(attempt) for _ in range(200)]
        bound = min(client.BACKOFF_CAP_S, client.BACKOFF_BASE_S * 2**attempt)
        assert all(0 <= w <= bound for w in waits) and max(waits) > bound / 2


# -- busy: the board's lock was held for the whole wait -----------------------------------------------------------


def lock_wait_agent(record: Path, answer: str) -> str:
    """A fake agent recording its hello, answering ``answer`` (an error object) to the next request."""
    return (
        ALL_CAPS
        + f"r = recv(); open({str(record)!r}, 'w').write(json.dumps(r['args']))\n"
        + "send({'id': r['id'], 'ok': True, 'result': {'proto': 2, 'caps': CAPS, 'limits': {}, "
        "'abi': {'base': 45, 'current': 45}}})\n"
        + f"r = recv(); send({{'id': r['id'], 'ok': False, 'error': {answer}}})\nsys.stdin.read()\n"
    )


def test_a_locked_board_is_busy_and_exits_16(tmp_path, sim_env, evl):
    hello = tmp_path / "hello.json"
    answer = "{'code': 'ELOCKED', 'errno': 16, 'msg': 'another session kept the board busy for 1 s: nothing was done'}"
    env = fake_ssh_on_path(tmp_path, sim_env, lock_wait_agent(hello, answer))
    run = evl("net", "--remote=board", "-N42", "--timeout=2", env=env)
    assert (run.code, run.out) == (16, "")
    assert run.err == "evl-net: board: busy: another session kept the board busy for 1 s: nothing was done\n"
    assert json.loads(hello.read_text())["lock_wait"] == 1.0  # half the request deadline: answered before it


def test_a_refused_operation_is_one_line(tmp_path, sim_env, evl):
    answer = "{'code': 'EPERM', 'errno': 1, 'msg': 'vlans.set is not allowed for this key (--read-only)'}"
    env = fake_ssh_on_path(tmp_path, sim_env, lock_wait_agent(tmp_path / "hello.json", answer))
    run = evl("net", "--remote=board", "-N42", env=env)
    assert run.code == 1 and run.out == "" and run.err.count("\n") == 1, run.err
    assert run.err.startswith("evl-net: ") and "Operation not permitted" in run.err and "read-only" in run.err


def test_a_board_held_by_another_session_is_busy(lab, sim_env, evl):
    from evl_net import api

    board = lab.board("held")
    env = lab.env(sim_env)
    board.lock_path.parent.mkdir(parents=True, exist_ok=True)
    with api.open_board(transport="remote", remote=lab.target(board), env=env) as holder:
        holder.transport.hold_board_lock(True)
        start = time.monotonic()
        run = evl("net", f"--remote={lab.target(board)}", "-N42", "--timeout=2", env=env)
        assert time.monotonic() - start < 2 + 1
        assert run.code == 16, run.err
        assert (
            run.err
            == f"evl-net: {lab.target(board)}: busy: another session kept the board busy for 1 s: nothing was done\n"
        )
    run = evl("net", f"--remote={lab.target(board)}", "-n", env=env)
    assert run.code == 0 and "42" not in run.out  # nothing was done


if __name__ == "__main__":
    _serve_main(sys.argv[1], sys.argv[2:])
