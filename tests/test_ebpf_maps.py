"""Maps in the simulator's verifier and interpreter, against this machine's kernel.

Each case is a program written with the test assembler against named maps.
The kernel gets real maps (BPF_MAP_CREATE; the read-only one frozen, as
libbpf freezes ``.rodata``) and the program with their fds; the simulator the
same program with the maps' indexes, as :mod:`evl_net.kernel.bpflink` relocates
them.  The verdict of BPF_PROG_LOAD (accepted, or errno and the log's last
line) must be the simulator verifier's, and for accepted programs the value
BPF_PROG_TEST_RUN returns must be what the interpreter returns.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Callable

import pytest

from bpf_syscall import BPF_MAP_UPDATE_ELEM, Bpf, KernelVerifier
from ebpf_asm import EXIT, alu, asm, call, jmp, lddw, ldx, mov, st, stx
from evl_net.kernel.bpflink import BPF_F_RDONLY_PROG, MapDef
from evl_net.transports.sim.ebpf import Program, VerifierError, verify
from evl_net.transports.sim.ebpf import maps as vmmaps

BPF_MAP_FREEZE = 22
RO_VALUE = struct.pack("<Q", 7) + b"%d\0\0\0\0\0\0"  # a u64 7, then a format string

MAPS = {
    "arr": MapDef("arr", vmmaps.ARRAY, 4, 8, 4),
    "hash": MapDef("hash", vmmaps.HASH, 4, 8, 2),
    "lru": MapDef("lru", vmmaps.LRU_HASH, 4, 8, 2),
    "pcpu": MapDef("pcpu", vmmaps.PERCPU_ARRAY, 4, 8, 2),
    "rb": MapDef("rb", vmmaps.RINGBUF, 0, 0, 4096),
    "ro": MapDef("ro", vmmaps.ARRAY, 4, 16, 1, BPF_F_RDONLY_PROG, ".rodata", RO_VALUE, True),
}
NAMES = list(MAPS)

M = Callable[[str], int]  # a map's name -> what its lddw carries (fd or index)


def key0(slot: int = -4) -> bytes:
    """A u32 key 0 at fp+slot, r2 pointing at it."""
    return asm(st("w", 10, slot, 0), mov(2, 10), alu("add", 2, imm=slot))


def lookup(m: M, name: str, slot: int = -4) -> bytes:
    return asm(key0(slot), lddw(1, m(name), src=1), call(1))


def value_of(m: M, name: str, off: int = 0) -> bytes:
    return lddw(1, m(name) | (off << 32), src=2)


R0_ZERO_EXIT = asm(mov(0, imm=0), EXIT)


def unless(op: str, reg: int, imm: int, *code: bytes) -> bytes:
    """``if (reg op imm) skip code``: the jump over ``code``."""
    body = asm(*code)
    return jmp(op, reg, imm=imm, off=len(body) // 8) + body


def if_value(*code: bytes) -> bytes:
    """After a lookup: ``code`` when r0 is not NULL (it ends with exit), else return 0."""
    return asm(unless("jeq", 0, 0, *code), R0_ZERO_EXIT)


def reserve(m: M, size: int = 8) -> bytes:
    return asm(lddw(1, m("rb"), src=1), mov(2, imm=size), mov(3, imm=0), call(131))


#: name -> (program from a map namer, expected: "ok" or the kernel's refusal words)
CASES: dict[str, tuple[Callable[[M], bytes], str]] = {
    "lookup, null check, read": (lambda m: asm(lookup(m, "arr"), if_value(ldx("dw", 0, 0, 0), EXIT)), "ok"),
    "no null check": (
        lambda m: asm(lookup(m, "hash"), ldx("dw", 0, 0, 0), EXIT),
        "R0 invalid mem access 'map_value_or_null'",
    ),
    "past the value": (
        lambda m: asm(lookup(m, "hash"), if_value(ldx("dw", 0, 0, 8), EXIT)),
        "R0 min value is outside of the allowed memory range",  # after "invalid access to map value ... off=8"
    ),
    "before the value": (
        lambda m: asm(lookup(m, "hash"), if_value(ldx("dw", 0, 0, -8), EXIT)),
        "R0 min value is outside of the allowed memory range",  # after "... off=-8"
    ),
    "bounded variable offset": (
        lambda m: asm(
            mov(6, 1),
            lookup(m, "hash"),
            if_value(ldx("w", 1, 6, 0), alu("and", 1, imm=7), alu("add", 0, 1), ldx("b", 0, 0, 0), EXIT),
        ),
        "ok",
    ),
    "unbounded variable offset": (
        lambda m: asm(
            mov(6, 1), lookup(m, "hash"), if_value(ldx("w", 1, 6, 0), alu("add", 0, 1), ldx("b", 0, 0, 0), EXIT)
        ),
        "R0 unbounded memory access, make sure to bounds check any such access",
    ),
    "variable offset too far": (
        lambda m: asm(
            mov(6, 1),
            lookup(m, "hash"),
            if_value(ldx("w", 1, 6, 0), alu("and", 1, imm=15), alu("add", 0, 1), ldx("b", 0, 0, 0), EXIT),
        ),
        "R0 max value is outside of the allowed memory range",
    ),
    "arithmetic before the null check": (
        lambda m: asm(lookup(m, "hash"), alu("add", 0, imm=8), EXIT),
        "R0 pointer arithmetic on map_value_or_null prohibited, null-check it first",
    ),
    "lookup in a ring buffer": (
        lambda m: asm(lookup(m, "rb"), R0_ZERO_EXIT),
        "invalid zero-sized read",  # a ring buffer has no key: the arguments are checked first
    ),
    "a map where a key goes": (
        lambda m: asm(lddw(1, m("arr"), src=1), mov(2, 1), call(1), R0_ZERO_EXIT),
        "R2 type=map_ptr expected=fp, pkt, pkt_meta, map_key, map_value, mem, ringbuf_mem, buf, trusted_ptr_",
    ),
    "update with no value": (
        lambda m: asm(key0(), lddw(1, m("hash"), src=1), mov(3, imm=0), mov(4, imm=0), call(2), EXIT),
        "R3 type=scalar expected=fp, pkt, pkt_meta, map_key, map_value, mem, ringbuf_mem, buf, trusted_ptr_",
    ),
    "update noexist twice": (
        lambda m: asm(
            st("dw", 10, -16, 5), _update(m, "hash", 1, 1), unless("jne", 0, 0, _update(m, "hash", 1, 1)), EXIT
        ),
        "ok",  # returns -EEXIST
    ),
    "a full hash map": (lambda m: asm(st("dw", 10, -16, 1), *(_update(m, "hash", k) for k in (1, 2, 3)), EXIT), "ok"),
    "a full LRU map evicts": (
        lambda m: asm(st("dw", 10, -16, 1), *(_update(m, "lru", k) for k in (1, 2, 3)), EXIT),
        "ok",
    ),
    "update bad flags": (lambda m: asm(st("dw", 10, -16, 1), _update(m, "arr", 0, 9), EXIT), "ok"),
    "array update noexist, delete": (
        lambda m: (
            asm(st("dw", 10, -16, 3), _update(m, "arr", 0, 1), mov(6, 0), key0(), lddw(1, m("arr"), src=1))
            + asm(call(3), alu("lsh", 0, imm=8), alu("xor", 0, 6), EXIT)
        ),
        "ok",
    ),
    "write, then read back": (
        lambda m: asm(
            lookup(m, "arr"),
            if_value(
                st("dw", 0, 0, 41),
                mov(1, imm=1),
                stx("dw", 0, 1, 0),
                lookup(m, "arr"),
                if_value(ldx("dw", 0, 0, 0), EXIT),
            ),
        ),
        "ok",
    ),
    "atomic add to a value": (
        lambda m: asm(
            lookup(m, "arr"), if_value(mov(1, imm=5), bytes([0xDB, 0x10, 0, 0, 0, 0, 0, 0]), ldx("dw", 0, 0, 0), EXIT)
        ),
        "ok",
    ),
    "per-CPU value": (
        lambda m: asm(key0(), lddw(1, m("pcpu"), src=1), mov(3, imm=0), call(195), if_value(ldx("dw", 0, 0, 0), EXIT)),
        "ok",
    ),
    "a key out of range": (
        lambda m: (
            asm(st("w", 10, -4, 4), mov(2, 10), alu("add", 2, imm=-4), lddw(1, m("arr"), src=1), call(1))
            + asm(unless("jeq", 0, 0, mov(0, imm=1), EXIT), mov(0, imm=2), EXIT)
        ),
        "ok",
    ),
    "read a frozen read-only map": (
        lambda m: asm(value_of(m, "ro"), ldx("dw", 0, 1, 0), unless("jeq", 0, 7, mov(0, 9)), EXIT),
        "ok",  # the value is known: the other branch is dead (r9 is never read)
    ),
    "write a read-only map": (
        lambda m: asm(value_of(m, "ro"), st("dw", 1, 0, 1), R0_ZERO_EXIT),
        "write into map forbidden, value_size=16 off=0 size=8",
    ),
    "direct value of a hash": (
        lambda m: asm(value_of(m, "hash"), R0_ZERO_EXIT),
        "no direct value access support for this map type",
    ),
    "a map fd that is none": (
        lambda m: asm(lddw(1, 1000, src=1), R0_ZERO_EXIT),
        "fd 1000 is not pointing to valid bpf_map",
    ),
    "snprintf from .rodata": (
        lambda m: (
            asm(st("dw", 10, -24, 1234), value_of(m, "ro", 8), mov(3, 1), mov(1, 10), alu("add", 1, imm=-16))
            + asm(mov(2, imm=16), mov(4, 10), alu("add", 4, imm=-24), mov(5, imm=8), call(165), EXIT)
        ),
        "ok",
    ),
    "snprintf format on the stack": (
        lambda m: (
            asm(st("dw", 10, -8, 0x6425), mov(1, 10), alu("add", 1, imm=-24), mov(2, imm=16))
            + asm(mov(3, 10), alu("add", 3, imm=-8), mov(4, imm=0), mov(5, imm=0), call(165), EXIT)
        ),
        "R3 type=fp expected=map_value",
    ),
    "ring buffer record submitted": (
        lambda m: asm(
            reserve(m), if_value(st("dw", 0, 0, 42), mov(1, 0), mov(2, imm=0), call(132), mov(0, imm=1), EXIT)
        ),
        "ok",
    ),
    "ring buffer record never submitted": (
        lambda m: asm(reserve(m), R0_ZERO_EXIT),
        "BPF_EXIT instruction in main prog would lead to reference leak",
    ),
    "ring buffer record past its size": (
        lambda m: asm(
            reserve(m), if_value(st("dw", 0, 8, 42), mov(1, 0), mov(2, imm=0), call(133), mov(0, imm=1), EXIT)
        ),
        "R0 min value is outside of the allowed memory range",  # after "invalid access to memory ..."
    ),
    "ring buffer record used after submit": (
        lambda m: asm(
            reserve(m), if_value(mov(6, 0), mov(1, 0), mov(2, imm=0), call(132), st("dw", 6, 0, 1), R0_ZERO_EXIT)
        ),
        "R6 invalid mem access 'scalar'",  # the submit made every copy of the record an unknown (for root)
    ),
    "ring buffer reserve of a variable size": (
        lambda m: (
            asm(ldx("w", 2, 1, 0), lddw(1, m("rb"), src=1), mov(3, imm=0), call(131))
            + if_value(mov(1, 0), mov(2, imm=0), call(133), R0_ZERO_EXIT)
        ),
        "R2 is not a known constant'",
    ),
    "strtol": (lambda m: strto(105, b"  -42x", 0), "ok"),
    "strtol hex": (lambda m: strto(105, b"0x1Fg", 0), "ok"),
    "strtol octal": (lambda m: strto(105, b"017", 0), "ok"),
    "strtol base 16": (lambda m: strto(105, b"ff", 16), "ok"),
    "strtol bad base": (lambda m: strto(105, b"12", 7), "ok"),
    "strtol nothing": (lambda m: strto(105, b" x", 0), "ok"),
    "strtol overflow": (lambda m: strto(105, b"99999999999999999999", 10), "ok"),
    "strtol out of range": (lambda m: strto(105, b"9223372036854775808", 10), "ok"),
    "strtoul negative": (lambda m: strto(106, b"-1", 10), "ok"),
    "strtoul": (lambda m: strto(106, b"18446744073709551615", 0), "ok"),
    "strtol result misaligned": (
        lambda m: (
            asm(put(-8, b"1"), mov(1, 10), alu("add", 1, imm=-8), mov(2, imm=1), mov(3, imm=0))
            + asm(mov(4, 10), alu("add", 4, imm=-20), call(105), EXIT)
        ),
        "misaligned stack access off 0+-20+0 size 8",
    ),
    "strncmp equal": (lambda m: strncmp(m, b"%d\0"), "ok"),
    "strncmp greater": (lambda m: strncmp(m, b"%e\0"), "ok"),
    "strncmp less": (lambda m: strncmp(m, b"%c\0"), "ok"),
    "strncmp prefix": (lambda m: strncmp(m, b"%"), "ok"),
    "strncmp with a stack string": (
        lambda m: asm(put(-8, b"ab"), mov(1, 10), alu("add", 1, imm=-8), mov(2, imm=2), mov(3, 1), call(182), EXIT),
        "R3 type=fp expected=map_value",
    ),
    "probe_read_kernel from the stack": (lambda m: probe(113, b"abcdefgh", 8), "ok"),
    "probe_read_kernel from NULL": (lambda m: probe(113, b"", 8), "ok"),
    "probe_read_kernel_str": (lambda m: probe(115, b"ab", 8), "ok"),
    "probe_read_kernel_str cut": (lambda m: probe(115, b"abcdefgh", 4), "ok"),
    "probe_read_kernel_str from NULL": (lambda m: probe(115, b"", 8), "ok"),
    "probe_read_user of a kernel address": (lambda m: probe(112, b"abcdefgh", 8), "ok"),
    "probe_read_user_str of NULL": (lambda m: probe(114, b"", 8), "ok"),
    "current task helpers": (
        lambda m: (
            asm(call(14), mov(6, 0), call(15), alu("or", 6, 0), call(80), alu("or", 6, 0), mov(1, imm=0))
            + asm(call(123), alu("or", 6, 0), mov(1, 10), alu("add", 1, imm=-16), mov(2, imm=16), call(16))
            + asm(ldx("dw", 1, 10, -16), alu("xor", 6, 1), call(35), mov(0, 6), EXIT)
        ),
        "ok",  # the idle task: pid 0, uid 0, root cgroup (id 1); BPF_PROG_TEST_RUN runs in the caller's task
    ),
    "ring buffer output": (
        lambda m: (
            asm(st("dw", 10, -8, 7), lddw(1, m("rb"), src=1), mov(2, 10), alu("add", 2, imm=-8))
            + asm(mov(3, imm=8), mov(4, imm=0), call(130), EXIT)
        ),
        "ok",
    ),
}


def put(off: int, data: bytes) -> bytes:
    """Store ``data`` (padded to 4 bytes) on the stack at fp+off, four bytes at a time."""
    data += bytes(-len(data) % 4)
    return b"".join(st("w", 10, off + k, struct.unpack("<i", data[k : k + 4])[0]) for k in range(0, len(data), 4))


def strto(helper: int, text: bytes, flags: int) -> bytes:
    """helper(fp-32, len(text), flags, fp-40); r0 = result << 16 | (*res & 0xffff) on success, else the result."""
    body = asm(put(-32, text), st("dw", 10, -40, 0), mov(1, 10), alu("add", 1, imm=-32), mov(2, imm=len(text)))
    body += asm(mov(3, imm=flags), mov(4, 10), alu("add", 4, imm=-40), call(helper))
    tail = asm(alu("lsh", 0, imm=16), ldx("dw", 1, 10, -40), alu("and", 1, imm=0xFFFF), alu("or", 0, 1), EXIT)
    return body + unless("jslt", 0, 0, tail) + EXIT


def strncmp(m: M, text: bytes) -> bytes:
    """bpf_strncmp(text on the stack, len(text), the "%d" of the read-only map)."""
    return asm(
        put(-8, text), mov(1, 10), alu("add", 1, imm=-8), mov(2, imm=len(text)), value_of(m, "ro", 8),
        mov(3, 1), mov(1, 10), alu("add", 1, imm=-8), call(182), EXIT,
    )  # fmt: skip


def probe(helper: int, src: bytes, size: int) -> bytes:
    """helper(fp-16, size, r3); r3 is fp-32 holding ``src`` (or the address in ``src`` if it is an int)."""
    head = asm(put(-32, src), mov(3, 10), alu("add", 3, imm=-32)) if src else mov(3, imm=0)
    body = asm(head, st("dw", 10, -16, -1), st("dw", 10, -8, -1), mov(1, 10), alu("add", 1, imm=-16))
    body += asm(mov(2, imm=size), call(helper), ldx("dw", 1, 10, -16), alu("lsh", 0, imm=32), alu("xor", 0, 1), EXIT)
    return body


def _update(m: M, name: str, k: int, flags: int = 0) -> bytes:
    """bpf_map_update_elem(map, &k, fp-16, flags) with k at fp-4; r0 its result."""
    return asm(
        st("w", 10, -4, k), mov(2, 10), alu("add", 2, imm=-4), mov(3, 10), alu("add", 3, imm=-16),
        lddw(1, m(name), src=1), mov(4, imm=flags), call(2),
    )  # fmt: skip


#: Programs with callbacks: the kernel needs BTF function information for them (an object built with
#: -g carries it, these raw programs do not), so their verdicts are worked out from the kernel's rules.
CALLBACKS: dict[str, tuple[Callable[[M], bytes], str]] = {}


def _callback_cases() -> None:
    """bpf_loop() and bpf_for_each_map_elem(): the callback follows the main program, found by a lddw."""

    def loop(n: int, body: bytes, ctx_init: int = 0) -> bytes:
        # main: u64 at fp-8 = ctx_init; bpf_loop(n, cb, fp-8, 0); return *(fp-8) (or bpf_loop's result: see below)
        main_tail = asm(ldx("dw", 0, 10, -8), EXIT)
        head = asm(st("dw", 10, -8, ctx_init), mov(1, imm=n))
        after_lddw = asm(mov(3, 10), alu("add", 3, imm=-8), mov(4, imm=0), call(181)) + main_tail
        delta = len(after_lddw) // 8 + 1  # from the lddw's second half to the callback
        return head + lddw(2, delta, src=4) + after_lddw + body

    CASES["a callback without BTF function info"] = (
        lambda m: loop(1, asm(mov(0, imm=0), EXIT)),
        "missing btf func_info",
    )
    CALLBACKS["bpf_loop sums its indexes"] = (
        lambda m: loop(10, asm(ldx("dw", 3, 2, 0), alu("add", 3, 1), stx("dw", 2, 3, 0), mov(0, imm=0), EXIT)),
        "ok",  # 45
    )
    CALLBACKS["bpf_loop stopped by its callback"] = (
        lambda m: loop(
            100,
            asm(ldx("dw", 3, 2, 0), alu("add", 3, imm=1), stx("dw", 2, 3, 0), mov(0, imm=0))
            + asm(jmp("jlt", 3, imm=5, off=1), mov(0, imm=1), EXIT),
        ),
        "ok",  # 5
    )
    CALLBACKS["callback returning 2"] = (
        lambda m: loop(1, asm(mov(0, imm=2), EXIT)),
        "At callback return the register R0 has smin=2 smax=2 should have been in [0, 1]",
    )
    CALLBACKS["callback returning an unknown"] = (
        lambda m: loop(1, asm(mov(0, 1), EXIT)),
        "At callback return the register R0 has unknown scalar value should have been in [0, 1]",
    )
    CALLBACKS["callback indexing with its index"] = (
        lambda m: loop(3, asm(mov(3, 10), alu("add", 3, 1), ldx("b", 0, 3, -8), mov(0, imm=0), EXIT)),
        "math between fp pointer and register with unbounded min value is not allowed",
    )

    def for_each(name: str, body: bytes) -> Callable[[M], bytes]:
        def build(m: M) -> bytes:
            fill = b"".join(_update(m, name, k) for k in (1, 2)) if name == "hash" else b""
            head = asm(st("dw", 10, -16, 20), fill, st("dw", 10, -8, 0), lddw(1, m(name), src=1))
            after = asm(mov(3, 10), alu("add", 3, imm=-8), mov(4, imm=0), call(164), ldx("dw", 1, 10, -8))
            after += asm(alu("lsh", 0, imm=16), alu("add", 0, 1), EXIT)
            return head + lddw(2, len(after) // 8 + 1, src=4) + after + body

        return build

    # callback(map, key, value, ctx): *ctx += *value + *key
    add_value = asm(ldx("dw", 5, 3, 0), ldx("w", 2, 2, 0), alu("add", 5, 2), ldx("dw", 1, 4, 0))
    add_value += asm(alu("add", 1, 5), stx("dw", 4, 1, 0), mov(0, imm=0), EXIT)
    CALLBACKS["for_each over a hash"] = (for_each("hash", add_value), "ok")  # 2 elements, 20 + 1 + 20 + 2
    CALLBACKS["for_each over an array"] = (for_each("arr", add_value), "ok")  # 4 elements, 0 + 1 + 2 + 3
    CALLBACKS["for_each writing a key"] = (
        for_each("arr", asm(st("w", 2, 0, 1), mov(0, imm=0), EXIT)),
        "write to change key R2 not allowed",
    )
    CALLBACKS["for_each over a ring buffer"] = (
        for_each("rb", asm(mov(0, imm=0), EXIT)),
        "callback function not allowed for map",  # a ring buffer has no for_each operation (checked with C, by libbpf)
    )


_callback_cases()

#: Cases whose result depends on the task the program runs in (on the RX path the idle task; in
#: BPF_PROG_TEST_RUN the caller): the kernel is compared on the verdict only.
TASK_DEPENDENT = {"current task helpers"}


def _probed(ret: int, first8: bytes) -> int:
    """What probe() returns: (ret << 32) ^ the first 8 bytes of the destination, as a u32."""
    return ((ret << 32) ^ int.from_bytes(first8, "little")) & 0xFFFFFFFF


#: What BPF_PROG_TEST_RUN returns for the accepted cases, worked out by hand (a u32).
RESULTS = {
    "strtol": (5 << 16) | (-42 & 0xFFFF),
    "strtol hex": (4 << 16) | 0x1F,
    "strtol octal": (3 << 16) | 0o17,
    "strtol base 16": (2 << 16) | 0xFF,
    "strtol bad base": -errno.EINVAL & 0xFFFFFFFF,
    "strtol nothing": -errno.EINVAL & 0xFFFFFFFF,
    "strtol overflow": -errno.ERANGE & 0xFFFFFFFF,
    "strtol out of range": -errno.ERANGE & 0xFFFFFFFF,
    "strtoul negative": -errno.EINVAL & 0xFFFFFFFF,
    "strtoul": ((20 << 16) | 0xFFFF) & 0xFFFFFFFF,
    "strncmp equal": 0,
    "strncmp greater": 1,
    "strncmp less": 0xFFFFFFFF,
    "strncmp prefix": 0,
    "probe_read_kernel from the stack": _probed(0, b"abcdefgh"),
    "probe_read_kernel from NULL": _probed(-errno.EFAULT, bytes(8)),
    "probe_read_kernel_str": _probed(3, b"ab\0\xff\xff\xff\xff\xff"),
    "probe_read_kernel_str cut": _probed(4, b"abc\0\xff\xff\xff\xff"),
    "probe_read_kernel_str from NULL": _probed(-errno.EFAULT, bytes(8)),
    "probe_read_user of a kernel address": _probed(-errno.EFAULT, bytes(8)),
    "probe_read_user_str of NULL": _probed(-errno.EFAULT, bytes(8)),
    "current task helpers": (1 ^ int.from_bytes(b"swapper/", "little")) & 0xFFFFFFFF,
    "lookup, null check, read": 0,
    "bounded variable offset": 0,
    "update noexist twice": -errno.EEXIST & 0xFFFFFFFF,
    "a full hash map": -errno.E2BIG & 0xFFFFFFFF,
    "a full LRU map evicts": 0,
    "update bad flags": -errno.EINVAL & 0xFFFFFFFF,
    "array update noexist, delete": (((-errno.EINVAL) << 8) ^ -errno.EEXIST) & 0xFFFFFFFF,
    "write, then read back": 1,
    "atomic add to a value": 5,
    "per-CPU value": 0,
    "a key out of range": 2,
    "read a frozen read-only map": 7,
    "snprintf from .rodata": 5,
    "ring buffer record submitted": 1,
    "ring buffer output": 0,
    "bpf_loop sums its indexes": 45,
    "bpf_loop stopped by its callback": 5,
    "for_each over a hash": (2 << 16) + 43,
    "for_each over an array": (4 << 16) + 6,
}


def sim_maps() -> list[vmmaps.BpfMap]:
    return [vmmaps.create(i, MAPS[n], 1) for i, n in enumerate(NAMES)]


def ours(insns: bytes, func_info: bool = False) -> VerifierError | None:
    try:
        verify(insns, "GPL", maps=tuple(MAPS[n] for n in NAMES), func_info=func_info)
    except VerifierError as exc:
        return exc
    return None


FRAME = bytes(12) + b"\x08\x00" + bytes(50)


@pytest.mark.parametrize("name", list(CASES) + list(CALLBACKS))
def test_the_simulator_decides_as_worked_out(name):
    func_info = name in CALLBACKS
    build, expected = CALLBACKS[name] if func_info else CASES[name]
    insns = build(NAMES.index)
    exc = ours(insns, func_info)
    if expected == "ok":
        assert exc is None, str(exc)
        verified = verify(insns, "GPL", maps=tuple(MAPS.values()), func_info=func_info)
        got = Program(verified.insns).run(FRAME, maps=sim_maps())
        assert got == RESULTS[name]
    else:
        assert exc is not None and str(exc).endswith(expected), (str(exc), expected)


class KernelMaps:
    """The cases' maps in the kernel, made afresh for each program."""

    def __init__(self, bpf: Bpf) -> None:
        self.bpf = bpf
        self.fds: dict[str, int] = {}
        for name, d in MAPS.items():
            fd = bpf.map_create(d.type, d.key_size, d.value_size, d.max_entries, d.flags)
            self.fds[name] = fd
            if d.initial is not None:
                import ctypes

                k = ctypes.create_string_buffer(bytes(4), 4)
                v = ctypes.create_string_buffer(d.initial, len(d.initial))
                attr = bytearray(128)
                struct.pack_into("IIQQQ", attr, 0, fd, 0, ctypes.addressof(k), ctypes.addressof(v), 0)
                bpf.call(BPF_MAP_UPDATE_ELEM, attr)
                bpf.call(BPF_MAP_FREEZE, bytearray(struct.pack("I", fd) + bytes(124)))

    def fd(self, name: str) -> int:
        return self.fds[name] if name in self.fds else 1000

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)


@pytest.fixture(scope="module")
def kernel() -> KernelVerifier:
    try:
        return KernelVerifier()
    except OSError as exc:
        pytest.skip(f"kernel oracle unavailable: BPF_PROG_LOAD fails ({exc.strerror})")


@pytest.mark.parametrize("name", list(CASES))
def test_the_kernel_decides_the_same(kernel, name):
    build, expected = CASES[name]
    kmaps = KernelMaps(kernel.bpf)
    try:
        insns = build(kmaps.fd)
        code, message = kernel.verdict(insns)
        mine = ours(build(NAMES.index))
        if expected == "ok":
            assert code == 0, message
            assert mine is None
            fd, _ = kernel.bpf.prog_load(insns, b"GPL")
            try:
                if name not in TASK_DEPENDENT:
                    assert kernel.bpf.test_run(fd, FRAME) == RESULTS[name]
            finally:
                os.close(fd)
        else:
            assert code != 0
            assert message.endswith(expected), (message, expected)
            assert mine is not None and mine.errno == code, (mine, code)
            assert str(mine).split(": ")[-1] == message.split(": ")[-1]
    finally:
        kmaps.close()
