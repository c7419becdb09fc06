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

import errno
import io
import os
import select
import sys
import threading
import time
from collections import deque
from typing import Any, Callable, Mapping

from evl_core.errors import EvlError
from evl_net.transports.remote import protocol
from evl_net.transports.remote.protocol import ProtocolError

STATE_DIR_ENV = "EVL_NET_AGENT_DIR"
DEFAULT_STATE_DIR = "/run/evl"
LOCK_NAME = "net-agent.lock"
CHUNK = 65536
EOF_GRACE_S = 0.5  # how long an operation may still run once the workstation has gone
REMEMBERED_IDS = 1024
EXIT_CUT = 3


def build_parser():  # -> argparse.ArgumentParser
    import argparse

    parser = argparse.ArgumentParser(
        prog="evl net-agent",
        description="Serve evl net operations to a remote workstation: run by sshd as the forced command of "
                    "the workstation's key, it reads JSON requests on standard input and answers on standard "
                    "output, running each operation with the board's local transport.",
    )
    parser.add_argument("--stdio", action="store_true", required=True,
                        help="serve one session on standard input and output (the only mode)")
    parser.add_argument("--transport", metavar="NAME",
                        help="the local transport: auto (default: ioctl when /dev/evl/net exists, else sim), "
                             "ioctl or sim; also EVL_NET_TRANSPORT")
    parser.add_argument("--board", metavar="FILE", help="the simulated board (sim transport); also EVL_SIM_BOARD")
    parser.add_argument("--state-dir", metavar="DIR",
                        help=f"where the mutation lock lives (default: ${STATE_DIR_ENV}, else {DEFAULT_STATE_DIR}, "
                             "else $XDG_RUNTIME_DIR/evl)")
    parser.add_argument("--idle-timeout", metavar="SECONDS", type=_seconds, default=protocol.IDLE_S,
                        help=f"exit after this long without a request (default {protocol.IDLE_S:g})")
    parser.add_argument("--frame-timeout", metavar="SECONDS", type=_seconds, default=protocol.FRAME_S,
                        help=f"a started frame must be complete within this time (default {protocol.FRAME_S:g})")
    parser.add_argument("--request-timeout", metavar="SECONDS", type=_seconds, default=protocol.REQUEST_S,
                        help=f"deadline of one operation; past it the session ends (default {protocol.REQUEST_S:g})")
    parser.add_argument("--log", choices=("syslog", "stderr", "none"), default="syslog",
                        help="where mutations and session events are logged (default syslog)")
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


# -- the local transport ---------------------------------------------------------------

class Backend:
    """Opens the board's local transport, afresh for each operation."""

    def __init__(self, name: str, factory: Callable[..., Any], board: str | None, env: Mapping[str, str],
                 notice: str | None = None) -> None:
        self.name = name
        self.factory = factory
        self.board = board
        self.env = env
        #: what local use would say on stderr about the choice (the simulator standing in for the core)
        self.notice = notice

    @classmethod
    def from_ctx(cls, name: str | None, board: str | None, ctx: Any) -> "Backend":
        from evl_core.lazy import resolve
        from evl_net.cli.main import DEVDIR_ENV, REMOTE_ENV, TRANSPORT_ENV
        from evl_net.registry import registered

        env = {k: v for k, v in ctx.env.items() if k != REMOTE_ENV}
        name = name or env.get(TRANSPORT_ENV) or "auto"
        notice = None
        if name == "auto":
            node = os.path.join(env.get(DEVDIR_ENV) or "/dev/evl", "net")
            name = "ioctl" if os.path.exists(node) else "sim"
            if name == "sim":
                notice = f"no EVL core there (no {node}): the board's agent uses the simulator"
        if name == "remote":
            raise EvlError("the agent serves its own board: --transport=remote is not allowed here")
        transports = {t.name: t for t in registered(ctx, "evl_net_transports")}
        info = transports.get(name)
        if info is None:
            raise EvlError(f"unknown transport '{name}' (available: auto, "
                           f"{', '.join(sorted(n for n in transports if n != 'remote'))})")
        return cls(name, resolve(info.factory), board, env, notice)

    def open(self) -> Any:
        from evl_net.engine.request import Request

        return self.factory(Request(board=self.board, transport=self.name), self.env)

    def abi(self) -> dict[str, Any]:
        """The EVL ABI range of the board (the simulator claims the one these tools are written for)."""
        from evl_core import EVL_ABI_PREREQ

        try:
            transport = self.open()
        except (EvlError, OSError) as exc:
            return {"base": None, "current": None, "error": str(exc)}
        try:
            info = getattr(transport, "core_info", None)
            if isinstance(info, dict) and "abi_base" in info:
                return {"base": int(info["abi_base"]), "current": int(info["abi_current"])}
            return {"base": EVL_ABI_PREREQ, "current": EVL_ABI_PREREQ, "simulated": self.name == "sim"}
        finally:
            try:
                transport.close()
            except (EvlError, OSError):
                pass


