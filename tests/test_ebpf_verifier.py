"""The load-time verifier (evl_net.transports.sim.ebpf.verifier) against the kernel's own.

The oracle is this machine's kernel: every program is also loaded with
BPF_PROG_LOAD as a socket filter (by root, as ``evl net`` runs), and our
verdict must be the kernel's -- for refusals, the same errno and, where the
kernel names one, the same message and instruction text as the last lines of
its log.  Where the kernel cannot load programs (no privilege, no bpf(2);
EVL_TEST_NO_KERNEL_ORACLE=1 forces that), the expectations written here by
hand are still checked, and the comparisons skip saying so (``pytest -rs``).

Then the wiring: ``SimTransport.install_rx_filter`` refuses what the
verifier refuses, and ``evl net -F`` run as a process reports it on one line
and leaves the state alone.
"""

from __future__ import annotations

import errno
import json
import os
import random
import struct
import subprocess
import time
from pathlib import Path

import pytest

import bpf_build
from bpf_syscall import KernelVerifier
from ebpf_asm import (
    ALU_OPS,
    EXIT,
    JMP_OPS,
    alu,
    asm,
    atomic,
    call,
    insn,
    ja,
    jmp,
    ld_abs,
    ld_ind,
    lddw,
    ldx,
    mov,
    st,
    stx,
)
from evl_net.errors import KernelError
from evl_net.kernel import bpfobj
from evl_net.transports.sim import SimTransport
from evl_net.transports.sim.ebpf import (
    EbpfError,
    Program,
    SimulatorLimitError,
    SkbContext,
    VerifierError,
    verify,
)
from evl_net.transports.sim.ebpf.verifier import kernel_text

needs_clang = pytest.mark.skipif(
    not bpf_build.have_clang(),
    reason="clang with the BPF target and libbpf headers (libbpf-dev) are needed to build tests/bpf/*.c",
)

# ==========================================================================
# A tiny assembler
# ==========================================================================


def byte_at_fp16_plus(r: int) -> bytes:
    """return *(u8 *)(fp - 16 + r): a stack read whose offset is register r's bounds."""
    return asm(mov(4, 10), alu("add", 4, imm=-16), alu("add", 4, r), ldx("b", 0, 4, 0), EXIT)


def load_bytes(off: int, size_insn: bytes, fp_off: int = -8) -> bytes:
    """bpf_skb_load_bytes(skb, off, fp + fp_off, <size_insn sets r4>), skb in r6."""
    return asm(mov(1, 6), mov(2, imm=off), mov(3, 10), alu("add", 3, imm=fp_off), size_insn, call(26))


# ==========================================================================
# The kernel oracle: BPF_PROG_LOAD through ctypes
# ==========================================================================

NO_KERNEL_ENV = "EVL_TEST_NO_KERNEL_ORACLE"


Kernel = KernelVerifier


_KERNEL: list = []


def kernel_oracle() -> tuple[Kernel | None, str]:
    if not _KERNEL:
        if os.environ.get(NO_KERNEL_ENV):
            _KERNEL.append((None, f"kernel oracle disabled by {NO_KERNEL_ENV}"))
        else:
            try:
                _KERNEL.append((Kernel(), ""))
            except OSError as exc:
                _KERNEL.append((None, f"kernel oracle unavailable: BPF_PROG_LOAD fails ({exc.strerror})"))
    return _KERNEL[0]


@pytest.fixture(scope="module")
def kernel() -> Kernel:
    k, why = kernel_oracle()
    if k is None:
        pytest.skip(why)
    return k


def test_kernel_oracle_is_available():
    """Says in the skip summary (-rs) when the kernel cannot serve as the oracle."""
    k, why = kernel_oracle()
    if k is None:
        pytest.skip(why)


def ours(insns: bytes, license: str = "GPL", **kwargs) -> VerifierError | None:
    try:
        verify(insns, license, **kwargs)
    except VerifierError as exc:
        return exc
    return None


# The oracle's CPU count, so that bpf_get_smp_processor_id() bounds agree.
NR_CPUS = os.cpu_count() or 1

# ==========================================================================
# Refusals, in the kernel's words
# ==========================================================================

EACCES, EINVAL, E2BIG, EFAULT = errno.EACCES, errno.EINVAL, errno.E2BIG, errno.EFAULT
PTR_EXPECTED = "expected=fp, pkt, pkt_meta, map_key, map_value, mem, ringbuf_mem, buf, trusted_ptr_"


def join(value_a: int, value_b: int, *tail: bytes) -> bytes:
    """r7 = value_a or value_b on two paths that meet (after enough work for a checkpoint there), then tail.

    Pruning the second path against the first would hide what only value_b
    does: the value decides something after the join, so it must be precise.
    """
    pad = [mov(3 + i % 2, imm=i) for i in range(8)]
    return asm(
        ldx("w", 2, 1, 0),
        jmp("jeq", 2, imm=0, off=len(pad) + 2),
        mov(7, imm=value_a),
        *pad,
        ja(1),
        mov(7, imm=value_b),
        mov(0, imm=0),
        *tail,
    )


