"""``--format=prometheus``: ``-Q`` results in the Prometheus text exposition format.

The output is read back with prometheus_client's own parser (and checked by
``promtool check metrics`` where the Debian package ``prometheus`` provides
it); every value is compared with ``evl net -Q ... --json`` for the same
state, through a table of this test's own (metric -> JSON key), not through
the code under test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from evl_core.errors import EvlError

#: (sample name, the labels of its own) -> the key of `evl net -Q --json` it must equal; and its type.
EXPECTED = {
    ("evl_net_rx_packets_total", ()): ("rx_packets", "counter"),
    ("evl_net_rx_bytes_total", ()): ("rx_bytes", "counter"),
    ("evl_net_tx_packets_total", ()): ("tx_packets", "counter"),
    ("evl_net_tx_bytes_total", ()): ("tx_bytes", "counter"),
    ("evl_net_pool_buffers_free", ()): ("skb_free", "gauge"),
    ("evl_net_pool_buffers", ()): ("skb_total", "gauge"),
    ("evl_net_buffer_size_bytes", ()): ("skb_size", "gauge"),
    ("evl_net_csum_errors_total", ()): ("csum_errors", "counter"),
    ("evl_net_nomem_total", (("direction", "rx"),)): ("rx_nomem", "counter"),
    ("evl_net_nomem_total", (("direction", "tx"),)): ("tx_nomem", "counter"),
    ("evl_net_oob_capable", ()): ("oob_capable", "gauge"),
    ("evl_net_port_enabled", ()): ("oob_port", "gauge"),
}

#: Prometheus' naming rules (https://prometheus.io/docs/practices/naming/ and the exposition format):
#: rule -> a check of (sample name, type) that is True when the rule holds.
NAMING_RULES = {
    "a valid metric name": lambda n, t: re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", n) is not None,
    "snake_case, lower case, no colon (colons are for recording rules)": lambda n, t: (
        re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", n) is not None
    ),
    "not the reserved __ prefix": lambda n, t: not n.startswith("__"),
    "the application's prefix": lambda n, t: n.startswith("evl_net_"),
    "a counter ends in _total": lambda n, t: t != "counter" or n.endswith("_total"),
    "only a counter ends in _total": lambda n, t: t == "counter" or not n.endswith("_total"),
    "bytes and seconds are the base units, as a suffix": lambda n, t: all(
        unit not in n.split("_") or n.removesuffix("_total").endswith("_" + unit) for unit in ("bytes", "seconds")
    ),
    "no other unit": lambda n, t: (
        not any(u in n.split("_") for u in ("kb", "mb", "kib", "mib", "ms", "milliseconds", "bits", "percent"))
    ),
    "no type in the name": lambda n, t: not any(w in n.split("_") for w in ("counter", "gauge")),
}


def _json(evl, *args: str) -> dict:
    r = evl("net", "--json", "-Q", *args)
    assert r.code == 0, r.err
    return json.loads(r.out)


def _prom(evl, *args: str) -> str:
    r = evl("net", "-Q", *args, "--format=prometheus")
    assert (r.code, r.err) == (0, ""), r.err
    return r.out


def _samples(text: str) -> dict[tuple[str, str, tuple], float]:
    """(sample name, ifname, other labels) -> value, every sample of the exposition (parsed by prometheus_client)."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = dict(s.labels)
            ifname = labels.pop("ifname")
            key = (s.name, ifname, tuple(sorted(labels.items())))
            assert key not in out, f"a sample twice: {key}"
            out[key] = s.value
    return out


def _types(text: str) -> dict[str, str]:
    """sample name -> type, from the raw # TYPE lines (the text format names the family as its samples)."""
    return {m[0]: m[1] for m in re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.M)}


def _expected(ports: list[dict]) -> dict[tuple[str, str, tuple], float]:
    return {(name, p["ifname"], own): float(p[key]) for p in ports for (name, own), (key, _t) in EXPECTED.items()}


