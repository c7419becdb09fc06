"""``evl net``: parse, plan, run through a transport, format."""

from __future__ import annotations

import os
import sys
from typing import Any, Sequence

from evl_core.errors import EvlError, UsageError
from evl_core.hookspecs import Context
from evl_core.lazy import resolve
from evl_net import SUMMARY
from evl_net.cli import options
from evl_net.hookspecs import Action, Formatter, TransportInfo
from evl_net.registry import registered
from evl_net.engine.request import Request, Result

TRANSPORT_ENV = "EVL_NET_TRANSPORT"
REMOTE_ENV = "EVL_NET_REMOTE"
DEVDIR_ENV = "EVL_DEVDIR"


def usage(ctx: Context, actions: Sequence[Action] | None = None) -> None:
    """The C tool's usage on stderr; for a help request (``actions`` given), this tool's long options after it."""
    ctx.stderr.write(options.USAGE.format(prog=ctx.prog))
    if actions is not None:
        ctx.stderr.write(options.long_only_help(actions))


def run(argv: Sequence[str], ctx: Context) -> int:
    actions: list[Action] = registered(ctx, "evl_net_actions")
    if not argv:
        usage(ctx, actions)
        return 0
    try:
        request = options.parse(argv, actions, posixly_correct="POSIXLY_CORRECT" in ctx.env)
        if request.format == "list":
            return _list_formatters(ctx)
        warnings = options.check(request, actions)
    except options.DescriptionRequested:
        ctx.stdout.write(SUMMARY + "\n")
        return 0
    except options.HelpRequested:
        usage(ctx, actions)
        return 0
    except UsageError as exc:
        ctx.stderr.write(exc.format(ctx.prog) + "\n")
        usage(ctx)
        return 1
    for warning in warnings:
        ctx.stderr.write(f"{ctx.prog}: warning: {warning}\n")
    formatters = {f.name: f for f in registered(ctx, "evl_net_formatters")}
    if request.format and request.format not in formatters:
        raise EvlError(f"unknown formatter '{request.format}' (available: {', '.join(sorted(formatters))})")
    steps = plan(request, actions)
    if remote_wanted(request, ctx.env):
        from evl_net.engine import fleet

        boards = fleet.targets(request, ctx.env)
        if fleet.is_fleet(request, boards):
            return fleet.run(request, steps, boards, formatters, ctx)
    elif request.seen & REMOTE_ONLY:
        raise EvlError(f"--{sorted(request.seen & REMOTE_ONLY)[0]} applies to remote boards only")
    with select_transport(request, ctx) as transport:
        check_limits(request, transport)
        for action, argument in steps:
            result = resolve(action.run)(request, argument, transport)
            if result is not None:
                ctx.stdout.write(render(result, request, formatters))
                ctx.stdout.flush()
    return 0


def plan(request: Request, actions: Sequence[Action]) -> list[tuple[Action, Any]]:
    """The requested actions in the C tool's fixed order, each once."""
    chosen: dict[str, Action] = {}
    for action in actions:
        if action.name in request.actions:
            chosen.setdefault(action.name, action)
    ordered = sorted(chosen.values(), key=lambda a: a.order)
    return [(a, request.actions[a.name]) for a in ordered]


def check_limits(request: Request, transport: Any) -> None:
    """Bounds that depend on the board, checked before anything is changed."""
    if request.buffer_size:
        limit = 4 * transport.page_size()
        if request.buffer_size > limit:
            raise EvlError(f"invalid buffer size '{request.buffer_size}': the kernel accepts at most {limit} (4 x page size)")


def choose_formatter(result: Result, request: Request) -> str:
    if request.format:
        return request.format
    if request.json:
        return "json"
    if result.action == "query":
        if "interfaces" in result.data:
            return "table"
        return "terse" if result.data.get("modifiers") else "verbose"
    return "text"


def render(result: Result, request: Request, formatters: dict[str, Formatter]) -> str:
    name = choose_formatter(result, request)
    text = resolve(formatters[name].render)(result, request)
    if text is None and name != "text":
        text = resolve(formatters["text"].render)(result, request)
    return text or ""


#: Options that only make sense with remote boards.
REMOTE_ONLY = frozenset({"jobs", "jsonl", "accept-new-host-key", "ssh", "timeout"})


def remote_wanted(request: Request, env: Any) -> bool:
    """Whether the command goes to remote boards (decided without importing anything of remote).

    Boards named on the command line win over ``EVL_NET_TRANSPORT``; ``EVL_NET_REMOTE``
    applies when no transport is chosen.
    """
    if request.remotes or request.hosts:
        if request.transport not in (None, "remote"):
            raise EvlError(f"--remote and --hosts need the remote transport, not '{request.transport}'")
        return True
    name = request.transport or env.get(TRANSPORT_ENV) or "auto"
    return name == "remote" or (name == "auto" and bool(env.get(REMOTE_ENV)))


def select_transport(request: Request, ctx: Context) -> Any:
    env = ctx.env
    name = "remote" if remote_wanted(request, env) else request.transport or env.get(TRANSPORT_ENV) or "auto"
    if name == "auto":
        node = os.path.join(env.get(DEVDIR_ENV) or "/dev/evl", "net")
        name = "ioctl" if os.path.exists(node) else "sim"
        if name == "sim":
            ctx.stderr.write(f"{ctx.prog}: no EVL core here (no {node}): using the simulator\n")
    transports: dict[str, TransportInfo] = {t.name: t for t in registered(ctx, "evl_net_transports")}
    info = transports.get(name)
    if info is None:
        raise EvlError(f"unknown transport '{name}' (available: auto, {', '.join(sorted(transports))})")
    transport = resolve(info.factory)(request, env)
    if hasattr(transport, "console"):
        transport.console = ctx.stderr  # kernel log lines, as a console would show them
    return transport


def _list_formatters(ctx: Context) -> int:
    for formatter in sorted(registered(ctx, "evl_net_formatters"), key=lambda f: f.name):
        ctx.stdout.write(f"{formatter.name:<12} {formatter.summary}\n")
    return 0


def console_main() -> int:
    """The ``evl-net`` console script, so EVL's own C dispatcher can run this tool."""
    from evl_core.cli import main

    return main(["net", *sys.argv[1:]])
