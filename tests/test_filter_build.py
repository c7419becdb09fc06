"""Building an EVL RX filter without a kernel tree: the shipped <evl/net/bpf-abi.h> and ``--cflags``.

The round trip of the README: write a filter against the shipped header, build
it with ``clang -O2 -target bpf $(evl sim filter --cflags)`` and nothing else,
run it over frames with ``evl sim filter``, install it with ``evl net -F``.
Each verdict constant of the header is checked against what the simulated
EVL input path does with it (the action ``evl sim filter`` reports and the
fate of a frame injected with ``evl sim rx``), so a header whose values drifted
from the ABI would fail here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EVL = str(Path(sys.executable).parent / "evl")

pytestmark = pytest.mark.skipif(
    shutil.which("clang") is None or not Path("/usr/include/bpf/bpf_helpers.h").exists(),
    reason="needs clang and the libbpf headers",
)

FILTER = """\
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <evl/net/bpf-abi.h>

SEC("socket")
int verdict(struct __sk_buff *skb)
{
	return %s;
}

char _license[] SEC("license") = "GPL";
"""


def _run(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([EVL, *argv], env=env, capture_output=True, text=True, timeout=60)


def _build(tmp_path: Path, name: str, source: str, env: dict[str, str]) -> Path:
    cflags = _run("sim", "filter", "--cflags", env=env)
    assert cflags.returncode == 0 and cflags.stderr == ""
    src = tmp_path / f"{name}.c"
    src.write_text(source)
    obj = tmp_path / f"{name}.o"
    # Only what --cflags prints: no kernel tree, no -I of the test's own.
    subprocess.run(
        ["clang", "-O2", "-target", "bpf", *cflags.stdout.split(), "-c", str(src), "-o", str(obj)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return obj


def test_cflags_name_the_shipped_header(sim_env: dict[str, str]) -> None:
    flags = _run("sim", "filter", "--cflags", env=sim_env).stdout.split()
    includes = [f[2:] for f in flags if f.startswith("-I")]
    assert includes and all(os.path.isdir(d) for d in includes)
    assert any(os.path.isfile(os.path.join(d, "evl", "net", "bpf-abi.h")) for d in includes)


@pytest.mark.parametrize(
    "constant, value, action, fate",
    [
        # fate: what `evl sim rx eth0.42` (a VLAN-42 IPv4 frame, VLAN 42 not in the filter) does with it.
        ("EVL_RX_DROP", 0, "drop", "1 dropped"),
        ("EVL_RX_ACCEPT", 1, "accept", "1 oob"),
        ("EVL_RX_SKIP", 2, "skip", "1 in-band"),
        ("EVL_RX_VLAN", 3, "vlan", "1 in-band"),
    ],
)
def test_each_verdict_of_the_header_acts_as_the_abi_says(
    tmp_path: Path, sim_env: dict[str, str], constant: str, value: int, action: str, fate: str
) -> None:
    obj = _build(tmp_path, constant.lower(), FILTER % constant, sim_env)
    run = _run("sim", "--json", "filter", str(obj), "--vlan", "42", env=sim_env)
    assert run.returncode == 0, run.stderr
    (result,) = json.loads(run.stdout)
    assert (result["verdict"], result["action"]) == (value, action)
    env = {**sim_env}
    assert _run("net", "-ei", "eth0.42", env=env).returncode == 0
    installed = _run("net", "-i", "eth0.42", f"-F{obj}", env=env)
    assert installed.returncode == 0, installed.stderr
    rx = _run("sim", "rx", "eth0.42", env=env)
    assert rx.returncode == 0 and rx.stdout.startswith(fate), rx.stdout


def test_filter_needs_an_object_unless_cflags(sim_env: dict[str, str]) -> None:
    run = _run("sim", "filter", env=sim_env)
    # A usage error: the message, then the subcommand's usage, status 2, as every evl sim usage error.
    assert run.returncode == 2
    assert run.stderr.startswith("evl-sim: one of the arguments object --cflags is required\nusage: evl sim filter")


PRINTK = """\
#define BPF_NO_GLOBAL_DATA
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <evl/net/bpf-abi.h>

SEC("socket")
int say(struct __sk_buff *skb)
{
	if (skb->len > 100)
		bpf_printk("long frame: %u bytes", skb->len);
	return EVL_RX_VLAN;
}

char _license[] SEC("license") = "GPL";
"""


def test_evl_sim_filter_prints_what_bpf_printk_wrote_per_frame(tmp_path: Path, sim_env: dict[str, str]) -> None:
    obj = _build(tmp_path, "say", PRINTK, sim_env)
    results = []
    for size in (64, 200):
        run = _run("sim", "--json", "filter", str(obj), "--size", str(size), env=sim_env)
        assert run.returncode == 0, run.stderr
        results += json.loads(run.stdout)
    short, long = results
    assert short["trace"] == []  # the call sits on a path this frame does not take
    (line,) = long["trace"]
    # skb->len at the EVL RX hook counts from the network header: the 14-byte Ethernet header is pulled.
    assert line.endswith(": bpf_trace_printk: long frame: 186 bytes") and "<idle>-0" in line
    text = _run("sim", "filter", str(obj), "--size", "200", env=sim_env).stdout.splitlines()
    assert len(text) == 2 and text[1].endswith("long frame: 186 bytes")


def test_the_readme_round_trip_runs_as_written(tmp_path: Path, sim_env: dict[str, str]) -> None:
    """The README's filter-with-a-map session, copied out of README.md and run by a shell."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    start = readme.index("cat > count.c <<'C'")
    end = readme.index("\n", readme.index("evl sim maps eth0", start))
    script = readme[start:end]
    env = dict(sim_env, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(
        ["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "1 accept" in out and "2 skip" in out and "5 oob (on eth0.42)" in out
    # after the 5 frames through -F: the ACCEPT counter (key 1) of the installed filter's map is 5
    installed = out[out.index("eth0: ipv4_only (count.o)") :]
    assert "  key: 01 00 00 00\n    value (CPU 00): 05 00 00 00 00 00 00 00" in installed
