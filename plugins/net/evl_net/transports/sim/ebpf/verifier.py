"""A static verifier for socket filters, run once when ``evl net -F`` installs one.

The kernel checks a program when it is loaded (``BPF_PROG_LOAD``, before
EVL ever sees it) and refuses what could misbehave; without this module the
simulator would install such a program and only fail on the first frame.
:func:`verify` makes the same decision at install time, with the same
wording: a refusal is a :class:`VerifierError` whose text is the end of the
kernel's log on one line, the instruction first when there is one
(``3: (61) r2 = *(u32 *)(r1 +76): invalid bpf_context access off=76 size=4``),
and whose ``errno`` is the one BPF_PROG_LOAD fails with.

It follows the verifier of **Linux 6.18** (kernel/bpf/verifier.c) for a
``BPF_PROG_TYPE_SOCKET_FILTER`` program loaded **by root** (CAP_BPF and
CAP_PERFMON, as ``evl net`` runs): bounded loops are allowed, and so are
reads of uninitialised stack and pointers stored or returned (the kernel
only refuses those to unprivileged users); no Spectre sanitation.  Its
decisions are checked against that kernel (tests/test_ebpf_verifier.py loads
every test program with BPF_PROG_LOAD when it can).  In order:

1. structure: function boundaries and jump ranges, the last instruction of
   each function, ``lddw`` pairs and opcodes, reachability;
2. every path from the entry point, with abstract registers and stack:
   types (not initialised, scalar, pointer to the context, pointer to a call
   frame's stack with a fixed and a variable offset, map, map value and key,
   maybe-NULL map value until a NULL check, ring buffer record -- a reference
   the program must submit or discard --, callback), scalar bounds (a tnum
   and signed/unsigned 64- and 32-bit ranges kept consistent, copies of one
   value refined together), each stack byte (invalid, misc, zero, spilled
   register).  A conditional jump whose outcome the bounds decide follows
   that outcome only; loops are thus unrolled one iteration at a time, and a
   state that repeats exactly is an infinite loop.  A state covered by one
   already explored is pruned, as in the kernel: registers compared only
   where still live, scalars only where the explored state found their
   value precise (precision is tracked backwards along each path);
   Helper calls are checked against :data:`~.helpers.SOCKET_FILTER_HELPERS`:
   argument kinds, the map types a helper takes, memory sizes, references.
   A callback (``bpf_loop()``, ``bpf_for_each_map_elem()``) runs from the
   call's state any number of times: each return to the call widens what
   changed to unknown until the state is covered, where the kernel unrolls
   (same verdict for the programs tested, fewer paths); reads of a frozen
   read-only map (``.rodata``) are known constants, as in the kernel;
3. the combined stack size of bpf-to-bpf calls.

Instructions no path reaches are not checked, as in the kernel, and
:attr:`Verified.insns` has them replaced by ``goto -1`` (the kernel's
sanitize_dead_code()): that, not the object's code, is what to run.  What the
kernel accepts but the simulator cannot run (helpers it does not implement
yet, kfuncs, ``skb->sk``, ``may_goto``, arenas) is refused with
:class:`SimulatorLimitError`, which says so.  The walk stops after
:data:`INSN_LIMIT` processed instructions or :data:`TIME_LIMIT` seconds (the
kernel allows 1M instructions, far too slow in Python), so that a program
needing more is refused as too complex for the simulator, fast.
"""

from __future__ import annotations

import errno as _errno
import struct
import time
from dataclasses import dataclass
from typing import NamedTuple

from .errors import EbpfError
from .helpers import (
    ARG_ALLOC_SIZE,
    ARG_ANYTHING,
    ARG_CONST_SIZE,
    ARG_CONST_SIZE_OR_ZERO,
    ARG_CONST_STR,
    ARG_CTX,
    ARG_FUNC,
    ARG_MAP,
    ARG_MAP_KEY,
    ARG_MAP_VALUE,
    ARG_MEM,
    ARG_MEM_OR_NULL,
    ARG_OUT_LONG,
    ARG_RINGBUF_MEM,
    ARG_STACK_OR_NULL,
    ARG_UNINIT_MAP_VALUE,
    ARG_UNINIT_MEM,
    RET_MAP_VALUE_OR_NULL,
    RET_RINGBUF_MEM_OR_NULL,
    SOCKET_FILTER_HELPERS,
    format_ok,
)
from .isa import ALU_NAMES, ATOMIC_OPS, HELPER_NAMES, JMP_NAMES, M32, M64, SB32, SB64

__all__ = [
    "INSN_LIMIT",
    "NR_CPUS",
    "TIME_LIMIT",
    "SimulatorLimitError",
    "Verified",
    "VerifierError",
    "kernel_text",
    "verify",
]

#: Budget of one verification: processed instructions (the kernel's is 1M, too slow here), which
#: decides; and seconds, only a safety net should some program make each instruction unusually
#: slow -- a wall-clock limit that could bind would make a verdict depend on the machine's load.
INSN_LIMIT = 30_000
TIME_LIMIT = 10.0
#: The kernel's limits: instructions in a program, pending branches, call frames, stack.
MAX_INSNS = 1_000_000
JMP_SEQ_LIMIT = 8192
MAX_CALL_FRAMES = 8
MAX_STACK = 512
MAX_VAR_OFF = 1 << 29
MAX_VAR_SIZ = 1 << 29
#: CPUs bpf_get_smp_processor_id() may return (the kernel's nr_cpu_ids; at most CONFIG_NR_CPUS).
NR_CPUS = 8192
#: Helper ids the kernel knows (__BPF_FUNC_MAX_ID).
FUNC_MAX_ID = 212
GPL_LICENSES = frozenset({"GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL", "Dual MIT/GPL", "Dual MPL/GPL"})


class VerifierError(EbpfError):
    """The kernel's verifier would refuse the program.

    ``errno`` is what BPF_PROG_LOAD fails with; ``detail`` the kernel's
    message, ``insn`` and ``text`` the instruction it is about, when any.
    """

    def __init__(
        self, message: str, insn: int | None = None, text: str | None = None, errno: int = _errno.EACCES
    ) -> None:
        super().__init__(message, insn, text)
        self.errno = errno
        self.text = text
        where = "" if insn is None else f"{insn}: " + (f"{text}: " if text else "")
        self.args = (where + message,)


class SimulatorLimitError(VerifierError):
    """The kernel would accept the program, but the simulator cannot run it."""

    def __init__(self, message: str, insn: int | None = None, text: str | None = None) -> None:
        super().__init__(message, insn, text, _errno.EOPNOTSUPP)


@dataclass(frozen=True)
class Verified:
    """What a successful verification found: the kernel's log statistics, and the program to run.

    ``insns`` is the program with the instructions no path reaches replaced
    by ``goto -1``, as the kernel's sanitize_dead_code() does: they are never
    checked, so they may be anything (an invalid register, reserved fields),
    and the interpreter must not see them.
    """

    insns: bytes
    processed: int  # instructions processed
    states: int  # states kept for pruning
    stack_depth: int  # bytes of stack of the deepest call chain


def _tnum_bounds(v: int, m: int, smin: int, smax: int, umin: int, umax: int, bits: int) -> tuple[int, int, int, int]:
    """Narrow the signed and unsigned ranges of one width to what the tnum (v, m) allows (__update_reg_bounds)."""
    sign = 1 << (bits - 1)
    hi = v | m
    umin, umax = max(umin, v), min(umax, hi)
    lo_s, hi_s = (v | sign, hi & ~sign) if m & sign else (v, hi)
    lo_s = lo_s - (sign << 1) if lo_s & sign else lo_s
    hi_s = hi_s - (sign << 1) if hi_s & sign else hi_s
    return max(smin, lo_s), min(smax, hi_s), umin, umax


def _sync_signs(smin: int, smax: int, umin: int, umax: int, bits: int) -> tuple[int, int, int, int]:
    """Tighten signed and unsigned bounds of one width from each other, as the kernel's __reg_deduce_bounds."""
    top, wrap = (1 << (bits - 1)) - 1, 1 << bits
    if umax <= top:  # the unsigned range does not cross the sign bit: it is the signed range too
        smin, smax = max(smin, umin), min(smax, umax)
    elif umin > top:  # all negative as signed
        smin, smax = max(smin, umin - wrap), min(smax, umax - wrap)
    if smin >= 0:
        umin, umax = max(umin, smin), min(umax, smax)
    elif smax < 0:
        umin, umax = max(umin, smin + wrap), min(umax, smax + wrap)
    return smin, smax, umin, umax


def verify(
    insns: bytes,
    license: str = "GPL",
    *,
    nr_cpus: int = NR_CPUS,
    insn_limit: int = INSN_LIMIT,
    time_limit: float = TIME_LIMIT,
    maps: tuple = (),
    func_info: bool = False,
    global_funcs: frozenset[int] = frozenset(),
) -> Verified:
    """Check a socket filter as the kernel's verifier would; raise :class:`VerifierError` if it would refuse.

    ``license`` is the object's license string: GPL-only helpers need a
    GPL-compatible one, as in the kernel.  ``nr_cpus`` bounds what
    bpf_get_smp_processor_id() returns (the kernel uses the machine's count).
    ``insn_limit`` and ``time_limit`` bound the work (see :data:`INSN_LIMIT`).
    ``maps`` are the program's maps (:class:`evl_net.kernel.bpflink.MapDef`),
    indexed as its ``lddw`` instructions name them; ``func_info`` says that
    the program comes with BTF function information (libbpf passes it for an
    object built with ``-g``), which callbacks need, and which lets
    sub-programs use legacy packet loads and tail calls; ``global_funcs`` are
    the first instructions of non-static functions, which the kernel checks
    on their own (calls of them are refused as beyond the simulator).
    """
    return _Verifier(
        bytes(insns), license, nr_cpus, insn_limit, time_limit, tuple(maps), func_info, frozenset(global_funcs)
    ).run()


# ==========================================================================
# Instructions and their text in the kernel's log
# ==========================================================================

ALU, ALU64, JMP, JMP32, LD, LDX, ST, STX = 4, 7, 5, 6, 0, 1, 2, 3
MEM, MEMSX, ATOMIC, ABS, IND = 0x60, 0x80, 0xC0, 0x20, 0x40
LOAD_ACQ, STORE_REL, FETCH = 0x100, 0x110, 0x01
SIZE = {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}
_UNAME = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}
_SNAME = {1: "s8", 2: "s16", 4: "s32"}


class Insn(NamedTuple):
    code: int
    dst: int
    src: int
    off: int
    imm: int
    imm64: int = 0


def _valid_opcodes() -> frozenset[int]:
    """bpf_opcode_in_insntable(): every opcode the kernel knows."""
    ok = {0x18, 0x20, 0x28, 0x30, 0x40, 0x48, 0x50}  # lddw, ld_abs, ld_ind
    for cls in (ALU, ALU64):
        for op in range(0x00, 0xD0, 0x10):
            ok.add(cls | op)
            if op != 0x80:  # neg has no BPF_X form
                ok.add(cls | op | 8)
    ok |= {ALU | 0xD0, ALU | 0xD8, ALU64 | 0xD0}  # le/be, bswap
    for cls in (JMP, JMP32):
        ok.add(cls | 0x00)  # ja / gotol
        for op in JMP_NAMES:
            ok |= {cls | op, cls | op | 8}
    ok |= {JMP | 0x80, JMP | 0x90, JMP | 0xE0}  # call, exit, may_goto
    for sz in SIZE:
        ok |= {LDX | MEM | sz, ST | MEM | sz, STX | MEM | sz}
        if sz != 0x18:
            ok.add(LDX | MEMSX | sz)
        ok.add(STX | ATOMIC | sz)
    return frozenset(ok)


VALID_OPCODES = _valid_opcodes()


def helper_name(func_id: int) -> str:
    """``bpf_<name>``, or ``unknown``, as the kernel's func_id_name()."""
    if 0 <= func_id < len(HELPER_NAMES):
        return "bpf_" + HELPER_NAMES[func_id]
    proto = SOCKET_FILTER_HELPERS.get(func_id)
    return "bpf_" + proto.name if proto is not None else "unknown"


def kernel_text(insn: Insn) -> str:
    """The instruction as the kernel's verifier log prints it: ``(61) r2 = *(u32 *)(r1 +76)``."""
    c, d, s, off, imm = insn.code, insn.dst, insn.src, insn.off, insn.imm
    cls = c & 7
    head = f"({c:02x}) "
    if cls in (ALU, ALU64):
        w = "w" if cls == ALU else "r"
        op = c & 0xF0
        if op == 0xD0:
            if cls == ALU64:
                return f"{head}r{d} = bswap{imm} r{d}"
            return f"{head}r{d} = {'be' if c & 8 else 'le'}{imm} r{d}"
        if op == 0x80:
            return f"{head}{w}{d} = -{w}{d}"
        name = ALU_NAMES.get(op, "?")
        if op in (0x30, 0x90) and off == 1:
            name = "s" + name
        if c & 8:
            if op == 0xB0 and off in (8, 16, 32):
                return f"{head}{w}{d} = (s{off}){w}{s}"
            return f"{head}{w}{d} {name} {w}{s}"
        return f"{head}{w}{d} {name} {imm}"
    size = SIZE[c & 0x18]
    if cls == STX:
        mode = c & 0xE0
        at = f"({_UNAME[size]} *)(r{d} {off:+d})"
        if mode == MEM:
            return f"{head}*{at} = r{s}"
        if mode == ATOMIC:
            bits = "64" if size == 8 else ""
            if imm == LOAD_ACQ:
                return f"{head}r{d} = load_acquire(({_UNAME[size]} *)(r{s} {off:+d}))"
            if imm == STORE_REL:
                return f"{head}store_release({at}, r{s})"
            if imm == 0xE1:
                return f"{head}r{s} = atomic{bits}_xchg({at}, r{s})"
            if imm == 0xF1:
                return f"{head}r0 = atomic{bits}_cmpxchg({at}, r0, r{s})"
            name = ATOMIC_OPS.get(imm & ~FETCH, "?")
            if imm & FETCH:
                return f"{head}r{s} = atomic{bits}_fetch_{name}({at}, r{s})"
            sym = {"add": "+=", "or": "|=", "and": "&=", "xor": "^="}.get(name, "?=")
            return f"{head}lock *{at} {sym} r{s}"
        return f"BUG_{c:02x}"
    if cls == ST:
        return f"{head}*({_UNAME[size]} *)(r{d} {off:+d}) = {imm}"
    if cls == LDX:
        kind = _SNAME.get(size, "s64") if c & 0xE0 == MEMSX else _UNAME[size]
        return f"{head}r{d} = *({kind} *)(r{s} {off:+d})"
    if cls == LD:
        mode = c & 0xE0
        if mode == ABS:
            return f"{head}r0 = *({_UNAME[size]} *)skb[{imm}]"
        if mode == IND:
            return f"{head}r0 = *({_UNAME[size]} *)skb[r{s} + {imm}]"
        return f"{head}r{d} = {insn.imm64:#x}"
    op = c & 0xF0
    if op == 0x80:
        if s == 1:
            return f"{head}call pc{imm:+d}"
        return f"{head}call {helper_name(imm) if s == 0 else 'unknown'}#{imm}"
    if op == 0x90:
        return f"{head}exit"
    if op == 0x00:
        return f"{head}gotol pc{imm:+d}" if cls == JMP32 else f"{head}goto pc{off:+d}"
    if op == 0xE0:
        return f"{head}may_goto pc{off:+d}"
    w = "w" if cls == JMP32 else "r"
    rhs = f"{w}{s}" if c & 8 else f"{imm & M32:#x}"
    return f"{head}if {w}{d} {JMP_NAMES.get(op, '?')} {rhs} goto pc{off:+d}"