# -- the operations: the allowlist, one explicit handler each -----------------------------

def _port_state(t: Any, ifname: str) -> dict[str, Any] | None:
    try:
        stat = t.get_stat(ifname)
    except OSError:
        return None
    return {"oob_port": bool(stat.oob_port), "skb_total": stat.skb_total, "skb_size": stat.skb_size}


def _page_size(t: Any, a: dict, obj: Any) -> dict[str, Any]:
    return {"page_size": int(t.page_size())}


def _interfaces(t: Any, a: dict, obj: Any) -> dict[str, Any]:
    return {"interfaces": [{"name": str(i.name), "oob_port": bool(i.oob_port), "up": bool(i.up)}
                           for i in t.interfaces()]}


def _stat(t: Any, a: dict, obj: Any) -> dict[str, Any]:
    return t.get_stat(a["ifname"]).as_dict()


def _vlans_get(t: Any, a: dict, obj: Any) -> dict[str, Any]:
    return {"vlans": str(t.get_vlans())}


def _enable(t: Any, a: dict, obj: Any) -> tuple:
    before = _port_state(t, a["ifname"])
    data = t.enable_port(a["ifname"], a["pool_size"], a["buffer_size"])
    return data, before, _port_state(t, a["ifname"])


def _disable(t: Any, a: dict, obj: Any) -> tuple:
    before = _port_state(t, a["ifname"])
    data = t.disable_port(a["ifname"])
    return data, before, _port_state(t, a["ifname"])


def _bpf_load(t: Any, a: dict, obj: bytes) -> tuple:
    data = t.set_rx_filter(a["ifname"], obj, a["name"])
    return data, None, {"filter_sha256": a["sha256"]}


def _bpf_remove(t: Any, a: dict, obj: Any) -> tuple:
    data = t.set_rx_filter(a["ifname"], None, None)
    return data, None, {"filter_sha256": None}


def _solicit(t: Any, a: dict, obj: Any) -> tuple:
    return t.solicit(a["host"], a["ifname"], a["flags"]), None, None


def _vlans_set(t: Any, a: dict, obj: Any) -> tuple:
    before = t.get_vlans()
    data = t.set_vlans(a["text"])
    return data, before, t.get_vlans()


HANDLERS: dict[str, Callable[[Any, dict, Any], Any]] = {
    "page_size": _page_size,
    "interfaces": _interfaces,
    "stat.get": _stat,
    "vlans.get": _vlans_get,
    "port.enable": _enable,
    "port.disable": _disable,
    "bpf.load": _bpf_load,
    "bpf.remove": _bpf_remove,
    "solicit": _solicit,
    "vlans.set": _vlans_set,
}
assert set(HANDLERS) == set(protocol.CAPS)


# -- the mutation lock ------------------------------------------------------------------

def default_state_dir(env: Mapping[str, str]) -> str:
    if env.get(STATE_DIR_ENV):
        return env[STATE_DIR_ENV]
    if os.path.isdir(DEFAULT_STATE_DIR) or os.access(os.path.dirname(DEFAULT_STATE_DIR), os.W_OK):
        return DEFAULT_STATE_DIR
    if env.get("XDG_RUNTIME_DIR"):
        return os.path.join(env["XDG_RUNTIME_DIR"], "evl")
    return os.path.join(env.get("HOME") or os.path.expanduser("~"), ".local", "state", "evl-tools")