def _traffic(evl) -> None:
    """A port with every counter moved: rx (good and bad checksums), tx, tx nomem, rx nomem on the real device."""
    for argv in (
        ("net", "-ei", "eth1.42", "-p", "10"),
        ("net", "-ei", "eth0.42"),
        ("net", "-N42"),
        ("sim", "rx", "eth0.42", "--count", "7", "--size", "100"),
        ("sim", "rx", "eth0.42", "--bad-csum", "--size", "80"),
        ("sim", "rx", "eth0.42", "--nomem", "--count", "3"),
        ("sim", "tx", "eth1.42", "--count", "13", "--size", "200", "--stall"),
    ):
        r = evl(*argv)
        assert r.code == 0, (argv, r.err)


def test_one_port_equals_its_json(evl):
    _traffic(evl)
    for ifname in ("eth0.42", "eth1.42", "eth0"):
        text = _prom(evl, "-i", ifname)
        port = _json(evl, "-i", ifname)
        assert _samples(text) == _expected([port])
    # What the traffic did, as this test reads it: the exposition is not all zeros.
    eth1 = _samples(_prom(evl, "-i", "eth1.42"))
    assert eth1[("evl_net_tx_packets_total", "eth1.42", ())] == 10
    assert eth1[("evl_net_nomem_total", "eth1.42", (("direction", "tx"),))] == 3
    assert eth1[("evl_net_pool_buffers_free", "eth1.42", ())] == 0
    eth0 = _samples(_prom(evl, "-i", "eth0.42"))
    rx = (eth0[("evl_net_rx_packets_total", "eth0.42", ())], eth0[("evl_net_csum_errors_total", "eth0.42", ())])
    assert rx == (8, 1)  # the bad checksum is received too (as test_sim_traffic counts it)


def test_every_interface_equals_the_json(evl):
    _traffic(evl)
    text = _prom(evl, "--all-interfaces")
    ports = _json(evl, "--all-interfaces")["interfaces"]
    assert [p["ifname"] for p in ports] == ["lo", "eth0", "eth0.42", "eth1", "eth1.42", "eth2"]
    assert _samples(text) == _expected(ports)


def test_the_manuals_figures_are_written_exactly(evl):
    """Integers are written as integers: a counter past 2**53 is not rounded."""
    text = _prom(evl, "--board", "manual-traffic", "-i", "eth0.42")
    assert 'evl_net_rx_packets_total{ifname="eth0.42"} 2092625\n' in text
    assert 'evl_net_rx_bytes_total{ifname="eth0.42"} 180120534\n' in text
    assert _samples(text) == _expected([_json(evl, "--board", "manual-traffic", "-i", "eth0.42")])
    ports = _json(evl, "--board", "manual-traffic", "--all-interfaces")["interfaces"]
    assert _samples(_prom(evl, "--board", "manual-traffic", "--all-interfaces")) == _expected(ports)


def test_families_have_help_and_type_once_and_follow_the_naming_rules(evl):
    _traffic(evl)
    text = _prom(evl, "--all-interfaces")
    assert text.endswith("\n") and "\n\n" not in text
    helps = re.findall(r"^# HELP (\S+) \S", text, flags=re.M)
    types = _types(text)
    assert sorted(helps) == sorted(types) == sorted({name for name, _own in EXPECTED})
    assert len(helps) == len(set(helps)) == len(re.findall(r"^# TYPE ", text, flags=re.M))
    for name, kind in types.items():
        assert kind == {n: t for (n, _o), (_k, t) in EXPECTED.items()}[name]
        broken = [rule for rule, holds in NAMING_RULES.items() if not holds(name, kind)]
        assert broken == [], f"{name} ({kind}) breaks: {broken}"
    # A family's lines are together: HELP, TYPE, then only its own samples.
    current = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            current = line.split()[2]
        elif not line.startswith("#"):
            assert line.split("{")[0] == current, line
    # The parser sees the same families, a counter by its name without _total (OpenMetrics' view).
    parsed = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert parsed == {n.removesuffix("_total") if t == "counter" else n: t for n, t in types.items()}


def test_the_rules_table_catches_what_it_should():
    """Each naming rule refuses a name that breaks it (the table is not vacuous)."""
    bad = {
        "a valid metric name": ("evl-net-x", "gauge"),
        "snake_case, lower case, no colon (colons are for recording rules)": ("evl_net_rxPackets_total", "counter"),
        "not the reserved __ prefix": ("__evl_net_x", "gauge"),
        "the application's prefix": ("rx_packets_total", "counter"),
        "a counter ends in _total": ("evl_net_rx_packets", "counter"),
        "only a counter ends in _total": ("evl_net_pool_buffers_total", "gauge"),
        "bytes and seconds are the base units, as a suffix": ("evl_net_bytes_rx_total", "counter"),
        "no other unit": ("evl_net_buffer_size_kb", "gauge"),
        "no type in the name": ("evl_net_rx_counter_total", "counter"),
    }
    assert set(bad) == set(NAMING_RULES)
    for rule, (name, kind) in bad.items():
        assert not NAMING_RULES[rule](name, kind), rule


