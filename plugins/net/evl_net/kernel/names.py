"""Which interface names the kernel can have: its ``dev_valid_name()`` rules.

A name the kernel could never register is refused before any board is
reached, with what is wrong with it, instead of the kernel's bare "No such
device" (net/core/dev.c: at most IFNAMSIZ - 1 bytes, not empty, not "." or
"..", no '/', ':' or whitespace).
"""

from __future__ import annotations

#: The kernel's interface name limit, NUL included.
IFNAMSIZ = 16


def name_problem(name: str) -> str | None:
    """Why the kernel could never have an interface called ``name`` (None: it could)."""
    if not name:
        return "empty"
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) >= IFNAMSIZ:
        return f"longer than {IFNAMSIZ - 1} bytes"
    if name in (".", ".."):
        return "not a device name"
    for ch in name:
        if ch in "/:" or ch.isspace() or ch == "\0":
            return f"{ch!r} is not allowed in a device name"
    return None
