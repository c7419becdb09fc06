"""``evl net -Q --watch``: counter arithmetic, the piped forms, the live view under tmux, its errors;
and ``--hosts ... --format=prometheus``: one exposition for the fleet, labelled by board."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import script
from evl_net.cli.usage import USAGE
from evl_net.engine import watch
from evl_net.model import DevStat
from test_exporter import JSON_KEYS
from test_remote_fleet import board_without_eth0_42, fleet_env, hosts_file
from test_remote_ssh import lab  # noqa: F401  (a fixture)

U64 = 2**64

# -- the arithmetic (expected values by hand) ----------------------------------------------------


@pytest.mark.parametrize(
    "before, after, moved",
    [
        (3, 8, 5),
        (7, 7, 0),
        (U64 - 10, 5, 15),  # upper half, went down: round 2^64 (10 to the top, then 0..5)
        (U64 - 1, 0, 1),
        (2**63, 1, 2**63 + 1),  # the first value of the upper half still counts as a wrap
        (2**63 - 1, 7, 7),  # lower half, went down: a reset, counted from zero
        (1000, 10, 10),
        (1, 0, 0),
    ],
)
def test_delta_wraps_in_the_upper_half_and_resets_in_the_lower(before, after, moved):
    assert watch.delta(before, after) == moved


def test_rates_over_a_wrap_and_a_reset():
    before = DevStat(
        rx_packets=U64 - 3,
        rx_bytes=U64 - 300,
        tx_packets=50,
        tx_bytes=5000,
        skb_free=7,
        skb_total=10,
        csum_errors=U64 - 1,
        rx_nomem=9,
        tx_nomem=10,
        oob_port=True,
    )
    after = DevStat(
        rx_packets=7, rx_bytes=700, tx_packets=4, tx_bytes=400, skb_free=2, skb_total=10, csum_errors=1, rx_nomem=9
    )
    r = watch.rates("eth0.42", before, after, 2.0)
    # rx: 3 to the top + 7 = 10 packets, 300 + 700 = 1000 bytes in 2 s; tx reset: 4 and 400 since.
    assert (r.rx_packets, r.rx_bytes, r.tx_packets, r.tx_bytes) == (5.0, 500.0, 2.0, 200.0)
    assert (r.csum_errors, r.rx_nomem, r.tx_nomem) == (2, 0, 0)  # tx_nomem 10 -> 0: reset, none since
    assert (r.in_use, r.skb_total, r.oob_port) == (8, 10, False)  # the pool and flags: the latest sample
    assert r.grew() == ["csum_errors"]
    assert r.line() == (
        "eth0.42: rx 5 pkt/s 500 B/s tx 2 pkt/s 200 B/s pool 8/10 in use csum errors +2 rx nomem +0 tx nomem +0"
    )


def test_samples_measure_each_interval():
    """A scripted board and clock (binary-exact times): each interval's length and rates."""
    stats = iter(
        [
            [("eth0.42", DevStat(rx_packets=U64 - 2))],
            [("eth0.42", DevStat(rx_packets=3)), ("eth1.42", DevStat(tx_packets=9))],
            [("eth0.42", DevStat(rx_packets=8)), ("eth1.42", DevStat(tx_packets=19))],
        ]
    )
    ticks = iter([8.0, 8.125, 8.625, 8.75, 9.25])
    slept: list[float] = []
    out = list(watch.samples(lambda: next(stats), 0.5, 2, clock=lambda: next(ticks), sleep=slept.append))
    assert slept == [0.375, 0.375]  # until 0.5 s after the previous read
    assert [s.seconds for s in out] == [0.625, 0.625]
    # interval 1: eth0.42 went round (2 + 3 = 5 packets); eth1.42 appeared: no rate yet
    assert [(r.ifname, r.rx_packets) for r in out[0].ports] == [("eth0.42", 8.0)]
    assert [(r.ifname, r.rx_packets, r.tx_packets) for r in out[1].ports] == [
        ("eth0.42", 8.0, 0.0),
        ("eth1.42", 0, 16.0),
    ]


