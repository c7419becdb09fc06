"""An interpreter for the eBPF socket-filter programs EVL runs on RX frames.

The simulator runs the program installed with ``evl net -F`` on every
injected frame to get its verdict (evl-abi §6: 0 DROP, 1 ACCEPT, 2 SKIP,
3 VLAN, anything else acts like SKIP).  This module executes the eBPF
instruction set such programs compile to, with the semantics of the kernel
(its interpreter, JITs and verifier), standard library only::

    prog = Program(bpfobj.first_socket_filter(data).insns)   # decode + check once
    verdict = prog.run(frame, SkbContext.for_frame(frame))   # fast, per frame

What the program sees -- the kernel's view, checked in tests/test_ebpf_vm.py
against the kernel's own ``BPF_PROG_TEST_RUN`` and against its real RX path
(a veth pair and a packet socket running the program):

* ``frame`` starts at the Ethernet header, but the skb data the program reads
  starts *after* it: both the EVL input path (``netif_deliver_oob()`` runs
  after the driver's ``eth_type_trans()``) and ``bpf_prog_test_run_skb()``
  pull the 14-byte MAC header first.  So legacy packet loads
  (``BPF_LD|BPF_ABS/IND``, LLVM's ``load_byte/half/word``) and
  ``bpf_skb_load_bytes()`` at offset 0 read the network header;
  ``SKF_NET_OFF + k`` reads the network header, ``SKF_LL_OFF + k`` and
  ``bpf_skb_load_bytes_relative(..., BPF_HDR_START_MAC)`` the MAC header.
  Out-of-bounds legacy loads end the program with 0 (the kernel's
  behaviour), a failed ``bpf_skb_load_bytes*()`` zeroes its buffer and
  returns -EFAULT.  A filter written with Ethernet offsets
  (``load_half(skb, 12)`` for the ethertype) reads the IP header instead,
  in the kernel as here: use ``skb->protocol`` or ``SKF_LL_OFF``.
* ``__sk_buff.len`` is ``len(frame) - 14`` (skb->len after the pull);
  ``protocol`` and ``vlan_proto`` are ``__be16`` in the kernel, so a program
  reads IPv4 as ``bpf_htons(0x0800)`` == 0x0008.  :class:`SkbContext` holds
  them in host order (``protocol=0x0800``) and the VM presents them the
  kernel's way.
* A VLAN-accelerated NIC (or ``skb_vlan_untag()`` on the in-band RX path)
  removes the outer 802.1Q/802.1ad tag from the packet and stores it in
  ``vlan_present``/``vlan_tci``/``vlan_proto``: :meth:`SkbContext.for_frame`
  does that by default (``vlan_offload=True``) and :meth:`Program.run` then
  hides the tag from the program.  With a plain :class:`SkbContext` the
  frame is seen as is -- a tagged frame has ``protocol`` 0x8100 and its
  packet data starts at the TCI, exactly as ``BPF_PROG_TEST_RUN`` shows it.
* Readable context fields are those the kernel lets socket filters read:
  len, pkt_type, mark, queue_mapping, protocol, vlan_present, vlan_tci,
  vlan_proto, priority, ingress_ifindex, ifindex, tc_index, cb[5], hash,
  napi_id, gso_segs, gso_size (1/2/4-byte aligned reads, with the kernel's
  narrow-load rewriting: a read at least as wide as the sk_buff member
  behind the field returns the whole member); only cb[] is writable.
  data/data_end, tc_classid, the socket fields, tstamp, wire_len and
  hwtstamp are not accessible to socket filters and are rejected.
* Helpers: bpf_skb_load_bytes (#26), bpf_skb_load_bytes_relative (#68),
  bpf_get_prandom_u32 (#7, seedable, deterministic), bpf_ktime_get_ns (#5,
  also boot/coarse/tai: the Program's clock), bpf_get_smp_processor_id (#8),
  bpf_get_numa_node_id (#42), bpf_get_socket_cookie (#46,
  ``SkbContext.socket_cookie``, 0 as on the RX path where no socket owns the
  skb), bpf_get_socket_uid (#47, the overflow uid 65534 for the same
  reason).  Map helpers, tail calls, map references in ``lddw``, kfuncs and
  every other helper raise :class:`UnsupportedError` when the program is
  decoded.

The instruction set is the full one of current kernels (RFC 9669): ALU and
ALU64 (signed div/mod and movsx included), byte swaps, JMP/JMP32 (gotol
included), bpf-to-bpf calls (8 frames of 512 bytes), LDX/ST/STX with
sign-extending loads, atomics and load-acquire/store-release on the stack,
the 16-byte ``lddw``.  Semantic details follow the kernel: 32-bit ALU results
are zero-extended, shift amounts in registers are masked to the operand
width (constant shifts >= width are rejected by the verifier, so here too),
division by zero gives 0 and modulo by zero keeps the dividend (truncated
to 32 bits for 32-bit ops), ``INT_MIN / -1`` is ``INT_MIN`` and ``x % -1``
is 0.  Registers never written read as 0 (the verifier would refuse the
program; being lenient costs nothing here).  The return value is r0
truncated to 32 bits, as ``bpf_prog_run()`` returns it.

Decoding (:class:`Program`) checks what the verifier checks statically:
opcodes, registers (r10 is read-only), jump targets, ``lddw`` pairs, the
program not falling off its end, frame-pointer accesses within the 512-byte
frame and aligned, constant divisions by zero, helper ids.  What depends on
run-time values (pointer accesses out of the stack or the context,
misaligned stack accesses, too deep calls) raises :class:`EbpfError` while
running.  Every error carries the index of the offending instruction
(``.insn``) and its disassembly.  An instruction budget (1 000 000 executed
instructions by default, counted per basic block) turns an endless loop into
:class:`BudgetExceededError` where the kernel's verifier would have refused
the program.

Speed: each basic block is translated once into a Python function (source
generated from the instructions and compiled), so running is a loop over
block functions operating on a register list -- no per-instruction
decoding or dispatch.  Pointers are plain integers in two address ranges
(:data:`CTX_BASE` for the context, below :data:`STACK_TOP` for the stack).
A :class:`Program` can run frames from several threads: all run state lives
in the per-run register list, except the random generator.
"""

