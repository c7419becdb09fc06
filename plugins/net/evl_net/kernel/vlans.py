"""The EVL global RX VLAN filter list (sysfs attribute ``vlans``).

The kernel side stores this attribute with ``bitmap_parselist()`` over a
4096-bit map, then rejects the reserved VIDs, and shows it with ``%*pbl``.
This module mirrors both directions in pure Python so that the tools can
validate and display a list exactly as the kernel would, without a round
trip through sysfs.  The parser is a transcription of the state machine in
``lib/bitmap.c`` (bitmap_find_region/bitmap_parse_region/bitmap_getnum/
bitmap_check_region/bitmap_set_region), including its 32-bit unsigned
arithmetic, so that error codes and odd corner cases match the kernel.
"""

import errno
import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: keep import time minimal
    from collections.abc import Iterable

__all__ = ["NBITS", "VID_MAX", "VID_MIN", "format", "parse"]

#: Bits in the EVL VLAN map (VLAN_N_VID).
NBITS = 4096
#: Lowest VID EVL accepts: 0 (priority tag) and 1 (default VLAN) are reserved.
VID_MIN = 2
#: Highest VID EVL accepts: 4095 (VLAN_VID_MASK) is reserved.
VID_MAX = 4094

_U32 = 0xFFFFFFFF
# Kernel isspace() on ASCII, plus ',': what __end_of_region() skips.  '\n' is
# in there too, the kernel only treats it as a terminator right after a
# region without a stride (see _parselist).  Non-ASCII text is never a
# separator: its UTF-8 lead byte is not a kernel space, so it is EINVAL.
_SEP = frozenset(" \t\n\v\f\r,")
_END_OF_REGION = _SEP | {"\0"}
_DIGITS = frozenset("0123456789")


def _error(code: int) -> OSError:
    """Build the OSError the failed sysfs write would raise."""
    return OSError(code, os.strerror(code))


def _getnum(s: str, i: int, lastbit: int) -> tuple[int, int]:
    """bitmap_getnum(): 'N' or a decimal u32 at s[i]; return (value, next i)."""
    if s[i] == "N":
        return lastbit, i + 1
    j = i
    while s[j] in _DIGITS:  # s always ends with a "\0" sentinel
        j += 1
    if j == i:
        raise _error(errno.EINVAL)
    digits = s[i:j].lstrip("0")
    # Check the length first: int() refuses very long digit strings.
    if len(digits) > 10 or (digits and int(digits) > _U32):
        raise _error(errno.EOVERFLOW)
    return (int(digits) if digits else 0), j


def _parselist(text: str, nbits: int = NBITS) -> set[int]:
    """bitmap_parselist(text, map, nbits) without EVL's reserved-VID rule.

    Kept separate from parse() so the kernel's own test vectors (which use
    other map sizes) can be checked against it.
    """
    nul = text.find("\0")
    s = (text if nul < 0 else text[:nul]) + "\0"
    lastbit = nbits - 1
    bits: set[int] = set()
    i = 0
    while True:
        # bitmap_find_region(): skip separators, stop at the end of string.
        while s[i] in _SEP:
            i += 1
        if s[i] == "\0":
            return bits
        # bitmap_parse_region()
        if s[i : i + 3].isascii() and s[i : i + 3].lower() == "all":
            start, end = 0, lastbit
            i += 3
        else:
            start, i = _getnum(s, i, lastbit)
            if s[i] in _END_OF_REGION:
                end = start
            elif s[i] != "-":
                raise _error(errno.EINVAL)
            else:
                end, i = _getnum(s, i + 1, lastbit)
        if s[i] in _END_OF_REGION:
            # No stride: every bit of start..end ("no_pattern").  end + 1
            # is computed in 32 bits, as in the kernel (so that
            # "4294967295" is a zero-length group, hence EINVAL).
            used = group = (end + 1) & _U32
            # A '\n' (or the end) right after such a region ends the list.
            stop = s[i] in "\n\0"
        elif s[i] == ":":
            used, i = _getnum(s, i + 1, lastbit)
            if s[i] != "/":
                raise _error(errno.EINVAL)
            # The kernel does not check what follows the group length: the
            # next region search resumes right there ("0-9:1/2N" is valid).
            group, i = _getnum(s, i + 1, lastbit)
            stop = False
        else:
            raise _error(errno.EINVAL)
        # bitmap_check_region()
        if start > end or group == 0 or used > group:
            raise _error(errno.EINVAL)
        if end >= nbits:
            raise _error(errno.ERANGE)
        # bitmap_set_region(), with the kernel's unsigned int wrap-around
        # of start + group (which can step backwards for huge groups).
        pos = start
        while pos <= end:
            bits.update(range(pos, pos + min(end - pos + 1, used)))
            pos = (pos + group) & _U32
        if stop:
            return bits


def parse(text: str) -> frozenset[int]:
    """Parse a VLAN list the way a write to the EVL ``vlans`` attribute does.

    Returns the set of VIDs; an empty (or separators-only) list is valid and
    means "clear the filter".  Raises ``OSError`` with the errno the kernel
    write would fail with: EINVAL (syntax, a > b, bad stride, or a reserved
    VID 0, 1 or 4095 in the result), ERANGE (a bit >= 4096) or EOVERFLOW (a
    number beyond 32 bits).
    """
    bits = _parselist(text, NBITS)
    if 0 in bits or 1 in bits or NBITS - 1 in bits:
        raise _error(errno.EINVAL)
    return frozenset(bits)


def format(ids: "Iterable[int]") -> str:
    """Render VIDs as the kernel's ``%*pbl`` does (no trailing newline).

    Sorted, duplicates dropped, runs of two or more as ``a-b``; an empty set
    gives ``""``.  This is what reading the attribute shows, so a formatted
    list can be written back and compared with a read verbatim.
    """
    vids = set()
    for vid in ids:
        if not isinstance(vid, int):
            raise TypeError(f"VLAN id must be an int, not {type(vid).__name__}")
        if not 0 <= vid < NBITS:
            raise ValueError(f"VLAN id {vid} out of range 0-{NBITS - 1}")
        vids.add(int(vid))
    out = []
    first = prev = -2
    for vid in sorted(vids):
        if vid != prev + 1:
            if first >= 0:
                out.append(str(first) if first == prev else f"{first}-{prev}")
            first = vid
        prev = vid
    if first >= 0:
        out.append(str(first) if first == prev else f"{first}-{prev}")
    return ",".join(out)
