"""The simulator's state storage: no lost update, kill-safety, corrupt files, board switches.

These tests drive the real simulator transport code (``SimTransport`` over
``StateFile``): concurrent read-modify-writes from several processes, writers
killed with SIGKILL mid-flight, corrupt state files, and a state file reused
with another board.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from evl_core.errors import EvlError
from evl_net.transports.sim import SimTransport
from evl_net.transports.sim import board as boards
from evl_net.transports.sim.state import FORMAT, StateFile


def quiet_sim(path: Path | str, board: str | None = None) -> SimTransport:
    return SimTransport(board=board, state_path=str(path), console=io.StringIO())


def assert_lock_free(path: Path | str, timeout: float = 1.0) -> None:
    """A new StateFile.acquire() on ``path`` succeeds within ``timeout`` seconds."""
    store = StateFile(str(path))
    got = threading.Event()

    def grab() -> None:
        store.acquire()
        got.set()

    # A daemon thread: if the lock is wedged, the test fails instead of hanging.
    threading.Thread(target=grab, daemon=True).start()
    assert got.wait(timeout), f"the lock of {path} is still held {timeout}s later"
    store.release()


# -- 1. no lost update ------------------------------------------------------

WORKERS = 8
BUMPS = 1000


def _bump(path: str, count: int, barrier, out: str) -> None:
    """count read-modify-writes of a counter kept in the simulator state."""
    seen = []
    barrier.wait(30)
    for _ in range(count):
        with quiet_sim(path) as t:
            counters = t.load().counters.setdefault("lo", {})
            value = counters.get("rx_packets", 0)
            seen.append(value)
            counters["rx_packets"] = value + 1
            t.mark_dirty()  # a test of the storage layer: a change no operation made
    with open(out, "w") as f:
        json.dump(seen, f)


@pytest.mark.slow
def test_no_lost_update(tmp_path: Path) -> None:
    path = tmp_path / "sim-state.json"
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(WORKERS)
    outs = [tmp_path / f"seen-{i}.json" for i in range(WORKERS)]
    procs = [ctx.Process(target=_bump, args=(str(path), BUMPS, barrier, str(out))) for out in outs]
    for p in procs:
        p.start()
    deadline = time.monotonic() + 120
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
    assert [p.exitcode for p in procs] == [0] * WORKERS

    state = StateFile(str(path)).read()
    assert state is not None and state["counters"]["lo"]["rx_packets"] == WORKERS * BUMPS

    # Each read-modify-write saw a distinct predecessor: the values read are exactly 0..7999.
    seen = {i: json.loads(out.read_text()) for i, out in enumerate(outs)}
    values = sorted(v for vs in seen.values() for v in vs)
    assert values == list(range(WORKERS * BUMPS))
    # And the workers really did contend (ownership of consecutive values changes hands).
    owner = {v: i for i, vs in seen.items() for v in vs}
    switches = sum(owner[v] != owner[v + 1] for v in range(WORKERS * BUMPS - 1))
    assert switches >= WORKERS, f"workers ran one after another ({switches} switches): no contention tested"

    # Every writer renamed its temporary file into place; the state still works.
    assert not list(tmp_path.glob("sim-state.json.tmp.*"))
    with quiet_sim(path) as t:
        assert t.get_vlans() == ""
    assert_lock_free(path)


# -- 2. kill -9 in the middle of writes --------------------------------------

KILLS = 100

# Mutates the state as fast as it can.  Each write is self-consistent: the VLAN
# list and the eth0.42 port follow from the counter, so a torn or mixed state
# is detectable.  Prints "ready" once its first write is on disk.
WRITER = r"""
import io, sys
from evl_net.transports.sim import SimTransport

