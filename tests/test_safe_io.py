"""Reading what the user names, writing the state, printing messages: safe whatever the input.

Unit-level checks of the pieces that tests/test_hostile_input.py exercises as
whole processes: the bounded, non-blocking reader (evl_core.files), the
checked output streams (evl_core.streams), the escaping of echoed input
(evl_core.errors), the state file's symlink, lock and leftover handling
(transports/sim/state.py), and the board's identity by content.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from evl_core.errors import EvlError, escape, one_line, shown
from evl_core.files import read_regular, read_text
from evl_core.streams import CheckedOutput, OutputError
from evl_net.kernel.names import name_problem
from evl_net.transports.remote.client import Options, check_ssh_args
from evl_net.transports.sim import SimTransport
from evl_net.transports.sim import board as boards
from evl_net.transports.sim.state import FORMAT, StateFile

# -- reading -------------------------------------------------------------------------------------


def _in_thread(fn, timeout: float = 5.0):
    """Run ``fn`` in a daemon thread; its result or exception, or a failure if it blocks."""
    box: dict = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the read blocked"
    return box


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "board.toml"
    os.mkfifo(fifo)
    box = _in_thread(lambda: read_regular(str(fifo), "board file", 1024))
    assert isinstance(box.get("error"), EvlError)
    assert str(box["error"]) == f"cannot read board file {fifo}: not a regular file (a FIFO)"


def test_a_fifo_is_never_even_opened(tmp_path: Path) -> None:
    """Opening a special file may act (a watchdog starts): the type is checked before any open."""
    fifo = tmp_path / "obj.o"
    os.mkfifo(fifo)
    opened = threading.Event()

    def writer() -> None:
        with open(fifo, "wb"):  # blocks until someone opens the FIFO for reading
            opened.set()

    threading.Thread(target=writer, daemon=True).start()
    with pytest.raises(EvlError, match="not a regular file"):
        read_regular(str(fifo), "eBPF object", 1 << 20)
    assert not opened.wait(0.3), "read_regular opened the FIFO"
    with open(fifo, "rb"):  # release the writer
        assert opened.wait(5)


@pytest.mark.parametrize(
    "path, why",
    [
        ("/dev/zero", "not a regular file (a character device)"),
        ("/dev/full", "not a regular file (a character device)"),
        ("/", "Is a directory"),
    ],
)
def test_devices_and_directories_are_refused(path: str, why: str) -> None:
    with pytest.raises(EvlError) as caught:
        read_regular(path, "eBPF object", 1 << 20)
    assert caught.value.format("evl-net").endswith(f": {why}")


def test_a_symlink_loop_and_a_path_under_a_file_say_what_the_kernel_says(tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(EvlError) as caught:
        read_regular(str(loop), "hosts file", 100)
    assert caught.value.errno == errno.ELOOP
    plain = tmp_path / "plain"
    plain.write_text("x")
    with pytest.raises(EvlError) as caught:
        read_regular(str(plain / "below"), "hosts file", 100)
    assert caught.value.errno == errno.ENOTDIR


def test_the_size_cap_holds_for_sparse_and_growing_files(tmp_path: Path) -> None:
    huge = tmp_path / "huge"
    with open(huge, "wb") as f:
        f.truncate(2 << 30)  # 2 GiB, no blocks
    with pytest.raises(EvlError, match="larger than the 16 MiB limit"):
        read_regular(str(huge), "board file", 16 << 20)
    exact = tmp_path / "exact"
    exact.write_bytes(b"a" * 100)
    assert read_regular(str(exact), "board file", 100) == b"a" * 100
    with pytest.raises(EvlError, match="larger than the 99 bytes limit"):
        read_regular(str(exact), "board file", 99)


def test_text_that_is_not_utf8_names_the_byte(tmp_path: Path) -> None:
    bad = tmp_path / "hosts"
    bad.write_bytes(b"board1\nbo\xffrd2\n")
    with pytest.raises(EvlError) as caught:
        read_text(str(bad), "hosts file", 1000)
    assert str(caught.value) == f"hosts file {bad} is not UTF-8 text (byte 9)"


# -- messages ------------------------------------------------------------------------------------


def test_echoed_control_characters_are_escaped_and_long_values_shortened() -> None:
    assert escape("eth\x1b[2J0\n") == "eth\\x1b[2J0\\n"
    # A byte that was not UTF-8 in argv reaches Python as a lone surrogate: shown as the byte.
    assert escape(os.fsdecode(b"e\xfft")) == "e\\xfft"
    long = "x" * 40 + "y" * 200 + "z" * 40
    text = shown(long)
    assert len(text) <= 80 and text.startswith("x" * 38) and text.endswith("z" * 38) and "..." in text
    # A message is one line whatever it echoes, and quoted values in it are shortened.
    line = EvlError(f"unexpected argument '{'a' * 500}\nb'").format("evl-net")
    assert "\n" not in line and len(line) < 140
    assert one_line("tab\there") == "tab\\there"


# -- output --------------------------------------------------------------------------------------


class _Full(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class _Gone(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


def test_write_errors_become_one_error_and_stay_sticky() -> None:
    out = CheckedOutput(_Full())
    with pytest.raises(OutputError) as caught:
        out.write("x")
    assert caught.value.format("evl-net") == "evl-net: write error: No space left on device"
    # A caller that swallowed the error (argparse does) still fails at the flush.
    with pytest.raises(OutputError):
        out.flush()
    with pytest.raises(BrokenPipeError):
        CheckedOutput(_Gone()).write("x")
    closed = CheckedOutput(None)
    assert closed.write("") == 0  # nothing to say is no failure
    with pytest.raises(OutputError) as caught:
        closed.write("x")
    assert caught.value.errno == errno.EBADF


def _run(argv: list[str], env: dict[str, str], **kw) -> subprocess.CompletedProcess:
    exe = os.path.join(os.path.dirname(sys.executable), argv[0])
    return subprocess.run([exe, *argv[1:]], env=env, capture_output=True, text=True, timeout=60, **kw)


def test_a_closed_stdout_is_never_reused_by_a_file_the_command_opens(sim_env: dict[str, str]) -> None:
    """With fd 1 closed, the state file must not become fd 1 and receive the output."""
    state = Path(sim_env["EVL_SIM_STATE"])
    assert _run(["evl", "net", "-N42"], sim_env).returncode == 0
    before = state.read_bytes()
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "evl"), "net", "-n"],
        env=sim_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        preexec_fn=lambda: os.close(1),
    )
    assert (proc.returncode, proc.stderr) == (1, "evl-net: write error: Bad file descriptor\n")
    assert state.read_bytes() == before
    assert json.loads(before)["format"] == FORMAT


def test_a_mutation_whose_output_fails_says_the_board_changed(sim_env: dict[str, str]) -> None:
    assert _run(["evl", "net", "-N42"], sim_env).returncode == 0
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "evl"), "net", "--json", "-N43"],
            env=sim_env,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 1
    assert proc.stderr == "evl-net: write error after the board was changed (set-vlans): No space left on device\n"
    assert _run(["evl", "net", "-n"], sim_env).stdout == "43\n"  # it did happen


def test_a_closed_pipe_ends_quietly_with_141(sim_env: dict[str, str]) -> None:
    for argv in (["evl", "-V"], ["evl", "sim", "--help"], ["evl", "net", "-Q", "-i", "eth0"]):
        read, write = os.pipe()
        os.close(read)
        proc = subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), argv[0]), *argv[1:]],
            env=sim_env,
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
        os.close(write)
        assert proc.returncode == 141, argv
        assert "Traceback" not in proc.stderr and "write error" not in proc.stderr


# -- the state file ------------------------------------------------------------------------------


def _sim(path: Path, board: str | None = None) -> SimTransport:
    return SimTransport(board=board, state_path=str(path), console=io.StringIO())


def test_a_symlinked_state_stays_a_link_and_keeps_its_mode(tmp_path: Path) -> None:
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    target = real_dir / "state.json"
    link = tmp_path / "state.json"
    link.symlink_to(target)
    with _sim(link) as sim:
        sim.set_vlans("42")
    assert link.is_symlink() and os.readlink(link) == str(target)
    os.chmod(target, 0o600)
    with _sim(link) as sim:
        sim.set_vlans("43")
    assert link.is_symlink() and (target.stat().st_mode & 0o777) == 0o600
    assert json.loads(target.read_text())["vlans"] == [43]
    # The lock is the target's: two links to one state share it.
    assert (real_dir / "state.json.lock").exists() and not (tmp_path / "state.json.lock").exists()


def test_a_lock_that_is_a_link_or_a_fifo_is_refused_and_named(tmp_path: Path) -> None:
    state = tmp_path / "s.json"
    (tmp_path / "elsewhere").write_text("")
    (tmp_path / "s.json.lock").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(EvlError) as caught:
        StateFile(str(state)).acquire()
    assert f"lock file {tmp_path / 's.json.lock'}: is a symbolic link" in str(caught.value)
    fifo_state = tmp_path / "f.json"
    os.mkfifo(tmp_path / "f.json.lock")
    box = _in_thread(lambda: StateFile(str(fifo_state)).acquire())
    assert "not a regular file (a FIFO)" in str(box["error"])


def test_leftover_temporary_files_are_removed_by_the_next_writer(tmp_path: Path) -> None:
    state = tmp_path / "s.json"
    with _sim(state) as sim:
        sim.set_vlans("42")
    for pid in (4_000_000, 4_000_001):
        (tmp_path / f"s.json.tmp.{pid}").write_text("{half")
    (tmp_path / "s.json.tmp.notes").write_text("not ours")
    with _sim(state) as sim:
        sim.set_vlans("43")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json", "s.json.lock", "s.json.tmp.notes"]


def test_a_path_under_a_file_says_not_a_directory(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("x")
    with pytest.raises(EvlError) as caught, _sim(plain / "state.json") as sim:
        sim.get_vlans()
    assert caught.value.errno == errno.ENOTDIR


def test_a_board_is_known_by_its_content_not_its_file(tmp_path: Path) -> None:
    """Touching, rewriting or copying a board to a new inode keeps its state; editing it does not."""
    board = tmp_path / "board.toml"
    shutil.copy(boards.locate(None)[1], board)
    state = tmp_path / "s.json"
    with _sim(state, str(board)) as sim:
        sim.set_vlans("42")
    os.utime(board, (1, 1))
    board.write_bytes(board.read_bytes())
    moved = tmp_path / "copy.toml"
    shutil.copy(board, moved)
    os.replace(moved, board)  # a new inode, as a package reinstall makes
    with _sim(state, str(board)) as sim:
        assert sim.get_vlans() == "42"
    board.write_text(board.read_text() + "\n# edited\n")
    with _sim(state, str(board)) as sim:
        assert sim.get_vlans() == ""  # booted afresh


# -- names and ssh options ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, ok",
    [("eth0", True), ("eth0.42", True), ("a" * 15, True), ("a" * 16, False), ("", False), (".", False),
     ("..", False), ("eth0:1", False), ("a/b", False), ("a b", False), ("é" * 8, False), ("é" * 7, True),
     # The kernel's test is byte-wise with its ctype: U+00E0 is c3 a0, and 0xa0 is a space there;
     # 0x1c and U+2003 are no spaces for it.
     ("à", False), ("eth\x1c", True), ("e\u2003", True)],
)  # fmt: skip
def test_interface_names_follow_the_kernels_rules(name: str, ok: bool) -> None:
    assert (name_problem(name) is None) is ok


@pytest.mark.parametrize(
    "args, accept_new, refused",
    [
        (["-oStrictHostKeyChecking=no"], False, "StrictHostKeyChecking"),
        (["-o", "KnownHostsCommand=/bin/echo %K"], False, "KnownHostsCommand"),
        (["-o", "stricthostkeychecking no"], False, "StrictHostKeyChecking"),
        (["-oUserKnownHostsFile=/dev/null"], True, "UserKnownHostsFile"),
        (["-o", "HostKeyAlias=x"], True, "HostKeyAlias"),
        # Parsed as ssh does: bundled flags, a tab between key and value.
        (["-4oNoHostAuthenticationForLocalhost=yes"], False, "NoHostAuthenticationForLocalhost"),
        (["-o", "VerifyHostKeyDNS\tyes"], False, "VerifyHostKeyDNS"),
        (["-4CoUserKnownHostsFile=/dev/null"], True, "UserKnownHostsFile"),
        (["-p", "22", "-o", "HostKeyAlias x"], True, "HostKeyAlias"),
        (["-oUserKnownHostsFile=lab_known_hosts"], False, None),
        (["-l", "-oStrictHostKeyChecking=no"], False, None),  # that word is -l's argument, a user name
        (["-F", "lab.cfg", "-o", "ConnectTimeout=3"], True, None),
    ],
)
def test_no_ssh_argument_weakens_host_key_checking(args: list[str], accept_new: bool, refused: str | None) -> None:
    if refused is None:
        check_ssh_args(args, accept_new)
        return
    with pytest.raises(EvlError, match=refused):
        check_ssh_args(args, accept_new)


def test_host_key_trust_is_pinned_before_any_user_argument() -> None:
    from evl_net.transports.remote.client import Target, ssh_argv

    argv = ssh_argv(Target.parse("b"), Options(ssh_args=("-F", "lab.cfg")))
    user = argv.index("-F")
    for pinned in ("StrictHostKeyChecking=yes", "KnownHostsCommand=none", "NoHostAuthenticationForLocalhost=no",
                   "VerifyHostKeyDNS=no"):  # fmt: skip
        assert argv.index(pinned) < user, pinned  # ssh keeps the first value: a config file cannot change it


def test_ssh_arguments_are_checked_from_the_environment_too(sim_env: dict[str, str]) -> None:
    env = {**sim_env, "EVL_NET_SSH": "-o KnownHostsCommand=/bin/true"}
    env.pop("EVL_NET_TRANSPORT", None)
    proc = _run(["evl", "net", "--remote=board1", "-n"], env)
    assert proc.returncode == 1 and "KnownHostsCommand may not be set" in proc.stderr
    assert Options().connect_timeout == Options(ssh_args=("-o", "ConnectTimeout=x")).connect_timeout
    assert Options(ssh_args=("-o", "ConnectTimeout=3")).connect_timeout == 3.0


# -- state shapes and upgrades -------------------------------------------------------------------


def _stored(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.mark.parametrize(
    "edit, problem",
    [
        (lambda d: d.__setitem__("vlans", [0]), "vlans[0] is out of range"),
        (lambda d: d.__setitem__("vlans", [4095]), "vlans[0] is out of range"),
        (lambda d: d["board"]["interfaces"]["lo"].__setitem__("addresses", ["1.2.3.4/40"]), "addresses[0]"),
        (lambda d: d["board"]["interfaces"]["lo"].__setitem__("addresses", ["x"]), "addresses[0]"),
    ],
)
def test_a_hand_edited_state_the_kernel_could_not_have_is_corrupt(tmp_path: Path, edit, problem: str) -> None:
    state = tmp_path / "s.json"
    with _sim(state) as sim:
        sim.set_vlans("42")
        sim.set_mtu("eth2", 1400)  # a board that differs from its file's is stored in full
    data = _stored(state)
    edit(data)
    state.write_text(json.dumps(data))
    before = state.read_bytes()
    with pytest.raises(EvlError) as caught, _sim(state) as sim:
        sim.get_vlans()
    assert "is corrupt" in str(caught.value) and problem in str(caught.value)
    assert state.read_bytes() == before


def test_a_state_written_by_an_older_release_keeps_its_shipped_board(tmp_path: Path) -> None:
    """Older releases keyed a shipped board by its installed path and fingerprinted it by stat."""
    state = tmp_path / "s.json"
    with _sim(state) as sim:
        sim.enable_port("eth0.42", 0, 0)
        sim.set_vlans("42")
    data = _stored(state)
    path = os.path.abspath(boards.locate(None)[1])
    st = os.stat(path)
    data["key"] = path
    data.pop("stamp", None)
    data["board"]["fingerprint"] = f"{path}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
    state.write_text(json.dumps(data))
    with _sim(state) as sim:
        assert sim.get_vlans() == "42" and "eth0.42" in sim.load().ports
    assert _stored(state)["key"] == "manual"
    assert _stored(state)["board"]["fingerprint"].startswith("sha256:")


def test_a_board_edited_just_now_is_hashed_again_next_time(tmp_path: Path) -> None:
    board = tmp_path / "b.toml"
    board.write_text("")
    assert not boards.stamp_settled(str(board))  # modified within the clock's resolution
    os.utime(board, (1, 1))
    assert boards.stamp_settled(str(board))


# -- processes ------------------------------------------------------------------------------------


def test_an_external_command_that_cannot_run_is_one_line(tmp_path: Path, sim_env: dict[str, str]) -> None:
    bad = tmp_path / "evl-broken"
    bad.write_text("#!/nonexistent/interpreter\n")
    bad.chmod(0o755)
    proc = _run(["evl", "-P", str(tmp_path), "broken"], sim_env)
    assert (proc.returncode, proc.stderr) == (127, f"evl: cannot run {bad}: No such file or directory\n")


def test_the_agent_refuses_a_closed_stdout(sim_env: dict[str, str]) -> None:
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "evl"), "net-agent", "--stdio"],
        env=sim_env,
        input="{}\n",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        preexec_fn=lambda: os.close(1),
    )
    assert (proc.returncode, proc.stderr) == (
        1,
        "evl-net-agent: the standard output is closed: the agent answers on it\n",
    )
