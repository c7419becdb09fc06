"""The VM's address space and run state: checked loads and stores, call frames.

Generated code reaches memory only through these functions, which is where
the checks the verifier would make on pointers happen at run time.  Pointers
are plain integers in three ranges: the context at :data:`CTX_BASE`, the stack
of every call frame below :data:`STACK_TOP`, the maps (:mod:`.maps`) from
:data:`~.maps.MAP_BASE`.  Stack and context accesses must
be aligned and in bounds (:class:`~.errors.RunError` otherwise); the context
follows the ``__sk_buff`` rules of :mod:`.skb`.

Legacy packet loads (``BPF_LD|BPF_ABS/IND``) read the skb data, which starts
at the network header; ``SKF_NET_OFF + k`` reads the network header,
``SKF_LL_OFF + k`` the MAC header.  Out of bounds they end the program with 0,
as in the kernel.

All run state is one list, so that generated code reaches everything by index:
r[0..10] are the registers, then the slots named below.
"""

from __future__ import annotations

import struct

from .errors import RunError
from .isa import BPF_FETCH, M64
from .maps import MAP_BASE, MAP_END
from .skb import CTX_SIZE, CTX_TARGET, ETH_HLEN, check_ctx_access, ctx_image

#: Bytes of stack per call frame, frames per run.
STACK_SIZE = 512
MAX_CALL_FRAMES = 8
#: Pointer values: the context (r1 at entry) and the frame pointer (r10).
CTX_BASE = 0xFFFF_8880_0000_0000
STACK_TOP = 0xFFFF_C900_0001_0000
#: What a ``lddw`` of a function (``BPF_PSEUDO_FUNC``, a callback) loads: this plus its pc.
FUNC_BASE = 0xFFFF_F000_0000_0000
SKF_NET_OFF = -0x100000
SKF_LL_OFF = -0x200000

# Run state, after r[0..10]:
STK = 11  # bytearray: the stack of every frame, STACK_TOP at its end
PKT = 12  # the frame (bytes), Ethernet header included
CTX = 13  # bytearray context image, built on first access
SKB = 14  # SkbContext
CALLS = 15  # bpf-to-bpf call stack: [(return pc, r6, r7, r8, r9, r10), ...]
PROG = 16  # the Program (random generator, clock, cpu)
TRACE = 17  # where bpf_trace_printk() lines go: a callable taking one line, or None (discarded)
MAPS = 18  # the program's maps (list of maps.BpfMap), by index
CB_DEPTH = 19  # callbacks (bpf_loop, bpf_for_each_map_elem) running

#: Little-endian unsigned / signed structs, by access size.
U_STRUCT = {1: struct.Struct("<B"), 2: struct.Struct("<H"), 4: struct.Struct("<I"), 8: struct.Struct("<Q")}
S_STRUCT = {1: struct.Struct("<b"), 2: struct.Struct("<h"), 4: struct.Struct("<i"), 8: struct.Struct("<q")}

# Bound once: CPython compiles a method call on a from-imported name as an
# attribute load (a new bound method on every context load).
_ctx_target_size = CTX_TARGET.get


def _stack_off(r: list, a: int, size: int, pc: int, what: str) -> int:
    """Index in the stack buffer of an access at address a, checked."""
    stk = r[STK]
    o = a - STACK_TOP + len(stk)
    fp = r[10]
    if a < fp - STACK_SIZE or a + size > STACK_TOP:
        raise RunError(pc, f"{what} of {size} bytes at fp{a - fp:+d} is outside the stack (fp-{STACK_SIZE}..fp)")
    if a & (size - 1):
        raise RunError(pc, f"misaligned stack {what}: {size} bytes at fp{a - fp:+d}")
    return o


def _in_stack(a: int) -> bool:
    return STACK_TOP - STACK_SIZE * MAX_CALL_FRAMES <= a < STACK_TOP


def _map_mem(r: list, a: int, size: int, pc: int, write: bool) -> tuple[bytearray, int]:
    k = (a - MAP_BASE) >> 32
    maps = r[MAPS]
    if k >= len(maps):
        raise RunError(pc, f"invalid memory access of {size} bytes at {a:#x}: no such map")
    return maps[k].memory(a & 0xFFFF_FFFF, size, write, pc)


def buffer(r: list, a: int, n: int, pc: int, write: bool, what: str) -> tuple[bytearray, int]:
    """The buffer and index of ``n`` bytes at ``a`` (stack or map memory) a helper reads or writes."""
    if n <= 0:
        raise RunError(pc, f"{what}: a buffer of {n} bytes")
    if _in_stack(a):
        fp = r[10]
        if a < fp - STACK_SIZE or a + n > STACK_TOP:
            raise RunError(pc, f"{what}: buffer of {n} bytes at {a:#x} is not within the stack")
        return r[STK], a - STACK_TOP + len(r[STK])
    if MAP_BASE <= a < MAP_END:
        return _map_mem(r, a, n, pc, write)
    raise RunError(pc, f"{what}: {a:#x} is not a stack or map pointer")


def read_bytes(r: list, a: int, n: int, pc: int, what: str) -> bytes:
    """``n`` bytes at ``a``, for a helper."""
    buf, o = buffer(r, a, n, pc, False, what)
    return bytes(buf[o : o + n])


def write_bytes(r: list, a: int, data: bytes, pc: int, what: str) -> None:
    """Write ``data`` at ``a``, for a helper."""
    buf, o = buffer(r, a, len(data), pc, True, what)
    buf[o : o + len(data)] = data