# ==========================================================================
# Abstract values: tnums and bounds (kernel/bpf/tnum.c, reg_bounds_sync())
# ==========================================================================

S64_MIN, S64_MAX = -(1 << 63), (1 << 63) - 1
S32_MIN, S32_MAX = -(1 << 31), (1 << 31) - 1
NOT_INIT, SCALAR, PTR_CTX, PTR_STACK = 0, 1, 2, 3
MAP_PTR, MAP_VALUE, MAP_VALUE_OR_NULL, MAP_KEY, RINGBUF_MEM, RINGBUF_MEM_OR_NULL, PTR_FUNC = 4, 5, 6, 7, 8, 9, 10
TYPE_NAMES = {
    NOT_INIT: "?",
    SCALAR: "scalar",
    PTR_CTX: "ctx",
    PTR_STACK: "fp",
    MAP_PTR: "map_ptr",
    MAP_VALUE: "map_value",
    MAP_VALUE_OR_NULL: "map_value_or_null",
    MAP_KEY: "map_key",
    RINGBUF_MEM: "ringbuf_mem",
    RINGBUF_MEM_OR_NULL: "ringbuf_mem_or_null",
    PTR_FUNC: "func",
}
OR_NULL = {MAP_VALUE_OR_NULL: MAP_VALUE, RINGBUF_MEM_OR_NULL: RINGBUF_MEM}
#: Pointers to memory a helper may read or write (the kernel's map_key_value_types and friends).
MEM_TYPES = frozenset({PTR_STACK, MAP_VALUE, MAP_KEY, RINGBUF_MEM})
ADD_CONST = 1 << 40  # flag in Reg.id: a linked copy plus a constant (Reg.off)


def _s64(x: int) -> int:
    return x - (1 << 64) if x & SB64 else x


def _s32(x: int) -> int:
    x &= M32
    return x - (1 << 32) if x & SB32 else x


def _tnum_range(lo: int, hi: int) -> tuple[int, int]:
    b = (lo ^ hi).bit_length()
    if b > 63:
        return 0, M64
    delta = (1 << b) - 1
    return lo & ~delta, delta


def _tnum_add(av: int, am: int, bv: int, bm: int, mask: int) -> tuple[int, int]:
    sm = am + bm
    sv = av + bv
    mu = ((sm + sv) ^ sv) | am | bm
    mu &= mask
    return sv & ~mu & mask, mu


def _tnum_sub(av: int, am: int, bv: int, bm: int, mask: int) -> tuple[int, int]:
    dv = av - bv
    mu = ((dv + am) ^ (dv - bm)) | am | bm
    mu &= mask
    return dv & ~mu & mask, mu


def _tnum_mul(av: int, am: int, bv: int, bm: int, mask: int) -> tuple[int, int]:
    if am == 0 and bm == 0:
        return (av * bv) & mask, 0
    acc_v = (av * bv) & mask
    acc_m = (0, 0)
    while av or am:
        if av & 1:
            acc_m = _tnum_add(acc_m[0], acc_m[1], 0, bm, mask)
        elif am & 1:
            acc_m = _tnum_add(acc_m[0], acc_m[1], 0, bv | bm, mask)
        av >>= 1
        am >>= 1
        bv = (bv << 1) & mask
        bm = (bm << 1) & mask
    return _tnum_add(acc_v, 0, acc_m[0], acc_m[1], mask)


def _bswap(v: int, bits: int) -> int:
    n = bits // 8
    return int.from_bytes((v & ((1 << bits) - 1)).to_bytes(n, "little"), "big")


class Reg(NamedTuple):
    """One register (or spilled register) of the abstract state.

    For scalars, ``value``/``mask`` (a tnum) and the bounds describe the
    value, ``id`` links copies of one value, ``off`` is the constant a linked
    copy adds.  For pointers, ``off`` is the fixed offset, the tnum and bounds
    describe the variable one, ``frame`` the call frame a stack pointer
    points into, ``aux`` the map (or memory size) of other pointers, ``id``
    what a NULL check of a maybe-NULL pointer applies to.
    """

    type: int
    value: int = 0
    mask: int = 0
    smin: int = 0
    smax: int = 0
    umin: int = 0
    umax: int = 0
    s32min: int = 0
    s32max: int = 0
    u32min: int = 0
    u32max: int = 0
    off: int = 0
    id: int = 0
    frame: int = 0
    aux: int = 0  # map pointers and values: the map's index; ring buffer records: their size; func: its pc
    ref: int = 0  # ring buffer records: the reference the program must release

    @property
    def const(self) -> bool:
        return self.mask == 0


UNINIT = Reg(NOT_INIT)


_CONSTS: dict[int, Reg] = {}


def const(v: int) -> Reg:
    """A known scalar (the common ones cached: loop counters make many)."""
    v &= M64
    reg = _CONSTS.get(v)
    if reg is None:
        lo = v & M32
        sv, s32 = _s64(v), _s32(lo)
        reg = Reg(SCALAR, v, 0, sv, sv, v, v, s32, s32, lo, lo)
        if len(_CONSTS) > 4096:
            _CONSTS.clear()
        _CONSTS[v] = reg
    return reg


UNKNOWN = Reg(SCALAR, 0, M64, S64_MIN, S64_MAX, 0, M64, S32_MIN, S32_MAX, 0, M32)
U32_UNKNOWN = Reg(SCALAR, 0, M32, 0, M32, 0, M32, S32_MIN, S32_MAX, 0, M32)
ZERO = const(0)


def _sync(
    v: int, m: int, smin: int, smax: int, umin: int, umax: int, s32min: int, s32max: int, u32min: int, u32max: int
) -> Reg | None:
    """The scalar these facts describe, every representation narrowed by the others; None if there is none.

    The kernel's reg_bounds_sync(): tnum and ranges, signed and unsigned, 64
    and 32 bits, each narrowed by what the others imply, until nothing changes.
    """
    if m == 0:
        lo = v & M32
        if umin <= v <= umax and smin <= _s64(v) <= smax and u32min <= lo <= u32max and s32min <= _s32(lo) <= s32max:
            return const(v)
        return None
    for _ in range(3):
        before = (v, m, smin, smax, umin, umax, s32min, s32max, u32min, u32max)
        # tnum -> ranges
        smin, smax, umin, umax = _tnum_bounds(v, m, smin, smax, umin, umax, 64)
        s32min, s32max, u32min, u32max = _tnum_bounds(v & M32, m & M32, s32min, s32max, u32min, u32max, 32)
        # signed <-> unsigned, 64 and 32 bits
        smin, smax, umin, umax = _sync_signs(smin, smax, umin, umax, 64)
        s32min, s32max, u32min, u32max = _sync_signs(s32min, s32max, u32min, u32max, 32)
        # 64 -> 32: when the upper halves of both ends agree
        for lo64, hi64 in ((umin, umax), (smin, smax)):
            if lo64 >> 32 == hi64 >> 32:
                lo, hi = lo64 & M32, hi64 & M32
                if u32min < lo:
                    u32min = lo
                if u32max > hi:
                    u32max = hi
                slo, shi = _s32(lo), _s32(hi)
                if slo <= shi:
                    if s32min < slo:
                        s32min = slo
                    if s32max > shi:
                        s32max = shi
        # 32 -> 64
        x = umin - (umin & M32) + u32min
        if umin < x:
            umin = x
        x = umax - (umax & M32) + u32max
        if umax > x:
            umax = x
        x = ((smin >> 32) << 32) + u32min
        if smin < x:
            smin = x
        x = ((smax >> 32) << 32) + u32max
        if smax > x:
            smax = x
        if umin > umax or smin > smax or u32min > u32max or s32min > s32max:
            return None
        # ranges -> tnum
        old_v, old_m = v, m
        rv, rm = _tnum_range(umin, umax)
        if (v ^ rv) & ~(m | rm) & M64:
            return None
        v, m = (v | rv) & ~(m & rm) & M64, m & rm
        rv, rm = _tnum_range(u32min, u32max)
        if (v ^ rv) & ~(m | rm) & M32:
            return None
        sub_m = m & rm & M32
        v = (v & ~M32 & M64) | ((v | rv) & ~sub_m & M32)
        m = (m & ~M32 & M64) | sub_m
        if m == 0:
            return _sync(v, 0, smin, smax, umin, umax, s32min, s32max, u32min, u32max)
        if (v, m) == (old_v, old_m) or (v, m, smin, smax, umin, umax, s32min, s32max, u32min, u32max) == before:
            break  # the known bits taught nothing new: another round would not either (or hardly)
    return Reg(SCALAR, v, m, smin, smax, umin, umax, s32min, s32max, u32min, u32max)


def _scalar(v: int, m: int, smin: int, smax: int, umin: int, umax: int, s32: tuple[int, ...] | None = None) -> Reg:
    """A scalar from 64-bit facts (and 32-bit ones, if known); unknown if contradictory (cannot happen)."""
    s32min, s32max, u32min, u32max = s32 if s32 is not None else (S32_MIN, S32_MAX, 0, M32)
    reg = _sync(v & M64, m & M64, smin, smax, umin, umax, s32min, s32max, u32min, u32max)
    return UNKNOWN if reg is None else reg


def _zext32(v: int, m: int, s32min: int, s32max: int, u32min: int, u32max: int) -> Reg:
    """A 32-bit result, zero-extended to 64 bits."""
    reg = _sync(v & M32, m & M32, u32min, u32max, u32min, u32max, s32min, s32max, u32min, u32max)
    return U32_UNKNOWN if reg is None else reg


#: A view of one width: (value, mask, smin, smax, umin, umax).
View = tuple[int, int, int, int, int, int]


def _view64(r: Reg) -> View:
    return r.value, r.mask, r.smin, r.smax, r.umin, r.umax


def _view32(r: Reg) -> View:
    return r.value & M32, r.mask & M32, r.s32min, r.s32max, r.u32min, r.u32max


def _wrap(lo: int, hi: int, bits: int, signed: bool) -> tuple[int, int] | None:
    """[lo, hi] of exact results, in the width's range if they do not straddle a wrap-around."""
    half = 1 << (bits - 1) if signed else 0
    if hi - lo >= 1 << bits or (lo + half) >> bits != (hi + half) >> bits:
        return None
    k = ((lo + half) >> bits) << bits
    return lo - k, hi - k


def _alu_view(op: int, a: View, b: View, bits: int) -> View:
    """op (add, sub, mul, and, or, xor, lsh/rsh/arsh by a constant) of two views of ``bits`` bits."""
    av, am, asmin, asmax, aumin, aumax = a
    bv, bm, bsmin, bsmax, bumin, bumax = b
    mw = (1 << bits) - 1
    smin, smax, umin, umax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1, 0, mw
    if op == 0x00 or op == 0x10:
        if op == 0x00:
            v, m = _tnum_add(av, am, bv, bm, mw)
            u = _wrap(aumin + bumin, aumax + bumax, bits, False)
            s = _wrap(asmin + bsmin, asmax + bsmax, bits, True)
        else:
            v, m = _tnum_sub(av, am, bv, bm, mw)
            u = _wrap(aumin - bumax, aumax - bumin, bits, False)
            s = _wrap(asmin - bsmax, asmax - bsmin, bits, True)
        if u:
            umin, umax = u
        if s:
            smin, smax = s
    elif op == 0x20:
        v, m = _tnum_mul(av, am, bv, bm, mw)
        u = _wrap(aumin * bumin, aumax * bumax, bits, False)
        if u:
            umin, umax = u
        corners = [x * y for x in (asmin, asmax) for y in (bsmin, bsmax)]
        s = _wrap(min(corners), max(corners), bits, True)
        if s:
            smin, smax = s
    elif op == 0x50:
        v = av & bv
        m = (av | am) & (bv | bm) & ~v
        umin, umax = v, min(aumax, bumax)
    elif op == 0x40:
        v = av | bv
        m = (am | bm) & ~v
        umin, umax = max(aumin, bumin), v | m
    elif op == 0xA0:
        m = am | bm
        v = (av ^ bv) & ~m
        umin, umax = v, v | m
    else:  # shifts by the constant bv
        k = bv
        if op == 0x60:
            v, m = (av << k) & mw, (am << k) & mw
            if aumax << k <= mw:
                umin, umax = aumin << k, aumax << k
        elif op == 0x70:
            v, m = av >> k, am >> k
            umin, umax = aumin >> k, aumax >> k
        else:
            sign = 1 << (bits - 1)
            v = (((av ^ sign) - sign) >> k) & mw
            m = (((am ^ sign) - sign) >> k) & mw
            smin, smax = asmin >> k, asmax >> k
    return v & mw, m & mw, smin, smax, umin, umax


_LOW_BITS_OPS = frozenset({0x00, 0x10, 0x20, 0x40, 0x50, 0xA0, 0x60})  # low 32 bits of the result from the low 32


def _alu64(op: int, a: Reg, b: Reg) -> Reg:
    r64 = _alu_view(op, _view64(a), _view64(b), 64)
    if op in _LOW_BITS_OPS and not (op == 0x60 and b.value >= 32):
        r32 = _alu_view(op, _view32(a), _view32(b), 32)
        return _scalar(*r64, (r32[2], r32[3], r32[4], r32[5]))
    return _scalar(*r64)


def _alu32(op: int, a: Reg, b: Reg) -> Reg:
    r32 = _alu_view(op, _view32(a), _view32(b), 32)
    return _zext32(*r32)


def _truncate(r: Reg, size: int) -> Reg:
    """The low ``size`` bytes of r, zero-extended (coerce_reg_to_size())."""
    if size == 8 or r.type != SCALAR:
        return r
    mw = (1 << (size * 8)) - 1
    if r.const:
        return const(r.value & mw)
    if r.umax <= mw:
        return r
    v, m = r.value & mw, r.mask & mw
    return _scalar(v, m, 0, v | m, v, v | m)


def _sign_extend(r: Reg, size: int) -> Reg:
    """The low ``size`` bytes of r, sign-extended (coerce_reg_to_size_sx())."""
    bits = size * 8
    sign = 1 << (bits - 1)
    mw = (1 << bits) - 1
    if r.type != SCALAR:
        return UNKNOWN
    if r.const:
        return const((((r.value & mw) ^ sign) - sign) & M64)
    if r.umax < sign:  # fits without its sign bit: unchanged value
        return r
    return _scalar(0, M64, -sign, sign - 1, 0, M64)


def _byte_swap(r: Reg, bits: int, swap: bool) -> Reg:
    """BPF_END: the low ``bits``, byte-swapped when ``swap``, zero-extended."""
    mw = (1 << bits) - 1
    if r.type != SCALAR:
        return UNKNOWN
    v, m = r.value & mw, r.mask & mw
    if swap:
        v, m = _bswap(v, bits), _bswap(m, bits)
    if m == 0:
        return const(v)
    if not swap and r.umax <= mw:
        return r._replace(id=0)
    return _scalar(v, m, S64_MIN, S64_MAX, 0, M64)


