"""``-F``: install an eBPF RX filter on a port, or remove it."""

from __future__ import annotations

from evl_core.errors import EvlError, shown
from evl_core.files import MiB, read_regular
from evl_core.record import record
from evl_net.engine.request import OpResult, Request
from evl_net.model import optional

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import ClassVar

    from evl_net.transports.contract import Transport

#: The largest eBPF object read (real filters are a few KiB; the remote protocol caps what it carries too).
OBJECT_MAX = 64 * MiB


@record(frozen=True)
class FilterSet(OpResult):
    """``object`` is the path given, None for a removal."""

    action: ClassVar[str] = "filter"
    ifname: str
    object: str | None
    changed: bool
    program: str | None = optional()
    section: str | None = optional()

    def text(self, request: Request) -> str:
        # The C tool says nothing of an installation (the kernel logs it) and this of a removal.
        return f"eBPF module removed from {self.ifname}\n" if self.object is None else ""


def run(request: Request, path: str | None, transport: Transport) -> FilterSet:
    ifname = request.ifname or ""
    if path is None:
        try:
            change = transport.remove_rx_filter(ifname)
        except OSError as exc:
            raise EvlError.from_oserror(f"cannot set BPF filter on {ifname}", exc) from None
        return FilterSet(ifname, None, change.changed)
    # --filter= names an (empty) path, as in C: not a removal.
    obj = read_regular(path, "eBPF object", OBJECT_MAX, prefix=f"cannot set BPF filter on {shown(ifname)}: ")
    try:
        installed = transport.install_rx_filter(ifname, obj, path)
    except OSError as exc:
        raise EvlError.from_oserror(f"cannot set BPF filter on {ifname}", exc) from None
    return FilterSet(ifname, path, installed.changed, installed.program, installed.section)
