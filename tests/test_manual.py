"""Every example of the ``evl net`` manual, run as written, through ``evl net`` and ``evl-net``.

Where the manual shows output, stdout (and stderr for the usage and the
kernel log lines) must match it byte for byte.
"""

from __future__ import annotations

import re

import pytest

import bpf_build

USAGE = """\
usage: evl-net [options]:
-e -i <ifname> [-p][-b]            enable out-of-band port in network interface <ifname>
   -p <pool-size>                  max number of out-of-band socket buffers (0=default)
   -b <buffer-size>                size (in bytes) of out-of-band socket buffer (0=default)
-d -i <ifname>                     disable out-of-band port in network interface <ifname>
-s <host> [-i <ifname>][-g]        solicit <host> via <ifname> if given
-S <host> [-i <ifname>][-g]        like -s, marking ARP entry as permanent
   -g                              allow routing to destination via gateway(s)
-Q[RrTtosfacx] -i <ifname>         query network interface information about <ifname>
-F[<bpf-module.o>] -i <ifname>     install/remove eBPF filter (RX)
-N[<vlan-id-list]                  add/remove VLAN id. filter (RX)
-n                                 show VLAN id. filter (RX)
"""

VERBOSE_QUERY = """\
oob capability: yes
    rx packets: 0
      rx bytes: 0
    tx packets: 0
      tx bytes: 0
      skb size: 4096
      skb free: 2048 / 2048
   csum errors: 0
      rx nomem: 0
      tx nomem: 0
"""

KERNEL_LINE = re.compile(
    r"^\[ *\d+\.\d{6}\] fec 2188000\.ethernet eth0: out-of-band eBPF program (installed|removed)\n$"
)


@pytest.fixture(params=["evl net", "evl-net"])
def net(request, sh):
    """Run an ``evl net`` command line as the manual writes it, either way."""
    prefix = request.param.split()

    def run(*args, **kw):
        return sh(*prefix, *args, **kw)

    return run


def ok(run, out: str = "", err: str = ""):
    assert (run.code, run.out, run.err) == (0, out, err)


def test_help(net):
    run = net("--help")
    # The C tool's usage byte for byte, then the long options of this implementation.
    assert (run.code, run.out) == (0, "")
    assert run.err.startswith(USAGE + "\nlong options of this implementation (see man evl-net):\n")


def test_enable_with_pool_then_disable(net):
    ok(net("-ei", "eth1.42", "-p", "4096"))
    ok(net("-Qa", "-i", "eth1.42"), out="4096\n")
    ok(net("-di", "eth1.42"))
    ok(net("-Qsfa", "-i", "eth1.42"), out="0 0 0\n")  # the last port on eth1 took its pool along


def test_enable_then_solicit_peer(net, sim_env):
    ok(net("-ei", "eth0.42"))
    ok(net("-S", "10.10.10.10"))


def test_query_verbose(net):
    ok(net("-ei", "eth0.42"))
    ok(net("-Q", "-i", "eth0.42"), out=VERBOSE_QUERY)


def test_query_terse(net, sim_env):
    env = dict(sim_env, EVL_SIM_BOARD="manual-traffic")
    # The current C tool prints yes/no for 'o' (the manual's "1" is from an older release).
    ok(net("-QoRTf", "-i", "eth0.42", env=env), out="yes 2092625 137399 2048\n")


def test_vlan_filter_set_clear_show(net):
    ok(net("-N42"))
    ok(net("-n"), out="42\n")
    ok(net("-N41,42,55-57"))
    ok(net("-N"), out="VLAN filter cleared\n")
    ok(net("-n"))  # an empty filter prints nothing
    ok(net("-N41,42,55-57"))
    ok(net("-n"), out="41-42,55-57\n")


@pytest.mark.skipif(
    not bpf_build.have_clang(), reason="clang with the BPF target and libbpf headers is needed to build netrx.o"
)
def test_ebpf_filter_install_remove(net, tmp_path):
    bpf_build.build("netrx", tmp_path)
    ok(net("-ei", "eth0.42"))
    run = net("-Fnetrx.o", "-i", "eth0.42", cwd=str(tmp_path))
    assert (run.code, run.out) == (0, "")
    assert KERNEL_LINE.match(run.err) and run.err.endswith("installed\n"), run.err
    run = net("-F", "-i", "eth0.42", cwd=str(tmp_path))
    assert (run.code, run.out) == (0, "eBPF module removed from eth0.42\n")
    assert KERNEL_LINE.match(run.err) and run.err.endswith("removed\n"), run.err
    # Nothing installed any more: removing again logs nothing in the kernel, as the C tool says the same.
    ok(net("-F", "-i", "eth0.42"), out="eBPF module removed from eth0.42\n")


def test_auto_transport_falls_back_to_the_simulator_with_a_notice(net, sim_env):
    env = {k: v for k, v in sim_env.items() if k != "EVL_NET_TRANSPORT"}
    env["EVL_DEVDIR"] = "/nonexistent-evl-devdir"
    run = net("-N42", env=env)
    assert run.code == 0 and run.out == ""
    assert run.err == "evl-net: no EVL core here (no /nonexistent-evl-devdir/net): using the simulator\n"
