"""Where a key path of a TOML document is written: its line, for ``FILE:LINE: key.path: message``.

``tomllib`` keeps no positions, so this reads the text once more, line by
line, as far as it needs: table headers (``[port."eth0.42"]``,
``[[peer]]``, the index of each array table counted) and ``key = value``
lines give the line each path starts on.  A path not found (a missing key)
takes the line of its deepest ancestor that is, else 1.  Multi-line strings
and arrays are skipped over (their inner lines are not keys).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_BASIC = re.compile(r'"((?:[^"\\]|\\.)*)"')
_LITERAL = re.compile(r"'([^']*)'")


def _keys(text: str) -> tuple[list[str], str] | None:
    """A dotted key at the start of ``text`` (bare or quoted parts), and what follows it; None if none."""
    parts: list[str] = []
    rest = text.lstrip()
    while True:
        m = _BARE.match(rest) or _BASIC.match(rest) or _LITERAL.match(rest)
        if m is None:
            return None
        raw = m.group(1) if m.re is not _BARE else m.group(0)
        if m.re is _BASIC:
            raw = raw.encode("latin-1", "backslashreplace").decode("unicode_escape", "replace")
        parts.append(raw)
        rest = rest[m.end() :].lstrip()
        if not rest.startswith("."):
            return parts, rest
        rest = rest[1:].lstrip()


def index(text: str) -> dict[tuple[str | int, ...], int]:
    """Every table and key path of ``text`` -> the line (from 1) it is written on."""
    out: dict[tuple[str | int, ...], int] = {}
    counts: dict[tuple[str | int, ...], int] = {}
    table: tuple[str | int, ...] = ()
    open_delim = ""
    for n, line in enumerate(text.splitlines(), 1):
        if open_delim:  # inside a multi-line string or array
            if open_delim in line:
                open_delim = ""
            continue
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("[["):
            found = _keys(stripped[2:])
            if found is not None:
                key = tuple(found[0])
                k = counts.get(key, 0)
                counts[key] = k + 1
                table = (*key, k)
                out.setdefault(key, n)
                out.setdefault(table, n)
            continue
        if stripped.startswith("["):
            found = _keys(stripped[1:])
            if found is not None:
                table = _resolve(tuple(found[0]), counts)
                out.setdefault(table, n)
            continue
        found = _keys(stripped)
        if found is None or not found[1].startswith("="):
            continue
        path = (*table, *found[0])
        out.setdefault(path, n)
        value = found[1][1:].strip()
        for delim in ('"""', "'''"):
            if value.startswith(delim) and value.count(delim) == 1:
                open_delim = delim
        if value.startswith("[") and value.count("[") > value.count("]"):
            open_delim = "]"
    return out


def _resolve(key: tuple[str, ...], counts: dict[tuple[str | int, ...], int]) -> tuple[str | int, ...]:
    """A ``[a.b]`` header under an array table ``[[a]]`` names the last element: ``a[k].b``."""
    out: list[str | int] = []
    for part in key:
        out.append(part)
        n = counts.get(tuple(out))
        if n:
            out.append(n - 1)
    return tuple(out)


def line_of(lines: dict[tuple[str | int, ...], int], path: Sequence[str | int]) -> int:
    """The line of ``path``, or of its deepest ancestor that has one; 1 for none."""
    path = tuple(path)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return 1
