"""``evl net-agent --stdio``: serve ``evl net`` operations to a workstation, over SSH.

sshd runs it as the forced command of the workstation's key::

    restrict,command="evl net-agent --stdio" ssh-ed25519 AAAA... evl-net@workstation
    restrict,command="evl net-agent --stdio --read-only" ssh-ed25519 AAAA... monitoring

It reads one JSON request per line on stdin and answers each on stdout (see
:mod:`evl_net.transports.remote.protocol`), running every operation with its local
transport (the EVL kernel ABI on a board; ``--transport=sim`` for demos and
tests).  What it guarantees:

* only the operations of the allowlist run, each through an explicit handler;
  ``--read-only`` or ``--allow`` narrow it for one key (the others are answered
  EPERM); nothing names a file on the board (an eBPF object travels as bytes,
  and its size and sha256 are checked before anything loads it);
* ``hello`` first; a frame that cannot be read gets an error reply and the
  session goes on; a frame must arrive whole within ``--frame-timeout``;
* no request for ``--idle-timeout`` seconds, or end of input: it exits 0;
* while an operation runs, input is read only up to a bounded queue: past it,
  the sender is pushed back (memory stays bounded whatever a key holder sends);
* an operation running longer than ``--request-timeout`` gets ETIMEDOUT and
  ends the session (the operation's effect is unknown);
* mutations are idempotent and report ``changed``, ``before`` and ``after``;
  they are serialised per board by ``flock`` on ``<state dir>/net-agent.lock``
  (reads take no lock); a mutation that cannot have the lock within the wait
  the client asked for (shorter than its own deadline) is answered ELOCKED:
  nothing was done, the session goes on;
* every request is audited, one line each (:mod:`evl_net.agent.log`).

Exit status: 0 at end of input or idle; 3 when the session was cut (a frame
or a write deadline expired, an operation overran its deadline, output closed).
"""

from __future__ import annotations

import os
import sys

from evl_core.errors import EvlError
from evl_net.boardlock import DEFAULT_STATE_DIR, STATE_DIR_ENV
from evl_net.transports.remote import protocol

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any


def build_parser():  # -> argparse.ArgumentParser
    import argparse

    from evl_net.agent.log import SINKS

    parser = argparse.ArgumentParser(
        prog="evl net-agent",
        description="Serve evl net operations to a remote workstation: run by sshd as the forced command of "
        "the workstation's key, it reads JSON requests on standard input and answers on standard "
        "output, running each operation with the board's local transport.",
    )
    parser.add_argument(
        "--stdio",
        action="store_true",
        required=True,
        help="serve one session on standard input and output (the only mode)",
    )
    parser.add_argument(
        "--transport",
        metavar="NAME",
        help="the local transport: auto (default: ioctl when /dev/evl/net exists, else sim), "
        "ioctl or sim; also EVL_NET_TRANSPORT",
    )
    parser.add_argument("--board", metavar="FILE", help="the simulated board (sim transport); also EVL_SIM_BOARD")
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help=f"where the mutation lock lives (default: ${STATE_DIR_ENV}, else {DEFAULT_STATE_DIR}, "
        "else $XDG_RUNTIME_DIR/evl)",
    )
    parser.add_argument(
        "--idle-timeout",
        metavar="SECONDS",
        type=_seconds,
        default=protocol.IDLE_S,
        help=f"exit after this long without a request (default {protocol.IDLE_S:g})",
    )
    parser.add_argument(
        "--frame-timeout",
        metavar="SECONDS",
        type=_seconds,
        default=protocol.FRAME_S,
        help=f"a started frame must be complete within this time (default {protocol.FRAME_S:g})",
    )
    parser.add_argument(
        "--request-timeout",
        metavar="SECONDS",
        type=_seconds,
        default=protocol.REQUEST_S,
        help=f"deadline of one operation; past it the session ends (default {protocol.REQUEST_S:g})",
    )
    log = parser.add_argument(
        "--log",
        metavar="SINK",
        type=_sink,
        default="syslog",
        help="where the audit log goes: syslog (the default), stderr, none, or a FILE (a path with a '/'), "
        "appended to; one line per request",
    )
    log.completion_words = SINKS  # type: ignore[attr-defined]  # read by the shell completion (a FILE is typed)
    access = parser.add_mutually_exclusive_group()
    access.add_argument(
        "--read-only",
        action="store_true",
        help="serve reads only: every operation that would change the board is refused (EPERM) and logged",
    )
    access.add_argument(
        "--allow",
        metavar="OP[,OP...]",
        type=_operations,
        help="serve only these operations (hello is always served); the others are refused (EPERM) and logged; "
        "operations: " + ", ".join(protocol.CAPS),
    )
    return parser


