"""``evl net-exporter``: a real process on a loopback port, scraped over HTTP while traffic is injected.

What a scrape says is compared with ``evl net -Q --all-interfaces --json``
(the independent reading) and with the counts this test injects with
``evl sim rx``; a board that cannot be read is a counted scrape error, never a
crash; SIGTERM and SIGINT stop it with exit 0.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import script
from test_remote_ssh import lab  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "contrib" / "grafana" / "evl-net.json"


def free_port(family: int = socket.AF_INET, host: str = "127.0.0.1") -> int:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class Exporter:
    """One ``evl net-exporter`` process; its stderr is collected line by line as it comes."""

    def __init__(self, env: dict[str, str], *args: str, host: str = "127.0.0.1") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.port = free_port(family, host)
        self.host = f"[{host}]" if ":" in host else host
        self.proc = subprocess.Popen(
            [script("evl"), "net-exporter", f"--listen={self.host}:{self.port}", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_for(lambda: any(" serving http://" in line for line in self.lines), "the serving line")

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_for(self, condition, what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None and not condition():
                self._reader.join(5)
                if condition():
                    return
                pytest.fail(f"the exporter exited ({self.proc.returncode}) before {what}: {''.join(self.lines)}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {timeout}s: {''.join(self.lines)}")
            time.sleep(0.02)

    def get(self, path: str = "/metrics") -> tuple[int, str, dict[str, str]]:
        try:
            with urllib.request.urlopen(f"http://{self.host}:{self.port}{path}", timeout=30) as r:
                return r.status, r.read().decode(), dict(r.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(), dict(exc.headers)

    def scrape(self) -> tuple[str, dict[tuple[str, tuple], float]]:
        """The exposition text and its samples: (name, labels) -> value, as prometheus_client parses them."""
        status, text, headers = self.get()
        assert status == 200, text
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
        samples = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return text, samples

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(30)
        finally:
            self._reader.join(5)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        return code


@pytest.fixture
def exporter(sim_env) -> Iterator:
    started: list[Exporter] = []

    def start(*args: str, env: dict[str, str] | None = None, host: str = "127.0.0.1") -> Exporter:
        e = Exporter(env or sim_env, *args, host=host)
        started.append(e)
        return e

    yield start
    for e in started:
        if e.proc.poll() is None:
            e.proc.kill()
            e.proc.wait(10)
        e._reader.join(5)
        if e.proc.stdout is not None:
            e.proc.stdout.close()


def port_value(samples: dict, name: str, ifname: str, **labels: str) -> float:
    return samples[(name, tuple(sorted({"ifname": ifname, **labels}.items())))]


def board_json(evl, env: dict[str, str] | None = None) -> list[dict]:
    r = evl("net", "--json", "-Q", "--all-interfaces", env=env)
    assert r.code == 0, r.err
    return json.loads(r.out)["interfaces"]


#: metric sample name (and its own labels) -> the `evl net -Q --json` key it reads (this test's own table).
JSON_KEYS = {
    ("evl_net_rx_packets_total", ()): "rx_packets",
    ("evl_net_rx_bytes_total", ()): "rx_bytes",
    ("evl_net_tx_packets_total", ()): "tx_packets",
    ("evl_net_tx_bytes_total", ()): "tx_bytes",
    ("evl_net_pool_buffers_free", ()): "skb_free",
    ("evl_net_pool_buffers", ()): "skb_total",
    ("evl_net_buffer_size_bytes", ()): "skb_size",
    ("evl_net_csum_errors_total", ()): "csum_errors",
    ("evl_net_nomem_total", (("direction", "rx"),)): "rx_nomem",
    ("evl_net_nomem_total", (("direction", "tx"),)): "tx_nomem",
    ("evl_net_oob_capable", ()): "oob_capable",
    ("evl_net_port_enabled", ()): "oob_port",
}


def board_samples(samples: dict) -> dict:
    return {k: v for k, v in samples.items() if k[0].startswith("evl_net_") and not k[0].startswith("evl_net_scrape")}


def expected_from_json(ports: list[dict]) -> dict:
    return {
        (name, tuple(sorted({"ifname": p["ifname"], **dict(own)}.items()))): float(p[key])
        for p in ports
        for (name, own), key in JSON_KEYS.items()
    }


def test_a_scrape_is_the_board_as_json_reads_it(evl, exporter):
    assert evl("net", "-ei", "eth0.42", "-p", "64").code == 0
    assert evl("net", "-N42").code == 0
    assert evl("sim", "rx", "eth0.42", "--count", "5", "--size", "120").code == 0
    e = exporter()
    _text, samples = e.scrape()
    assert board_samples(samples) == expected_from_json(board_json(evl))
    assert port_value(samples, "evl_net_rx_packets_total", "eth0.42") == 5
    assert samples[("evl_net_scrape_errors_total", ())] == 0
    assert 0 < samples[("evl_net_scrape_duration_seconds", ())] < 30
    for own in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "python_info"):
        assert any(name == own for name, _l in samples), own
    assert "Traceback" not in "".join(e.lines)


def test_counters_move_by_exactly_the_injected_traffic(evl, sh, exporter):
    """Scrapes while `evl sim rx` runs in other processes: each sees whole injections, the last all of them."""
    assert evl("net", "-ei", "eth0.42").code == 0
    assert evl("net", "-N42").code == 0
    e = exporter()
    _text, first = e.scrape()
    base = port_value(first, "evl_net_rx_packets_total", "eth0.42")
    base_bytes = port_value(first, "evl_net_rx_bytes_total", "eth0.42")
    assert (base, base_bytes) == (0, 0)
    rounds, count, size = 8, 25, 100
    failures: list[str] = []

    def inject() -> None:
        for _ in range(rounds):
            r = sh("evl", "sim", "rx", "eth0.42", "--count", str(count), "--size", str(size))
            if r.code != 0 or r.out != f"{count} oob (on eth0.42)\n":
                failures.append(r.out + r.err)

    traffic = threading.Thread(target=inject)
    traffic.start()
    seen = []
    while traffic.is_alive():
        _text, samples = e.scrape()
        seen.append(
            (
                port_value(samples, "evl_net_rx_packets_total", "eth0.42"),
                port_value(samples, "evl_net_rx_bytes_total", "eth0.42"),
            )
        )
        time.sleep(0.05)
    traffic.join()
    assert failures == []
    _text, last = e.scrape()
    final = (
        port_value(last, "evl_net_rx_packets_total", "eth0.42"),
        port_value(last, "evl_net_rx_bytes_total", "eth0.42"),
    )
    assert final == (rounds * count, rounds * count * size)
    assert seen == sorted(seen)  # counters never go back
    for packets, nbytes in seen:  # an injection is seen whole or not at all
        assert packets % count == 0 and nbytes == packets * size, (packets, nbytes)
    assert board_samples(last) == expected_from_json(board_json(evl))
    assert port_value(last, "evl_net_rx_packets_total", "eth0") == 0  # the real device's own counters stay
    assert last[("evl_net_scrape_errors_total", ())] == 0


def test_a_board_that_cannot_be_read_is_a_counted_scrape_error(evl, exporter, sim_env):
    assert evl("net", "-ei", "eth0.42").code == 0
    assert evl("net", "-N42").code == 0
    assert evl("sim", "rx", "eth0.42", "--count", "4").code == 0
    e = exporter()
    _text, good = e.scrape()
    assert good[("evl_net_scrape_errors_total", ())] == 0
    state = Path(sim_env["EVL_SIM_STATE"])
    saved = state.read_bytes()
    lines_before = len(e.lines)
    state.write_text("{ this is not a state file")
    for n in (1, 2, 3):
        text, bad = e.scrape()  # 200 all the same
        assert bad[("evl_net_scrape_errors_total", ())] == n
        assert not board_samples(bad) and "evl_net_rx_packets_total" not in text
    e.wait_for(lambda: len(e.lines) >= lines_before + 3, "three error lines")
    new = e.lines[lines_before:]
    assert len(new) == 3 and len(set(new)) == 1
    assert new[0].startswith(f"evl-net-exporter: cannot read the board: simulator state {state} is corrupt (")
    assert "Traceback" not in "".join(e.lines) and "internal error" not in "".join(e.lines)
    assert e.proc.poll() is None  # still serving
    state.write_bytes(saved)  # the board is readable again: the next scrape is whole
    _text, again = e.scrape()
    assert again[("evl_net_scrape_errors_total", ())] == 3
    assert board_samples(again) == board_samples(good)
    assert port_value(again, "evl_net_rx_packets_total", "eth0.42") == 4
    assert e.stop() == 0


def test_a_failed_scrape_has_only_the_exporters_own_series(evl, exporter, sim_env):
    e = exporter()
    Path(sim_env["EVL_SIM_STATE"]).write_text("[]")
    text, samples = e.scrape()
    assert not board_samples(samples)
    assert samples[("evl_net_scrape_errors_total", ())] == 1
    assert "# TYPE evl_net_scrape_errors_total counter" in text.splitlines()
    assert "# TYPE evl_net_scrape_duration_seconds gauge" in text.splitlines()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_it_cleanly(exporter, sig):
    e = exporter()
    e.scrape()
    assert e.stop(sig) == 0
    assert e.lines[-1] == "evl-net-exporter: stopped\n"
    assert "Traceback" not in "".join(e.lines) and "interrupted" not in "".join(e.lines)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", e.port), timeout=2).close()  # the port is closed


def test_the_serving_line_and_other_paths(exporter):
    e = exporter("--transport=sim")
    assert e.lines[0] == f"evl-net-exporter: serving http://127.0.0.1:{e.port}/metrics (transport sim)\n"
    status, text, _h = e.get("/")
    assert (status, text) == (200, "evl net-exporter: the metrics are at /metrics\n")
    status, text, _h = e.get("/nope")
    assert (status, text) == (404, "not found: the metrics are at /metrics\n")
    # An HTTP client that goes away mid-request costs no traceback.
    with socket.create_connection(("127.0.0.1", e.port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
    e.scrape()
    assert e.stop() == 0
    assert "Traceback" not in "".join(e.lines)


def test_ipv6_loopback(exporter):
    try:
        free_port(socket.AF_INET6, "::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    e = exporter(host="::1")
    assert e.lines[0].startswith(f"evl-net-exporter: serving http://[::1]:{e.port}/metrics (")
    _text, samples = e.scrape()
    assert port_value(samples, "evl_net_oob_capable", "eth2") == 0


def test_promtool_accepts_a_scrape(evl, exporter):
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool is not installed: apt-get install prometheus (.ci/run installs it)")
    evl("net", "-ei", "eth0.42")
    text, _samples = exporter().scrape()
    r = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


# -- usage ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "why"),
    [
        ("127.0.0.1:0", "the port must be a number in 1..65535, not '0'"),
        ("127.0.0.1:65536", "the port must be a number in 1..65535, not '65536'"),
        ("127.0.0.1:-1", "the port must be a number in 1..65535, not '-1'"),
        ("127.0.0.1:http", "the port must be a number in 1..65535, not 'http'"),
        ("127.0.0.1:", "the port must be a number in 1..65535, not ''"),
        ("127.0.0.1:９４７１", "the port must be a number in 1..65535, not '９４７１'"),
        ("localhost:9471", "'localhost' is not an IP address"),
        ("board1.example:9471", "'board1.example' is not an IP address"),
        ("256.0.0.1:9471", "'256.0.0.1' is not an IP address"),
        (":9471", "'' is not an IP address"),
        ("9471", "expected HOST:PORT"),
        ("::1:9471", "an IPv6 address goes in brackets: [IPV6]:PORT"),
        ("[::1]9471", "expected [IPV6]:PORT"),
        ("[127.0.0.1]:9471", "brackets hold an IPv6 address"),
        ("[::1]:99999", "the port must be a number in 1..65535, not '99999'"),
        ("127.0.0.1:94\n71", "the port must be a number in 1..65535, not '94\\n71'"),
    ],
)
def test_a_bad_listen_address_is_a_usage_error(evl, listen, why):
    r = evl("net-exporter", f"--listen={listen}")
    assert r.code == 2 and r.out == ""
    first, *rest = r.err.splitlines()
    shown = listen.replace("\n", "\\n")
    assert first == f"evl-net-exporter: argument --listen: invalid listen address '{shown}': {why}"
    assert rest[0].startswith("usage: evl-net-exporter ")


def exporter_once(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the exporter to its end (these runs fail at start)."""
    return subprocess.run([script("evl"), "net-exporter", *args], env=env, capture_output=True, text=True, timeout=60)


