"""The files a board's tools write (the agent's lock, the simulator's state, the ioctl ledger), what a
reload of the same eBPF object reports, and the limits the agent checks itself (issue 15, items 7-8).

A group-writable run directory (``/run/evl``) lets any member plant a symbolic link, a FIFO or a stale
temporary file under the name another account's tool writes: none of them may redirect or block a write.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import threading
import time
from pathlib import Path
from typing import ClassVar

import pytest

import bpf_build
from evl_core.errors import EvlError, shown
from evl_net.agent.backend import Backend
from evl_net.agent.session import Agent
from evl_net.boardlock import LOCK_NAME, BoardLock
from evl_net.outcomes import PeerRoute, PortConfig
from evl_net.transports.ioctl import LEDGER_FILE, LEDGER_LOCK, Ledger
from evl_net.transports.remote import protocol
from test_remote_agent import HELLO, AgentPipe, agent_env  # noqa: F401 -- a fixture

FOREVER = 1e18  # a lock deadline no test reaches


@pytest.fixture
def agent(agent_env):
    pipes: list[AgentPipe] = []

    def start(env: dict[str, str] | None = None) -> AgentPipe:
        pipe = AgentPipe(env or agent_env)
        pipes.append(pipe)
        pipe.hello()
        return pipe

    yield start
    for pipe in pipes:
        pipe.close()


def jsonl(run) -> list[dict]:
    return [json.loads(line) for line in run.out.splitlines()]


def acquire_within(lock: BoardLock, seconds: float = 5) -> BaseException | None:
    """What ``lock.acquire`` raised (None: it was had), failing the test if it blocked."""
    box: dict[str, BaseException | None] = {}

    def run() -> None:
        try:
            lock.acquire(time.monotonic() + 1)
            box["error"] = None
        except BaseException as exc:  # handed to the test
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert "error" in box, "the lock's open blocked"
    return box["error"]


# -- 1. the agent's board lock ------------------------------------------------------------------


def test_board_lock_is_a_regular_file_made_in_its_directory(tmp_path):
    lock = BoardLock(str(tmp_path / "run" / "evl"))
    assert acquire_within(lock) is None
    path = tmp_path / "run" / "evl" / LOCK_NAME
    assert path.is_file() and not path.is_symlink()
    lock.release()
    lock.close()


@pytest.mark.parametrize("exists", [True, False])
def test_board_lock_never_follows_a_planted_symlink(tmp_path, exists):
    shared = tmp_path / "shared"
    shared.mkdir()
    victim = tmp_path / "victim"
    if exists:
        victim.write_text("another account's file\n")
    (shared / LOCK_NAME).symlink_to(victim)
    lock = BoardLock(str(shared))
    error = acquire_within(lock)
    assert isinstance(error, EvlError)
    assert str(error) == f"cannot open the board lock {shown(str(shared / LOCK_NAME))}: is a symbolic link (refused)"
    if exists:
        assert victim.read_text() == "another account's file\n"
    else:
        assert not victim.exists()  # not created through the link
    lock.close()


def test_board_lock_refuses_a_fifo_without_blocking(tmp_path):
    os.mkfifo(tmp_path / LOCK_NAME)
    lock = BoardLock(str(tmp_path))
    error = acquire_within(lock)
    assert isinstance(error, EvlError)
    assert str(error) == f"cannot open the board lock {shown(str(tmp_path / LOCK_NAME))}: not a regular file (a FIFO)"


def test_board_lock_refuses_a_directory(tmp_path):
    (tmp_path / LOCK_NAME).mkdir()
    error = acquire_within(BoardLock(str(tmp_path)))
    assert isinstance(error, EvlError) and error.errno == errno.EISDIR
    assert str(error) == f"cannot open the board lock {shown(str(tmp_path / LOCK_NAME))}"


def test_board_lock_directory_is_not_followed_through_a_symlink(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "evl"
    link.symlink_to(elsewhere)
    error = acquire_within(BoardLock(str(link)))
    assert isinstance(error, EvlError)
    assert str(error) == (
        f"cannot open the board lock {shown(str(link / LOCK_NAME))}: directory {shown(str(link))} "
        "is a symbolic link (refused)"
    )
    assert list(elsewhere.iterdir()) == []


def test_agent_answers_a_planted_lock_symlink_with_one_error_line(agent, agent_env, tmp_path):
    shared = Path(agent_env["EVL_NET_AGENT_DIR"])
    shared.mkdir()
    victim = tmp_path / "victim"
    (shared / LOCK_NAME).symlink_to(victim)
    a = agent()
    reply = a.call("vlans.set", {"text": "42"})
    assert reply["ok"] is False
    assert reply["error"]["code"] == protocol.EVLERROR
    assert reply["error"]["msg"] == (
        f"cannot open the board lock {shown(str(shared / LOCK_NAME))}: is a symbolic link (refused)"
    )
    assert not victim.exists()
    assert a.call("vlans.get")["result"] == {"value": ""}  # nothing was done; reads need no lock


# -- 2. temporary files: the simulator's state ---------------------------------------------------------


def test_sim_state_write_does_not_follow_a_symlink_at_its_temporary_name(evl, sim_env, tmp_path):
    state = Path(sim_env["EVL_SIM_STATE"])
    assert evl("net", "-ei", "eth1").code == 0  # the state exists
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    planted = Path(f"{state}.tmp.{os.getpid()}")  # the name this process writes next
    planted.symlink_to(victim)
    run = evl("net", "-ei", "eth0")
    assert (run.code, run.err) == (0, "")
    assert victim.read_text() == "precious\n"
    assert not os.path.lexists(planted)
    assert not state.is_symlink() and "eth0" in json.loads(state.read_text())["ports"]


def test_sim_state_leftovers_of_killed_writers_are_removed_by_the_next_write(evl, sim_env, tmp_path):
    state = Path(sim_env["EVL_SIM_STATE"])
    assert evl("net", "-ei", "eth1").code == 0
    leftovers = [Path(f"{state}.tmp.{pid}") for pid in (4194303, 1)]  # dead or not: under the lock, stale
    for path in leftovers:
        path.write_text('{"format": 1, "torn')
    kept = Path(f"{state}.tmp.notapid")
    kept.write_text("not ours")
    assert evl("net", "-ei", "eth0").code == 0
    assert [p for p in leftovers if os.path.lexists(p)] == []
    assert kept.read_text() == "not ours"


def test_sim_state_lock_is_never_followed_through_a_symlink(evl, sim_env, tmp_path):
    state = Path(sim_env["EVL_SIM_STATE"])
    victim = tmp_path / "victim"
    Path(f"{state}.lock").symlink_to(victim)
    run = evl("net", "-ei", "eth1")
    assert run.code == 1 and run.out == ""
    where = f"cannot lock simulator state {shown(str(state))}: lock file {shown(f'{state}.lock')}"
    assert run.err == f"evl-net: {where}: is a symbolic link (refused)\n"
    assert not victim.exists()


# -- 2. temporary files: the ioctl transport's ledger ---------------------------------------------------


def note(section: dict) -> None:
    section["filters"]["eth0"] = {"ifindex": 7, "installed": False}


def test_ledger_leftovers_of_killed_writers_are_removed_under_the_lock(tmp_path):
    rundir = tmp_path / "run"
    rundir.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    stale = rundir / f".{LEDGER_FILE}.4194303.tmp"
    stale.write_text('{"torn')
    linked = rundir / f".{LEDGER_FILE}.4194302.tmp"
    linked.symlink_to(victim)
    Ledger(str(rundir)).update(note)
    assert not os.path.lexists(stale) and not os.path.lexists(linked)
    assert victim.read_text() == "precious\n"
    section, readable = Ledger(str(rundir)).read()
    assert readable and section["filters"]["eth0"]["installed"] is False


def test_ledger_temporary_name_and_ledger_symlinks_do_not_redirect_the_write(tmp_path):
    rundir = tmp_path / "run"
    rundir.mkdir()
    victim, other = tmp_path / "victim", tmp_path / "other"
    victim.write_text("precious\n")
    other.write_text("also precious\n")
    (rundir / f".{LEDGER_FILE}.{os.getpid()}.tmp").symlink_to(victim)
    (rundir / LEDGER_FILE).symlink_to(other)
    Ledger(str(rundir)).update(note)
    assert victim.read_text() == "precious\n" and other.read_text() == "also precious\n"
    ledger = rundir / LEDGER_FILE
    assert not ledger.is_symlink() and json.loads(ledger.read_text())["version"] == 1
    assert sorted(p.name for p in rundir.iterdir()) == [LEDGER_FILE, LEDGER_LOCK]


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_ledger_lock_that_is_no_regular_file_is_never_used(tmp_path, kind):
    rundir = tmp_path / "run"
    rundir.mkdir()
    victim = tmp_path / "victim"
    if kind == "symlink":
        (rundir / LEDGER_LOCK).symlink_to(victim)
    else:
        os.mkfifo(rundir / LEDGER_LOCK)
    done = threading.Event()
    thread = threading.Thread(target=lambda: (Ledger(str(rundir)).update(note), done.set()), daemon=True)
    thread.start()
    assert done.wait(5), "the ledger's lock blocked"
    assert not victim.exists()
    assert not (rundir / LEDGER_FILE).exists()  # no lock, no write: the ledger stays "unknown"


# -- 3. reloading the same eBPF object --------------------------------------------------------------------


@pytest.fixture(scope="module")
def objects(tmp_path_factory) -> dict[str, Path]:
    if not bpf_build.have_clang():
        pytest.skip("clang with the BPF target is needed to build tests/bpf/*.c")
    out = tmp_path_factory.mktemp("bpf")
    built = {name: bpf_build.build(name, out) for name in ("netrx", "drop_udp9")}
    for name, data in bpf_build.user_objects(["users_percpu_count"], tmp_path_factory).items():
        built[name] = out / f"{name}.o"
        built[name].write_bytes(data)
    return built


def test_reloading_the_same_object_is_no_change_on_the_simulator(evl, objects):
    assert evl("net", "-ei", "eth0.42").code == 0

    def load(obj: Path) -> dict:
        run = evl("net", "--json", f"-F{obj}", "-i", "eth0.42")
        assert run.code == 0, run.err
        # the install is performed each time, as the kernel does it: it logs it
        assert run.err.endswith("fec 2188000.ethernet eth0: out-of-band eBPF program installed\n")
        (res,) = jsonl(run)
        return res

    first = load(objects["netrx"])
    assert first["changed"] is True and first["object"] == str(objects["netrx"])
    again = load(objects["netrx"])
    assert again["changed"] is False and again["program"] == first["program"]
    assert load(objects["drop_udp9"])["changed"] is True
    assert load(objects["netrx"])["changed"] is True
    assert evl("net", "-F", "-i", "eth0.42").code == 0  # removed: the next install is one again
    assert load(objects["netrx"])["changed"] is True


def test_reloading_an_object_with_maps_starts_them_afresh_and_is_no_change(evl, objects):
    """The reload is performed, as on the kernel (new maps, zeroed): the filter is the same, no change."""
    assert evl("net", "-ei", "eth0").code == 0
    obj = objects["users_percpu_count"]
    assert jsonl(evl("net", "--json", f"-F{obj}", "-i", "eth0"))[0]["changed"] is True

    def counts() -> list[int]:
        run = evl("sim", "--json", "maps", "eth0")
        assert run.code == 0, run.err
        (m,) = [m for m in json.loads(run.out)["eth0"] if m["name"] == "counts"]
        return [sum(int("".join(b[2:] for b in reversed(v["value"])), 16) for v in e["values"]) for e in m["elements"]]

    assert evl("sim", "rx", "eth0", "--count", "3").code == 0
    assert counts() == [0, 3, 0, 0]
    assert jsonl(evl("net", "--json", f"-F{obj}", "-i", "eth0"))[0]["changed"] is False
    assert counts() == [0, 0, 0, 0]


def test_reloading_the_same_object_through_the_agent(agent, objects):
    a = agent()
    assert a.call("port.enable", {"ifname": "eth0.42", "pool_size": 0, "buffer_size": 0})["ok"]
    obj = objects["netrx"].read_bytes()
    args = protocol.bpf_args("eth0.42", obj, "netrx.o")
    first = a.call("bpf.load", args)
    assert first["ok"] and first["result"]["changed"] is True and first["result"]["data"]["changed"] is True
    again = a.call("bpf.load", args)
    assert again["ok"], again
    assert again["result"]["changed"] is False and again["result"]["data"]["changed"] is False
    assert any(line.endswith("out-of-band eBPF program installed") for line in again["log"])
    other = a.call("bpf.load", protocol.bpf_args("eth0.42", objects["drop_udp9"].read_bytes(), "drop.o"))
    assert other["result"]["changed"] is True


# -- 4. what the agent checks itself ---------------------------------------------------------------------


BIG_PAGES = 16384


@pytest.fixture
def big_page_env(agent_env, tmp_path):
    """The manual's board with 16 KiB pages: buffers up to 65536 bytes."""
    boards = Path(__file__).resolve().parent.parent / "plugins" / "net" / "evl_net" / "boards"
    text = (boards / "manual.toml").read_text()
    assert "page_size = 4096" in text
    board = tmp_path / "big.toml"
    board.write_text(text.replace("page_size = 4096", f"page_size = {BIG_PAGES}"))
    return {**agent_env, "EVL_SIM_BOARD": str(board)}


