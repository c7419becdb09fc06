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
    for byte in raw:  # the kernel's test is byte-wise, with its own isspace() (0xa0 is a space there)
        if byte in NOT_IN_NAMES:
            return f"{chr(byte)!r} is not allowed in a device name"
    return None


#: The bytes dev_valid_name() refuses: '/', ':', NUL and what lib/ctype.c calls a space.
NOT_IN_NAMES = frozenset(b"/:\0 \t\n\v\f\r\xa0")
