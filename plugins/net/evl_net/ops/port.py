"""``-e`` and ``-d``: enable and disable an out-of-band port."""

from __future__ import annotations

from evl_core.errors import EvlError
from evl_core.record import record
from evl_net.engine.request import OpResult, Request

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any, ClassVar

    from evl_net.transports.contract import Transport


@record(frozen=True)
class Enabled(OpResult):
    action: ClassVar[str] = "enable"
    ifname: str
    changed: bool
    pool_size: int | None
    buffer_size: int | None

    def text(self, request: Request) -> str:
        return ""


@record(frozen=True)
class Disabled(OpResult):
    action: ClassVar[str] = "disable"
    ifname: str
    changed: bool

    def text(self, request: Request) -> str:
        return ""


def check_enable(request: Request, argument: Any, transport: Transport) -> None:
    """The buffer size bound depends on the board (4 x its page size): checked before anything runs."""
    if request.buffer_size:
        limit = 4 * transport.page_size()
        if request.buffer_size > limit:
            raise EvlError(
                f"invalid buffer size '{request.buffer_size}': the kernel accepts at most {limit} (4 x page size)"
            )


def enable(request: Request, argument: Any, transport: Transport) -> Enabled:
    ifname = request.ifname or ""
    try:
        port = transport.enable_port(ifname, request.pool_size or 0, request.buffer_size or 0)
    except OSError as exc:
        raise EvlError.from_oserror(f"cannot enable out-of-band port on {ifname}", exc) from None
    return Enabled(ifname, port.changed, port.pool_size, port.buffer_size)


def disable(request: Request, argument: Any, transport: Transport) -> Disabled:
    ifname = request.ifname or ""
    try:
        change = transport.disable_port(ifname)
    except OSError as exc:
        raise EvlError.from_oserror(f"cannot disable out-of-band port on {ifname}", exc) from None
    return Disabled(ifname, change.changed)
