"""One agent session: frames in, replies out, one operation at a time on a worker thread.

Deadlines (frame, request, idle), end of input and write back-pressure are
watched here; what an operation does is :mod:`evl_net.agent.handlers`.
"""

from __future__ import annotations

import errno
import io
import os
import select
import threading
import time
from collections import deque

from evl_core.errors import EvlError
from evl_net.agent import handlers
from evl_net.agent.backend import Backend
from evl_net.agent.log import Log
from evl_net.boardlock import BoardLock, default_state_dir
from evl_net.transports.remote import protocol
from evl_net.transports.remote.protocol import ProtocolError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

CHUNK = 65536
EOF_GRACE_S = 0.5  # how long an operation may still run once the workstation has gone
#: Bytes of complete frames the session holds unhandled.  Past it the agent stops reading while an
#: operation runs: the pipe, sshd's channel window and TCP push back on the sender, and memory stays
#: bounded (one frame being read, up to MAX_BPF_FRAME, plus this).
QUEUE_MAX = protocol.MAX_BPF_FRAME
#: What a queued frame costs beyond its bytes (the object and its place in the queue), so that a flood
#: of tiny or empty lines is capped as surely as one of big ones.
FRAME_COST = 128
REMEMBERED_IDS = 1024
EXIT_CUT = 3
POLLRDHUP = getattr(select, "POLLRDHUP", 0x2000)  # the peer shut its side of a socket down
#: What a read-only key may run: every operation that changes nothing (board.lock is a writer's).
READS = tuple(op for op in protocol.CAPS if op != protocol.BOARD_LOCK and not protocol.is_mutation(op))


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


