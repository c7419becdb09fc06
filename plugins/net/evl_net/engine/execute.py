"""Plan and run ``evl net`` operations on one board: the C tool's order, checks before changes."""

from __future__ import annotations

from evl_core.lazy import resolve
from evl_net.engine.request import OpResult, Request
from evl_net.registrations import Operation

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from typing import Any

    from evl_net.transports.contract import Transport

    Step = tuple[Operation, Any]


def plan(request: Request, operations: Sequence[Operation]) -> list[Step]:
    """The requested operations in the C tool's fixed order, each once, with their arguments."""
    chosen: dict[str, Operation] = {}
    for op in operations:
        if op.name in request.actions:
            chosen.setdefault(op.name, op)
    ordered = sorted(chosen.values(), key=lambda op: op.order)
    return [(op, request.actions[op.name]) for op in ordered]


def check(request: Request, steps: Sequence[Step]) -> None:
    """Each operation's own checks of its argument, before any board is reached."""
    for op, argument in steps:
        if op.check is not None:
            resolve(op.check)(request, argument)


def run(request: Request, steps: Sequence[Step], transport: Transport) -> Iterator[OpResult]:
    """Run the steps on one board, yielding each result as it comes; the first failure stops the run.

    Board-dependent checks (``precheck``) all run before the first operation,
    so a bad value changes nothing.
    """
    for op, argument in steps:
        if op.precheck is not None:
            resolve(op.precheck)(request, argument, transport)
    for op, argument in steps:
        result = resolve(op.run)(request, argument, transport)
        if result is not None:
            yield result


def run_all(
    request: Request, steps: Sequence[Step], transport: Transport, on_result: Callable[[OpResult], None] | None = None
) -> list[OpResult]:
    """:func:`run`, collected (and handed to ``on_result`` as each arrives)."""
    out = []
    for result in run(request, steps, transport):
        out.append(result)
        if on_result is not None:
            on_result(result)
    return out
