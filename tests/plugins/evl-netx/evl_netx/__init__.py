"""A third-party ``evl net`` operation: ``--pool-usage`` prints how many pool buffers a port has in use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from evl_core.getopt import NO_ARGUMENT
from evl_core.hookspecs import hookimpl
from evl_net.engine.request import OpResult
from evl_net.hookspecs import Operation


@dataclass(frozen=True)
class PoolUsage(OpResult):
    action: ClassVar[str] = "pool-usage"
    ifname: str
    in_use: int
    total: int

    def text(self, request: Any) -> str:
        return f"{self.ifname}: {self.in_use} of {self.total} buffers in use\n"


def run(request: Any, argument: Any, transport: Any) -> PoolUsage:
    stat = transport.get_stat(request.ifname)
    return PoolUsage(request.ifname, stat.skb_total - stat.skb_free, stat.skb_total)


@hookimpl
def evl_net_operations() -> list[Operation]:
    return [
        Operation(
            "pool-usage",
            80,
            "pool-usage",
            None,
            NO_ARGUMENT,
            "evl_netx:run",
            "print how many buffers of the pool of the port given with -i are in use",
            needs_interface=True,
            requests=("get_stat",),
        )
    ]