from __future__ import annotations

import random
import struct
import time
from dataclasses import dataclass
from typing import Callable

__all__ = [
    "EbpfError",
    "UnsupportedError",
    "BudgetExceededError",
    "SkbContext",
    "Program",
    "disasm",
    "DEFAULT_BUDGET",
    "CTX_BASE",
    "STACK_TOP",
    "STACK_SIZE",
]

# --------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------

M64 = 0xFFFF_FFFF_FFFF_FFFF
M32 = 0xFFFF_FFFF
SB64 = 1 << 63
SB32 = 1 << 31

#: Executed-instruction budget of a run (the kernel has none: its verifier
#: refuses programs that might not terminate).
DEFAULT_BUDGET = 1_000_000
#: Bytes of stack per call frame, frames per run.
STACK_SIZE = 512
MAX_CALL_FRAMES = 8
#: Pointer values: the context (r1 at entry) and the frame pointer (r10).
CTX_BASE = 0xFFFF_8880_0000_0000
STACK_TOP = 0xFFFF_C900_0001_0000
CTX_SIZE = 192  # sizeof(struct __sk_buff)
ETH_HLEN = 14
SKF_NET_OFF = -0x100000
SKF_LL_OFF = -0x200000
EFAULT = 14
OVERFLOW_UID = 65534

# Instruction classes, sizes, modes, ops.
LD, LDX, ST, STX, ALU, JMP, JMP32, ALU64 = range(8)
_SIZES = {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}  # W H B DW
_SIZE_NAME = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}
IMM, ABS, IND, MEM, MEMSX, ATOMIC = 0x00, 0x20, 0x40, 0x60, 0x80, 0xC0
_ALU_NAMES = {
    0x00: "+=", 0x10: "-=", 0x20: "*=", 0x30: "/=", 0x40: "|=", 0x50: "&=",
    0x60: "<<=", 0x70: ">>=", 0x80: "neg", 0x90: "%=", 0xA0: "^=", 0xB0: "=",
    0xC0: "s>>=", 0xD0: "end",
}
_JMP_NAMES = {
    0x10: "==", 0x20: ">", 0x30: ">=", 0x40: "&", 0x50: "!=", 0x60: "s>",
    0x70: "s>=", 0xA0: "<", 0xB0: "<=", 0xC0: "s<", 0xD0: "s<=",
}
BPF_PSEUDO_CALL = 1
BPF_PSEUDO_KFUNC_CALL = 2
# Atomic operations (imm of BPF_STX|BPF_ATOMIC).
BPF_FETCH = 0x01
_ATOMIC_OPS = {0x00: "add", 0x40: "or", 0x50: "and", 0xA0: "xor", 0xE0: "xchg", 0xF0: "cmpxchg"}
BPF_LOAD_ACQ = 0x100
BPF_STORE_REL = 0x110

