"""One command, three transports, one answer: ``--json`` is byte-identical on sim, ioctl and remote.

Each example of the manual runs on the simulator, on the ioctl transport
against the kernel double (tests/kdouble/, at the syscall boundary, in a
network namespace of its own) and on a remote board over SSH on loopback
(an in-process SSH server running ``evl net-agent``), each board booted
fresh from the manual's board, and the three outputs and exit statuses must
be the same bytes.
"""

from __future__ import annotations

import json

import pytest

import bpf_build
from test_ioctl_transport import _require_bpf_load, _runner, double, kdouble_so, knet_env, netns  # noqa: F401
from test_remote_ssh import lab  # noqa: F401

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
    ["-n"],
    ["-N"],
    ["-n"],
    ["-N41,42,55-57"],
    ["-n"],
    ["-F", "-i", "eth0.42"],
    ["-Q", "--all-interfaces"],
    # failures have one form too
    ["-Q", "-i", "eth9"],
    ["-N5000"],
    ["-s", "10.10.10.10", "-i", "eth9"],
]


@pytest.fixture
def three(netns, double, knet_env, lab, sim_env, evl, tmp_path):
    """run(args) -> (sim, ioctl, remote) runs of ``evl net --json <args>``."""
    ioctl = _runner(netns, double, knet_env, ["evl", "net"])
    board = lab.board("cross")
    remote_env = lab.env(sim_env)
    target = f"--remote={lab.target(board)}"

    def run(*args: str, cwd: str | None = None):
        return (
            evl("net", "--json", *args),
            ioctl("--json", *args, cwd=cwd),
            evl("net", target, "--json", *args, env=remote_env),
        )

    return run


def test_manual_examples_give_byte_identical_json_on_every_transport(three):
    for args in MANUAL:
        sim, ioctl, remote = three(*args)
        assert (ioctl.code, ioctl.out) == (sim.code, sim.out), args
        assert (remote.code, remote.out) == (sim.code, sim.out), args
        for line in sim.out.splitlines():
            json.loads(line)  # each line one JSON object


@pytest.mark.skipif(not bpf_build.have_clang(), reason="clang with the BPF target is needed to build netrx.o")
def test_filter_install_gives_the_same_json(three, tmp_path):
    obj = bpf_build.build("netrx", tmp_path)
    _require_bpf_load(obj)
    three("-ei", "eth0.42")
    sim, ioctl, remote = three(f"-F{obj}", "-i", "eth0.42", cwd=str(tmp_path))
    assert sim.code == 0 and json.loads(sim.out)["program"]
    assert ioctl.out == sim.out and remote.out == sim.out