class Locked(Exception):
    """The board's lock was not had within the wait: nothing was done (answered ELOCKED, the session goes on)."""

    def __init__(self, waited: float) -> None:
        super().__init__(f"board lock not had within {waited:g} s")
        self.waited = waited


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
        allowed: frozenset[str] | None = None,
    ) -> None:
        self.backend = backend
        #: the operations this key may run (None: every one); others are answered EPERM
        self.allowed = allowed
        #: how long a mutation waits for the board's lock (the client's hello may ask for less)
        self.lock_wait = min(protocol.LOCK_WAIT_S, request_s / 2)
        self.rfd, self.wfd = rfd, wfd
        self.lock = lock or BoardLock(default_state_dir(backend.env))
        self.log = log or Log("none", {})
        self.idle_s, self.frame_s, self.request_s, self.max_bpf = idle_s, frame_s, request_s, max_bpf
        self.worker = _Worker()
        self.buf = bytearray()
        self.pending: deque[Any] = deque()  # complete frames (bytes) and queued ProtocolErrors, in order
        self.queued = 0  # bytes of the frames in pending
        self.discard = False
        self.frame_t0: float | None = None
        self.last_t = time.monotonic()
        self.eof = False
        self.hup = False  # the input hung up while unread bytes may remain
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
        # Only a request keeps the session alive (see _handle): bytes alone, empty lines included, do not.
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
                frame = bytes(self.buf)
                self.pending.append(frame)
                self.queued += len(frame) + FRAME_COST
                self.buf = bytearray()
            self.frame_t0 = None

    def _room(self) -> bool:
        """Whether more input may be read now: complete frames waiting and the frame being read are capped."""
        return self.queued < QUEUE_MAX and len(self.buf) <= protocol.MAX_BPF_FRAME

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
                self.log.event("reply not taken within the frame deadline: session cut", notice=True)
                raise _Stop(EXIT_CUT)

    # -- the loop ---------------------------------------------------------------------

    def serve(self) -> tuple[int, bool]:
        """Serve until EOF, idle or a cut; (exit status, an operation is still running)."""
        try:
            while True:
                while self.pending:
                    self._handle(self._next())
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
                        self.log.event("frame deadline expired: session cut", notice=True)
                        return EXIT_CUT, False
                else:
                    left = self.last_t + self.idle_s - now
                    if left <= 0:
                        self.log.event(f"no request for {self.idle_s:g} s: exiting")
                        return 0, False
                if select.select([self.rfd], [], [], left)[0]:
                    self._read_some()
        except _Stop as stop:
            return stop.code, self.worker.busy
        finally:
            self.lock.close()

    def _next(self) -> Any:
        item = self.pending.popleft()
        if isinstance(item, bytes):
            self.queued -= len(item) + FRAME_COST
        return item

    def _remember(self, rid: Any) -> bool:
        if rid in self.id_set:
            return False
        self.ids.append(rid)
        self.id_set.add(rid)
        if len(self.ids) > REMEMBERED_IDS:
            self.id_set.discard(self.ids.popleft())
        return True

    def _handle(self, item: Any) -> None:
        """One frame: its reply sent, then its audit line."""
        start = time.monotonic()
        req = None
        try:
            if isinstance(item, ProtocolError):
                raise item
            req = protocol.parse_request(item)
            self.last_t = start  # a request, even a refused one, keeps the session alive
            if not self._remember(req.id):
                raise ProtocolError(protocol.EDUPID, f"request id {req.id!r} was already used in this session", req.id)
            if req.op == "hello":
                frame, result = self._hello(req), "ok"
            elif self.hello is None:
                raise ProtocolError("EPROTO", "the first request of a session must be 'hello'", req.id)
            elif refused := self._refusal(req.op, req.id):
                raise refused
            elif req.op == protocol.BOARD_LOCK:
                frame, result = self._board_lock(req)
            else:
                frame, result = self._operate(req, handlers.arguments(req.op, req.args, self.max_bpf))
        except ProtocolError as exc:
            if exc.id is None and req is not None:
                exc.id = req.id
            # a key's policy comes before the schema: a refused operation gets EPERM, however it is spelt
            exc = self._refusal(req.op if req is not None else exc.op, exc.id) or exc
            frame, result = exc.reply(), f"error={exc.code}"
            if req is None and exc.op is not None:  # a request of a known operation, refused by its schema
                req = protocol.Request(exc.id, exc.op, {})
        try:
            self._send(frame)
        finally:
            self.log.request(req, result, time.monotonic() - start)
        if req is not None:
            self.last_t = time.monotonic()

    def _refusal(self, op: str | None, rid: Any) -> ProtocolError | None:
        """EPERM for an operation this key may not run (hello is always served), else None."""
        if op is None or op == "hello" or self.allowed is None or op in self.allowed:
            return None
        return ProtocolError("EPERM", f"'{op}' is not allowed for this key ({self.policy})", rid, op)

    @property
    def policy(self) -> str:
        return "the agent serves it reads only" if self.read_only else "the agent's --allow list"

    @property
    def read_only(self) -> bool:
        return self.allowed is not None and self.allowed == frozenset(READS)

    def _hello(self, req: protocol.Request) -> bytes:
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

        if "lock_wait" in req.args:
            self.lock_wait = min(self.lock_wait, float(req.args["lock_wait"]))
        self.hello = {
            "proto": version,
            "agent": f"evl-tools {__version__}",
            "transport": self.backend.name,
            "abi": self.backend.abi(),
            "caps": list(protocol.CAPS),
            "allowed": sorted(self.allowed) if self.allowed is not None else list(protocol.CAPS),
            "limits": {
                "max_frame": protocol.MAX_FRAME,
                "max_bpf_frame": protocol.MAX_BPF_FRAME,
                "max_bpf": self.max_bpf,
                "max_depth": protocol.MAX_DEPTH,
                "idle_s": self.idle_s,
                "frame_s": self.frame_s,
                "request_s": self.request_s,
                "lock_wait_s": self.lock_wait,
            },
        }
        if self.backend.notice:
            self.hello["notice"] = self.backend.notice
        # the client's own words go in as a field, escaped as arguments are: they cannot forge one
        self.log.event(
            f"session opened (protocol {version}, transport {self.backend.name}"
            + (f", {self.policy}" if self.allowed is not None else "")
            + ")",
            client=req.args["client"],
        )
        return protocol.ok_frame(req.id, self.hello)

    def _lock_deadline(self) -> float:
        return time.monotonic() + self.lock_wait

    def _board_lock(self, req: protocol.Request) -> tuple[bytes, str]:
        """Hold the board's lock for the rest of the session (an apply's whole run), or release it."""
        hold = bool(req.args["hold"])
        if hold and not self.held:
            deadline = self._lock_deadline()
            ok, value = self._execute(lambda: self._acquire(deadline), time.monotonic() + self.request_s, req)
            if not ok:
                return self._error_reply(req, value)
            self.log.event("board lock held for the session")
        elif not hold and self.held:
            self.lock.release()
            self.log.event("board lock released")
        self.held = hold
        return protocol.ok_frame(req.id, {"held": hold}), "held" if hold else "released"

    def _acquire(self, deadline: float) -> None:
        from evl_net.errors import KernelError

        try:
            self.lock.acquire(deadline)
        except KernelError as exc:
            if exc.errno != errno.EBUSY:
                raise
            raise Locked(self.lock_wait) from None

    def _operate(self, req: protocol.Request, kwargs: dict[str, Any]) -> tuple[bytes, str]:
        deadline = time.monotonic() + self.request_s
        ok, value = self._execute(lambda: self._run(req, kwargs, deadline), deadline, req)
        if not ok:
            return self._error_reply(req, value)
        result, log = value
        try:
            frame = protocol.ok_frame(req.id, result, log)
        except (TypeError, ValueError) as exc:
            return protocol.error_frame(req.id, "EIO", f"the agent could not encode the result: {exc}"), "error=EIO"
        if not req.spec.mutation:
            return frame, "ok"
        return frame, "changed" if result["changed"] else "unchanged"

    def _error_reply(self, req: protocol.Request, exc: BaseException) -> tuple[bytes, str]:
        log = None
        if isinstance(exc, OperationFailed):
            log = exc.log
            exc = exc.cause
        if isinstance(exc, Locked):
            msg = f"another session kept the board busy for {exc.waited:g} s: nothing was done"
            return protocol.error_frame(req.id, protocol.LOCKED, msg, errno=errno.EBUSY), f"error={protocol.LOCKED}"
        if isinstance(exc, ProtocolError):
            return exc.reply(), f"error={exc.code}"
        if isinstance(exc, OSError):
            code = errno.errorcode.get(exc.errno or 0, "EIO")
            return protocol.oserror_frame(req.id, exc, log), f"error={code}"
        if isinstance(exc, EvlError):
            code = errno.errorcode.get(exc.errno or 0, protocol.EVLERROR)
            frame = protocol.error_frame(req.id, protocol.EVLERROR, exc.message, errno=exc.errno, log=log)
            return frame, f"error={code}"
        self.log.event(f"{req.op}: internal error {type(exc).__name__}: {exc}", notice=True)
        msg = f"internal error in the agent: {type(exc).__name__}: {exc}"
        return protocol.error_frame(req.id, "EIO", msg, log=log), "error=EIO"

    def _execute(self, fn: Callable[[], Any], deadline: float, req: protocol.Request) -> tuple[bool, Any]:
        """Run fn on the worker; meanwhile keep reading input while there is room (EOF ends the session).

        When the queue is full the agent stops reading, and watches the input for a hang-up alone: the
        workstation leaving must still be seen.
        """
        self.worker.submit(fn)
        started = time.monotonic()
        gone: float | None = None  # when the workstation was seen leaving
        poller = select.poll()
        poller.register(self.worker.rfd, select.POLLIN)
        while True:
            now = time.monotonic()
            if (self.eof or self.hup) and gone is None:
                gone = now
            limit = min(deadline, gone + EOF_GRACE_S) if gone is not None else deadline
            watching = not self.eof and not self.hup
            reading = watching and self._room()
            if watching:
                poller.register(self.rfd, (select.POLLIN if reading else 0) | POLLRDHUP)
            else:
                try:
                    poller.unregister(self.rfd)
                except KeyError:
                    pass
            ready = dict(poller.poll(max(0.0, limit - now) * 1000 + 1))
            if self.worker.rfd in ready:
                result = self.worker.collect()
                if self.frame_t0 is not None:
                    self.frame_t0 = time.monotonic()  # a frame that arrived meanwhile gets its full time
                self.hup = False  # what is left of the input is read as usual, up to its EOF
                return result
            events = ready.get(self.rfd, 0)
            if events & select.POLLIN and reading:
                self._read_some()
                continue
            if events & (select.POLLHUP | select.POLLERR | POLLRDHUP | select.POLLNVAL) and watching:
                self.hup = True
                continue
            now = time.monotonic()
            if gone is not None and now >= gone + EOF_GRACE_S:
                self.log.request(req, "abandoned", now - started)  # its effect is unknown: audited as such
                self.log.event(f"{req.op} still running when the workstation left: exiting", notice=True)
                raise _Stop(0)
            if now >= deadline:
                self._send(
                    protocol.error_frame(
                        req.id,
                        "ETIMEDOUT",
                        f"{req.op} did not complete within {self.request_s:g} s: state unknown, session closed",
                    )
                )
                self.log.request(req, "error=ETIMEDOUT", now - started)
                self.log.event(f"{req.op} overran its deadline: session cut", notice=True)
                raise _Stop(EXIT_CUT)

    def _run(self, req: protocol.Request, kwargs: dict[str, Any], deadline: float) -> tuple[dict[str, Any], list[str]]:
        """On the worker thread: open the transport, (lock,) run the handler, close."""
        spec = req.spec
        console = io.StringIO()
        locking = spec.mutation and not self.held
        if locking:
            self._acquire(min(deadline, self._lock_deadline()))
        try:
            try:
                with self.backend.open() as transport:
                    if hasattr(transport, "console"):
                        transport.console = console
                    result = handlers.handle(transport, req.op, kwargs, req.args)
            except Exception as exc:
                raise OperationFailed(exc, console.getvalue().splitlines()) from exc
        finally:
            if locking:
                self.lock.release()
        return result, console.getvalue().splitlines()