# Helper names, by id (enum bpf_func_id), for messages.
_HELPER_NAMES = (
    "unspec map_lookup_elem map_update_elem map_delete_elem probe_read ktime_get_ns "
    "trace_printk get_prandom_u32 get_smp_processor_id skb_store_bytes l3_csum_replace "
    "l4_csum_replace tail_call clone_redirect get_current_pid_tgid get_current_uid_gid "
    "get_current_comm get_cgroup_classid skb_vlan_push skb_vlan_pop skb_get_tunnel_key "
    "skb_set_tunnel_key perf_event_read redirect get_route_realm perf_event_output "
    "skb_load_bytes get_stackid csum_diff skb_get_tunnel_opt skb_set_tunnel_opt "
    "skb_change_proto skb_change_type skb_under_cgroup get_hash_recalc get_current_task "
    "probe_write_user current_task_under_cgroup skb_change_tail skb_pull_data csum_update "
    "set_hash_invalid get_numa_node_id skb_change_head xdp_adjust_head probe_read_str "
    "get_socket_cookie get_socket_uid set_hash setsockopt skb_adjust_room redirect_map "
    "sk_redirect_map sock_map_update xdp_adjust_meta perf_event_read_value "
    "perf_prog_read_value getsockopt override_return sock_ops_cb_flags_set "
    "msg_redirect_map msg_apply_bytes msg_cork_bytes msg_pull_data bind xdp_adjust_tail "
    "skb_get_xfrm_state get_stack skb_load_bytes_relative fib_lookup sock_hash_update "
    "msg_redirect_hash sk_redirect_hash lwt_push_encap lwt_seg6_store_bytes "
    "lwt_seg6_adjust_srh lwt_seg6_action rc_repeat rc_keydown skb_cgroup_id "
    "get_current_cgroup_id get_local_storage sk_select_reuseport skb_ancestor_cgroup_id "
    "sk_lookup_tcp sk_lookup_udp sk_release map_push_elem map_pop_elem map_peek_elem "
    "msg_push_data msg_pop_data rc_pointer_rel spin_lock spin_unlock sk_fullsock tcp_sock "
    "skb_ecn_set_ce get_listener_sock skc_lookup_tcp tcp_check_syncookie sysctl_get_name "
    "sysctl_get_current_value sysctl_get_new_value sysctl_set_new_value strtol strtoul "
    "sk_storage_get sk_storage_delete send_signal tcp_gen_syncookie skb_output "
    "probe_read_user probe_read_kernel probe_read_user_str probe_read_kernel_str "
    "tcp_send_ack send_signal_thread jiffies64 read_branch_records "
    "get_ns_current_pid_tgid xdp_output get_netns_cookie get_current_ancestor_cgroup_id "
    "sk_assign ktime_get_boot_ns seq_printf seq_write sk_cgroup_id sk_ancestor_cgroup_id "
    "ringbuf_output ringbuf_reserve ringbuf_submit ringbuf_discard ringbuf_query "
    "csum_level skc_to_tcp6_sock skc_to_tcp_sock skc_to_tcp_timewait_sock "
    "skc_to_tcp_request_sock skc_to_udp6_sock get_task_stack load_hdr_opt store_hdr_opt "
    "reserve_hdr_opt inode_storage_get inode_storage_delete d_path copy_from_user "
    "snprintf_btf seq_printf_btf skb_cgroup_classid redirect_neigh per_cpu_ptr "
    "this_cpu_ptr redirect_peer task_storage_get task_storage_delete "
    "get_current_task_btf bprm_opts_set ktime_get_coarse_ns ima_inode_hash "
    "sock_from_file check_mtu for_each_map_elem snprintf sys_bpf btf_find_by_name_kind "
    "sys_close timer_init timer_set_callback timer_start timer_cancel get_func_ip "
    "get_attach_cookie task_pt_regs get_branch_snapshot trace_vprintk skc_to_unix_sock "
    "kallsyms_lookup_name find_vma loop strncmp get_func_arg get_func_ret "
    "get_func_arg_cnt get_retval set_retval xdp_get_buff_len xdp_load_bytes "
    "xdp_store_bytes copy_from_user_task skb_set_tstamp ima_file_hash kptr_xchg "
    "map_lookup_percpu_elem skc_to_mptcp_sock dynptr_from_mem ringbuf_reserve_dynptr "
    "ringbuf_submit_dynptr ringbuf_discard_dynptr dynptr_read dynptr_write dynptr_data "
    "tcp_raw_gen_syncookie_ipv4 tcp_raw_gen_syncookie_ipv6 tcp_raw_check_syncookie_ipv4 "
    "tcp_raw_check_syncookie_ipv6 ktime_get_tai_ns user_ringbuf_drain"
).split()

# Helpers that only make sense with maps (or that need map-like objects).
_MAP_HELPERS = {1, 2, 3, 12, 25, 51, 52, 53, 60, 70, 71, 72, 81, 87, 88, 89, 93, 94,
                107, 108, 130, 131, 132, 133, 134, 145, 146, 156, 157, 164, 169, 170,
                171, 172, 194, 195, 198, 199, 200, 209}


def helper_name(func_id: int) -> str:
    if 0 <= func_id < len(_HELPER_NAMES):
        return f"bpf_{_HELPER_NAMES[func_id]} (#{func_id})"
    return f"helper #{func_id}"


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


class EbpfError(Exception):
    """A program the interpreter refuses or cannot finish.

    ``insn`` is the index (in 8-byte slots) of the offending instruction,
    None when the error is about the program as a whole.
    """

    def __init__(self, message: str, insn: int | None = None, text: str | None = None) -> None:
        self.insn = insn
        self.detail = message
        where = ""
        if insn is not None:
            where = f"insn {insn}" + (f" ({text})" if text else "") + ": "
        super().__init__(where + message)


class UnsupportedError(EbpfError):
    """Valid eBPF the simulator does not implement (maps, kfuncs, most helpers)."""


class BudgetExceededError(EbpfError):
    """The run executed more instructions than the budget allows."""


# --------------------------------------------------------------------------
# The context
# --------------------------------------------------------------------------

PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST, PACKET_OTHERHOST = 0, 1, 2, 3
_VLAN_TPIDS = (0x8100, 0x88A8)


def eth_type_trans(frame: bytes) -> int:
    """skb->protocol (host order) as the kernel's eth_type_trans() sets it."""
    proto = (frame[12] << 8) | frame[13]
    if proto >= 0x0600:  # eth_proto_is_802_3()
        return proto
    if frame[14:16] == b"\xff\xff":  # raw 802.3 (Novell IPX)
        return 0x0001  # ETH_P_802_3
    return 0x0004  # ETH_P_802_2


def pkt_type_of(frame: bytes, dev_addr: bytes | None = None) -> int:
    """skb->pkt_type from the destination MAC (eth_skb_pkt_type()).

    Without ``dev_addr`` every unicast frame is taken as addressed to us
    (the NIC filters the others out).  ff:ff:ff:ff:ff:ff is PACKET_BROADCAST
    as on an Ethernet NIC (BPF_PROG_TEST_RUN's loopback device has no
    broadcast address and calls it PACKET_MULTICAST).
    """
    dst = bytes(frame[0:6])
    if dev_addr is not None and dst == bytes(dev_addr):
        return PACKET_HOST
    if dst[0] & 1:
        return PACKET_BROADCAST if dst == b"\xff" * 6 else PACKET_MULTICAST
    return PACKET_HOST if dev_addr is None else PACKET_OTHERHOST


