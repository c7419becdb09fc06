"""``-Q``: a port's status and counters, verbose or terse; ``-Q --all-interfaces``: every interface."""

from __future__ import annotations

from evl_core.errors import EvlError
from evl_core.record import record
from evl_net.engine.request import OpResult, Request
from evl_net.model import DevStat, inline

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any, ClassVar

    from evl_net.ops.query_all import AllInterfaces
    from evl_net.transports.contract import Transport

MODIFIERS = "RrTtosfacx"

# The current C tool's layout, byte for byte: every label right-aligned on the colon
# (an older release, which the manual shows, indented "csum errors" by six).
VERBOSE = """\
oob capability: {oob}
    rx packets: {rx_packets}
      rx bytes: {rx_bytes}
    tx packets: {tx_packets}
      tx bytes: {tx_bytes}
      skb size: {skb_size}
      skb free: {skb_free} / {skb_total}
   csum errors: {csum_errors}
      rx nomem: {rx_nomem}
      tx nomem: {tx_nomem}
"""

#: -Q modifier letter -> the fields it prints.
FIELDS = {
    "R": ("rx_packets",),
    "r": ("rx_bytes",),
    "T": ("tx_packets",),
    "t": ("tx_bytes",),
    "o": ("oob_capable",),
    "s": ("skb_size",),
    "f": ("skb_free",),
    "a": ("skb_total",),
    "c": ("csum_errors",),
    "x": ("rx_nomem", "tx_nomem"),
}


def cell(value: Any) -> str:
    return ("yes" if value else "no") if isinstance(value, bool) else str(value)


@record
class PortStatus(OpResult):
    """One port: its counters, printed verbose, or the values its modifiers select."""

    action: ClassVar[str] = "query"
    ifname: str
    modifiers: str
    stat: DevStat = inline()

    def verbose(self) -> str:
        s = self.stat
        return VERBOSE.format(oob=cell(s.oob_capable), **{k: getattr(s, k) for k in DevStat.COUNTERS})

    def terse(self, mods: str | None = None) -> str:
        letters = mods or self.modifiers or MODIFIERS
        return " ".join(cell(getattr(self.stat, f)) for letter in letters for f in FIELDS[letter]) + "\n"

    def text(self, request: Request) -> str:
        return self.terse() if self.modifiers else self.verbose()


def check(request: Request, mods: str | None) -> None:
    for letter in mods or "":
        if letter not in MODIFIERS:
            raise EvlError(f"invalid query modifier '{letter}' (valid: {MODIFIERS})")


def run(request: Request, mods: str | None, transport: Transport) -> PortStatus | AllInterfaces:
    if request.all_interfaces:
        from evl_net.ops.query_all import AllInterfaces, InterfaceStat

        rows = []
        for iface in transport.interfaces():
            try:
                rows.append(InterfaceStat(iface.name, iface.up, transport.get_stat(iface.name)))
            except OSError as exc:  # one unreadable interface must not cost the whole table
                rows.append(InterfaceStat(iface.name, iface.up, error=exc.strerror or str(exc)))
        return AllInterfaces(mods or "", rows)
    ifname = request.ifname or ""
    try:
        stat = transport.get_stat(ifname)
    except OSError as exc:
        raise EvlError.from_oserror(f"cannot query out-of-band port on {ifname}", exc) from None
    return PortStatus(ifname, mods or "", stat)


def sampler(request: Request, open_board: Any) -> Any:
    """``-Q --watch``'s reading: each call, the counters of the port ``-i`` names, or of every interface
    that has them.  ``open_board()`` gives the transport of one sample, as a context (a local board is
    opened for each sample, so that it is free in between; a remote session stays open)."""

    def read() -> list[tuple[str, DevStat]]:
        with open_board() as transport:
            result = run(request, None, transport)
        if isinstance(result, PortStatus):
            return [(result.ifname, result.stat)]
        return [(row.ifname, row.stat) for row in result.interfaces if row.stat is not None]

    return read