# -- the piped forms, by the real command ------------------------------------------------------------

LINE = re.compile(
    r"(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d) (?P<ifname>\S+): rx (?P<rxp>\d+) pkt/s (?P<rxb>\d+) B/s"
    r" tx (?P<txp>\d+) pkt/s (?P<txb>\d+) B/s pool (?P<used>\d+)/(?P<total>\d+) in use"
    r" csum errors \+(?P<csum>\d+) rx nomem \+(?P<rxn>\d+) tx nomem \+(?P<txn>\d+)"
)


def start_watch(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [script("evl"), "net", "-Q", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def sim(evl, *argv: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    run = evl("sim", "--json", *argv, env=env)
    assert run.code == 0, run.err
    return json.loads(run.out)


def oob_board(evl, pool: str = "10") -> None:
    """eth0.42 a port (eth0's pool of ``pool`` buffers), VLAN 42 in the filter: its IPv4 frames go out-of-band."""
    assert evl("net", "-ei", "eth0.42", "-p", pool).code == 0
    assert evl("net", "-N42").code == 0


def test_json_lines_add_up_to_the_injected_counts(evl, sim_env):
    oob_board(evl)
    proc = start_watch(sim_env, "--all-interfaces", "--watch=0.3", "--count", "4", "--json")
    try:
        first = json.loads(proc.stdout.readline())  # flushed per interval: read while it runs
        assert proc.poll() is None
        # Between samples 1 and 2: 5 frames of 100 bytes; between 2 and 3: 2 of 80 with a bad checksum
        # (counted, then dropped); between 3 and 4: 3 the driver had no buffer for, and 4 sends of 200
        # bytes with the NIC stalled (4 buffers of eth0's 10 in flight).
        sim(evl, "rx", "eth0.42", "--count", "5", "--size", "100")
        second = json.loads(proc.stdout.readline())
        sim(evl, "rx", "eth0.42", "--count", "2", "--size", "80", "--bad-csum")
        third = json.loads(proc.stdout.readline())
        sim(evl, "rx", "eth0.42", "--count", "3", "--nomem")
        sim(evl, "tx", "eth0.42", "--count", "4", "--size", "200", "--stall")
        fourth = json.loads(proc.stdout.readline())
        rest, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
        proc.wait()
    assert (proc.returncode, rest, err) == (0, "", "")  # exactly --count objects

    def moved(interval: dict[str, Any], ifname: str) -> dict[str, Any]:
        port = next(p for p in interval["ports"] if p["ifname"] == ifname)
        seconds = interval["seconds"]
        out: dict[str, Any] = {k: port[k] for k in ("csum_errors", "rx_nomem", "tx_nomem")}
        for name in ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes"):
            count = port[f"{name}_per_s"] * seconds
            assert abs(count - round(count)) < 1e-6, (name, count)
            out[name] = round(count)
        out["in_use"] = port["skb_total"] - port["skb_free"]
        return out

    for interval in (first, second, third, fourth):
        assert set(interval) == {"time", "seconds", "ports"}
        assert 0.3 <= interval["seconds"] < 2  # the interval, as measured
        names = [p["ifname"] for p in interval["ports"]]
        assert names == ["lo", "eth0", "eth0.42", "eth1", "eth1.42", "eth2"]

    quiet = {"rx_packets": 0, "rx_bytes": 0, "tx_packets": 0, "tx_bytes": 0}
    none = {"csum_errors": 0, "rx_nomem": 0, "tx_nomem": 0}
    assert moved(first, "eth0.42") == {**quiet, **none, "in_use": 0}
    assert moved(second, "eth0.42") == {**quiet, **none, "rx_packets": 5, "rx_bytes": 500, "in_use": 0}
    assert moved(third, "eth0.42") == {**quiet, **none, "rx_packets": 2, "rx_bytes": 160, "csum_errors": 2, "in_use": 0}
    # A driver-side RX shortage counts in tx_nomem of the real device (the kernel's quirk), not on the VLAN port.
    assert moved(fourth, "eth0.42") == {**quiet, **none, "tx_packets": 4, "tx_bytes": 800, "in_use": 4}
    assert moved(fourth, "eth0") == {**quiet, **none, "tx_nomem": 3, "in_use": 4}
    for interval in (first, second, third):
        assert moved(interval, "eth0") == {**quiet, **none, "in_use": 0}
    # The totals the board ends with: what was injected, no more.
    final = json.loads(evl("net", "--json", "-Q", "-i", "eth0.42").out)
    assert (final["rx_packets"], final["rx_bytes"], final["tx_packets"], final["csum_errors"]) == (7, 660, 4, 2)


def test_lines_one_per_port_per_interval(evl, sim_env):
    oob_board(evl)
    proc = start_watch(sim_env, "-i", "eth0.42", "--watch=0.3", "--count", "3")
    try:
        lines = [proc.stdout.readline()]
        assert proc.poll() is None
        sim(evl, "rx", "eth0.42", "--count", "10", "--size", "100")
        sim(evl, "rx", "eth0.42", "--count", "2", "--bad-csum")
        lines.append(proc.stdout.readline())
        sim(evl, "tx", "eth0.42", "--count", "13", "--size", "100", "--stall")  # 10 sent, then 3 without a buffer
        lines.append(proc.stdout.readline())
        rest, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
        proc.wait()
    assert (proc.returncode, rest, err) == (0, "", "")
    got = []
    for line in lines:
        m = LINE.fullmatch(line.rstrip("\n"))
        assert m, line
        assert abs(time.mktime(time.strptime(m["time"], "%Y-%m-%dT%H:%M:%S")) - time.time()) < 60  # local time
        got.append({k: int(v) for k, v in m.groupdict().items() if k not in ("time", "ifname")})
        assert m["ifname"] == "eth0.42"
    zero = dict.fromkeys(["rxp", "rxb", "txp", "txb", "used", "csum", "rxn", "txn"], 0)
    assert got[0] == {**zero, "total": 10}
    # 12 frames (10 of 100 bytes, 2 of the default size) in one interval of 0.3 s or a little more.
    rxp = got[1]["rxp"]
    assert 12 / 0.6 <= rxp <= 12 / 0.3 + 0.5
    assert (got[1]["csum"], got[1]["rxn"], got[1]["txn"], got[1]["txp"]) == (2, 0, 0, 0)
    assert 10 / 0.6 <= got[2]["txp"] <= 10 / 0.3 + 0.5
    assert abs(got[2]["txb"] - 100 * got[2]["txp"]) <= 50  # 100 bytes a packet, both rounded
    assert (got[2]["used"], got[2]["total"], got[2]["txn"], got[2]["rxp"], got[2]["csum"]) == (10, 10, 3, 0, 0)


@pytest.mark.parametrize("as_json", [False, True])
def test_a_closed_pipe_ends_the_watch_quietly(sim_env, evl, as_json):
    """``| head -1``: the reader goes away after one line; the next write ends the watch, exit 141, nothing said."""
    oob_board(evl)
    start = time.monotonic()
    proc = start_watch(sim_env, "--all-interfaces", "--watch=0.2", "--count", "50", *(["--json"] if as_json else []))
    try:
        assert proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read()
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.wait()
    assert (proc.returncode, err) == (141, "")
    assert time.monotonic() - start < 5  # not the 10 s of 50 intervals


def test_a_full_output_is_one_line(sim_env, evl):
    oob_board(evl)
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [script("evl"), "net", "-Q", "-i", "eth0.42", "--watch=0.1", "--count", "2"],
            env=sim_env,
            stdin=subprocess.DEVNULL,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
        )
    assert (proc.returncode, proc.stderr) == (1, "evl-net: write error: No space left on device\n")


# -- usage and other errors ----------------------------------------------------------------------------


def usage_error(run, message: str) -> None:
    assert (run.code, run.out) == (1, "")
    assert run.err == f"evl-net: {message}\n" + USAGE.format(prog="evl-net")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--watch=0"], "invalid interval '0': expected seconds in 0.1..3600"),
        (["--watch=abc"], "invalid interval 'abc': expected seconds in 0.1..3600"),
        (["--watch=nan"], "invalid interval 'nan': expected seconds in 0.1..3600"),
        (["--watch=99999"], "invalid interval '99999': expected seconds in 0.1..3600"),
        (["--watch=1_0"], "invalid interval '1_0': expected seconds in 0.1..3600"),  # float() would take it
        (["--watch= 1"], "invalid interval ' 1': expected seconds in 0.1..3600"),
        (["--watch=\u0661"], "invalid interval '\u0661': expected seconds in 0.1..3600"),  # an Arabic-Indic 1
        (["--watch", "--count", "0"], "invalid count '0': expected 1..1000000000"),
        (["--watch", "--count", "x"], "invalid count 'x': expected 1..1000000000"),
        (["--count", "3"], "--count applies to --watch only"),
        (
            ["--watch", "--format=json"],
            "--watch applies to -Q alone (with -i IF or --all-interfaces; --json for JSON lines)",
        ),
    ],
)
def test_usage_errors(evl, args, message):
    usage_error(evl("net", "-Q", "-i", "eth0.42", *args), message)