REFUSED = {
    # atomics on the context, loaded into the base register itself too (6.18 stable checks before the load)
    "load_acquire from the context into its own base register": (
        asm(mov(1, 1), atomic("w", 1, 1, 0, 0x100), mov(0, 1), EXIT),
        "1: (c3) r1 = load_acquire((u32 *)(r1 +0)): BPF_ATOMIC loads from R1 ctx is not allowed",
        EACCES,
    ),
    # helpers
    "invalid helper id": (
        asm(call(100000), EXIT),
        "0: (85) call unknown#100000: invalid func unknown#100000",
        EINVAL,
    ),
    "helper not granted to socket filters": (
        asm(mov(0, imm=0), call(9), EXIT),
        "1: (85) call bpf_skb_store_bytes#9: program of this type cannot use helper bpf_skb_store_bytes#9",
        EINVAL,
    ),
    "helper that may sleep": (
        asm(call(148), EXIT),
        "0: (85) call bpf_copy_from_user#148: helper call might sleep in a non-sleepable prog",
        EINVAL,
    ),
    "load_bytes without a size": (
        asm(mov(6, 1), mov(1, 6), mov(2, imm=0), mov(3, 10), alu("add", 3, imm=-8), call(26), EXIT),
        "5: (85) call bpf_skb_load_bytes#26: R4 !read_ok",
        EACCES,
    ),
    "load_bytes of zero bytes": (
        asm(mov(6, 1), load_bytes(0, mov(4, imm=0)), EXIT),
        "6: (85) call bpf_skb_load_bytes#26: R4 invalid zero-sized read: u64=[0,0]",
        EACCES,
    ),
    "load_bytes of a negative size": (
        asm(mov(6, 1), load_bytes(0, mov(4, imm=-1)), EXIT),
        "6: (85) call bpf_skb_load_bytes#26: R4 min value is negative, either use unsigned or 'var &= const'",
        EACCES,
    ),
    "load_bytes past the stack": (
        asm(mov(6, 1), load_bytes(0, mov(4, imm=16)), EXIT),
        "6: (85) call bpf_skb_load_bytes#26: invalid write to stack R3 off=-8 size=16",
        EINVAL,
    ),
    "load_bytes below the stack": (
        asm(mov(6, 1), load_bytes(0, mov(4, imm=8), fp_off=-520), EXIT),
        "6: (85) call bpf_skb_load_bytes#26: invalid write to stack R3 off=-520 size=8",
        EACCES,
    ),
    "load_bytes of an unbounded size": (
        asm(mov(6, 1), ldx("w", 4, 1, 0), alu("or", 4, imm=1), load_bytes(0, mov(5, imm=0)), EXIT),
        "8: (85) call bpf_skb_load_bytes#26: R4 unbounded memory access, use 'var &= const' or 'if (var < const)'",
        EACCES,
    ),
    "load_bytes from a scalar skb": (
        asm(mov(6, imm=0), load_bytes(0, mov(4, imm=8)), EXIT),
        "6: (85) call bpf_skb_load_bytes#26: R1 type=scalar expected=ctx",
        EACCES,
    ),
    "load_bytes into the context": (
        asm(mov(1, 1), mov(2, imm=0), mov(3, 1), mov(4, imm=8), call(26), EXIT),
        f"4: (85) call bpf_skb_load_bytes#26: R3 type=ctx {PTR_EXPECTED}",
        EACCES,
    ),
    "load_bytes with a pointer as size": (
        asm(mov(6, 1), load_bytes(0, mov(4, 10)), EXIT),
        "6: (85) call bpf_skb_load_bytes#26: R4 type=fp expected=scalar",
        EACCES,
    ),
    "load_bytes from a modified context pointer": (
        asm(mov(6, 1), alu("add", 6, imm=4), load_bytes(0, mov(4, imm=8)), EXIT),
        "7: (85) call bpf_skb_load_bytes#26: dereference of modified ctx ptr R1 off=4 disallowed",
        EACCES,
    ),
    "helper arguments are gone after the call": (
        asm(call(7), mov(0, 1), EXIT),
        "1: (bf) r0 = r1: R1 !read_ok",
        EACCES,
    ),
    # the context
    "skb->data": (
        asm(ldx("w", 2, 1, 76), mov(0, imm=0), EXIT),
        "0: (61) r2 = *(u32 *)(r1 +76): invalid bpf_context access off=76 size=4",
        EACCES,
    ),
    "skb->data_end": (
        asm(ldx("w", 2, 1, 80), mov(0, imm=0), EXIT),
        "0: (61) r2 = *(u32 *)(r1 +80): invalid bpf_context access off=80 size=4",
        EACCES,
    ),
    "skb->data_meta": (
        asm(ldx("w", 2, 1, 140), mov(0, imm=0), EXIT),
        "0: (61) r2 = *(u32 *)(r1 +140): invalid bpf_context access off=140 size=4",
        EACCES,
    ),
    "8 bytes of skb->len": (
        asm(ldx("dw", 0, 1, 0), EXIT),
        "0: (79) r0 = *(u64 *)(r1 +0): invalid bpf_context access off=0 size=8",
        EACCES,
    ),
    "past the end of the context": (
        asm(ldx("w", 0, 1, 192), EXIT),
        "0: (61) r0 = *(u32 *)(r1 +192): invalid bpf_context access off=192 size=4",
        EACCES,
    ),
    "writing skb->mark": (
        asm(mov(2, imm=1), stx("w", 1, 2, 8), mov(0, imm=0), EXIT),
        "1: (63) *(u32 *)(r1 +8) = r2: invalid bpf_context access off=8 size=4",
        EACCES,
    ),
    "a modified context pointer": (
        asm(alu("add", 1, imm=4), ldx("w", 0, 1, 0), EXIT),
        "1: (61) r0 = *(u32 *)(r1 +0): dereference of modified ctx ptr R1 off=4 disallowed",
        EACCES,
    ),
    "a variable context offset": (
        asm(ldx("w", 2, 1, 0), alu("and", 2, imm=4), alu("add", 1, 2), ldx("w", 0, 1, 0), EXIT),
        "3: (61) r0 = *(u32 *)(r1 +0): variable ctx access var_off=(0x0; 0x4) disallowed",
        EACCES,
    ),
    "atomics on the context": (
        asm(mov(2, imm=1), atomic("w", 1, 2, 48, 0), mov(0, imm=0), EXIT),
        "1: (c3) lock *(u32 *)(r1 +48) += r2: BPF_ATOMIC stores into R1 ctx is not allowed",
        EACCES,
    ),
    # registers
    "an uninitialised register": (asm(mov(0, 3), EXIT), "0: (bf) r0 = r3: R3 !read_ok", EACCES),
    "R0 at exit": (asm(EXIT), "0: (95) exit: R0 !read_ok", EACCES),
    "R0 at exit on one path only": (
        asm(ldx("w", 2, 1, 0), jmp("jeq", 2, imm=0, off=1), mov(0, imm=1), EXIT),
        "3: (95) exit: R0 !read_ok",
        EACCES,
    ),
    "r11": (asm(insn(0xB7, 11, 0, 0, 1), EXIT), "0: (b7) r11 = 1: R11 is invalid", EINVAL),
    "writing the frame pointer": (asm(mov(10, imm=1), EXIT), "0: (b7) r10 = 1: frame pointer is read only", EACCES),
    # the stack
    "reading above the stack": (
        asm(ldx("dw", 0, 10, 8), EXIT),
        "0: (79) r0 = *(u64 *)(r10 +8): invalid read from stack R10 off=8 size=8",
        EACCES,
    ),
    "reading below the stack": (
        asm(ldx("dw", 0, 10, -520), EXIT),
        "0: (79) r0 = *(u64 *)(r10 -520): invalid read from stack R10 off=-520 size=8",
        EACCES,
    ),
    "writing below the stack": (
        asm(st("dw", 10, -520, 0), mov(0, imm=0), EXIT),
        "0: (7a) *(u64 *)(r10 -520) = 0: invalid write to stack R10 off=-520 size=8",
        EACCES,
    ),
    "a misaligned stack access": (
        asm(st("dw", 10, -8, 0), ldx("w", 0, 10, -6), EXIT),
        "1: (61) r0 = *(u32 *)(r10 -6): misaligned stack access off 0+0+-6 size 4",
        EACCES,
    ),
    "a variable stack offset that may overflow": (
        asm(
            ldx("w", 2, 1, 0),
            alu("and", 2, imm=16),
            mov(3, 10),
            alu("add", 3, imm=-16),
            alu("add", 3, 2),
            ldx("dw", 0, 3, 0),
            EXIT,
        ),
        "5: (79) r0 = *(u64 *)(r3 +0): invalid variable-offset read from stack R3 var_off=(0x0; 0x10) off=-16 size=8",
        EINVAL,
    ),
    "a pointer spilled in part": (
        asm(stx("w", 10, 1, -8), mov(0, imm=0), EXIT),
        "0: (63) *(u32 *)(r10 -8) = r1: invalid size of register spill",
        EACCES,
    ),
    "a pointer filled in part": (
        asm(stx("dw", 10, 1, -8), ldx("w", 2, 10, -8), mov(0, imm=0), EXIT),
        "1: (61) r2 = *(u32 *)(r10 -8): invalid size of register fill",
        EACCES,
    ),
    # pointers
    "dereferencing a scalar": (
        asm(mov(2, imm=0), ldx("w", 0, 2, 0), EXIT),
        "1: (61) r0 = *(u32 *)(r2 +0): R2 invalid mem access 'scalar'",
        EACCES,
    ),
    "32-bit pointer arithmetic": (
        asm(mov(2, 10), alu("add", 2, imm=-8, w64=False), mov(0, imm=0), EXIT),
        "1: (04) w2 += -8: R2 32-bit pointer arithmetic prohibited",
        EACCES,
    ),
    "masking a pointer": (
        asm(mov(2, 10), alu("and", 2, imm=-8), mov(0, imm=0), EXIT),
        "1: (57) r2 &= -8: R2 bitwise operator &= on pointer prohibited",
        EACCES,
    ),
    "pointer plus pointer": (
        asm(mov(2, 10), alu("add", 2, 1), mov(0, 2), EXIT),
        "1: (0f) r2 += r1: R2 pointer += pointer prohibited",
        EACCES,
    ),
    "subtracting from the frame pointer": (
        asm(mov(2, 10), alu("sub", 2, imm=8), mov(0, imm=0), EXIT),
        "1: (17) r2 -= 8: R2 subtraction from stack pointer prohibited",
        EACCES,
    ),
    "an unbounded pointer offset": (
        asm(insn(0x79, 2, 1, 48), mov(3, 10), alu("add", 3, 2), mov(0, imm=0), EXIT),
        "2: (0f) r3 += r2: math between fp pointer and register with unbounded min value is not allowed",
        EINVAL,
    ),
    "a huge pointer offset": (
        asm(alu("add", 1, imm=1 << 29), mov(0, imm=0), EXIT),
        "0: (07) r1 += 536870912: math between ctx pointer and 536870912 is not allowed",
        EINVAL,
    ),
    # legacy packet loads
    "ld_abs without R6": (asm(ld_abs("b", 0), EXIT), "0: (30) r0 = *(u8 *)skb[0]: R6 !read_ok", EACCES),
    "ld_abs with a scalar in R6": (
        asm(mov(6, imm=0), ld_abs("b", 0), EXIT),
        "1: (30) r0 = *(u8 *)skb[0]: at the time of BPF_LD_ABS|IND R6 != pointer to skb",
        EINVAL,
    ),
    "ld_ind with an uninitialised index": (
        asm(mov(6, 1), ld_ind("w", 7, 0), EXIT),
        "1: (40) r0 = *(u32 *)skb[r7 + 0]: R7 !read_ok",
        EACCES,
    ),
    "ld_abs clobbers r1-r5": (
        asm(mov(6, 1), ld_abs("b", 0), mov(0, 1), EXIT),
        "2: (bf) r0 = r1: R1 !read_ok",
        EACCES,
    ),
    # loops
    "a loop that never changes": (
        asm(mov(0, imm=0), jmp("jeq", 0, imm=1, off=1), ja(-2), EXIT),
        "infinite loop detected at insn 1",
        EINVAL,
    ),
    "pending branches of a loop bounded by the packet": (
        asm(ldx("w", 0, 1, 0), jmp("jeq", 0, imm=0, off=2), alu("sub", 0, imm=1), ja(-3), EXIT),
        "The sequence of 8193 jumps is too complex.",
        EFAULT,
    ),
    # precision: values that decide something are not pruned away
    "a value a later branch decides on": (
        join(0, 1, jmp("jeq", 7, imm=0, off=1), ldx("w", 0, 5, 0), EXIT),
        "15: (61) r0 = *(u32 *)(r5 +0): R5 !read_ok",
        EACCES,
    ),
    "a value a pointer is moved by": (
        join(0, 8, mov(3, 10), alu("add", 3, imm=-8), alu("add", 3, 7), st("dw", 3, 0, 0), EXIT),
        "17: (7a) *(u64 *)(r3 +0) = 0: invalid write to stack R3 off=0 size=8",
        EACCES,
    ),
    "a value a helper takes as size": (
        join(8, 16, mov(6, 1), load_bytes(0, mov(4, 7)), EXIT),
        "20: (85) call bpf_skb_load_bytes#26: invalid write to stack R3 off=-8 size=16",
        EINVAL,
    ),
    # structure
    "unreachable code": (asm(mov(0, imm=0), EXIT, mov(0, imm=1), EXIT), "unreachable insn 2", EINVAL),
    "a jump out of the program": (asm(mov(0, imm=0), ja(5), EXIT), "jump out of range from insn 1 to 7", EINVAL),
    "falling off the end": (asm(mov(0, imm=0)), "last insn is not an exit or jmp", EINVAL),
    "an unknown opcode": (asm(insn(0xFF), EXIT), "unknown opcode ff", EINVAL),
    "a jump into a lddw": (
        asm(jmp("jeq", 1, imm=0, off=1), lddw(0, 1), EXIT),
        "jump into the middle of ldimm64 insn 1",
        EINVAL,
    ),
    "half a lddw": (asm(insn(0x18, 0, 0, 0, 1), insn(0x18, 0, 0, 0, 1), EXIT), "invalid bpf_ld_imm64 insn", EINVAL),
    "reserved fields": (asm(insn(0xB7, 0, 1, 0, 0), EXIT), "0: (b7) r0 = 0: BPF_MOV uses reserved fields", EINVAL),
    "division by zero": (asm(mov(0, imm=1), alu("div", 0, imm=0), EXIT), "1: (37) r0 /= 0: div by zero", EINVAL),
    "a shift out of range": (
        asm(mov(0, imm=1), alu("lsh", 0, imm=64), EXIT),
        "1: (67) r0 <<= 64: invalid shift 64",
        EINVAL,
    ),
    # bpf-to-bpf calls
    "a call out of the program": (
        asm(call(10, src=1), EXIT, mov(0, imm=1), EXIT),
        "call to invalid destination",
        EINVAL,
    ),
    "recursion": (asm(call(-1, src=1), EXIT), "0: (85) call pc-1: the call stack of 9 frames is too deep", E2BIG),
    "too much stack for two frames": (
        asm(st("dw", 10, -256, 0), call(2, src=1), mov(0, imm=0), EXIT, st("dw", 10, -264, 0), mov(0, imm=0), EXIT),
        "combined stack size of 2 calls is 528. Too large",
        EACCES,
    ),
    "returning a stack pointer": (
        asm(call(1, src=1), EXIT, mov(0, 10), EXIT),
        "3: (95) exit: cannot return stack pointer to the caller",
        EINVAL,
    ),
    "ld_abs in a function": (
        asm(mov(6, 1), call(2, src=1), alu("add", 0, imm=100), EXIT, mov(6, 1), ld_abs("b", 0), EXIT),
        "LD_ABS is not allowed in subprogs without BTF",
        EINVAL,
    ),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_refusals_name_the_insn_in_the_kernels_words(name):
    insns, message, code = REFUSED[name]
    exc = ours(insns, nr_cpus=NR_CPUS)
    assert exc is not None and not isinstance(exc, SimulatorLimitError)
    assert (str(exc), exc.errno) == (message, code)
    assert "\n" not in str(exc)


def same_refusal(kernel_verdict: tuple[int, str], code: int, message: str) -> bool:
    """Whether the kernel refused with this errno and message (a message naming no insn: whatever insn it shows)."""
    kcode, kmessage = kernel_verdict
    return kcode == code and (kmessage == message or (message[:1].isalpha() and kmessage.endswith(": " + message)))


@pytest.mark.parametrize("name", list(REFUSED))
def test_refusals_match_the_kernel(kernel, name):
    insns, message, code = REFUSED[name]
    assert same_refusal(kernel.verdict(insns), code, message), kernel.verdict(insns)


def test_gpl_only_helpers_need_a_gpl_compatible_license():
    printk = asm(mov(1, 10), alu("add", 1, imm=-8), st("dw", 10, -8, 0), mov(2, imm=8), call(6), EXIT)
    for license in ("MIT", "Proprietary", "", "gpl"):
        exc = ours(printk, license)
        assert exc is not None and not isinstance(exc, SimulatorLimitError)
        assert (
            str(exc)
            == "4: (85) call bpf_trace_printk#6: cannot call GPL-restricted function from non-GPL compatible program"
        )
        assert exc.errno == EINVAL
        k, _ = kernel_oracle()
        if k:
            assert k.verdict(printk, license) == (EINVAL, str(exc))
    # With a GPL license the call passes.
    for license in ("GPL", "Dual BSD/GPL", "GPL v2"):
        assert ours(printk, license) is None


def test_an_unbounded_loop_is_refused_fast():
    loop = asm(mov(0, imm=0), alu("add", 0, imm=1), jmp("jlt", 0, imm=1_000_000, off=-2), EXIT)
    t0 = time.perf_counter()
    exc = ours(loop)
    elapsed = time.perf_counter() - t0
    assert exc is not None and exc.errno == E2BIG
    assert str(exc).startswith("program too complex for the simulator's verifier: gave up after ")
    assert elapsed < 2.0  # INSN_LIMIT and TIME_LIMIT keep it well under a second on an idle machine
    k, _ = kernel_oracle()
    if k:
        assert k.verdict(loop) == (E2BIG, "1: (07) r0 += 1: BPF program is too large. Processed 1000001 insn")


def test_the_time_budget_stops_a_slow_verification():
    loop = asm(mov(0, imm=0), alu("add", 0, imm=1), jmp("jlt", 0, imm=1_000_000, off=-2), EXIT)
    t0 = time.perf_counter()
    exc = ours(loop, insn_limit=10**9, time_limit=0.05)
    assert time.perf_counter() - t0 < 1.0
    assert exc is not None and "gave up after 0.05 s" in str(exc)


# ==========================================================================
# What the kernel accepts (as root)
# ==========================================================================

ACCEPTED = {
    "a bounded loop": asm(
        mov(0, imm=0), mov(1, imm=1000), alu("add", 0, imm=1), alu("sub", 1, imm=1), jmp("jne", 1, imm=0, off=-3), EXIT
    ),
    "load_bytes into the stack, then read": asm(mov(6, 1), load_bytes(0, mov(4, imm=8)), ldx("dw", 0, 10, -8), EXIT),
    "load_bytes of a bounded variable size": asm(
        mov(6, 1),
        ldx("w", 4, 1, 0),
        alu("and", 4, imm=7),
        alu("add", 4, imm=1),
        load_bytes(2, mov(5, imm=0)),
        ldx("dw", 0, 10, -8),
        EXIT,
    ),
    "load_bytes_relative": asm(
        mov(1, 1),
        mov(2, imm=12),
        mov(3, 10),
        alu("add", 3, imm=-4),
        mov(4, imm=4),
        mov(5, imm=0),
        call(68),
        ldx("w", 0, 10, -4),
        EXIT,
    ),
    "ld_abs and ld_ind": asm(mov(6, 1), ld_abs("b", 9), mov(7, 0), alu("and", 7, imm=15), ld_ind("h", 7, 2), EXIT),
    "reading uninitialised stack (root)": asm(ldx("dw", 0, 10, -8), EXIT),
    "returning a pointer (root)": asm(mov(0, 10), EXIT),
    "storing a pointer in cb[] (root)": asm(stx("dw", 1, 10, 48), mov(0, imm=0), EXIT),
    "a variable stack offset in bounds": asm(
        st("dw", 10, -16, 0),
        st("dw", 10, -8, 0),
        ldx("w", 2, 1, 0),
        alu("and", 2, imm=8),
        mov(3, 10),
        alu("add", 3, imm=-16),
        alu("add", 3, 2),
        ldx("dw", 0, 3, 0),
        EXIT,
    ),
    "a copy bounded by a branch on the original": asm(
        ldx("w", 2, 1, 0),
        mov(3, 2),
        jmp("jgt", 2, imm=8, off=5),
        byte_at_fp16_plus(3),
        mov(0, imm=0),
        EXIT,
    ),
    "a copy plus a constant": asm(
        ldx("w", 2, 1, 0),
        mov(3, 2),
        alu("add", 3, imm=1),
        jmp("jgt", 2, imm=8, off=5),
        byte_at_fp16_plus(3),
        mov(0, imm=0),
        EXIT,
    ),
    "a spilled copy": asm(
        ldx("w", 2, 1, 0),
        stx("dw", 10, 2, -8),
        jmp("jgt", 2, imm=8, off=6),
        ldx("dw", 3, 10, -8),
        byte_at_fp16_plus(3),
        mov(0, imm=0),
        EXIT,
    ),
    "a 32-bit bound": asm(
        ldx("w", 2, 1, 0),
        jmp("jgt", 2, imm=8, off=5, w32=True),
        byte_at_fp16_plus(2),
        mov(0, imm=0),
        EXIT,
    ),
    "garbage in code no path reaches": asm(mov(0, imm=1), jmp("jeq", 0, imm=1, off=1), insn(0xB7, 11, 0, 0, 7), EXIT),
    "a bpf-to-bpf call": asm(
        mov(6, imm=10),
        st("dw", 10, -8, 1),
        mov(1, imm=5),
        call(4, src=1),
        alu("add", 0, 6),
        ldx("dw", 2, 10, -8),
        alu("add", 0, 2),
        EXIT,
        mov(6, imm=100),
        st("dw", 10, -8, 1000),
        mov(0, 1),
        alu("mul", 0, imm=2),
        EXIT,
    ),
    "ld_abs with calls, in the main program": asm(mov(6, 1), ld_abs("b", 0), call(1, src=1), EXIT, mov(0, imm=1), EXIT),
    "atomics on the stack": asm(
        st("dw", 10, -8, 5), mov(2, imm=1), atomic("dw", 10, 2, -8, 0x01), ldx("dw", 0, 10, -8), alu("add", 0, 2), EXIT
    ),
    "the helpers the simulator implements": asm(
        mov(6, 1),
        call(5),
        call(7),
        call(8),
        call(42),
        mov(1, 6),
        call(46),
        mov(1, 6),
        call(47),
        call(125),
        call(160),
        call(208),
        EXIT,
    ),
}


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_accepted_programs_build_and_run(name):
    verified = verify(ACCEPTED[name], nr_cpus=NR_CPUS)
    assert verified.processed > 0 and len(verified.insns) == len(ACCEPTED[name])
    prog = Program(verified.insns)
    for frame in (bytes(range(14, 78)), bytes(14), bytes(1500)):
        prog.run(frame, SkbContext.for_frame(frame))


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_accepted_programs_match_the_kernel(kernel, name):
    code, log = kernel.load(ACCEPTED[name])
    assert code == 0, log


def test_dead_code_is_replaced_as_the_kernel_does():
    """The kernel never checks insns no path reaches and rewrites them to ``goto -1``: so does verify()."""
    insns = ACCEPTED["garbage in code no path reaches"]
    with pytest.raises(EbpfError, match="invalid register r11"):
        Program(insns)
    verified = verify(insns)
    assert verified.insns == insns[:16] + ja(-1) + EXIT
    assert Program(verified.insns).run(bytes(60)) == 1


def test_processed_insns_count_like_the_kernel():
    # 1000 turns of a 3-insn loop, 2 insns before it, the exit after it.
    assert verify(ACCEPTED["a bounded loop"]).processed == 2 + 1000 * 3 + 1
    k, _ = kernel_oracle()
    if k:
        assert "processed 3003 insns (limit 1000000)" in k.load(ACCEPTED["a bounded loop"])[1][-1]


def test_cpu_numbers_are_bounded_by_nr_cpus():
    """bpf_get_smp_processor_id() is below the CPU count: an 8-byte slot per CPU fits 64 bytes for 8 CPUs."""
    per_cpu = asm(
        call(8),
        alu("lsh", 0, imm=3),
        mov(1, 10),
        alu("add", 1, imm=-64),
        alu("add", 1, 0),
        st("dw", 1, 0, 0),
        mov(0, imm=0),
        EXIT,
    )
    assert ours(per_cpu, nr_cpus=8) is None
    exc = ours(per_cpu, nr_cpus=9)
    assert exc is not None and "invalid variable-offset write to stack R1" in str(exc)
    k, _ = kernel_oracle()
    if k:
        assert (k.load(per_cpu)[0] == 0) == (ours(per_cpu, nr_cpus=NR_CPUS) is None)


# ==========================================================================
# What the kernel accepts but the simulator cannot run
# ==========================================================================

#: bpf_get_ns_current_pid_tgid(0, 0, fp-8, 8): a granted helper the simulator does not implement (call at 5).
NS_PID = asm(mov(1, imm=0), mov(2, imm=0), mov(3, 10), alu("add", 3, imm=-8), mov(4, imm=8), call(120), EXIT)
NS_PID_LIMIT = (
    "5: (85) call bpf_get_ns_current_pid_tgid#120: the simulator does not implement helper "
    "bpf_get_ns_current_pid_tgid#120 yet"
)

LIMITS = {
    "a helper the simulator lacks": (NS_PID, NS_PID_LIMIT, True),
    "skb->sk": (
        asm(ldx("dw", 2, 1, 168), mov(0, imm=0), EXIT),
        "0: (79) r2 = *(u64 *)(r1 +168): reading skb->sk (struct bpf_sock) is not implemented by the simulator",
        True,
    ),
    "may_goto": (
        asm(mov(0, imm=0), insn(0xE5), EXIT),
        "1: (e5) may_goto pc+0: may_goto is not implemented by the simulator",
        True,
    ),
    "a map by index": (
        asm(lddw(1, 3, src=5), mov(0, imm=0), EXIT),
        "0: (18) r1 = 0x3: loading a map by index (BPF_PSEUDO_MAP_IDX) is not implemented by the simulator",
        False,  # the kernel has no fd array here
    ),
    "a kfunc": (
        asm(call(1234, src=2), EXIT),
        "0: (85) call unknown#1234: calling kernel functions (kfunc btf_id 1234) is not implemented by the simulator",
        False,  # nor such a BTF id
    ),
}


@pytest.mark.parametrize("name", list(LIMITS))
def test_what_the_simulator_cannot_run_is_refused_saying_so(name):
    insns, message, kernel_accepts = LIMITS[name]
    exc = ours(insns)
    assert isinstance(exc, SimulatorLimitError)
    assert (str(exc), exc.errno) == (message, errno.EOPNOTSUPP)
    k, _ = kernel_oracle()
    if k and kernel_accepts:
        assert k.load(insns, log=False)[0] == 0


def test_the_granted_helpers_are_the_kernels(kernel):
    """Every helper id the kernel refuses to socket filters is refused here in its words, and only those."""
    for func_id in range(214):
        prog = asm(call(func_id), mov(0, imm=0), EXIT)
        code, message = kernel.verdict(prog)
        exc = ours(prog)
        kernel_refuses_id = "cannot use helper" in message or "invalid func" in message
        we_refuse_id = exc is not None and ("cannot use helper" in str(exc) or "invalid func" in str(exc))
        assert kernel_refuses_id == we_refuse_id, (func_id, message, exc)
        if we_refuse_id:
            assert exc is not None and (str(exc), exc.errno) == (message, code)


# ==========================================================================
# C programs, built with clang
# ==========================================================================

#: tests/bpf programs: None when accepted, else (errno, the reason the message ends with).
C_VERDICTS = {
    "netrx": None,
    "accept_vlan42": None,
    "drop_udp9": None,
    "leave_arp_inband": None,
    "udp_guard": None,
    "mac_vlan42": None,
    "verifier_loop": None,
    "verifier_ld_abs": None,
    "verifier_skb_data": (EACCES, ": invalid bpf_context access off=76 size=4"),
    "verifier_store_bytes": (
        EINVAL,
        ": (85) call bpf_skb_store_bytes#9: program of this type cannot use helper bpf_skb_store_bytes#9",
    ),
    "verifier_gpl_only": (
        EINVAL,
        ": (85) call bpf_trace_printk#6: cannot call GPL-restricted function from non-GPL compatible program",
    ),
    "verifier_stack_oob": (EINVAL, ": invalid variable-offset read from stack R2 var_off=(0x0; 0xf) off=-8 size=1"),
    "verifier_unbounded": (E2BIG, ""),
    "verifier_pid": (
        errno.EOPNOTSUPP,
        ": (85) call bpf_get_ns_current_pid_tgid#120: the simulator does not implement helper "
        "bpf_get_ns_current_pid_tgid#120 yet",
    ),
}


@pytest.fixture(scope="module")
def c_programs(tmp_path_factory) -> dict[str, bpfobj.BpfProgram]:
    if not bpf_build.have_clang():
        pytest.skip("clang with the BPF target and libbpf-dev are needed to build tests/bpf/*.c")
    out = tmp_path_factory.mktemp("bpf")
    return {
        name: bpfobj.first_socket_filter(bpf_build.build(name, out).read_bytes(), f"{name}.o") for name in C_VERDICTS
    }


@needs_clang
@pytest.mark.parametrize("name", list(C_VERDICTS))
def test_c_programs_get_the_expected_verdict(c_programs, name):
    program = c_programs[name]
    exc = ours(program.insns, program.license)
    want = C_VERDICTS[name]
    if want is None:
        assert exc is None
        return
    assert exc is not None and exc.errno == want[0]
    assert str(exc).endswith(want[1])


@needs_clang
@pytest.mark.parametrize("name", list(C_VERDICTS))
def test_c_programs_get_the_kernels_verdict(c_programs, kernel, name):
    program = c_programs[name]
    exc = ours(program.insns, program.license, nr_cpus=NR_CPUS)
    if exc is not None and "too complex for the simulator" in str(exc):  # the kernel gives up too (later)
        assert kernel.load(program.insns, program.license, log=False)[0] == exc.errno
        return
    code, message = kernel.verdict(program.insns, program.license)
    if exc is None or isinstance(exc, SimulatorLimitError):
        assert code == 0, message
    else:
        assert (code, message) == (exc.errno, str(exc))


# ==========================================================================
# Random programs: only VerifierError, quickly; what passes runs; the kernel agrees
# ==========================================================================


def _random_program(rng: random.Random) -> bytes:
    """Mostly plausible socket-filter code: registers set up, then random ALU, memory, jumps and calls."""
    body = [mov(6, 1)]
    for r in (0, 2, 3, 4, 5, 7, 8, 9):
        pick = rng.random()
        if pick < 0.3:
            body.append(mov(r, imm=rng.choice([0, 1, 5, 8, 16, -8, 100])))
        elif pick < 0.55:
            body.append(ldx(rng.choice(["b", "h", "w"]), r, 1, rng.choice([0, 4, 8, 16, 24, 48])))
        elif pick < 0.75:
            body += [mov(r, 10), alu("add", r, imm=rng.choice([-8, -16, -32, -4]))]
        elif pick < 0.9:
            body += [ldx("w", r, 1, 0), alu("and", r, imm=rng.choice([7, 15, 8, 24]))]
    start = len(body)
    n = rng.randrange(3, 20)
    regs = [0, 2, 3, 4, 5, 7, 8, 9]
    imms = [0, 1, 2, 4, 7, 8, -1, -8, -16, 255, 0x7FFFFFFF, -0x80000000, 31, 32, 63]
    for i in range(n):
        pick = rng.random()
        d, s = rng.choice(regs), rng.choice([*regs, 1, 6, 10])
        if pick < 0.3:
            op = rng.choice(list(ALU_OPS))
            w64 = rng.random() < 0.75
            if op == "neg":
                body.append(alu("neg", d, w64=w64))
            elif op in ("lsh", "rsh", "arsh"):
                body.append(alu(op, d, imm=rng.randrange(64 if w64 else 32), w64=w64))
            elif rng.random() < 0.5:
                body.append(alu(op, d, s, w64=w64))
            else:
                body.append(alu(op, d, imm=rng.choice(imms), w64=w64))
        elif pick < 0.45:
            base = rng.choice([10, 10, 1, s])
            off = rng.choice([-8, -16, -4, -512, 0, -6]) if base == 10 else rng.choice([0, 4, 8, 48, 76, 168, 49])
            body.append(ldx(rng.choice(["b", "h", "w", "dw"]), d, base, off))
        elif pick < 0.6:
            base = rng.choice([10, 10, 1, s])
            off = rng.choice([-8, -16, -4, -512, -6]) if base == 10 else rng.choice([48, 52, 0, 8, 49])
            size = rng.choice(["b", "h", "w", "dw"])
            body.append(st(size, base, off, rng.choice(imms)) if rng.random() < 0.4 else stx(size, base, s, off))
        elif pick < 0.78:
            off = rng.randrange(0, max(1, min(6, n - i)))
            op = rng.choice(list(JMP_OPS))
            w32 = rng.random() < 0.3
            body.append(
                jmp(op, d, s, off=off, w32=w32)
                if rng.random() < 0.5
                else jmp(op, d, imm=rng.choice(imms), off=off, w32=w32)
            )
        elif pick < 0.88:
            body.append(
                load_bytes(rng.choice([0, 4, 100]), mov(4, imm=rng.choice([1, 4, 8, 16, 0])), rng.choice([-8, -16, -4]))
            )
            body += [mov(r, rng.choice([6, 7, 10])) for r in (1, 2, 3, 4, 5) if rng.random() < 0.8]
        elif pick < 0.93:
            body.append(call(rng.choice([5, 7, 8, 42, 125])))
            body += [mov(r, rng.choice([6, 7, 0])) for r in (1, 2, 3, 4, 5) if rng.random() < 0.8]
        else:
            body.append(
                atomic(
                    rng.choice(["w", "dw"]),
                    rng.choice([10, s]),
                    s,
                    rng.choice([-8, -16, 0]),
                    rng.choice([0, 1, 0x41, 0xE1, 0xF1]),
                )
            )
    if rng.random() < 0.2:  # the body again and again, counted by r9
        body.insert(start, mov(9, imm=rng.choice([3, 10])))
        body += [alu("sub", 9, imm=1), jmp("jne", 9, imm=0, off=-(len(body) - start) - 1)]
    body += rng.choice([[mov(0, imm=0), EXIT], [EXIT], [mov(0, 7), EXIT]])
    return asm(*body)


def test_random_programs():
    rng = random.Random(20260521)
    k, _ = kernel_oracle()
    frames = [bytes(range(14, 78)), bytes(14), bytes(300)]
    accepted = compared = 0
    for _ in range(400):
        insns = _random_program(rng)
        t0 = time.perf_counter()
        try:
            verified = verify(insns, nr_cpus=NR_CPUS)
        except VerifierError as exc:  # anything else fails the test
            verified = None
            refusal: VerifierError | None = exc
        else:
            refusal = None
        assert time.perf_counter() - t0 < 3.0
        if verified is not None:
            accepted += 1
            prog = Program(verified.insns)
            for frame in frames:
                try:
                    prog.run(frame, SkbContext.for_frame(frame))
                except EbpfError:
                    pass  # e.g. the budget: a run may fail, but only as an EbpfError
        if k is None or (refusal is not None and "too complex for the simulator" in str(refusal)):
            continue
        kernel_accepts = k.load(insns, log=False)[0] == 0
        assert kernel_accepts == (refusal is None or isinstance(refusal, SimulatorLimitError)), insns.hex()
        compared += 1
    assert accepted >= 5  # the generator does make programs that pass
    if k is not None:
        assert compared >= 350


VALID_CTX = [0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60, 64, 68, 84, 164, 176]


def _valid_looking_program(rng: random.Random) -> bytes:
    """Programs that mostly pass: initialised registers, valid offsets, masked indexes, bounded loops."""
    regs = [0, 2, 3, 4, 5, 7, 8, 9]
    body = [mov(6, 1)]
    for r in regs:
        body.append(rng.choice([mov(r, imm=rng.choice([0, 1, 5, 8])), ldx("w", r, 1, rng.choice(VALID_CTX))]))
    start = len(body)
    n = rng.randrange(3, 16)
    for i in range(n):
        pick = rng.random()
        d, s = rng.choice(regs), rng.choice([*regs, 6])
        if pick < 0.35:
            op = rng.choice(["add", "sub", "mul", "or", "and", "lsh", "rsh", "xor", "arsh", "mov", "div", "mod", "neg"])
            w64 = rng.random() < 0.8
            if op == "neg":
                body.append(alu("neg", d, w64=w64))
            elif op in ("lsh", "rsh", "arsh"):
                body.append(alu(op, d, imm=rng.randrange(8), w64=w64))
            else:
                body.append(
                    alu(op, d, s, w64=w64) if rng.random() < 0.4 else alu(op, d, imm=rng.choice([1, 7, 15, -1]))
                )
        elif pick < 0.47:
            body.append(ldx(rng.choice(["b", "h", "w"]), d, 6, rng.choice(VALID_CTX)))
        elif pick < 0.6:
            size = rng.choice(["dw", "w", "b"])
            off = rng.choice([-8, -16, -32]) + {"dw": 0, "w": rng.choice([0, 4]), "b": rng.randrange(8)}[size]
            body.append(ldx(size, d, 10, off) if rng.random() < 0.5 else stx(size, 10, s, off))
        elif pick < 0.7:  # a masked index into the stack
            body += [mov(1, d), alu("and", 1, imm=rng.choice([7, 8, 15, 24, 31])), mov(2, 10), alu("add", 2, imm=-32)]
            body += [alu("add", 2, 1), ldx("b", d, 2, 0) if rng.random() < 0.6 else stx("b", 2, s, 0)]
        elif pick < 0.88:
            off = rng.randrange(0, max(1, min(6, n - i)))
            op = rng.choice(list(JMP_OPS))
            w32 = rng.random() < 0.3
            body.append(jmp(op, d, s, off=off, w32=w32) if rng.random() < 0.5 else jmp(op, d, imm=7, off=off, w32=w32))
        elif pick < 0.95:
            size = rng.choice(
                [mov(4, imm=rng.choice([1, 4, 8])), asm(mov(4, d), alu("and", 4, imm=7), alu("add", 4, imm=1))]
            )
            body.append(load_bytes(rng.choice([0, 4, 14]), size, rng.choice([-8, -16, -32])))
        else:
            body.append(ld_abs(rng.choice(["b", "h", "w"]), rng.choice([0, 9, 100])))
    if rng.random() < 0.3:
        body.insert(start, mov(9, imm=rng.choice([3, 10])))
        body += [alu("sub", 9, imm=1), jmp("jne", 9, imm=0, off=-(len(body) - start) - 1)]
    body += [mov(0, 7), EXIT]
    return asm(*body)


def test_random_valid_looking_programs():
    """Where most programs pass, what passes must be what the kernel accepts (and must run)."""
    rng = random.Random(20260522)
    k, _ = kernel_oracle()
    frames = [bytes(range(14, 78)), bytes(300)]
    accepted = compared = 0
    for _ in range(150):
        insns = _valid_looking_program(rng)
        refusal = ours(insns, nr_cpus=NR_CPUS)
        if refusal is None:
            accepted += 1
            prog = Program(verify(insns, nr_cpus=NR_CPUS).insns)
            for frame in frames:
                try:
                    prog.run(frame, SkbContext.for_frame(frame))
                except EbpfError:
                    pass  # a run may end in error, but only as an EbpfError
        if k is None or (refusal is not None and "too complex for the simulator" in str(refusal)):
            continue
        assert (k.load(insns, log=False)[0] == 0) == (refusal is None), (insns.hex(), refusal)
        compared += 1
    assert accepted >= 30
    if k is not None:
        assert compared >= 130


# ==========================================================================
# The interpreter's run time: only EbpfError
# ==========================================================================


def test_a_failing_helper_is_an_ebpf_error():
    def broken_clock() -> int:
        raise ZeroDivisionError("clock went away")

    prog = Program(asm(call(5), EXIT), clock=broken_clock)
    with pytest.raises(EbpfError, match=r"insn 0 \(call bpf_ktime_get_ns \(#5\)\): run-time fault: ZeroDivisionError"):
        prog.run(bytes(60))


def test_a_short_frame_is_an_ebpf_error_and_a_value_error():
    with pytest.raises(EbpfError) as exc:
        Program(asm(mov(0, imm=0), EXIT)).run(bytes(13))
    assert isinstance(exc.value, ValueError)


def test_kernel_text_is_the_kernels_log_format():
    cases = {
        ldx("w", 2, 1, 76): "(61) r2 = *(u32 *)(r1 +76)",
        call(26): "(85) call bpf_skb_load_bytes#26",
        call(211): "(85) call bpf_cgrp_storage_delete#211",
        call(212): "(85) call unknown#212",
        jmp("jne", 0, 2, off=-2): "(5d) if r0 != r2 goto pc-2",
        jmp("jeq", 2, imm=0x7FFFFFFF, w32=True): "(16) if w2 == 0x7fffffff goto pc+0",
        insn(0xBF, 2, 3, 8): "(bf) r2 = (s8)r3",
        insn(0xDC, 2, 0, 0, 32): "(dc) r2 = be32 r2",
        atomic("dw", 10, 2, -8, 0xF1): "(db) r0 = atomic64_cmpxchg((u64 *)(r10 -8), r0, r2)",
        atomic("w", 10, 2, -8, 0x110): "(c3) store_release((u32 *)(r10 -8), r2)",
        ld_ind("h", 2, -4): "(48) r0 = *(u16 *)skb[r2 + -4]",
        insn(0x06, imm=3): "(06) gotol pc+3",
    }
    for raw, text in cases.items():
        code, regs, off, imm = struct.unpack("<BBhi", raw)
        from evl_net.transports.sim.ebpf.verifier import Insn

        assert kernel_text(Insn(code, regs & 0xF, regs >> 4, off, imm)) == text


# ==========================================================================
# Installing a filter: the simulator's BPF_PROG_LOAD
# ==========================================================================

BOARD = """\
page_size = 4096

[[interface]]
name = "eth0"
driver = "fec"
bus = "2188000.ethernet"
mtu = 1500
port = true

[[interface]]
name = "eth0.42"
parent = "eth0"
vlan_id = 42
addresses = ["10.10.10.11/24"]
port = true
"""


def _object(insns: bytes, license: str = "GPL") -> bytes:
    """A minimal relocatable ELF with one "socket" section, as clang writes one."""
    names = b"\0socket\0license\0.strtab\0.symtab\0"
    lic = license.encode() + b"\0"
    shoff = 64 + len(insns) + len(lic) + len(names)
    shoff += -shoff % 8
    header = struct.pack(
        "<4sBBBBB7xHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0, 1, 247, 1, 0, 0, shoff, 0, 64, 0, 0, 64, 4, 3
    )
    data = header + insns + lic + names
    data += bytes(-len(data) % 8)

    def section(name: int, kind: int, flags: int, offset: int, size: int) -> bytes:
        return struct.pack("<IIQQQQIIQQ", name, kind, flags, 0, offset, size, 0, 0, 8, 0)

    sections = section(0, 0, 0, 0, 0)
    sections += section(1, 1, 0x6, 64, len(insns))  # socket: PROGBITS, ALLOC|EXECINSTR
    sections += section(8, 1, 0x3, 64 + len(insns), len(lic))  # license
    sections += section(16, 3, 0, 64 + len(insns) + len(lic), len(names))  # .strtab
    return data + sections


def test_the_object_helper_makes_what_bpfobj_reads():
    (prog,) = bpfobj.parse(_object(ACCEPTED["a bounded loop"], "MIT"))
    assert (prog.section, prog.insns, prog.license, prog.prog_type) == (
        "socket",
        ACCEPTED["a bounded loop"],
        "MIT",
        "socket_filter",
    )


@pytest.fixture
def sim(tmp_path):
    board = tmp_path / "board.toml"
    board.write_text(BOARD)
    transport = SimTransport(board=str(board), state_path=str(tmp_path / "state.json"))
    with transport:
        yield transport


def test_install_refuses_what_the_verifier_refuses(sim):
    insns, message, code = REFUSED["skb->data"]
    log = list(sim.load().log)
    with pytest.raises(KernelError) as info:
        sim.install_rx_filter("eth0.42", _object(insns), "bad.o")
    assert info.value.errno == code
    assert info.value.detail == f"bad.o: the kernel's verifier refused program 'socket': {message}"
    state = sim.load()
    assert state.filters == {} and state.log == log  # refused at BPF_PROG_LOAD: EVL never saw it


def test_install_refuses_what_the_simulator_cannot_run(sim):
    with pytest.raises(KernelError) as info:
        sim.install_rx_filter("eth0.42", _object(NS_PID), "pid.o")
    assert info.value.errno == errno.EOPNOTSUPP
    assert info.value.detail == f"pid.o: the simulator cannot run program 'socket': {NS_PID_LIMIT}"
    assert sim.load().filters == {}


def test_install_keeps_the_program_the_kernel_would_run(sim):
    import base64

    insns = ACCEPTED["garbage in code no path reaches"]
    sim.install_rx_filter("eth0.42", _object(insns), "ok.o")
    stored = base64.b64decode(sim.load().filters["eth0"].insns)
    assert stored == verify(insns).insns != insns


def test_install_refuses_a_gpl_only_helper_under_another_license(sim):
    printk = asm(mov(1, 10), alu("add", 1, imm=-8), st("dw", 10, -8, 0), mov(2, imm=8), call(6), EXIT)
    with pytest.raises(KernelError) as info:
        sim.install_rx_filter("eth0.42", _object(printk, "Proprietary"), "printk.o")
    assert info.value.errno == EINVAL
    assert info.value.detail.endswith("cannot call GPL-restricted function from non-GPL compatible program")


# --- evl net -F, a real process ------------------------------------------------------


@pytest.fixture
def board_env(tmp_path, sim_env):
    board = tmp_path / "board.toml"
    board.write_text(BOARD)
    # Older than the 2 s a stamp needs to be kept ("racily clean"), so that the first command records it,
    # not whichever one happens to run 2 s later.
    old = time.time() - 60
    os.utime(board, (old, old))
    sim_env["EVL_SIM_BOARD"] = str(board)
    return sim_env


def _run(env: dict[str, str], *argv: str, cwd: Path) -> subprocess.CompletedProcess:
    from conftest import script

    return subprocess.run([script("evl"), *argv], env=env, cwd=str(cwd), capture_output=True, text=True, timeout=120)


def _show(env: dict[str, str], cwd: Path) -> dict:
    run = _run(env, "sim", "--json", "show", cwd=cwd)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


@pytest.mark.parametrize(
    "insns,license,error",
    [
        (
            REFUSED["skb->data"][0],
            "GPL",
            "evl-net: cannot set BPF filter on eth0.42 (bad.o: the kernel's verifier refused program 'socket': "
            "0: (61) r2 = *(u32 *)(r1 +76): invalid bpf_context access off=76 size=4): Permission denied\n",
        ),
        (
            REFUSED["helper not granted to socket filters"][0],
            "GPL",
            "evl-net: cannot set BPF filter on eth0.42 (bad.o: the kernel's verifier refused program 'socket': "
            "1: (85) call bpf_skb_store_bytes#9: program of this type cannot use helper bpf_skb_store_bytes#9): "
            "Invalid argument\n",
        ),
        (
            NS_PID,
            "GPL",
            f"evl-net: cannot set BPF filter on eth0.42 (bad.o: the simulator cannot run program 'socket': "
            f"{NS_PID_LIMIT}): Operation not supported\n",
        ),
    ],
    ids=["skb-data", "not-granted", "not-implemented"],
)
def test_evl_net_F_reports_a_refusal_on_one_line(board_env, tmp_path, insns, license, error):
    (tmp_path / "bad.o").write_bytes(_object(insns, license))
    before = _show(board_env, tmp_path)
    run = _run(board_env, "net", "-i", "eth0.42", "-Fbad.o", cwd=tmp_path)
    assert (run.returncode, run.stdout, run.stderr) == (1, "", error)
    assert "Traceback" not in run.stderr and "internal error" not in run.stderr
    assert _show(board_env, tmp_path) == before


@needs_clang
def test_evl_net_F_installs_what_the_kernel_accepts_and_refuses_the_rest(board_env, tmp_path, c_programs):
    out = tmp_path / "objs"
    out.mkdir()
    good = bpf_build.build("verifier_loop", out)
    bad = bpf_build.build("verifier_stack_oob", out)
    before = _show(board_env, tmp_path)
    run = _run(board_env, "net", "-i", "eth0.42", f"-F{bad}", cwd=tmp_path)
    assert run.returncode == 1 and run.stdout == "" and run.stderr.count("\n") == 1
    assert run.stderr.endswith(
        "invalid variable-offset read from stack R2 var_off=(0x0; 0xf) off=-8 size=1): Invalid argument\n"
    )
    assert _show(board_env, tmp_path) == before
    run = _run(board_env, "net", "-i", "eth0.42", f"-F{good}", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stderr.endswith("fec 2188000.ethernet eth0: out-of-band eBPF program installed\n")  # the kernel's log
    after = _show(board_env, tmp_path)
    assert after != before
    assert "verifier_loop" in json.dumps(after)