def einval(reply: dict, detail: str) -> None:
    assert reply["ok"] is False, reply
    error = reply["error"]
    assert error["code"] == "EINVAL" and error["errno"] == errno.EINVAL, reply
    assert detail in (error.get("detail") or error["msg"]), reply


def test_agent_limits_at_and_one_over(agent, big_page_env):
    a = agent(big_page_env)
    assert a.call("page_size")["result"]["value"] == BIG_PAGES
    limit = 4 * BIG_PAGES

    def enable(ifname: str, pool: int, buffer: int) -> dict:
        return a.call("port.enable", {"ifname": ifname, "pool_size": pool, "buffer_size": buffer})

    einval(enable("eth0", 0, limit + 1), f"buffer size {limit + 1} is above the board's limit of {limit}")
    einval(enable("eth0", 32769, 0), "pool size 32769 is above the kernel's limit of 32768")
    einval(enable("eth0", 0, 2**64 - 1), "buffer size 18446744073709551615 is above 4 x the largest page size")
    at = enable("eth0", 32768, limit)
    assert at["ok"] and at["result"]["data"] == {"changed": True, "pool_size": 32768, "buffer_size": limit}
    defaults = enable("eth1", 0, 0)  # 0: the kernel's defaults
    assert defaults["ok"] and defaults["result"]["data"]["buffer_size"] == BIG_PAGES
    for op in ("solicit", "peer.route"):
        for flags in (4, 1 << 31, 0x7):
            einval(a.call(op, {"host": "10.10.10.10", "ifname": None, "flags": flags}), "unknown flags")
    assert a.call("port.enable", {"ifname": "eth0.42", "pool_size": 0, "buffer_size": 0})["ok"]
    route = a.call("peer.route", {"host": "10.10.10.10", "ifname": None, "flags": 0x3})
    assert route["ok"] and route["result"]["value"]["dev"] == "eth0.42"