def test_a_count_of_thousands_of_digits_is_a_usage_error(evl):
    run = evl("net", "-Q", "-i", "eth0.42", "--watch", "--count", "9" * 5000)
    assert (run.code, run.out) == (1, "")
    first, usage = run.err.split("\n", 1)
    assert first.startswith("evl-net: invalid count '999") and first.endswith("999': expected 1..1000000000")
    assert len(first) < 200 and usage == USAGE.format(prog="evl-net")  # the echo is shortened


def test_watch_is_for_query_alone(evl):
    usage_error(
        evl("net", "--watch", "-e", "-i", "eth0.42"),
        "--watch applies to -Q alone (with -i IF or --all-interfaces; --json for JSON lines)",
    )
    assert "eth0.42" not in sim(evl, "show")["ports"]  # nothing was done


def test_a_missing_interface_is_the_query_error(evl):
    run = evl("net", "-Q", "-i", "nope0", "--watch")
    # the words of -Q itself (the C tool's: the device open fails first)
    assert (run.code, run.out, run.err) == (1, "", "evl-net: cannot open out-of-band port nope0: No such device\n")
    assert run.err == evl("net", "-Q", "-i", "nope0").err


def test_watch_over_two_remote_boards_is_refused_before_any_connection(evl, sim_env):
    listeners = [socket.socket() for _ in range(2)]
    try:
        for s in listeners:
            s.bind(("127.0.0.1", 0))
            s.listen()
            s.setblocking(False)
        targets = [f"--remote=evl@127.0.0.1:{s.getsockname()[1]}" for s in listeners]
        run = evl(
            "net", *targets, "-Q", "-i", "eth0.42", "--watch", env=dict(sim_env, EVL_NET_SSH="-o ConnectTimeout=2")
        )
        assert (run.code, run.out, run.err) == (1, "", "evl-net: --watch follows one board: give one --remote\n")
        for s in listeners:
            with pytest.raises(BlockingIOError):
                s.accept()  # nobody came
    finally:
        for s in listeners:
            s.close()


