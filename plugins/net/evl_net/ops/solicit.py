"""``-s`` and ``-S``: solicit a peer into the out-of-band ARP front cache."""

from __future__ import annotations

import errno

from evl_core.errors import EvlError, UsageError
from evl_core.record import record
from evl_net.engine.request import OpResult, Request
from evl_net.transports import NEIGH_MAYROUTE, NEIGH_PERMANENT

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import ClassVar

    from evl_net.transports.contract import Transport


@record(frozen=True)
class Solicited(OpResult):
    action: ClassVar[str] = "solicit"
    ifname: str | None
    host: str
    ip: str
    permanent: bool
    may_route: bool
    changed: bool

    def text(self, request: Request) -> str:
        return ""


def check(request: Request, host: str) -> None:
    if host == "broadcast" and request.ifname is None:
        raise UsageError("soliciting 'broadcast' needs an interface: add -i <ifname>")


def run(request: Request, host: str, transport: Transport) -> Solicited:
    flags = NEIGH_MAYROUTE if request.gateway else 0
    if "solicit-permanent" in request.seen:
        flags |= NEIGH_PERMANENT
    try:
        done = transport.solicit(host, request.ifname, flags)
    except OSError as exc:
        if exc.errno == errno.ESRCH:
            raise EvlError(f"invalid host/IP address '{host}'") from None
        # A failed socket step names itself (its stage); the request itself "did not respond".
        raise EvlError.from_oserror(f"{host} did not respond", exc) from None
    return Solicited(request.ifname, host, done.ip, done.permanent, done.may_route, done.changed)
