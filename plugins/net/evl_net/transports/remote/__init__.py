"""The remote transport: each operation is a request to one board's ``evl net-agent``, over SSH.

``evl net --remote=board -Q -i eth0.42`` runs the very same actions as local
use; only the operations travel, so the output (and the error messages, with
the board's errno and kernel detail) is what local use prints on the board.
Several boards go through :mod:`evl_net.engine.fleet` instead.
"""

from __future__ import annotations

from evl_core.errors import EvlError
from evl_net.transports.contract import BY_METHOD, Primitive, TransportBase

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Mapping
    from typing import Any

PROG = "evl-net"  # what `evl net` and `evl-net` both call themselves in messages


def factory(request: Any, env: Mapping[str, str]) -> RemoteTransport:
    """Open a session with the one board the command line names."""
    import asyncio

    from evl_net.transports.remote.client import Options, Session
    from evl_net.transports.remote.targets import targets as named_targets

    targets = named_targets(request, env)
    if len(targets) != 1:
        raise EvlError(f"{len(targets)} boards given: the remote transport serves one (several go to the fleet)")
    session = Session(targets[0], Options.from_request(request, env))
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(session.open())
    except BaseException:
        try:
            loop.run_until_complete(session.close())
        finally:
            loop.close()
        raise

    def close() -> None:
        try:
            loop.run_until_complete(session.close())
        finally:
            loop.close()

    transport = RemoteTransport(session, loop.run_until_complete, close)
    transport.notes = [f"{PROG}: {session.label}: ssh: {w}" for w in session.ssh_warnings]
    notice = (session.hello or {}).get("notice")
    if isinstance(notice, str):
        transport.notes.append(f"{PROG}: {session.label}: {notice}")
    return transport


def _malformed(board: str, what: str) -> Any:
    from evl_net.transports.remote.client import INCOMPATIBLE, SessionError

    raise SessionError(board, INCOMPATIBLE, f"malformed result from the agent: {what}")


class RemoteTransport(TransportBase):
    """The transport contract as requests on an open session: one method per row of PRIMITIVES.

    ``run(coroutine)`` runs a request to completion: ``loop.run_until_complete``
    for one board, or a hand-over to the fleet's event loop from a worker
    thread.  Each result is read back strictly into its record type, so a
    board answers exactly what a local transport would return.
    """

    name = "remote"

    def __init__(
        self,
        session: Any,
        run: Callable[[Coroutine[Any, Any, Any]], Any],
        on_close: Callable[[], None] | None = None,
        console: Any = None,
    ) -> None:
        self.session = session
        self._run = run
        self._on_close = on_close
        self.console = console
        self.notes: list[str] = []

    @property
    def board(self) -> str:
        return str(self.session.label)

    def close(self) -> None:
        self._flush_notes()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()

    def _flush_notes(self) -> None:
        if self.notes and self.console is not None:
            for note in self.notes:
                self.console.write(note + "\n")
            self.console.flush()
        self.notes = []

    def call(self, primitive: Primitive, *args: Any, **kwargs: Any) -> Any:
        """Run one primitive on the board; its typed result, or the board's error as local use raises it."""
        from evl_net.model import ShapeError, from_json
        from evl_net.transports.contract import result_type
        from evl_net.transports.remote import protocol
        from evl_net.transports.remote.client import raise_for

        # strict=False: the arguments not given positionally come by keyword
        values = dict(zip((a[0] for a in primitive.args), args, strict=False), **kwargs)
        if set(values) != {a[0] for a in primitive.args}:
            raise TypeError(f"{primitive.method}() takes {', '.join(a[0] for a in primitive.args)}")
        self._flush_notes()
        reply = self._run(self.session.call(primitive.wire, protocol.encode_args(primitive, values)))
        if reply.log and self.console is not None:
            for line in reply.log:
                self.console.write(line + "\n")
            self.console.flush()
        result = raise_for(reply, self.board)
        value = result.get("data") if primitive.mutates else result.get("value")
        try:
            return from_json(result_type(primitive), value, primitive.wire)
        except ShapeError as exc:
            _malformed(self.board, str(exc))

    def hold_board_lock(self, hold: bool) -> None:
        """Hold (or release) the board's mutation lock for the rest of the session: a whole apply."""
        import errno

        from evl_net.errors import KernelError
        from evl_net.transports.remote import protocol
        from evl_net.transports.remote.client import BUSY, SessionError, raise_for

        try:
            raise_for(self._run(self.session.call(protocol.BOARD_LOCK, {"hold": int(hold)})), self.board)
        except SessionError as exc:
            if exc.status != BUSY:
                raise
            # what a local apply says of a lock it could not take (evl net-config: "cannot lock the board")
            raise KernelError(errno.EBUSY, "another session kept the board busy") from None

    def __getattr__(self, method: str) -> Callable[..., Any]:
        primitive = BY_METHOD.get(method)
        if primitive is None:
            raise AttributeError(method)
        return lambda *args, **kwargs: self.call(primitive, *args, **kwargs)
