"""Claims ``--pool-usage`` too, and ``query`` (a built-in): both collisions are refused."""

from __future__ import annotations

from evl_core.getopt import NO_ARGUMENT
from evl_core.hookspecs import hookimpl
from evl_net.hookspecs import Formatter, Operation


@hookimpl
def evl_net_operations() -> list[Operation]:
    return [
        Operation("usage-twin", 80, "pool-usage", None, NO_ARGUMENT, "evl_netx_twin:nothing", "a twin"),
        Operation("query", 90, "query-twice", None, NO_ARGUMENT, "evl_netx_twin:nothing", "a takeover"),
    ]


@hookimpl
def evl_net_formatters() -> list[Formatter]:
    return [Formatter("json", "a takeover", "evl_netx_twin:nothing")]
