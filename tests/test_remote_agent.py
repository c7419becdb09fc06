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


def hwm_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def flood(a: AgentPipe, line: bytes, seconds: float, finish: bool = True) -> int:
    """Write ``line`` again and again for ``seconds`` without ever blocking; the bytes the agent took.

    ``finish``: the last line is completed (from a thread) so that later frames are read as themselves.
    """
    fd = a.proc.stdin.fileno()
    os.set_blocking(fd, False)
    sent, deadline = 0, time.monotonic() + seconds
    view = memoryview(b"")
    while time.monotonic() < deadline:
        if not view:
            view = memoryview(line)
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [], 0.05)
            continue
        sent += n
        view = view[n:]
    os.set_blocking(fd, True)
    if not finish:
        return sent
    # from a thread, as the agent reads it only once it has answered the frames before it, which the
    # test reads meanwhile
    rest = bytes(view)

    def finish() -> None:
        try:
            a.proc.stdin.write(rest)
        except (OSError, ValueError):  # the test closed the input meanwhile: the agent is leaving
            pass

    threading.Thread(target=finish, daemon=True).start()
    return sent + len(rest)


FLOOD_LINE = b"x" * (4 * 2**20 - 1) + b"\n"  # a frame of 4 MiB: under the bpf.load cap, so it is queued whole