path = sys.argv[1]
ready = False
while True:
    with SimTransport(board=None, state_path=path, console=io.StringIO()) as t:
        counters = t.load().counters.setdefault("lo", {})
        n = counters.get("rx_packets", 0) + 1
        counters["rx_packets"] = n
        t.set_vlans("2-%d" % (2 + (n * 613) % 4092))
        if n % 2:
            t.enable_port("eth0.42", 0, 0)
        else:
            t.disable_port("eth0.42")
        t.mark_dirty()
    if not ready:
        print("ready", flush=True)
        ready = True
"""


def expected_vlans(n: int) -> list[int]:
    return list(range(2, 2 + (n * 613) % 4092 + 1))


def start_writer(path: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVL_")}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 20)
    line = proc.stdout.readline() if ready else b""
    if line != b"ready\n":
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"the writer did not start: {err.decode(errors='replace')}")
    return proc


@pytest.mark.slow
def test_kill_9_mid_write_leaves_a_usable_state(tmp_path: Path, sim_env, sh) -> None:
    path = Path(sim_env["EVL_SIM_STATE"])
    rng = random.Random(4242)
    previous = 0
    started = time.monotonic()
    for round_ in range(KILLS):
        proc = start_writer(path)
        time.sleep(rng.uniform(0.005, 0.050))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL, f"round {round_}: the writer had stopped on its own"

        assert_lock_free(path)
        state = StateFile(str(path)).read()
        assert isinstance(state, dict) and state["format"] == FORMAT
        n = state["counters"]["lo"]["rx_packets"]
        # At least the write announced by "ready" is kept, and nothing goes back.
        assert n >= previous + 1, f"round {round_}: counter went from {previous} to {n}"
        previous = n
        # Old or new, never a mix: everything matches the counter it was written with.
        assert state["vlans"] == expected_vlans(n), f"round {round_}: VLAN list does not match counter {n}"
        assert ("eth0.42" in state["ports"]) == bool(n % 2)
        with quiet_sim(path) as t:
            t.get_vlans()
            assert t.get_stat("eth0.42").oob_port == bool(n % 2)
        assert time.monotonic() - started < 120, "the kill loop is too slow"

    # Leftover temporary files of killed writers are tolerated: the CLI still works beside them.
    leftovers = list(tmp_path.glob("sim-state.json.tmp.*"))
    assert all(p.name.rsplit(".", 1)[1].isdigit() for p in leftovers)
    run = sh("evl", "net", "-n")
    assert (run.code, run.err) == (0, "")
    assert run.out.strip() == f"2-{2 + (previous * 613) % 4092}"


# -- 3. corrupt state files ---------------------------------------------------


def valid_state_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "valid.json"
    with quiet_sim(path) as t:
        t.enable_port("eth0.42", 0, 0)
        t.set_vlans("42,55-57")
    return path.read_bytes()


def edited_state_bytes(tmp_path: Path) -> bytes:
    """A valid state whose board differs from its file's (eth1's MTU changed): the board is stored in full."""
    path = tmp_path / "edited.json"
    with quiet_sim(path) as t:
        t.enable_port("eth0.42", 0, 0)
        t.set_mtu("eth1", 1400)
    return path.read_bytes()


def manual_fingerprint() -> str:
    return boards.fingerprint(boards.locate(None)[1])


def mutated(tmp: Path, change, valid=valid_state_bytes) -> bytes:
    """A valid state file's bytes (``valid(tmp)``), after ``change(state)`` on its JSON object."""
    state = json.loads(valid(tmp))
    change(state)
    return json.dumps(state).encode()


def nested_others(tmp: Path, depth: int) -> bytes:
    """A valid state nested ``depth`` times under "others" (no file has that), written by hand:
    deep enough, it is too deep for a recursive reader, not for the JSON parser."""
    state = json.loads(valid_state_bytes(tmp))
    state.pop("others", None)
    base = json.dumps(state)[:-1]  # without the closing brace
    nested = base + "}"
    for _ in range(depth):
        nested = base + ',"others":{"again":' + nested + "}}"
    return (base + ',"others":{"nested":' + nested + "}}").encode()


