"""Text tables: tabulate's ``simple`` format, written here for the tables every ``-Q --all-interfaces`` prints.

:func:`simple` gives, byte for byte, what
``tabulate(rows, headers, tablefmt="simple", disable_numparse=True)`` gives:
tabulate stays the reference, and the formatter of every table this module
does not write itself.  Two costs are why the common table is written here:

* importing tabulate 0.10 imports :mod:`importlib.metadata` (for its
  ``__version__``: 21 ms of the 32 its import costs on an idle machine, twice
  that on a busy one) and :mod:`dataclasses`; 0.9.0, which does not, costs
  the same below;
* whatever the version, tabulate works out each cell's type and visible
  width, ANSI codes stripped, even with number parsing off: about 45 us a row
  of 14 cells, 175-185 ms for a 4000-interface board, where this module and
  the cells made from the records take 3 us a row, 12.5 ms in all.

A table is written here when it is *plain*: at least one row, every row as
long as the headers, every cell and header a ``str`` of printable ASCII (no
control character: no line break, tab, ANSI escape nor tabulate's
separating-line mark; no wide character), and no cell with white space at
either end (tabulate strips it).  For such a table tabulate's steps reduce to:
every column left-aligned (with number parsing off, every type tabulate can
find for a cell of text is aligned left), as wide as its widest cell or its
header and two, columns two spaces apart, a line of dashes under the headers,
each line stripped of its trailing spaces.  Any other table goes to tabulate
itself, imported then: an empty table, an interface name with a byte that is
not ASCII, a row with an error beside it (a row longer than the headers, which
tabulate writes its own way).  ``tests/test_query_all_scale.py`` checks both
kinds against the installed tabulate, on generated tables, so that a release
of tabulate that writes ``simple`` otherwise fails a test rather than
changing half of the tables.
"""

from __future__ import annotations

from itertools import repeat

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Sequence

#: The space between columns, and the padding a header gets in its column (tabulate's MIN_PADDING).
SEPARATOR = "  "
HEADER_PADDING = 2


def simple(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    """``rows`` under ``headers``, as ``tabulate(rows, headers, tablefmt="simple", disable_numparse=True)``."""
    count = len(headers)
    if rows and headers and all(len(row) == count for row in rows):
        return simple_columns([list(column) for column in zip(*rows, strict=True)], headers)
    return _tabulate(rows, headers)


def simple_columns(columns: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    """The table of ``columns`` (each a list of cells, all as long), under ``headers``: :func:`simple`'s."""
    widths = plain_widths(columns, headers)
    if widths is None:
        return _tabulate([list(row) for row in zip(*columns, strict=True)], headers)
    # Each column padded to its width but the last, whose trailing spaces each line would lose anyway;
    # a line ending in empty cells loses the padding before them, as tabulate's does.
    padded = [list(map(str.ljust, column, repeat(width))) for column, width in zip(columns[:-1], widths, strict=False)]
    padded.append(list(columns[-1]))
    lines = [
        SEPARATOR.join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(),
        SEPARATOR.join("-" * w for w in widths),
        *map(str.rstrip, map(SEPARATOR.join, zip(*padded, strict=True))),
    ]
    return "\n".join(lines)


def _tabulate(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    from tabulate import tabulate

    return str(tabulate(rows, headers=list(headers), tablefmt="simple", disable_numparse=True))


def plain_widths(columns: Sequence[Sequence[str]], headers: Sequence[str]) -> list[int] | None:
    """The column widths of a plain table (see the module's text), or None for one tabulate must write."""
    if not columns or len(columns) != len(headers) or not columns[0]:
        return None
    rows = len(columns[0])
    widths = []
    try:
        if not _plain("\n".join(headers), len(headers)):
            return None
        for header, column in zip(headers, columns, strict=True):
            text = "\n".join(column)
            if len(column) != rows or not _plain(text, rows):
                return None
            if " \n" in text or "\n " in text or text[:1] == " " or text[-1:] == " ":
                return None
            widths.append(max(len(header) + HEADER_PADDING, max(map(len, column))))
    except TypeError:  # a cell that is not a str
        return None
    return widths


def _plain(text: str, lines: int) -> bool:
    """Whether ``text``, ``lines`` cells joined by line feeds, holds printable ASCII alone (and no other line feed)."""
    return text.isascii() and text.count("\n") == lines - 1 and text.replace("\n", "").isprintable()
