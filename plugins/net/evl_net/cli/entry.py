"""The ``net`` command's handler: the help here, the rest in :mod:`evl_net.cli`."""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any


def run(argv: Sequence[str], ctx: Any) -> int:
    if not argv or list(argv) in (["-h"], ["--help"]):
        from evl_net.cli.options import long_only_help
        from evl_net.cli.usage import USAGE
        from evl_net.registry import operations

        ctx.stderr.write(USAGE.format(prog=ctx.prog) + long_only_help(operations(ctx).records))
        return 0
    from evl_net.cli.main import run as run_command

    return run_command(argv, ctx)
