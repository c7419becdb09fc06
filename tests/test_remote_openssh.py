"""``evl net --remote`` against a real OpenSSH sshd on 127.0.0.1, set up as the README says.

The board is ``/usr/sbin/sshd`` (tests/openssh_lab.py) with the stock
``MaxStartups 10:30:100`` and ``ExposeAuthInfo yes``; each workstation key has
the README's forced command, ``restrict,command="<python> -m evl_core net-agent
--stdio --transport=sim --log=FILE"``.  The workstation is the system ``ssh``
driven by ``evl net`` in a fresh process.  Oracles: sshd's own log (logins
accepted), ``ssh-keygen -lf`` (key fingerprints), the simulator's state file
(byte for byte), ``/proc`` (the agent's environment and peak RSS).

``EVL_OPENSSH_LAB_PYTHON=/other/venv/bin/python`` runs the same tests with other
code on both sides; ``EVL_OPENSSH_LAB_AGENT_LOG=stderr`` gives the agents that
``--log`` instead of a file (for code without ``--log=FILE``).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from openssh_lab import Key, OpensshLab, free_ports

BOARDS = 64
FLOOD_LINE = 4_000_000  # under the 4 MiB frame cap: the agent has to take each line whole
RSS_CAP_KIB = 64 * 1024


def audit_arg(path: pathlib.Path) -> str:
    return f"--log={os.environ.get('EVL_OPENSSH_LAB_AGENT_LOG') or path}"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpensshLab]:
    lab = OpensshLab(tmp_path_factory.mktemp("openssh") / "lab", ports=2)
    root = lab.root
    lab.add_key("admin", audit_arg(root / "audit-admin.log"))
    lab.add_key("ro", "--read-only " + audit_arg(root / "audit-ro.log"))
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def board(lab: OpensshLab) -> OpensshLab:
    """The lab with its board booted afresh (the simulator's state file removed)."""
    lab.state.unlink(missing_ok=True)
    return lab


def admin(lab: OpensshLab, **kw: Any) -> tuple[Key, pathlib.Path]:
    key = lab.keys["admin"]
    return key, lab.client_config("admin", key, **kw)


def audit_lines(lab: OpensshLab, name: str) -> list[str]:
    path = lab.root / f"audit-{name}.log"
    return path.read_text(errors="replace").splitlines() if path.exists() else []


def one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, f"expected one line, got: {text!r}"
    return lines[0]


# -- 1. the forced command as the README gives it ---------------------------------------------------


def test_remote_commands_match_local_ones_on_the_same_state(board: OpensshLab, tmp_path: pathlib.Path) -> None:
    _, config = admin(board)
    remote = f"--remote={board.target()}"
    query = ("-Q", "-i", "eth0.42")
    first = board.evl(remote, *query, config=config)
    assert first.code == 0, first.err
    assert first.out == board.local(*query).out and "oob capability" in first.out
    for change in (("-e", "-i", "eth0.42"), ("-d", "-i", "eth0.42")):
        copy = tmp_path / f"state{change[0]}.json"
        shutil.copyfile(board.state, copy)  # the local run does the same change on a copy of the same state
        got = board.evl(remote, *change, config=config)
        want = board.local(*change, state=copy)
        assert (got.code, got.out, got.err) == (want.code, want.out, want.err)
        assert got.code == 0
        after = board.evl(remote, *query, config=config)
        assert after.code == 0 and after.out == board.local(*query).out == board.local(*query, state=copy).out
    enabled = board.evl(remote, "-e", "-i", "eth0.42", config=config)
    assert enabled.code == 0
    assert board.evl(remote, *query, config=config).out != first.out  # a real change, seen remotely


def test_another_command_still_runs_only_the_agent(lab: OpensshLab) -> None:
    _, config = admin(lab)
    logins = lab.logins()
    run = subprocess.run(
        lab.ssh_argv(config, "root@127.0.0.1", "ls", "/"),
        input=b"ls /\n",
        capture_output=True,
        timeout=30,
        env=lab.env(),
    )
    lines = run.stdout.decode().splitlines()
    assert lines, run.stderr
    for line in lines:  # the agent's protocol errors, nothing of ls
        reply = json.loads(line)
        assert reply["ok"] is False and reply["error"]["code"].startswith("E"), reply
    assert not {"bin", "etc", "usr", "proc"} & set(run.stdout.decode().split())
    assert lab.logins() == logins + 1
    assert "Starting session: forced-command (key-option)" in lab.log.read_text()


def test_restrict_refuses_pty_and_forwarding(lab: OpensshLab, tmp_path: pathlib.Path) -> None:
    _, config = admin(lab)
    pty = subprocess.run(
        lab.ssh_argv(config, "-tt", "root@127.0.0.1"), input=b"", capture_output=True, timeout=30, env=lab.env()
    )
    assert "PTY allocation request failed" in pty.stderr.decode(), pty.stderr

    remote_fwd = subprocess.run(
        lab.ssh_argv(config, "-N", "-o", "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:9", "root@127.0.0.1"),
        capture_output=True,
        timeout=30,
        env=lab.env(),
    )
    assert remote_fwd.returncode == 255 and "remote port forwarding failed" in remote_fwd.stderr.decode()

    (local_port,) = free_ports(1)
    forward = subprocess.Popen(
        lab.ssh_argv(config, "-N", "-L", f"127.0.0.1:{local_port}:127.0.0.1:{lab.ports[0]}", "root@127.0.0.1"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=lab.env(),
    )
    try:
        data = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", local_port), timeout=5) as s:
                    s.settimeout(5)
                    data = s.recv(100)  # an sshd banner would come through an open tunnel
                break
            except ConnectionRefusedError:
                time.sleep(0.1)  # ssh not listening yet
            except OSError:
                break
        assert not data.startswith(b"SSH-"), data
    finally:
        forward.send_signal(signal.SIGTERM)
        _, err = forward.communicate(timeout=10)
    assert "administratively prohibited" in err.decode(), err

    # Agent forwarding: asked for, with an ssh-agent running; the agent's environment has no SSH_AUTH_SOCK,
    # while a key without restrict (the control) gets one.
    control = lab.keys.get("unrestricted") or lab.add_key("unrestricted", "--log=none", options="")
    sock = tmp_path / "agent.sock"
    ssh_agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        restricted = agent_environ(lab, config, "-A", "-o", f"IdentityAgent={sock}")
        unrestricted = agent_environ(
            lab, lab.client_config("unrestricted", control), "-A", "-o", f"IdentityAgent={sock}"
        )
    finally:
        ssh_agent.terminate()
        ssh_agent.wait(5)
    for environ in (restricted, unrestricted):
        assert environ["EVL_SIM_STATE"] == str(lab.state)  # sshd's SetEnv reached it: this is the agent
        assert "SSH_USER_AUTH" in environ
    assert "SSH_AUTH_SOCK" in unrestricted  # forwarding was asked for
    assert "SSH_AUTH_SOCK" not in restricted


def agent_environ(lab: OpensshLab, config: pathlib.Path, *ssh_args: str) -> dict[str, str]:
    """The environment of the agent sshd started for a session opened with ``ssh_args``."""
    before = set(lab.agent_pids())
    session = lab.raw(config, *ssh_args)
    try:
        session.hello()
        (pid,) = set(lab.agent_pids()) - before
        text = pathlib.Path(f"/proc/{pid}/environ").read_text(errors="replace")
    finally:
        session.close()
    return dict(item.split("=", 1) for item in text.split("\0") if "=" in item)


# -- 2. a read-only key ---------------------------------------------------------------------------


def test_read_only_key_reads_and_is_refused_every_change(board: OpensshLab) -> None:
    key = board.keys["ro"]
    config = board.client_config("ro", key)
    remote = f"--remote={board.target()}"
    query = board.evl(remote, "-Q", "-i", "eth0.42", config=config)
    assert query.code == 0, query.err
    assert query.out == board.local("-Q", "-i", "eth0.42").out
    before = board.state.read_bytes()
    audit = len(audit_lines(board, "ro"))

    refused = board.evl(remote, "-e", "-i", "eth0.42", config=config)
    assert refused.code == 1
    line = one_line(refused.err)
    assert "not permitted" in line.lower(), line
    assert board.state.read_bytes() == before

    new = audit_lines(board, "ro")[audit:]
    denied = [ln for ln in new if re.search(r"\bresult=\S*\bEPERM\b", ln)]
    assert denied, new
    assert "op=port.enable" in denied[0], denied
    assert f"key={key.fingerprint}" in denied[0], (key.fingerprint, denied)
    assert "session=" in denied[0] and "ms=" in denied[0]
    # the key that may change things has another fingerprint: the audit tells them apart
    assert board.keys["admin"].fingerprint not in "\n".join(new)


def test_read_only_key_may_not_hold_the_lock_and_hello_says_what_it_may_do(lab: OpensshLab) -> None:
    session = lab.raw(lab.client_config("ro", lab.keys["ro"]))
    try:
        hello = session.hello()
        lock = session.call("board.lock", {"hold": 1})
        change = session.call("vlans.set", {"text": "42"})
        read = session.call("vlans.get", {})
    finally:
        session.close()
    assert "board.lock" not in hello["allowed"] and "vlans.set" not in hello["allowed"], hello["allowed"]
    assert {"stat.get", "vlans.get", "interfaces"} <= set(hello["allowed"])
    for refused in (lock, change):
        assert refused["ok"] is False and (refused["error"]["code"], refused["error"]["errno"]) == ("EPERM", 1)
    assert read["ok"] is True


def test_allow_list_key(lab: OpensshLab) -> None:
    key = lab.keys.get("allow") or lab.add_key("allow", "--allow=stat.get,interfaces --log=none")
    config = lab.client_config("allow", key)
    query = lab.evl(f"--remote={lab.target()}", "-Q", "-i", "eth0.42", config=config)
    assert query.code == 0, query.err
    vlans = lab.evl(f"--remote={lab.target()}", "-n", config=config)  # vlans.get is not on the list
    assert vlans.code == 1 and "not permitted" in one_line(vlans.err).lower(), vlans.err


def test_unusable_log_sink_is_said_at_start(lab: OpensshLab) -> None:
    key = lab.keys.get("badlog") or lab.add_key("badlog", "--log=/nonexistent/dir/audit.log")
    run = subprocess.run(
        lab.ssh_argv(lab.client_config("badlog", key), "-T", "root@127.0.0.1"),
        input=b'{"id":0,"op":"hello","args":{"proto":[2,2],"client":"t"}}\n',
        capture_output=True,
        timeout=30,
        env=lab.env(),
    )
    assert json.loads(run.stdout.splitlines()[0])["ok"] is True  # the agent still serves
    err = run.stderr.decode(errors="replace")
    assert "warning" in err and "/nonexistent/dir/audit.log" in err, err


# -- 3. a fleet of 64 behind one stock sshd -----------------------------------------------------------------


def fleet(lab: OpensshLab, tmp_path: pathlib.Path, *args: str) -> tuple[dict[str, str], Any]:
    _, config = admin(lab)
    hosts = tmp_path / "hosts"
    hosts.write_text("".join(f"{lab.alias(i)}\n" for i in range(BOARDS)))
    run = lab.evl(f"--hosts={hosts}", "--jobs=64", "-Q", "-i", "eth0.42", "--json", *args, config=config, timeout=300)
    boards = json.loads(run.out) if run.out.strip() else []
    return {b["board"]: b["status"] for b in boards}, run


def test_64_sessions_at_once_with_stock_max_startups(
    lab: OpensshLab, tmp_path: pathlib.Path, record_property: Any
) -> None:
    statuses, run = fleet(lab, tmp_path)
    assert len(statuses) == BOARDS, run.err
    failed = {b: s for b, s in statuses.items() if s != "ok"}
    assert not failed, (failed, run.err[-2000:])
    assert run.code == 0

    statuses, run = fleet(lab, tmp_path, "--retries=0", "--ssh=-o ControlMaster=no")  # cold: no shared connections
    without = sum(1 for s in statuses.values() if s != "ok") if statuses else BOARDS
    record_property("boards_failed_without_retries", without)
    print(f"\n{without} of {BOARDS} boards failed with --retries=0 (exit {run.code})")


def mux_fleet(lab: OpensshLab, tmp_path: pathlib.Path, name: str, *args: str, **env: str) -> tuple[Any, Any]:
    key = lab.keys.get(name) or lab.add_key(name)
    config = lab.client_config(name, key)
    hosts = tmp_path / f"hosts-{name}"
    hosts.write_text("".join(f"{lab.alias(i)}\n" for i in (1, 2, 3)))
    logins = lab.logins()
    run = lab.evl(f"--hosts={hosts}", "-Q", "-i", "eth0.42", "--json", *args, config=config, **env)
    assert run.code == 0, run.err
    return sorted(b["board"] + ":" + b["status"] for b in json.loads(run.out)), lab.logins() - logins


def test_a_fleet_keeps_its_connections_between_runs(lab: OpensshLab, tmp_path: pathlib.Path) -> None:
    boards, logins = mux_fleet(lab, tmp_path, "mux")
    assert logins == 3 and all(b.endswith(":ok") for b in boards)
    control = lab.runtime / "evl-ssh"
    assert stat.S_IMODE(control.stat().st_mode) == 0o700
    sockets = [p for p in control.iterdir() if stat.S_ISSOCK(p.lstat().st_mode)]
    assert len(sockets) >= 3
    again, logins = mux_fleet(lab, tmp_path, "mux")
    assert (again, logins) == (boards, 0)  # the same answers, through the connections kept
    cold, logins = mux_fleet(lab, tmp_path, "mux", "--ssh=-o ControlMaster=no")
    assert (cold, logins) == (boards, 3)  # the user's ControlMaster=no comes first, so it wins


def test_a_changed_known_hosts_file_is_not_served_by_a_kept_connection(lab: OpensshLab, tmp_path: pathlib.Path) -> None:
    """Trust changed since the connection was made (the key replaced in known_hosts): log in afresh and refuse."""
    key = lab.keys.get("muxkh") or lab.add_key("muxkh")
    known = lab.write_known_hosts(tmp_path / "known_hosts")
    config = lab.client_config("muxkh", key, known_hosts=known)
    hosts = tmp_path / "hosts"
    hosts.write_text(f"{lab.alias(4)}\n{lab.alias(5)}\n")
    run = lab.evl(f"--hosts={hosts}", "-n", "--json", config=config)
    assert run.code == 0 and all(b["status"] == "ok" for b in json.loads(run.out)), run.err
    logins = lab.logins()
    lab.write_known_hosts(known, other=True)  # the board's key is no longer the trusted one
    run = lab.evl(f"--hosts={hosts}", "-n", "--json", config=config)
    assert [b["status"] for b in json.loads(run.out)] == ["hostkey-refused", "hostkey-refused"], run.out
    assert lab.logins() == logins


@pytest.mark.parametrize("problem", ["mode 0755", "symlink", "not a directory"])
def test_a_control_directory_that_is_not_private_is_not_used(
    lab: OpensshLab, tmp_path: pathlib.Path, problem: str
) -> None:
    runtime, home = tmp_path / "run", tmp_path / "home"
    runtime.mkdir(mode=0o700)
    (home / ".cache" / "evl-tools").mkdir(parents=True)
    for control in (runtime / "evl-ssh", home / ".cache" / "evl-tools" / "ssh"):
        if problem == "mode 0755":
            control.mkdir(mode=0o755)
            control.chmod(0o755)
        elif problem == "symlink":
            (tmp_path / f"elsewhere-{control.parent.name}").mkdir(mode=0o700)
            control.symlink_to(tmp_path / f"elsewhere-{control.parent.name}")
        else:
            control.write_text("")
    env = {"XDG_RUNTIME_DIR": str(runtime), "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}
    first, logins = mux_fleet(lab, tmp_path, "muxbad", **env)
    assert logins == 3 and all(b.endswith(":ok") for b in first)
    again, logins = mux_fleet(lab, tmp_path, "muxbad", **env)
    assert (again, logins) == (first, 3)  # nothing kept
    for where in tmp_path.rglob("*"):
        assert not stat.S_ISSOCK(where.lstat().st_mode), where


# -- 4. refused host keys and a frozen sshd, with LogLevel QUIET ----------------------------------------


def quiet_config(lab: OpensshLab, name: str, known_hosts: pathlib.Path) -> pathlib.Path:
    return lab.client_config(name, lab.keys["admin"], known_hosts, extra="LogLevel QUIET")


def test_changed_host_key_with_loglevel_quiet_is_hostkey_refused_changed(
    board: OpensshLab, tmp_path: pathlib.Path
) -> None:
    logins = board.logins()
    config = quiet_config(board, "quiet-changed", board.write_known_hosts(tmp_path / "changed_hosts", other=True))
    run = board.evl(f"--remote={board.target()}", "-Q", "-i", "eth0.42", config=config)
    assert run.code == 8, run.err
    line = one_line(run.err)
    assert f"{board.target()}: hostkey-refused:" in line and "CHANGED" in line, line
    assert board.logins() == logins  # refused before any login


def test_unknown_host_key_with_loglevel_quiet_is_hostkey_refused(board: OpensshLab, tmp_path: pathlib.Path) -> None:
    logins = board.logins()
    unknown = tmp_path / "empty_hosts"
    unknown.write_text("")
    run = board.evl(
        f"--remote={board.target()}", "-Q", "-i", "eth0.42", config=quiet_config(board, "quiet-unknown", unknown)
    )
    assert run.code == 8, run.err
    line = one_line(run.err)
    assert f"{board.target()}: hostkey-refused:" in line and "CHANGED" not in line, line
    assert board.logins() == logins


def test_frozen_sshd_with_loglevel_quiet_is_timeout(board: OpensshLab, tmp_path: pathlib.Path) -> None:
    frozen = OpensshLab(tmp_path / "frozen", ports=1)
    try:
        frozen.freeze()  # the kernel still accepts connections: the banner never comes
        config = quiet_config(board, "quiet-frozen", frozen.write_known_hosts(tmp_path / "frozen_hosts"))
        run = board.evl(
            f"--remote={frozen.target()}",
            "-Q",
            "-i",
            "eth0.42",
            "--timeout=2",
            "--ssh=-o ConnectTimeout=2",
            config=config,
        )
    finally:
        frozen.close()
    assert run.code == 8, run.err
    line = one_line(run.err)
    assert f"{frozen.target()}: timeout:" in line, line


def test_known_hosts_option_pins_the_file(board: OpensshLab, tmp_path: pathlib.Path) -> None:
    """--known-hosts wins over the config file's UserKnownHostsFile, both ways."""
    right, wrong = board.known_hosts, board.write_known_hosts(tmp_path / "wrong_hosts", other=True)
    query = (f"--remote={board.target()}", "-Q", "-i", "eth0.42")
    run = board.evl(
        *query, f"--known-hosts={right}", config=board.client_config("kh-wrong", board.keys["admin"], wrong)
    )
    assert run.code == 0, run.err
    logins = board.logins()
    run = board.evl(
        *query, f"--known-hosts={wrong}", config=board.client_config("kh-right", board.keys["admin"], right)
    )
    assert run.code == 8 and "hostkey-refused" in one_line(run.err) and "CHANGED" in run.err, run.err
    assert board.logins() == logins


# -- 5. host-key checking cannot be switched off ---------------------------------------------------------------


def _bypasses(lab: OpensshLab) -> list[tuple[str, list[str], str]]:
    """(name, evl arguments, extra lines of the -F file): each would connect if ssh honoured it."""
    real = f"[127.0.0.1]:{lab.ports[0]} {lab.host_pub()}"
    echo = f"/bin/echo {real}"
    return [
        ("-oKnownHostsCommand", [f"--ssh=-oKnownHostsCommand={shlex.quote(echo)}"], ""),
        ("-oUserKnownHostsFile=/dev/null", ["--ssh=-oUserKnownHostsFile=/dev/null", "--accept-new-host-key"], ""),
        ("-oHostKeyAlias", ["--ssh=-oHostKeyAlias=x", "--accept-new-host-key"], ""),
        ("KnownHostsCommand in -F", [], f"KnownHostsCommand {echo}"),
        ("UserKnownHostsFile /dev/null in -F", ["--accept-new-host-key"], "UserKnownHostsFile /dev/null"),
        ("HostKeyAlias in -F", ["--accept-new-host-key"], "HostKeyAlias x"),
        ("-oUpdateHostKeys=yes", ["--ssh=-oUpdateHostKeys=yes"], ""),
        ("-q", ["--ssh=-q"], ""),
        # ssh's log to a file (-E) or to syslog (-y): the messages that tell a changed key are gone as with -q
        ("-E FILE", [f"--ssh=-E {lab.root / 'ssh-E.log'}"], ""),
        ("-y", ["--ssh=-y"], ""),
    ]


BYPASS_NAMES = [
    "-oKnownHostsCommand",
    "-oUserKnownHostsFile=/dev/null",
    "-oHostKeyAlias",
    "KnownHostsCommand in -F",
    "UserKnownHostsFile /dev/null in -F",
    "HostKeyAlias in -F",
    "-oUpdateHostKeys=yes",
    "-q",
    "-E FILE",
    "-y",
]


@pytest.mark.parametrize("name", BYPASS_NAMES)
def test_host_key_checking_cannot_be_switched_off(board: OpensshLab, tmp_path: pathlib.Path, name: str) -> None:
    (attempt,) = [a for a in _bypasses(board) if a[0] == name]
    _, args, extra = attempt
    wrong = board.write_known_hosts(tmp_path / "wrong_hosts", other=True)
    # the extra lines come first: ssh keeps the first value a config file gives
    config = tmp_path / "bypass.cfg"
    base = board.client_config("bypass-base", board.keys["admin"], wrong).read_text()
    config.write_text(base.replace("Host *\n", "Host *\n" + (f"  {extra}\n" if extra else ""), 1))
    logins, audit = board.logins(), len(audit_lines(board, "admin"))
    agents = board.agent_pids()

    run = board.evl(f"--remote={board.target()}", "-Q", "-i", "eth0.42", *args, config=config)
    line = one_line(run.err)
    assert (run.code == 1 and "ssh" in line) or (run.code == 8 and "hostkey-refused" in line), (run.code, line)
    assert board.logins() == logins, "sshd accepted a login: the changed host key was trusted"
    assert len(audit_lines(board, "admin")) == audit
    assert board.agent_pids() == agents


# -- 6. a flood of 4 MB lines during a long request ------------------------------------------------------------


def peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def flood_during_solicit(
    lab: OpensshLab, config: pathlib.Path, seconds: float, line_size: int = FLOOD_LINE
) -> tuple[int, dict[str, Any], int]:
    """(agent's peak RSS in KiB, the solicitation's reply, blocks written) for a flood of ``seconds``.

    The long request: soliciting the manual board's silent peer, which the simulator
    answers after its solicit timeout (5 s).  Meanwhile a writer thread sends
    4 MB blocks of newline-terminated lines of garbage, ``line_size`` bytes each with
    the newline, in blocks of 4 MB (64 KiB for tiny lines); it finishes the block it is in, then stops.
    """
    before = set(lab.agent_pids())
    session = lab.raw(config)
    try:
        session.hello()
        (pid,) = set(lab.agent_pids()) - before
        enabled = session.call("port.enable", {"ifname": "eth1.42", "pool_size": 0, "buffer_size": 0})
        assert enabled["ok"], enabled  # the way to the silent peer must be an out-of-band port
        rid = session.request("solicit", {"host": "10.10.20.10", "ifname": None, "flags": 0})
        # tiny frames go in 64 KiB blocks: the agent pushes back on them as early as on big ones
        block = FLOOD_LINE if line_size == FLOOD_LINE else 65536
        line = (b"x" * (line_size - 1) + b"\n") * (block // line_size)
        sent = [0]
        stop = time.monotonic() + seconds
        assert session.proc.stdin is not None
        stdin = session.proc.stdin

        def write() -> None:
            try:
                while time.monotonic() < stop:
                    stdin.write(line)
                    sent[0] += 1
            except OSError:
                pass

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        reply = session.reply_to(rid, timeout=60)
        rss = peak_rss_kib(pid)
        if line_size < FLOOD_LINE:
            # millions of frames are still to be answered (errors): the peak while the request ran is the figure
            session.proc.kill()
            return rss, reply, sent[0]
        writer.join(60)
        assert not writer.is_alive(), "the flood's last line was never taken"
        # still serving: the garbage lines are answered with errors, then a request as usual
        assert session.call("vlans.get", {}, timeout=60)["ok"]
        rss = max(rss, peak_rss_kib(pid))
        return rss, reply, sent[0]
    finally:
        session.close()


@pytest.mark.parametrize("line_size", [FLOOD_LINE, 2, 1], ids=["4-MB-lines", "1-byte-frames", "empty-lines"])
def test_flood_during_a_long_request_stays_small(board: OpensshLab, line_size: int) -> None:
    """4 MB lines (the brief), and the same bytes as tiny frames, whose count a byte cap does not bound."""
    _, config = admin(board)
    rss, reply, sent = flood_during_solicit(board, config, 3.0, line_size)
    assert sent >= 1, "the flood did not start"
    # the long request was answered with the solicitation's own outcome (the peer is silent), not a cut
    assert reply["ok"] is False and reply["error"]["code"] == "ETIMEDOUT", reply
    assert "did not complete" not in reply["error"]["msg"], reply
    assert rss <= RSS_CAP_KIB, f"agent peak RSS {rss / 1024:.1f} MiB after {sent} blocks"


# -- 7. a board busy with another session's lock ------------------------------------------------------------


def test_busy_board_is_busy_not_lost(board: OpensshLab) -> None:
    _, config = admin(board)
    remote = f"--remote={board.target()}"
    assert board.evl(remote, "-Q", "-i", "eth0.42", config=config).code == 0  # the state file exists
    holder = board.raw(config)
    try:
        holder.hello()
        assert holder.call("board.lock", {"hold": 1})["ok"]
        before = board.state.read_bytes()
        run = board.evl(remote, "-e", "-i", "eth0.42", config=config)
        assert run.code == 16, (run.code, run.err)
        assert "busy" in one_line(run.err)
        assert run.seconds < 9, f"busy only after {run.seconds:.1f} s (the announced lock wait is 5 s)"
        assert board.state.read_bytes() == before

        # a fleet of two boards sharing that lock: both busy, the fleet's busy bit
        fleet = board.evl(remote, f"--remote={board.target(1)}", "-e", "-i", "eth0.42", "--json", config=config)
        assert fleet.code == 16, (fleet.code, fleet.err)
        assert sorted(b["status"] for b in json.loads(fleet.out)) == ["busy", "busy"]
        assert board.state.read_bytes() == before

        assert holder.call("board.lock", {"hold": 0})["ok"]
        done = board.evl(remote, "-e", "-i", "eth0.42", config=config)
        assert done.code == 0, done.err
        assert board.state.read_bytes() != before
    finally:
        holder.close()