CORRUPT = {
    "garbage-bytes": lambda tmp: b"\x89PNG\r\n\x1a\n\x00\xff\xfe garbage \x00" * 7,
    "empty": lambda tmp: b"",
    "truncated-json": lambda tmp: (lambda raw: raw[: len(raw) // 2])(valid_state_bytes(tmp)),
    "json-list": lambda tmp: b"[1, 2, 3]",
    "json-null": lambda tmp: b"null",
    "unknown-format": lambda tmp: json.dumps({**json.loads(valid_state_bytes(tmp)), "format": FORMAT + 1}).encode(),
    "board-not-a-table": lambda tmp: b'{"format": 1, "board": "manual"}',
    "no-board": lambda tmp: b'{"format": 1}',
    "board-fields-missing": lambda tmp: json.dumps(
        {"format": 1, "board": {"fingerprint": manual_fingerprint()}}
    ).encode(),
    "pool-count-a-string": lambda tmp: mutated(tmp, lambda s: s["pools"]["eth0"].update(skb_free="2048")),
    "negative-counter": lambda tmp: mutated(tmp, lambda s: s["counters"].update({"eth0.42": {"rx_packets": -1}})),
    "boolean-counter": lambda tmp: mutated(tmp, lambda s: s["counters"].update({"eth0": {"tx_bytes": True}})),
    "negative-pool": lambda tmp: mutated(tmp, lambda s: s["pools"]["eth0"].update(skb_total=-5)),
    "mtu-a-float": lambda tmp: mutated(
        tmp, lambda s: s["board"]["interfaces"]["eth0"].update(mtu=1500.5), edited_state_bytes
    ),
    "named-board-with-content": lambda tmp: mutated(tmp, lambda s: s["board"].update(page_size="x")),
    "named-board-edited": lambda tmp: mutated(tmp, lambda s: s.update(edited=True)),
    "named-board-bad-fingerprint": lambda tmp: mutated(tmp, lambda s: s["board"].update(fingerprint="sha256:zz")),
    "named-board-empty-fingerprint": lambda tmp: mutated(tmp, lambda s: s["board"].update(fingerprint="")),
    "boot-not-a-number": lambda tmp: valid_state_bytes(tmp).replace(b'"boot":', b'"boot":NaN,"was":'),
    "arp-entry-a-string": lambda tmp: mutated(tmp, lambda s: s.update(arp=["eth0.42 10.10.10.10"])),
    "vlan-out-of-range": lambda tmp: mutated(tmp, lambda s: s.update(vlans=[42, 5000])),
    "port-not-on-the-board": lambda tmp: mutated(tmp, lambda s: s["ports"].append("eth9")),
    "pool-without-a-port": lambda tmp: mutated(tmp, lambda s: s["pools"].update(eth1=dict(s["pools"]["eth0"]))),
    "log-line-a-number": lambda tmp: mutated(tmp, lambda s: s.update(log=[1])),
    "others-not-states": lambda tmp: mutated(tmp, lambda s: s.update(others={"x": [1]})),
    "others-in-others": lambda tmp: nested_others(tmp, 1),
    "others-nested-deep": lambda tmp: nested_others(tmp, 300),
    "json-nested-deep": lambda tmp: b'{"format": 1, "board": ' + b"[" * 100000 + b"]" * 100000 + b"}",
}
CORRUPT_CASES = list(CORRUPT)


@pytest.mark.parametrize("case", CORRUPT_CASES)
def test_corrupt_state_is_a_clear_error_and_left_untouched(case: str, tmp_path: Path, sim_env, sh) -> None:
    path = Path(sim_env["EVL_SIM_STATE"])
    content = CORRUPT[case](tmp_path)
    path.write_bytes(content)

    with pytest.raises(EvlError) as info:
        with quiet_sim(path) as t:
            t.get_vlans()
    message = info.value.message
    assert str(path) in message
    assert message.startswith("simulator state ")
    assert "reset" in message or "remove" in message  # says how to get out of it
    assert_lock_free(path)  # the failed load gave the lock back
    assert path.read_bytes() == content

    run = sh("evl", "net", "-n", env=sim_env)
    assert run.code == 1
    assert run.out == ""
    assert run.err.startswith("evl-net: simulator state ")
    assert run.err.count("\n") == 1 and run.err.endswith("\n"), run.err
    assert str(path) in run.err
    assert "Traceback" not in run.err and "internal error" not in run.err
    assert path.read_bytes() == content  # byte-identical: nothing was "repaired"


# -- 4. switching boards -------------------------------------------------------


def query(sh, env, ifname: str) -> dict:
    run = sh("evl", "net", "--json", "-Q", "-i", ifname, env=env)
    assert (run.code, run.err) == (0, ""), run.err
    return json.loads(run.out)


def test_switching_boards_boots_the_new_board_and_keeps_the_old_one(tmp_path: Path, sim_env, sh) -> None:
    for argv in (["-ei", "eth0.42"], ["-ei", "eth0"], ["-N42,55-57"]):
        run = sh("evl", "net", *argv)
        assert (run.code, run.err) == (0, ""), run.err
    assert query(sh, sim_env, "eth0")["oob_port"] is True

    board = tmp_path / "one-nic.toml"
    board.write_text('[[interface]]\nname = "eth0"\ndriver = "igb"\n')
    other = {**sim_env, "EVL_SIM_BOARD": str(board)}

    eth0 = query(sh, other, "eth0")
    assert eth0["oob_port"] is False and eth0["skb_total"] == 0  # the old port and its pool are gone
    run = sh("evl", "net", "-n", env=other)
    assert (run.code, run.out.strip(), run.err) == (0, "", "")  # so is the VLAN map
    run = sh("evl", "net", "-Q", "-i", "eth0.42", env=other)
    assert run.code == 1 and "No such device" in run.err  # the new board has no eth0.42

    with quiet_sim(sim_env["EVL_SIM_STATE"], board=str(board)) as t:
        state = t.load()
        assert list(state.board.interfaces) == ["eth0"]
        assert state.ports == [] and state.vlans == []
        # A shipped board is known by its name, wherever the package is installed.
        assert state.others is not None and list(state.others) == ["manual"]

    # Back to the default board: its state was set aside, not lost.
    assert query(sh, sim_env, "eth0")["oob_port"] is True
    assert query(sh, sim_env, "eth0.42")["oob_port"] is True
    assert sh("evl", "net", "-n").out == "42,55-57\n"
    # ...and the other board's state was set aside in turn.
    assert sh("evl", "net", "-ei", "eth0", env=other).code == 0
    assert query(sh, sim_env, "eth0.42")["oob_port"] is True
    assert query(sh, other, "eth0")["oob_port"] is True

    # A board file that changed is another board: it boots afresh.
    board.write_text('[[interface]]\nname = "eth0"\ndriver = "igb"\nmtu = 9000\n')
    assert query(sh, other, "eth0")["oob_port"] is False


def test_a_full_board_with_a_null_host_is_read_as_one_without(tmp_path: Path, sim_env, sh) -> None:
    """``"host": null`` written by hand is no host mirror: a board stored in full, compared with its file."""
    path = Path(sim_env["EVL_SIM_STATE"])
    path.write_bytes(mutated(tmp_path, lambda s: (s.update(host=None), s.pop("edited", None)), edited_state_bytes))
    run = sh("evl", "net", "-Q", "-i", "eth1", env=sim_env)
    assert run.code == 0 and "internal error" not in run.err, run.err
    shown = sh("evl", "sim", "--json", "show", env=sim_env)
    assert json.loads(shown.out)["board"]["interfaces"]["eth1"]["mtu"] == 1400  # the edited board kept