@pytest.mark.parametrize(
    "line, code, most",
    [
        (FLOOD_LINE, "E2BIG", 4 * len(FLOOD_LINE)),  # its queue, one frame being read, the pipe's buffer
        (b"x\n", "EBADMSG", 2 * 2**20),  # tiny frames are capped by their count as surely
        (b"\n", "EBADMSG", 2 * 2**20),
    ],
    ids=["4MiB-lines", "1-byte-frames", "empty-lines"],
)
def test_a_flood_during_a_long_request_is_pushed_back_and_memory_stays_bounded(
    agent, agent_env, tmp_path, line, code, most
):
    env = dict(agent_env, EVL_SIM_BOARD=str(quick_board(tmp_path, 2)))
    a = agent(env=env)
    a.hello()
    assert a.call("port.enable", {"ifname": "eth1.42", "pool_size": 0, "buffer_size": 0})["ok"]
    a.send({"id": 50, "op": "solicit", "args": {"host": "10.10.20.10", "ifname": None, "flags": 1}})
    taken = flood(a, line, 1.0)  # the solicitation of a silent peer runs 2 s
    assert taken < most, taken  # the agent stopped reading
    reply = a.recv(10)
    assert reply["id"] == 50 and reply["ok"] is False and reply["error"]["code"] == "ETIMEDOUT"  # the peer's
    # every frame it took is answered (they are not requests), and then it serves again
    for _ in range(taken // len(line)):
        assert a.recv(10)["error"]["code"] == code
    assert a.call("vlans.get")["ok"]
    assert hwm_kib(a.proc.pid) < 64 * 1024


def test_the_workstation_leaving_is_seen_while_the_input_is_pushed_back(agent, agent_env, tmp_path):
    env = dict(agent_env, EVL_SIM_BOARD=str(quick_board(tmp_path, 5)))
    a = agent(env=env)
    a.hello()
    assert a.call("port.enable", {"ifname": "eth1.42", "pool_size": 0, "buffer_size": 0})["ok"]
    a.send({"id": 50, "op": "solicit", "args": {"host": "10.10.20.10", "ifname": None, "flags": 1}})
    flood(a, FLOOD_LINE, 0.5, finish=False)  # the agent has stopped reading: the pipe is full
    a.proc.stdin.close()
    start = time.monotonic()
    assert a.wait(3) == 0
    assert time.monotonic() - start < 1.5


def test_empty_lines_do_not_keep_a_session_alive(agent):
    a = agent("--idle-timeout", "1")
    a.hello()
    start = time.monotonic()
    with pytest.raises((EOFError, BrokenPipeError)):
        while time.monotonic() - start < 5:
            a.send(b"\n")
            assert a.recv(2)["error"]["code"] == "EBADMSG"
            time.sleep(0.1)
    assert a.wait(2) == 0
    assert 0.9 < time.monotonic() - start < 2


def test_a_mutation_that_cannot_have_the_lock_is_answered_busy_before_the_clients_deadline(agent, agent_env):
    holder = agent()
    holder.hello()
    assert holder.call("board.lock", {"hold": 1})["result"] == {"held": True}
    a = agent()
    assert a.call("hello", dict(HELLO, lock_wait=0.5), rid=0)["result"]["limits"]["lock_wait_s"] == 0.5
    start = time.monotonic()
    reply = a.call("vlans.set", {"text": "42"})
    assert 0.45 < time.monotonic() - start < 2
    assert reply["error"] == {
        "code": "ELOCKED",
        "errno": 16,
        "msg": "another session kept the board busy for 0.5 s: nothing was done",
    }
    lock = a.call("board.lock", {"hold": 1})
    assert lock["error"]["code"] == "ELOCKED"
    assert holder.call("vlans.get")["result"]["value"] == ""  # nothing was done
    assert holder.call("board.lock", {"hold": 0})["ok"]
    assert a.call("vlans.set", {"text": "42"})["result"]["changed"] is True  # the session went on
    # without lock_wait: half the request deadline, at most 5 s
    b = agent("--request-timeout", "2")
    assert b.hello()["limits"]["lock_wait_s"] == 1.0
    c = agent()
    assert c.call("hello", dict(HELLO, lock_wait=0), rid=0)["error"]["code"] == "EINVAL"
    assert agent().hello()["limits"]["lock_wait_s"] == 5.0


def test_a_read_only_key_queries_and_never_changes(agent, agent_env, tmp_path):
    log = tmp_path / "audit.log"
    a = agent("--read-only", f"--log={log}")
    hello = a.hello()
    assert set(hello["allowed"]) == {op for op in protocol.CAPS if not protocol.is_mutation(op)} - {"board.lock"}
    assert "vlans.get" in hello["allowed"] and "vlans.set" not in hello["allowed"]
    assert a.call("vlans.get")["result"]["value"] == ""
    assert a.call("stat.get", {"ifname": "eth0.42"})["ok"]
    for op, args in (
        ("vlans.set", {"text": "42"}),
        ("port.enable", {"ifname": "eth0.42", "pool_size": 0, "buffer_size": 0}),
        ("board.lock", {"hold": 1}),
    ):
        reply = a.call(op, args)
        assert reply["error"]["code"] == "EPERM" and reply["error"]["errno"] == 1
        assert reply["error"]["msg"] == f"'{op}' is not allowed for this key (the agent serves it reads only)"
    assert a.call("vlans.get")["result"]["value"] == ""
    assert a.call("stat.get", {"ifname": "eth0.42"})["result"]["value"]["oob_port"] is False
    a.proc.stdin.close()
    assert a.wait() == 0
    results = [(x["op"], x["result"]) for x in audit_lines(log.read_text())]
    assert ("vlans.set", "error=EPERM") in results and ("board.lock", "error=EPERM") in results
    assert "reads only" in log.read_text().splitlines()[0]  # the opening says how the session is restricted


def test_allow_lists_the_operations_of_a_key(agent, agent_env):
    a = agent("--allow=vlans.get,vlans.set")
    assert sorted(a.hello()["allowed"]) == ["vlans.get", "vlans.set"]
    assert a.call("vlans.set", {"text": "7"})["result"]["changed"] is True
    reply = a.call("stat.get", {"ifname": "eth0.42"})
    assert reply["error"]["msg"] == "'stat.get' is not allowed for this key (the agent's --allow list)"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--allow=vlans.get,reboot"], "argument --allow: unknown operation 'reboot': expected some of "),
        (["--allow="], "argument --allow: unknown operation '': expected some of "),
        (["--allow=hello"], "argument --allow: unknown operation 'hello'"),
        (["--read-only", "--allow=vlans.get"], "argument --allow: not allowed with argument --read-only"),
        (["--log=syslogd"], "argument --log: invalid log 'syslogd': syslog, stderr, none or a file path"),
    ],
)
def test_agent_usage_errors(agent_env, args, message):
    proc = subprocess.run(
        [sys.executable, "-m", "evl_core", "net-agent", "--stdio", "--transport=sim", *args],
        env=agent_env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(f"evl-net-agent: {message}") and "\nusage: evl-net-agent " in proc.stderr
    assert "Traceback" not in proc.stderr


def ssh_user_auth(tmp_path: Path) -> tuple[Path, str]:
    """An SSH_USER_AUTH file as sshd's ExposeAuthInfo writes it, and the key's fingerprint by ssh-keygen."""
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    kind, blob = (key.with_suffix(".pub")).read_text().split()[:2]
    auth = tmp_path / "auth-info"
    auth.write_text(f"publickey {kind} {blob}\n")
    fingerprint = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(key.with_suffix(".pub"))],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[1]
    return auth, fingerprint