# -- the live view, under tmux -----------------------------------------------------------------------

BOLD_RED = r"\x1b\[(?:1;31|1m\x1b\[31)m"


class Pane:
    """A tmux server of our own (private socket) running one command in a 140x30 pane."""

    def __init__(self, tmp_path: Path, env: dict[str, str], command: str) -> None:
        self.sock = str(tmp_path / "tmux.sock")
        self.env = dict(env, TERM="xterm-256color")
        self.env.pop("TMUX", None)
        self.tmux("new-session", "-d", "-x", "140", "-y", "30", command)

    def tmux(self, *args: str) -> str:
        run = subprocess.run(["tmux", "-S", self.sock, *args], env=self.env, capture_output=True, text=True, timeout=10)
        assert run.returncode == 0, run.stderr
        return run.stdout

    def capture(self, escapes: bool = False) -> str:
        return self.tmux("capture-pane", "-p", *(["-e"] if escapes else []))

    def wait_for(self, pattern: str, timeout: float = 10, escapes: bool = False) -> re.Match[str]:
        end = time.monotonic() + timeout
        while True:
            screen = self.capture(escapes)
            m = re.search(pattern, screen, re.M)
            if m:
                return m
            if time.monotonic() > end:
                pytest.fail(f"not on the screen after {timeout} s: {pattern!r}\n{screen}")
            time.sleep(0.05)

    def kill(self) -> None:
        subprocess.run(["tmux", "-S", self.sock, "kill-server"], env=self.env, capture_output=True, timeout=10)


