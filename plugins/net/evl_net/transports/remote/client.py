"""The workstation side: one session with one board's agent, through the system ``ssh``.

The byte stream is ``ssh`` itself, so the user's ``~/.ssh/config``, agent,
certificates and known_hosts apply as for any other ssh use.  The command
line forces what must not be weakened and sets defaults that may be tuned::

    ssh -T -e none -o BatchMode=yes -o StrictHostKeyChecking=yes  (accept-new with --accept-new-host-key)
        -o ClearAllForwardings=yes -o ForwardAgent=no -o ForwardX11=no -o PermitLocalCommand=no
        -o RemoteCommand=none -o KnownHostsCommand=none -o NoHostAuthenticationForLocalhost=no
        -o VerifyHostKeyDNS=no -o UpdateHostKeys=no -o LogLevel=INFO
        [-o UserKnownHostsFile=FILE]  (--known-hosts FILE)
        [$EVL_NET_SSH] [--ssh ARGS]
        -o ConnectTimeout=10 -o ServerAliveInterval=5 -o ServerAliveCountMax=3
        [-p PORT] [-l USER] -- HOST evl net-agent --stdio

ssh keeps the first value it is given for an option: the forced options come
first, the user's extra arguments (``-F FILE``, ``-o ServerAliveInterval=1``,
...) next, so they override the tunable defaults but not host-key checking
or batch mode.  A configuration file can still set what ``-o`` does not
(``UserKnownHostsFile /dev/null``, ``HostKeyAlias``): before connecting,
``ssh -G`` prints the effective configuration for the same command line and
target, and a configuration that would weaken host-key checking is refused
(:func:`check_effective_config`).

Failures are classified into the fleet's vocabulary from ssh's exit status
(255: ssh's own failure; anything else: the agent's) and its stderr (at
``LogLevel=INFO`` at least, whatever a configuration file says), and from
the protocol: ``unreachable``, ``auth-refused``, ``hostkey-refused``,
``timeout``, ``lost``, ``incompatible`` and ``busy`` (the board's lock was
held by another session for the whole wait: nothing was done).  A
connection refused, reset or closed during the key exchange, before the
agent answered hello, is retried (``--retries``) after a jittered backoff.
A session that dies while a mutation is in flight is ``lost``: the
mutation may or may not have happened.
"""

from __future__ import annotations

import asyncio
import errno
import os
import random
import re
import shlex
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from evl_core.errors import EvlError, shown
from evl_net.errors import KernelError
from evl_net.transports.remote import protocol
from evl_net.transports.remote.protocol import ProtocolError

SSH_ENV = "EVL_NET_SSH"
AGENT_ENV = "EVL_NET_AGENT"
DEFAULT_AGENT = "evl net-agent --stdio"
DEFAULT_TIMEOUT = 10.0
DEFAULT_CONNECT_TIMEOUT = 10.0
KEEPALIVE_INTERVAL = 5
KEEPALIVE_COUNT = 3
STDERR_KEEP = 65536

#: Connection attempts after the first one, for failures before hello (--retries).
DEFAULT_RETRIES = 3
MAX_RETRIES = 10
#: Full-jitter exponential backoff between attempts: uniform(0, min(cap, base * 2**attempt)) seconds.
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 8.0

#: Per-board outcomes.
OK, CHANGED, FAILED = "ok", "changed", "failed"
UNREACHABLE, AUTH_REFUSED, HOSTKEY_REFUSED = "unreachable", "auth-refused", "hostkey-refused"
TIMEOUT, LOST, INCOMPATIBLE = "timeout", "lost", "incompatible"
#: The board answered, but another session kept its lock for the whole wait: nothing was done.
BUSY = "busy"
STATUSES = (OK, CHANGED, FAILED, INCOMPATIBLE, BUSY, UNREACHABLE, AUTH_REFUSED, HOSTKEY_REFUSED, TIMEOUT, LOST)
#: The board did not answer (as opposed to: it answered with an error, or was busy).
NO_ANSWER = frozenset({UNREACHABLE, AUTH_REFUSED, HOSTKEY_REFUSED, TIMEOUT, LOST})

#: Exit status of ``evl net`` for one board that did not answer, or was busy (the fleet's codes are in fleet.py).
EXIT_NO_ANSWER = 8
EXIT_BUSY = 16

