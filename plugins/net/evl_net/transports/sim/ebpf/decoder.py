"""Decoding: raw program bytes into one :class:`Insn` per 8-byte slot.

Kept apart from the code generator so that the disassembler (and error
messages) can work on decoded instructions without translating them.  Only
the encoding is checked here (whole slots, complete ``lddw`` pairs); what the
verifier checks is the code generator's job.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import EbpfError
from .isa import IMM, LD, M32

_INSN = struct.Struct("<BBhi")


@dataclass(frozen=True)
class Insn:
    code: int
    dst: int
    src: int
    off: int
    imm: int
    imm64: int | None = None  # for lddw: the full 64-bit constant

    @property
    def cls(self) -> int:
        return self.code & 7


def decode(insns: bytes) -> list[Insn | None]:
    """The instructions of a program, one per 8-byte slot (None for lddw's second half)."""
    if len(insns) % 8:
        raise EbpfError(f"program size {len(insns)} is not a multiple of 8 bytes")
    raw = list(_INSN.iter_unpack(insns))
    out: list[Insn | None] = []
    i = 0
    while i < len(raw):
        code, regs, off, imm = raw[i]
        dst, src = regs & 0xF, regs >> 4
        if code == (LD | IMM | 0x18):
            if i + 1 >= len(raw):
                raise EbpfError("lddw is missing its second half", i, "lddw")
            code2, regs2, off2, imm2 = raw[i + 1]
            if code2 or regs2 or off2:
                raise EbpfError("invalid second half of lddw", i, "lddw")
            value = (imm & M32) | ((imm2 & M32) << 32)
            out.append(Insn(code, dst, src, off, imm, value))
            out.append(None)
            i += 2
            continue
        out.append(Insn(code, dst, src, off, imm))
        i += 1
    return out