ROW = re.compile(
    r"│ eth0\.42 +│ +(?P<rxp>\d+) │ +(?P<rxb>\d+) │ +(?P<txp>\d+) │ +(?P<txb>\d+) │"
    r" (?P<bar>[#.]{20}) (?P<used>\d+)/(?P<total>\d+) +"
    r"│ +\+(?P<csum>\d+) │ +\+(?P<rxn>\d+) │ +\+(?P<txn>\d+) │"
)


@pytest.mark.parametrize("quit_key", ["q", "C-c", "SIGTERM", "SIGHUP"])
def test_live_view_under_tmux(tmp_path, sim_env, evl, quit_key):
    if shutil.which("tmux") is None:
        pytest.fail("the live view test needs tmux: apt-get install tmux")
    oob_board(evl)
    files = {name: tmp_path / name for name in ("before", "after", "status")}
    # ``trap : INT``: Ctrl-C reaches the pane's whole foreground group; the shell must outlive it to write
    # the status (a trap with a command is reset in the child: evl gets SIGINT as it would from a terminal).
    command = (
        f"sh -c 'trap : INT; stty -a > {files['before']}; {script('evl')} net -Q -i eth0.42 --watch=0.5; "
        f"echo exit=$? > {files['status']}; stty -a > {files['after']}; sleep 60'"
    )
    pane = Pane(tmp_path, sim_env, command)
    try:
        pane.wait_for(r"^evl net: this board, every 0\.5 s, \d{4}-\d\d-\d\dT[\d:]+ \(q to quit\)$")
        assert ROW.search(pane.capture())["rxp"] == "0"
        # 20 frames of 100 bytes: a rate of 20 / interval; the interval is 0.5 s as measured (a little more).
        sim(evl, "rx", "eth0.42", "--count", "20", "--size", "100")
        row = ROW.search(pane.wait_for(r"│ eth0\.42 +│ +[1-9]\d* │").string)
        assert 20 / 0.7 <= int(row["rxp"]) <= 40
        assert abs(int(row["rxb"]) - 100 * int(row["rxp"])) <= 50
        assert (row["bar"], row["used"], row["total"]) == ("." * 20, "0", "10")
        assert pane.wait_for(r"│ eth0\.42 +│ +0 │")  # the next interval: quiet again
        # 13 sends with the NIC stalled: the pool of 10 fills up, 3 more find no buffer: tx nomem grew, in bold red.
        sim(evl, "tx", "eth0.42", "--count", "13", "--size", "100", "--stall")
        screen = pane.wait_for(BOLD_RED + r" +\+3\x1b", escapes=True).string
        plain = re.sub(r"\x1b\[[0-9;]*m", "", screen)
        row = ROW.search(plain)
        assert (row["bar"], row["used"], row["total"], row["txn"], row["csum"], row["rxn"]) == (
            "#" * 20,
            "10",
            "10",
            "3",
            "0",
            "0",
        )
        assert not re.search(BOLD_RED + r" +\+0", screen)  # what did not grow is not highlighted
        assert 10 / 0.7 <= int(row["txp"]) <= 20
        pane.wait_for(r"│ +\+0 │ +\+0 │ +\+0 │$")  # and the next interval, nothing grew
        if quit_key.startswith("SIG"):  # killed, as by a supervisor or a closed terminal: restored all the same
            # the Python process itself, not the shell or the tmux server whose command lines hold the same words
            pattern = "^[^ ]*python[^ ]* [^ ]*/evl net -Q -i eth0.42 --watch=0.5"
            watcher = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
            pids = [int(p) for p in watcher.stdout.split()]
            assert len(pids) == 1, (watcher.stdout, pane.capture())
            for pid in pids:
                os.kill(pid, getattr(signal, quit_key))
        else:
            pane.tmux("send-keys", quit_key)
        end = time.monotonic() + 10
        while not files["after"].exists() or not files["after"].read_text():
            assert time.monotonic() < end, pane.capture()
            time.sleep(0.05)
        time.sleep(0.1)
        signum = getattr(signal, quit_key, 0) if quit_key.startswith("SIG") else 0
        assert files["status"].read_text() == f"exit={128 + signum if signum else 0}\n"
        assert files["after"].read_text() == files["before"].read_text()  # cbreak and no-echo undone
        assert "Traceback" not in pane.capture()
    finally:
        pane.kill()


