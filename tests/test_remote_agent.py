"""``evl net-agent --stdio``, the board side, driven over pipes (no SSH) and in-process."""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import ClassVar

import pytest

from evl_net.agent.backend import Backend
from evl_net.agent.session import Agent
from evl_net.boardlock import BoardLock
from evl_net.outcomes import FilterInstalled
from evl_net.transports.contract import BY_WIRE
from evl_net.transports.remote import protocol
from fslock import lock_is_free

BOARDS = Path(__file__).resolve().parent.parent / "plugins" / "net" / "evl_net" / "boards"
HELLO = {"proto": [2, 2], "client": "test"}


def quick_board(tmp_path: Path, timeout: float = 1.0) -> Path:
    """The manual's board, where a silent peer times out after ``timeout`` s instead of 5."""
    text = (BOARDS / "manual.toml").read_text().replace("solicit_timeout = 5", f"solicit_timeout = {timeout}")
    path = tmp_path / "quick.toml"
    path.write_text(text)
    return path


class AgentPipe:
    """The real agent in a child process, its stdin and stdout ours."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        cmd = [sys.executable, "-m", "evl_core", "net-agent", "--stdio", "--transport=sim", "--log=none", *args]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, bufsize=0
        )
        self.buf = b""
        self.next_id = 100

    def send(self, data: bytes | dict) -> None:
        if isinstance(data, dict):
            data = json.dumps(data, separators=(",", ":")).encode() + b"\n"
        self.proc.stdin.write(data)

    def recv(self, timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                raise TimeoutError("no reply from the agent")
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise EOFError("the agent closed its output")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def call(self, op: str, args: dict | None = None, rid=None, timeout: float = 10) -> dict:
        if rid is None:
            self.next_id += 1
            rid = self.next_id
        self.send({"id": rid, "op": op, "args": args or {}})
        reply = self.recv(timeout)
        assert reply["id"] == rid, reply
        return reply

    def hello(self) -> dict:
        reply = self.call("hello", HELLO, rid=0)
        assert reply["ok"], reply
        return reply["result"]

    def rss_kib(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

    def wait(self, timeout: float = 5) -> int:
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass


@pytest.fixture
def agent_env(sim_env, tmp_path):
    env = dict(sim_env)
    env.pop("EVL_NET_TRANSPORT", None)
    env["EVL_NET_AGENT_DIR"] = str(tmp_path / "agent")
    return env


@pytest.fixture
def agent(agent_env):
    pipes = []

    def start(*args: str, env: dict | None = None) -> AgentPipe:
        pipe = AgentPipe(env or agent_env, *args)
        pipes.append(pipe)
        return pipe

    yield start
    for pipe in pipes:
        pipe.close()


# -- handshake ------------------------------------------------------------------------------


def test_hello_first_and_once(agent):
    a = agent()
    reply = a.call("vlans.get", rid=1)
    assert reply["ok"] is False and reply["error"]["code"] == "EPROTO"
    result = a.hello()
    assert result["proto"] == 2 and result["transport"] == "sim"
    assert result["abi"]["base"] == result["abi"]["current"] == 45
    assert sorted(result["caps"]) == sorted(protocol.CAPS) == sorted([*BY_WIRE, protocol.BOARD_LOCK])
    assert result["limits"]["max_frame"] == 2**20 and result["limits"]["max_bpf_frame"] == 4 * 2**20
    again = a.call("hello", HELLO)
    assert again["error"]["code"] == "EPROTO"
    assert a.call("vlans.get")["ok"]


def test_no_common_protocol_version(agent):
    a = agent()
    reply = a.call("hello", {"proto": [7, 9], "client": "future"}, rid=0)
    assert reply["error"]["code"] == "EPROTONOSUPPORT"
    assert a.call("page_size")["error"]["code"] == "EPROTO"  # still no session


# -- bad frames: an error reply, and the session goes on -------------------------------------------

BAD_FRAMES = [
    b"not json\n",
    b"[1,2,3]\n",
    b'{"id":1e999,"op":"vlans.get","args":{}}\n',
    b'{"id":' + b"7" * 5000 + b',"op":"vlans.get","args":{}}\n',
    b'{"id":3,"op":"vlans.set","args":{"text":"\\udc00"}}\n',
    b'{"id":2,"op":{"id":1}}\n',
    b"[" * 100_000 + b"\n",
    b'{"id":4,"op":"exec","args":{"argv":["reboot"]}}\n',
    b'{"id":5,"op":"bpf.load","args":{"ifname":"eth0","path":"/etc/shadow"}}\n',
    b"\xc3\x28\n",
    b"\n",
]


@pytest.mark.parametrize("line", BAD_FRAMES, ids=[f"bad{i}" for i in range(len(BAD_FRAMES))])
def test_bad_frames_get_an_error_and_the_agent_keeps_serving(agent, line):
    a = agent()
    a.hello()
    a.send(line)
    reply = a.recv()
    assert reply["ok"] is False and reply["error"]["code"].startswith("E")
    assert a.call("vlans.get")["ok"]
    assert a.proc.poll() is None


def test_oversized_frames_with_and_without_newline(agent):
    a = agent()
    a.hello()
    rss = a.rss_kib()
    a.send(b'{"id":9,"op":"vlans.set","args":{"text":"' + b"1" * (protocol.MAX_FRAME + 1) + b'"}}\n')
    reply = a.recv()
    assert reply["error"]["code"] == "E2BIG" and reply["id"] is None
    assert a.call("vlans.get")["ok"]
    # No newline at all: refused as soon as the cap is passed, the rest skipped up to the newline.
    junk = b"x" * (protocol.MAX_BPF_FRAME + 2 * 2**20)
    threading.Thread(target=a.send, args=(junk,), daemon=True).start()
    reply = a.recv()
    assert reply == {"id": None, "ok": False, "error": reply["error"]} and reply["error"]["code"] == "E2BIG"
    time.sleep(0.3)
    a.send(b"still junk\n")
    assert a.call("vlans.get")["ok"]
    assert a.rss_kib() - rss < 2 * protocol.MAX_BPF_FRAME // 1024


def test_duplicate_ids_and_replayed_mutations(agent):
    a = agent()
    a.hello()
    first = a.call("port.enable", {"ifname": "eth0.42", "pool_size": 0, "buffer_size": 0}, rid=7)
    assert first["ok"] and first["result"]["changed"] is True
    assert first["result"]["before"]["oob_port"] is False and first["result"]["after"]["oob_port"] is True
    dup = a.call("port.enable", {"ifname": "eth0.42", "pool_size": 0, "buffer_size": 0}, rid=7)
    assert dup["error"]["code"] == "EDUPID"
    replay = a.call("port.enable", {"ifname": "eth0.42", "pool_size": 0, "buffer_size": 0}, rid=8)
    assert replay["ok"] and replay["result"]["changed"] is False
    assert replay["result"]["before"] == replay["result"]["after"]


def test_mutations_report_changed_before_after(agent):
    a = agent()
    a.hello()
    r = a.call("vlans.set", {"text": "41,42,55-57"})["result"]
    assert r == {
        "data": {"changed": True, "vlans": "41-42,55-57"},
        "changed": True,
        "before": "",
        "after": "41-42,55-57",
    }
    r = a.call("vlans.set", {"text": "42,41,55,56,57"})["result"]
    assert r["changed"] is False and r["before"] == r["after"] == "41-42,55-57"
    r = a.call("port.disable", {"ifname": "eth1"})["result"]
    assert r["changed"] is False


def test_errors_carry_errno_and_detail(agent):
    a = agent()
    a.hello()
    reply = a.call("stat.get", {"ifname": "eth9"})
    assert reply["error"] == {
        "code": "ENODEV",
        "errno": errno.ENODEV,
        "msg": os.strerror(errno.ENODEV),
        "stage": "cannot open out-of-band port eth9",
    }  # the failed step, in the C tool's words
    reply = a.call("bpf.remove", {"ifname": "eth0"})
    assert reply["error"]["code"] == "ENODEV" and reply["error"]["detail"] == "eth0 is not an out-of-band port"


def test_bpf_mismatches_are_refused_before_loading(agent, agent_env, tmp_path):
    a = agent()
    a.hello()
    assert a.call("port.enable", {"ifname": "eth0.42", "pool_size": 0, "buffer_size": 0})["ok"]
    obj = b"\x7fELF" + bytes(200)
    good = protocol.bpf_args("eth0.42", obj, "netrx.o")
    for bad, code in (
        ({"sha256": "0" * 64}, "EBADMSG"),
        ({"size": len(obj) + 1}, "EINVAL"),
        ({"size": protocol.MAX_BPF + 1}, "E2BIG"),
    ):
        reply = a.call("bpf.load", {**good, **bad})
        assert reply["error"]["code"] == code, reply
        assert "log" not in reply
    # The object that matches reaches the loader (the simulator's ELF parser refuses this one).
    reply = a.call("bpf.load", good)
    assert reply["ok"] is False and reply["error"]["code"] == "EINVAL" and "netrx.o" in reply["error"]["detail"]
    state = json.loads(Path(agent_env["EVL_SIM_STATE"]).read_text())
    assert state["filters"] == {}


class SpyTransport:
    """A transport that records what reaches it."""

    calls: ClassVar[list] = []

    def __init__(self) -> None:
        self.console = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def close(self):
        pass

    def install_rx_filter(self, ifname, obj, obj_name):
        SpyTransport.calls.append(("install_rx_filter", ifname, obj, obj_name))
        import hashlib

        return FilterInstalled(True, program=hashlib.sha256(obj).hexdigest())


def test_in_process_bpf_checks_happen_before_the_loader_and_the_lock(tmp_path):
    SpyTransport.calls = []
    lock = BoardLock(str(tmp_path / "state"))
    backend = Backend("spy", lambda request, env: SpyTransport(), None, {})
    r_in, w_in = os.pipe()
    r_out, w_out = os.pipe()
    agent = Agent(backend, rfd=r_in, wfd=w_out, lock=lock, idle_s=5)
    thread = threading.Thread(target=agent.serve, daemon=True)
    thread.start()
    obj = bytes(range(256)) * 8192  # 2 MiB: the largest object a board takes
    good = protocol.bpf_args("eth0", obj, "big.o")
    frames = [protocol.request_frame(0, "hello", HELLO)]
    frames.append(protocol.request_frame(1, "bpf.load", {**good, "sha256": "f" * 64}))
    frames.append(protocol.request_frame(2, "bpf.load", {**good, "size": 5}))
    frames.append(protocol.request_frame(3, "bpf.load", good))
    out = os.fdopen(r_out, "rb")
    writer = threading.Thread(target=lambda: [os.write(w_in, f) for f in frames], daemon=True)
    writer.start()
    replies = [json.loads(out.readline()) for _ in frames]
    os.close(w_in)
    thread.join(5)
    assert [r["ok"] for r in replies] == [True, False, False, True]
    assert replies[1]["error"]["code"] == "EBADMSG" and replies[2]["error"]["code"] == "EINVAL"
    assert len(SpyTransport.calls) == 1 and SpyTransport.calls[0][2] == obj
    assert replies[3]["result"]["data"]["program"] == good["sha256"]
    assert replies[3]["result"]["after"] == {"filter_sha256": good["sha256"]}
    out.close()
    os.close(r_in)


# -- deadlines, idle, EOF, lock ---------------------------------------------------------------------


def test_slow_drip_hits_the_frame_deadline(agent):
    a = agent("--frame-timeout", "0.5")
    a.hello()
    start = time.monotonic()
    a.send(b'{"id":')
    reply = a.recv(5)
    assert reply["error"]["code"] == "ETIMEDOUT" and reply["id"] is None
    assert a.wait() == 3
    assert 0.4 < time.monotonic() - start < 2


def test_idle_exit(agent):
    a = agent("--idle-timeout", "1")
    a.hello()
    start = time.monotonic()
    assert a.wait() == 0
    assert 0.8 < time.monotonic() - start < 2.5


def test_eof_exits_at_once(agent):
    a = agent()
    a.hello()
    a.proc.stdin.close()
    start = time.monotonic()
    assert a.wait() == 0
    assert time.monotonic() - start < 1


def test_eof_during_a_mutation_exits_within_a_second_and_frees_the_lock(agent, agent_env, tmp_path):
    env = dict(agent_env, EVL_SIM_BOARD=str(quick_board(tmp_path, 5)))
    a = agent(env=env)
    a.hello()
    assert a.call("port.enable", {"ifname": "eth1.42", "pool_size": 0, "buffer_size": 0})["ok"]
    a.send({"id": 50, "op": "solicit", "args": {"host": "10.10.20.10", "ifname": None, "flags": 1}})
    lock = Path(env["EVL_NET_AGENT_DIR"]) / "net-agent.lock"
    deadline = time.monotonic() + 3
    while lock_is_free(lock):
        assert time.monotonic() < deadline, "the mutation never took the lock"
        time.sleep(0.02)
    a.proc.stdin.close()
    start = time.monotonic()
    a.wait(3)
    assert time.monotonic() - start < 1
    assert lock_is_free(lock)


def test_request_deadline_ends_the_session(agent, agent_env, tmp_path):
    env = dict(agent_env, EVL_SIM_BOARD=str(quick_board(tmp_path, 5)))
    a = agent("--request-timeout", "0.5", env=env)
    a.hello()
    assert a.call("port.enable", {"ifname": "eth1.42", "pool_size": 0, "buffer_size": 0})["ok"]
    start = time.monotonic()
    reply = a.call("solicit", {"host": "10.10.20.10", "ifname": None, "flags": 0})
    assert reply["error"]["code"] == "ETIMEDOUT" and "state unknown" in reply["error"]["msg"]
    assert a.wait() == 3 and time.monotonic() - start < 2
    assert lock_is_free(Path(env["EVL_NET_AGENT_DIR"]) / "net-agent.lock")


def test_mutations_are_serialised_reads_are_not(agent, agent_env, tmp_path):
    env = dict(agent_env, EVL_SIM_BOARD=str(quick_board(tmp_path, 1)))
    a, b = agent(env=env), agent(env=env)
    a.hello()
    b.hello()
    assert a.call("port.enable", {"ifname": "eth1.42", "pool_size": 0, "buffer_size": 0})["ok"]
    start = time.monotonic()
    a.send({"id": 60, "op": "solicit", "args": {"host": "10.10.20.10", "ifname": None, "flags": 0}})
    time.sleep(0.2)
    assert b.call("vlans.get")["ok"] and time.monotonic() - start < 0.8  # a read does not wait
    assert b.call("vlans.set", {"text": "42"})["ok"]  # a mutation does
    b_done = time.monotonic() - start
    reply = a.recv(5)
    assert reply["id"] == 60 and reply["error"]["code"] == "ETIMEDOUT"
    assert b_done >= 0.95


def test_killed_agent_leaves_no_stale_lock(agent, agent_env, tmp_path):
    env = dict(agent_env, EVL_SIM_BOARD=str(quick_board(tmp_path, 5)))
    a = agent(env=env)
    a.hello()
    assert a.call("port.enable", {"ifname": "eth1.42", "pool_size": 0, "buffer_size": 0})["ok"]
    a.send({"id": 70, "op": "solicit", "args": {"host": "10.10.20.10", "ifname": None, "flags": 0}})
    lock = Path(env["EVL_NET_AGENT_DIR"]) / "net-agent.lock"
    deadline = time.monotonic() + 3
    while lock_is_free(lock):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    a.proc.send_signal(signal.SIGKILL)
    a.wait()
    assert lock_is_free(lock)
    b = agent(env=env)
    b.hello()
    assert b.call("vlans.set", {"text": "7"})["result"]["changed"] is True


def test_mutations_are_logged_with_the_ssh_connection(agent, agent_env):
    env = dict(agent_env, SSH_CONNECTION="192.0.2.7 51000 192.0.2.11 22")
    a = agent("--log=stderr", env=env)
    a.hello()
    assert a.call("vlans.set", {"text": "42"})["ok"]
    assert a.call("vlans.get")["ok"]
    a.proc.stdin.close()
    assert a.wait() == 0
    log = a.proc.stderr.read().decode()
    assert "session opened by 'test' (protocol 2, transport sim) (from 192.0.2.7 port 51000)" in log
    assert "vlans.set text='42': changed (from 192.0.2.7 port 51000)" in log
    assert "vlans.get" not in log  # reads are not logged


def test_transport_choice(agent_env):
    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "evl_core", "net-agent", *args],
            env=agent_env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=30,
        )

    proc = run("--stdio", "--transport=remote")
    assert proc.returncode == 1 and "not allowed" in proc.stderr
    proc = run("--stdio", "--transport=nope")
    assert proc.returncode == 1 and "unknown transport 'nope'" in proc.stderr
    proc = run()
    assert proc.returncode == 2 and "--stdio" in proc.stderr
    proc = run("--stdio", "--transport=sim", "--log=none")
    assert (proc.returncode, proc.stdout) == (0, "")  # EOF at once