@dataclass(frozen=True)
class SkbContext:
    """The ``struct __sk_buff`` fields a socket filter can read.

    Fields left at None are derived from the frame on each run, the way
    the kernel derives them: ``len`` is len(frame) - 14, ``protocol`` comes
    from eth_type_trans(), ``pkt_type`` from the destination MAC compared
    with ``dev_addr`` (see :func:`pkt_type_of`).  ``protocol`` and
    ``vlan_proto`` are host-order ethertypes (0x0800, 0x8100): the program
    reads them as the kernel's ``__be16``.  ``vlan_offloaded`` means the
    frame handed to :meth:`Program.run` still carries the outer VLAN tag that
    ``vlan_tci`` describes and the program must not see it (set by
    :meth:`for_frame`).  ``socket_cookie`` is what bpf_get_socket_cookie()
    returns (no socket owns an RX skb: 0).
    """

    len: int | None = None
    pkt_type: int | None = None
    mark: int = 0
    queue_mapping: int = 0
    protocol: int | None = None
    vlan_present: int = 0
    vlan_tci: int = 0
    vlan_proto: int = 0
    priority: int = 0
    ingress_ifindex: int = 0
    ifindex: int = 0
    tc_index: int = 0
    cb: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    hash: int = 0
    napi_id: int = 0
    gso_segs: int = 0
    gso_size: int = 0
    dev_addr: bytes | None = None
    socket_cookie: int = 0
    vlan_offloaded: bool = False

    @classmethod
    def for_frame(cls, frame: bytes, *, vlan: int | None = None,
                  vlan_offload: bool = True, **fields) -> "SkbContext":
        """The context of ``frame`` received by a NIC, derived fields filled in.

        With ``vlan_offload`` (the default: a VLAN-accelerated NIC, or the
        core's skb_vlan_untag()), an outer 802.1Q/802.1ad tag in the frame
        moves to vlan_present/vlan_tci/vlan_proto and the program sees the
        frame without it.  ``vlan`` is a VLAN id the hardware already took
        out of an untagged ``frame``; for a tagged frame it must match the
        tag's VID.  Other keyword arguments set fields (ifindex=, mark=, ...).
        """
        if len(frame) < ETH_HLEN:
            raise ValueError(f"a {len(frame)}-byte frame has no Ethernet header")
        tpid = (frame[12] << 8) | frame[13]
        if vlan_offload and tpid in _VLAN_TPIDS and len(frame) >= ETH_HLEN + 4:
            tci = (frame[14] << 8) | frame[15]
            if vlan is not None and vlan != tci & 0x0FFF:
                raise ValueError(f"vlan={vlan} but the frame is tagged with VLAN {tci & 0x0FFF}")
            fields.setdefault("vlan_present", 1)
            fields.setdefault("vlan_tci", tci)
            fields.setdefault("vlan_proto", tpid)
            fields["vlan_offloaded"] = True
            frame = frame[:12] + frame[16:]
        elif vlan is not None:
            fields.setdefault("vlan_present", 1)
            fields.setdefault("vlan_tci", vlan)
            fields.setdefault("vlan_proto", 0x8100)
        if fields.get("len") is None:
            fields["len"] = len(frame) - ETH_HLEN
        if fields.get("protocol") is None:
            fields["protocol"] = eth_type_trans(frame)
        if fields.get("pkt_type") is None:
            fields["pkt_type"] = pkt_type_of(frame, fields.get("dev_addr"))
        return cls(**fields)


# Context layout: offset -> name of the u32 fields socket filters read.
_CTX_FIELDS = {
    0: "len", 4: "pkt_type", 8: "mark", 12: "queue_mapping", 16: "protocol",
    20: "vlan_present", 24: "vlan_tci", 28: "vlan_proto", 32: "priority",
    36: "ingress_ifindex", 40: "ifindex", 44: "tc_index", 68: "hash",
    84: "napi_id", 164: "gso_segs", 176: "gso_size",
}
# Size of the sk_buff member behind each field (the verifier's "target size"):
# a narrow read smaller than it is shifted and masked out of the field, a
# read at least that wide returns the whole member, whatever its offset in
# the 4-byte slot (a 2-byte read of protocol at +2 gives the protocol).
_CTX_TARGET = {
    0: 4, 4: 1, 8: 4, 12: 2, 16: 2, 20: 4, 24: 2, 28: 2, 32: 4, 36: 4, 40: 4, 44: 2,
    68: 4, 84: 4, 164: 2, 176: 2,
}
_CB_LO, _CB_HI = 48, 68
_CTX_FORBIDDEN = [
    (72, 76, "tc_classid"), (76, 80, "data"), (80, 84, "data_end"),
    (88, 140, "socket fields (family, ip, port)"), (140, 144, "data_meta"),
    (144, 152, "flow_keys"), (152, 160, "tstamp"), (160, 164, "wire_len"),
    (180, 184, "tstamp_type"), (184, 192, "hwtstamp"),
]
_CTX_STRUCT = struct.Struct("<12I20sI12xI76xI8xI")  # len..tc_index, cb, hash, napi_id, gso_segs, gso_size


def _ctx_field_name(off: int) -> str:
    base = off & ~3
    if base in _CTX_FIELDS:
        return _CTX_FIELDS[base]
    if _CB_LO <= off < _CB_HI:
        return f"cb[{(off - _CB_LO) // 4}]"
    if 168 <= off < 176:
        return "sk"
    for lo, hi, name in _CTX_FORBIDDEN:
        if lo <= off < hi:
            return name
    return f"offset {off}"