def _tnum_text(r: Reg) -> str:
    """A var_off as the kernel's log prints it."""
    if r.mask == 0:
        return str(r.value) if r.value <= 0xFFFF else f"{r.value:#x}"
    return f"(0x{r.value:x}; 0x{r.mask:x})"


# ==========================================================================
# Conditional jumps: outcome and refinement (is_branch_taken(), regs_refine_cond_op())
# ==========================================================================

REV = {
    0x10: 0x50,
    0x50: 0x10,
    0x20: 0xB0,
    0xB0: 0x20,
    0x30: 0xA0,
    0xA0: 0x30,
    0x60: 0xD0,
    0xD0: 0x60,
    0x70: 0xC0,
    0xC0: 0x70,
}
JSET, NOT_JSET = 0x40, 0x140


def _taken(op: int, a: View, b: View) -> int:
    """1 if the jump is always taken, 0 if never, -1 if it depends."""
    av, am, asmin, asmax, aumin, aumax = a
    bv, bm, bsmin, bsmax, bumin, bumax = b
    if op in (0x10, 0x50):
        if am == 0 and bm == 0:
            eq = av == bv
        elif (av ^ bv) & ~(am | bm) or aumin > bumax or aumax < bumin or asmin > bsmax or asmax < bsmin:
            eq = False
        else:
            return -1
        return int(eq) if op == 0x10 else int(not eq)
    if op in (JSET, NOT_JSET):
        if av & bv:
            res = 1
        elif not ((av | am) & (bv | bm)):
            res = 0
        else:
            return -1
        return res if op == JSET else 1 - res
    if op == 0x20:
        return 1 if aumin > bumax else 0 if aumax <= bumin else -1
    if op == 0x30:
        return 1 if aumin >= bumax else 0 if aumax < bumin else -1
    if op == 0xA0:
        return 1 if aumax < bumin else 0 if aumin >= bumax else -1
    if op == 0xB0:
        return 1 if aumax <= bumin else 0 if aumin > bumax else -1
    if op == 0x60:
        return 1 if asmin > bsmax else 0 if asmax <= bsmin else -1
    if op == 0x70:
        return 1 if asmin >= bsmax else 0 if asmax < bsmin else -1
    if op == 0xC0:
        return 1 if asmax < bsmin else 0 if asmin >= bsmax else -1
    return 1 if asmax <= bsmin else 0 if asmin > bsmax else -1  # 0xD0


def _const_taken(op: int, a: int, b: int, is32: bool) -> bool:
    """The jump's outcome on known operands."""
    bits = 32 if is32 else 64
    if is32:
        a &= M32
        b &= M32
    if op == 0x10:
        return a == b
    if op == 0x50:
        return a != b
    if op == 0x40:
        return bool(a & b)
    if op == 0x20:
        return a > b
    if op == 0x30:
        return a >= b
    if op == 0xA0:
        return a < b
    if op == 0xB0:
        return a <= b
    sign = 1 << (bits - 1)
    a, b = (a ^ sign) - sign, (b ^ sign) - sign
    if op == 0x60:
        return a > b
    if op == 0x70:
        return a >= b
    if op == 0xC0:
        return a < b
    return a <= b


def _refine(op: int, a: list[int], b: list[int]) -> None:
    """Narrow views a and b (lists, modified) to the values for which ``a op b`` holds."""
    if op == 0x10:
        for i, f in ((2, max), (3, min), (4, max), (5, min)):
            a[i] = b[i] = f(a[i], b[i])
        if not (a[0] ^ b[0]) & ~(a[1] | b[1]):
            v, m = a[0] | b[0], a[1] & b[1]
            a[0], a[1] = b[0], b[1] = v & ~m, m
        else:
            a[4], a[5] = 1, 0  # contradiction
    elif op == 0x50:
        for x, y in ((a, b), (b, a)):
            if y[1] == 0:
                val = y[0]
                sval = y[2]
                if x[4] == val:
                    x[4] += 1
                if x[5] == val:
                    x[5] -= 1
                if x[2] == sval:
                    x[2] += 1
                if x[3] == sval:
                    x[3] -= 1
    elif op == JSET:
        if b[1] == 0 and b[0] and not b[0] & (b[0] - 1):
            a[0] |= b[0]
            a[1] &= ~b[0]
    elif op == NOT_JSET:
        if b[1] == 0:
            a[0] &= ~b[0]
            a[1] &= ~b[0]
    elif op in (0x20, 0x30, 0xA0, 0xB0):  # unsigned
        lo, hi = (a, b) if op in (0xA0, 0xB0) else (b, a)  # lo < or <= hi
        strict = op in (0x20, 0xA0)
        lo[5] = min(lo[5], hi[5] - strict)
        hi[4] = max(hi[4], lo[4] + strict)
    else:  # signed
        lo, hi = (a, b) if op in (0xC0, 0xD0) else (b, a)
        strict = op in (0x60, 0xC0)
        lo[3] = min(lo[3], hi[3] - strict)
        hi[2] = max(hi[2], lo[2] + strict)


def _apply_view(r: Reg, view: list[int], is32: bool) -> Reg | None:
    """r narrowed by a refined view of its 64 or low 32 bits; None if no value is left.

    When the refined ranges contradict the known bits but the kernel's
    is_branch_taken() could not tell, the kernel explores the branch anyway,
    with the bounds reset (reg_bounds_sanity_check()): so does this, to find
    what the kernel finds there.
    """
    v, m, smin, smax, umin, umax = view
    width = M32 if is32 else M64
    if (r.value ^ v) & ~r.mask & width or m & ~r.mask & width:  # a bit r knows changed: contradiction
        return None
    if is32:
        tv, tm = (r.value & ~M32 & M64) | v, (r.mask & ~M32 & M64) | m
        out = _sync(tv, tm, r.smin, r.smax, r.umin, r.umax, smin, smax, umin, umax)
    else:
        tv, tm = v, m
        out = _sync(v, m, smin, smax, umin, umax, r.s32min, r.s32max, r.u32min, r.u32max)
    if out is None:
        rv, rm = _tnum_range(umin, umax) if umin <= umax else (0, width)
        if is32:
            rv, rm = (tv & ~M32 & M64) | (rv & M32), (tm & ~M32 & M64) | (rm & M32)
        if (tv ^ rv) & ~(tm | rm) & M64:
            return None
        mask = tm & rm
        out = _sync((tv | rv) & ~mask & M64, mask, S64_MIN, S64_MAX, 0, M64, S32_MIN, S32_MAX, 0, M32)
        if out is None:
            return None
    return out._replace(id=r.id, off=r.off)


# ==========================================================================
# The verifier
# ==========================================================================

# Stack bytes: invalid (never written), misc (unknown data), zero, spilled register.
B_INV, B_MISC, B_ZERO, B_SPILL = "I", "M", "Z", "S"
EMPTY_SLOT = "IIIIIIII"


class Slot(NamedTuple):
    """One 8-byte stack slot: the kind of each byte (lowest address first), and the spilled register."""

    kinds: str
    spill: Reg | None = None


EMPTY = Slot(EMPTY_SLOT)


class Frame:
    """One call frame of the current path: registers, stack slots by index (fp-8 is 0)."""

    __slots__ = ("callback", "callsite", "loops", "refs", "regs", "stack", "subprog", "unroll")

    def __init__(
        self,
        regs: list[Reg],
        stack: dict[int, Slot],
        callsite: int,
        subprog: int,
        callback: str | None = None,
        refs: tuple[tuple[int, int], ...] = (),
        loops: dict[int, list[Frame]] | None = None,
        unroll: int = 0,
    ) -> None:
        self.regs = regs
        self.stack = stack
        self.callsite = callsite
        self.subprog = subprog
        self.callback = callback  # the helper calling it, for a callback's frame ("loop", "for_each")
        self.refs = refs  # (id, insn) of the references held (ring buffer records), in the outermost frame
        self.loops = loops or {}  # callback-calling insn -> the frames the last call there started from
        # Callback runs this frame started: states of two runs are never one loop repeating
        # (the kernel's callback_unroll_depth).
        self.unroll = unroll

    def copy(self) -> Frame:
        return Frame(
            list(self.regs),
            dict(self.stack),
            self.callsite,
            self.subprog,
            self.callback,
            self.refs,
            dict(self.loops),
            self.unroll,
        )

    def freeze(self) -> tuple:
        return (tuple(self.regs), tuple(sorted(self.stack.items())), self.callsite, self.refs, self.unroll)


class Checkpoint:
    """A state kept at a prune point: later states it covers need not be explored again."""

    __slots__ = ("branches", "frames", "hits", "idx", "key", "misses", "pall", "parent", "preg", "pslot", "trail")

    def __init__(self, idx: int, frames: list[Frame], key: tuple, parent: Checkpoint | None, trail: list[int]) -> None:
        self.idx = idx
        self.frames = [f.copy() for f in frames]
        self.key = key
        self.parent = parent
        self.trail = trail  # the insns run from the parent's state to this one
        self.branches = 1  # paths below this state still being explored
        self.hits = 0
        self.misses = 0
        # Precise values (innermost frame): registers and stack slots whose value decided something below.
        self.preg = 0
        self.pslot = 0
        self.pall = False


#: The register numbers in each 11-bit mask.
_BITS = [tuple(r for r in range(11) if mask >> r & 1) for mask in range(1 << 11)]
_ARGS_MASK = 0b111110  # r1-r5
#: The kernel's internal "operation not supported" errno (not EOPNOTSUPP), as BPF_PROG_LOAD returns it.
ENOTSUPP = 524
#: Helpers that call a callback of the program: bpf_for_each_map_elem, bpf_loop.
CALLBACK_HELPERS = frozenset({164, 181})
_CALLER_SAVED = 0b111111  # r0-r5


