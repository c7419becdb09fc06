"""``-Q --all-interfaces``: every interface of the board, as a table (or names, or JSON)."""

from __future__ import annotations

from evl_core.record import record
from evl_net.engine.request import OpResult, Request
from evl_net.model import DevStat, inline, optional
from evl_net.ops.query import FIELDS, cell

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any, ClassVar

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

#: The table's columns that InterfaceStat holds itself (the others are its DevStat's).
ROW_KEYS = frozenset({"ifname", "up"})
_YES_NO = {True: "yes", False: "no"}.__getitem__


def _cells(values: list[Any]) -> list[str]:
    """A column's cells, as query.cell() writes each value (a bool as yes or no, anything else by str)."""
    kinds = set(map(type, values))
    if kinds <= {int} or kinds <= {str}:
        return list(map(str, values))
    if kinds <= {bool}:
        return list(map(_YES_NO, values))
    return list(map(cell, values))


@record
class InterfaceStat:
    """One row of ``-Q --all-interfaces``: an interface and its counters, or why they could not be read."""

    ifname: str
    up: bool
    stat: DevStat | None = inline()
    error: str | None = optional()


@record
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
        from evl_net.ops import table

        columns = self.columns()
        headers = [title for _key, title in columns]
        rows = self.interfaces
        if any(row.stat is None or row.error is not None for row in rows):  # counters that could not be read
            return table.simple([self._row_cells(row, columns) for row in rows], headers) + "\n"
        from operator import attrgetter

        stats = [row.stat for row in rows]
        cells = [
            _cells(list(map(attrgetter(key), rows if key in ROW_KEYS else stats)))
            for key, _title in columns  # column by column
        ]
        return table.simple_columns(cells, headers) + "\n"

    @staticmethod
    def _row_cells(row: InterfaceStat, columns: list[tuple[str, str]]) -> list[str]:
        """One row's cells, "-" for counters it lacks, and its error after them."""
        out = [
            cell(getattr(row, key) if key in ROW_KEYS else getattr(row.stat, key) if row.stat is not None else "-")
            for key, _title in columns
        ]
        if row.error is not None:  # an interface whose counters could not be read
            out.append(row.error)
        return out

    def names(self) -> str:
        return "".join(row.ifname + "\n" for row in self.interfaces)

    def text(self, request: Request) -> str:
        return self.table()