def _ctx_image(skb: SkbContext, frame: bytes) -> bytearray:
    """The 192-byte __sk_buff as the program sees it."""
    n = len(frame) - ETH_HLEN
    length = n if skb.len is None else skb.len
    proto = eth_type_trans(frame) if skb.protocol is None else skb.protocol
    pkt_type = pkt_type_of(frame, skb.dev_addr) if skb.pkt_type is None else skb.pkt_type
    cb = b"".join((v & M32).to_bytes(4, "little") for v in skb.cb)
    if len(cb) != 20:
        raise ValueError("SkbContext.cb must have 5 entries")
    image = bytearray(CTX_SIZE)
    _CTX_STRUCT.pack_into(
        image, 0,
        length & M32, pkt_type & 7, skb.mark & M32, skb.queue_mapping & 0xFFFF,
        _bswap16(proto & 0xFFFF), 1 if skb.vlan_present else 0, skb.vlan_tci & 0xFFFF,
        _bswap16(skb.vlan_proto & 0xFFFF), skb.priority & M32, skb.ingress_ifindex & M32,
        skb.ifindex & M32, skb.tc_index & 0xFFFF, cb, skb.hash & M32, skb.napi_id & M32,
        skb.gso_segs & 0xFFFF, skb.gso_size & 0xFFFF,
    )
    return image


def _bswap16(v: int) -> int:
    return ((v & 0xFF) << 8) | (v >> 8)


# --------------------------------------------------------------------------
# Run state: a list, so that generated code reaches everything by index.
# --------------------------------------------------------------------------
# r[0..10] registers, then:
_STK = 11      # bytearray: the stack of every frame, STACK_TOP at its end
_PKT = 12      # the frame (bytes), Ethernet header included
_CTX = 13      # bytearray context image, built on first access
_SKB = 14      # SkbContext
_CALLS = 15    # bpf-to-bpf call stack: [(return pc, r6, r7, r8, r9, r10), ...]
_PROG = 16     # the Program (random generator, clock, cpu)

_U = {1: struct.Struct("<B"), 2: struct.Struct("<H"), 4: struct.Struct("<I"), 8: struct.Struct("<Q")}
_S = {1: struct.Struct("<b"), 2: struct.Struct("<h"), 4: struct.Struct("<i"), 8: struct.Struct("<q")}


class _RunError(Exception):
    """Raised by run-time support code; the run loop adds the insn text."""

    def __init__(self, pc: int, message: str, cls: type = EbpfError) -> None:
        super().__init__(message)
        self.pc = pc
        self.message = message
        self.cls = cls


def _stack_off(r: list, a: int, size: int, pc: int, what: str) -> int:
    """Index in the stack buffer of an access at address a, checked."""
    stk = r[_STK]
    o = a - STACK_TOP + len(stk)
    fp = r[10]
    if a < fp - STACK_SIZE or a + size > STACK_TOP:
        raise _RunError(pc, f"{what} of {size} bytes at fp{a - fp:+d} is outside the stack "
                            f"(fp-{STACK_SIZE}..fp)")
    if a & (size - 1):
        raise _RunError(pc, f"misaligned stack {what}: {size} bytes at fp{a - fp:+d}")
    return o


def _in_stack(a: int) -> bool:
    return STACK_TOP - STACK_SIZE * MAX_CALL_FRAMES <= a < STACK_TOP


def _ctx_check(pc: int, off: int, size: int, write: bool) -> None:
    name = _ctx_field_name(off)
    if off % size:
        raise _RunError(pc, f"misaligned context access: {size} bytes at offset {off} ({name})")
    if _CB_LO <= off < _CB_HI:
        if off + size > _CB_HI:
            raise _RunError(pc, f"context access of {size} bytes at offset {off} overruns cb[]")
        return
    if 168 <= off < 176:
        raise _RunError(pc, "skb->sk (struct bpf_sock) is not supported by the simulator",
                        UnsupportedError)
    if (off & ~3) not in _CTX_FIELDS:
        raise _RunError(pc, f"__sk_buff field {name} is not accessible to socket filters")
    if size > 4:
        raise _RunError(pc, f"{size}-byte read of the 4-byte __sk_buff field {name}")
    if write:
        raise _RunError(pc, f"__sk_buff field {name} is read-only for socket filters "
                            "(only cb[] is writable)")


def _ctx_buf(r: list) -> bytearray:
    image = r[_CTX]
    if image is None:
        image = r[_CTX] = _ctx_image(r[_SKB], r[_PKT])
    return image


def _load(r: list, a: int, size: int, pc: int) -> int:
    if _in_stack(a):
        return _U[size].unpack_from(r[_STK], _stack_off(r, a, size, pc, "load"))[0]
    off = a - CTX_BASE
    if 0 <= off < CTX_SIZE:
        if off + size > CTX_SIZE:
            raise _RunError(pc, f"context access of {size} bytes at offset {off} is out of bounds")
        _ctx_check(pc, off, size, False)
        base = off & ~3
        target = _CTX_TARGET.get(base)
        if target is None:  # cb[]: plain memory
            return _U[size].unpack_from(_ctx_buf(r), off)[0]
        v = _U[4].unpack_from(_ctx_buf(r), base)[0]
        if size < target:
            v = (v >> ((off & 3) * 8)) & ((1 << (size * 8)) - 1)
        return v
    raise _RunError(pc, f"invalid memory load of {size} bytes at {a:#x}: "
                        "not a stack or context pointer")


def _loadsx(r: list, a: int, size: int, pc: int) -> int:
    v = _load(r, a, size, pc)
    sign = 1 << (size * 8 - 1)
    return ((v ^ sign) - sign) & M64


