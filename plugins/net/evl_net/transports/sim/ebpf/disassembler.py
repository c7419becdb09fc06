"""LLVM-like text of decoded instructions.

Every :class:`~.errors.EbpfError` names the offending instruction by its
text, and ``Program.disasm()`` lists a whole program; both come from here.
"""

from __future__ import annotations

from .decoder import Insn
from .isa import (
    ABS,
    ALU,
    ALU64,
    ALU_NAMES,
    ATOMIC,
    ATOMIC_OPS,
    BPF_FETCH,
    BPF_LOAD_ACQ,
    BPF_PSEUDO_CALL,
    BPF_STORE_REL,
    IMM,
    IND,
    JMP,
    JMP32,
    JMP_NAMES,
    LD,
    LDX,
    MEMSX,
    SIZES,
    ST,
    STX,
    helper_name,
)

_SIZE_NAME = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}


def _addr(reg: int, off: int) -> str:
    return f"r{reg} {'-' if off < 0 else '+'} {abs(off)}"


def disasm(insn: Insn | None, pc: int | None = None) -> str:
    """LLVM-like text of one instruction (for messages)."""
    if insn is None:
        return "(lddw second half)"
    c, d, s, off, imm = insn.code, insn.dst, insn.src, insn.off, insn.imm
    cls = c & 7
    tgt = (lambda o: f"goto {o:+d}") if pc is None else (lambda o: f"goto {pc + 1 + o}")
    if cls in (ALU, ALU64):
        op = c & 0xF0
        w = "w" if cls == ALU else "r"
        x = f"{w}{s}" if c & 8 else str(imm)
        if op == 0x80:
            return f"{w}{d} = -{w}{d}"
        if op == 0xD0:
            kind = "bswap" if cls == ALU64 else ("be" if c & 8 else "le")
            return f"{w}{d} = {kind}{imm} {w}{d}" if kind != "bswap" else f"r{d} = bswap{imm} r{d}"
        name = ALU_NAMES.get(op, f"alu?{op:#x}")
        if op in (0x30, 0x90) and off == 1:
            name = "s" + name
        if op == 0xB0 and off in (8, 16, 32) and c & 8:
            return f"{w}{d} = (s{off}){w}{s}"
        return f"{w}{d} {name} {x}"
    if cls in (JMP, JMP32):
        op = c & 0xF0
        if op == 0x00:
            return tgt(imm if cls == JMP32 else off).replace("goto", "gotol" if cls == JMP32 else "goto")
        if op == 0x80:
            if s == BPF_PSEUDO_CALL:
                return f"call pc{imm:+d}"
            return f"call {helper_name(imm)}" if s == 0 else f"call kfunc #{imm}"
        if op == 0x90:
            return "exit"
        w = "w" if cls == JMP32 else "r"
        x = f"{w}{s}" if c & 8 else str(imm)
        return f"if {w}{d} {JMP_NAMES.get(op, '?')} {x} {tgt(off)}"
    size = SIZES[c & 0x18]
    mode = c & 0xE0
    sz = _SIZE_NAME[size]
    if cls == LD:
        if mode == IMM:
            if insn.imm64 is None:
                return "lddw"
            if insn.src == 1:  # BPF_PSEUDO_MAP_FD (the simulator's map index)
                return f"r{d} = map[id:{insn.imm}] ll"
            if insn.src == 2:  # BPF_PSEUDO_MAP_VALUE
                return f"r{d} = map[id:{insn.imm}][0]+{insn.imm64 >> 32} ll"
            if insn.src == 4:  # BPF_PSEUDO_FUNC
                return f"r{d} = func {tgt(insn.imm)} ll"
            return f"r{d} = {insn.imm64:#x} ll"
        if mode == ABS:
            return f"r0 = *({sz} *)skb[{imm}]"
        if mode == IND:
            return f"r0 = *({sz} *)skb[r{s} + {imm}]"
    if cls == LDX:
        sx = "s" if mode == MEMSX else "u"
        return f"r{d} = *({sx}{sz[1:]} *)({_addr(s, off)})"
    if cls == ST:
        return f"*({sz} *)({_addr(d, off)}) = {imm}"
    if cls == STX:
        if mode == ATOMIC:
            if imm == BPF_LOAD_ACQ:
                return f"r{d} = load_acquire(({sz} *)({_addr(s, off)}))"
            if imm == BPF_STORE_REL:
                return f"store_release(({sz} *)({_addr(d, off)}), r{s})"
            name = ATOMIC_OPS.get(imm & ~BPF_FETCH, "?")
            fetch = "fetch_" if imm & BPF_FETCH and name not in ("xchg", "cmpxchg") else ""
            return f"lock {fetch}{name} *({sz} *)({_addr(d, off)}), r{s}"
        return f"*({sz} *)({_addr(d, off)}) = r{s}"
    return f"code {c:#04x}"