def test_agent_static_limits_are_refused_before_the_lock(agent, agent_env):
    """A refusal needs no lock: another session holding it does not delay it."""
    a = agent()
    shared = Path(agent_env["EVL_NET_AGENT_DIR"])
    shared.mkdir(exist_ok=True)
    fd = os.open(shared / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o660)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        start = time.monotonic()
        einval(a.call("port.enable", {"ifname": "eth0", "pool_size": 40000, "buffer_size": 0}), "pool size 40000")
        einval(a.call("solicit", {"host": "10.10.10.10", "ifname": None, "flags": 8}), "unknown flags 0x8")
        assert time.monotonic() - start < 1.0  # the lock's wait is seconds
        busy = a.call("port.enable", {"ifname": "eth0", "pool_size": 0, "buffer_size": 0}, timeout=30)
        assert busy["ok"] is False and busy["error"]["errno"] == errno.EBUSY  # a valid one does wait for it
    finally:
        os.close(fd)


class SpyTransport:
    """A board with 4 KiB pages that records every request reaching it."""

    calls: ClassVar[list[str]] = []

    def __init__(self) -> None:
        self.console = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def close(self) -> None:
        pass

    def page_size(self) -> int:
        SpyTransport.calls.append("page_size")
        return 4096

    def get_stat(self, ifname: str):
        SpyTransport.calls.append("get_stat")
        raise OSError(errno.ENODEV, "no such device")

    def enable_port(self, ifname: str, pool_size: int, buffer_size: int) -> PortConfig:
        SpyTransport.calls.append("enable_port")
        return PortConfig(True, pool_size or 2048, buffer_size or 4096)

    def peer_route(self, host: str, ifname: str | None, flags: int) -> PeerRoute:
        SpyTransport.calls.append("peer_route")
        return PeerRoute(host, "eth0", host, "")