def _store(r: list, a: int, size: int, v: int, pc: int) -> None:
    if _in_stack(a):
        _U[size].pack_into(r[_STK], _stack_off(r, a, size, pc, "store"), v & ((1 << (size * 8)) - 1))
        return
    off = a - CTX_BASE
    if 0 <= off < CTX_SIZE:
        if off + size > CTX_SIZE:
            raise _RunError(pc, f"context access of {size} bytes at offset {off} is out of bounds")
        _ctx_check(pc, off, size, True)
        _U[size].pack_into(_ctx_buf(r), off, v & ((1 << (size * 8)) - 1))
        return
    raise _RunError(pc, f"invalid memory store of {size} bytes at {a:#x}: "
                        "not a stack or context pointer")


def _atomic(r: list, a: int, size: int, op: int, src: int, pc: int) -> None:
    """BPF_STX|BPF_ATOMIC on the stack (the context is not allowed)."""
    if not _in_stack(a):
        raise _RunError(pc, f"atomic operation at {a:#x}: only the stack is supported")
    o = _stack_off(r, a, size, pc, "atomic access")
    st = _U[size]
    mask = (1 << (size * 8)) - 1
    stk = r[_STK]
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


def _pkt_load(r: list, k: int, size: int) -> int | None:
    """Legacy packet load at signed offset k (skb data = network header)."""
    frame = r[_PKT]
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
    return int.from_bytes(frame[base:base + size], "big")


def _sdiv64(a: int, b: int) -> int:
    a = (a ^ SB64) - SB64
    b = (b ^ SB64) - SB64
    if b == 0:
        return 0
    q = abs(a) // abs(b)
    return (-q if (a < 0) != (b < 0) else q) & M64


def _smod64(a: int, b: int) -> int:
    sa = (a ^ SB64) - SB64
    sb = (b ^ SB64) - SB64
    if sb == 0:
        return a
    m = abs(sa) % abs(sb)
    return (-m if sa < 0 else m) & M64


def _sdiv32(a: int, b: int) -> int:
    a = ((a & M32) ^ SB32) - SB32
    b = ((b & M32) ^ SB32) - SB32
    if b == 0:
        return 0
    q = abs(a) // abs(b)
    return (-q if (a < 0) != (b < 0) else q) & M32


def _smod32(a: int, b: int) -> int:
    sa = ((a & M32) ^ SB32) - SB32
    sb = ((b & M32) ^ SB32) - SB32
    if sb == 0:
        return a & M32
    m = abs(sa) % abs(sb)
    return (-m if sa < 0 else m) & M32


def _bswap(v: int, bits: int) -> int:
    n = bits // 8
    return int.from_bytes((v & ((1 << bits) - 1)).to_bytes(n, "little"), "big")


# --- helpers (run-time) ------------------------------------------------------

def _check_skb_arg(r: list, pc: int, name: str) -> None:
    if r[1] != CTX_BASE:
        raise _RunError(pc, f"{name} expects the context (skb) in r1")


def _stack_buffer(r: list, a: int, n: int, pc: int, name: str) -> int:
    fp = r[10]
    if not (fp - STACK_SIZE <= a and a + n <= STACK_TOP) or n <= 0:
        raise _RunError(pc, f"{name}: buffer of {n} bytes at {a:#x} is not within the stack")
    return a - STACK_TOP + len(r[_STK])


def _copy_pkt(r: list, pc: int, name: str, start: int, offset: int) -> int:
    n = r[4] & M32
    o = _stack_buffer(r, r[3], n, pc, name)
    frame = r[_PKT]
    stk = r[_STK]
    pos = start + offset
    if offset <= 0xFFFF and start >= 0 and pos + n <= len(frame):
        stk[o:o + n] = frame[pos:pos + n]
        return 0
    stk[o:o + n] = bytes(n)
    return (-EFAULT) & M64


def _h_skb_load_bytes(r: list, pc: int) -> int:
    _check_skb_arg(r, pc, "bpf_skb_load_bytes")
    return _copy_pkt(r, pc, "bpf_skb_load_bytes", ETH_HLEN, r[2] & M32)


def _h_skb_load_bytes_relative(r: list, pc: int) -> int:
    _check_skb_arg(r, pc, "bpf_skb_load_bytes_relative")
    start = {0: 0, 1: ETH_HLEN}.get(r[5] & M32, -1)  # BPF_HDR_START_MAC / _NET
    return _copy_pkt(r, pc, "bpf_skb_load_bytes_relative", start, r[2] & M32)


def _h_ktime(r: list, pc: int) -> int:
    return r[_PROG].clock() & M64


def _h_prandom(r: list, pc: int) -> int:
    return r[_PROG].rng.getrandbits(32)


def _h_cpu(r: list, pc: int) -> int:
    return r[_PROG].cpu & M32


def _h_numa(r: list, pc: int) -> int:
    return 0


def _h_cookie(r: list, pc: int) -> int:
    _check_skb_arg(r, pc, "bpf_get_socket_cookie")
    return r[_SKB].socket_cookie & M64


def _h_uid(r: list, pc: int) -> int:
    _check_skb_arg(r, pc, "bpf_get_socket_uid")
    return OVERFLOW_UID


_HELPERS: dict[int, Callable[[list, int], int]] = {
    5: _h_ktime, 7: _h_prandom, 8: _h_cpu, 26: _h_skb_load_bytes, 42: _h_numa,
    46: _h_cookie, 47: _h_uid, 68: _h_skb_load_bytes_relative, 125: _h_ktime,
    160: _h_ktime, 208: _h_ktime,
}