# -- one remote board, and a fleet in Prometheus -----------------------------------------------------


def test_a_remote_watch_slower_than_the_agents_idle_exit_is_refused(lab, sim_env, evl):  # noqa: F811
    board = lab.board("w2")
    run = evl("net", f"--remote={lab.target(board)}", "-Q", "-i", "eth0.42", "--watch=60", env=lab.env(sim_env))
    assert (run.code, run.out) == (1, "")
    assert run.err == (
        "evl-net: --watch=60: the board's agent ends a session idle for 60 s: watch it more often than that\n"
    )


def test_watch_over_one_remote_board(lab, sim_env, evl):  # noqa: F811
    board = lab.board("w1")
    env = lab.env(sim_env)
    target = f"--remote={lab.target(board)}"
    assert evl("net", target, "-ei", "eth0.42", "-N42", env=env).code == 0
    proc = start_watch(env, target, "-i", "eth0.42", "--watch=0.3", "--count", "4", "--json")
    on_board = dict(sim_env, EVL_SIM_STATE=str(board.state / "sim-state.json"))
    try:
        first = json.loads(proc.stdout.readline())
        sim(evl, "rx", "eth0.42", "--count", "4", "--size", "100", env=on_board)
        rest, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
        proc.wait()
    assert (proc.returncode, err) == (0, "")
    later = [json.loads(line) for line in rest.splitlines()]
    assert len(later) == 3 and first["ports"][0]["rx_packets_per_s"] == 0
    assert all(x["ports"][0]["ifname"] == "eth0.42" for x in later)
    # the injection lands in whichever later interval was running (a process start on a loaded machine)
    assert sum(round(x["ports"][0]["rx_packets_per_s"] * x["seconds"]) for x in later) == 4
    assert sum(round(x["ports"][0]["rx_bytes_per_s"] * x["seconds"]) for x in later) == 400


#: The exposition's sample names and the -Q --json fields they carry (the exporter test's own table).
SERIES = JSON_KEYS