class BoardLock:
    """``flock`` on ``<dir>/net-agent.lock``: one mutation at a time on this board.

    The file is opened once per session and locked around each mutation; the
    kernel drops the lock when the process dies, so it can never go stale.
    """

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, LOCK_NAME)
        self._fd: int | None = None

    def acquire(self, deadline: float) -> None:
        import fcntl

        if self._fd is None:
            try:
                os.makedirs(os.path.dirname(self.path), mode=0o770, exist_ok=True)
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o660)
            except OSError as exc:
                raise EvlError(f"cannot open the board lock {self.path}", exc.errno) from None
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    from evl_net.errors import KernelError

                    raise KernelError(errno.EBUSY, "another session kept the board busy") from None
                time.sleep(0.005)

    def release(self) -> None:
        import fcntl

        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


# -- logging -----------------------------------------------------------------------------

class Log:
    def __init__(self, mode: str, env: Mapping[str, str], stderr: Any = None) -> None:
        self.mode = mode
        self.stderr = stderr if stderr is not None else sys.stderr
        who = env.get("SSH_CONNECTION", "").split()
        self.peer = f"{who[0]} port {who[1]}" if len(who) >= 2 else "local"
        auth = env.get("SSH_USER_AUTH")  # sshd's ExposeAuthInfo: a file naming the key used
        self.key = ""
        if auth:
            try:
                with open(auth, encoding="utf-8", errors="replace") as f:
                    self.key = " key " + " ".join(f.read(512).split()[:3])
            except OSError:
                pass
        if mode == "syslog":
            import syslog

            syslog.openlog("evl-net-agent", syslog.LOG_PID, syslog.LOG_DAEMON)

    def __call__(self, text: str, notice: bool = False) -> None:
        line = f"{text} (from {self.peer}{self.key})"
        if self.mode == "syslog":
            import syslog

            syslog.syslog(syslog.LOG_NOTICE if notice else syslog.LOG_INFO, line)
        elif self.mode == "stderr":
            try:
                self.stderr.write(f"evl-net-agent[{os.getpid()}]: {line}\n")
                self.stderr.flush()
            except (OSError, ValueError):
                pass


def _summary(op: str, args: Mapping[str, Any]) -> str:
    shown = {k: (v if k != "data" else f"<{len(v)} base64 chars>") for k, v in args.items()}
    return op + " " + " ".join(f"{k}={v!r}" for k, v in shown.items())


# -- the operation thread ------------------------------------------------------------------

class _Worker:
    """Runs one operation at a time off the I/O loop, so deadlines and EOF stay visible."""

    def __init__(self) -> None:
        import queue

        self.rfd, self.wfd = os.pipe()
        self.jobs: Any = queue.SimpleQueue()
        self.result: tuple[bool, Any] | None = None
        self.busy = False
        threading.Thread(target=self._loop, name="evl-net-agent-op", daemon=True).start()

    def _loop(self) -> None:
        while True:
            fn = self.jobs.get()
            try:
                result: tuple[bool, Any] = (True, fn())
            except BaseException as exc:  # handed to the I/O loop, which replies
                result = (False, exc)
            self.result = result
            os.write(self.wfd, b"!")

    def submit(self, fn: Callable[[], Any]) -> None:
        self.busy = True
        self.result = None
        self.jobs.put(fn)

    def collect(self) -> tuple[bool, Any]:
        os.read(self.rfd, 1)
        self.busy = False
        assert self.result is not None
        return self.result


class OperationFailed(Exception):
    """An operation's failure with the kernel log lines it printed before failing."""

    def __init__(self, cause: Exception, log: list[str]) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.log = log