#: DNS names have at most 253 characters; user@host:port a little more.
HOST_MAX = 253
TARGET_MAX = 320
_HOST_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.%-]*$")
_V6_RE = re.compile(r"^[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?$")
_USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Target:
    """``[user@]host[:port]`` (``[v6]:port`` for IPv6), as given on the command line."""

    label: str
    host: str
    user: str | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> Target:
        label = text.strip(" ")  # "a, b" in EVL_NET_REMOTE; any other white space is refused below
        if len(label) > TARGET_MAX:
            raise EvlError(f"invalid remote '{shown(text)}': longer than {TARGET_MAX} characters")
        rest = label
        user = None
        if "@" in rest:
            user, rest = rest.rsplit("@", 1)
            if not _USER_RE.fullmatch(user):
                raise EvlError(f"invalid remote '{shown(text)}': bad user name '{shown(user)}'")
        port_text = None
        if rest.startswith("["):
            end = rest.find("]")
            if end < 0:
                raise EvlError(f"invalid remote '{shown(text)}': unclosed '['")
            host, tail = rest[1:end], rest[end + 1 :]
            if tail:
                if not tail.startswith(":"):
                    raise EvlError(f"invalid remote '{shown(text)}': expected ':PORT' after ']'")
                port_text = tail[1:]
            if not _V6_RE.fullmatch(host):
                raise EvlError(f"invalid remote '{shown(text)}': bad IPv6 address '{shown(host)}'")
        elif rest.count(":") == 1:
            host, port_text = rest.split(":")
        else:
            host = rest
            if ":" in host and not _V6_RE.fullmatch(host):
                raise EvlError(f"invalid remote '{shown(text)}': bad host '{shown(host)}'")
        if len(host) > HOST_MAX:
            raise EvlError(f"invalid remote '{shown(text)}': a host name has at most {HOST_MAX} characters")
        if ":" not in host and not _HOST_RE.fullmatch(host):
            raise EvlError(f"invalid remote '{shown(text)}': bad host name '{shown(host)}'")
        port = None
        if port_text is not None:
            if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise EvlError(f"invalid remote '{shown(text)}': port must be 1..65535")
            port = int(port_text)
        return cls(label, host, user, port)


