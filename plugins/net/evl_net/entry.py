"""The ``net`` command's handler: the cheap answers here, the rest in :mod:`evl_net.cli`."""

from __future__ import annotations

from typing import Any, Sequence


def run(argv: Sequence[str], ctx: Any) -> int:
    if not argv or list(argv) in (["-h"], ["--help"]):
        from evl_net.usage import USAGE

        ctx.stderr.write(USAGE.format(prog=ctx.prog))
        return 0
    from evl_net.cli import run as run_command

    return run_command(argv, ctx)