class _Stop(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


# -- the session -------------------------------------------------------------------------------

class Agent:
    """One session: frames in on ``rfd``, replies out on ``wfd``."""

    def __init__(self, backend: Backend, *, rfd: int = 0, wfd: int = 1, lock: BoardLock | None = None,
                 log: Log | None = None, idle_s: float = protocol.IDLE_S, frame_s: float = protocol.FRAME_S,
                 request_s: float = protocol.REQUEST_S, max_bpf: int = protocol.MAX_BPF) -> None:
        self.backend = backend
        self.rfd, self.wfd = rfd, wfd
        self.lock = lock or BoardLock(default_state_dir(backend.env))
        self.log = log or Log("none", {})
        self.idle_s, self.frame_s, self.request_s, self.max_bpf = idle_s, frame_s, request_s, max_bpf
        self.worker = _Worker()
        self.buf = bytearray()
        self.pending: deque[Any] = deque()  # complete frames (bytes) and queued ProtocolErrors, in order
        self.discard = False
        self.frame_t0: float | None = None
        self.last_t = time.monotonic()
        self.eof = False
        self.hello: dict[str, Any] | None = None
        self.ids: deque[Any] = deque()
        self.id_set: set[Any] = set()

    # -- input --------------------------------------------------------------------

    def _read_some(self) -> None:
        try:
            chunk = os.read(self.rfd, CHUNK)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.eof = True
            return
        self._feed(chunk, time.monotonic())

    def _feed(self, chunk: bytes, now: float) -> None:
        self.last_t = now
        while chunk:
            nl = chunk.find(b"\n")
            if nl < 0:
                if self.frame_t0 is None:
                    self.frame_t0 = now
                if not self.discard:
                    self.buf += chunk
                    if len(self.buf) > protocol.MAX_BPF_FRAME:
                        self.pending.append(ProtocolError(
                            "E2BIG", f"frame exceeds {protocol.MAX_BPF_FRAME} bytes: skipped to its end"))
                        self.buf = bytearray()
                        self.discard = True
                return
            head, chunk = chunk[:nl], chunk[nl + 1:]
            if self.discard:
                self.discard = False
            else:
                self.buf += head
                self.pending.append(bytes(self.buf))
                self.buf = bytearray()
            self.frame_t0 = None

    # -- output ---------------------------------------------------------------------

    def _send(self, frame: bytes) -> None:
        view = memoryview(frame)
        deadline = time.monotonic() + self.frame_s
        while view:
            try:
                n = os.write(self.wfd, view)
                view = view[n:]
                continue
            except BlockingIOError:
                pass
            except OSError:  # the workstation went away
                raise _Stop(EXIT_CUT) from None
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [self.wfd], [], left)[1]:
                self.log("reply not taken within the frame deadline: session cut", notice=True)
                raise _Stop(EXIT_CUT)

    # -- the loop ---------------------------------------------------------------------

    def serve(self) -> tuple[int, bool]:
        """Serve until EOF, idle or a cut; (exit status, an operation is still running)."""
        try:
            while True:
                while self.pending:
                    self._handle(self.pending.popleft())
                if self.eof:
                    return 0, False
                now = time.monotonic()
                if self.frame_t0 is not None:
                    left = self.frame_t0 + self.frame_s - now
                    if left <= 0:
                        self._send(protocol.error_frame(
                            None, "ETIMEDOUT", f"frame not completed within {self.frame_s:g} s: session closed"))
                        self.log("frame deadline expired: session cut", notice=True)
                        return EXIT_CUT, False
                else:
                    left = self.last_t + self.idle_s - now
                    if left <= 0:
                        self.log(f"no request for {self.idle_s:g} s: exiting")
                        return 0, False
                if select.select([self.rfd], [], [], left)[0]:
                    self._read_some()
        except _Stop as stop:
            return stop.code, self.worker.busy
        finally:
            self.lock.close()

    def _remember(self, rid: Any) -> bool:
        if rid in self.id_set:
            return False
        self.ids.append(rid)
        self.id_set.add(rid)
        if len(self.ids) > REMEMBERED_IDS:
            self.id_set.discard(self.ids.popleft())
        return True

    def _handle(self, item: Any) -> None:
        req = None
        try:
            if isinstance(item, ProtocolError):
                raise item
            req = protocol.parse_request(item)
            if not self._remember(req.id):
                raise ProtocolError(protocol.EDUPID, f"request id {req.id!r} was already used in this session", req.id)
            if req.op == "hello":
                self._hello(req)
                return
            if self.hello is None:
                raise ProtocolError("EPROTO", "the first request of a session must be 'hello'", req.id)
            obj = protocol.bpf_object(req.args, self.max_bpf) if req.op == "bpf.load" else None
        except ProtocolError as exc:
            if exc.id is None and req is not None:
                exc.id = req.id
            self._send(exc.reply())
            return
        self._operate(req, obj)
        self.last_t = time.monotonic()

    def _hello(self, req: protocol.Request) -> None:
        if self.hello is not None:
            raise ProtocolError("EPROTO", "'hello' was already done in this session", req.id)
        version = protocol.choose_version(req.args["proto"])
        if version is None:
            raise ProtocolError("EPROTONOSUPPORT", f"this agent speaks protocol {protocol.PROTO_MIN}.."
                                f"{protocol.PROTO_MAX}, the client {req.args['proto'][0]}..{req.args['proto'][1]}",
                                req.id)
        from evl_net import __version__

        self.hello = {
            "proto": version,
            "agent": f"evl-tools {__version__}",
            "transport": self.backend.name,
            "abi": self.backend.abi(),
            "caps": list(protocol.CAPS),
            "limits": {
                "max_frame": protocol.MAX_FRAME, "max_bpf_frame": protocol.MAX_BPF_FRAME, "max_bpf": self.max_bpf,
                "max_depth": protocol.MAX_DEPTH, "idle_s": self.idle_s, "frame_s": self.frame_s,
                "request_s": self.request_s,
            },
        }
        if self.backend.notice:
            self.hello["notice"] = self.backend.notice
        self.log(f"session opened by {req.args['client']!r} (protocol {version}, transport {self.backend.name})")
        self._send(protocol.ok_frame(req.id, self.hello))

    def _operate(self, req: protocol.Request, obj: bytes | None) -> None:
        deadline = time.monotonic() + self.request_s
        ok, value = self._execute(lambda: self._run(req, obj, deadline), deadline, req)
        if ok:
            result, log = value
            try:
                frame = protocol.ok_frame(req.id, result, log)
            except (TypeError, ValueError) as exc:
                frame = protocol.error_frame(req.id, "EIO", f"the agent could not encode the result: {exc}")
        else:
            frame = self._error_reply(req, value)
        self._send(frame)

    def _error_reply(self, req: protocol.Request, exc: BaseException) -> bytes:
        log = None
        if isinstance(exc, OperationFailed):
            exc, log = exc.cause, exc.log
        if isinstance(exc, ProtocolError):
            return exc.reply()
        if isinstance(exc, OSError):
            version = (self.hello or {}).get("proto", protocol.PROTO_MIN)
            return protocol.oserror_frame(req.id, exc, log, version)
        if isinstance(exc, EvlError):
            return protocol.error_frame(req.id, protocol.EVLERROR, exc.message, errno=exc.errno, log=log)
        self.log(f"{req.op}: internal error {type(exc).__name__}: {exc}", notice=True)
        return protocol.error_frame(req.id, "EIO", f"internal error in the agent: {type(exc).__name__}: {exc}", log=log)

    def _execute(self, fn: Callable[[], Any], deadline: float, req: protocol.Request) -> tuple[bool, Any]:
        """Run fn on the worker; keep reading input meanwhile (EOF ends the session)."""
        self.worker.submit(fn)
        eof_deadline: float | None = None
        while True:
            now = time.monotonic()
            if self.eof and eof_deadline is None:
                eof_deadline = now + EOF_GRACE_S
            limit = min(deadline, eof_deadline) if eof_deadline is not None else deadline
            watch = [self.worker.rfd]
            if not self.eof and len(self.buf) <= protocol.MAX_BPF_FRAME:
                watch.append(self.rfd)
            ready = select.select(watch, [], [], max(0.0, limit - now))[0]
            if self.worker.rfd in ready:
                result = self.worker.collect()
                if self.frame_t0 is not None:
                    self.frame_t0 = time.monotonic()  # a frame that arrived meanwhile gets its full time
                return result
            if self.rfd in ready:
                self._read_some()
                continue
            now = time.monotonic()
            if eof_deadline is not None and now >= eof_deadline:
                self.log(f"{req.op} still running when the workstation left: exiting", notice=True)
                raise _Stop(0)
            if now >= deadline:
                self._send(protocol.error_frame(req.id, "ETIMEDOUT",
                                                f"{req.op} did not complete within {self.request_s:g} s: "
                                                "state unknown, session closed"))
                self.log(f"{req.op} overran its deadline: session cut", notice=True)
                raise _Stop(EXIT_CUT)

    def _run(self, req: protocol.Request, obj: bytes | None, deadline: float) -> tuple[dict[str, Any], list[str]]:
        """On the worker thread: open the transport, (lock,) run the handler, close."""
        spec = req.spec
        console = io.StringIO()
        handler = HANDLERS[req.op]
        if spec.mutation:
            self.lock.acquire(deadline)
        try:
            try:
                with self.backend.open() as transport:
                    if hasattr(transport, "console"):
                        transport.console = console
                    value = handler(transport, req.args, obj)
            except Exception as exc:
                if spec.mutation:
                    self.log(f"{_summary(req.op, req.args)}: failed: {exc}", notice=True)
                raise OperationFailed(exc, console.getvalue().splitlines()) from exc
        finally:
            if spec.mutation:
                self.lock.release()
        if spec.mutation:
            data, before, after = value
            data = dict(data)
            changed = bool(data.get("changed"))
            self.log(f"{_summary(req.op, req.args)}: {'changed' if changed else 'unchanged'}", notice=changed)
            result = {"data": data, "changed": changed, "before": before, "after": after}
        else:
            result = value
        return result, console.getvalue().splitlines()


