"""``-N`` and ``-n``: set and show the global RX VLAN filter."""

from __future__ import annotations

from evl_core.errors import EvlError, UsageError
from evl_core.record import record
from evl_net.engine.request import OpResult, Request

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any, ClassVar

    from evl_net.transports.contract import Transport


@record(frozen=True)
class VlansSet(OpResult):
    """``cleared`` says what was asked (``-N`` alone), not what a read-back holds."""

    action: ClassVar[str] = "set-vlans"
    cleared: bool
    changed: bool
    vlans: str

    def text(self, request: Request) -> str:
        return "VLAN filter cleared\n" if self.cleared else ""


@record(frozen=True)
class VlansShown(OpResult):
    action: ClassVar[str] = "show-vlans"
    vlans: str
    ids: list[int]

    def text(self, request: Request) -> str:
        return self.vlans + "\n" if self.vlans else ""  # an empty filter prints nothing, as in C


def check_set(request: Request, text: str | None) -> None:
    if text == "":
        raise UsageError("empty VLAN id. list (-N alone clears the filter)")


def set_vlans(request: Request, text: str | None, transport: Transport) -> VlansSet:
    try:
        written = transport.set_vlans(text or "")
    except OSError as exc:
        raise EvlError.from_oserror(f"invalid VLAN id. list '{text or ''}'", exc) from None
    return VlansSet(text is None, written.changed, written.vlans)


def show_vlans(request: Request, argument: Any, transport: Transport) -> VlansShown:
    try:
        text = transport.get_vlans()
    except OSError as exc:
        raise EvlError.from_oserror("cannot read the VLAN filter", exc) from None
    from evl_net.kernel import vlans

    return VlansShown(text, sorted(vlans.parse(text)) if text else [])