def test_a_port_in_use_is_one_line(sim_env):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = exporter_once(sim_env, f"--listen=127.0.0.1:{port}")
    assert (r.returncode, r.stdout, r.stderr) == (
        1,
        "",
        f"evl-net-exporter: cannot listen on 127.0.0.1:{port}: Address already in use\n",
    )


def test_an_address_that_is_not_local_is_one_line(sim_env):
    r = exporter_once(sim_env, "--listen=192.0.2.77:9471")
    assert (r.returncode, r.stdout, r.stderr) == (
        1,
        "",
        "evl-net-exporter: cannot listen on 192.0.2.77:9471: Cannot assign requested address\n",
    )


def test_a_board_that_cannot_be_opened_fails_at_start(sim_env, tmp_path):
    for args, err in (
        (
            ["--transport=nosuch"],
            "evl-net-exporter: unknown transport 'nosuch' (available: auto, ioctl, remote, sim)\n",
        ),
        (["--transport=remote"], "evl-net-exporter: the remote transport needs a board: --remote=[USER@]HOST[:PORT]\n"),
        (["--remote=b1", "--transport=sim"], "evl-net-exporter: --remote needs the remote transport, not 'sim'\n"),
        (
            ["--remote=b1", "--board=manual"],
            "evl-net-exporter: --board names a simulated board; a remote board is the board itself\n",
        ),
        (["--timeout=5"], "evl-net-exporter: --timeout applies to a remote board only (--remote)\n"),
        (["--board=nosuch-board"], None),
    ):
        r = subprocess.run(
            [script("evl"), "net-exporter", f"--listen=127.0.0.1:{free_port()}", *args],
            env=sim_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if err is None:  # the board's own error, worded as evl net words it
            err = subprocess.run(
                [script("evl"), "net", "-n", *args], env=sim_env, capture_output=True, text=True, timeout=60
            ).stderr.replace("evl-net:", "evl-net-exporter:")
            assert "nosuch-board" in err
        assert (r.returncode, r.stdout, r.stderr) == (1, "", err)


# -- a remote board -----------------------------------------------------------------------------------


def test_a_remote_board_over_ssh(lab, sim_env, evl, exporter):
    board = lab.board("b1")
    env = lab.env(sim_env)
    board_env = dict(sim_env, EVL_SIM_STATE=str(board.state / "sim-state.json"))
    assert evl("net", "-ei", "eth0.42", env=board_env).code == 0
    assert evl("net", "-N42", env=board_env).code == 0
    assert evl("sim", "rx", "eth0.42", "--count", "6", "--size", "70", env=board_env).code == 0
    e = exporter(f"--remote={lab.target(board)}", env=env)
    assert e.lines[0].endswith(f"(remote board {lab.target(board)})\n")
    _text, samples = e.scrape()
    assert board_samples(samples) == expected_from_json(board_json(evl, board_env))
    assert port_value(samples, "evl_net_rx_bytes_total", "eth0.42") == 6 * 70
    assert evl("sim", "rx", "eth0.42", "--count", "2", "--size", "70", env=board_env).code == 0
    _text, samples = e.scrape()
    assert port_value(samples, "evl_net_rx_packets_total", "eth0.42") == 8
    assert samples[("evl_net_scrape_errors_total", ())] == 0
    assert e.stop() == 0


# -- the systemd unit and the dashboard ----------------------------------------------------------------


def test_the_systemd_unit_verifies(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail("systemd-analyze is not installed: apt-get install systemd (.ci/run installs it)")
    unit = ROOT / "systemd" / "evl-net-exporter.service"
    (tmp_path / "man8").mkdir()
    for page in (ROOT / "man").glob("*.8"):
        shutil.copy(page, tmp_path / "man8" / page.name)
    env = dict(os.environ, MANPATH=str(tmp_path), SYSTEMD_LOG_LEVEL="notice")
    r = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, env=env, timeout=60)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    lines = unit.read_text().splitlines()
    assert "ExecStart=/usr/bin/env evl net-exporter --listen=127.0.0.1:9471" in lines
    assert "Documentation=man:evl-net-exporter(8)" in lines
    broken = tmp_path / "evl-net-exporter.service"
    broken.write_text(unit.read_text().replace("Type=exec", "Type=exek"))
    r = subprocess.run([tool, "verify", str(broken)], capture_output=True, text=True, env=env, timeout=60)
    assert "Failed to parse service type, ignoring: exek" in r.stderr


#: PromQL words the dashboard's queries may use besides metric names and labels.
PROMQL = {"rate", "increase", "sum", "by", "label_values", "max", "min", "avg", "clamp_min"}
LABELS = {"ifname", "direction", "instance", "job"}


def _queries(dashboard: dict) -> list[str]:
    out = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            q = var["query"]
            out.append(q["query"] if isinstance(q, dict) else q)
    return out


def test_the_grafana_dashboard_uses_only_what_the_exporter_exposes(evl, exporter):
    dashboard = json.loads(DASHBOARD.read_text())  # valid JSON
    evl("net", "-ei", "eth0.42")
    _text, samples = exporter().scrape()
    exposed = {name for name, _labels in samples}
    labels_exposed = {k for _n, labels in samples for k, _v in labels}
    queries = _queries(dashboard)
    assert len(queries) >= 8
    used = set()
    for q in queries:
        body = re.sub(r'"[^"]*"', '""', q)  # label values ("$ifname") are not names
        body = re.sub(r"\[[^\]]*\]", "", body)  # nor are range durations
        for word in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", body):
            if word in PROMQL or word in LABELS:
                continue
            assert word in exposed, f"{word} (in {q!r}) is not exposed by the exporter"
            used.add(word)
        for label in re.findall(r"([a-zA-Z_]+)\s*=~?", q):
            assert label in labels_exposed | {"job", "instance"}, label
    for name in (
        "evl_net_rx_packets_total",
        "evl_net_tx_packets_total",
        "evl_net_rx_bytes_total",
        "evl_net_tx_bytes_total",
        "evl_net_pool_buffers_free",
        "evl_net_pool_buffers",
        "evl_net_nomem_total",
        "evl_net_csum_errors_total",
    ):
        assert name in used, name
    exprs = "\n".join(queries)
    assert "rate(evl_net_rx_packets_total{" in exprs and "[1m])" in exprs
    assert re.search(r"1 - evl_net_pool_buffers_free\{[^}]*\} / \(?evl_net_pool_buffers\{", exprs)
    names = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert names["datasource"]["type"] == "datasource" and names["datasource"]["query"] == "prometheus"
    assert "ifname" in names and names["ifname"]["type"] == "query"
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"
            assert 'ifname=~"$ifname"' in target["expr"] or "scrape" in target["expr"], target["expr"]


def test_a_name_that_is_not_utf8_is_scraped_as_the_formatter_writes_it():
    """An interface name with a byte that is not UTF-8 (the kernel allows it; os.fsdecode gives a lone
    surrogate) must not cost the scrape: the series carries the name as the text exposition writes it."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from evl_net.cli.exporter import BoardCollector
    from evl_net.model import DevStat
    from evl_net.ops.query_all import InterfaceStat

    name = os.fsdecode(b"b\xff")
    logged: list[str] = []
    registry = CollectorRegistry(auto_describe=False)
    collector = BoardCollector(read=lambda: [InterfaceStat(name, True, DevStat(rx_packets=7))], log=logged.append)
    registry.register(collector)
    text = generate_latest(registry).decode("utf-8")
    samples = {
        (s.name, s.labels.get("ifname")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("evl_net_rx_packets_total", "b\\xff")] == 7
    assert samples[("evl_net_scrape_errors_total", None)] == 0 and logged == []
