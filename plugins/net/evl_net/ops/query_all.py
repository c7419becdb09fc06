"""``-Q --all-interfaces``: every interface of the board, as a table (or names, or JSON)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from evl_net.engine.request import OpResult, Request
from evl_net.model import DevStat, inline, optional
from evl_net.ops.query import FIELDS, cell

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


@dataclass
class InterfaceStat:
    """One row of ``-Q --all-interfaces``: an interface and its counters, or why they could not be read."""

    ifname: str
    up: bool
    stat: DevStat | None = inline()  # noqa: RUF009 -- a dataclasses.field; its default, None, is not shared state
    error: str | None = optional()


@dataclass
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
                cell(getattr(row.stat, key) if row.stat is not None else "-")
                if key not in ("ifname", "up")
                else cell(getattr(row, key))
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
