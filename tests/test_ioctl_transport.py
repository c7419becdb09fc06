"""``evl net --transport=ioctl`` against a kernel double, at the syscall boundary.

The real commands run in fresh processes with ``tests/kdouble/kdouble.c``
preloaded, inside a network namespace of their own whose interfaces (veth
pairs, links down on the far side, nothing ever sent) carry the names of the
manual's board, so that ``if_nametoindex()`` and ``getaddrinfo()`` answer as
on the board.  The fake ``/dev/evl/{control,net}`` and sysfs ``vlans`` are
plain files in a temporary directory (EVL_DEVDIR, EVL_SYSDIR); the double's
server (``tests/kdouble/server.py``) checks every request number and struct
byte and answers with the simulator's semantics.  Every command asserts the
double saw no violation.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import bpf_build
from conftest import Run, script
from kdouble.server import KernelDouble, build
from test_manual import KERNEL_LINE, USAGE, VERBOSE_QUERY, ok

BOARD_IFACES = {
    # name: addresses (the manual board's)
    "eth0": [],
    "eth0.42": ["10.10.10.11/24"],
    "eth1": ["192.0.2.11/24"],
    "eth1.42": ["10.10.20.11/24"],
    "eth2": ["198.51.100.11/24"],
}
BOARDS = Path(__file__).resolve().parent.parent / "plugins" / "net" / "evl_net" / "boards"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


@pytest.fixture(scope="module")
def netns():
    """A network namespace with the board's interface names; deleted afterwards."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2's ip")
    name = f"evltest-{os.getpid()}"
    peers = f"{name}-peers"
    try:
        _ip("netns", "add", name)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot create a network namespace: {exc.stderr.strip()}")
    try:
        _ip("netns", "add", peers)
        for ns in (name, peers):
            # No IPv6: no neighbour discovery, no DAD, not a packet of any kind.
            subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-qw",
                    "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1",
                ],
                capture_output=True,
                timeout=30,
            )
        _ip("-n", name, "link", "set", "lo", "up")
        for i, (ifname, addresses) in enumerate(BOARD_IFACES.items()):
            # The far end lives, down, in the peers namespace: these links have no
            # carrier, so nothing can leave them even once they are "up".
            _ip("-n", name, "link", "add", ifname, "type", "veth", "peer", "name", f"peer{i}", "netns", peers)
            for cidr in addresses:
                _ip("-n", name, "addr", "add", cidr, "dev", ifname)
            _ip("-n", name, "link", "set", ifname, "up")
        yield name
    finally:
        _ip("netns", "del", name, check=False)
        _ip("netns", "del", peers, check=False)