def _promtool() -> str:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool is not installed: apt-get install prometheus (.ci/run installs it)")
    return tool


def test_promtool_accepts_the_output(evl, tmp_path):
    tool = _promtool()
    _traffic(evl)
    for args in (("-i", "eth0.42"), ("--all-interfaces",)):
        r = subprocess.run([tool, "check", "metrics"], input=_prom(evl, *args), capture_output=True, text=True)
        assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    # ... and it does check: a counter without _total and a gauge without help are refused.
    broken = "# TYPE evl_net_rx_packets counter\nevl_net_rx_packets 1\n"
    r = subprocess.run([tool, "check", "metrics"], input=broken, capture_output=True, text=True)
    assert r.returncode != 0 and 'counter metrics should have "_total" suffix' in r.stdout + r.stderr


HOSTILE = 'q"b\\c{x}=,#é'  # what the kernel allows in a name: quotes, backslashes, braces (no space, ':' or '/')


def test_label_values_are_escaped(evl, tmp_path):
    board = tmp_path / "hostile.toml"
    board.write_text(
        f'page_size = 4096\n[[interface]]\nname = \'{HOSTILE}\'\ndriver = "fec"\nmac = "50:2d:f4:1d:32:d0"\n'
    )
    env_board = ("--board", str(board))
    assert evl("net", *env_board, "-ei", HOSTILE).code == 0
    r = evl("sim", "--board", str(board), "tx", HOSTILE, "--count", "3", "--size", "90")
    assert r.code == 0, r.err
    text = _prom(evl, *env_board, "--all-interfaces")
    assert 'evl_net_tx_packets_total{ifname="q\\"b\\\\c{x}=,#é"} 3\n' in text
    port = _json(evl, *env_board, "-i", HOSTILE)
    assert port["ifname"] == HOSTILE and port["tx_packets"] == 3
    assert _samples(text) == _expected([port])  # the parser reads the name back exactly
    r = subprocess.run([_promtool(), "check", "metrics"], input=text, capture_output=True, text=True)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_exposition_with_extra_labels_escapes_line_feeds_and_refuses_bad_names(sim_env):
    """The library function the fleet will call: extra labels first, every value escaped."""
    from evl_net import api
    from evl_net.engine.prometheus import exposition

    with api.open_board(transport="sim", env=sim_env) as board:
        port = board.query("eth0.42")
        rows = board.query_all().interfaces
    hostile = 'lab "1"\\\nrack 2'
    text = exposition([port], labels={"board": hostile})
    assert 'evl_net_rx_packets_total{board="lab \\"1\\"\\\\\\nrack 2",ifname="eth0.42"} 0\n' in text
    for family in text_string_to_metric_families(text):
        assert {s.labels["board"] for s in family.samples} == {hostile}
    assert exposition(rows) == exposition(rows, labels={})
    assert exposition([]) == ""
    for bad in ("__board", "ifname", "direction", "9board", "board-id", ""):
        with pytest.raises(EvlError, match="label"):
            exposition([port], labels={bad: "x"})


def test_a_name_that_is_not_utf8_stays_utf8():
    from evl_net.engine.prometheus import exposition
    from evl_net.model import DevStat
    from evl_net.ops.query_all import InterfaceStat

    text = exposition([InterfaceStat("e\udcff0", True, DevStat(rx_packets=5))])
    text.encode("utf-8")  # a lone surrogate would raise here
    assert 'evl_net_rx_packets_total{ifname="e\\\\xff0"} 5\n' in text
    assert {s.labels["ifname"] for f in text_string_to_metric_families(text) for s in f.samples} == {"e\\xff0"}