def _call_sub(r: list, ret: int, target: int, pc: int) -> int:
    calls = r[_CALLS]
    if len(calls) + 1 >= MAX_CALL_FRAMES:
        raise _RunError(pc, f"bpf-to-bpf calls nested deeper than {MAX_CALL_FRAMES} frames")
    calls.append((ret, r[6], r[7], r[8], r[9], r[10]))
    r[10] -= STACK_SIZE
    return target


def _ret_sub(r: list) -> int:
    ret, r[6], r[7], r[8], r[9], r[10] = r[_CALLS].pop()
    return ret


# --------------------------------------------------------------------------
# Decoding and disassembly
# --------------------------------------------------------------------------

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
        name = _ALU_NAMES.get(op, f"alu?{op:#x}")
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
        return f"if {w}{d} {_JMP_NAMES.get(op, '?')} {x} {tgt(off)}"
    size = _SIZES[c & 0x18]
    mode = c & 0xE0
    sz = _SIZE_NAME[size]
    if cls == LD:
        if mode == IMM:
            return f"r{d} = {insn.imm64:#x} ll" if insn.imm64 is not None else "lddw"
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
            name = _ATOMIC_OPS.get(imm & ~BPF_FETCH, "?")
            fetch = "fetch_" if imm & BPF_FETCH and name not in ("xchg", "cmpxchg") else ""
            return f"lock {fetch}{name} *({sz} *)({_addr(d, off)}), r{s}"
        return f"*({sz} *)({_addr(d, off)}) = r{s}"
    return f"code {c:#04x}"


# --------------------------------------------------------------------------
# The compiler: basic blocks -> Python functions
# --------------------------------------------------------------------------


class _Compiler:
    def __init__(self, insns: list[Insn | None]) -> None:
        self.insns = insns
        self.n = len(insns)
        self.has_calls = any(
            i is not None and i.code == (JMP | 0x80) and i.src == BPF_PSEUDO_CALL for i in insns)
        self.has_ldabs = any(
            i is not None and i.cls == LD and i.code & 0xE0 in (ABS, IND) for i in insns)

    def fail(self, pc: int, message: str, cls: type = EbpfError) -> EbpfError:
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
        return [], True

    def compile(self) -> tuple[list, list[int]]:
        n = self.n
        if n == 0:
            raise EbpfError("empty program")
        if self.has_calls and self.has_ldabs:
            raise EbpfError("BPF_LD_[ABS|IND] cannot be mixed with bpf-to-bpf calls")
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
        names = {}
        for k, start in enumerate(starts):
            stop = starts[k + 1] if k + 1 < len(starts) else n
            body: list[str] = []
            pc = start
            count = 0
            terminated = False
            while pc < stop:
                insn = self.insns[pc]
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
            name = f"b{start}"
            names[start] = name
            src_lines.append(f"def {name}(r):")
            src_lines.extend("    " + line for line in body)
        src_lines.append("BLOCKS = {" + ", ".join(f"{s}: {names[s]}" for s in starts) + "}")
        source = "\n".join(src_lines) + "\n"
        env = dict(_GEN_GLOBALS)
        exec(compile(source, "<ebpf program>", "exec"), env)  # noqa: S102 - our own generated code
        blocks = [None] * n
        for s, fn in env["BLOCKS"].items():
            blocks[s] = fn
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
        if op not in _ALU_NAMES:
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
                raise self.fail(pc, "address space casts (arena) are not supported",
                                UnsupportedError)
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
        if op not in _JMP_NAMES:
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
            0x10: f"{A} == {B}", 0x50: f"{A} != {B}", 0x20: f"{A} > {B}",
            0x30: f"{A} >= {B}", 0xA0: f"{A} < {B}", 0xB0: f"{A} <= {B}",
            0x40: f"{A} & {B}", 0x60: f"{As} > {Bs}", 0x70: f"{As} >= {Bs}",
            0xC0: f"{As} < {Bs}", 0xD0: f"{As} <= {Bs}",
        }[op]
        return [f"return {t} if {cond} else {f}"], True

    def helper(self, pc: int, func_id: int) -> int:
        if func_id in _HELPERS:
            return func_id
        name = helper_name(func_id)
        if func_id in _MAP_HELPERS:
            raise self.fail(pc, f"{name} needs maps: maps are not supported by the simulator",
                            UnsupportedError)
        if not 0 < func_id < len(_HELPER_NAMES):
            raise self.fail(pc, f"invalid helper {name}")
        raise self.fail(pc, f"{name} is not supported by the simulator (or not available "
                            "to socket filters)", UnsupportedError)

    def emit_ld(self, pc: int, insn: Insn) -> list[str]:
        c, d, s, imm = insn.code, insn.dst, insn.src, insn.imm
        mode = c & 0xE0
        size = _SIZES[c & 0x18]
        if mode == IMM:
            if size != 8:
                raise self.fail(pc, f"unknown opcode {c:#04x}")
            self.check_reg(pc, d, write=True)
            if s:
                kind = {1: "map fd", 2: "map value", 3: "BTF id", 4: "function pointer",
                        5: "map index", 6: "map index value"}.get(s, f"pseudo {s}")
                msg = (f"lddw of a {kind}: maps are not supported by the simulator"
                       if s in (1, 2, 5, 6) else f"lddw of a {kind} is not supported")
                raise self.fail(pc, msg, UnsupportedError)
            return [f"r[{d}] = {insn.imm64:#x}"]
        if mode not in (ABS, IND) or size == 8:
            raise self.fail(pc, f"unknown opcode {c:#04x}")
        if d or insn.off or (mode == ABS and s):
            raise self.fail(pc, "BPF_LD_[ABS|IND] uses reserved fields")
        lines = [f"if r[6] != {CTX_BASE:#x}: raise _RunError({pc}, "
                 "'BPF_LD_[ABS|IND] needs the context (skb) in r6')"]
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
            raise self.fail(pc, f"invalid stack access: {size} bytes at fp{off:+d} "
                                f"(the frame is fp-{STACK_SIZE}..fp)")
        if off % size:
            raise self.fail(pc, f"misaligned stack access: {size} bytes at fp{off:+d}")
        return off

    def emit_ldx(self, pc: int, insn: Insn) -> list[str]:
        c, d, s, off = insn.code, insn.dst, insn.src, insn.off
        mode = c & 0xE0
        size = _SIZES[c & 0x18]
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
        return [f"r[{d}] = {fn}(r, r[{s}] + ({off}), {size}, {pc})"]

    def emit_store(self, pc: int, insn: Insn) -> list[str]:
        c, d, s, off, imm = insn.code, insn.dst, insn.src, insn.off, insn.imm
        cls = insn.cls
        mode = c & 0xE0
        size = _SIZES[c & 0x18]
        if cls == STX and mode == ATOMIC:
            self.check_reg(pc, d)
            self.check_reg(pc, s)
            if imm == BPF_LOAD_ACQ:
                self.check_reg(pc, d, write=True)
                return [f"r[{d}] = _load(r, r[{s}] + ({off}), {size}, {pc})"]
            if imm == BPF_STORE_REL:
                return [f"_store(r, r[{d}] + ({off}), {size}, r[{s}], {pc})"]
            if size not in (4, 8) or (imm & ~BPF_FETCH) not in _ATOMIC_OPS or \
                    imm in (0xE0, 0xF0):
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