def parsed(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in out, key
            out[key] = sample.value
    return out


def expected(boards: list[dict[str, Any]]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for b in boards:
        result = b["results"][0]
        ports = result["interfaces"] if "interfaces" in result else [result]
        for port in ports:
            if port.get("rx_packets") is None:  # an interface without counters has no series
                continue
            for (name, own), field in SERIES.items():
                labels = tuple(sorted((("board", b["board"]), ("ifname", port["ifname"]), *own)))
                out[(name, labels)] = float(port[field])
    return out


@pytest.mark.parametrize("which", [["-i", "eth0.42"], ["--all-interfaces"]])
def test_fleet_prometheus_is_one_exposition_labelled_by_board(lab, sim_env, evl, tmp_path, which):  # noqa: F811
    traffic = lab.board("p1", env={"EVL_SIM_BOARD": "manual-traffic"})
    plain = lab.board("p2")
    bad = lab.board("p3", env={"EVL_SIM_BOARD": board_without_eth0_42(tmp_path)})
    env = fleet_env(lab, sim_env)
    assert evl("net", f"--remote={lab.target(plain)}", "-ei", "eth0.42", "-N42", env=env).code == 0
    sim(
        evl,
        "rx",
        "eth0.42",
        "--count",
        "3",
        "--size",
        "90",
        env=dict(sim_env, EVL_SIM_STATE=str(plain.state / "sim-state.json")),
    )
    hosts = hosts_file(tmp_path, [lab.target(b) for b in (traffic, plain, bad)])

    run = evl("net", f"--hosts={hosts}", "-Q", *which, "--format=prometheus", env=env)
    as_json = evl("net", f"--hosts={hosts}", "-Q", *which, "--json", env=env)
    good = [b for b in json.loads(as_json.out) if b["status"] == "ok"]
    if which == ["-i", "eth0.42"]:
        # the board without eth0.42 failed: no series, its error on stderr, the fleet's exit status
        assert run.code == as_json.code == 4
        err = run.err.splitlines()
        assert err == [
            f"evl-net: {lab.target(bad)}: failed: cannot open out-of-band port eth0.42: No such device",
            "evl-net: 2 of 3 boards succeeded, 1 failed, 0 did not answer",
        ]
        assert {b["board"] for b in good} == {lab.target(traffic), lab.target(plain)}
        assert lab.target(bad) not in run.out
    else:
        assert (run.code, run.err) == (0, "")
        assert len(good) == 3
    got = parsed(run.out)
    assert got == expected(good)
    assert {dict(labels)["board"] for _n, labels in got} == {b["board"] for b in good}
    # one exposition: each family's HELP and TYPE once, all its samples together
    names = [line.split()[2] for line in run.out.splitlines() if line.startswith("# TYPE ")]
    assert len(names) == len(set(names)) == 11  # 12 series a port, nomem one family
    assert [line.split()[2] for line in run.out.splitlines() if line.startswith("# HELP ")] == names
    family_of = [re.match(r"[a-z_]+", line)[0] for line in run.out.splitlines() if not line.startswith("#")]
    assert family_of == sorted(family_of, key=names.index)  # grouped, in the TYPE lines' order
    # the values moved on the plain board are those injected
    key = ("evl_net_rx_packets_total", (("board", lab.target(plain)), ("ifname", "eth0.42")))
    assert got[key] == 3
    assert got[("evl_net_rx_bytes_total", key[1])] == 270


def test_fleet_prometheus_and_jsonl_exclude_each_other(lab, sim_env, evl, tmp_path):  # noqa: F811
    hosts = hosts_file(tmp_path, [lab.target(lab.board("x1"))])
    run = evl(
        "net", f"--hosts={hosts}", "-Q", "-i", "eth0.42", "--format=prometheus", "--jsonl", env=fleet_env(lab, sim_env)
    )
    assert (run.code, run.out, run.err) == (1, "", "evl-net: --jsonl and --format=prometheus exclude each other\n")


def test_the_readme_shows_the_forms_the_command_writes():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    part = readme[readme.index("### Watching a board live") : readme.index("### Statistics in Prometheus")]
    lines = [line for line in part.splitlines() if re.match(r"\d{4}-\d\d-\d\dT", line)]
    assert len(lines) == 2 and all(LINE.fullmatch(line) for line in lines)
    table = [line for line in part.splitlines() if line.startswith("│ eth0.42 ")]
    assert len(table) == 1 and ROW.search(table[0])  # the capture: the live view's own row