def _ctx_buf(r: list) -> bytearray:
    image = r[CTX]
    if image is None:
        image = r[CTX] = ctx_image(r[SKB], r[PKT])
    return image


def load(r: list, a: int, size: int, pc: int) -> int:
    """``size`` bytes at address ``a``, zero-extended."""
    if _in_stack(a):
        return U_STRUCT[size].unpack_from(r[STK], _stack_off(r, a, size, pc, "load"))[0]
    off = a - CTX_BASE
    if 0 <= off < CTX_SIZE:
        if off + size > CTX_SIZE:
            raise RunError(pc, f"context access of {size} bytes at offset {off} is out of bounds")
        check_ctx_access(pc, off, size, False)
        base = off & ~3
        target = _ctx_target_size(base)
        if target is None:  # cb[]: plain memory
            return U_STRUCT[size].unpack_from(_ctx_buf(r), off)[0]
        v = U_STRUCT[4].unpack_from(_ctx_buf(r), base)[0]
        if size < target:
            v = (v >> ((off & 3) * 8)) & ((1 << (size * 8)) - 1)
        return v
    if MAP_BASE <= a < MAP_END:
        buf, o = _map_mem(r, a, size, pc, False)
        return U_STRUCT[size].unpack_from(buf, o)[0]
    raise RunError(pc, f"invalid memory load of {size} bytes at {a:#x}: not a stack, context or map pointer")


def loadsx(r: list, a: int, size: int, pc: int) -> int:
    """``size`` bytes at address ``a``, sign-extended to 64 bits."""
    v = load(r, a, size, pc)
    sign = 1 << (size * 8 - 1)
    return ((v ^ sign) - sign) & M64


def store(r: list, a: int, size: int, v: int, pc: int) -> None:
    """Store the low ``size`` bytes of v at address ``a``."""
    if _in_stack(a):
        U_STRUCT[size].pack_into(r[STK], _stack_off(r, a, size, pc, "store"), v & ((1 << (size * 8)) - 1))
        return
    off = a - CTX_BASE
    if 0 <= off < CTX_SIZE:
        if off + size > CTX_SIZE:
            raise RunError(pc, f"context access of {size} bytes at offset {off} is out of bounds")
        check_ctx_access(pc, off, size, True)
        U_STRUCT[size].pack_into(_ctx_buf(r), off, v & ((1 << (size * 8)) - 1))
        return
    if MAP_BASE <= a < MAP_END:
        buf, o = _map_mem(r, a, size, pc, True)
        U_STRUCT[size].pack_into(buf, o, v & ((1 << (size * 8)) - 1))
        return
    raise RunError(pc, f"invalid memory store of {size} bytes at {a:#x}: not a stack, context or map pointer")


def atomic(r: list, a: int, size: int, op: int, src: int, pc: int) -> None:
    """BPF_STX|BPF_ATOMIC on the stack or a map value (the context is not allowed)."""
    if _in_stack(a):
        stk, o = r[STK], _stack_off(r, a, size, pc, "atomic access")
    elif MAP_BASE <= a < MAP_END:
        if a & (size - 1):
            raise RunError(pc, f"misaligned atomic access of {size} bytes at {a:#x}")
        stk, o = _map_mem(r, a, size, pc, True)
    else:
        raise RunError(pc, f"atomic operation at {a:#x}: not a stack or map pointer")
    st = U_STRUCT[size]
    mask = (1 << (size * 8)) - 1
    old = st.unpack_from(stk, o)[0]
    base = op & ~BPF_FETCH
    if base == 0xF0:  # cmpxchg: compare with r0, old value into r0
        if (r[0] & mask) == old:
            st.pack_into(stk, o, r[src] & mask)
        r[0] = old
        return
    val = r[src] & mask
    if base == 0x00:
        new = (old + val) & mask
    elif base == 0x40:
        new = old | val
    elif base == 0x50:
        new = old & val
    elif base == 0xA0:
        new = old ^ val
    else:  # 0xE0 xchg
        new = val
    st.pack_into(stk, o, new)
    if op & BPF_FETCH:
        r[src] = old


def pkt_load(r: list, k: int, size: int) -> int | None:
    """Legacy packet load at signed offset k (skb data = network header)."""
    frame = r[PKT]
    if k >= 0:
        base = ETH_HLEN + k
    elif k >= SKF_NET_OFF:
        base = ETH_HLEN + k - SKF_NET_OFF
    elif k >= SKF_LL_OFF:
        base = k - SKF_LL_OFF
    else:
        return None
    if base + size > len(frame):
        return None
    return int.from_bytes(frame[base : base + size], "big")


def call_sub(r: list, ret: int, target: int, pc: int) -> int:
    """A bpf-to-bpf call: save r6-r10, open a new stack frame; the callee's pc."""
    calls = r[CALLS]
    if len(calls) + 1 >= MAX_CALL_FRAMES:
        raise RunError(pc, f"bpf-to-bpf calls nested deeper than {MAX_CALL_FRAMES} frames")
    calls.append((ret, r[6], r[7], r[8], r[9], r[10]))
    r[10] -= STACK_SIZE
    return target


def ret_sub(r: list) -> int:
    """Return from a bpf-to-bpf call: restore r6-r10; the caller's next pc."""
    ret, r[6], r[7], r[8], r[9], r[10] = r[CALLS].pop()
    return ret