def run(args: Any, ctx: Any) -> int:
    """``evl net-agent --stdio``."""
    backend = Backend.from_ctx(args.transport, args.board, ctx)
    state_dir = args.state_dir or default_state_dir(ctx.env)
    log = Log(args.log, ctx.env, ctx.stderr)
    rfd, wfd = sys.stdin.fileno(), sys.stdout.fileno()
    import fcntl

    flags = fcntl.fcntl(wfd, fcntl.F_GETFL)
    fcntl.fcntl(wfd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    agent = Agent(backend, rfd=rfd, wfd=wfd, lock=BoardLock(state_dir), log=log, idle_s=args.idle_timeout,
                  frame_s=args.frame_timeout, request_s=args.request_timeout)
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
        ("BOARD SETUP", r"""
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
"""),
        ("PROTOCOL", r"""
One compact JSON object per line: requests \fB{"id","op","args"}\fR, replies
\fB{"id","ok":true,"result"}\fR or \fB{"id","ok":false,"error":{"code","errno","msg"}}\fR.
The first request is \fBhello\fR (protocol range in; version, EVL ABI range, capabilities and
limits out).
Operations: page_size, interfaces, stat.get, vlans.get, port.enable, port.disable, bpf.load,
bpf.remove, solicit, vlans.set; nothing else runs.
Frames are capped at 1 MiB (4 MiB for bpf.load, whose object travels as base64 with its size and
sha256, checked before loading; at most 2 MiB of object).
Mutations report changed, before and after, and are serialised by \fBflock\fR(2) on
\fI<state dir>/net\-agent.lock\fR.
"""),
        ("ENVIRONMENT", r"""
.TP
\fBEVL_NET_AGENT_DIR\fR
The state directory (the lock) when \fB\-\-state\-dir\fR is not given.
.TP
\fBSSH_CONNECTION\fR, \fBSSH_USER_AUTH\fR
Set by sshd; logged with every mutation.
"""),
        ("EXIT STATUS", r"""
0 at the end of the input or after the idle timeout;
3 when the session was cut (a frame, write or operation deadline expired);
1 when the transport cannot be set up; 2 on a usage error.
"""),
    ]