def audit_lines(text: str) -> list[dict[str, str]]:
    """The request lines of an audit log, as key=value pairs."""
    out = []
    for line in text.splitlines():
        if " op=" in line:
            fields = line.split(": ", 1)[1]
            out.append(dict(f.split("=", 1) for f in fields.split(" ")))
    return out


def test_every_request_is_audited_with_session_key_and_result(agent, agent_env, tmp_path):
    auth, fingerprint = ssh_user_auth(tmp_path)
    env = dict(agent_env, SSH_CONNECTION="192.0.2.7 51000 192.0.2.11 22", SSH_USER_AUTH=str(auth))
    log = tmp_path / "audit" / "agent.log"
    log.parent.mkdir()
    a = agent(f"--log={log}", env=env)
    a.hello()
    assert a.call("vlans.set", {"text": "42"})["result"]["changed"] is True
    assert a.call("vlans.set", {"text": "42"})["result"]["changed"] is False
    assert a.call("vlans.get")["ok"]
    assert a.call("port.enable", {"ifname": "nope0", "pool_size": 0, "buffer_size": 0})["ok"] is False
    # hostile text cannot split or forge a line, and long arguments are cut
    forged = "1\nsession=forged op=vlans.set result=ok"
    assert a.call("vlans.set", {"text": forged})["ok"] is False
    assert a.call("vlans.set", {"text": "9" * 5000})["ok"] is False
    a.send(b"not json\n")
    assert a.recv()["error"]["code"] == "EBADMSG"
    a.proc.stdin.close()
    assert a.wait() == 0
    assert a.proc.stderr.read() == b""  # the file took it all
    text = log.read_text()
    lines = audit_lines(text)
    assert lines[5]["args"] == '{"text":"1\\nsession=forged\\u0020op=vlans.set\\u0020result=ok"}'
    assert json.loads(lines[5]["args"]) == {"text": forged}
    assert [(x["op"], x["result"]) for x in lines] == [
        ("hello", "ok"),
        ("vlans.set", "changed"),
        ("vlans.set", "unchanged"),
        ("vlans.get", "ok"),
        ("port.enable", "error=ENODEV"),
        ("vlans.set", "error=EINVAL"),
        ("vlans.set", "error=EOVERFLOW"),
        ("-", "error=EBADMSG"),
    ]
    assert len(text.splitlines()) == len(lines) + 1  # and the one event line: the session's opening
    assert {x["session"] for x in lines} == {lines[0]["session"]} and len(lines[0]["session"]) == 8
    assert {x["from"] for x in lines} == {"192.0.2.7:51000"}
    assert {x["key"] for x in lines} == {fingerprint}
    assert lines[1]["args"] == '{"text":"42"}'
    assert lines[6]["args"].endswith("...") and len(lines[6]["args"]) == 256
    assert all(x["ms"].isdigit() for x in lines)
    assert oct(log.stat().st_mode & 0o777) == "0o640"


def test_the_clients_name_cannot_forge_fields_of_the_opening_line(agent, tmp_path):
    log = tmp_path / "audit.log"
    a = agent(f"--log={log}")
    forged = "x' op=bpf.load result=changed key=SHA256:forged"
    assert a.call("hello", dict(HELLO, client=forged), rid=0)["ok"]
    a.proc.stdin.close()
    assert a.wait() == 0
    (opening,) = [line for line in log.read_text().splitlines() if "session opened" in line]
    fields = opening.split(": ", 1)[1].split(" ")
    assert [f.split("=")[0] for f in fields[:4]] == ["session", "from", "key", "client"]
    assert fields[2] == "key=-" and not any(f.startswith(("op=", "result=")) for f in fields)
    assert json.loads(fields[3].split("=", 1)[1]) == forged


def test_a_request_cut_by_its_deadline_or_abandoned_is_audited(agent, agent_env, tmp_path):
    env = dict(agent_env, EVL_SIM_BOARD=str(quick_board(tmp_path, 5)))
    for how, result in (("deadline", "error=ETIMEDOUT"), ("eof", "abandoned")):
        log = tmp_path / f"{how}.log"
        a = agent(f"--log={log}", *(["--request-timeout", "1"] if how == "deadline" else []), env=env)
        a.hello()
        assert a.call("port.enable", {"ifname": "eth1.42", "pool_size": 0, "buffer_size": 0})["ok"]
        a.send({"id": 50, "op": "solicit", "args": {"host": "10.10.20.10", "ifname": None, "flags": 1}})
        if how == "deadline":
            assert a.recv(5)["error"]["code"] == "ETIMEDOUT"
        else:
            time.sleep(0.3)
            a.proc.stdin.close()
        a.wait(5)
        lines = audit_lines(log.read_text())
        assert (lines[-1]["op"], lines[-1]["result"]) == ("solicit", result)
        assert json.loads(lines[-1]["args"])["host"] == "10.10.20.10"