_GEN_GLOBALS: dict = {
    "__builtins__": {"len": len, "int": int},
    "_RunError": _RunError,
    "_load": _load, "_loadsx": _loadsx, "_store": _store, "_atomic": _atomic,
    "_pkt_load": _pkt_load, "_bswap": _bswap,
    "_sdiv64": _sdiv64, "_smod64": _smod64, "_sdiv32": _sdiv32, "_smod32": _smod32,
    "_call_sub": _call_sub, "_ret_sub": _ret_sub,
    **{f"_U{n}": st.unpack_from for n, st in _U.items()},
    **{f"_S{n}": st.unpack_from for n, st in _S.items()},
    **{f"_P{n}": st.pack_into for n, st in _U.items()},
    **{f"_helper_{func_id}": fn for func_id, fn in _HELPERS.items()},
}


# --------------------------------------------------------------------------
# Programs
# --------------------------------------------------------------------------


class Program:
    """A decoded, checked and translated socket-filter program.

    ``seed`` seeds bpf_get_prandom_u32() (deterministic runs), ``clock``
    gives bpf_ktime_get_ns() (default: time.monotonic_ns), ``cpu`` is
    bpf_get_smp_processor_id(), ``budget`` the executed-instruction limit
    of one run.
    """

    def __init__(self, insns: bytes, *, budget: int = DEFAULT_BUDGET, seed: int = 0,
                 clock: Callable[[], int] = time.monotonic_ns, cpu: int = 0) -> None:
        self.insns = bytes(insns)
        self.decoded = decode(self.insns)
        self.budget = budget
        self.rng = random.Random(seed)
        self.clock = clock
        self.cpu = cpu
        compiler = _Compiler(self.decoded)
        self._blocks, self._lens = compiler.compile()
        self._stack_bytes = STACK_SIZE * (MAX_CALL_FRAMES if compiler.has_calls else 1)

    @classmethod
    def from_object(cls, data: bytes, name: str = "object", **kwargs) -> "Program":
        """The program ``evl net -F`` would install from an object file."""
        from evl_net.kernel import bpfobj

        return cls(bpfobj.first_socket_filter(data, name).insns, **kwargs)

    def __len__(self) -> int:
        return len(self.decoded)

    def reseed(self, seed: int) -> None:
        self.rng.seed(seed)

    def disasm(self) -> list[str]:
        return [f"{pc:4}: {disasm(insn, pc)}" for pc, insn in enumerate(self.decoded) if insn]

    def execute(self, frame: bytes, skb: SkbContext | None = None) -> int:
        """Run the program on frame; the full 64-bit r0 at exit."""
        if skb is None:
            skb = SkbContext.for_frame(frame)
        if skb.vlan_offloaded:
            frame = frame[:12] + frame[16:]
        if len(frame) < ETH_HLEN:
            raise ValueError(f"a {len(frame)}-byte frame has no Ethernet header")
        r = [0, CTX_BASE, 0, 0, 0, 0, 0, 0, 0, 0, STACK_TOP,
             bytearray(self._stack_bytes), frame, None, skb, [], self]
        blocks = self._blocks
        lens = self._lens
        left = self.budget
        pc = 0
        try:
            while pc >= 0:
                left -= lens[pc]
                if left < 0:
                    raise BudgetExceededError(
                        f"instruction budget of {self.budget} exhausted (endless loop?)",
                        pc, disasm(self.decoded[pc], pc))
                pc = blocks[pc](r)
        except _RunError as exc:
            raise exc.cls(exc.message, exc.pc, disasm(self.decoded[exc.pc], exc.pc)) from None
        return r[0]

    def run(self, frame: bytes, skb: SkbContext | None = None) -> int:
        """The program's return value (u32) on ``frame``: the RX verdict.

        ``frame`` starts at the Ethernet header; ``skb`` defaults to
        ``SkbContext.for_frame(frame)``.
        """
        return self.execute(frame, skb) & M32