def test_agent_refusals_reach_no_mutation_of_the_transport(tmp_path):
    SpyTransport.calls = []
    backend = Backend("spy", lambda request, env: SpyTransport(), None, {})
    r_in, w_in = os.pipe()
    r_out, w_out = os.pipe()
    agent = Agent(backend, rfd=r_in, wfd=w_out, lock=BoardLock(str(tmp_path / "state")), idle_s=5)
    thread = threading.Thread(target=agent.serve, daemon=True)
    thread.start()
    out = os.fdopen(r_out, "rb")
    rid = 0

    def call(op: str, args: dict) -> dict:
        nonlocal rid
        rid += 1
        os.write(w_in, protocol.request_frame(rid, op, args))
        reply = json.loads(out.readline())
        assert reply["id"] == rid, reply
        return reply

    assert call("hello", HELLO)["ok"]
    einval(call("port.enable", {"ifname": "eth0", "pool_size": 32769, "buffer_size": 0}), "pool size 32769")
    einval(call("peer.route", {"host": "192.0.2.1", "ifname": None, "flags": 0x10}), "unknown flags 0x10")
    assert SpyTransport.calls == []  # refused with the arguments: the transport was not even opened
    einval(call("port.enable", {"ifname": "eth0", "pool_size": 0, "buffer_size": 16385}), "limit of 16384")
    assert SpyTransport.calls == ["page_size"]  # the one read the check needs, and nothing else
    SpyTransport.calls = []
    ok = call("port.enable", {"ifname": "eth0", "pool_size": 0, "buffer_size": 16384})
    assert ok["ok"] and ok["result"]["data"]["buffer_size"] == 16384
    assert SpyTransport.calls == ["page_size", "get_stat", "enable_port", "get_stat"]
    os.close(w_in)
    thread.join(5)
    out.close()
    os.close(r_in)