@dataclass(frozen=True)
class Options:
    """How to reach boards: ssh arguments, deadlines, retries."""

    accept_new_host_key: bool = False
    ssh_args: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    agent_command: str = DEFAULT_AGENT
    ssh: str = "ssh"
    client: str = "evl-tools"
    #: connection attempts after the first, for a connection refused, reset or cut during the key exchange
    retries: int = DEFAULT_RETRIES
    #: --known-hosts: the one known_hosts file of the run (an absolute path), forced before the user's arguments
    known_hosts: str | None = None
    #: ``ssh -G`` verdicts of this run, per distinct command line (None: the configuration is acceptable)
    config_checks: dict[tuple[str, ...], str | None] = field(default_factory=dict, compare=False, hash=False)
    #: the private directory of ssh's control sockets (connections shared between runs), None: no multiplexing
    mux_dir: str | None = None
    #: a digest of what ``ssh -G`` printed, per distinct command line: the name of its control socket
    config_digests: dict[tuple[str, ...], str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def connect_timeout(self) -> float:
        """ConnectTimeout as ssh will use it (a user's ``-o ConnectTimeout=N`` wins over ours)."""
        for key, value in ssh_options(self.ssh_args):
            if key == "connecttimeout" and value.isdigit():
                return float(value)
        return DEFAULT_CONNECT_TIMEOUT

    @classmethod
    def from_request(cls, request: Any, env: Mapping[str, str]) -> Options:
        from evl_net import __version__

        try:
            extra = shlex.split(env.get(SSH_ENV, "")) + shlex.split(getattr(request, "ssh", None) or "")
        except ValueError as exc:
            raise EvlError(f"invalid ssh arguments ({SSH_ENV} or --ssh): {exc}") from None
        known_hosts = parse_known_hosts(getattr(request, "known_hosts", None), request.accept_new_host_key)
        check_ssh_args(extra, request.accept_new_host_key, known_hosts is not None)
        timeout = DEFAULT_TIMEOUT
        text = getattr(request, "timeout", None)
        if text is not None:
            try:
                timeout = float(text)
            except ValueError:
                timeout = -1.0
            if not 0 < timeout <= 3600:
                raise EvlError(f"invalid timeout '{shown(str(text))}': expected seconds in (0, 3600]")
        ssh = shutil.which("ssh", path=env.get("PATH") or os.defpath)
        if ssh is None:
            raise EvlError("the remote transport needs the ssh client: install openssh-client")
        return cls(
            accept_new_host_key=request.accept_new_host_key,
            ssh_args=tuple(extra),
            timeout=timeout,
            agent_command=env.get(AGENT_ENV) or DEFAULT_AGENT,
            ssh=ssh,
            client=f"evl-tools {__version__}",
            retries=parse_retries(getattr(request, "retries", None)),
            known_hosts=known_hosts,
        )


def parse_retries(text: str | None) -> int:
    """``--retries N``: 0..MAX_RETRIES (default DEFAULT_RETRIES)."""
    if text is None:
        return DEFAULT_RETRIES
    if not text.isascii() or not text.isdigit() or not 0 <= int(text) <= MAX_RETRIES:
        raise EvlError(f"invalid number of retries '{shown(text)}': expected 0..{MAX_RETRIES}")
    return int(text)


def parse_known_hosts(path: str | None, accept_new_host_key: bool) -> str | None:
    """``--known-hosts FILE``: an existing regular file (with --accept-new-host-key, ssh may create it)."""
    import stat

    if path is None:
        return None
    if not path or not path.isprintable() or any(c in path for c in '"\\'):
        raise EvlError(f"invalid --known-hosts '{shown(path)}': expected a file name without quotes or backslashes")
    full = os.path.abspath(path)
    try:
        mode = os.stat(full).st_mode
    except FileNotFoundError:
        if not accept_new_host_key:
            raise EvlError(
                f"--known-hosts {shown(path)}: no such file (with --accept-new-host-key, ssh creates it)"
            ) from None
        if not os.path.isdir(os.path.dirname(full)):
            raise EvlError(f"--known-hosts {shown(path)}: its directory does not exist") from None
        return full
    except OSError as exc:
        raise EvlError(f"--known-hosts {shown(path)}", exc.errno) from None
    if not stat.S_ISREG(mode):
        raise EvlError(f"--known-hosts {shown(path)}: not a regular file")
    return full


#: ssh options that decide which host key is trusted, and what ssh says: no user option may set them.
HOST_KEY_OPTIONS = {
    name.lower(): name
    for name in (
        "StrictHostKeyChecking",
        "KnownHostsCommand",
        "NoHostAuthenticationForLocalhost",
        "VerifyHostKeyDNS",
        "UpdateHostKeys",
        "LogLevel",
    )
}
#: Where known keys are looked up: a lab's own file is fine, but with --accept-new-host-key an
#: empty or unrelated one would let a changed key pass as a new one.
KNOWN_HOSTS_OPTIONS = {name.lower(): name for name in ("UserKnownHostsFile", "GlobalKnownHostsFile", "HostKeyAlias")}
#: Known-hosts "files" that hold nothing: never acceptable (no key could ever be checked against them).
EMPTY_KNOWN_HOSTS = frozenset({"/dev/null", "none"})
#: ssh flags that take ssh's own messages away from its stderr (they are how a refusal is told apart).
QUIETING_FLAGS = {"q": "silences", "E": "sends elsewhere", "y": "sends to syslog"}


def _no_known_hosts(files: Sequence[str]) -> bool:
    """Whether a UserKnownHostsFile value names no file at all (``/dev/null``, ``none``): nothing can be
    known, and with ``accept-new`` every key, a changed one included, would pass as new.  The global file
    may be emptied (a lab's own known_hosts is the user's)."""
    return bool(files) and all(f.lower() in EMPTY_KNOWN_HOSTS for f in files)


#: ssh's flags that take no argument, and those that take one (ssh(1), OpenSSH 9): how it bundles them.
SSH_FLAGS = "46AaCfGgKkMNnqsTtVvXxYy"
SSH_FLAGS_WITH_ARGUMENT = "BbcDEeFIiJLlmOoPpQRSWw"


def ssh_flags(args: Sequence[str]) -> list[tuple[str, str | None]]:
    """Every flag among ssh arguments as ssh's getopt reads them: (letter, its argument or None).

    Flags bundle (``-4oKey=value``), an option's argument is the rest of the
    word or the next word; ``--`` ends the options (ssh reads options after
    the destination too: operands are skipped).
    """
    out: list[tuple[str, str | None]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            break
        if not arg.startswith("-") or arg == "-":
            continue
        j = 1
        while j < len(arg):
            flag = arg[j]
            if flag in SSH_FLAGS_WITH_ARGUMENT:
                value = arg[j + 1 :]
                if not value and i < len(args):
                    value, i = args[i], i + 1
                out.append((flag, value))
                break
            out.append((flag, None))
            j += 1
    return out


def ssh_options(args: Sequence[str]) -> list[tuple[str, str]]:
    """The ``-o`` options among ssh arguments as ssh reads them, keys lower-cased.

    A key ends at the first space, tab or ``=`` (see :func:`ssh_flags` for the flags).
    """
    out = []
    for flag, value in ssh_flags(args):
        if flag == "o" and value is not None:
            text = value.strip(" \t")
            cut = next((k for k, c in enumerate(text) if c in " \t="), len(text))
            out.append((text[:cut].lower(), text[cut:].lstrip(" \t=").strip()))
    return out


def _files(value: str) -> list[str]:
    """The file names of a known-hosts option's value (space separated, maybe quoted)."""
    try:
        return shlex.split(value)
    except ValueError:
        return value.split()


def check_ssh_args(args: Sequence[str], accept_new_host_key: bool, known_hosts: bool = False) -> None:
    """Refuse ssh arguments that would weaken host-key checking (the board's identity is not negotiable)."""
    where = f"invalid ssh arguments ({SSH_ENV} or --ssh)"
    for flag, _value in ssh_flags(args):
        if flag in QUIETING_FLAGS:
            raise EvlError(
                f"{where}: -{flag} may not be given: it {QUIETING_FLAGS[flag]} the messages that tell why a board "
                "was refused"
            )
    for key, value in ssh_options(args):
        if key in HOST_KEY_OPTIONS:
            raise EvlError(
                f"{where}: {HOST_KEY_OPTIONS[key]} may not be set: "
                "host-key checking is not negotiable (see --accept-new-host-key)"
            )
        if key == "userknownhostsfile" and _no_known_hosts(_files(value)):
            raise EvlError(f"{where}: UserKnownHostsFile may not be {shown(value)}: host keys could not be checked")
        if key == "userknownhostsfile" and known_hosts:
            raise EvlError(f"{where}: UserKnownHostsFile may not be set with --known-hosts, which sets it")
        if key in KNOWN_HOSTS_OPTIONS and accept_new_host_key:
            raise EvlError(
                f"{where}: {KNOWN_HOSTS_OPTIONS[key]} may not be set "
                "with --accept-new-host-key: a changed key could pass as a new one"
            )


#: How long a fleet's ssh connection stays open after its last session (ssh's ControlPersist), in seconds.
MUX_PERSIST_S = 60
#: The longest control socket path: ssh binds ``<path>.<16 random characters>`` first, in a sun_path of 108.
MUX_PATH_MAX = 90
MUX_DIR_ENV = "XDG_RUNTIME_DIR"
#: ssh's multiplexing options (lower case): a user who gives one decides about multiplexing
MUX_OPTIONS = frozenset({"controlmaster", "controlpath", "controlpersist"})


def mux_directory(env: Mapping[str, str]) -> str | None:
    """The private directory of a fleet's ssh control sockets, made if needed; None where there is none to trust.

    ``$XDG_RUNTIME_DIR/evl-ssh``, else ``$XDG_CACHE_HOME/evl-tools/ssh`` (``~/.cache``): a directory of
    the user's own, that nobody else may enter, in a parent that nobody else may
    rename it in.  A socket there is a logged-in connection to a board.
    """
    candidates = []
    runtime = env.get(MUX_DIR_ENV, "")
    if os.path.isabs(runtime):
        candidates.append(os.path.join(runtime, "evl-ssh"))
    from evl_core.files import cache_directory

    cache = cache_directory(env)
    if cache is not None:
        candidates.append(os.path.join(cache, "ssh"))
    for path in candidates:
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
        except OSError:
            continue
        if _private_directory(path):
            return path
    return None


def _private_directory(path: str) -> bool:
    import stat

    try:
        st, parent = os.lstat(path), os.lstat(os.path.dirname(path))
    except OSError:
        return False
    uid = os.geteuid()
    return (
        stat.S_ISDIR(st.st_mode)
        and st.st_uid == uid
        and not st.st_mode & 0o077
        and parent.st_uid in (uid, 0)
        and (not parent.st_mode & 0o022 or bool(parent.st_mode & stat.S_ISVTX))
    )


def mux_options(target: Target, opts: Options) -> list[str]:
    """ssh's options for sharing one connection to ``target`` between sessions and runs, or none.

    The socket is named by a digest of the whole configuration ``ssh -G``
    printed for the session (host, port, user, keys, known-hosts files,
    host-key checking...), so a connection made under one configuration never
    serves another.  A user's own ``ControlMaster``, ``ControlPath`` or
    ``ControlPersist`` (or ``-M``, ``-S``) in ``--ssh`` or ``EVL_NET_SSH``
    leaves multiplexing to them: ``-o ControlMaster=no`` turns it off.
    """
    if opts.mux_dir is None or any(key in MUX_OPTIONS for key, _ in ssh_options(opts.ssh_args)):
        return []
    if any(flag in ("M", "S") for flag, _ in ssh_flags(opts.ssh_args)):  # -M, -S ctl_path: the user's own
        return []
    digest = opts.config_digests.get(tuple(ssh_argv(target, opts, mux=False)))
    if digest is None:
        return []
    path = os.path.join(opts.mux_dir, digest)
    if len(path.encode("utf-8", "surrogateescape")) > MUX_PATH_MAX:
        return []
    quoted = '"' + path.replace("%", "%%") + '"'  # ssh expands %-tokens in ControlPath
    return ["-o", "ControlMaster=auto", "-o", f"ControlPath={quoted}", "-o", f"ControlPersist={MUX_PERSIST_S}"]


def ssh_argv(target: Target, opts: Options, mux: bool = True) -> list[str]:
    """The ssh command line of a session with ``target``; ``mux``: with the control socket options, if any."""
    checking = "accept-new" if opts.accept_new_host_key else "yes"
    argv = [
        opts.ssh,
        "-T",
        "-e",
        "none",
        "-o",
        "BatchMode=yes",
        "-o",
        f"StrictHostKeyChecking={checking}",
        "-o",
        "ClearAllForwardings=yes",
        "-o",
        "ForwardAgent=no",
        "-o",
        "ForwardX11=no",
        "-o",
        "PermitLocalCommand=no",
        "-o",
        "RemoteCommand=none",
        # Host-key trust is ours to set: ssh keeps the first value given, so a config file cannot change these
        # (an ssh older than 8.5 has no KnownHostsCommand, hence nothing to pin: it may ignore the name).
        "-o",
        "IgnoreUnknown=KnownHostsCommand",
        "-o",
        "KnownHostsCommand=none",
        "-o",
        "NoHostAuthenticationForLocalhost=no",
        "-o",
        "VerifyHostKeyDNS=no",
        "-o",
        "UpdateHostKeys=no",
        # The messages classify() reads (host key changed, permission denied, "Timeout, server not
        # responding") are logged at INFO or above: a configuration's LogLevel QUIET must not hide them.
        "-o",
        "LogLevel=INFO",
    ]
    if opts.known_hosts is not None:
        # quoted: a name with spaces is one file; %% for a literal % (ssh expands %-tokens there)
        argv += ["-o", 'UserKnownHostsFile="' + opts.known_hosts.replace("%", "%%") + '"']
    argv += [
        *opts.ssh_args,
        "-o",
        f"ConnectTimeout={int(DEFAULT_CONNECT_TIMEOUT)}",
        "-o",
        f"ServerAliveInterval={KEEPALIVE_INTERVAL}",
        "-o",
        f"ServerAliveCountMax={KEEPALIVE_COUNT}",
    ]
    if mux:
        argv += mux_options(target, opts)
    if target.port is not None:
        argv += ["-p", str(target.port)]
    if target.user is not None:
        argv += ["-l", target.user]
    return [*argv, "--", target.host, opts.agent_command]


#: What ``ssh -G`` must print for the options ssh_argv forces (a defence in depth: ssh keeps the first value).
FORCED_EFFECTIVE = {
    "batchmode": ("yes",),
    "updatehostkeys": ("false", "no"),
    "nohostauthenticationforlocalhost": ("no", "false"),
    "verifyhostkeydns": ("false", "no"),
    # INFO as forced; a user's -v (allowed) raises it to VERBOSE or DEBUG1..3
    "loglevel": ("INFO", "VERBOSE", "DEBUG", "DEBUG1", "DEBUG2", "DEBUG3"),
}


def effective_config_argv(argv: Sequence[str]) -> list[str]:
    """The ``ssh -G`` command line printing the configuration ``argv`` (an ssh_argv) would connect with."""
    return [argv[0], "-G", *argv[1:-1]]  # without the remote command: -G connects nowhere


def check_effective_config(output: str, target: Target, opts: Options) -> str | None:
    """Why the configuration ``ssh -G`` printed weakens host-key checking, or None if it does not."""
    settings: dict[str, str] = {}
    for line in output.splitlines():
        key, _, value = line.partition(" ")
        settings.setdefault(key.lower(), value.strip())
    where = f"the ssh configuration for {shown(target.host)}"
    if "stricthostkeychecking" not in settings or "userknownhostsfile" not in settings:
        return f"cannot check {where}: 'ssh -G' printed no configuration (an OpenSSH of 6.8 or later is needed)"
    if _no_known_hosts(settings.get("userknownhostsfile", "").split()):
        return f"{where} sets UserKnownHostsFile {settings['userknownhostsfile']}: host keys could not be checked"
    checking = ("accept-new",) if opts.accept_new_host_key else ("true", "yes")
    forced = dict(FORCED_EFFECTIVE, stricthostkeychecking=checking)
    for key, allowed in forced.items():
        got = settings.get(key)
        if got is not None and got not in allowed:
            option = HOST_KEY_OPTIONS.get(key, "BatchMode")
            return f"{where} sets {option} {shown(got)}, not {allowed[0]}: host keys could not be checked as required"
    if "knownhostscommand" in settings:
        return f"{where} sets KnownHostsCommand: host keys could not be checked as required"
    if opts.accept_new_host_key and "hostkeyalias" in settings:
        return (
            f"{where} sets HostKeyAlias {shown(settings['hostkeyalias'])}: with --accept-new-host-key, "
            "a changed key could pass as a new one"
        )
    return None


async def check_config(target: Target, opts: Options) -> None:
    """Run ``ssh -G`` for the session's command line (once per distinct one in a run); EvlError if refused."""
    argv = ssh_argv(target, opts, mux=False)
    key = tuple(argv)
    if key not in opts.config_checks:
        problem, output = await _run_config_check(effective_config_argv(argv), target, opts)
        opts.config_checks[key] = problem
        if output is not None:
            opts.config_digests[key] = _connection_digest(output)
    problem = opts.config_checks[key]
    if problem is not None:
        raise EvlError(problem)


def _connection_digest(output: str) -> str:
    """The name of the control socket for a configuration ``ssh -G`` printed as ``output``.

    The known-hosts files' status is part of it: a connection made while a key
    was trusted never serves a run after that trust was changed (a key removed
    or replaced in known_hosts); that run logs in afresh and checks the key.
    """
    import hashlib

    digest = hashlib.sha256(output.encode("utf-8", "surrogateescape"))
    for line in output.splitlines():
        key, _, value = line.partition(" ")
        if key.lower() in ("userknownhostsfile", "globalknownhostsfile"):
            for name in value.split():
                try:
                    st = os.stat(os.path.expanduser(name))
                    status = f"{name} {st.st_dev} {st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}"
                except OSError:
                    status = f"{name} -"
                digest.update(b"\0" + status.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:16]


async def _run_config_check(argv: Sequence[str], target: Target, opts: Options) -> tuple[str | None, str | None]:
    """(why the configuration is refused or None, what ``ssh -G`` printed or None)."""
    problem, output = await _config_output(argv, target, opts)
    if problem is not None or output is None:
        return problem, None
    return check_effective_config(output, target, opts), output


async def _config_output(argv: Sequence[str], target: Target, opts: Options) -> tuple[str | None, str | None]:
    where = f"the ssh configuration for {shown(target.host)}"
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        return f"cannot check {where}: cannot run {opts.ssh}: {exc.strerror}", None
    try:
        out, err = await asyncio.wait_for(proc.communicate(), opts.connect_timeout + opts.timeout)
    except TimeoutError:
        try:
            proc.kill()
        except ProcessLookupError:
            pass
        await proc.wait()
        return f"cannot check {where}: 'ssh -G' did not answer", None
    if proc.returncode != 0:
        text = _without_debug(err.decode("utf-8", "replace"))
        if "option -- g" in text.lower() or "usage: ssh" in text.lower():
            return f"cannot check {where}: this ssh has no -G (an OpenSSH of 6.8 or later is needed)", None
        last = _last_line(text)
        failed = f"cannot check {where}: 'ssh -G' failed"
        return failed + (f": {last}" if last else f" with status {proc.returncode}"), None
    return None, out.decode("utf-8", "replace")


class SessionError(EvlError):
    """The session with a board failed: ``status`` says how (see STATUSES).

    ``retryable``: ssh failed before hello in a way another attempt may not (a connection refused,
    reset or cut during the key exchange).
    """

    def __init__(self, board: str, status: str, reason: str, retryable: bool = False) -> None:
        code = EXIT_NO_ANSWER if status in NO_ANSWER else EXIT_BUSY if status == BUSY else 1
        super().__init__(f"{board}: {status}: {reason}", exit_code=code)
        self.board = board
        self.status = status
        self.reason = reason
        self.retryable = retryable


_SSH_PATTERNS = (
    (
        HOSTKEY_REFUSED,
        (
            "host key verification failed",
            "remote host identification has changed",
            "host key for",
            "no matching host key",
            "offending",
            "host key is known",
        ),
    ),
    (
        AUTH_REFUSED,
        (
            "permission denied",
            "too many authentication failures",
            "no supported authentication",
            "authentication failed",
        ),
    ),
    (TIMEOUT, ("timed out", "not responding")),
    (
        UNREACHABLE,
        (
            "connection refused",
            "no route to host",
            "network is unreachable",
            "could not resolve",
            "name or service not known",
            "temporary failure in name resolution",
            "host is down",
            "connection closed by",
            "connection reset",
            "kex_exchange_identification",
            "broken pipe",
        ),
    ),
)


#: ssh's failures before hello that another attempt may not meet (a board rebooting, sshd restarting,
#: MaxStartups): refused, reset, or closed during the key exchange (before authentication).
_RETRYABLE = re.compile(
    r"connection refused|connection reset|kex_exchange_identification|connection closed by \S+ port \d+",
    re.IGNORECASE,
)
_DEBUG_RE = re.compile(r"^debug[1-3]?: ")


def _without_debug(stderr: str) -> str:
    """ssh's stderr without its ``debug1:``..``debug3:`` lines (a user's ``-v`` is allowed)."""
    return "".join(ln for ln in stderr.splitlines(keepends=True) if not _DEBUG_RE.match(ln.lstrip()))


def _last_line(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not set(ln.strip()) <= {"@"}]
    return lines[-1] if lines else ""


def retryable(returncode: int | None, stderr: str, established: bool) -> bool:
    """Whether an ssh that ended before hello failed in a way worth another attempt (never after hello)."""
    if established or returncode != 255:
        return False
    status, _reason = classify(returncode, stderr, established)
    return status == UNREACHABLE and _RETRYABLE.search(_without_debug(stderr)) is not None


def classify(returncode: int | None, stderr: str, established: bool) -> tuple[str, str]:
    """(status, reason) for an ssh that ended; ``established``: the agent had answered hello.

    The exit status decides first: 255 is ssh's own failure (read from its
    messages), anything else the agent's.  ssh's debug lines are ignored.
    """
    stderr = _without_debug(stderr)
    last = _last_line(stderr)
    if returncode == 255:  # ssh's own failures (and a remote command killed by a signal)
        text = stderr.lower()
        for status, needles in _SSH_PATTERNS:
            if any(n in text for n in needles):
                if established and status != TIMEOUT:
                    break
                if status == HOSTKEY_REFUSED:
                    if "has changed" in text:
                        reason = (
                            "the board's host key has CHANGED: it differs from the one in known_hosts "
                            "(a reinstalled board, or someone impersonating it); check before trusting it"
                        )
                    else:
                        reason = (
                            "the board's host key is not known: add it to known_hosts, "
                            "or trust it on first use with --accept-new-host-key"
                        )
                    return status, f"{reason} ({last})" if last else reason
                return status, last or status
        if established:
            return LOST, f"connection lost: {last}" if last else "connection lost"
        return UNREACHABLE, last or "ssh failed"
    if established:
        return LOST, f"connection lost (the agent exited with status {returncode}){': ' + last if last else ''}"
    what = f"ssh exited with status {returncode}"
    return INCOMPATIBLE, (
        f"the board did not start the agent ({what}): {last}"
        if last
        else f"the board's agent closed the session before hello ({what})"
    )


def backoff(attempt: int) -> float:
    """Seconds before attempt ``attempt + 1``: full jitter, uniform(0, min(cap, base * 2**attempt))."""
    return random.uniform(0.0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt))  # noqa: S311 -- jitter, not a secret


@dataclass
class _Pending:
    op: str
    future: asyncio.Future[protocol.Reply]


@dataclass
class Session:
    """One ssh process running one agent; requests may be pipelined."""

    target: Target
    opts: Options
    hello: dict[str, Any] | None = None
    proc: Any = None
    failure: SessionError | None = None
    _pending: dict[int, _Pending] = field(default_factory=dict)
    _next_id: int = 1
    _stderr: bytearray = field(default_factory=bytearray)
    _tasks: list[Any] = field(default_factory=list)
    _closing: bool = False

    @property
    def label(self) -> str:
        return self.target.label

    # -- lifecycle ------------------------------------------------------------------

    async def open(self) -> dict[str, Any]:
        """Check ssh's configuration, start ssh, say hello; SessionError if the board cannot be used.

        A connection refused, reset or closed during the key exchange (before
        hello: nothing was asked of the board) is tried again, ``opts.retries``
        times at most, after a full-jitter exponential backoff.
        """
        await check_config(self.target, self.opts)
        attempt = 0
        while True:
            try:
                return await self._open_once()
            except SessionError as exc:
                if not exc.retryable or attempt >= self.opts.retries:
                    raise
            await self.close()
            await asyncio.sleep(backoff(attempt))
            attempt += 1
            self._reset()

    def _reset(self) -> None:
        """Forget a failed attempt (before hello: no request of the caller's was in flight)."""
        self.proc, self.failure, self.hello = None, None, None
        self._pending, self._stderr, self._tasks, self._closing = {}, bytearray(), [], False

    async def _open_once(self) -> dict[str, Any]:
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *ssh_argv(self.target, self.opts),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                limit=protocol.MAX_FRAME + 2,
            )
        except OSError as exc:
            raise SessionError(self.label, UNREACHABLE, f"cannot run {self.opts.ssh}: {exc.strerror}") from None
        self._tasks = [asyncio.ensure_future(self._read_replies()), asyncio.ensure_future(self._read_stderr())]
        deadline = self.opts.connect_timeout + self.opts.timeout
        hello = protocol.hello_args(self.opts.client, lock_wait=protocol.client_lock_wait(self.opts.timeout))
        reply = await self._request("hello", hello, deadline)
        if not reply.ok:  # no common protocol version, or a hello the agent could not take
            await self.close()
            msg = (reply.error or {}).get("msg")
            raise self._failed(SessionError(self.label, INCOMPATIBLE, f"the agent refused hello: {msg}"))
        try:
            self.hello = protocol.check_hello(reply.result or {})
        except ProtocolError as exc:
            await self.close()
            raise self._failed(SessionError(self.label, INCOMPATIBLE, exc.msg)) from None
        return self.hello

    async def close(self) -> None:
        """End of input for the agent (it exits 0); then make sure ssh is gone."""
        self._closing = True
        proc = self.proc
        if proc is None:
            return
        try:
            if proc.stdin and not proc.stdin.is_closing():
                proc.stdin.close()
        except (OSError, RuntimeError):
            pass
        try:
            await asyncio.wait_for(proc.wait(), 2.0)
        except TimeoutError:
            self._kill()
            await proc.wait()
        for task in self._tasks:
            if not task.done():
                try:
                    await asyncio.wait_for(task, 0.2)
                except (TimeoutError, asyncio.CancelledError):
                    pass
                task.cancel()
        self._fail_pending(SessionError(self.label, LOST, "session closed"))
        transport = getattr(proc, "_transport", None)  # asyncio.subprocess.Process has no public close()
        if transport is not None:
            transport.close()

    def _kill(self) -> None:
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass

    # -- requests ---------------------------------------------------------------------

    async def call(self, op: str, args: Mapping[str, Any], timeout: float | None = None) -> protocol.Reply:
        """One request; its reply (ok or not).  SessionError when the session fails."""
        if self.failure is not None:
            raise self.failure
        if self.hello is not None and op not in self.hello["caps"]:
            raise KernelError(errno.EOPNOTSUPP, f"the board's agent does not offer '{op}'")
        return await self._request(op, args, self.opts.timeout if timeout is None else timeout)

    async def _request(self, op: str, args: Mapping[str, Any], timeout: float) -> protocol.Reply:
        rid = self._next_id
        self._next_id += 1
        future: asyncio.Future[protocol.Reply] = asyncio.get_running_loop().create_future()
        self._pending[rid] = _Pending(op, future)
        try:
            return await asyncio.wait_for(self._exchange(protocol.request_frame(rid, op, args), future), timeout)
        except TimeoutError:
            mutation = protocol.is_mutation(op)
            status = LOST if mutation else TIMEOUT
            reason = f"no reply to {op} within {timeout:g} s"
            if op == "hello":
                reason = f"no answer within {timeout:g} s (connection, authentication and agent start-up)"
            if mutation:
                reason += ": state unknown, re-query"
            failure = self._failed(SessionError(self.label, status, reason))
            self._fail_pending(failure)
            self._kill()
            raise failure from None
        finally:
            self._pending.pop(rid, None)

    async def _exchange(self, frame: bytes, future: asyncio.Future[protocol.Reply]) -> protocol.Reply:
        try:
            self.proc.stdin.write(frame)
            await self.proc.stdin.drain()
        except (OSError, RuntimeError):
            pass  # ssh is gone: the reply reader tells why
        return await asyncio.shield(future)

    def _failed(self, failure: SessionError) -> SessionError:
        if self.failure is None:
            self.failure = failure
        return failure

    def _fail_pending(self, failure: SessionError) -> None:
        for pending in list(self._pending.values()):
            if pending.future.done():
                continue
            error = failure
            if protocol.is_mutation(pending.op) and "state unknown" not in failure.reason:
                error = SessionError(self.label, LOST, f"{failure.reason} during {pending.op}: state unknown, re-query")
            pending.future.set_exception(error)
            pending.future.exception()  # retrieved here: no "never retrieved" warning
        self._pending.clear()

    # -- readers -------------------------------------------------------------------------

    async def _read_replies(self) -> None:
        reader = self.proc.stdout
        violation: str | None = None
        while True:
            try:
                line = await reader.readline()
            except (ValueError, asyncio.LimitOverrunError):
                violation = f"a reply exceeds {protocol.MAX_FRAME} bytes"
                break
            except (ConnectionError, OSError):
                break
            if not line.endswith(b"\n"):
                break  # EOF (a torn last line counts as nothing)
            try:
                reply = protocol.parse_reply(line[:-1])
            except ProtocolError as exc:
                violation = f"malformed reply: {exc.msg}"
                break
            pending = self._pending.get(reply.id) if reply.id is not None else None
            if pending is None:
                if reply.id is None and reply.error:
                    violation = f"the agent refused the session: {reply.error.get('msg')}"
                else:
                    violation = f"reply to unknown request id {reply.id!r}"
                break
            if not pending.future.done():
                pending.future.set_result(reply)
        if violation is not None:
            self._kill()
        await self._ended(violation)

    async def _read_stderr(self) -> None:
        while True:
            try:
                chunk = await self.proc.stderr.read(4096)
            except (ConnectionError, OSError):
                return
            if not chunk:
                return
            self._stderr += chunk
            if len(self._stderr) > STDERR_KEEP:
                del self._stderr[:-STDERR_KEEP]

    async def _ended(self, violation: str | None) -> None:
        """stdout closed: wait for ssh, classify, fail whatever was in flight."""
        try:
            await asyncio.wait_for(self.proc.wait(), 2.0)
        except TimeoutError:
            self._kill()
            await self.proc.wait()
        stderr_task = self._tasks[1] if len(self._tasks) > 1 else None
        if stderr_task is not None and not stderr_task.done():
            try:
                await asyncio.wait_for(asyncio.shield(stderr_task), 0.2)
            except TimeoutError:
                pass
        if violation is not None:
            status = INCOMPATIBLE if self.hello is None else LOST
            failure = SessionError(self.label, status, f"protocol violation: {violation}")
        elif self._closing and not self._pending:
            return
        else:
            returncode, stderr, established = self.proc.returncode, self.stderr_text, self.hello is not None
            status, reason = classify(returncode, stderr, established)
            failure = SessionError(self.label, status, reason, retryable(returncode, stderr, established))
        self._fail_pending(self._failed(failure))

    @property
    def stderr_text(self) -> str:
        return self._stderr.decode("utf-8", "replace")

    @property
    def ssh_warnings(self) -> list[str]:
        """Lines of ssh's stderr worth showing even on success (a host key added to known_hosts)."""
        return [ln.strip() for ln in self.stderr_text.splitlines() if ln.startswith("Warning: Permanently added")]


def raise_for(reply: protocol.Reply, board: str) -> dict[str, Any]:
    """The result of an ok reply; an OSError / EvlError as local use would raise for an error reply."""
    if reply.ok:
        return reply.result or {}
    error = reply.error or {}
    code, num, msg, detail = error.get("code"), error.get("errno"), error.get("msg") or "", error.get("detail")
    if code == protocol.LOCKED:
        said = msg or "another session kept the board busy"
        if "nothing was done" not in said:
            said += ": nothing was done"
        raise SessionError(board, BUSY, said)
    if code == protocol.EVLERROR:
        raise EvlError(msg, num)
    if num is None:
        raise SessionError(board, INCOMPATIBLE, f"the agent answered {code}: {msg}")
    text = os.strerror(num)
    raise KernelError(num, detail or (msg if msg and msg != text else None), error.get("stage"))
