"""``evl net``: parse, plan, run through a transport, format."""

from __future__ import annotations

from evl_core.commands import Context
from evl_core.errors import EvlError, UsageError
from evl_core.streams import OutputError
from evl_net import SUMMARY
from evl_net.cli import options
from evl_net.cli.usage import USAGE
from evl_net.engine import execute, render, select
from evl_net.engine.request import OpResult, Request, changed
from evl_net.registrations import Formatter, Operation, TransportInfo
from evl_net.registry import Registered, named, operations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any


def usage(ctx: Context, ops: Sequence[Operation] | None = None) -> None:
    """The C tool's usage on stderr; for a help request (``ops`` given), this tool's long options after it."""
    ctx.stderr.write(USAGE.format(prog=ctx.prog))
    if ops is not None:
        ctx.stderr.write(options.long_only_help(ops))


def _blocked_options(found: Registered[Operation]) -> dict[str, str]:
    """Long option -> the error for it, for the options two plugins claim."""
    out = {}
    for key in found.conflicts:
        if key.startswith("option --"):
            out[key[len("option --") :]] = found.conflict_message(key) or key
    return out


def run(argv: Sequence[str], ctx: Context) -> int:
    found = operations(ctx)
    ops = found.records
    if not argv:
        usage(ctx, ops)
        return 0
    try:
        request = options.parse(
            argv, ops, posixly_correct="POSIXLY_CORRECT" in ctx.env, blocked=_blocked_options(found)
        )
        if request.format == "":
            raise UsageError("--format needs a formatter name (see --format=list)")
        if request.board == "":
            raise UsageError("--board needs a board name or file")
        if request.transport == "":
            raise UsageError("--transport needs a transport name (auto, sim, ioctl or remote)")
        if request.format and request.json and request.format != "json":
            raise UsageError(f"--json and --format={request.format} exclude each other")
        if request.format == "list":
            return _list_formatters(ctx)
        warnings = options.check(request, ops)
    except options.DescriptionRequested:
        ctx.stdout.write(SUMMARY + "\n")
        return 0
    except options.HelpRequested:
        usage(ctx, ops)
        return 0
    except UsageError as exc:
        ctx.stderr.write(exc.format(ctx.prog) + "\n")
        usage(ctx)
        return 1
    for warning in warnings:
        ctx.stderr.write(f"{ctx.prog}: warning: {warning}\n")
    try:
        return _execute(request, ops, ctx)
    except EvlError as exc:
        if request.json and not isinstance(exc, OutputError):
            _json_error(exc, ctx)
        raise


def _execute(request: Request, ops: Sequence[Operation], ctx: Context) -> int:
    formatters = _formatters(ctx)
    if request.format and request.format not in formatters:
        raise EvlError(f"unknown formatter '{request.format}' (available: {', '.join(sorted(formatters))})")
    steps = execute.plan(request, ops)
    if select.remote_wanted(request, ctx.env):
        from evl_net.engine import fleet

        boards = fleet.targets(request, ctx.env)
        fleet.parse_jobs(request)  # a bad --jobs is an error with one board too
        if fleet.is_fleet(request, boards):
            if request.watch is not None:
                raise EvlError("--watch follows one board: give one --remote")
            return fleet.run(request, steps, boards, formatters, ctx)
    elif request.seen & select.REMOTE_ONLY:
        raise EvlError(f"--{sorted(request.seen & select.REMOTE_ONLY)[0]} applies to remote boards only")

    if request.watch is not None:
        from evl_net.engine import watch
        from evl_net.ops import query

        interval, count = watch.parse(request)
        if select.remote_wanted(request, ctx.env):  # one session for the whole watch
            with transport_for(request, ctx) as transport:
                limits = (transport.session.hello or {}).get("limits", {})
                idle = limits.get("idle_s")
                if isinstance(idle, int | float) and interval >= idle:  # each sample is what keeps the session
                    raise EvlError(
                        f"--watch={request.watch}: the board's agent ends a session idle for {idle:g} s: "
                        "watch it more often than that"
                    )
                import contextlib

                session = contextlib.nullcontext(transport)
                read = query.sampler(request, lambda: session)
                return watch.run(request, read, interval, count, ctx.stdout, transport.board)
        # a local board is opened for each sample: between samples it is free for others (evl sim rx...)
        first: list[Any] = [transport_for(request, ctx)]  # opened here, so that a bad board fails at once

        def open_board() -> Any:
            return first.pop() if first else transport_for(request, ctx, notice=False)

        read = query.sampler(request, open_board)
        return watch.run(request, read, interval, count, ctx.stdout, request.board or "this board")

    done: list[str] = []

    def show(result: OpResult) -> None:
        if changed(result):
            ifname = getattr(result, "ifname", None)
            done.append(result.action + (f" on {ifname}" if ifname else ""))
        try:
            ctx.stdout.write(render.render(result, request, formatters))
            ctx.stdout.flush()
        except OutputError as exc:
            if done:  # the board changed all the same: say so, a script must not assume it did not
                raise OutputError(exc.errno, f"write error after the board was changed ({', '.join(done)})") from None
            raise

    with transport_for(request, ctx) as transport:
        execute.run_all(request, steps, transport, show)
    return 0


def _json_error(exc: EvlError, ctx: Context) -> None:
    """``--json``: a failure is a JSON object on stdout too (the line on stderr stays)."""
    import errno as errno_names
    import json

    from evl_core.errors import strerror

    error = {
        "message": exc.message + (f": {strerror(exc.errno)}" if exc.errno else ""),
        "errno": exc.errno,
        "code": errno_names.errorcode.get(exc.errno or 0),
    }
    ctx.stdout.write(json.dumps({"error": error}, separators=(",", ":")) + "\n")
    ctx.stdout.flush()


def _formatters(ctx: Context) -> dict[str, Formatter]:
    found = named(ctx, "evl_net_formatters", Formatter, "formatter")
    return {f.name: f for f in found.records}


def transport_for(request: Request, ctx: Context, notice: bool = True) -> Any:
    """The transport the command line (or the environment) asks for, open."""
    if select.remote_wanted(request, ctx.env):
        name = "remote"
    else:
        name, node = select.local_name(request.transport, ctx.env)
        if node is not None and name == "sim" and notice:
            ctx.stderr.write(f"{ctx.prog}: no EVL core here (no {node}): using the simulator\n")
    found = named(ctx, "evl_net_transports", TransportInfo, "transport")
    info = select.find(name, found.records, found.conflicts)
    return select.open_transport(info, request, ctx.env, console=ctx.stderr)


def _list_formatters(ctx: Context) -> int:
    for formatter in sorted(_formatters(ctx).values(), key=lambda f: f.name):
        ctx.stdout.write(f"{formatter.name:<12} {formatter.summary}\n")
    return 0