class _Verifier:
    def __init__(
        self,
        data: bytes,
        license: str,
        nr_cpus: int,
        insn_limit: int,
        time_limit: float,
        maps: tuple = (),
        func_info: bool = False,
        global_funcs: frozenset[int] = frozenset(),
    ) -> None:
        self.data = data
        self.maps = maps  # kernel.bpflink.MapDef, by index (the fd a lddw names)
        self.func_info = func_info  # the program comes with BTF function info (an object built with -g)
        self.global_funcs = global_funcs  # first insns of the functions with global linkage
        self.deadline = time.perf_counter() + time_limit
        self.time_limit = time_limit
        self.nr_cpus = nr_cpus
        self.gpl = license in GPL_LICENSES
        self.insn_limit = insn_limit
        self.insns: list[Insn] = []
        self.n = 0
        self.subprogs: list[int] = [0]
        self.stack_depth: dict[int, int] = {}
        self.callees: dict[int, set[int]] = {}
        self.processed = 0
        self.jmps = 0
        self.prev_jmps = 0
        self.prev_insns = 0
        self.total_states = 0
        self.id_gen = 0
        self.second_halves: set[int] = set()
        self.precise_memo: tuple[list[int] | None, int, int, int] = (None, 0, 0, 0)

    # --- errors ---------------------------------------------------------------

    def err(self, idx: int | None, message: str, code: int = _errno.EACCES) -> VerifierError:
        text = kernel_text(self.insns[idx]) if idx is not None else None
        return VerifierError(message, idx, text, code)

    def limit(self, idx: int | None, message: str) -> SimulatorLimitError:
        text = kernel_text(self.insns[idx]) if idx is not None else None
        return SimulatorLimitError(message + " is not implemented by the simulator", idx, text)

    # --- structure --------------------------------------------------------------

    def run(self) -> Verified:
        data = self.data
        if len(data) % 8:
            raise VerifierError(f"program size {len(data)} is not a multiple of 8 bytes", errno=_errno.EINVAL)
        raw = [Insn(c, r & 0xF, r >> 4, o, i) for c, r, o, i in struct.iter_unpack("<BBhi", data)]
        self.n = n = len(raw)
        if n == 0:
            raise VerifierError("BPF program is empty", errno=_errno.EINVAL)
        if n > MAX_INSNS:
            raise VerifierError(f"BPF program is too large: {n} insns (limit {MAX_INSNS})", errno=_errno.E2BIG)
        for i, insn in enumerate(raw):
            if insn.code == 0x18 and i + 1 < n:
                raw[i] = insn._replace(imm64=(insn.imm & M32) | ((raw[i + 1].imm & M32) << 32))
        self.insns = raw
        self.find_subprogs()
        self.check_subprogs()
        self.check_ld_imm_and_opcodes()
        self.check_cfg()
        self.analyse()
        self.do_check()
        depth = self.check_stack_depth()
        trap = struct.pack("<BBhi", JMP | 0x00, 0, -1, 0)
        out = bytearray(self.data)
        for i, seen in enumerate(self.seen):
            if not seen and i not in self.second_halves:
                out[i * 8 : i * 8 + 8] = trap
                if self.insns[i].code == 0x18:
                    out[i * 8 + 8 : i * 8 + 16] = trap
        return Verified(bytes(out), self.processed, self.total_states, depth)

    def find_subprogs(self) -> None:
        """add_subprog_and_kfunc(): function entry points; kfuncs and callbacks are beyond the simulator."""
        starts = {0}
        for i, insn in enumerate(self.insns):
            if insn.code == (JMP | 0x80) and insn.src == 1:
                t = i + insn.imm + 1
                if not 0 <= t < self.n:
                    raise self.err(None, "call to invalid destination", _errno.EINVAL)
                starts.add(t)
            elif insn.code == (JMP | 0x80) and insn.src == 2:
                raise self.limit(i, f"calling kernel functions (kfunc btf_id {insn.imm})")
            elif insn.code == 0x18 and insn.src == 4:  # a callback's address
                t = i + insn.imm + 1
                if not 0 <= t < self.n:
                    raise self.err(None, "call to invalid destination", _errno.EINVAL)
                starts.add(t)
        self.subprogs = sorted(starts)

    def check_subprogs(self) -> None:
        """check_subprogs(): jumps stay in their function, each function ends with exit or goto."""
        bounds = [*self.subprogs, self.n]
        for k, start in enumerate(self.subprogs):
            end = bounds[k + 1]
            for i in range(start, end):
                insn = self.insns[i]
                cls = insn.code & 7
                if cls not in (JMP, JMP32) or insn.code in (JMP | 0x80, JMP | 0x90):
                    continue
                t = i + (insn.imm if insn.code == (JMP32 | 0x00) else insn.off) + 1
                if not start <= t < end:
                    raise self.err(None, f"jump out of range from insn {i} to {t}", _errno.EINVAL)
            if self.insns[end - 1].code not in (JMP | 0x90, JMP | 0x00, JMP32 | 0x00):
                raise self.err(None, "last insn is not an exit or jmp", _errno.EINVAL)
        # check_abnormal_return(): without BTF, functions may not end the program.
        for k, start in enumerate(self.subprogs[1:] if not self.func_info else [], 1):
            body = self.insns[start : bounds[k + 1]]
            if any(i.code & 7 == LD and i.code & 0xE0 in (ABS, IND) for i in body):
                raise self.err(None, "LD_ABS is not allowed in subprogs without BTF", _errno.EINVAL)
            if any(i.code == (JMP | 0x80) and i.src == 0 and i.imm == 12 for i in body):
                raise self.err(None, "tail_call is not allowed in subprogs without BTF", _errno.EINVAL)

    def check_ld_imm_and_opcodes(self) -> None:
        """resolve_pseudo_ldimm64(): lddw pairs and what they load, BPF_LDX fields, known opcodes."""
        insns = self.insns
        i = 0
        while i < self.n:
            insn = insns[i]
            if insn.code & 7 == LDX and (insn.code & 0xE0 not in (MEM, MEMSX) or insn.imm):
                raise self.err(None, "BPF_LDX uses reserved fields", _errno.EINVAL)
            if insn.code == 0x18:
                second = insns[i + 1] if i + 1 < self.n else None
                if second is None or second.code or second.dst or second.src or second.off:
                    raise self.err(None, "invalid bpf_ld_imm64 insn", _errno.EINVAL)
                if insn.src in (1, 2):
                    if insn.src == 1 and second.imm:
                        raise self.err(None, "unrecognized bpf_ld_imm64 insn", _errno.EINVAL)
                    if not 0 <= insn.imm < len(self.maps):
                        raise self.err(None, f"fd {insn.imm} is not pointing to valid bpf_map", _errno.EBADF)
                    m = self.maps[insn.imm]
                    off = second.imm & M32
                    if insn.src == 2:
                        if m.type != 2:  # only arrays give a value's address (map_direct_value_addr)
                            raise self.err(None, "no direct value access support for this map type", _errno.EINVAL)
                        if off >= m.value_size:
                            raise self.err(
                                None,
                                f"invalid access to map value pointer, value_size={m.value_size} off={off}",
                                _errno.EINVAL,
                            )
                elif insn.src in (5, 6):
                    raise self.limit(i, "loading a map by index (BPF_PSEUDO_MAP_IDX)")
                elif insn.src == 3:
                    raise self.limit(i, "loading a kernel variable (BTF id)")
                elif insn.src == 4:
                    if second.imm:
                        raise self.err(None, "unrecognized bpf_ld_imm64 insn", _errno.EINVAL)
                elif insn.src:
                    raise self.err(None, "unrecognized bpf_ld_imm64 insn", _errno.EINVAL)
                self.second_halves.add(i + 1)
                i += 2
                continue
            if insn.code not in VALID_OPCODES:
                raise self.err(None, f"unknown opcode {insn.code:02x}", _errno.EINVAL)
            i += 1

    def successors(self, i: int) -> list[int]:
        """Where control may go after insn i, calls included (for reachability)."""
        insn = self.insns[i]
        cls = insn.code & 7
        if cls in (JMP, JMP32):
            op = insn.code & 0xF0
            if op == 0x90:
                return []
            if op == 0x80:
                return [i + 1, i + insn.imm + 1] if insn.src == 1 else [i + 1]
            if op == 0x00:
                return [i + (insn.imm if cls == JMP32 else insn.off) + 1]
            return [i + 1, i + insn.off + 1]
        if insn.code == 0x18:
            return [i + 2, i + insn.imm + 1] if insn.src == 4 else [i + 2]
        return [i + 1]

    def check_cfg(self) -> None:
        """check_cfg(): every instruction reachable, no jump into the middle of a lddw."""
        n = self.n
        seen = [False] * n
        todo = [0]
        seen[0] = True
        while todo:
            i = todo.pop()
            for t in self.successors(i):
                if not 0 <= t < n:
                    raise self.err(None, f"jump out of range from insn {i} to {t}", _errno.EINVAL)
                if not seen[t]:
                    seen[t] = True
                    if t not in self.second_halves:
                        todo.append(t)
        i = 0
        while i < n:
            if not seen[i]:
                raise self.err(None, f"unreachable insn {i}", _errno.EINVAL)
            if self.insns[i].code == 0x18:
                if seen[i + 1]:
                    raise self.err(None, f"jump into the middle of ldimm64 insn {i}", _errno.EINVAL)
                i += 2
                continue
            i += 1

    # --- static liveness and prune points ---------------------------------------

    def analyse(self) -> None:
        """Where states are checkpointed (is_prune_point()) and which registers may still be read."""
        n = self.n
        uses = [0] * n
        defs = [0] * n
        succ: list[list[int]] = [[] for _ in range(n)]
        self.prune_point = [False] * n
        for start in self.subprogs:
            self.prune_point[start] = True
        i = 0
        while i < n:
            insn = self.insns[i]
            use, define = self.reg_use_def(insn)
            uses[i], defs[i] = use & 0x7FF, define & 0x7FF  # r11-r15 are refused where they are used
            cls = insn.code & 7
            if cls in (JMP, JMP32):
                op = insn.code & 0xF0
                if op == 0x80:
                    succ[i] = [i + 1]
                    self.prune_point[i + 1] = True
                    if insn.src == 1 or (insn.src == 0 and insn.imm in CALLBACK_HELPERS):
                        self.prune_point[i] = True
                elif op == 0x00:
                    t = i + (insn.imm if cls == JMP32 else insn.off) + 1
                    succ[i] = [t]
                    self.prune_point[t] = True
                elif op != 0x90:
                    t = i + insn.off + 1
                    succ[i] = [i + 1, t]
                    self.prune_point[i] = self.prune_point[t] = True
            else:
                succ[i] = [i + 2] if insn.code == 0x18 else [i + 1]
            i += 2 if insn.code == 0x18 else 1
        # Backward dataflow to the fixpoint: live-in = (live-out - defs) | uses.
        live = [0] * n
        order = [i for i in range(n - 1, -1, -1) if i not in self.second_halves]
        changed = True
        while changed:
            changed = False
            for i in order:
                out = 0
                for t in succ[i]:
                    out |= live[t]
                new = (out & ~defs[i]) | uses[i]
                if new != live[i]:
                    live[i] = new
                    changed = True
        self.live = live

    @staticmethod
    def reg_use_def(insn: Insn) -> tuple[int, int]:
        """The registers an instruction reads and writes (as bit masks)."""
        c, d, s = insn.code, insn.dst, insn.src
        cls = c & 7
        bd, bs = 1 << d, 1 << s
        if cls in (ALU, ALU64):
            op = c & 0xF0
            if op == 0xB0:
                return (bs if c & 8 else 0), bd
            return bd | (bs if c & 8 and op not in (0x80, 0xD0) else 0), bd
        if cls == LDX:
            return bs, bd
        if cls == ST:
            return bd, 0
        if cls == STX:
            if c & 0xE0 == ATOMIC:
                if insn.imm == LOAD_ACQ:
                    return bs, bd
                if insn.imm == 0xF1:
                    return bd | bs | 1, 1
                return bd | bs, bs if insn.imm & FETCH else 0
            return bd | bs, 0
        if cls == LD:
            if c == 0x18:
                return 0, bd
            return (1 << 6) | (bs if c & 0xE0 == IND else 0), _CALLER_SAVED
        op = c & 0xF0
        if op == 0x80:
            if s == 1:
                return _ARGS_MASK, _CALLER_SAVED
            proto = SOCKET_FILTER_HELPERS.get(insn.imm)
            nargs = len(proto.args) if proto is not None and proto.args is not None else 0
            return ((1 << (nargs + 1)) - 2), _CALLER_SAVED
        if op == 0x90:
            return 1, 0
        if op in (0x00, 0xE0):
            return 0, 0
        return bd | (bs if c & 8 else 0), 0

    # --- precision (mark_chain_precision()) -------------------------------------

    def mark_precise(self, regs: int, slots: int = 0) -> None:
        """Values that decided something: make them precise in the checkpoints they come from.

        Walks this path's instructions backwards from the current one (not
        included), following where each value came from, and records the
        registers (and stack slots) in every checkpoint passed, so that a
        later state can only be pruned against one if it agrees on them.
        """
        trail = self.trail
        cp = self.parent
        # This path's own insns first.  Reaching where the last walk on this trail started, with
        # no more to mark than it had, the rest is done already (a loop marks its counter each turn).
        start = len(trail) - 2
        memo_trail, memo_start, memo_regs, memo_slots = self.precise_memo
        if memo_trail is not trail:
            memo_start = -1
        self.precise_memo = (trail, start, regs, slots)
        for k in range(start, -1, -1):
            if k == memo_start and not regs & ~memo_regs and not slots & ~memo_slots:
                return
            regs, slots = self.back_step(trail[k], regs, slots)
            if regs < 0:
                self.all_precise(cp)
                return
            if not regs and not slots:
                return
        while regs or slots:
            if cp is None:
                return
            new_regs, new_slots = regs & ~cp.preg, slots & ~cp.pslot
            if cp.pall or not (new_regs or new_slots):
                return
            cp.preg |= new_regs
            cp.pslot |= new_slots
            regs, slots = new_regs, new_slots
            trail, cp = cp.trail, cp.parent
            for e in reversed(trail):
                regs, slots = self.back_step(e, regs, slots)
                if regs < 0:
                    self.all_precise(cp)
                    return
                if not regs and not slots:
                    return

    @staticmethod
    def all_precise(cp: Checkpoint | None) -> None:
        while cp is not None and not cp.pall:
            cp.pall = True
            cp = cp.parent

    def back_step(self, e: int, regs: int, slots: int) -> tuple[int, int]:
        """What had to be precise before trail entry e for ``regs``/``slots`` to be after it (-1: give up)."""
        insn = self.insns[e & 0xFFFFFF]
        c, d, s = insn.code, insn.dst, insn.src
        cls = c & 7
        bd, bs = 1 << d, 1 << s
        spi = (e >> 24) & 0x7F
        if spi == 0x7F or (spi and (e >> 32) & 0xFF != len(self.frames) - 1):
            return (-1, 0) if regs or slots else (0, 0)  # variable or another frame's stack
        slot = 1 << (spi - 1) if spi else 0
        if cls in (ALU, ALU64):
            if c & 0xF0 == 0xB0:
                if regs & bd:
                    regs &= ~bd
                    if c & 8:
                        regs |= bs
            elif regs & bd and c & 8 and c & 0xF0 not in (0x80, 0xD0):
                regs |= bs
            return regs, slots
        if cls == LDX or (cls == STX and insn.imm == LOAD_ACQ):
            if regs & bd:
                regs &= ~bd
                if slot:
                    slots |= slot
            return regs, slots
        if cls in (ST, STX):
            if not slot:
                if slots and cls == STX:
                    regs |= bs
                return regs, slots
            if cls == ST:
                if slots & slot and SIZE[c & 0x18] == 8:
                    slots &= ~slot
                return regs, slots
            if c & 0xE0 == ATOMIC and insn.imm not in (STORE_REL,):
                load_reg = (1 if insn.imm == 0xF1 else bs) if insn.imm & FETCH else 0
                if regs & load_reg:
                    regs &= ~load_reg
                    slots |= slot
                if slots & slot:
                    regs |= bs | (1 if insn.imm == 0xF1 else 0)
                return regs, slots
            if slots & slot:
                if SIZE[c & 0x18] == 8:
                    slots &= ~slot
                regs |= bs
            return regs, slots
        if cls == LD:
            return (regs & ~bd if c == 0x18 else regs & ~_CALLER_SAVED), slots
        op = c & 0xF0
        if op == 0x80:
            if s == 1:
                return (-1, 0) if regs or slots else (0, 0)
            return regs & ~_CALLER_SAVED, slots
        if op == 0x90:
            return (-1, 0) if regs or slots else (0, 0)
        linked = (e >> 40) & 0x7FF
        if linked and regs & linked:
            if e >> 51 & 1:
                return -1, 0
            regs |= linked
        return regs, slots

    def note_stack(self, ptr: Reg, lo: int) -> None:
        """Record in the trail which stack slot the current insn accessed (for back_step())."""
        if ptr.const:
            spi = (-lo - 1) // 8
            self.trail[-1] |= ((spi + 1) << 24) | (ptr.frame << 32)
        else:
            self.trail[-1] |= 0x7F << 24

    # --- the walk -----------------------------------------------------------------

    def do_check(self) -> None:
        regs = [UNINIT] * 11
        regs[1] = Reg(PTR_CTX, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        regs[10] = self.fp(0)
        self.frames = [Frame(regs, {}, -1, 0)]
        self.parent: Checkpoint | None = None
        self.trail: list[int] = []  # insns run since the parent checkpoint, stack slots noted
        self.precise_memo = (None, 0, 0, 0)
        self.pending: list[tuple[int, list[Frame], Checkpoint | None, list[int]]] = []
        self.visited: dict[int, list[Checkpoint]] = {}  # explored states, by insn
        self.looping = [0] * self.n  # states still being explored, by insn
        self.fail_hint = [0] * self.n
        self.ptr_type: dict[int, int] = {}  # the pointer each memory insn was seen with
        self.in_progress: dict[tuple, int] = {}
        idx = 0
        insns = self.insns
        self.seen = seen = bytearray(self.n)
        while True:
            seen[idx] = 1
            self.processed += 1
            if self.processed > self.insn_limit or (not self.processed & 0x3FF and time.perf_counter() > self.deadline):
                budget = (
                    f"{self.insn_limit} insns"
                    if self.processed > self.insn_limit
                    else f"{self.time_limit:g} s ({self.processed} insns)"
                )
                raise VerifierError(
                    f"program too complex for the simulator's verifier: gave up after {budget} "
                    f"(the kernel's limit is {MAX_INSNS} insns)",
                    errno=_errno.E2BIG,
                )
            if self.prune_point[idx] and self.is_state_visited(idx):
                idx = self.end_path()
                if idx < 0:
                    return
                continue
            self.trail.append(idx)
            insn = insns[idx]
            cls = insn.code & 7
            if cls in (ALU, ALU64):
                self.check_alu(idx, insn)
                idx += 1
            elif cls == LDX:
                self.check_ldx(idx, insn)
                idx += 1
            elif cls == ST or cls == STX:
                self.check_store(idx, insn)
                idx += 1
            elif cls == LD:
                if insn.code == 0x18:
                    self.write_reg(idx, insn.dst, self.ld_imm64(idx, insn))
                    idx += 2
                else:
                    self.check_ld_abs(idx, insn)
                    idx += 1
            else:
                self.jmps += 1
                idx = self.check_jmp(idx, insn)
                if idx < 0:
                    idx = self.end_path()
                    if idx < 0:
                        return

    def ld_imm64(self, idx: int, insn: Insn) -> Reg:
        """What a lddw loads: a constant, a map, a global variable's address, a function."""
        if insn.src == 1:
            return Reg(MAP_PTR, aux=insn.imm)
        if insn.src == 2:
            return Reg(MAP_VALUE, off=insn.imm64 >> 32, aux=insn.imm)
        if insn.src == 4:
            if not self.func_info:
                raise self.err(idx, "missing btf func_info", _errno.EINVAL)
            return Reg(PTR_FUNC, aux=idx + insn.imm + 1)
        return const(insn.imm64)

    def fp(self, frame: int) -> Reg:
        return Reg(PTR_STACK, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, frame)

    def end_path(self) -> int:
        """The path ended (exit or pruned): the next pending one's insn, -1 when none is left."""
        self.update_branch_counts(self.parent)
        if not self.pending:
            return -1
        idx, frames, parent, trail = self.pending.pop()
        self.frames = frames
        self.parent = parent
        self.trail = trail
        return idx

    def update_branch_counts(self, cp: Checkpoint | None) -> None:
        while cp is not None:
            cp.branches -= 1
            if cp.branches:
                break
            count = self.in_progress.get(cp.key, 0) - 1
            if count > 0:
                self.in_progress[cp.key] = count
            else:
                self.in_progress.pop(cp.key, None)
            self.looping[cp.idx] -= 1
            self.visited.setdefault(cp.idx, []).append(cp)  # explored: now it can prune
            cp = cp.parent

    def push_branch(self, idx: int, frames: list[Frame]) -> None:
        self.pending.append((idx, frames, self.parent, list(self.trail)))
        if self.parent is not None:
            self.parent.branches += 1
        if len(self.pending) > JMP_SEQ_LIMIT:
            raise VerifierError(f"The sequence of {len(self.pending)} jumps is too complex.", errno=_errno.EFAULT)

    def copy_frames(self) -> list[Frame]:
        return [f.copy() for f in self.frames]

    def is_state_visited(self, idx: int) -> bool:
        """Prune against a covering explored state, detect a loop that repeats exactly, keep a checkpoint."""
        looping = self.looping[idx] > 0
        key: tuple | None = None
        # An exact repeat of a state still being explored: a loop that never ends (callback sites
        # converge in call_callback() instead).
        if looping and not self.is_callback_site(idx):
            key = (idx, tuple(f.freeze() for f in self.frames))
            if key in self.in_progress:
                raise self.err(None, f"infinite loop detected at insn {idx}", _errno.EINVAL)
        # Heuristics of the kernel: a checkpoint every 2 jumps and 8 insns, every 20 and 100 in a loop.
        add = self.jmps - self.prev_jmps >= 2 and self.processed - self.prev_insns >= 8
        if looping and self.jmps - self.prev_jmps < 20 and self.processed - self.prev_insns < 100:
            add = False
        lst = self.visited.get(idx)
        if lst:
            keep = []
            for cp in lst:
                if self.states_equal(cp, idx):
                    cp.hits += 1
                    # what the explored state needed precise, this path needs too (propagate_precision())
                    if cp.pall:
                        self.all_precise(self.parent)
                    else:
                        self.trail.append(idx)  # mark_precise() starts before the current insn
                        self.mark_precise(cp.preg, cp.pslot)
                        self.trail.pop()
                    return True
                if add:  # a state that rarely helps is dropped, as the kernel does
                    cp.misses += 1
                if cp.misses <= cp.hits * 3 + 3:
                    keep.append(cp)
            lst[:] = keep
        if add:
            if key is None:
                key = (idx, tuple(f.freeze() for f in self.frames))
            cp = Checkpoint(idx, self.frames, key, self.parent, self.trail)
            self.trail = []
            self.parent = cp
            self.looping[idx] += 1
            self.in_progress[key] = self.in_progress.get(key, 0) + 1
            self.total_states += 1
            self.prev_jmps = self.jmps
            self.prev_insns = self.processed
        return False

    def is_callback_site(self, idx: int) -> bool:
        insn = self.insns[idx]
        return insn.code == (JMP | 0x80) and insn.src == 0 and insn.imm in CALLBACK_HELPERS

    def states_equal(self, cp: Checkpoint, idx: int) -> bool:
        """Whether the explored state ``cp`` covers the current one (states_equal() with RANGE_WITHIN).

        Registers nothing reads any more are ignored; scalars only matter
        where the explored state found their value precise.  Callers' frames
        are compared in full.
        """
        old_frames, cur_frames = cp.frames, self.frames
        if len(old_frames) != len(cur_frames) or len(old_frames[0].refs) != len(cur_frames[0].refs):
            return False
        last = len(cur_frames) - 1
        idmap: dict[int, int] = {}
        revmap: dict[int, int] = {}
        for k, (of, cf) in enumerate(zip(old_frames, cur_frames, strict=True)):
            if of.callsite != cf.callsite:
                return False
            inner = k == last
            live = self.live[idx if inner else cur_frames[k + 1].callsite + 1]
            preg = cp.preg if inner and not cp.pall else 0x7FF
            pslot = cp.pslot if inner and not cp.pall else -1
            oregs, cregs = of.regs, cf.regs
            if inner:  # the register that told states apart here last time, first: most comparisons fail
                r = self.fail_hint[idx]
                if live >> r & 1 and not self.regsafe(oregs[r], cregs[r], bool(preg >> r & 1), {}, {}):
                    return False
            for r in _BITS[live]:
                o = oregs[r]
                if (o is cregs[r] and not o.id) or o.type == NOT_INIT:  # the same value (shared since a copy)
                    continue
                if not self.regsafe(o, cregs[r], bool(preg >> r & 1), idmap, revmap):
                    if inner:
                        self.fail_hint[idx] = r
                    return False
            ostack, cstack = of.stack, cf.stack
            if ostack is cstack:
                continue
            for spi in ostack.keys() | cstack.keys():
                # Never written in the explored state still reads as a scalar (root may read it): a
                # pointer spilled there now would read differently.
                o_slot = ostack.get(spi) or EMPTY
                c_slot = cstack.get(spi) or EMPTY
                if o_slot is c_slot and (o_slot.spill is None or not o_slot.spill.id):
                    continue
                if not self.slotsafe(o_slot, c_slot, bool(pslot >> spi & 1), idmap, revmap):
                    return False
        return True

    @staticmethod
    def regsafe(o: Reg, c: Reg, relevant: bool, idmap: dict[int, int], revmap: dict[int, int]) -> bool:
        if o.type == NOT_INIT:
            return True
        if o.type != c.type:
            return False
        if o.type != SCALAR:
            if o._replace(id=0, ref=0) != c._replace(id=0, ref=0) or bool(o.id) != bool(c.id):
                return False
            if o.id:  # maybe-NULL pointers: the same ones must be the same here
                if o.id in idmap:
                    return idmap[o.id] == c.id
                if c.id in revmap:
                    return False
                idmap[o.id] = c.id
                revmap[c.id] = o.id
            return True
        if not relevant:
            return True
        if not (
            o.umin <= c.umin
            and c.umax <= o.umax
            and o.smin <= c.smin
            and c.smax <= o.smax
            and o.u32min <= c.u32min
            and c.u32max <= o.u32max
            and o.s32min <= c.s32min
            and c.s32max <= o.s32max
        ):
            return False
        if c.mask & ~o.mask or (c.value & ~o.mask) != o.value:
            return False
        if o.id:
            if (o.id & ADD_CONST) != (c.id & ADD_CONST) or (o.id & ADD_CONST and o.off != c.off):
                return False
            cid = c.id or -(len(idmap) + 1)  # an unlinked value: a fresh id
            if o.id in idmap:
                return idmap[o.id] == cid
            if cid in revmap:
                return False
            idmap[o.id] = cid
            revmap[cid] = o.id
        return True

    def slotsafe(self, o: Slot, c: Slot, relevant: bool, idmap: dict[int, int], revmap: dict[int, int]) -> bool:
        o_ptr = o.spill is not None and o.spill.type != SCALAR
        c_ptr = c.spill is not None and c.spill.type != SCALAR
        if o_ptr or c_ptr:
            if o.kinds.replace(B_INV, "") == "" and not c_ptr:
                return True
            return o.kinds == c.kinds and o.spill is not None and c.spill is not None and o.spill == c.spill
        if not relevant:
            return True
        o_reg, c_reg = self.slot_scalar(o), self.slot_scalar(c)
        if o_reg is not None and c_reg is not None:
            return self.regsafe(o_reg, c_reg, True, idmap, revmap)
        for ok, ck in zip(o.kinds, c.kinds, strict=True):
            if ok == B_INV or ok == B_MISC:
                continue
            if ok == B_ZERO and ck == B_ZERO:
                continue
            if ok != ck:
                return False
        if B_SPILL in o.kinds:
            assert o.spill is not None and c.spill is not None
            return self.regsafe(o.spill, c.spill, True, idmap, revmap)
        return True

    @staticmethod
    def slot_scalar(slot: Slot) -> Reg | None:
        """The scalar an 8-byte read of the slot gives, when it is one register's worth (scalar_reg_for_stack())."""
        if slot.kinds == "SSSSSSSS" and slot.spill is not None:
            return slot.spill
        if all(k in (B_MISC, B_INV) for k in slot.kinds):
            return UNKNOWN
        return None

    # --- registers -------------------------------------------------------------------

    def read_reg(self, idx: int, r: int) -> Reg:
        """check_reg_arg(SRC_OP)."""
        if r > 10:
            raise self.err(idx, f"R{r} is invalid", _errno.EINVAL)
        reg = self.frames[-1].regs[r]
        if reg.type == NOT_INIT:
            raise self.err(idx, f"R{r} !read_ok")
        return reg

    def check_dst(self, idx: int, r: int) -> None:
        """check_reg_arg(DST_OP): a register that may be written."""
        if r > 10:
            raise self.err(idx, f"R{r} is invalid", _errno.EINVAL)
        if r == 10:
            raise self.err(idx, "frame pointer is read only")

    def write_reg(self, idx: int, r: int, value: Reg) -> None:
        self.check_dst(idx, r)
        self.frames[-1].regs[r] = value

    def new_id(self) -> int:
        self.id_gen += 1
        return self.id_gen

    def linked(self, reg: Reg) -> Reg:
        """reg with an id, so that a copy of it stays linked (assign_scalar_id_before_mov())."""
        if reg.type == SCALAR and not reg.id and not reg.const:
            reg = reg._replace(id=self.new_id())
        return reg

    # --- ALU ----------------------------------------------------------------------------

    def check_alu(self, idx: int, insn: Insn) -> None:
        c, d, s, off, imm, _ = insn
        op = c & 0xF0
        is64 = c & 7 == ALU64
        use_x = bool(c & 8)
        regs = self.frames[-1].regs
        if op in (0x80, 0xD0):
            if op == 0x80:
                if use_x or s or off or imm:
                    raise self.err(idx, "BPF_NEG uses reserved fields", _errno.EINVAL)
            elif s or off or imm not in (16, 32, 64) or (is64 and use_x):
                raise self.err(idx, "BPF_END uses reserved fields", _errno.EINVAL)
            dst = self.read_reg(idx, d)
            self.check_dst(idx, d)
            if dst.type != SCALAR:
                regs[d] = UNKNOWN
            elif op == 0x80:
                regs[d] = (_alu64 if is64 else _alu32)(0x10, ZERO, dst)
            else:
                regs[d] = _byte_swap(dst, imm, swap=is64 or use_x)
            return
        if op == 0xB0:
            if use_x:
                if (not is64 and (off not in (0, 8, 16) or imm)) or (is64 and off == 1):
                    if is64 and off == 1:
                        raise self.limit(idx, "addr_space_cast (arenas)")
                    raise self.err(idx, "BPF_MOV uses reserved fields", _errno.EINVAL)
                if is64 and (off not in (0, 8, 16, 32) or imm):
                    raise self.err(idx, "BPF_MOV uses reserved fields", _errno.EINVAL)
                src = self.read_reg(idx, s)
            elif s or off:
                raise self.err(idx, "BPF_MOV uses reserved fields", _errno.EINVAL)
            self.check_dst(idx, d)
            if not use_x:
                regs[d] = const(imm & M64) if is64 else const(imm & M32)
                return
            if off:  # movsx
                if src.type != SCALAR:
                    regs[d] = UNKNOWN if is64 else U32_UNKNOWN
                    return
                fits = src.umax < 1 << (off - 1)
                if fits:
                    src = self.linked(src)
                    regs[s] = src
                res = _sign_extend(src, off // 8)
                if not fits:
                    res = res._replace(id=0)
                regs[d] = res if is64 else _truncate(res, 4)._replace(id=res.id if fits else 0)
                return
            if is64:
                if src.type == SCALAR:
                    src = self.linked(src)
                    regs[s] = src
                regs[d] = src
                return
            if src.type != SCALAR:
                regs[d] = U32_UNKNOWN
                return
            if src.umax <= M32:
                src = self.linked(src)
                regs[s] = src
                regs[d] = src
            else:
                regs[d] = _truncate(src._replace(id=0), 4)
            return
        # all other operations
        if use_x:
            if imm or off not in (0, 1) or (off == 1 and op not in (0x30, 0x90)):
                raise self.err(idx, "BPF_ALU uses reserved fields", _errno.EINVAL)
            src = self.read_reg(idx, s)
        else:
            if s or off not in (0, 1) or (off == 1 and op not in (0x30, 0x90)):
                raise self.err(idx, "BPF_ALU uses reserved fields", _errno.EINVAL)
            src = const(imm & M64) if is64 else const(imm & M32)
        dst = self.read_reg(idx, d)
        if not use_x and op in (0x30, 0x90) and imm == 0:
            raise self.err(idx, "div by zero", _errno.EINVAL)
        if not use_x and op in (0x60, 0x70, 0xC0) and not 0 <= imm < (64 if is64 else 32):
            raise self.err(idx, f"invalid shift {imm}", _errno.EINVAL)
        self.check_dst(idx, d)
        if dst.type != SCALAR or src.type != SCALAR:
            regs[d] = self.pointer_alu(idx, insn, dst, src, is64)
            return
        regs[d] = self.scalar_alu(op, dst, src, is64, use_x)

    def scalar_alu(self, op: int, dst: Reg, src: Reg, is64: bool, use_x: bool) -> Reg:
        bits = 64 if is64 else 32
        if op in (0x30, 0x90):
            return UNKNOWN
        if op in (0x60, 0x70, 0xC0):
            if not src.const or src.value >= bits:
                return UNKNOWN
        if dst.const and src.const:
            res = self.const_alu(op, dst.value, src.value, bits)
        else:
            res = _alu64(op, dst, src) if is64 else _alu32(op, dst, src)
        # linked copies survive one "+= constant" (6.10's BPF_ADD_CONST)
        if is64 and op == 0x00 and dst.id and src.const and not dst.id & ADD_CONST and src.value <= S32_MAX:
            return res._replace(id=dst.id | ADD_CONST, off=src.value)
        return res

    @staticmethod
    def const_alu(op: int, a: int, b: int, bits: int) -> Reg:
        mw = (1 << bits) - 1
        a &= mw
        b &= mw
        if op == 0x00:
            v = a + b
        elif op == 0x10:
            v = a - b
        elif op == 0x20:
            v = a * b
        elif op == 0x40:
            v = a | b
        elif op == 0x50:
            v = a & b
        elif op == 0xA0:
            v = a ^ b
        elif op == 0x60:
            v = a << b
        elif op == 0x70:
            v = a >> b
        else:
            sign = 1 << (bits - 1)
            v = ((a ^ sign) - sign) >> b
        return const(v & mw)

    def pointer_alu(self, idx: int, insn: Insn, dst: Reg, src: Reg, is64: bool) -> Reg:
        """adjust_reg_min_max_vals() when a pointer is involved (root's rules)."""
        op = insn.code & 0xF0
        d = insn.dst
        name = ALU_NAMES.get(op, "?")
        if dst.type != SCALAR and src.type != SCALAR:
            if op == 0x10:
                return UNKNOWN
            raise self.err(idx, f"R{d} pointer {name} pointer prohibited")
        if dst.type == SCALAR:  # scalar op= pointer
            ptr, off_reg, reversed_ = src, dst, True
            self.mark_precise(1 << d)
        else:
            ptr, off_reg, reversed_ = dst, src, False
            if insn.code & 8:
                self.mark_precise(1 << insn.src)
        if not is64:
            if op == 0x10:
                return UNKNOWN
            raise self.err(idx, f"R{d} 32-bit pointer arithmetic prohibited")
        kind = TYPE_NAMES[ptr.type]
        if ptr.type in OR_NULL:
            raise self.err(idx, f"R{d} pointer arithmetic on {kind} prohibited, null-check it first")
        if ptr.type in (MAP_PTR, PTR_FUNC):
            raise self.err(idx, f"R{d} pointer arithmetic on {kind} prohibited")
        self.sane_offset(idx, off_reg, kind)
        self.sane_offset(idx, ptr, kind)
        if op == 0x10:
            if reversed_:
                raise self.err(idx, f"R{d} tried to subtract pointer from scalar")
            if ptr.type == PTR_STACK:
                raise self.err(idx, f"R{d} subtraction from stack pointer prohibited")
        elif op in (0x40, 0x50, 0xA0):
            raise self.err(idx, f"R{d} bitwise operator {name} on pointer prohibited")
        elif op != 0x00:
            raise self.err(idx, f"R{d} pointer arithmetic with {name} operator prohibited")
        val = off_reg.smin
        fixed = ptr.off + val if op == 0x00 else ptr.off - val
        if off_reg.const and S32_MIN <= fixed <= S32_MAX:
            res = ptr._replace(off=fixed)
        else:
            var = _alu64(op, ptr._replace(type=SCALAR, id=0, off=0), off_reg._replace(id=0, off=0))
            res = Reg(
                ptr.type, var.value, var.mask, var.smin, var.smax, var.umin, var.umax,
                S32_MIN, S32_MAX, 0, M32, ptr.off, 0, ptr.frame, ptr.aux, ptr.ref,
            )  # fmt: skip
        self.sane_offset(idx, res, kind)
        return res

    def sane_offset(self, idx: int, reg: Reg, kind: str) -> None:
        """check_reg_sane_offset()."""
        if reg.const and not -MAX_VAR_OFF < _s64(reg.value) < MAX_VAR_OFF:
            raise self.err(idx, f"math between {kind} pointer and {_s64(reg.value)} is not allowed", _errno.EINVAL)
        if not -MAX_VAR_OFF < reg.off < MAX_VAR_OFF:
            raise self.err(idx, f"{kind} pointer offset {reg.off} is not allowed", _errno.EINVAL)
        if reg.smin == S64_MIN:
            raise self.err(
                idx,
                f"math between {kind} pointer and register with unbounded min value is not allowed",
                _errno.EINVAL,
            )
        if not -MAX_VAR_OFF < reg.smin < MAX_VAR_OFF:
            raise self.err(idx, f"value {reg.smin} makes {kind} pointer be out of bounds", _errno.EINVAL)

    # --- memory -----------------------------------------------------------------------

    def check_ldx(self, idx: int, insn: Insn) -> None:
        size = SIZE[insn.code & 0x18]
        base = self.read_reg(idx, insn.src)
        self.check_dst(idx, insn.dst)
        value = self.mem_read(idx, insn.src, base, insn.off, size)
        self.save_ptr_type(idx, base)
        if size < 8 and value.type == SCALAR:
            value = _sign_extend(value, size) if insn.code & 0xE0 == MEMSX else _truncate(value, size)
        self.frames[-1].regs[insn.dst] = value

    def save_ptr_type(self, idx: int, base: Reg) -> None:
        """save_aux_ptr_type(): the kernel rewrites context accesses per insn, so one may not serve both."""
        prev = self.ptr_type.setdefault(idx, base.type)
        if prev != base.type and PTR_CTX in (prev, base.type):
            raise self.err(idx, "same insn cannot be used with different pointers", _errno.EINVAL)

    def check_store(self, idx: int, insn: Insn) -> None:
        c = insn.code
        size = SIZE[c & 0x18]
        if c & 7 == ST:
            if insn.src:
                raise self.err(idx, "BPF_ST uses reserved fields", _errno.EINVAL)
            base = self.read_reg(idx, insn.dst)
            self.mem_write(idx, insn.dst, base, insn.off, size, None, insn.imm)
            self.save_ptr_type(idx, base)
            return
        if c & 0xE0 == ATOMIC:
            self.check_atomic(idx, insn, size)
            return
        if insn.imm:
            raise self.err(idx, "BPF_STX uses reserved fields", _errno.EINVAL)
        value = self.read_reg(idx, insn.src)
        base = self.read_reg(idx, insn.dst)
        self.mem_write(idx, insn.dst, base, insn.off, size, value, None)
        self.save_ptr_type(idx, base)

    def check_atomic(self, idx: int, insn: Insn, size: int) -> None:
        """check_atomic(): the memory is read then written, aligned whatever it is, never the context."""
        imm = insn.imm
        if imm == LOAD_ACQ:
            base = self.read_reg(idx, insn.src)
            self.check_dst(idx, insn.dst)
            # Checked before the load (6.18 stable; the first 6.18 releases checked after it, so a load
            # into its own base register passed there).
            if base.type == PTR_CTX:
                raise self.err(idx, f"BPF_ATOMIC loads from R{insn.src} ctx is not allowed")
            value = self.mem_read(idx, insn.src, base, insn.off, size, strict=True)
            self.save_ptr_type(idx, base)
            self.frames[-1].regs[insn.dst] = _truncate(value, size) if value.type == SCALAR else value
            return
        if imm == STORE_REL:
            value = self.read_reg(idx, insn.src)
            base = self.read_reg(idx, insn.dst)
            self.mem_write(idx, insn.dst, base, insn.off, size, value, None, strict=True)
            self.save_ptr_type(idx, base)
            if base.type == PTR_CTX:
                raise self.err(idx, f"BPF_ATOMIC stores into R{insn.dst} ctx is not allowed")
            return
        if imm not in (0x00, 0x01, 0x40, 0x41, 0x50, 0x51, 0xA0, 0xA1, 0xE1, 0xF1):
            raise self.err(idx, f"BPF_ATOMIC uses invalid atomic opcode {imm:02x}", _errno.EINVAL)
        if size not in (4, 8):
            raise self.err(idx, "invalid atomic operand size", _errno.EINVAL)
        self.read_reg(idx, insn.src)
        base = self.read_reg(idx, insn.dst)
        if imm == 0xF1:
            self.read_reg(idx, 0)
        if base.type == PTR_CTX:
            raise self.err(idx, f"BPF_ATOMIC stores into R{insn.dst} ctx is not allowed")
        load_reg = (0 if imm == 0xF1 else insn.src) if imm & FETCH else -1
        if load_reg >= 0:
            self.check_dst(idx, load_reg)
            self.frames[-1].regs[load_reg] = UNKNOWN  # check_reg_arg(DST_OP), even when it is the base
            base = self.frames[-1].regs[insn.dst]
        old = self.mem_read(idx, insn.dst, base, insn.off, size, strict=True)
        self.mem_write(idx, insn.dst, base, insn.off, size, None, None, strict=True)
        if load_reg >= 0:
            self.frames[-1].regs[load_reg] = _truncate(old, size) if old.type == SCALAR else old

    def check_alignment(self, idx: int, reg: Reg, off: int, size: int, strict: bool) -> None:
        """check_ptr_alignment(): stack accesses are always aligned, atomic ones whatever the pointer."""
        if size == 1 or not (strict or reg.type == PTR_STACK):
            return
        at = _tnum_add(reg.value, reg.mask, (reg.off + off) & M64, 0, M64)
        if (at[0] | at[1]) & (size - 1):
            desc = {PTR_STACK: "stack ", PTR_CTX: "context "}.get(reg.type, "")
            raise self.err(idx, f"misaligned {desc}access off {_tnum_text(reg)}+{reg.off}+{off} size {size}")

    def mem_read(self, idx: int, regno: int, base: Reg, off: int, size: int, strict: bool = False) -> Reg:
        """check_mem_access(BPF_READ): the value loaded (before its zero or sign extension)."""
        self.check_alignment(idx, base, off, size, strict)
        if base.type == PTR_STACK:
            return self.stack_access(idx, regno, base, off, size, None, None, write=False)
        if base.type == PTR_CTX:
            self.ctx_access(idx, regno, base, off, size, write=False)
            if off == 168:
                raise self.limit(idx, "reading skb->sk (struct bpf_sock)")
            return UNKNOWN
        if base.type in (MAP_VALUE, MAP_KEY, RINGBUF_MEM):
            self.region_access(idx, regno, base, off, size, write=False)
            if base.type == MAP_VALUE and base.const and size <= 8:
                m = self.maps[base.aux]
                if m.readonly and m.initial is not None:  # a frozen read-only map: bpf_map_direct_read()
                    at = base.off + off + base.value
                    return const(int.from_bytes(m.initial[at : at + size], "little"))
            return UNKNOWN
        raise self.err(idx, f"R{regno} invalid mem access '{TYPE_NAMES[base.type]}'")

    def region_access(self, idx: int, regno: int, base: Reg, off: int, size: int, write: bool) -> None:
        """check_map_access() and check_mem_region_access(): map values, keys, ring buffer records."""
        if base.type == MAP_VALUE:
            m = self.maps[base.aux]
            limit = m.value_size
            if write and m.readonly:
                raise self.err(
                    idx, f"write into map forbidden, value_size={m.value_size} off={base.off + off} size={size}"
                )
        elif base.type == MAP_KEY:
            if write:
                raise self.err(idx, f"write to change key R{regno} not allowed")
            limit = self.maps[base.aux].key_size
        else:
            limit = base.aux
        total = base.off + off
        smin, umax = base.smin, base.umax
        if base.const:
            smin = umax = _s64(base.value)
        if smin < 0 and (smin == S64_MIN or not S32_MIN <= total + smin <= S32_MAX or total + smin < 0):
            raise self.err(
                idx, f"R{regno} min value is negative, either use unsigned index or do a if (index >=0) check."
            )
        # The kernel logs "invalid access to <what> off=.. size=.." first, then the line said here.
        lo = smin + total
        if lo < 0 or size > limit or lo > limit - size:
            raise self.err(idx, f"R{regno} min value is outside of the allowed memory range")
        if umax >= MAX_VAR_OFF:
            raise self.err(idx, f"R{regno} unbounded memory access, make sure to bounds check any such access")
        if umax + total > limit - size:
            raise self.err(idx, f"R{regno} max value is outside of the allowed memory range")

    def mem_write(
        self,
        idx: int,
        regno: int,
        base: Reg,
        off: int,
        size: int,
        value: Reg | None,
        imm: int | None,
        strict: bool = False,
    ) -> None:
        """check_mem_access(BPF_WRITE) of a register's value, an immediate, or (both None) unknown data."""
        self.check_alignment(idx, base, off, size, strict)
        if base.type == PTR_STACK:
            self.stack_access(idx, regno, base, off, size, value, imm, write=True)
        elif base.type == PTR_CTX:
            self.ctx_access(idx, regno, base, off, size, write=True)
        elif base.type in (MAP_VALUE, MAP_KEY, RINGBUF_MEM):
            self.region_access(idx, regno, base, off, size, write=True)
        else:
            raise self.err(idx, f"R{regno} invalid mem access '{TYPE_NAMES[base.type]}'")

    def ctx_access(self, idx: int, regno: int, base: Reg, off: int, size: int, write: bool) -> None:
        """check_ptr_off_reg() and sk_filter_is_valid_access()."""
        self.check_ptr_off(idx, regno, base)
        if not _ctx_ok(off, size, write):
            raise self.err(idx, f"invalid bpf_context access off={off} size={size}")

    def check_ptr_off(self, idx: int, regno: int, reg: Reg) -> None:
        kind = TYPE_NAMES[reg.type]
        if reg.off < 0:
            raise self.err(idx, f"negative offset {kind} ptr R{regno} off={reg.off} disallowed")
        if reg.off:
            raise self.err(idx, f"dereference of modified {kind} ptr R{regno} off={reg.off} disallowed")
        if not reg.const or reg.value:
            raise self.err(idx, f"variable {kind} access var_off={_tnum_text(reg)} disallowed")

    def stack_range(self, idx: int, regno: int, ptr: Reg, off: int, size: int, what: str) -> tuple[int, int]:
        """check_stack_access_within_bounds(): the lowest offset and the end of an access."""
        if ptr.const:
            lo = _s64(ptr.value) + ptr.off + off
            hi = lo + size
        else:
            if ptr.smax >= MAX_VAR_OFF or ptr.smin <= -MAX_VAR_OFF:
                raise self.err(idx, f"invalid unbounded variable-offset {what} stack R{regno}")
            lo = ptr.smin + ptr.off + off
            hi = ptr.smax + ptr.off + off + size
        code = 0
        if lo < -MAX_STACK or lo > -1:
            code = _errno.EACCES
        elif hi > 0 or size < 0:
            code = _errno.EINVAL
        if code:
            if ptr.const:
                raise self.err(idx, f"invalid {what} stack R{regno} off={lo} size={size}", code)
            raise self.err(
                idx,
                f"invalid variable-offset {what} stack R{regno} var_off={_tnum_text(ptr)} off={ptr.off + off} "
                f"size={size}",
                code,
            )
        sub = self.frames[ptr.frame].subprog
        self.stack_depth[sub] = max(self.stack_depth.get(sub, 0), -lo)
        return lo, hi

    def stack_access(
        self, idx: int, regno: int, ptr: Reg, off: int, size: int, value: Reg | None, imm: int | None, write: bool
    ) -> Reg:
        lo, hi = self.stack_range(idx, regno, ptr, off, size, "write to" if write else "read from")
        self.note_stack(ptr, lo)
        frame = self.frames[ptr.frame]
        if write:
            if ptr.const:
                self.stack_write(idx, frame, ptr.frame, lo, size, value, imm)
            else:
                zero = (value is not None and value.type == SCALAR and value.const and value.value == 0) or imm == 0
                self.clobber(frame, lo, hi, zero)
            return UNINIT
        if ptr.const:
            return self.stack_read(idx, frame, lo, size)
        return ZERO if all(self.byte_kind(frame, o) == B_ZERO for o in range(lo, hi)) else UNKNOWN

    @staticmethod
    def byte_kind(frame: Frame, o: int) -> str:
        spi = (-o - 1) // 8
        slot = frame.stack.get(spi)
        return EMPTY_SLOT[0] if slot is None else slot.kinds[o + 8 * (spi + 1)]

    def stack_write(
        self, idx: int, frame: Frame, frameno: int, o: int, size: int, value: Reg | None, imm: int | None
    ) -> None:
        """check_stack_write_fixed_off(); a value comes from the insn's source register."""
        spi = (-o - 1) // 8
        j = o + 8 * (spi + 1)  # first byte within the slot
        old = frame.stack.get(spi) or Slot(EMPTY_SLOT)
        aligned = j == 0
        if value is not None and value.type == SCALAR and aligned:
            fits = value.umax < 1 << (size * 8) if size < 8 else True
            if fits:
                value = self.linked(value)
                self.frames[-1].regs[self.insns[idx].src] = value
            spill = value if fits else value._replace(id=0)
            frame.stack[spi] = self.spilled(old, size, spill)
            return
        if value is None and imm is not None and aligned and self.insns[idx].code & 7 == ST:
            frame.stack[spi] = self.spilled(old, size, const(imm & M64))
            return
        if value is not None and value.type != SCALAR:
            if size != 8:
                raise self.err(idx, "invalid size of register spill")
            if value.type == PTR_STACK and frameno != len(self.frames) - 1:
                raise self.err(idx, "cannot spill pointers to stack into stack frame of the caller", _errno.EINVAL)
            frame.stack[spi] = Slot("SSSSSSSS", value)
            return
        kinds = old.kinds
        if old.spill is not None:
            kinds = "".join(B_INV if k == B_INV else B_MISC for k in kinds)
        zero = (value is not None and value.const and value.value == 0) or (value is None and imm == 0)
        new = B_ZERO if zero else B_MISC
        frame.stack[spi] = Slot(kinds[:j] + new * size + kinds[j + size :])

    @staticmethod
    def spilled(old: Slot, size: int, reg: Reg) -> Slot:
        """save_register_state(): a register spilled in the first ``size`` bytes of a slot."""
        rest = "".join(k if k in (B_INV, B_ZERO) else B_MISC for k in old.kinds[size:])
        return Slot(B_SPILL * size + rest, reg)

    def clobber(self, frame: Frame, lo: int, hi: int, zero: bool) -> None:
        """Bytes [lo, hi) may have been written: spills there destroyed, contents unknown (or still zero)."""
        for o in range(lo, hi):
            spi = (-o - 1) // 8
            j = o + 8 * (spi + 1)
            slot = frame.stack.get(spi) or Slot(EMPTY_SLOT)
            kinds = slot.kinds
            if slot.spill is not None:
                kinds = "".join(B_INV if k == B_INV else B_MISC for k in kinds)
            new = B_ZERO if zero and kinds[j] == B_ZERO else B_MISC
            frame.stack[spi] = Slot(kinds[:j] + new + kinds[j + 1 :])

    def stack_read(self, idx: int, frame: Frame, o: int, size: int) -> Reg:
        """check_stack_read_fixed_off()."""
        spi = (-o - 1) // 8
        j = o + 8 * (spi + 1)
        slot = frame.stack.get(spi)
        if slot is None:
            return UNKNOWN
        kinds, spill = slot.kinds, slot.spill
        if kinds[0] == B_SPILL and spill is not None:
            spill_size = len(kinds) - len(kinds.lstrip(B_SPILL))
            if size == 8 and spill_size == 8:
                return spill
            if spill.type != SCALAR:
                raise self.err(idx, "invalid size of register fill")
            if size <= spill_size and j == 0:
                if spill.umax >= 1 << (size * 8):
                    spill = spill._replace(id=0)
                return spill
            part = kinds[j : j + size]
            if part.count(B_SPILL) == size and spill.const and spill.value == 0:
                return ZERO
            return ZERO if part.count(B_ZERO) == size else UNKNOWN
        return ZERO if kinds[j : j + size].count(B_ZERO) == size else UNKNOWN

    # --- legacy packet loads -----------------------------------------------------------------

    def check_ld_abs(self, idx: int, insn: Insn) -> None:
        mode = insn.code & 0xE0
        if insn.dst or insn.off or (mode == ABS and insn.src):
            raise self.err(idx, "BPF_LD_[ABS|IND] uses reserved fields", _errno.EINVAL)
        ctx = self.read_reg(idx, 6)
        if ctx.type != PTR_CTX:
            raise self.err(idx, "at the time of BPF_LD_ABS|IND R6 != pointer to skb", _errno.EINVAL)
        if mode == IND:
            self.read_reg(idx, insn.src)
        self.check_ptr_off(idx, 6, ctx)
        regs = self.frames[-1].regs
        for r in range(1, 6):
            regs[r] = UNINIT
        regs[0] = UNKNOWN

    # --- jumps and calls ----------------------------------------------------------------------

    def check_jmp(self, idx: int, insn: Insn) -> int:
        """The next insn on this path, -1 when it ends."""
        c, d, s, off, imm, _ = insn
        cls = c & 7
        op = c & 0xF0
        if op == 0x80:
            if c & 8 or (s != 2 and off) or s not in (0, 1, 2) or d or cls == JMP32:
                raise self.err(idx, "BPF_CALL uses reserved fields", _errno.EINVAL)
            if s == 1:
                return self.call_subprog(idx, insn)
            return self.call_helper(idx, insn)
        if op == 0x00:
            if c & 8 or s or d or (cls == JMP and imm) or (cls == JMP32 and off):
                raise self.err(idx, "BPF_JA uses reserved fields", _errno.EINVAL)
            return idx + (imm if cls == JMP32 else off) + 1
        if op == 0x90:
            if c & 8 or imm or s or d:
                raise self.err(idx, "BPF_EXIT uses reserved fields", _errno.EINVAL)
            return self.exit(idx)
        if op == 0xE0:
            if s or d or imm:
                raise self.err(idx, f"invalid may_goto imm {imm}", _errno.EINVAL)
            raise self.limit(idx, "may_goto")
        return self.cond_jmp(idx, insn)

    def exit(self, idx: int) -> int:
        if len(self.frames) == 1:
            self.read_reg(idx, 0)
            if self.frames[0].refs:
                raise self.err(idx, "BPF_EXIT instruction in main prog would lead to reference leak", _errno.EINVAL)
            return -1
        if self.frames[-1].callback is not None:
            return self.callback_exit(idx)
        r0 = self.frames[-1].regs[0]  # a function's R0 is checked where its caller reads it
        if r0.type == PTR_STACK:
            raise self.err(idx, "cannot return stack pointer to the caller", _errno.EINVAL)
        callee = self.frames.pop()
        self.frames[-1].regs[0] = r0
        return callee.callsite + 1

    def callback_exit(self, idx: int) -> int:
        """prepare_func_exit() of a callback: r0 in [0, 1]; back to the helper call, which runs it again."""
        r0 = self.read_reg(idx, 0)
        if r0.type != SCALAR:
            raise self.err(idx, "R0 not a scalar value")
        self.mark_precise(1)
        if r0.smin < 0 or r0.smax > 1:
            bounds = (f" smin={r0.smin}" if r0.smin > S64_MIN else "") + (
                f" smax={r0.smax}" if r0.smax < S64_MAX else ""
            )
            raise self.err(
                idx,
                f"At callback return the register R0 has{bounds or ' unknown scalar value'} should have been in [0, 1]",
                _errno.EINVAL,
            )
        callee = self.frames.pop()
        return callee.callsite

    def call_subprog(self, idx: int, insn: Insn) -> int:
        if len(self.frames) >= MAX_CALL_FRAMES:
            raise self.err(idx, f"the call stack of {len(self.frames) + 1} frames is too deep", _errno.E2BIG)
        target = idx + insn.imm + 1
        if target in self.global_funcs:
            raise self.limit(idx, "calling a global function (the kernel checks it on its own, from its BTF prototype)")
        caller = self.frames[-1]
        self.callees.setdefault(caller.subprog, set()).add(target)
        regs = [UNINIT] * 11
        for r in range(1, 6):
            regs[r] = caller.regs[r]
            caller.regs[r] = UNINIT
        caller.regs[0] = UNINIT
        regs[10] = self.fp(len(self.frames))
        self.frames.append(Frame(regs, {}, idx, target))
        return target

    def call_helper(self, idx: int, insn: Insn) -> int:
        """check_helper_call(): the arguments against the prototype, then r0; the next insn (-1: path ends)."""
        func_id = insn.imm
        name = f"{helper_name(func_id)}#{func_id}"
        if not 0 <= func_id < FUNC_MAX_ID:
            raise self.err(idx, f"invalid func {name}", _errno.EINVAL)
        proto = SOCKET_FILTER_HELPERS.get(func_id)
        if proto is None:
            raise self.err(idx, f"program of this type cannot use helper {name}", _errno.EINVAL)
        if proto.gpl_only and not self.gpl:
            raise self.err(idx, "cannot call GPL-restricted function from non-GPL compatible program", _errno.EINVAL)
        if proto.might_sleep:
            raise self.err(idx, "helper call might sleep in a non-sleepable prog", _errno.EINVAL)
        if proto.fn is None and proto.args is None:
            raise SimulatorLimitError(f"the simulator does not implement helper {name} yet", idx, kernel_text(insn))
        writes: list[tuple[Reg, int, int, bool]] = []
        args = proto.args or ()
        meta_map = -1
        alloc_size = 0
        release = 0
        func = -1
        null_mem = 0  # registers holding a NULL for a maybe-NULL buffer
        for k, kind in enumerate(args):
            regno = k + 1
            reg = self.read_reg(idx, regno)
            tname = TYPE_NAMES[reg.type]
            if kind == ARG_CTX:
                if reg.type != PTR_CTX:
                    raise self.err(idx, f"R{regno} type={tname} expected=ctx")
                self.check_ptr_off(idx, regno, reg)
            elif kind == ARG_MAP:
                if reg.type != MAP_PTR:
                    raise self.err(idx, f"R{regno} type={tname} expected=map_ptr")
                meta_map = reg.aux
            elif kind in (ARG_MAP_KEY, ARG_MAP_VALUE, ARG_UNINIT_MAP_VALUE):
                m = self.maps[meta_map]
                self.check_mem_type(idx, regno, reg)
                size = m.key_size if kind == ARG_MAP_KEY else m.value_size
                w = self.helper_mem(idx, regno, reg, size, kind == ARG_UNINIT_MAP_VALUE)
                if w is not None:
                    writes.append(w)
            elif kind in (ARG_MEM, ARG_UNINIT_MEM, ARG_MEM_OR_NULL):
                if kind == ARG_MEM_OR_NULL and reg.type == SCALAR and reg.const and reg.value == 0:
                    null_mem |= 1 << regno
                    continue
                self.check_mem_type(idx, regno, reg)
            elif kind in (ARG_CONST_SIZE, ARG_CONST_SIZE_OR_ZERO):
                if reg.type != SCALAR:
                    raise self.err(idx, f"R{regno} type={tname} expected=scalar")
                if null_mem >> (regno - 1) & 1:
                    if reg.umax:
                        raise self.err(idx, f"R{regno - 1} type=scalar expected=fp, pkt, pkt_meta, map_key, map_value")
                    continue
                w = self.check_mem_size(idx, regno, reg, args[k - 1], kind == ARG_CONST_SIZE_OR_ZERO)
                if w is not None:
                    writes.append(w)
            elif kind == ARG_FUNC:
                if reg.type != PTR_FUNC:
                    raise self.err(idx, f"R{regno} type={tname} expected=func")
                func = reg.aux
            elif kind == ARG_STACK_OR_NULL:
                if reg.type != PTR_STACK and not (reg.type == SCALAR and reg.const and reg.value == 0):
                    raise self.err(idx, f"R{regno} type={tname} expected=fp")
            elif kind == ARG_ALLOC_SIZE:
                if reg.type != SCALAR or not reg.const:
                    raise self.err(idx, f"R{regno} is not a known constant'")
                alloc_size = reg.value
                self.mark_precise(1 << regno)
            elif kind == ARG_RINGBUF_MEM:
                if reg.type != RINGBUF_MEM:
                    raise self.err(idx, f"R{regno} type={tname} expected=ringbuf_mem")
                if reg.off or not reg.const or reg.value:
                    raise self.err(
                        idx, f"R{regno} must have zero offset when passed to release func or trusted arg to kfunc"
                    )
                if not any(rid == reg.ref for rid, _ in self.frames[0].refs):
                    raise self.err(idx, f"arg {k} is an unacquired reference")
                release = reg.ref
            elif kind == ARG_CONST_STR:
                self.check_const_str(idx, regno, reg)
            elif kind == ARG_OUT_LONG:  # ARG_PTR_TO_FIXED_SIZE_MEM | MEM_UNINIT | MEM_ALIGNED, 8 bytes
                self.check_mem_type(idx, regno, reg)
                self.check_alignment(idx, reg, 0, 8, True)
                w = self.helper_mem(idx, regno, reg, 8, True)
                if w is not None:
                    writes.append(w)
            elif kind != ARG_ANYTHING:
                raise AssertionError(f"unknown argument kind {kind}")
        if func_id == 165:
            self.check_snprintf(idx)
        if proto.callback == "for_each" and proto.maps is not None and self.maps[meta_map].type not in proto.maps:
            # checked before the map/helper compatibility: the map has no for_each operation
            raise self.err(idx, "callback function not allowed for map", ENOTSUPP)
        if meta_map >= 0:  # check_map_func_compatibility(), after the arguments
            m = self.maps[meta_map]
            ringbuf_only = m.type == 27 and func_id not in (130, 131, 134)
            if (proto.maps is not None and m.type not in proto.maps) or ringbuf_only:
                raise self.err(idx, f"cannot pass map_type {m.type} into func {name}", _errno.EINVAL)
        for ptr, lo, hi, write in writes:
            if write:
                self.clobber(self.frames[ptr.frame], lo, hi, False)
        if release:
            self.release(release)
        if proto.callback is not None:
            if func in self.global_funcs:
                raise self.limit(idx, "a global function as a callback")
            return self.call_callback(idx, proto.callback, func, meta_map)
        regs = self.frames[-1].regs
        for r in range(1, 6):
            regs[r] = UNINIT
        regs[0] = UNKNOWN
        if proto.ret == RET_MAP_VALUE_OR_NULL:
            regs[0] = self.lookup_result(idx, meta_map, func_id)
        elif proto.ret == RET_RINGBUF_MEM_OR_NULL:
            rid = self.new_id()
            self.frames[0].refs = (*self.frames[0].refs, (rid, idx))
            regs[0] = Reg(RINGBUF_MEM_OR_NULL, id=rid, aux=alloc_size, ref=rid)
        elif func_id == 8:  # do_refine_retval_range(): a CPU number
            top = self.nr_cpus - 1
            regs[0] = _scalar(0, (1 << top.bit_length()) - 1, 0, top, 0, top)
        return idx + 1

    def lookup_result(self, idx: int, map_index: int, func_id: int) -> Reg:
        """What bpf_map_lookup_elem() returns: a maybe-NULL value, not NULL for a constant key an array has."""
        m = self.maps[map_index]
        if func_id == 1 and m.type in (2, 6):  # can_elide_value_nullness(): the key is known and in range
            key = self.constant_key(m.key_size)
            if key is not None and key < m.max_entries:
                return Reg(MAP_VALUE, aux=map_index)
        return Reg(MAP_VALUE_OR_NULL, id=self.new_id(), aux=map_index)

    def constant_key(self, size: int) -> int | None:
        """get_constant_map_key(): the key r2 points to, when the stack holds it as a known constant."""
        ptr = self.frames[-1].regs[2]
        if ptr.type != PTR_STACK or not ptr.const:
            return None
        lo = _s64(ptr.value) + ptr.off
        frame = self.frames[ptr.frame]
        spi = (-lo - 1) // 8
        slot = frame.stack.get(spi)
        if slot is None:
            return None
        start = lo + 8 * (spi + 1)
        kinds = slot.kinds[start : start + size]
        if kinds == B_ZERO * size:
            return 0
        if (start == 0 and kinds == B_SPILL * size and slot.kinds[size:] != B_SPILL * (8 - size)) or (
            start == 0 and slot.kinds == B_SPILL * 8
        ):
            spill = slot.spill
            if spill is not None and spill.type == SCALAR and spill.const:
                return spill.value & ((1 << (8 * size)) - 1)
        return None

    def check_mem_type(self, idx: int, regno: int, reg: Reg) -> None:
        if reg.type not in MEM_TYPES:
            raise self.err(
                idx,
                f"R{regno} type={TYPE_NAMES[reg.type]} expected=fp, pkt, pkt_meta, map_key, map_value, mem, "
                "ringbuf_mem, buf, trusted_ptr_",
            )

    def helper_mem(self, idx: int, regno: int, ptr: Reg, size: int, write: bool) -> tuple[Reg, int, int, bool] | None:
        """check_helper_mem_access(): ``size`` bytes at ``ptr`` for a helper; the stack range it writes, if any."""
        if size == 0:
            raise self.err(idx, "invalid zero-sized read")
        if ptr.type == PTR_STACK:
            lo, hi = self.stack_range(idx, regno, ptr, 0, size, "write to" if write else "read from")
            return ptr, lo, hi, write
        self.region_access(idx, regno, ptr, 0, size, write)
        return None

    def check_const_str(self, idx: int, regno: int, reg: Reg) -> None:
        """ARG_PTR_TO_CONST_STR: a NUL-terminated string at a known place of a frozen read-only map."""
        if reg.type != MAP_VALUE:
            raise self.err(idx, f"R{regno} type={TYPE_NAMES[reg.type]} expected=map_value")
        m = self.maps[reg.aux]
        if not m.readonly or m.initial is None:
            raise self.err(idx, f"R{regno} does not point to a readonly map'")
        if not reg.const:
            raise self.err(idx, f"R{regno} is not a constant address'")
        at = reg.off + reg.value
        self.region_access(idx, regno, reg, 0, 1, False)
        if b"\0" not in m.initial[at:]:
            raise self.err(idx, "string is not zero-terminated")

    def check_snprintf(self, idx: int) -> None:
        """check_bpf_snprintf_call(): the format, read from its frozen map, takes data_len / 8 arguments."""
        regs = self.frames[-1].regs
        fmt, size = regs[3], regs[5]
        if size.value % 8:
            raise self.err(idx, f"bpf_snprintf data_len {size.value} is not a multiple of 8", _errno.EINVAL)
        m = self.maps[fmt.aux]
        at = fmt.off + fmt.value
        assert m.initial is not None  # check_const_str() made sure
        text = m.initial[at:].split(b"\0", 1)[0]
        if not format_ok(text, size.value // 8):
            raise self.err(idx, "Invalid format string", _errno.EINVAL)

    def release(self, rid: int) -> None:
        """release_reference(): the reference is gone, and every pointer holding it is invalid (for root: unknown)."""
        self.frames[0].refs = tuple(r for r in self.frames[0].refs if r[0] != rid)
        for frame in self.frames:
            frame.regs = [UNKNOWN if r.ref == rid and r.type != SCALAR else r for r in frame.regs]
            for spi, slot in list(frame.stack.items()):
                if slot.spill is not None and slot.spill.ref == rid and slot.spill.type != SCALAR:
                    frame.stack[spi] = Slot(B_MISC * 8)

    def call_callback(self, idx: int, kind: str, func: int, map_index: int) -> int:
        """push_callback_call(): the callback runs from this state (any number of times), the helper returns.

        The kernel revisits the call after each run of the callback until the
        state stops changing.  Here each revisit widens what changed (scalars
        to unknown) against the state the previous call started from, so
        that the walk converges in a few rounds; a revisit that adds nothing
        ends its path.
        """
        if len(self.frames) >= MAX_CALL_FRAMES:
            raise self.err(idx, f"the call stack of {len(self.frames) + 1} frames is too deep", _errno.E2BIG)
        caller = self.frames[-1]
        prev = caller.loops.get(idx)
        if prev is not None:
            if self.covers(prev, self.frames):
                return -1
            self.frames = self.widen(prev, self.frames)
            caller = self.frames[-1]
            caller.unroll += 1
        caller.loops[idx] = [f.copy() for f in self.frames]
        # As the kernel: the callback's run is a branch explored later, this path goes on past the call.
        frames = self.copy_frames()
        cregs = [UNINIT] * 11
        if kind == "loop":  # set_loop_callback_state(): (index, ctx)
            cregs[1] = UNKNOWN
            cregs[2] = caller.regs[3]
        else:  # set_map_elem_callback_state(): (map, key, value, ctx)
            cregs[1] = Reg(MAP_PTR, aux=map_index)
            cregs[2] = Reg(MAP_KEY, aux=map_index)
            cregs[3] = Reg(MAP_VALUE, aux=map_index)
            cregs[4] = caller.regs[3]
        cregs[10] = self.fp(len(self.frames))
        self.callees.setdefault(caller.subprog, set()).add(func)
        frames.append(Frame(cregs, {}, idx, func, callback=kind))
        self.push_branch(func, frames)
        regs = caller.regs
        for r in range(1, 6):
            regs[r] = UNINIT
        regs[0] = UNKNOWN
        return idx + 1

    def covers(self, old: list[Frame], cur: list[Frame]) -> bool:
        """Whether state ``old`` covers ``cur`` with every value taken as precise."""
        if len(old) != len(cur) or len(old[0].refs) != len(cur[0].refs):
            return False
        idmap: dict[int, int] = {}
        revmap: dict[int, int] = {}
        for of, cf in zip(old, cur, strict=True):
            if of.callsite != cf.callsite:
                return False
            if not all(self.regsafe(o, c, True, idmap, revmap) for o, c in zip(of.regs, cf.regs, strict=True)):
                return False
            for spi in of.stack.keys() | cf.stack.keys():
                if not self.slotsafe(of.stack.get(spi) or EMPTY, cf.stack.get(spi) or EMPTY, True, idmap, revmap):
                    return False
        return True

    def widen(self, old: list[Frame], cur: list[Frame]) -> list[Frame]:
        """``cur`` with every scalar ``old`` does not cover made unknown (and stack bytes so made data)."""
        out = []
        for of, cf in zip(old, cur, strict=True):
            nf = cf.copy()
            for r, (o, c) in enumerate(zip(of.regs, cf.regs, strict=True)):
                if c.type == SCALAR and not self.regsafe(o, c, True, {}, {}):
                    nf.regs[r] = UNKNOWN
            for spi, c_slot in cf.stack.items():
                o_slot = of.stack.get(spi) or EMPTY
                if self.slotsafe(o_slot, c_slot, True, {}, {}):
                    continue
                if c_slot.spill is None or c_slot.spill.type == SCALAR:
                    kinds = "".join(B_MISC if k != B_INV else B_INV for k in c_slot.kinds)
                    nf.stack[spi] = Slot(kinds)
            out.append(nf)
        return out

    def check_mem_size(
        self, idx: int, regno: int, size: Reg, mem_kind: str, zero_ok: bool
    ) -> tuple[Reg, int, int, bool] | None:
        """check_mem_size_reg(): the buffer in the register before must hold up to size.umax bytes."""
        if size.smin < 0:
            raise self.err(idx, f"R{regno} min value is negative, either use unsigned or 'var &= const'")
        if size.umin == 0 and not zero_ok:
            raise self.err(idx, f"R{regno} invalid zero-sized read: u64=[{size.umin},{size.umax}]")
        if size.umax >= MAX_VAR_SIZ:
            raise self.err(idx, f"R{regno} unbounded memory access, use 'var &= const' or 'if (var < const)'")
        self.mark_precise(1 << regno)
        if size.umax == 0:
            return None
        ptr = self.frames[-1].regs[regno - 1]
        return self.helper_mem(idx, regno - 1, ptr, size.umax, mem_kind == ARG_UNINIT_MEM)

    def cond_jmp(self, idx: int, insn: Insn) -> int:
        """check_cond_jmp_op(): follow the outcome the operands decide, or both, each state refined."""
        c, d, s, off, imm, _ = insn
        op = c & 0xF0
        is32 = c & 7 == JMP32
        use_x = bool(c & 8)
        if (use_x and imm) or (not use_x and s):
            raise self.err(idx, "BPF_JMP/JMP32 uses reserved fields", _errno.EINVAL)
        dst = self.read_reg(idx, d)
        src = self.read_reg(idx, s) if use_x else const(imm & M64)
        target = idx + off + 1
        operands = (1 << d) | ((1 << s) if use_x else 0)
        if dst.mask == 0 and src.mask == 0 and dst.type == SCALAR and src.type == SCALAR:  # both known
            self.mark_precise(operands)
            return target if _const_taken(op, dst.value, src.value, is32) else idx + 1
        if dst.type != SCALAR or src.type != SCALAR:
            return self.pointer_jmp(idx, op, is32, dst, src, target)
        if use_x and d == s:  # a register against itself: neither predicted nor refined (unless known)
            self.push_branch(target, self.copy_frames())
            return idx + 1
        view = _view32 if is32 else _view64
        pred = _taken(op, view(dst), view(src))
        if pred >= 0:
            self.mark_precise(operands)
            return target if pred else idx + 1
        taken = self.refined(op, dst, src, is32, d, s if use_x else -1)
        fall = self.refined(REV.get(op, NOT_JSET if op == JSET else op), dst, src, is32, d, s if use_x else -1)
        if taken is None or fall is None:  # the bounds rule one outcome out after all
            self.mark_precise(operands)
            if taken is None:
                if fall is None:
                    return -1
                self.frames = fall
                return idx + 1
            self.frames = taken
            return target
        self.note_linked(dst, src if use_x else None)
        self.push_branch(target, taken)
        self.frames = fall
        return idx + 1

    def pointer_jmp(self, idx: int, op: int, is32: bool, dst: Reg, src: Reg, target: int) -> int:
        """A comparison with a pointer: NULL checks split maybe-NULL pointers (mark_ptr_or_null_regs())."""
        ptr, other = (dst, src) if dst.type != SCALAR else (src, dst)
        null = other.type == SCALAR and other.const and other.value == 0
        if not is32 and null and op in (0x10, 0x50):
            if ptr.type in OR_NULL:
                taken, fall = self.copy_frames(), self.frames
                self.mark_null(taken, ptr.id, op == 0x10)
                self.mark_null(fall, ptr.id, op != 0x10)
                self.push_branch(target, taken)
                return idx + 1
            if ptr.type != NOT_INIT:  # a pointer that cannot be NULL: the outcome is known
                return target if op == 0x50 else idx + 1
        self.push_branch(target, self.copy_frames())
        return idx + 1

    @staticmethod
    def mark_null(frames: list[Frame], rid: int, is_null: bool) -> None:
        """Every copy of maybe-NULL pointer ``rid``: NULL (a zero scalar), or the pointer; NULL holds no reference."""

        def conv(r: Reg) -> Reg:
            if r.type in OR_NULL and r.id == rid:
                return ZERO if is_null else r._replace(type=OR_NULL[r.type], id=0)
            return r

        for frame in frames:
            frame.regs = [conv(r) for r in frame.regs]
            for spi, slot in list(frame.stack.items()):
                if slot.spill is not None and slot.spill.type in OR_NULL and slot.spill.id == rid:
                    frame.stack[spi] = slot._replace(spill=conv(slot.spill))
        if is_null:
            frames[0].refs = tuple(r for r in frames[0].refs if r[0] != rid)

    def note_linked(self, dst: Reg, src: Reg | None) -> None:
        """Record in the trail which registers the branch refined through their links (for back_step())."""
        ids = {r.id & ~ADD_CONST for r in (dst, src) if r is not None and r.id}
        if not ids:
            return
        mask = 0
        elsewhere = False
        for k, frame in enumerate(self.frames):
            for r, reg in enumerate(frame.regs):
                if reg.type == SCALAR and reg.id & ~ADD_CONST in ids:
                    if k == len(self.frames) - 1:
                        mask |= 1 << r
                    else:
                        elsewhere = True
            for slot in frame.stack.values():
                if slot.spill is not None and slot.spill.id & ~ADD_CONST in ids:
                    elsewhere = True
        self.trail[-1] |= (mask << 40) | (int(elsewhere) << 51)

    def refined(self, op: int, dst: Reg, src: Reg, is32: bool, d: int, s: int) -> list[Frame] | None:
        """A copy of the state where ``dst op src`` holds; None if it cannot."""
        view = _view32 if is32 else _view64
        a, b = list(view(dst)), list(view(src))
        _refine(op, a, b)
        new_dst = _apply_view(dst, a, is32)
        if new_dst is None:
            return None
        new_src = _apply_view(src, b, is32) if s >= 0 else src
        if new_src is None:
            return None
        frames = self.copy_frames()
        frames[-1].regs[d] = new_dst
        self.sync_linked(frames, new_dst)
        if s >= 0:
            frames[-1].regs[s] = new_src
            self.sync_linked(frames, new_src)
        return frames

    @staticmethod
    def sync_linked(frames: list[Frame], known: Reg) -> None:
        """sync_linked_regs(): what a branch taught about a value applies to its linked copies."""
        base = known.id & ~ADD_CONST
        if not base:
            return

        def adjust(reg: Reg) -> Reg:
            if reg.type != SCALAR or reg.id & ~ADD_CONST != base:
                return reg
            delta = (reg.off if reg.id & ADD_CONST else 0) - (known.off if known.id & ADD_CONST else 0)
            new = known if delta == 0 else _alu64(0x00, known._replace(id=0, off=0), const(delta & M64))
            return new._replace(id=reg.id, off=reg.off)

        for frame in frames:
            frame.regs = [adjust(r) for r in frame.regs]
            for spi, slot in list(frame.stack.items()):
                if slot.spill is not None and slot.spill.id:
                    frame.stack[spi] = slot._replace(spill=adjust(slot.spill))

    # --- after the walk --------------------------------------------------------------------------

    def check_stack_depth(self) -> int:
        """check_max_stack_depth(): the stack of a call chain, each frame rounded up to 16 bytes, fits 512."""

        def frame_size(sub: int) -> int:
            return (self.stack_depth.get(sub, 0) + 15) // 16 * 16

        best = 0

        def walk(sub: int, total: int, depth: int, chain: tuple[int, ...]) -> None:
            nonlocal best
            total += frame_size(sub)
            if total > MAX_STACK:
                raise VerifierError(f"combined stack size of {depth} calls is {total}. Too large")
            best = max(best, total)
            for callee in sorted(self.callees.get(sub, ())):
                if callee not in chain:
                    walk(callee, total, depth + 1, (*chain, callee))

        walk(0, 0, 1, (0,))
        return best


def _ctx_ok(off: int, size: int, write: bool) -> bool:
    """sk_filter_is_valid_access() + bpf_skb_is_valid_access() for struct __sk_buff."""
    forbidden = (
        (72, 76),  # tc_classid
        (76, 80),  # data
        (80, 84),  # data_end
        (88, 140),  # family .. local_port
        (140, 144),  # data_meta
        (152, 160),  # tstamp
        (160, 164),  # wire_len
        (184, 192),  # hwtstamp
    )
    if any(lo <= off < hi for lo, hi in forbidden):
        return False
    if write and not 48 <= off < 68:
        return False
    if off < 0 or off >= 192 or off % size:
        return False
    if 48 <= off < 68:  # cb[]
        return off + size <= 68
    if 144 <= off < 152:  # flow_keys
        return False
    if 168 <= off < 176:  # sk: a pointer, read whole
        return off == 168 and not write and size == 8
    if 180 <= off < 184:  # tstamp_type and padding
        return False
    return size <= 4  # narrow reads of the u32 fields
