"""One agent session: frames in, replies out, one operation at a time on a worker thread.

Deadlines (frame, request, idle), end of input and write back-pressure are
watched here; what an operation does is :mod:`evl_net.agent.handlers`.
"""

from __future__ import annotations

import io
import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from evl_core.errors import EvlError
from evl_net.agent import handlers
from evl_net.agent.backend import Backend
from evl_net.agent.log import Log, summary
from evl_net.boardlock import BoardLock, default_state_dir
from evl_net.transports.remote import protocol
from evl_net.transports.remote.protocol import ProtocolError

CHUNK = 65536
EOF_GRACE_S = 0.5  # how long an operation may still run once the workstation has gone
LOCK_REPLY_S = 1.0  # past a board.lock wait's deadline, for its EBUSY to be answered
REMEMBERED_IDS = 1024
EXIT_CUT = 3


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
            except BaseException as exc:  # noqa: BLE001 -- handed to the I/O loop, which replies with it
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

    def __init__(
        self,
        backend: Backend,
        *,
        rfd: int = 0,
        wfd: int = 1,
        lock: BoardLock | None = None,
        log: Log | None = None,
        idle_s: float = protocol.IDLE_S,
        frame_s: float = protocol.FRAME_S,
        request_s: float = protocol.REQUEST_S,
        max_bpf: int = protocol.MAX_BPF,
    ) -> None:
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
        #: the session holds the board's lock (board.lock): mutations do not take it one by one
        self.held = False
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
                        self.pending.append(
                            ProtocolError("E2BIG", f"frame exceeds {protocol.MAX_BPF_FRAME} bytes: skipped to its end")
                        )
                        self.buf = bytearray()
                        self.discard = True
                return
            head, chunk = chunk[:nl], chunk[nl + 1 :]
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
                        self._send(
                            protocol.error_frame(
                                None, "ETIMEDOUT", f"frame not completed within {self.frame_s:g} s: session closed"
                            )
                        )
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
            if req.op == protocol.BOARD_LOCK:
                self._board_lock(req)
                self.last_t = time.monotonic()
                return
            kwargs = handlers.arguments(req.op, req.args, self.max_bpf)
        except ProtocolError as exc:
            if exc.id is None and req is not None:
                exc.id = req.id
            self._send(exc.reply())
            return
        self._operate(req, kwargs)
        self.last_t = time.monotonic()

    def _hello(self, req: protocol.Request) -> None:
        if self.hello is not None:
            raise ProtocolError("EPROTO", "'hello' was already done in this session", req.id)
        version = protocol.choose_version(req.args["proto"])
        if version is None:
            raise ProtocolError(
                "EPROTONOSUPPORT",
                f"this agent speaks protocol {protocol.PROTO_MIN}.."
                f"{protocol.PROTO_MAX}, the client {req.args['proto'][0]}..{req.args['proto'][1]}",
                req.id,
            )
        from evl_net import __version__

        self.hello = {
            "proto": version,
            "agent": f"evl-tools {__version__}",
            "transport": self.backend.name,
            "abi": self.backend.abi(),
            "caps": list(protocol.CAPS),
            "limits": {
                "max_frame": protocol.MAX_FRAME,
                "max_bpf_frame": protocol.MAX_BPF_FRAME,
                "max_bpf": self.max_bpf,
                "max_depth": protocol.MAX_DEPTH,
                "idle_s": self.idle_s,
                "frame_s": self.frame_s,
                "request_s": self.request_s,
            },
        }
        if self.backend.notice:
            self.hello["notice"] = self.backend.notice
        self.log(f"session opened by {req.args['client']!r} (protocol {version}, transport {self.backend.name})")
        self._send(protocol.ok_frame(req.id, self.hello))

    def _board_lock(self, req: protocol.Request) -> None:
        """Hold the board's lock for the rest of the session (an apply's whole run), or release it."""
        hold = bool(req.args["hold"])
        if hold and not self.held:
            deadline = time.monotonic() + min(self.request_s, protocol.LOCK_WAIT_S)
            # the wait ends itself (EBUSY) at its deadline: the request's comes a little later, so that
            # a lock not had is answered as busy, never as a request that overran
            ok, value = self._execute(lambda: self.lock.acquire(deadline), deadline + LOCK_REPLY_S, req)
            if not ok:
                self._send(self._error_reply(req, value))
                return
            self.log("board lock held for the session")
        elif not hold and self.held:
            self.lock.release()
            self.log("board lock released")
        self.held = hold
        self._send(protocol.ok_frame(req.id, {"held": hold}))

    def _operate(self, req: protocol.Request, kwargs: dict[str, Any]) -> None:
        deadline = time.monotonic() + self.request_s
        ok, value = self._execute(lambda: self._run(req, kwargs, deadline), deadline, req)
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
            log = exc.log
            exc = exc.cause
        if isinstance(exc, ProtocolError):
            return exc.reply()
        if isinstance(exc, OSError):
            return protocol.oserror_frame(req.id, exc, log)
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
                self._send(
                    protocol.error_frame(
                        req.id,
                        "ETIMEDOUT",
                        f"{req.op} did not complete within {self.request_s:g} s: state unknown, session closed",
                    )
                )
                self.log(f"{req.op} overran its deadline: session cut", notice=True)
                raise _Stop(EXIT_CUT)

    def _run(self, req: protocol.Request, kwargs: dict[str, Any], deadline: float) -> tuple[dict[str, Any], list[str]]:
        """On the worker thread: open the transport, (lock,) run the handler, close."""
        spec = req.spec
        console = io.StringIO()
        locking = spec.mutation and not self.held
        if locking:
            self.lock.acquire(deadline)
        try:
            try:
                with self.backend.open() as transport:
                    if hasattr(transport, "console"):
                        transport.console = console
                    result = handlers.handle(transport, req.op, kwargs, req.args)
            except Exception as exc:
                if spec.mutation:
                    self.log(f"{summary(req.op, req.args)}: failed: {exc}", notice=True)
                raise OperationFailed(exc, console.getvalue().splitlines()) from exc
        finally:
            if locking:
                self.lock.release()
        if spec.mutation:
            changed = result["changed"]
            self.log(f"{summary(req.op, req.args)}: {'changed' if changed else 'unchanged'}", notice=changed)
        return result, console.getvalue().splitlines()