def _sink(text: str) -> str:
    import argparse

    from evl_net.agent.log import SINKS

    if text in SINKS or ("/" in text and "\x00" not in text):
        return text
    raise argparse.ArgumentTypeError(f"invalid log '{text}': syslog, stderr, none or a file path (with a '/')")


def _operations(text: str) -> frozenset[str]:
    import argparse

    names = [n.strip() for n in text.split(",")]
    unknown = [n for n in names if n not in protocol.CAPS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown operation '{unknown[0] if unknown else text}': expected some of " + ", ".join(protocol.CAPS)
        )
    return frozenset(names)


def _seconds(text: str) -> float:
    import argparse
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid duration '{text}'") from None
    if not math.isfinite(value) or not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"invalid duration '{text}': expected seconds in (0, 86400]")
    return value


def run(args: Any, ctx: Any) -> int:
    """``evl net-agent --stdio``."""
    from evl_core.streams import closed_at_start
    from evl_net.agent.backend import Backend
    from evl_net.agent.log import Log
    from evl_net.agent.session import Agent
    from evl_net.boardlock import BoardLock, default_state_dir

    if 1 in closed_at_start:  # it is /dev/null now: every answer would be lost (a closed stdin is an EOF)
        raise EvlError("the standard output is closed: the agent answers on it")
    backend = Backend.from_ctx(args.transport, args.board, ctx)
    state_dir = args.state_dir or default_state_dir(ctx.env)
    log = Log(args.log, ctx.env, ctx.stderr)
    if log.warning:
        ctx.stderr.write(f"evl-net-agent: warning: {log.warning}\n")
        ctx.stderr.flush()
    from evl_net.agent.session import READS

    allowed = frozenset(READS) if args.read_only else args.allow
    rfd, wfd = sys.stdin.fileno(), sys.stdout.fileno()
    import fcntl

    flags = fcntl.fcntl(wfd, fcntl.F_GETFL)
    fcntl.fcntl(wfd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    agent = Agent(
        backend,
        rfd=rfd,
        wfd=wfd,
        lock=BoardLock(state_dir),
        log=log,
        idle_s=args.idle_timeout,
        frame_s=args.frame_timeout,
        request_s=args.request_timeout,
        allowed=allowed,
    )
    try:
        code, busy = agent.serve()
    finally:
        log.close()
        try:
            fcntl.fcntl(wfd, fcntl.F_SETFL, flags)
        except OSError:
            pass
    if busy:
        # An operation is still running on the worker thread: leave now; the kernel drops the lock.
        try:
            sys.stderr.flush()
        finally:
            os._exit(code)
    return code


def manpage_sections() -> list[tuple[str, str]]:
    """Extra sections of evl-net-agent(8)."""
    return [
        (
            "BOARD SETUP",
            r"""
Install evl\-tools on the board and give the workstation's key a forced command in the
authorized_keys of the account that administers the network stack:
.PP
.nf
restrict,command="evl net\-agent \-\-stdio" ssh\-ed25519 AAAA... evl\-net@workstation
.fi
.PP
\fBrestrict\fR disables forwarding and pseudo\-terminals; the key can run nothing but the agent.
Give that account the capabilities the EVL ABI needs rather than a root login.
Create \fI/run/evl\fR writable by every such account (for instance with systemd\-tmpfiles)
so that all sessions share one lock.
""",
        ),
        (
            "PROTOCOL",
            r"""
One compact JSON object per line: requests \fB{"id","op","args"}\fR, replies
\fB{"id","ok":true,"result"}\fR or \fB{"id","ok":false,"error":{"code","errno","msg"}}\fR.
The first request is \fBhello\fR (protocol range in; version, EVL ABI range, capabilities and
limits out).
Operations (the primitives of the transport contract): """
            + ", ".join(c for c in protocol.CAPS if c != protocol.BOARD_LOCK)
            + r"""; and \fBboard.lock\fR (\fB{"hold":1}\fR holds the board's lock for the rest of the
session, as \fBevl net\-config apply\fR does, \fB{"hold":0}\fR releases it); nothing else runs.
Reads answer \fB{"value"}\fR, mutations \fB{"data","changed","before","after"}\fR.
Frames are capped at 1 MiB (4 MiB for bpf.load, whose object travels as base64 with its size and
sha256, checked before loading; at most 2 MiB of object).
While an operation runs, at most 4 MiB of further frames are queued; past that the agent stops
reading, and the sender (ssh, then TCP) is pushed back.
Mutations report changed, before and after, and are serialised by \fBflock\fR(2) on
\fI<state dir>/net\-agent.lock\fR.
The hello may carry \fB"lock_wait"\fR, the seconds a mutation may wait for that lock (at most 5,
and at most half of \fB\-\-request\-timeout\fR; the client asks for half its own deadline).
A mutation that cannot have the lock in time is answered with the code \fBELOCKED\fR (errno
EBUSY): nothing was done, and the session goes on.
""",
        ),
        (
            "ACCESS",
            r"""
By default a key may run every operation.
\fB\-\-read\-only\fR serves only the operations that change nothing (the queries);
\fB\-\-allow\fR=\fIOP\fR[,\fIOP\fR...] serves only the operations named (\fBhello\fR is always
served).
Any other request is answered with \fBEPERM\fR and logged.
The hello's \fB"allowed"\fR lists what the session may run.
A monitoring key:
.PP
.nf
restrict,command="evl net\-agent \-\-stdio \-\-read\-only" ssh\-ed25519 AAAA... monitoring
.fi
""",
        ),
        (
            "AUDIT LOG",
            r"""
One line per request, and one when the session opens, to \fB\-\-log\fR: syslog (facility daemon;
info, notice for a change or a refusal), \fIFILE\fR (appended, created 0640, never through a
symbolic link; each line stamped), stderr or none.
A line holds \fBsession=\fR (a random id per session), \fBfrom=\fR (\fBSSH_CONNECTION\fR),
\fBkey=\fR (the SHA256 fingerprint of the key, as \fBssh\-keygen \-l\fR prints it, when sshd
runs with \fBExposeAuthInfo yes\fR; \fB\-\fR otherwise), \fBop=\fR, \fBargs=\fR (escaped JSON
without spaces, cut to 256 characters; an eBPF object by its size and sha256), \fBresult=\fR (ok,
changed, unchanged, held, released, error=\fICODE\fR, or abandoned: the workstation left while it ran,
its effect unknown) and \fBms=\fR; the opening line holds the client's own name as \fBclient=\fR, escaped
likewise.
When the sink cannot be used (no \fI/dev/log\fR, a file that cannot be opened) the agent says so
on stderr at start and logs to stderr.
""",
        ),
        (
            "ENVIRONMENT",
            r"""
.TP
\fBEVL_NET_AGENT_DIR\fR
The state directory (the lock) when \fB\-\-state\-dir\fR is not given.
.TP
\fBSSH_CONNECTION\fR, \fBSSH_USER_AUTH\fR
Set by sshd: where the session comes from, and (with \fBExposeAuthInfo yes\fR) the key it used;
both are in every audit line.
""",
        ),
        (
            "EXIT STATUS",
            r"""
0 at the end of the input or after the idle timeout;
3 when the session was cut (a frame, write or operation deadline expired);
1 when the transport cannot be set up; 2 on a usage error.
""",
        ),
    ]