def test_a_read_only_key_gets_eperm_however_a_mutation_is_spelt(agent, tmp_path):
    log = tmp_path / "audit.log"
    a = agent("--read-only", f"--log={log}")
    a.hello()
    for args in ({}, {"ifname": 5, "pool_size": 0, "buffer_size": 0}, {"bogus": 1}):
        reply = a.call("port.enable", args)
        assert reply["error"]["code"] == "EPERM", reply
    a.proc.stdin.close()
    assert a.wait() == 0
    assert [(x["op"], x["result"]) for x in audit_lines(log.read_text())][1:] == [("port.enable", "error=EPERM")] * 3


def test_a_log_file_that_cannot_be_used_is_a_warning_and_the_log_goes_to_stderr(agent, agent_env, tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("kept\n")
    link = tmp_path / "agent.log"
    link.symlink_to(target)
    for sink, why in ((link, "is a symbolic link (refused)"), (tmp_path, "Is a directory")):
        a = agent(f"--log={sink}")
        a.hello()
        assert a.call("vlans.set", {"text": "5"})["ok"]
        a.proc.stdin.close()
        assert a.wait() == 0
        err = a.proc.stderr.read().decode()
        assert err.startswith(
            f"evl-net-agent: warning: cannot open the log file {sink}: {why}: the log goes to stderr\n"
        )
        assert [x["op"] for x in audit_lines(err)] == ["hello", "vlans.set"]
    assert target.read_text() == "kept\n"


SYSLOG_NS = (
    "mount -t tmpfs tmpfs /dev && {bind} exec {python} -m evl_core net-agent --stdio --transport=sim --log=syslog"
)


def agent_in_mount_ns(agent_env: dict, bind: str) -> subprocess.Popen:
    """The agent where /dev is a fresh tmpfs (no /dev/log, unless ``bind`` puts a socket there)."""
    script = SYSLOG_NS.format(bind=bind, python=sys.executable)
    return subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=agent_env,
    )


def test_syslog_without_a_daemon_is_a_warning_and_the_log_goes_to_stderr(agent_env):
    proc = agent_in_mount_ns(agent_env, "")
    hello = json.dumps({"id": 0, "op": "hello", "args": HELLO}).encode() + b"\n"
    out, err = proc.communicate(hello + b'{"id":1,"op":"vlans.set","args":{"text":"3"}}\n', timeout=30)
    assert proc.returncode == 0, err
    assert [json.loads(line)["ok"] for line in out.splitlines()] == [True, True]
    text = err.decode()
    assert text.startswith("evl-net-agent: warning: no syslog daemon (/dev/log is missing): the log goes to stderr\n")
    assert [x["op"] for x in audit_lines(text)] == ["hello", "vlans.set"]


def test_syslog_gets_one_datagram_per_request(agent_env, tmp_path):
    import socket

    path = tmp_path / "log.sock"
    daemon = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    daemon.bind(str(path))
    daemon.settimeout(10)
    try:
        proc = agent_in_mount_ns(agent_env, f"touch /dev/log && mount --bind {path} /dev/log &&")
        hello = json.dumps({"id": 0, "op": "hello", "args": HELLO}).encode() + b"\n"
        out, err = proc.communicate(hello + b'{"id":1,"op":"vlans.set","args":{"text":"3"}}\n', timeout=30)
        assert proc.returncode == 0 and err == b"", err
        assert [json.loads(line)["ok"] for line in out.splitlines()] == [True, True]
        grams = [daemon.recv(4096).decode() for _ in range(3)]
    finally:
        daemon.close()
    # <facility*8+severity>: daemon (3) at info (6) for the opening and hello, notice (5) for the change
    assert grams[0].startswith("<30>") and 'client="test" session opened' in grams[0]
    assert grams[1].startswith("<30>") and "op=hello" in grams[1]
    assert grams[2].startswith("<29>") and "op=vlans.set" in grams[2] and "result=changed" in grams[2]
    assert all("evl-net-agent[" in g for g in grams)


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
