"""The agent's audit log: one line per request, and the session's events, to syslog, a file, stderr or nowhere.

Every line names the session (a random id), where it came from
(``SSH_CONNECTION``) and the key that opened it (its SHA256 fingerprint, as
``ssh-keygen -l`` prints it, when sshd's ``ExposeAuthInfo`` gives
``SSH_USER_AUTH``).  A request line adds the operation, its arguments as
escaped JSON without spaces cut to :data:`ARGS_MAX` characters (an eBPF object shown by size
and digest), the result and the duration.  Everything from the network is
escaped, so no request can forge or split a line.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time

from evl_core.errors import escape

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

#: The longest argument text in a line; the longest line a file gets.
ARGS_MAX = 256
LINE_MAX = 1024
AUTH_MAX = 16384
#: ``--log`` values that are not files.
SINKS = ("syslog", "stderr", "none")
SYSLOG_SOCKET = "/dev/log"


def fingerprints(path: str) -> list[str]:
    """The SHA256 fingerprints of the public keys an ``SSH_USER_AUTH`` file lists (``publickey TYPE BASE64``)."""
    import base64
    import binascii
    import hashlib

    from evl_core.errors import EvlError
    from evl_core.files import read_regular

    try:
        text = read_regular(path, "ssh authentication record", AUTH_MAX).decode("ascii", "replace")
    except EvlError:
        return []
    out = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == "publickey":
            try:
                blob = base64.b64decode(words[2], validate=True)
            except (binascii.Error, ValueError):
                continue
            digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")
            out.append(f"SHA256:{digest}")
    return out


def shown_json(value: Any) -> str:
    """A value for the log: compact ASCII JSON without a space (the only spaces are in strings: escaped),
    so that a line splits into its key=value fields whatever a request carries."""
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"), default=str).replace(" ", "\\u0020")


def shown_args(args: Mapping[str, Any]) -> str:
    """A request's arguments for the log: escaped JSON, an object by size and digest, cut to ARGS_MAX."""
    if "data" in args:
        args = {k: v for k, v in args.items() if k != "data"}
    text = shown_json(dict(args))
    return text if len(text) <= ARGS_MAX else text[: ARGS_MAX - 3] + "..."


class Log:
    """Where the agent records its sessions; ``warning`` says why the chosen sink could not be used."""

    def __init__(self, mode: str, env: Mapping[str, str], stderr: Any = None) -> None:
        self.stderr = stderr if stderr is not None else sys.stderr
        self.session = os.urandom(4).hex()
        who = env.get("SSH_CONNECTION", "").split()
        peer = f"{who[0]}:{who[1]}" if len(who) >= 2 else "local"
        keys = fingerprints(env["SSH_USER_AUTH"]) if env.get("SSH_USER_AUTH") else []
        self.prefix = f"session={self.session} from={escape(peer)} key={','.join(keys) or '-'}"
        self.warning: str | None = None
        self.fd: int | None = None
        self.mode = mode
        if mode == "syslog":
            if not _is_socket(SYSLOG_SOCKET):
                self.warning = f"no syslog daemon ({SYSLOG_SOCKET} is missing): the log goes to stderr"
                self.mode = "stderr"
            else:
                import syslog

                syslog.openlog("evl-net-agent", syslog.LOG_PID, syslog.LOG_DAEMON)
        elif mode not in SINKS:
            try:
                self.fd = _open_log(mode)
                self.mode = "file"
            except OSError as exc:
                import errno

                why = "is a symbolic link (refused)" if exc.errno == errno.ELOOP else exc.strerror or str(exc)
                self.warning = f"cannot open the log file {escape(mode)}: {why}: the log goes to stderr"
                self.mode = "stderr"

    def event(self, text: str, notice: bool = False, client: str | None = None) -> None:
        """A session event in the agent's words; ``client``: the client's own text, as an escaped field."""
        field = "" if client is None else f" client={shown_json(client)[:ARGS_MAX]}"
        self._write(f"{self.prefix}{field} {escape(text)}", notice)

    def request(self, req: Any, result: str, seconds: float) -> None:
        """The audit line of one request (``req`` None: a frame that could not be read)."""
        op, args = ("-", "-") if req is None else (req.op, shown_args(req.args))
        notice = result not in ("ok", "unchanged") and op not in ("hello", "-")
        self._write(f"{self.prefix} op={op} args={args} result={result} ms={int(seconds * 1000)}", notice)

    def _write(self, line: str, notice: bool) -> None:
        line = line[:LINE_MAX]
        if self.mode == "syslog":
            import syslog

            syslog.syslog(syslog.LOG_NOTICE if notice else syslog.LOG_INFO, line)
        elif self.mode == "file":
            assert self.fd is not None
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            try:  # one write(2) of an O_APPEND file: lines of concurrent agents never interleave
                os.write(self.fd, f"{stamp} evl-net-agent[{os.getpid()}]: {line}\n".encode())
            except OSError:
                pass
        elif self.mode == "stderr":
            try:
                self.stderr.write(f"evl-net-agent[{os.getpid()}]: {line}\n")
                self.stderr.flush()
            except (OSError, ValueError):
                pass

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def _open_log(path: str) -> int:
    """The log file, opened for appending: never through a symbolic link, never anything but a regular file."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC
    fd = os.open(path, flags, 0o640)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(0, "not a regular file")
    return fd
