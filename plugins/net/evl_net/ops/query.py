"""``-Q``: a port's status and counters, verbose or terse; ``-Q --all-interfaces``: every interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from evl_core.errors import EvlError
from evl_net.engine.request import OpResult, Request
from evl_net.model import DevStat, InterfaceStat, inline
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

TABLE_COLUMNS = (
    ("ifname", "interface"),
    ("oob_port", "port"),
    ("oob_capable", "oob"),
    ("up", "up"),
    ("rx_packets", "rx packets"),
    ("rx_bytes", "rx bytes"),
    ("tx_packets", "tx packets"),
    ("tx_bytes", "tx bytes"),
    ("skb_size", "skb size"),
    ("skb_free", "skb free"),
    ("skb_total", "skb total"),
    ("csum_errors", "csum errors"),
    ("rx_nomem", "rx nomem"),
    ("tx_nomem", "tx nomem"),
)


def _cell(value: Any) -> str:
    return ("yes" if value else "no") if isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class PortStatus(OpResult):
    """One port: its counters, printed verbose, or the values its modifiers select."""

    action: ClassVar[str] = "query"
    ifname: str
    modifiers: str
    stat: DevStat = inline()  # noqa: RUF009 -- a dataclasses.field; its default, None, is not shared state

    def verbose(self) -> str:
        s = self.stat
        return VERBOSE.format(oob=_cell(s.oob_capable), **{k: getattr(s, k) for k in DevStat.COUNTERS})

    def terse(self, mods: str | None = None) -> str:
        letters = mods or self.modifiers or MODIFIERS
        return " ".join(_cell(getattr(self.stat, f)) for letter in letters for f in FIELDS[letter]) + "\n"

    def text(self, request: Request) -> str:
        return self.terse() if self.modifiers else self.verbose()


@dataclass(frozen=True)
class AllInterfaces(OpResult):
    """Every interface of the board, with its counters where they could be read."""

    action: ClassVar[str] = "query"
    modifiers: str
    interfaces: list[InterfaceStat]

    def columns(self) -> list[tuple[str, str]]:
        if not self.modifiers:
            return list(TABLE_COLUMNS)
        wanted = {"ifname", "oob_port", *(f for letter in self.modifiers for f in FIELDS[letter])}
        return [c for c in TABLE_COLUMNS if c[0] in wanted]

    def table(self) -> str:
        from tabulate import tabulate

        columns = self.columns()
        rows = []
        for row in self.interfaces:
            cells = [
                _cell(getattr(row.stat, key) if row.stat is not None else "-")
                if key not in ("ifname", "up")
                else _cell(getattr(row, key))
                for key, _title in columns
            ]
            if row.error is not None:  # an interface whose counters could not be read
                cells.append(row.error)
            rows.append(cells)
        return tabulate(rows, headers=[t for _k, t in columns], tablefmt="simple", disable_numparse=True) + "\n"

    def names(self) -> str:
        return "".join(row.ifname + "\n" for row in self.interfaces)

    def text(self, request: Request) -> str:
        return self.table()


def check(request: Request, mods: str | None) -> None:
    for letter in mods or "":
        if letter not in MODIFIERS:
            raise EvlError(f"invalid query modifier '{letter}' (valid: {MODIFIERS})")


def run(request: Request, mods: str | None, transport: Transport) -> PortStatus | AllInterfaces:
    if request.all_interfaces:
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
