"""The library API: open a board, run ``evl net`` operations on it, get typed results.

::

    from evl_net import api

    with api.open_board(transport="sim", board="manual") as board:
        board.enable("eth0.42", pool_size=4096)
        board.set_vlans("42")
        print(board.query("eth0.42").stat.skb_total)      # 4096

Every method runs the very operation ``evl net`` runs (same checks, same
order, same errors: :class:`evl_core.errors.EvlError`, worded as the
command words them), through any registered transport: ``"sim"``,
``"ioctl"``, ``"remote"`` (with ``remote="user@host"``) or ``"auto"``.
Results are the operations' records (:mod:`evl_net.ops`); ``to_json()``
gives the form ``evl net --json`` prints.  A simulated board holds the
simulator state's lock while it is open, as one ``evl net`` invocation does:
keep boards open for a batch of operations, not for the life of a program.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, TextIO

from evl_core.errors import EvlError
from evl_net.engine import execute, select
from evl_net.engine.request import OpResult, Request
from evl_net.hookspecs import Operation, TransportInfo


class Board:
    """One board, open through one transport; use it as a context manager (or call :meth:`close`)."""

    def __init__(self, transport: Any, operations: list[Operation]) -> None:
        self.transport = transport
        self._operations = operations

    def __enter__(self) -> Board:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    @property
    def operations(self) -> list[str]:
        """The names of the operations this board can run (built-ins and plugins')."""
        return sorted({op.name for op in self._operations})

    def run(self, operation: str, argument: Any = None, **fields: Any) -> OpResult:
        """Run one operation by name; ``fields`` are :class:`~evl_net.engine.request.Request` fields (``ifname``...)."""
        seen = fields.pop("_seen", ())
        known = Request.__dataclass_fields__
        unknown = sorted(set(fields) - set(known))
        if unknown:
            raise EvlError(f"{operation}: unknown field '{unknown[0]}' (fields: {', '.join(sorted(known))})")
        request = Request(**fields)
        request.actions[operation] = argument
        request.seen.update(seen)
        steps = execute.plan(request, self._operations)
        if not steps:
            raise EvlError(f"no operation '{operation}' (available: {', '.join(self.operations)})")
        for op, _arg in steps:
            if op.needs_interface and not request.ifname and not request.all_interfaces:
                raise EvlError(f"{operation}: a network interface must be specified (ifname=...)")
            if op.has_arg == 0 and argument is not None:
                raise EvlError(f"{operation} takes no argument")
        execute.check(request, steps)
        (result,) = execute.run_all(request, steps, self.transport)
        return result

    # -- the built-in operations, by name --------------------------------------------------

    def enable(self, ifname: str, pool_size: int = 0, buffer_size: int = 0) -> Any:
        pool = _size(pool_size, "pool size", 32768)
        buf = _size(buffer_size, "buffer size", 2**64 - 1)  # the page-size bound is checked on the board
        return self.run("enable", ifname=ifname, pool_size=pool or None, buffer_size=buf or None)

    def disable(self, ifname: str) -> Any:
        return self.run("disable", ifname=ifname)

    def set_filter(self, ifname: str, path: str | os.PathLike[str] | None) -> Any:
        """Install the eBPF object at ``path`` as the port's RX filter, or remove the filter (None)."""
        return self.run("filter", None if path is None else os.fspath(path), ifname=ifname)

    def set_vlans(self, vlans: str | Iterable[int] | None) -> Any:
        """Set the global RX VLAN filter (kernel list syntax or ids); None clears it."""
        if vlans is not None and not isinstance(vlans, str):
            from evl_net.kernel import vlans as syntax

            try:
                ids = sorted({_vid(v) for v in vlans})
            except TypeError:
                raise EvlError(f"invalid VLAN ids {vlans!r}: expected a list string or integers") from None
            vlans = syntax.format(ids) or None
        return self.run("set-vlans", vlans)

    def vlans(self) -> Any:
        return self.run("show-vlans")

    def solicit(self, host: str, ifname: str | None = None, permanent: bool = False, may_route: bool = False) -> Any:
        seen = ["solicit-permanent"] if permanent else []
        return self.run("solicit", host, ifname=ifname, gateway=may_route, _seen=seen)

    def query(self, ifname: str) -> Any:
        return self.run("query", ifname=ifname)

    def query_all(self) -> Any:
        return self.run("query", all_interfaces=True)


def _size(value: Any, what: str, limit: int) -> int:
    if type(value) is not int or not 0 <= value <= limit:
        raise EvlError(f"invalid {what} {value!r}: expected an integer in 0..{limit}")
    return value


def _vid(value: Any) -> int:
    if type(value) is not int or not 0 <= value <= 4095:
        raise EvlError(f"invalid VLAN id {value!r}: expected an integer in 0..4095")
    return value


def _context(env: Mapping[str, str], stderr: TextIO) -> Any:
    from evl_core import plugins
    from evl_core.hookspecs import Context

    registry = plugins.load(stderr=stderr, env=dict(env))
    return Context(
        prog="evl-net",
        name="net",
        plugin_manager=registry.plugin_manager,
        commands=registry.commands,
        cmddir="",
        stdout=io.StringIO(),
        stderr=stderr,
        env=env,
        plugin_labels=registry.labels,
    )


def open_board(
    transport: str = "auto",
    board: str | None = None,
    remote: str | None = None,
    env: Mapping[str, str] | None = None,
    console: TextIO | None = None,
) -> Board:
    """Open a board: ``transport`` auto, sim, ioctl or remote; ``board`` a simulated board (file or name);
    ``remote`` ``[user@]host[:port]`` for the remote transport.  ``console`` receives kernel log lines
    and warnings (default: dropped)."""
    from evl_net.registry import named, operations

    env = dict(os.environ if env is None else env)
    console = console if console is not None else io.StringIO()
    ctx = _context(env, console)
    request = Request(transport=transport, board=board, remotes=[remote] if remote else [])
    if remote and transport not in ("auto", "remote"):
        raise EvlError(f"a remote board needs the remote transport, not '{transport}'")
    name = "remote" if remote else select.local_name(None if transport == "auto" else transport, env)[0]
    found = named(ctx, "evl_net_transports", TransportInfo, "transport")
    info = select.find(name, found.records, found.conflicts)
    return Board(select.open_transport(info, request, env, console), operations(ctx).records)