@pytest.fixture(scope="module")
def kdouble_so(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the kernel double")
    return build(tmp_path_factory.mktemp("kdouble"))


@pytest.fixture
def double(tmp_path, kdouble_so):
    with KernelDouble(tmp_path / "kernel", kdouble_so) as d:
        yield d
    assert d.violations == [], "\n".join(d.violations)


@pytest.fixture
def knet_env(sim_env, double):
    env = double.env(sim_env)
    env.pop("LD_PRELOAD")  # set for the command only, not for ip(8)
    return env


def _runner(netns, double, knet_env, prefix):
    def run(
        *args: str,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        transport: str | None = "--transport=ioctl",
        timeout: float = 60,
    ) -> Run:
        argv = [script(prefix[0]), *prefix[1:], *([transport] if transport else []), *args]
        cmd = ["ip", "netns", "exec", netns, "env", f"LD_PRELOAD={double.so_path}", *argv]
        proc = subprocess.run(cmd, env=env or knet_env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
        assert double.violations == [], "\n".join(double.violations)
        return Run(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture(params=["evl net", "evl-net"])
def knet(request, netns, double, knet_env):
    """Run an ``evl net`` command line through the ioctl transport, either way."""
    return _runner(netns, double, knet_env, request.param.split())


@pytest.fixture
def kn(netns, double, knet_env):
    """Like knet, through ``evl net`` only."""
    return _runner(netns, double, knet_env, ["evl", "net"])


def fail(run: Run, err: str) -> None:
    assert (run.code, run.out, run.err) == (1, "", err)


def ioctls(double: KernelDouble, req: str | None = None) -> list[dict]:
    return [r for r in double.records if r["op"] == "ioctl" and (req is None or r["req"] == req)]


# -- every example of the manual, through the ioctl transport ----------------------------


def test_help(knet, double):
    run = knet("--help")
    assert (run.code, run.out) == (0, "") and run.err.startswith(USAGE + "\nlong options of this implementation")
    assert double.records == []  # nothing opened


def test_enable_with_pool_then_disable(knet, double):
    ok(knet("-ei", "eth1.42", "-p", "4096"))
    (setport,) = ioctls(double, "SETPORT")
    assert (setport["ifname"], setport["action"], setport["poolsz"], setport["bufsz"]) == ("eth1.42", "enable", 4096, 0)
    ok(knet("-Qa", "-i", "eth1.42"), out="4096\n")
    ok(knet("-di", "eth1.42"))
    assert ioctls(double, "SETPORT")[-1]["action"] == "disable"
    assert ioctls(double, "SETPORT")[-1]["arg"] == 0  # NULL disables
    ok(knet("-Qsfa", "-i", "eth1.42"), out="0 0 0\n")


def test_enable_then_solicit_peer(knet, double):
    ok(knet("-ei", "eth0.42"))
    ok(knet("-S", "10.10.10.10"))
    (sol,) = ioctls(double, "SOLICIT")
    assert (sol["ip"], sol["flags"], sol["bound"]) == ("10.10.10.10", 0x1, None)
    assert sol["result"] == {"ip": "10.10.10.10", "permanent": True, "may_route": False, "changed": True}
    with double.sim() as sim:
        assert [(e["dev"], e["ip"], e["state"]) for e in sim.snapshot()["arp"]] == [("eth0.42", "10.10.10.10", "P")]


def test_query_verbose(knet):
    ok(knet("-ei", "eth0.42"))
    ok(knet("-Q", "-i", "eth0.42"), out=VERBOSE_QUERY)


def test_query_terse(knet, double):
    double.board = "manual-traffic"
    ok(knet("-QoRTf", "-i", "eth0.42"), out="yes 2092625 137399 2048\n")


def test_vlan_filter_set_clear_show(knet, double):
    ok(knet("-N42"))
    ok(knet("-n"), out="42\n")
    ok(knet("-N41,42,55-57"))
    ok(knet("-N"), out="VLAN filter cleared\n")
    ok(knet("-n"))
    ok(knet("-N41,42,55-57"))
    ok(knet("-n"), out="41-42,55-57\n")
    writes = [r["data"] for r in double.records if r["op"] == "write"]
    assert writes == [b"42", b"41,42,55-57", b"\0", b"41,42,55-57"]  # clearing writes one NUL byte


def _require_bpf_load(obj: Path) -> None:
    """Skip, saying why, when this kernel will not load a socket filter for us."""
    from evl_net.kernel import libbpf

    try:
        with libbpf.load(obj.read_bytes(), obj.name):
            pass
    except libbpf.LibbpfUnavailable as exc:
        pytest.skip(f"libbpf is not usable here: {exc.detail}")
    except OSError as exc:
        pytest.skip(f"this kernel refuses to load {obj.name} ({exc.strerror}: {getattr(exc, 'detail', '')})")


needs_clang = pytest.mark.skipif(
    not bpf_build.have_clang(), reason="clang with the BPF target and libbpf headers is needed to build eBPF objects"
)


@needs_clang
def test_ebpf_filter_install_remove(knet, double, tmp_path):
    obj = bpf_build.build("netrx", tmp_path)
    _require_bpf_load(obj)
    ok(knet("-ei", "eth0.42"))
    # The kernel logs the lines; the command itself prints nothing.
    ok(knet("-Fnetrx.o", "-i", "eth0.42", cwd=str(tmp_path)))
    (install,) = [r for r in ioctls(double, "SETRXEBPF") if r["action"] == "install"]
    assert install["link"] == "anon_inode:bpf-prog" and install["prog_type"] == 1 and install["prog_tag"]
    assert KERNEL_LINE.match(double.kernel_log[-1] + "\n") and double.kernel_log[-1].endswith("installed")
    ok(knet("-F", "-i", "eth0.42", cwd=str(tmp_path)), out="eBPF module removed from eth0.42\n")
    assert ioctls(double, "SETRXEBPF")[-1]["progfd"] == -1
    assert KERNEL_LINE.match(double.kernel_log[-1] + "\n") and double.kernel_log[-1].endswith("removed")
    logged = len(double.kernel_log)
    ok(knet("-F", "-i", "eth0.42"), out="eBPF module removed from eth0.42\n")
    assert len(double.kernel_log) == logged  # nothing installed any more: nothing logged


def test_reloading_the_object_the_ledger_knows_is_no_change(kn, double, tmp_path):
    """The same object again is installed again (SETRXEBPF) and reported unchanged; an unknown filter, changed."""
    obj = bpf_build.build("netrx", tmp_path)
    other = bpf_build.build("drop_udp9", tmp_path)
    _require_bpf_load(obj)
    ok(kn("-ei", "eth0.42"))

    def load(path: Path) -> bool:
        run = kn("--json", f"-F{path}", "-i", "eth0.42")
        assert (run.code, run.err) == (0, ""), run.err
        (res,) = [json.loads(line) for line in run.out.splitlines()]
        return res["changed"]

    def installs() -> int:
        return len([r for r in ioctls(double, "SETRXEBPF") if r["action"] == "install"])

    assert load(obj) is True
    assert load(obj) is False
    assert installs() == 2  # the reload is made: the ledger may be behind the kernel
    assert double.kernel_log[-1].endswith("out-of-band eBPF program installed")
    assert load(other) is True
    assert load(obj) is True
    (double.rundir / "net-ledger.json").unlink()  # nothing known of the filter any more
    assert load(obj) is True
    assert load(obj) is False
    ok(kn("-F", "-i", "eth0.42"), out="eBPF module removed from eth0.42\n")
    assert load(obj) is True
    assert installs() == 7


def test_filter_removal_is_reported(knet, double):
    ok(knet("-ei", "eth0.42"))
    for argv in (["-F", "-i", "eth0.42"], ["--filter", "-i", "eth0.42"]):
        ok(knet(*argv), out="eBPF module removed from eth0.42\n")
    assert [r["progfd"] for r in ioctls(double, "SETRXEBPF")] == [-1, -1]
    fail(
        knet("--filter=", "-i", "eth0.42"),
        "evl-net: cannot set BPF filter on eth0.42: cannot read eBPF object '': No such file or directory\n",
    )
    assert len(ioctls(double, "SETRXEBPF")) == 2  # an empty path is no removal


def test_vlan_clear_message_does_not_depend_on_the_read_back(kn, netns, double, knet_env, tmp_path):
    """With a plain file as the sysfs attribute (no kernel parser behind it), -N still says it cleared."""
    sysdir = tmp_path / "sys"
    (sysdir / "evl" / "net").mkdir(parents=True)
    attr = sysdir / "evl" / "net" / "vlans"
    attr.write_text("41-42\n")
    env = {**knet_env, "EVL_SYSDIR": str(sysdir)}
    ok(kn("-N", env=env), out="VLAN filter cleared\n")
    # One NUL byte written over the start, as the C tool writes it: the read-back is not empty.
    assert attr.read_bytes() == b"\x001-42\n"
    ok(kn("-N42", env=env))


def test_auto_transport_chooses_ioctl_where_the_net_node_exists(kn, knet_env):
    env = {k: v for k, v in knet_env.items() if k != "EVL_NET_TRANSPORT"}
    ok(kn("-ei", "eth0.42", env=env, transport=None))
    ok(kn("-Qsf", "-i", "eth0.42", env=env, transport=None), out="4096 2048\n")


# -- same output as the simulator ------------------------------------------------------------


def _both(kn, sh, *args):
    """Run one command line on the double and on the simulator."""
    return kn(*args), sh("evl", "net", *args)


def test_json_results_match_the_simulator(kn, sh):
    for args in (
        ("--json", "-ei", "eth0.42"),
        ("--json", "-ei", "eth0.42"),
        ("--json", "-Q", "-i", "eth0.42"),
        ("--json", "-N41,42"),
        ("--json", "-n"),
        ("--json", "-di", "eth0.42"),
        ("--json", "-di", "eth0.42"),
        ("-Q", "-i", "eth2"),
        ("-Qox", "-i", "lo"),
        ("-ei", "eth1", "-b", "512", "--json"),
    ):
        got, want = _both(kn, sh, *args)
        assert (got.code, got.out, got.err) == (want.code, want.out, want.err), args
    assert json.loads(got.out)["buffer_size"] == 1500  # raised to the MTU, by the "kernel"


def test_query_all_matches_the_simulator(kn, sh):
    for args in (("-ei", "eth0.42"), ("-Q", "--all-interfaces"), ("-QoRs", "--all-interfaces")):
        got, want = _both(kn, sh, *args)
        assert (got.code, got.out, got.err) == (want.code, want.out, want.err), args


@pytest.mark.parametrize(
    "vlans, err",
    [
        ("4096", "Numerical result out of range"),
        ("1", "Invalid argument"),
        ("41 - 42", "Invalid argument"),
        ("99999999999", "Value too large for defined data type"),
    ],
)
def test_vlan_errors_carry_the_kernels_errno(kn, sh, double, vlans, err):
    got, want = _both(kn, sh, f"-N{vlans}")
    fail(got, f"evl-net: invalid VLAN id. list '{vlans}': {err}\n")
    assert (want.code, want.err) == (got.code, got.err)


# -- the core check --------------------------------------------------------------------------


def test_no_core(kn, double):
    double.make_nodes(control=False)
    fail(kn("-Q", "-i", "eth0.42"), f"evl-net: no EVL core in this kernel (no {double.devdir}/control)\n")
    assert ioctls(double) == []


def test_no_core_in_auto_mode(kn, double, knet_env):
    double.make_nodes(control=False)  # /dev/evl/net present, so auto picks ioctl
    env = {k: v for k, v in knet_env.items() if k != "EVL_NET_TRANSPORT"}
    fail(kn("-n", env=env, transport=None), f"evl-net: no EVL core in this kernel (no {double.devdir}/control)\n")


@pytest.mark.parametrize("abi_range, span", [((40, 44), "40 to 44"), ((46, 48), "46 to 48"), ((43, 43), "43")])
def test_abi_mismatch(kn, double, abi_range, span):
    double.abi_range = abi_range
    fail(
        kn("-ei", "eth0.42"),
        f"evl-net: EVL ABI mismatch: the kernel's EVL core supports ABI {span}, these tools need ABI 45\n",
    )
    assert [r["req"] for r in ioctls(double)] == ["GET_COREINFO"]


def test_abi_range_including_ours_is_accepted(kn, double):
    double.abi_range = (43, 47)
    ok(kn("-ei", "eth0.42"))


def test_enotty_on_get_coreinfo_is_an_abi_mismatch(kn, double):
    double.inject["GET_COREINFO"] = errno.ENOTTY
    fail(
        kn("-n"),
        "evl-net: EVL ABI mismatch: the EVL core does not answer EVL_CTLIOC_GET_COREINFO "
        "(0x80184300); these tools need ABI 45\n",
    )


def test_other_coreinfo_error(kn, double):
    double.inject["GET_COREINFO"] = errno.EPERM
    fail(kn("-n"), "evl-net: cannot query the EVL core (EVL_CTLIOC_GET_COREINFO): Operation not permitted\n")


def test_no_net_node_is_operation_not_supported(kn, double):
    double.make_nodes(net=False)
    fail(
        kn("-ei", "eth0.42"),
        f"evl-net: cannot open out-of-band port eth0.42 (no {double.devdir}/net: no out-of-band "
        "network stack in this EVL core): Operation not supported\n",
    )


# -- devices ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        # The C tool's words for the step that failed: opening the device (EVL_NETIOC_DEVOPEN).
        (("-ei", "eth9"), "cannot open out-of-band port eth9"),
        (("-di", "eth9"), "cannot open out-of-band port eth9"),
        (("-Q", "-i", "eth9"), "cannot open out-of-band port eth9"),
        (("-F", "-i", "eth9"), "cannot open out-of-band port eth9"),
    ],
)
def test_unknown_device_is_refused_before_any_request(kn, double, args, message):
    fail(kn(*args), f"evl-net: {message}: No such device\n")
    assert [r["req"] for r in ioctls(double)] == ["GET_COREINFO"]  # the core check only
    assert not [r for r in double.records if r["op"] == "open" and r["kind"] == "net"]


@pytest.mark.parametrize(
    "name, problem",
    [("a-name-far-too-long-for-linux", "longer than 15 bytes"), ("eth0:1", "':' is not allowed in a device name")],
)
def test_a_name_no_kernel_could_have_is_refused_before_the_kernel_is_asked(kn, double, name, problem):
    fail(kn("-Q", "-i", name), f"evl-net: invalid interface name '{name}': {problem}\n")
    assert ioctls(double) == []


def test_device_fds_are_real_and_closed(kn, double):
    ok(kn("-ei", "eth0.42"))
    (devopen,) = ioctls(double, "DEVOPEN")
    devfd = devopen["devfd"]
    assert [r["req"] for r in ioctls(double) if r["fd"] == devfd] == ["GETSTAT", "SETPORT", "GETSTAT"]
    assert {"op": "close", "fd": devfd, "kind": "netdev"}.items() <= next(
        r for r in double.records if r["op"] == "close" and r["fd"] == devfd
    ).items()


def test_disabling_a_non_port_succeeds(kn):
    ok(kn("-di", "eth2"))


@pytest.mark.parametrize(
    "req, args, message, err",
    [
        (
            "GETSTAT",
            ("-Q", "-i", "eth0.42"),
            "cannot query out-of-band port on eth0.42 (EVL_NDEVIOC_GETSTAT refused "
            "with ENOTTY: not an EVL device, or an ABI mismatch)",
            "Bad file descriptor",
        ),
        (
            "SETPORT",
            ("-di", "eth0.42"),
            "cannot disable out-of-band port on eth0.42 (EVL_NDEVIOC_SETPORT refused "
            "with ENOTTY: not an EVL device, or an ABI mismatch)",
            "Bad file descriptor",
        ),
        # libevl maps nothing on enable, nor on DEVOPEN.
        ("SETPORT", ("-ei", "eth0.42"), "cannot enable out-of-band port on eth0.42", "Inappropriate ioctl for device"),
        ("DEVOPEN", ("-Q", "-i", "eth0.42"), "cannot open out-of-band port eth0.42", "Inappropriate ioctl for device"),
        (
            "SETRXEBPF",
            ("-F", "-i", "eth0.42"),
            "cannot set BPF filter on eth0.42 (EVL_NDEVIOC_SETRXEBPF refused "
            "with ENOTTY: not an EVL device, or an ABI mismatch)",
            "Bad file descriptor",
        ),
        (
            "SOLICIT",
            ("-s", "10.10.10.10"),
            "10.10.10.10 did not respond (EVL_SOCKIOC_SOLICIT refused "
            "with ENOTTY: not an EVL device, or an ABI mismatch)",
            "Bad file descriptor",
        ),
    ],
)
def test_enotty_mapping(kn, double, req, args, message, err):
    double.inject[req] = errno.ENOTTY
    fail(kn(*args), f"evl-net: {message}: {err}\n")


def oob_bits_tried(double: KernelDouble) -> list[int]:
    """The SOCK_OOB bits socket() was called with, in order.

    CPython retries a socket() failing with EINVAL once without SOCK_CLOEXEC
    (for kernels older than 2.6.27), so a refused bit shows up twice.
    """
    return list(dict.fromkeys(r["bit"] for r in double.records if r["op"] == "socket"))


# -- solicitation ------------------------------------------------------------------------------


def test_solicit_via_interface_binds_the_socket(kn, double):
    ok(kn("-ei", "eth0.42"))
    ok(kn("-s", "10.10.10.10", "-i", "eth0.42"))
    (opt,) = [r for r in double.records if r["op"] == "setsockopt"]
    assert opt["raw"] == b"eth0.42\0"
    (sol,) = ioctls(double, "SOLICIT")
    assert (sol["bound"], sol["flags"], sol["family"]) == ("eth0.42", 0, 2)
    assert oob_bits_tried(double) == [1 << 29]


def test_solicit_through_a_gateway(kn, double):
    ok(kn("-ei", "eth1"))
    fail(kn("-S", "203.0.113.5"), "evl-net: 203.0.113.5 did not respond: Network is unreachable\n")
    ok(kn("-S", "203.0.113.5", "-g"))
    assert [r["flags"] for r in ioctls(double, "SOLICIT")] == [0x1, 0x3]


def test_solicit_broadcast(kn, double):
    ok(kn("-ei", "eth0.42"))
    ok(kn("-s", "broadcast", "-i", "eth0.42"))
    assert ioctls(double, "SOLICIT")[-1]["ip"] == "255.255.255.255"


def test_solicit_older_kernel_sock_oob_bit(kn, double):
    """An older EVL kernel: bit 29 is refused with EINVAL, bit 30 is its SOCK_OOB."""
    double.sock_oob_bit = 1 << 30
    ok(kn("-ei", "eth0.42"))
    ok(kn("-s", "10.10.10.10"))
    assert oob_bits_tried(double) == [1 << 29, 1 << 30]


def test_solicit_without_sock_oob(kn, double):
    double.sock_oob_bit = None
    fail(
        kn("-s", "10.10.10.10"),
        "evl-net: cannot create out-of-band UDP socket (this kernel knows no SOCK_OOB): Invalid argument\n",
    )
    assert oob_bits_tried(double) == [1 << 29, 1 << 30]


def test_solicit_socket_error_other_than_einval_is_not_retried(kn, double):
    double.inject["SOCKET"] = errno.EPROTONOSUPPORT
    fail(kn("-s", "10.10.10.10"), "evl-net: cannot create out-of-band UDP socket: Protocol not supported\n")
    assert len([r for r in double.records if r["op"] == "socket"]) == 1


def test_solicit_unknown_interface(kn, double):
    fail(kn("-s", "10.10.10.10", "-i", "eth9"), "evl-net: cannot bind UDP socket to device eth9: No such device\n")
    assert not [r for r in double.records if r["op"] == "socket"]


def test_solicit_bind_refused(kn, double):
    double.inject["SO_BINDTODEVICE"] = errno.EPERM
    fail(
        kn("-s", "10.10.10.10", "-i", "eth0.42"),
        "evl-net: cannot bind UDP socket to device eth0.42: Operation not permitted\n",
    )


def test_solicit_not_a_port(kn, double):
    fail(
        kn("-s", "10.10.10.10"),
        "evl-net: 10.10.10.10 did not respond (no out-of-band port on the way to 10.10.10.10): No such device\n",
    )
    fail(
        kn("-s", "10.10.10.10", "-i", "eth0.42"),
        "evl-net: 10.10.10.10 did not respond (no out-of-band port on the way to 10.10.10.10): No such device\n",
    )


def test_solicit_unresolvable_host(kn, double):
    fail(kn("-s", "no-such-host.invalid"), "evl-net: invalid host/IP address 'no-such-host.invalid'\n")
    assert not [r for r in double.records if r["op"] == "socket"]


def test_solicit_timeout(kn, double, tmp_path):
    board = tmp_path / "quick.toml"
    board.write_text((BOARDS / "manual.toml").read_text().replace("solicit_timeout = 5", "solicit_timeout = 0.2"))
    double.board = str(board)
    ok(kn("-ei", "eth1.42"))
    fail(kn("-s", "10.10.20.10"), "evl-net: 10.10.20.10 did not respond: Connection timed out\n")


# -- the VLAN filter's sysfs attribute --------------------------------------------------------


def test_vlan_attribute_missing(kn, double):
    double.make_nodes(vlans=False)
    path = double.sysdir / "evl" / "net" / "vlans"
    fail(
        kn("-n"), f"evl-net: cannot read the VLAN filter (cannot open {path} for reading): No such file or directory\n"
    )


def test_vlan_write_refused(kn, double):
    double.inject["VLANS_WRITE"] = errno.EPERM
    fail(kn("-N42"), "evl-net: invalid VLAN id. list '42': Operation not permitted\n")


# -- eBPF objects --------------------------------------------------------------------------------


@pytest.fixture
def port(kn):
    ok(kn("-ei", "eth0.42"))


@needs_clang
def test_ebpf_wrong_program_type(kn, sh, double, port, tmp_path):
    obj = bpf_build.build("xdp_pass", tmp_path)
    _require_bpf_load(obj)
    run = kn("-Fxdp_pass.o", "-i", "eth0.42", cwd=str(tmp_path))
    fail(
        run,
        "evl-net: cannot set BPF filter on eth0.42 (xdp_pass.o: program 'xdp' is not a socket filter): "
        "Invalid argument\n",
    )
    (install,) = ioctls(double, "SETRXEBPF")
    assert install["prog_type"] == 6  # BPF_PROG_TYPE_XDP: loaded, then refused by the "kernel"
    assert double.kernel_log[-1].endswith("fec 2188000.ethernet eth0: invalid out-of-band eBPF program")
    sh("evl", "net", "-ei", "eth0.42")
    want = sh("evl", "net", "-Fxdp_pass.o", "-i", "eth0.42", cwd=str(tmp_path))
    assert (want.code, want.err.splitlines()[-1]) == (1, run.err.strip())


@needs_clang
@pytest.mark.parametrize(
    "content, detail",
    [
        (b"", "truncated ELF identification (0 bytes)"),
        (b"hello, world\n" * 4, "not an ELF object (bad magic)"),
    ],
)
def test_ebpf_bad_objects(kn, sh, double, port, tmp_path, content, detail):
    (tmp_path / "bad.o").write_bytes(content)
    run = kn("-Fbad.o", "-i", "eth0.42", cwd=str(tmp_path))
    fail(run, f"evl-net: cannot set BPF filter on eth0.42 (bad.o: {detail}): Invalid argument\n")
    assert ioctls(double, "SETRXEBPF") == []  # refused before the kernel was asked
    sh("evl", "net", "-ei", "eth0.42")
    want = sh("evl", "net", "-Fbad.o", "-i", "eth0.42", cwd=str(tmp_path))
    assert (want.code, want.out, want.err) == (run.code, run.out, run.err)


@needs_clang
def test_ebpf_object_without_program(kn, double, port, tmp_path):
    src = tmp_path / "noprog.c"
    src.write_text('char _license[] __attribute__((section("license"), used)) = "GPL";\n')
    subprocess.run(
        ["clang", "-O2", "-target", "bpf", "-c", str(src), "-o", str(tmp_path / "noprog.o")],
        check=True,
        capture_output=True,
        timeout=120,
    )
    fail(
        kn("-Fnoprog.o", "-i", "eth0.42", cwd=str(tmp_path)),
        "evl-net: cannot set BPF filter on eth0.42 (noprog.o: no eBPF program in object): Invalid argument\n",
    )
    assert ioctls(double, "SETRXEBPF") == []


@needs_clang
def test_ebpf_program_the_verifier_refuses(kn, double, port, tmp_path):
    _require_bpf_load(bpf_build.build("netrx", tmp_path))
    src = tmp_path / "badctx.c"
    # A socket filter may not read skb->data directly: the verifier says no.
    src.write_text(
        "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n"
        'SEC("socket") int badctx(struct __sk_buff *skb)\n'
        "{ return *(volatile char *)(long)skb->data; }\n"
        'char _license[] SEC("license") = "GPL";\n'
    )
    subprocess.run(
        [
            "clang",
            "-O2",
            "-target",
            "bpf",
            *bpf_build._include_flags(),
            "-c",
            str(src),
            "-o",
            str(tmp_path / "badctx.o"),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    run = kn("-Fbadctx.o", "-i", "eth0.42", cwd=str(tmp_path))
    assert run.code == 1 and run.out == ""
    assert re.match(
        r"evl-net: cannot set BPF filter on eth0\.42 \(badctx\.o: the kernel's verifier refused program "
        r"'badctx': .+\): (Permission denied|Invalid argument)\n$",
        run.err,
    ), run.err
    assert ioctls(double, "SETRXEBPF") == []


@needs_clang
def test_ebpf_on_a_non_port(kn, double, tmp_path):
    obj = bpf_build.build("netrx", tmp_path)
    _require_bpf_load(obj)
    fail(kn("-Fnetrx.o", "-i", "eth2", cwd=str(tmp_path)), "evl-net: cannot set BPF filter on eth2: No such device\n")


@needs_clang
def test_ebpf_without_libbpf(kn, double, port, knet_env, tmp_path):
    bpf_build.build("netrx", tmp_path)
    env = dict(knet_env, EVL_NET_LIBBPF="/nonexistent/libbpf.so.1")
    run = kn("-Fnetrx.o", "-i", "eth0.42", env=env, cwd=str(tmp_path))
    assert run.code == 1 and run.out == ""
    assert run.err.startswith(
        "evl-net: cannot set BPF filter on eth0.42: the system libbpf is needed for -F "
        "(cannot load /nonexistent/libbpf.so.1: "
    ), run.err
    assert ioctls(double, "SETRXEBPF") == []


# -- the double's own checks fail when they should ----------------------------------------


BAD_CLIENT = r"""
import fcntl, os, struct, sys
devdir = os.environ["EVL_DEVDIR"]
case = sys.argv[1]
if case == "number":
    fd = os.open(devdir + "/control", os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, 0x80144300, bytearray(20), True)  # evl_core_info one u64 alignment off
    except OSError as exc:
        print(exc.errno)
    os.close(fd)
elif case == "struct":
    import array
    name = array.array("B", b"eth0.42\0")
    fd = os.open(devdir + "/net", os.O_RDWR | os.O_CLOEXEC)
    req = bytearray(struct.pack("=Qi4x", name.buffer_info()[0], 7))  # the fd field not zeroed
    fcntl.ioctl(fd, 0xC010EF00, req, True)
    os.close(fd)
    os.close(struct.unpack_from("=i", req, 8)[0])
elif case == "leak":
    os.open(devdir + "/control", os.O_RDWR)
"""


@pytest.mark.parametrize(
    "case, expected",
    [
        ("number", "request 0x80144300 on a control fd: not an EVL request for it"),
        ("struct", "DEVOPEN struct not zeroed"),
        ("leak", "left open at exit"),
    ],
)
def test_the_double_reports_violations(netns, double, knet_env, case, expected):
    cmd = [
        "ip",
        "netns",
        "exec",
        netns,
        "env",
        f"LD_PRELOAD={double.so_path}",
        script("python"),
        "-c",
        BAD_CLIENT,
        case,
    ]
    proc = subprocess.run(cmd, env=knet_env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    if case == "number":
        assert proc.stdout.strip() == str(errno.ENOTTY)
    assert any(expected in v for v in double.violations), double.violations
    double.violations.clear()  # seen: the fixture must not fail on them
