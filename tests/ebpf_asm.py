"""A tiny eBPF assembler for the tests: one instruction per call, ``asm(...)`` joins them.

Shared by the interpreter's tests (tests/test_ebpf_vm.py) and the
verifier's (tests/test_ebpf_verifier.py), so both write programs the same way.
"""

from __future__ import annotations

import struct

ALU_OPS = {"add": 0x00, "sub": 0x10, "mul": 0x20, "div": 0x30, "or": 0x40, "and": 0x50, "lsh": 0x60}
ALU_OPS |= {"rsh": 0x70, "neg": 0x80, "mod": 0x90, "xor": 0xA0, "mov": 0xB0, "arsh": 0xC0}
JMP_OPS = {"jeq": 0x10, "jgt": 0x20, "jge": 0x30, "jset": 0x40, "jne": 0x50, "jsgt": 0x60, "jsge": 0x70}
JMP_OPS |= {"jlt": 0xA0, "jle": 0xB0, "jslt": 0xC0, "jsle": 0xD0}
SIZES = {"w": 0x00, "h": 0x08, "b": 0x10, "dw": 0x18}


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (dst & 0xF) | (src & 0xF) << 4, off, imm)


def alu(op: str, dst: int, src: int | None = None, imm: int = 0, w64: bool = True, off: int = 0) -> bytes:
    """``off`` selects the signed div/mod and sign-extending mov of RFC 9669."""
    return insn((7 if w64 else 4) | ALU_OPS[op] | (8 if src is not None else 0), dst, src or 0, off, imm)


def mov(dst: int, src: int | None = None, imm: int = 0, w64: bool = True) -> bytes:
    return alu("mov", dst, src, imm, w64)


def jmp(op: str, dst: int, src: int | None = None, imm: int = 0, off: int = 0, w32: bool = False) -> bytes:
    return insn((6 if w32 else 5) | JMP_OPS[op] | (8 if src is not None else 0), dst, src or 0, off, imm)


def ja(off: int) -> bytes:
    return insn(0x05, off=off)


def ldx(size: str, dst: int, src: int, off: int, sx: bool = False) -> bytes:
    """``sx``: the sign-extending load (BPF_MEMSX)."""
    return insn((0x81 if sx else 0x61) | SIZES[size], dst, src, off)


def st(size: str, dst: int, off: int, imm: int) -> bytes:
    return insn(0x62 | SIZES[size], dst, 0, off, imm)


def stx(size: str, dst: int, src: int, off: int) -> bytes:
    return insn(0x63 | SIZES[size], dst, src, off)


def atomic(size: str, dst: int, src: int, off: int, op: int) -> bytes:
    return insn(0xC3 | SIZES[size], dst, src, off, op)


def ld_abs(size: str, imm: int) -> bytes:
    return insn(0x20 | SIZES[size], imm=imm)


def ld_ind(size: str, src: int, imm: int) -> bytes:
    return insn(0x40 | SIZES[size], src=src, imm=imm)


def lddw(dst: int, value: int, src: int = 0) -> bytes:
    lo, hi = struct.unpack("<ii", struct.pack("<Q", value & (1 << 64) - 1))
    return insn(0x18, dst, src, 0, lo) + insn(0, imm=hi)


def call(func: int, src: int = 0) -> bytes:
    return insn(0x85, src=src, imm=func)


EXIT = insn(0x95)


def asm(*parts: bytes) -> bytes:
    return b"".join(parts)


#: Offsets of the struct __sk_buff fields socket filters read (include/uapi/linux/bpf.h).
SK_BUFF_FIELDS = {
    "len": 0,
    "pkt_type": 4,
    "mark": 8,
    "queue_mapping": 12,
    "protocol": 16,
    "vlan_present": 20,
    "vlan_tci": 24,
    "vlan_proto": 28,
    "priority": 32,
    "ingress_ifindex": 36,
    "ifindex": 40,
    "tc_index": 44,
    "cb0": 48,
    "cb1": 52,
    "cb2": 56,
    "cb3": 60,
    "cb4": 64,
    "hash": 68,
    "napi_id": 84,
    "gso_segs": 164,
    "gso_size": 176,
}