def test_a_row_without_counters_has_no_series():
    from evl_net.engine.prometheus import exposition
    from evl_net.model import DevStat
    from evl_net.ops.query_all import InterfaceStat

    text = exposition([InterfaceStat("eth9", True, error="No such device"), InterfaceStat("eth0", True, DevStat())])
    assert "eth9" not in text and 'ifname="eth0"' in text


def test_only_query_results_are_rendered(evl):
    r = evl("net", "-n", "--format=prometheus")
    assert (r.code, r.out) == (1, "")
    refused = "formatter 'prometheus' cannot render the result of show-vlans (formatters that can: json, text)"
    assert r.err == f"evl-net: {refused}\n"
    r = evl("net", "--format=list")
    assert any(line.split()[0] == "prometheus" for line in r.out.splitlines())
    r = evl("net", "-ei", "eth0.42", "--format=prometheus")  # a change: nothing of it is a metric
    assert r.code == 1 and "formatter 'prometheus' cannot render the result of enable" in r.err
    assert _json(evl, "-i", "eth0.42")["oob_port"] is True  # it ran all the same, as with any formatter


def test_the_formatter_costs_evl_net_no_import(sim_env):
    """`evl net -Q --format=prometheus` imports one small module more than `-Q`, and never prometheus_client."""
    code = (
        "import io, sys\n"
        "from evl_core.cli import main\n"
        "before = set(sys.modules)\n"
        "rc = main(sys.argv[1:], stdout=io.StringIO(), stderr=io.StringIO())\n"
        "print(rc, ' '.join(sorted(set(sys.modules) - before)))\n"
    )

    def new_modules(*argv: str) -> tuple[str, set[str]]:
        r = subprocess.run([sys.executable, "-c", code, *argv], env=sim_env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        rc, *mods = r.stdout.split()
        return rc, set(mods)

    new_modules("net", "-Q", "-i", "eth0.42")  # the registry and board caches written: both runs below read them
    rc, plain = new_modules("net", "-Q", "-i", "eth0.42")
    rc2, prom = new_modules("net", "-Q", "-i", "eth0.42", "--format=prometheus")
    assert (rc, rc2) == ("0", "0")
    assert prom - plain == {"evl_net.engine.prometheus"}
    assert not any(m.startswith("prometheus_client") for m in prom)


def _readme_unit(name: str) -> str:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    blocks = re.findall(r"```ini\n(# /etc/systemd/system/(\S+)\n.*?)```", readme, flags=re.S)
    found = [text for text, unit in blocks if unit == name]
    assert len(found) == 1, f"README.md has no one ```ini block for {name}"
    return found[0]


def test_the_readmes_textfile_units_verify_and_write_atomically(sim_env, tmp_path):
    """The README's node_exporter timer: systemd-analyze reads both units; the service's command, run by a
    shell with the directory moved to tmp_path, leaves a complete file that equals `-Q --json`, and no temporary."""
    service, timer = _readme_unit("evl-net-textfile.service"), _readme_unit("evl-net-textfile.timer")
    (command,) = re.findall(r"^ExecStart=/bin/sh -c '(.*)'$", service, flags=re.M)
    assert command.count("/var/lib/node_exporter/evl_net.prom.tmp") == 2 and " && mv " in command
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    env = dict(sim_env, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    r = subprocess.run(
        ["/bin/sh", "-c", command.replace("/var/lib/node_exporter", str(textfiles))],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (r.returncode, r.stderr) == (0, "")
    assert sorted(p.name for p in textfiles.iterdir()) == ["evl_net.prom"]
    text = (textfiles / "evl_net.prom").read_text()
    ports = json.loads(
        subprocess.run(
            ["evl", "net", "-Q", "--all-interfaces", "--json"], env=env, capture_output=True, text=True, timeout=60
        ).stdout
    )["interfaces"]
    assert _samples(text) == _expected(ports)
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail("systemd-analyze is not installed: apt-get install systemd (.ci/run installs it)")
    units = tmp_path / "units"
    units.mkdir()
    (units / "evl-net-textfile.service").write_text(service)
    (units / "evl-net-textfile.timer").write_text(timer)
    r = subprocess.run(
        [tool, "verify", str(units / "evl-net-textfile.timer"), str(units / "evl-net-textfile.service")],
        capture_output=True,
        text=True,
        env=dict(os.environ, SYSTEMD_LOG_LEVEL="notice", PATH=env["PATH"]),
        timeout=60,
    )
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
