"""ALU operations too long to inline in generated code: signed div/mod, byte swaps.

The code generator writes most operations as Python expressions; these
follow the kernel's corner cases (division by zero gives 0, modulo by zero
keeps the dividend, ``INT_MIN / -1`` is ``INT_MIN``, ``x % -1`` is 0), which
read better as functions.  Operands and results are unsigned register values.
"""

from __future__ import annotations

from .isa import M32, M64, SB32, SB64


def sdiv64(a: int, b: int) -> int:
    a = (a ^ SB64) - SB64
    b = (b ^ SB64) - SB64
    if b == 0:
        return 0
    q = abs(a) // abs(b)
    return (-q if (a < 0) != (b < 0) else q) & M64


def smod64(a: int, b: int) -> int:
    sa = (a ^ SB64) - SB64
    sb = (b ^ SB64) - SB64
    if sb == 0:
        return a
    m = abs(sa) % abs(sb)
    return (-m if sa < 0 else m) & M64


def sdiv32(a: int, b: int) -> int:
    a = ((a & M32) ^ SB32) - SB32
    b = ((b & M32) ^ SB32) - SB32
    if b == 0:
        return 0
    q = abs(a) // abs(b)
    return (-q if (a < 0) != (b < 0) else q) & M32


def smod32(a: int, b: int) -> int:
    sa = ((a & M32) ^ SB32) - SB32
    sb = ((b & M32) ^ SB32) - SB32
    if sb == 0:
        return a & M32
    m = abs(sa) % abs(sb)
    return (-m if sa < 0 else m) & M32


def bswap(v: int, bits: int) -> int:
    """The low ``bits`` of v, byte-reversed (BPF_END to big endian, bswap)."""
    n = bits // 8
    return int.from_bytes((v & ((1 << bits) - 1)).to_bytes(n, "little"), "big")
