"""The BPF helper functions a socket filter may call, by id.

Only helpers that make sense without maps on an RX skb are implemented; the
code generator refuses every other id when the program is decoded
(:class:`~.errors.UnsupportedError`).  Each helper takes the run state and
the calling pc, reads its arguments from r1-r5 and returns r0:

* bpf_skb_load_bytes (#26) at an offset from the network header, and
  bpf_skb_load_bytes_relative (#68, ``BPF_HDR_START_MAC``/``_NET``): a failed
  load zeroes the buffer and returns -EFAULT;
* bpf_get_prandom_u32 (#7): the Program's seedable, deterministic generator;
* bpf_ktime_get_ns (#5, also boot/coarse/tai #125/#160/#208): the Program's clock;
* bpf_get_smp_processor_id (#8): the Program's cpu; bpf_get_numa_node_id (#42): 0;
* bpf_get_socket_cookie (#46): ``SkbContext.socket_cookie`` (0 on the RX
  path, where no socket owns the skb), bpf_get_socket_uid (#47): the
  overflow uid 65534 for the same reason.
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import RunError
from .isa import M32, M64
from .memory import CTX_BASE, PKT, PROG, SKB, STACK_SIZE, STACK_TOP, STK
from .skb import ETH_HLEN

EFAULT = 14
OVERFLOW_UID = 65534


def _check_skb_arg(r: list, pc: int, name: str) -> None:
    if r[1] != CTX_BASE:
        raise RunError(pc, f"{name} expects the context (skb) in r1")


def _stack_buffer(r: list, a: int, n: int, pc: int, name: str) -> int:
    fp = r[10]
    if not (fp - STACK_SIZE <= a and a + n <= STACK_TOP) or n <= 0:
        raise RunError(pc, f"{name}: buffer of {n} bytes at {a:#x} is not within the stack")
    return a - STACK_TOP + len(r[STK])


def _copy_pkt(r: list, pc: int, name: str, start: int, offset: int) -> int:
    n = r[4] & M32
    o = _stack_buffer(r, r[3], n, pc, name)
    frame = r[PKT]
    stk = r[STK]
    pos = start + offset
    if offset <= 0xFFFF and start >= 0 and pos + n <= len(frame):
        stk[o : o + n] = frame[pos : pos + n]
        return 0
    stk[o : o + n] = bytes(n)
    return (-EFAULT) & M64


def _h_skb_load_bytes(r: list, pc: int) -> int:
    _check_skb_arg(r, pc, "bpf_skb_load_bytes")
    return _copy_pkt(r, pc, "bpf_skb_load_bytes", ETH_HLEN, r[2] & M32)


def _h_skb_load_bytes_relative(r: list, pc: int) -> int:
    _check_skb_arg(r, pc, "bpf_skb_load_bytes_relative")
    start = {0: 0, 1: ETH_HLEN}.get(r[5] & M32, -1)  # BPF_HDR_START_MAC / _NET
    return _copy_pkt(r, pc, "bpf_skb_load_bytes_relative", start, r[2] & M32)


def _h_ktime(r: list, pc: int) -> int:
    return r[PROG].clock() & M64


def _h_prandom(r: list, pc: int) -> int:
    return r[PROG].rng.getrandbits(32)


def _h_cpu(r: list, pc: int) -> int:
    return r[PROG].cpu & M32


def _h_numa(r: list, pc: int) -> int:
    return 0


def _h_cookie(r: list, pc: int) -> int:
    _check_skb_arg(r, pc, "bpf_get_socket_cookie")
    return r[SKB].socket_cookie & M64


def _h_uid(r: list, pc: int) -> int:
    _check_skb_arg(r, pc, "bpf_get_socket_uid")
    return OVERFLOW_UID


#: The implemented helpers: id -> fn(run state, pc) -> r0.
HELPERS: dict[int, Callable[[list, int], int]] = {
    5: _h_ktime,
    7: _h_prandom,
    8: _h_cpu,
    26: _h_skb_load_bytes,
    42: _h_numa,
    46: _h_cookie,
    47: _h_uid,
    68: _h_skb_load_bytes_relative,
    125: _h_ktime,
    160: _h_ktime,
    208: _h_ktime,
}
