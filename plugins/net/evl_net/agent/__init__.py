"""``evl net-agent --stdio``: serve ``evl net`` operations to a workstation, over SSH.

sshd runs it as the forced command of the workstation's key::

    restrict,command="evl net-agent --stdio" ssh-ed25519 AAAA... evl-net@workstation

It reads one JSON request per line on stdin and answers each on stdout (see
:mod:`evl_net.transports.remote.protocol`), running every operation with its local
transport (the EVL kernel ABI on a board; ``--transport=sim`` for demos and
tests).  What it guarantees:

* only the operations of the allowlist run, each through an explicit handler
  below; nothing names a file on the board (an eBPF object travels as bytes,
  and its size and sha256 are checked before anything loads it);
* ``hello`` first; a frame that cannot be read gets an error reply and the
  session goes on; a frame must arrive whole within ``--frame-timeout``;
* no request for ``--idle-timeout`` seconds, or end of input: it exits 0;
* an operation running longer than ``--request-timeout`` gets ETIMEDOUT and
  ends the session (the operation's effect is unknown);
* mutations are idempotent and report ``changed``, ``before`` and ``after``;
  they are serialised per board by ``flock`` on ``<state dir>/net-agent.lock``
  (reads take no lock), and each is logged (syslog by default) with
  ``SSH_CONNECTION``.

Exit status: 0 at end of input or idle; 3 when the session was cut (a frame
or a write deadline expired, an operation overran its deadline, output closed).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from evl_core.errors import EvlError
from evl_net.boardlock import DEFAULT_STATE_DIR, STATE_DIR_ENV
from evl_net.transports.remote import protocol


def build_parser():  # -> argparse.ArgumentParser
    import argparse

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
    parser.add_argument(
        "--log",
        choices=("syslog", "stderr", "none"),
        default="syslog",
        help="where mutations and session events are logged (default syslog)",
    )
    return parser


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
    from evl_net.agent.backend import Backend
    from evl_net.agent.log import Log
    from evl_net.agent.session import Agent
    from evl_net.boardlock import BoardLock, default_state_dir

    backend = Backend.from_ctx(args.transport, args.board, ctx)
    state_dir = args.state_dir or default_state_dir(ctx.env)
    log = Log(args.log, ctx.env, ctx.stderr)
    from evl_core.streams import closed_at_start

    if 1 in closed_at_start:  # it is /dev/null now: every answer would be lost (a closed stdin is an EOF)
        raise EvlError("the standard output is closed: the agent answers on it")
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
    )
    try:
        code, busy = agent.serve()
    finally:
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
Mutations report changed, before and after, and are serialised by \fBflock\fR(2) on
\fI<state dir>/net\-agent.lock\fR.
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
Set by sshd; logged with every mutation.
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
