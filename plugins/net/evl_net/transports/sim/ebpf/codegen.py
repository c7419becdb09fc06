"""The code generator: each basic block of a program becomes one Python function.

This is why the interpreter is fast: instructions are decoded, checked and
translated once, and a run is a loop over block functions operating on the
run-state list of :mod:`.memory` -- no per-instruction decoding or dispatch.
A program without loops nor calls is also translated into one function
(:func:`fuse`, see "fusing" below), which runs it without that loop; a load
of a read-only ``__sk_buff`` field from the context pointer is written as the
field's value (:func:`~.skb.ctx_read`), without building the context image.
Translating is also where the checks the verifier makes statically happen:
opcodes and reserved fields, registers (r10 is read-only), jump targets,
``lddw`` pairs, the program not falling off its end, frame-pointer accesses
within the 512-byte frame and aligned, constant divisions by zero and shifts
out of range, helper ids (tail calls, kfuncs and helpers that
:mod:`.helpers` lacks raise :class:`~.errors.UnsupportedError`).

Semantics are the kernel's: 32-bit ALU results are zero-extended, shift
amounts in registers are masked to the operand width, division by zero gives
0 and modulo by zero keeps the dividend (truncated to 32 bits for 32-bit
ops).  Registers never written read as 0 (the verifier would refuse the
program; being lenient costs nothing here).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from typing import Any, cast

from . import alu, memory
from .decoder import Insn
from .disassembler import disasm
from .errors import EbpfError, RunError, UnsupportedError
from .helpers import HELPERS
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
    BPF_PSEUDO_KFUNC_CALL,
    BPF_STORE_REL,
    HELPER_NAMES,
    IMM,
    IND,
    JMP,
    JMP32,
    JMP_NAMES,
    LD,
    LDX,
    M32,
    M64,
    MEM,
    MEMSX,
    SB32,
    SB64,
    SIZES,
    ST,
    STX,
    helper_name,
)
from .maps import MAP_BASE, map_pointer
from .memory import CTX_BASE, FUNC_BASE, STACK_SIZE, STACK_TOP
from .skb import CTX_READ_GLOBALS, ETH_HLEN, ctx_read

#: A translated block: runs on the run-state list, returns the next pc (-1: exit).
Block = Callable[[list], int]


class Compiler:
    """Checks and translates one decoded program (:meth:`compile`)."""

    def __init__(self, insns: list[Insn | None]) -> None:
        self.insns = insns
        self.n = len(insns)
        #: After :meth:`compile`: the whole program as one function, when it can be (:func:`fuse`).
        self.fused: Fused | None = None
        # bpf-to-bpf calls and callbacks (a lddw of a function) need call frames.
        self.has_calls = any(
            i is not None and i.src in (BPF_PSEUDO_CALL, 4) and i.code in (JMP | 0x80, 0x18) for i in insns
        )

    def fail(self, pc: int, message: str, cls: type[EbpfError] = EbpfError) -> EbpfError:
        return cls(message, pc, disasm(self.insns[pc], pc))

    # --- validation -------------------------------------------------------

    def check_reg(self, pc: int, reg: int, write: bool = False) -> None:
        if reg > 10:
            raise self.fail(pc, f"invalid register r{reg}")
        if write and reg == 10:
            raise self.fail(pc, "frame pointer r10 is read only")

    def target(self, pc: int, delta: int) -> int:
        t = pc + 1 + delta
        if not 0 <= t < self.n:
            raise self.fail(pc, f"jump out of range: target {t}, program has {self.n} insns")
        if self.insns[t] is None:
            raise self.fail(pc, f"jump into the middle of lddw at {t - 1}")
        return t

    # --- leaders ------------------------------------------------------------

    def successors(self, pc: int) -> tuple[list[int], bool]:
        """(jump targets, falls through) of the instruction at pc."""
        insn = self.insns[pc]
        assert insn is not None
        cls = insn.cls
        if cls in (JMP, JMP32):
            op = insn.code & 0xF0
            if op == 0x90:  # exit
                return [], False
            if op == 0x80:  # call: helpers run inline, bpf-to-bpf calls end the block
                if insn.src == BPF_PSEUDO_CALL:
                    return [self.target(pc, insn.imm)], True
                return [], True
            if op == 0x00:
                return [self.target(pc, insn.imm if cls == JMP32 else insn.off)], False
            return [self.target(pc, insn.off)], True
        if insn.code == 0x18 and insn.src == 4:  # a callback's address: its first insn starts a block
            return [self.target(pc, insn.imm)], True
        return [], True

    def compile(self) -> tuple[list[Block], list[int]]:
        """The block function starting at each leader pc, and its instruction count.

        Both lists are indexed by pc; only leaders (block starts) have entries:
        the run loop only ever jumps to a leader.
        """
        n = self.n
        if n == 0:
            raise EbpfError("empty program")
        leaders = {0}
        for pc, insn in enumerate(self.insns):
            if insn is None:
                continue
            targets, falls = self.successors(pc)
            leaders.update(targets)
            nxt = pc + (2 if insn.imm64 is not None else 1)
            if (targets or not falls) and nxt < n:  # a jump, exit or bpf-to-bpf call ends a block
                leaders.add(nxt)
            if falls and nxt >= n:
                raise self.fail(pc, "the program falls off its end (last insn is not exit or goto)")
        src_lines = []
        starts = sorted(leaders)
        lens = [0] * n
        bodies: dict[int, list[str]] = {}
        names: dict[int, str] = {}
        for k, start in enumerate(starts):
            stop = starts[k + 1] if k + 1 < len(starts) else n
            body: list[str] = []
            pc = start
            count = 0
            terminated = False
            while pc < stop:
                insn = self.insns[pc]
                assert insn is not None  # pc steps over lddw's second half
                count += 1
                lines, term = self.emit(pc, insn)
                body.extend(lines)
                pc += 2 if insn.imm64 is not None else 1
                if term:
                    terminated = True
                    break
            if not terminated:
                body.append(f"return {stop}")
            lens[start] = count
            bodies[start] = body
            name = f"b{start}"
            names[start] = name
            src_lines.append(f"def {name}(r):")
            src_lines.extend("    " + line for line in body)
        src_lines.append("BLOCKS = {" + ", ".join(f"{s}: {names[s]}" for s in starts) + "}")
        source = "\n".join(src_lines) + "\n"
        env = dict(_GEN_GLOBALS)
        exec(compile(source, "<ebpf program>", "exec"), env)  # noqa: S102 - our own generated code
        blocks = cast("list[Block]", [None] * n)
        for s, fn in env["BLOCKS"].items():
            blocks[s] = fn
        self.fused = None if self.has_calls else fuse(bodies, lens)
        return blocks, lens

    # --- code generation ----------------------------------------------------

    def emit(self, pc: int, insn: Insn) -> tuple[list[str], bool]:
        """Python lines for one instruction; True when it ends the block."""
        cls = insn.cls
        if cls in (ALU, ALU64):
            return self.emit_alu(pc, insn), False
        if cls in (JMP, JMP32):
            return self.emit_jmp(pc, insn)
        if cls == LD:
            return self.emit_ld(pc, insn), False
        if cls == LDX:
            return self.emit_ldx(pc, insn), False
        return self.emit_store(pc, insn), False

    def emit_alu(self, pc: int, insn: Insn) -> list[str]:
        c, d, s, off, imm = insn.code, insn.dst, insn.src, insn.off, insn.imm
        is64 = insn.cls == ALU64
        op = c & 0xF0
        use_x = bool(c & 8)
        self.check_reg(pc, d, write=True)
        if use_x:
            self.check_reg(pc, s)
        if op not in ALU_NAMES:
            raise self.fail(pc, f"unknown ALU opcode {c:#04x}")
        D = f"r[{d}]"
        if op == 0xD0:  # byte swaps
            if imm not in (16, 32, 64):
                raise self.fail(pc, f"invalid byte swap width {imm}")
            if s or off:
                raise self.fail(pc, "BPF_END uses reserved fields")
            if is64:
                if use_x:
                    raise self.fail(pc, "unknown ALU64 opcode (BPF_END|BPF_X)")
                return [f"{D} = _bswap({D}, {imm})"]
            if use_x:  # to big endian: swap on this little-endian machine
                if imm == 16:
                    return [f"{D} = (({D} & 0xff) << 8) | (({D} >> 8) & 0xff)"]
                return [f"{D} = _bswap({D}, {imm})"]
            if imm == 64:
                return []
            return [f"{D} &= {(1 << imm) - 1:#x}"]
        if op == 0x80:  # neg
            if use_x or s or off or imm:
                raise self.fail(pc, "BPF_NEG uses reserved fields")
            return [f"{D} = (-{D}) & {M64 if is64 else M32:#x}"]
        mask = M64 if is64 else M32
        if use_x:
            if imm:
                raise self.fail(pc, "BPF_X ALU op uses reserved imm field")
            X = f"r[{s}]" if is64 else f"(r[{s}] & {M32:#x})"
            Xraw = f"r[{s}]"
        else:
            if s:
                raise self.fail(pc, "BPF_K ALU op uses reserved src field")
            k = imm & mask
            X = Xraw = str(k)
        # Offsets: only sdiv/smod (1) and movsx (8/16/32) use them.
        if op in (0x30, 0x90):
            if off not in (0, 1):
                raise self.fail(pc, "invalid offset for div/mod")
        elif op == 0xB0 and use_x:
            if off == 1 and is64:
                raise self.fail(pc, "address space casts (arena) are not supported", UnsupportedError)
            if off not in ((0, 8, 16, 32) if is64 else (0, 8, 16)):
                raise self.fail(pc, f"invalid movsx size {off}")
        elif off:
            raise self.fail(pc, "ALU op uses reserved offset field")
        if not use_x and op in (0x30, 0x90) and imm == 0:
            raise self.fail(pc, "division by zero")
        if not use_x and op in (0x60, 0x70, 0xC0) and not 0 <= imm < (64 if is64 else 32):
            raise self.fail(pc, f"invalid shift {imm}")
        A = D if is64 else f"({D} & {M32:#x})"
        m = f"{mask:#x}"
        if op == 0x00:
            return [f"{D} = ({D} + {Xraw}) & {m}"]
        if op == 0x10:
            return [f"{D} = ({D} - {Xraw}) & {m}"]
        if op == 0x20:
            return [f"{D} = ({D} * {Xraw}) & {m}"]
        if op == 0x40:
            return [f"{D} = ({D} | {Xraw}) & {m}"] if not is64 else [f"{D} |= {Xraw}"]
        if op == 0x50:
            return [f"{D} = ({D} & {Xraw}) & {m}"] if not is64 else [f"{D} &= {Xraw}"]
        if op == 0xA0:
            return [f"{D} = ({D} ^ {Xraw}) & {m}"] if not is64 else [f"{D} ^= {Xraw}"]
        if op == 0xB0:
            if use_x and off:
                sign = 1 << (off - 1)
                lo = (1 << off) - 1
                return [f"{D} = (((r[{s}] & {lo:#x}) ^ {sign:#x}) - {sign:#x}) & {m}"]
            return [f"{D} = {X}"]
        if op == 0x30:
            if off == 1:
                fn = "_sdiv64" if is64 else "_sdiv32"
                return [f"{D} = {fn}({D}, {Xraw})"]
            if use_x:
                return [f"_t = {X}", f"{D} = {A} // _t if _t else 0"]
            return [f"{D} = {A} // {X}"]
        if op == 0x90:
            if off == 1:
                fn = "_smod64" if is64 else "_smod32"
                return [f"{D} = {fn}({D}, {Xraw})"]
            if use_x:
                return [f"_t = {X}", f"{D} = {A} % _t if _t else {A}"]
            return [f"{D} = {A} % {X}"]
        width = 63 if is64 else 31
        sh = f"(r[{s}] & {width})" if use_x else str(imm)
        if op == 0x60:
            return [f"{D} = ({A} << {sh}) & {m}"]
        if op == 0x70:
            return [f"{D} = {A} >> {sh}"]
        # arsh
        sb = SB64 if is64 else SB32
        return [f"{D} = ((({A} ^ {sb:#x}) - {sb:#x}) >> {sh}) & {m}"]

    def emit_jmp(self, pc: int, insn: Insn) -> tuple[list[str], bool]:
        c, d, s, off, imm = insn.code, insn.dst, insn.src, insn.off, insn.imm
        is32 = insn.cls == JMP32
        op = c & 0xF0
        if op == 0x00:  # ja / gotol
            if c & 8 or d or s or (off if is32 else imm):
                raise self.fail(pc, "BPF_JA uses reserved fields")
            return [f"return {self.target(pc, imm if is32 else off)}"], True
        if op == 0x80:  # call
            if is32 or c & 8 or d or off:
                raise self.fail(pc, "BPF_CALL uses reserved fields")
            if s == BPF_PSEUDO_CALL:
                t = self.target(pc, imm)
                return [f"return _call_sub(r, {pc + 1}, {t}, {pc})"], True
            if s == BPF_PSEUDO_KFUNC_CALL:
                raise self.fail(pc, f"kfunc calls (btf id {imm}) are not supported", UnsupportedError)
            if s != 0:
                raise self.fail(pc, f"invalid call src_reg {s}")
            return [f"r[0] = _helper_{self.helper(pc, imm)}(r, {pc})"], False
        if op == 0x90:
            if is32 or c & 8 or d or s or off or imm:
                raise self.fail(pc, "BPF_EXIT uses reserved fields")
            if self.has_calls:
                return ["return _ret_sub(r) if r[15] else -1"], True
            return ["return -1"], True
        if op not in JMP_NAMES:
            raise self.fail(pc, f"unknown jump opcode {c:#04x}")
        self.check_reg(pc, d)
        mask = M32 if is32 else M64
        sb = SB32 if is32 else SB64
        A = f"(r[{d}] & {M32:#x})" if is32 else f"r[{d}]"
        if c & 8:
            if imm:
                raise self.fail(pc, "BPF_X jump uses reserved imm field")
            self.check_reg(pc, s)
            B = f"(r[{s}] & {M32:#x})" if is32 else f"r[{s}]"
            Bs = f"({B} ^ {sb:#x})"
        else:
            if s:
                raise self.fail(pc, "BPF_K jump uses reserved src field")
            k = imm & mask
            B = str(k)
            Bs = str(k ^ sb)
        As = f"({A} ^ {sb:#x})"
        t = self.target(pc, off)
        f = pc + 1
        cond = {
            0x10: f"{A} == {B}",
            0x50: f"{A} != {B}",
            0x20: f"{A} > {B}",
            0x30: f"{A} >= {B}",
            0xA0: f"{A} < {B}",
            0xB0: f"{A} <= {B}",
            0x40: f"{A} & {B}",
            0x60: f"{As} > {Bs}",
            0x70: f"{As} >= {Bs}",
            0xC0: f"{As} < {Bs}",
            0xD0: f"{As} <= {Bs}",
        }[op]
        return [f"return {t} if {cond} else {f}"], True

    def helper(self, pc: int, func_id: int) -> int:
        if func_id in HELPERS:
            return func_id
        name = helper_name(func_id)
        if not 0 < func_id < len(HELPER_NAMES):
            raise self.fail(pc, f"invalid helper {name}")
        raise self.fail(
            pc, f"{name} is not supported by the simulator (or not available to socket filters)", UnsupportedError
        )

    def emit_ld(self, pc: int, insn: Insn) -> list[str]:
        c, d, s, imm = insn.code, insn.dst, insn.src, insn.imm
        mode = c & 0xE0
        size = SIZES[c & 0x18]
        if mode == IMM:
            if size != 8:
                raise self.fail(pc, f"unknown opcode {c:#04x}")
            self.check_reg(pc, d, write=True)
            if s == 1:  # BPF_PSEUDO_MAP_FD: the map index as the fd (kernel.bpflink)
                return [f"r[{d}] = {map_pointer(imm):#x}"]
            if s == 2:  # BPF_PSEUDO_MAP_VALUE: an offset in a global-data map's one value
                return [f"r[{d}] = {MAP_BASE + (imm << 32) + ((insn.imm64 or 0) >> 32):#x}"]
            if s == 4:  # BPF_PSEUDO_FUNC: a callback
                t = self.target(pc, imm)
                return [f"r[{d}] = {FUNC_BASE + t:#x}"]
            if s:
                kind = {3: "BTF id", 5: "map index", 6: "map index value"}.get(s, f"pseudo {s}")
                raise self.fail(pc, f"lddw of a {kind} is not supported", UnsupportedError)
            return [f"r[{d}] = {insn.imm64:#x}"]
        if mode not in (ABS, IND) or size == 8:
            raise self.fail(pc, f"unknown opcode {c:#04x}")
        if d or insn.off or (mode == ABS and s):
            raise self.fail(pc, "BPF_LD_[ABS|IND] uses reserved fields")
        lines = [(f"if r[6] != {CTX_BASE:#x}: raise _RunError({pc}, 'BPF_LD_[ABS|IND] needs the context (skb) in r6')")]
        if mode == ABS and imm >= 0:
            a = ETH_HLEN + imm
            lines.append("_f = r[12]")
            lines.append(f"if len(_f) < {a + size}:")
            lines.append("    r[0] = 0")
            lines.append("    return -1")
            if size == 1:
                lines.append(f"r[0] = _f[{a}]")
            elif size == 2:
                lines.append(f"r[0] = (_f[{a}] << 8) | _f[{a + 1}]")
            else:
                lines.append(f"r[0] = int.from_bytes(_f[{a}:{a + 4}], 'big')")
            return lines
        self.check_reg(pc, s)
        if mode == ABS:
            lines.append(f"_v = _pkt_load(r, {imm}, {size})")
        else:
            k = imm & M32
            lines.append(f"_o = (r[{s}] + {k}) & {M32:#x}")
            lines.append(f"_v = _pkt_load(r, (_o ^ {SB32:#x}) - {SB32:#x}, {size})")
        lines.append("if _v is None:")
        lines.append("    r[0] = 0")
        lines.append("    return -1")
        lines.append("r[0] = _v")
        return lines

    def fp_off(self, pc: int, off: int, size: int) -> int:
        """Check a constant frame-pointer access; its offset from the buffer end."""
        if not -STACK_SIZE <= off <= -size:
            raise self.fail(pc, f"invalid stack access: {size} bytes at fp{off:+d} (the frame is fp-{STACK_SIZE}..fp)")
        if off % size:
            raise self.fail(pc, f"misaligned stack access: {size} bytes at fp{off:+d}")
        return off

    def emit_ldx(self, pc: int, insn: Insn) -> list[str]:
        c, d, s, off = insn.code, insn.dst, insn.src, insn.off
        mode = c & 0xE0
        size = SIZES[c & 0x18]
        if mode not in (MEM, MEMSX) or (mode == MEMSX and size == 8) or insn.imm:
            raise self.fail(pc, f"unknown opcode {c:#04x}")
        self.check_reg(pc, d, write=True)
        self.check_reg(pc, s)
        if s == 10:
            o = self.fp_off(pc, off, size)
            st = "_S" if mode == MEMSX else "_U"
            idx = f"r[10] - {STACK_TOP:#x} + len(r[11]) + ({o})"
            if mode == MEMSX:
                return [f"r[{d}] = {st}{size}(r[11], {idx})[0] & {M64:#x}"]
            return [f"r[{d}] = {st}{size}(r[11], {idx})[0]"]
        fn = "_loadsx" if mode == MEMSX else "_load"
        field = ctx_read(off, size, "r[14]", "r[12]") if mode == MEM else None
        if field is not None:  # a read-only skb field, when r[s] is the context pointer
            return [f"r[{d}] = {field} if r[{s}] == {CTX_BASE:#x} else _load(r, r[{s}] + ({off}), {size}, {pc})"]
        return [f"r[{d}] = {fn}(r, r[{s}] + ({off}), {size}, {pc})"]

    def emit_store(self, pc: int, insn: Insn) -> list[str]:
        c, d, s, off, imm = insn.code, insn.dst, insn.src, insn.off, insn.imm
        cls = insn.cls
        mode = c & 0xE0
        size = SIZES[c & 0x18]
        if cls == STX and mode == ATOMIC:
            self.check_reg(pc, d)
            self.check_reg(pc, s)
            if imm == BPF_LOAD_ACQ:
                self.check_reg(pc, d, write=True)
                return [f"r[{d}] = _load(r, r[{s}] + ({off}), {size}, {pc})"]
            if imm == BPF_STORE_REL:
                return [f"_store(r, r[{d}] + ({off}), {size}, r[{s}], {pc})"]
            if size not in (4, 8) or (imm & ~BPF_FETCH) not in ATOMIC_OPS or imm in (0xE0, 0xF0):
                raise self.fail(pc, f"invalid atomic operation {imm:#x}")
            if imm & BPF_FETCH:
                self.check_reg(pc, s if imm != 0xF1 else 0, write=True)
            lines = [f"_atomic(r, r[{d}] + ({off}), {size}, {imm}, {s}, {pc})"]
            if size == 4 and imm & BPF_FETCH:  # fetched values are zero-extended
                lines.append(f"r[{0 if imm == 0xF1 else s}] &= {M32:#x}")
            return lines
        if mode != MEM:
            raise self.fail(pc, f"unknown opcode {c:#04x}")
        self.check_reg(pc, d)
        if cls == ST:
            if s:
                raise self.fail(pc, "BPF_ST uses reserved src field")
            value = str((imm & M64) & ((1 << (size * 8)) - 1))
        else:
            if imm:
                raise self.fail(pc, "BPF_STX uses reserved imm field")
            self.check_reg(pc, s)
            value = f"r[{s}]" if size == 8 else f"r[{s}] & {(1 << (size * 8)) - 1:#x}"
        if d == 10:
            o = self.fp_off(pc, off, size)
            return [f"_P{size}(r[11], r[10] - {STACK_TOP:#x} + len(r[11]) + ({o}), {value})"]
        return [f"_store(r, r[{d}] + ({off}), {size}, {value}, {pc})"]


# The global namespace of generated code: run-time support, under the names
# the emit_* methods write (no builtins beyond len and int).
_GEN_GLOBALS: dict[str, Any] = {
    "__builtins__": {"len": len, "int": int},
    "_RunError": RunError,
    "_load": memory.load,
    "_loadsx": memory.loadsx,
    "_store": memory.store,
    "_atomic": memory.atomic,
    "_pkt_load": memory.pkt_load,
    "_bswap": alu.bswap,
    "_sdiv64": alu.sdiv64,
    "_smod64": alu.smod64,
    "_sdiv32": alu.sdiv32,
    "_smod32": alu.smod32,
    "_call_sub": memory.call_sub,
    "_ret_sub": memory.ret_sub,
    **{f"_U{n}": st.unpack_from for n, st in memory.U_STRUCT.items()},
    **{f"_S{n}": st.unpack_from for n, st in memory.S_STRUCT.items()},
    **{f"_P{n}": st.pack_into for n, st in memory.U_STRUCT.items()},
    **{f"_helper_{func_id}": fn for func_id, fn in HELPERS.items()},
    **CTX_READ_GLOBALS,
}


# --- fusing -----------------------------------------------------------------
#
# A run of block functions pays a Python call, a budget check and a list
# subscript per block, and a list subscript per register access.  A program
# without loops nor calls (most RX filters: clang unrolls what it can) runs
# instead as one function: the blocks in pc order, each behind an
# ``if pc == start:`` guard (every jump goes forward, so one pass reaches the
# exit), r0-r9 in locals and stack accesses at constant indexes.  Its text is
# the blocks' own, rewritten: the rewriting below relies on the exact forms
# the emit_* methods write (``r[N]``, the stack index expression, ``return``
# lines), and gives up (None) on anything else.  The budget cannot run out in
# one pass over the program when the budget is at least the program's length.

_REG = re.compile(r"\br\[(\d)\]")
_STACK_INDEX = re.compile(re.escape(f"r[10] - {STACK_TOP:#x} + len(r[11]) + (") + r"(-?\d+)\)")
_ALL = ", ".join(f"r{n}" for n in range(10))
_ALL_LIST = ", ".join(f"r[{n}]" for n in range(10))


class Fused:
    """A program translated into one function, ``run(r)`` -> r0 at exit (see the comment above)."""

    def __init__(self, run: Callable[[list], int], insns: int, starts: list[int], lines: list[int]) -> None:
        self.run = run
        self.insns = insns  # instructions in all blocks: the most a run executes
        self._starts = starts  # block start pcs, and the source line where each block begins
        self._lines = lines

    def block_of(self, exc: BaseException) -> int:
        """The start pc of the block that raised ``exc`` in :attr:`run` (from its traceback)."""
        code = self.run.__code__
        line = 0
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code is code:
                line = tb.tb_lineno
            tb = tb.tb_next
        return self._starts[max(0, bisect_right(self._lines, line) - 1)]


def _rewrite(line: str) -> str:
    line = _STACK_INDEX.sub(lambda m: str(STACK_SIZE + int(m.group(1))), line).replace("r[11]", "stk")
    line = _REG.sub(r"r\1", line)
    if "_helper_" in line:  # helpers read their arguments from the list, and leave registers alone
        return "r[1], r[2], r[3], r[4], r[5] = r1, r2, r3, r4, r5\n" + line
    if "_atomic(" in line:  # reads and writes r0 and its source register in the list
        return f"{_ALL_LIST} = {_ALL}\n{line}\n{_ALL} = {_ALL_LIST}"
    return line


def fuse(bodies: dict[int, list[str]], lens: list[int]) -> Fused | None:
    """The blocks (their lines, by start pc) as one function, or None when they loop (or cannot be read)."""
    starts = sorted(bodies)
    out = [
        "def run(r):",
        "    stk = r[11]",
        "    r0 = r2 = r3 = r4 = r5 = r6 = r7 = r8 = r9 = 0",
        f"    r1 = {CTX_BASE:#x}",
        "    pc = 0",
    ]
    lines = []
    for k, start in enumerate(starts):
        indent = "    "
        if k:
            out.append(f"    if pc == {start}:")
            indent = "        "
        lines.append(len(out) + (0 if k else 1))
        body = bodies[start]
        for i, line in enumerate(body):
            text = line.lstrip()
            pad = indent + line[: len(line) - len(text)]
            if text == "return -1":
                text = "return r0"
            elif text.startswith("return "):
                expr = text[len("return ") :]
                try:
                    targets = (int(expr.split(" ", 1)[0]), int(expr.rsplit(" ", 1)[-1]))
                except ValueError:
                    return None
                if i != len(body) - 1 or min(targets) <= start:
                    return None  # a loop (or a jump in the middle of a block)
                text = "pc = " + expr
            out.extend(pad + part for part in _rewrite(text).split("\n"))
    env = dict(_GEN_GLOBALS)
    exec(compile("\n".join(out) + "\n", "<ebpf program, fused>", "exec"), env)  # noqa: S102 - our generated code
    return Fused(env["run"], sum(lens), starts, lines)
