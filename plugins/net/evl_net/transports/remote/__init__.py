"""The remote transport: each operation is a request to one board's ``evl net-agent``, over SSH.

``evl net --remote=board -Q -i eth0.42`` runs the very same actions as local
use; only the operations travel, so the output (and the error messages, with
the board's errno and kernel detail) is what local use prints on the board.
Several boards go through :mod:`evl_net.engine.fleet` instead.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Mapping, Sequence

from evl_core.errors import EvlError
from evl_net.transports import DevStat, Interface, Transport

PROG = "evl-net"  # what `evl net` and `evl-net` both call themselves in messages


def factory(request: Any, env: Mapping[str, str]) -> "RemoteTransport":
    """Open a session with the one board the command line names."""
    import asyncio

    from evl_net.engine import fleet
    from evl_net.transports.remote.client import Options, Session

    targets = fleet.targets(request, env)
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


def _int(value: Any, what: str, board: str) -> int:
    if type(value) is not int:
        _malformed(board, f"{what} is not an integer")
    return value


class RemoteTransport(Transport):
    """The Transport operations as requests on an open session.

    ``run(coroutine)`` runs a request to completion: ``loop.run_until_complete``
    for one board, or a hand-over to the fleet's event loop from a worker thread.
    """

    name = "remote"

    def __init__(self, session: Any, run: Callable[[Awaitable[Any]], Any], on_close: Callable[[], None] | None = None,
                 console: Any = None) -> None:
        self.session = session
        self._run = run
        self._on_close = on_close
        self.console = console
        self.notes: list[str] = []

    @property
    def board(self) -> str:
        return self.session.label

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

    def _call(self, op: str, args: Mapping[str, Any]) -> dict[str, Any]:
        from evl_net.transports.remote.client import raise_for

        self._flush_notes()
        reply = self._run(self.session.call(op, args))
        if reply.log and self.console is not None:
            for line in reply.log:
                self.console.write(line + "\n")
            self.console.flush()
        return raise_for(reply, self.board)

    def _mutation(self, op: str, args: Mapping[str, Any]) -> dict[str, Any]:
        result = self._call(op, args)
        data = result.get("data")
        if not isinstance(data, dict):
            _malformed(self.board, f"{op} without data")
        return data

    # -- the operations ---------------------------------------------------------------

    def page_size(self) -> int:
        return _int(self._call("page_size", {}).get("page_size"), "page_size", self.board)

    def enable_port(self, ifname: str, pool_size: int, buffer_size: int) -> dict[str, Any]:
        return self._mutation("port.enable", {"ifname": ifname, "pool_size": pool_size, "buffer_size": buffer_size})

    def disable_port(self, ifname: str) -> dict[str, Any]:
        return self._mutation("port.disable", {"ifname": ifname})

    def get_stat(self, ifname: str) -> DevStat:
        data = self._call("stat.get", {"ifname": ifname})
        stat = DevStat()
        for key in DevStat.COUNTERS:
            setattr(stat, key, _int(data.get(key, 0), key, self.board))
        for key in ("oob_capable", "oob_port"):
            value = data.get(key, False)
            if type(value) is not bool:
                _malformed(self.board, f"{key} is not a boolean")
            setattr(stat, key, value)
        return stat

    def set_rx_filter(self, ifname: str, obj: bytes | None, obj_name: str | None) -> dict[str, Any]:
        if obj is None:
            return self._mutation("bpf.remove", {"ifname": ifname})
        from evl_net.transports.remote import protocol

        label = (obj_name or "object").encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        return self._mutation("bpf.load", protocol.bpf_args(ifname, obj, label[:protocol.MAX_LABEL]))

    def solicit(self, host: str, ifname: str | None, flags: int) -> dict[str, Any]:
        return self._mutation("solicit", {"host": host, "ifname": ifname, "flags": flags})

    def set_vlans(self, text: str) -> dict[str, Any]:
        return self._mutation("vlans.set", {"text": text})

    def get_vlans(self) -> str:
        value = self._call("vlans.get", {}).get("vlans")
        if not isinstance(value, str):
            _malformed(self.board, "vlans is not a string")
        return value

    def interfaces(self) -> Sequence[Interface]:
        rows = self._call("interfaces", {}).get("interfaces")
        if not isinstance(rows, list):
            _malformed(self.board, "interfaces is not a list")
        out = []
        for row in rows:
            if (not isinstance(row, dict) or not isinstance(row.get("name"), str)
                    or type(row.get("oob_port")) is not bool or type(row.get("up")) is not bool):
                _malformed(self.board, "an interface is not {name, oob_port, up}")
            out.append(Interface(name=row["name"], oob_port=row["oob_port"], up=row["up"]))
        return out
