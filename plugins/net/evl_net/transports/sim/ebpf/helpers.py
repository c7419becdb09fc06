"""The BPF helper functions a socket filter may call, by id.

The code generator refuses the ids of helpers not implemented when the
program is decoded (:class:`~.errors.UnsupportedError`); the verifier has
refused them already, saying the simulator lacks them.  Each helper takes the run state and
the calling pc, reads its arguments from r1-r5 and returns r0:

* bpf_skb_load_bytes (#26) at an offset from the network header, and
  bpf_skb_load_bytes_relative (#68, ``BPF_HDR_START_MAC``/``_NET``): a failed
  load zeroes the buffer and returns -EFAULT;
* bpf_get_prandom_u32 (#7): the Program's seedable, deterministic generator;
* bpf_ktime_get_ns (#5, also boot/coarse/tai #125/#160/#208): the Program's clock;
* bpf_get_smp_processor_id (#8): the Program's cpu; bpf_get_numa_node_id (#42): 0;
* bpf_get_socket_cookie (#46): ``SkbContext.socket_cookie`` (0 on the RX
  path, where no socket owns the skb), bpf_get_socket_uid (#47): the
  overflow uid 65534 for the same reason;
* bpf_jiffies64 (#118): the Program's clock at ``Program.hz`` ticks a second,
  from the kernel's INITIAL_JIFFIES (5 minutes before the 32-bit wrap);
* bpf_trace_printk (#6): the kernel's checks of the format (bpf_bprintf_prepare(),
  at most 3 conversions of the subset below, -EINVAL for anything else), the
  text as bstr_printf() formats it, and one line per call, in trace_pipe's
  format, to the run's trace sink (``Program.run(..., trace=)``).

* bpf_trace_vprintk (#177): the same with up to 12 u64 arguments in an
  array (what ``bpf_printk()`` uses for more than 3); bpf_snprintf (#165):
  the same text into a buffer, the format a string of ``.rodata``;
* map helpers (#1-#3, #195), ring buffers (#130-#134) on the maps of
  :mod:`.maps`, found from the map pointer in r1;
* bpf_loop (#181) and bpf_for_each_map_elem (#164) run their callback
  through :meth:`Program.callback` (a bpf-to-bpf call run to its exit).
* the current task (#14-#16, #35, #80, #123): on the RX path, the CPU's
  idle task ("swapper/0", pid 0, uid 0, the root cgroup);
* bpf_strtol/strtoul (#105/#106) and bpf_strncmp (#182) as the kernel's
  __bpf_strtoull() and strncmp(); bpf_probe_read_kernel[_str] (#113/#115)
  read the simulator's memory (stack, maps: anything else faults, where the
  kernel would read its own), bpf_probe_read_user[_str] (#112/#114) always
  fault (the idle task has no user memory), zeroing the buffer: -EFAULT.

The granted helpers still unimplemented need objects the simulator lacks
(tail calls and program arrays, perf events, BTF-typed map values for spin
locks, timers and kptrs, dynptrs, task/cgroup storage, kfuncs...): the
verifier refuses a call to one at install time, saying so.

:data:`SOCKET_FILTER_HELPERS` is the table the verifier (:mod:`.verifier`)
checks calls against: every helper the kernel grants a socket filter loaded
by root (Linux 6.18, ``sk_filter_func_proto()`` + ``bpf_base_func_proto()``),
with its prototype as far as the verifier needs it, and the implementation
when the simulator has one.  Implementing a helper is one entry: its
function, argument kinds and return kind.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from .errors import RunError
from .isa import M32, M64
from .maps import E2BIG, BpfMap, RingBuf, map_of_pointer
from .memory import CTX_BASE, MAPS, PKT, PROG, SKB, TRACE, buffer, read_bytes, write_bytes
from .skb import ETH_HLEN

EFAULT = 14
EINVAL = 22
OVERFLOW_UID = 65534


def _check_skb_arg(r: list, pc: int, name: str) -> None:
    if r[1] != CTX_BASE:
        raise RunError(pc, f"{name} expects the context (skb) in r1")


def _copy_pkt(r: list, pc: int, name: str, start: int, offset: int) -> int:
    n = r[4] & M32
    stk, o = buffer(r, r[3], n, pc, True, name)
    frame = r[PKT]
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


def _h_jiffies64(r: list, pc: int) -> int:
    prog = r[PROG]
    hz = prog.hz
    # INITIAL_JIFFIES: jiffies start 300 s before the 32-bit counter wraps, so that wrap bugs show early.
    return ((1 << 32) - 300 * hz + prog.clock() * hz // 1_000_000_000) & M64


# --- bpf_trace_printk -------------------------------------------------------------

#: bstr_printf()'s buffer (MAX_BPRINTF_BUF): longer output is cut to its size - 1.
MAX_BPRINTF_BUF = 1024
#: bpf_trace_printk() passes r3-r5: at most 3 conversions (MAX_TRACE_PRINTK_VARARGS).
MAX_TRACE_PRINTK_VARARGS = 3
#: Arguments of bpf_trace_vprintk() and bpf_snprintf() (MAX_BPRINTF_VARARGS).
MAX_BPRINTF_VARARGS = 12
#: How the line starts in trace_pipe: the task that was current and its pid, then
#: the flags (irqs-off, need-resched, hard/softirq, preempt depth, migrate-disable).
#: Frames reach the EVL RX hook from the NIC's NAPI poll, in softirq context,
#: which interrupts whatever task is current, most often the idle task: the
#: kernel shows ``<idle>-0`` there, never the task that sent the frame (a
#: real NIC's RX knows none; an injected frame must not show ``evl``).  The
#: flags are those of a filter run (BPF_PROG_TEST_RUN on Linux 6.18 writes
#: ``b..11``: BH disabled from a task, preempt depth 1, migration disabled)
#: with ``s`` (serving a softirq) in place of ``b``, as in NAPI.
TRACE_TASK = "<idle>"
TRACE_PID = 0
TRACE_FLAGS = "..s11"

_PRINT = frozenset(range(0x20, 0x7F)) | frozenset(b" \t\n\v\f\r")
_PUNCT = frozenset(b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_FLAGS = frozenset(b"0+- ")


class _FormatError(Exception):
    """The format is one bpf_bprintf_prepare() refuses (-EINVAL)."""


def _read_mem(r: list, a: int, n: int) -> bytes | None:
    """n bytes at address a if they are all readable (stack or map memory), else None (a faulting read)."""
    try:
        return read_bytes(r, a, n, -1, "read")
    except RunError:
        return None


def _read_str(r: list, a: int) -> str:
    """The NUL-terminated string at a, "" where the kernel's nofault copy faults.

    The stack and map memory (``.rodata`` literals) are readable here; the
    kernel would read any kernel address (a pointer into the context reads
    struct sk_buff, not __sk_buff): such pointers print as an empty string.
    """
    out = bytearray()
    while len(out) < MAX_BPRINTF_BUF:
        chunk = _read_mem(r, a + len(out), 1)
        if chunk is None or chunk == b"\0":
            break
        out += chunk
    return bytes(out).decode("latin-1")


def _ip(r: list, a: int, conv: str, compressed: bool) -> str:
    """%pI4 %pi4 %pI6 %pi6 (%pI6c): the address at a; zeros where reading it faults."""
    n = 4 if conv[1] == "4" else 16
    raw = _read_mem(r, a, n) or bytes(n)
    if n == 4:
        return ".".join((f"{b}" if conv[0] == "I" else f"{b:03d}") for b in raw)
    if compressed:
        return str(ipaddress.IPv6Address(raw))
    groups = [raw[k : k + 2].hex() for k in range(0, 16, 2)]
    return ":".join(groups) if conv[0] == "I" else "".join(groups)


def trace_format(r: list, fmt: bytes, args: tuple[int, ...]) -> str:
    """The text bpf_trace_printk() writes for fmt (up to its NUL) and args; _FormatError when refused.

    The checks are bpf_bprintf_prepare()'s: printable ASCII or space only; at
    most ``len(args)`` conversions, each of ``%[0+- ]*[1-9][0-9]*`` then
    ``d i u x X`` (with ``l``/``ll``), ``c``, ``s``, ``p`` (plain, ``K``,
    ``x``, ``s``/``S``/``B`` symbols, ``ks``/``us`` strings, ``i4 I4 i6 I6``
    addresses); ``%%`` is a percent sign.  ``%p`` and ``%pK`` print the raw
    pointer where the kernel prints a boot-time hash of it (16 zeros for
    NULL either way); symbols print as hex.
    """
    out: list[str] = []
    i = 0
    n = len(fmt)
    spec = 0
    while i < n:
        c = fmt[i]
        if c not in _PRINT:
            raise _FormatError
        if c != 0x25:  # '%'
            out.append(chr(c))
            i += 1
            continue
        if i + 1 < n and fmt[i + 1] == 0x25:
            out.append("%")
            i += 2
            continue
        if spec >= len(args):
            raise _FormatError
        arg = args[spec] & M64
        spec += 1
        j = i + 1
        while j < n and fmt[j] in _FLAGS:
            j += 1
        if j < n and 0x31 <= fmt[j] <= 0x39:
            j += 1
            while j < n and 0x30 <= fmt[j] <= 0x39:
                j += 1
        flags = fmt[i + 1 : j].decode()
        nxt = fmt[j + 1] if j + 1 < n else 0
        conv = chr(fmt[j]) if j < n else ""
        if conv == "p":
            if nxt == 0 or nxt in b" \t\n\v\f\r" or nxt in _PUNCT or nxt in b"KxsSB":
                if nxt in b"KxsSB":
                    j += 1
                # %p and %pK print a boot-time hash of the pointer in the kernel (zeros for NULL).
                text = f"{arg:#x}" if nxt in b"sSB" else f"{arg:016x}"
                out.append(("%" + flags + "s") % text)
                i = j + 1
                continue
            tail = fmt[j + 1 : j + 3]
            if tail in (b"ks", b"us"):
                out.append(("%" + flags + "s") % _read_str(r, arg))
                i = j + 3
                continue
            if len(tail) < 2 or tail[0] not in b"iI" or tail[1] not in b"46":
                raise _FormatError
            compressed = tail == b"I6" and fmt[j + 3 : j + 4] == b"c"
            out.append(_ip(r, arg, tail.decode(), compressed))
            i = j + 3 + int(compressed)
            continue
        if conv == "c":
            out.append(("%" + flags + "c") % (arg & 0xFF))
            i = j + 1
            continue
        if conv == "s":
            out.append(("%" + flags + "s") % _read_str(r, arg))
            i = j + 1
            continue
        bits = 32
        if conv == "l":
            bits = 64
            j += 1
            if j < n and fmt[j] == 0x6C:
                j += 1
            conv = chr(fmt[j]) if j < n else ""
        if conv not in ("d", "i", "u", "x", "X"):
            raise _FormatError
        v = arg & ((1 << bits) - 1)
        if conv in "di" and v >> (bits - 1):
            v -= 1 << bits
        out.append(("%" + flags + ("d" if conv in "diu" else conv)) % v)
        i = j + 1
    return "".join(out)


def format_ok(fmt: bytes, nargs: int) -> bool:
    """Whether bpf_bprintf_prepare() takes ``fmt`` with ``nargs`` arguments (the verifier's check of bpf_snprintf)."""
    r: list = [0] * (MAPS + 2)
    r[MAPS] = []
    try:
        trace_format(r, fmt, (0,) * nargs)  # zero arguments: %s and %pI4 read nothing
    except _FormatError:
        return False
    return True


def trace_line(text: str, cpu: int, ns: int) -> str:
    """One trace_pipe line for text, as the kernel prints a bpf_trace_printk event."""
    head = f"{TRACE_TASK:>16}-{TRACE_PID:<7} [{cpu:03d}] {TRACE_FLAGS} {ns // 1_000_000_000:5d}."
    return f"{head}{ns % 1_000_000_000 // 1000:06d}: bpf_trace_printk: {text}"


def _printk(r: list, pc: int, name: str, fmt_addr: int, size: int, args: tuple[int, ...]) -> int:
    raw = _read_mem(r, fmt_addr, size)
    if raw is None:  # the verifier checked it; a stray pointer reads as the kernel's fault would
        raise RunError(pc, f"{name}: format of {size} bytes at {fmt_addr:#x} is not readable")
    end = raw.find(0)
    if end < 0:
        return (-EINVAL) & M64
    try:
        text = trace_format(r, raw[:end], args)
    except _FormatError:
        return (-EINVAL) & M64
    written = len(text.encode("latin-1"))
    sink = r[TRACE]
    if sink is not None:
        prog = r[PROG]
        # The event holds a C string: a %c of 0 ends it (the return value still counts what follows).
        shown = text[: MAX_BPRINTF_BUF - 1].split("\0", 1)[0]
        # The event's output ends with a newline of its own: one the format ends with
        # shows as nothing more; others break the line, as they do in trace_pipe.
        if shown.endswith("\n"):
            shown = shown[:-1]
        first, *rest = shown.split("\n")
        sink(trace_line(first, prog.cpu, prog.clock() & M64))
        for more in rest:
            sink(more)
    return written


def _h_trace_printk(r: list, pc: int) -> int:
    return _printk(r, pc, "bpf_trace_printk", r[1], r[2] & M32, (r[3], r[4], r[5])[:MAX_TRACE_PRINTK_VARARGS])


def _u64_args(r: list, pc: int, name: str, addr: int, size: int) -> tuple[int, ...] | None:
    """The u64 array of bpf_trace_vprintk()/bpf_snprintf() arguments; None when the kernel refuses it."""
    if size % 8 or size > 8 * MAX_BPRINTF_VARARGS:
        return None
    if not size:
        return ()
    raw = read_bytes(r, addr, size, pc, name)
    return tuple(int.from_bytes(raw[k : k + 8], "little") for k in range(0, size, 8))


def _h_trace_vprintk(r: list, pc: int) -> int:
    args = _u64_args(r, pc, "bpf_trace_vprintk", r[3], r[4] & M32)
    if args is None:
        return (-EINVAL) & M64
    return _printk(r, pc, "bpf_trace_vprintk", r[1], r[2] & M32, args)


def _h_snprintf(r: list, pc: int) -> int:
    """bpf_snprintf(str, str_size, fmt, data, data_len): like snprintf, the length it would have written + 1."""
    out, size = r[1], r[2] & M32
    args = _u64_args(r, pc, "bpf_snprintf", r[4], r[5] & M32)
    if args is None:
        return (-EINVAL) & M64
    fmt = bytearray()
    while True:
        b = _read_mem(r, r[3] + len(fmt), 1)
        if b is None:
            raise RunError(pc, "bpf_snprintf: the format is not readable")
        if b == b"\0":
            break
        fmt += b
    try:
        text = trace_format(r, bytes(fmt), args).encode("latin-1")
    except _FormatError:
        return (-EINVAL) & M64
    if size:
        data = text[: size - 1] + b"\0"
        write_bytes(r, out, data, pc, "bpf_snprintf")
    return len(text) + 1


# --- maps ------------------------------------------------------------------------------


def _map(r: list, pc: int) -> BpfMap:
    return map_of_pointer(r[MAPS], r[1], pc)


def _h_map_lookup(r: list, pc: int) -> int:
    m = _map(r, pc)
    return m.lookup(read_bytes(r, r[2], m.ksize, pc, "bpf_map_lookup_elem key"), r[PROG].cpu)


def _h_map_lookup_percpu(r: list, pc: int) -> int:
    m = _map(r, pc)
    cpu = r[3] & M32
    if cpu >= m.ncpus:
        return 0
    return m.lookup(read_bytes(r, r[2], m.ksize, pc, "bpf_map_lookup_percpu_elem key"), cpu)


def _h_map_update(r: list, pc: int) -> int:
    m = _map(r, pc)
    key = read_bytes(r, r[2], m.ksize, pc, "bpf_map_update_elem key")
    value = read_bytes(r, r[3], m.vsize, pc, "bpf_map_update_elem value")
    return m.update(key, value, r[4] & M64, r[PROG].cpu) & M64


def _h_map_delete(r: list, pc: int) -> int:
    m = _map(r, pc)
    return m.delete(read_bytes(r, r[2], m.ksize, pc, "bpf_map_delete_elem key")) & M64


def _ringbuf(r: list, pc: int) -> RingBuf:
    m = _map(r, pc)
    if not isinstance(m, RingBuf):
        raise RunError(pc, f"map '{m.defn.name}' is not a ring buffer")
    return m


def _h_ringbuf_output(r: list, pc: int) -> int:
    rb = _ringbuf(r, pc)
    size = r[3] & M64
    if r[4] & ~3:  # BPF_RB_NO_WAKEUP | BPF_RB_FORCE_WAKEUP
        return (-EINVAL) & M64
    data = read_bytes(r, r[2], size, pc, "bpf_ringbuf_output") if size else b""
    return rb.output(data) & M64


def _h_ringbuf_reserve(r: list, pc: int) -> int:
    rb = _ringbuf(r, pc)
    if r[3]:
        return 0
    return rb.reserve(r[2] & M64)


def _release(r: list, pc: int, submit: bool) -> int:
    addr = r[1]
    for m in r[MAPS]:
        if isinstance(m, RingBuf) and m.release(addr, submit):
            return 0
    raise RunError(pc, f"{addr:#x} is not a reserved ring buffer record")


def _h_ringbuf_submit(r: list, pc: int) -> int:
    return _release(r, pc, True)


def _h_ringbuf_discard(r: list, pc: int) -> int:
    return _release(r, pc, False)


def _h_ringbuf_query(r: list, pc: int) -> int:
    return _ringbuf(r, pc).query(r[2] & M64)


# --- the current task, strings, kernel and user memory -----------------------------------

#: The task a socket filter on the RX path runs in: the CPU's idle task (the trace lines' <idle>-0).
IDLE_COMM = b"swapper/0"
#: What bpf_get_current_task() returns for it: an address in the kernel image (init_task's is one).
IDLE_TASK = 0xFFFF_FFFF_8260_0000
ERANGE = 34
_SPACES = frozenset(b" \t\n\v\f\r\xa0")  # the kernel's isspace() (its ctype marks 0xa0 too)


def _h_zero(r: list, pc: int) -> int:
    """bpf_get_current_pid_tgid(), _uid_gid(): pid 0 of the idle task, uid/gid 0."""
    return 0


def _h_current_comm(r: list, pc: int) -> int:
    size = r[2] & M32
    write_bytes(r, r[1], (IDLE_COMM[: size - 1] + bytes(size))[:size], pc, "bpf_get_current_comm")
    return 0


def _h_current_task(r: list, pc: int) -> int:
    return IDLE_TASK


def _h_cgroup_id(r: list, pc: int) -> int:
    """The idle task is in the root cgroup: id 1."""
    return 1


def _h_ancestor_cgroup_id(r: list, pc: int) -> int:
    return 1 if r[1] == 0 else 0  # the root is its only ancestor, at level 0


def _strtoull(raw: bytes, flags: int) -> tuple[int, int, bool]:
    """__bpf_strtoull(): (consumed or -errno, value, negative)."""
    base = flags & 0x1F
    if not raw or base not in (0, 8, 10, 16) or flags & ~0x1F:
        return -EINVAL, 0, False
    i = 0
    while i < len(raw) and raw[i] in _SPACES:
        i += 1
    negative = i < len(raw) and raw[i] == 0x2D
    i += negative
    if i == len(raw):
        return -EINVAL, 0, negative
    text = raw[i : i + 63].split(b"\0", 1)[0]
    j = 0
    low = text.lower()
    if base == 0:
        base = (
            (16 if low[1:2] == b"x" and low[2:3].isalnum() and low[2:3] in b"0123456789abcdef" else 8)
            if low[:1] == b"0"
            else 10
        )
    if base == 16 and low[:2] == b"0x":
        j = 2
    digits = "0123456789abcdef"[:base].encode()
    start, value, overflow = j, 0, False
    while j < len(low) and low[j] in digits:
        value = value * base + digits.index(low[j])
        overflow |= value >> 64 != 0
        value &= M64
        j += 1
    if overflow:
        return -ERANGE, 0, negative
    if j == start:
        return -EINVAL, 0, negative
    return i + j, value, negative


def _strto(r: list, pc: int, signed: bool) -> int:
    name = "bpf_strtol" if signed else "bpf_strtoul"
    raw = read_bytes(r, r[1], r[2] & M32, pc, name)
    consumed, value, negative = _strtoull(raw, r[3] & M64)
    if consumed < 0:
        return consumed & M64
    if negative:
        if not signed:
            return (-EINVAL) & M64
        if value > 1 << 63:
            return (-ERANGE) & M64
        value = -value & M64
    elif signed and value >= 1 << 63:
        return (-ERANGE) & M64
    write_bytes(r, r[4], value.to_bytes(8, "little"), pc, name)
    return consumed


def _h_strtol(r: list, pc: int) -> int:
    return _strto(r, pc, True)


def _h_strtoul(r: list, pc: int) -> int:
    return _strto(r, pc, False)


def _h_strncmp(r: list, pc: int) -> int:
    """bpf_strncmp(s1, s1_sz, s2): the kernel's strncmp() of at most s1_sz bytes: -1, 0 or 1."""
    n = r[2] & M32
    s1 = read_bytes(r, r[1], n, pc, "bpf_strncmp")
    for k in range(n):
        c2 = (_read_mem(r, r[3] + k, 1) or b"\0")[0]
        c1 = s1[k]
        if c1 != c2:
            return 1 if c1 > c2 else M64  # -1
        if not c1:
            break
    return 0


def _probe_read(r: list, pc: int, kernel: bool, string: bool) -> int:
    """bpf_probe_read_{kernel,user}[_str](): kernel memory is the simulator's (stack, maps); there is no user
    memory on the RX path (the idle task has none).  A fault zeroes the buffer: -EFAULT."""
    size = r[2] & M32
    if not size:
        return 0
    out: bytes | None = None
    if kernel and not string:
        out = _read_mem(r, r[3], size)
    elif kernel:  # strncpy_from_kernel_nofault(): up to size bytes, the last one a NUL
        copied = bytearray()
        while len(copied) < size:
            b = _read_mem(r, r[3] + len(copied), 1)
            if b is None:
                break
            copied += b
            if b == b"\0":
                out = bytes(copied)
                break
        else:
            out = bytes(copied[:-1]) + b"\0"
    if out is None:
        write_bytes(r, r[1], bytes(size), pc, "bpf_probe_read")
        return (-EFAULT) & M64
    write_bytes(r, r[1], out, pc, "bpf_probe_read")
    return len(out) if string else 0


def _h_probe_read_user(r: list, pc: int) -> int:
    return _probe_read(r, pc, False, False)


def _h_probe_read_kernel(r: list, pc: int) -> int:
    return _probe_read(r, pc, True, False)


def _h_probe_read_user_str(r: list, pc: int) -> int:
    return _probe_read(r, pc, False, True)


def _h_probe_read_kernel_str(r: list, pc: int) -> int:
    return _probe_read(r, pc, True, True)


# --- callbacks -------------------------------------------------------------------------

BPF_MAX_LOOPS = 1 << 23


def _h_loop(r: list, pc: int) -> int:
    """bpf_loop(nr_loops, callback, ctx, flags): calls callback(i, ctx) until it returns 1; the calls made."""
    n, fn, ctx, flags = r[1] & M32, r[2], r[3], r[4]
    if flags:
        return (-EINVAL) & M64
    if r[1] > BPF_MAX_LOOPS:
        return (-E2BIG) & M64
    prog = r[PROG]
    for i in range(n):
        if prog.callback(r, fn, (i, ctx, 0, 0, 0), pc) & 1:
            return i + 1
    return n


def _h_for_each_map_elem(r: list, pc: int) -> int:
    """bpf_for_each_map_elem(map, callback, ctx, flags): callback(map, key, value, ctx) per element."""
    m = _map(r, pc)
    mapptr, fn, ctx = r[1], r[2], r[3]
    if r[4]:
        return (-EINVAL) & M64
    prog = r[PROG]
    done = 0
    for key, value in m.elements(prog.cpu):
        done += 1
        if prog.callback(r, fn, (mapptr, key, value, ctx, 0), pc) & 1:
            break
    return done


# Argument kinds of a helper prototype (the kernel's enum bpf_arg_type, the
# part the verifier checks for the helpers the simulator implements).
ARG_ANYTHING = "anything"  # any initialised value
ARG_CTX = "ctx"  # the unmodified context pointer (r1 at entry)
ARG_UNINIT_MEM = "uninit_mem"  # a buffer (stack, map value, ring buffer record) the helper fills; size next
ARG_MEM = "mem"  # a buffer the helper reads (read-only map values too); its size is the next argument
ARG_MEM_OR_NULL = "mem_or_null"  # likewise, or NULL (then the size must be 0)
ARG_CONST_SIZE = "const_size"  # the size of the buffer before it: bounded, not zero
ARG_CONST_SIZE_OR_ZERO = "const_size_or_zero"  # likewise, zero allowed
ARG_MAP = "map"  # a map (lddw of a map): ARG_CONST_MAP_PTR
ARG_MAP_KEY = "map_key"  # a readable buffer of the map's key size
ARG_MAP_VALUE = "map_value"  # a readable buffer of the map's value size
ARG_UNINIT_MAP_VALUE = "uninit_map_value"  # a writable buffer of the map's value size
ARG_FUNC = "func"  # a callback (lddw of a function)
ARG_STACK_OR_NULL = "stack_or_null"  # the callback's context: a stack pointer, or NULL
ARG_ALLOC_SIZE = "alloc_size"  # a known constant size (ARG_CONST_ALLOC_SIZE_OR_ZERO)
ARG_RINGBUF_MEM = "ringbuf_mem"  # a ring buffer record, unmodified, released by the call
ARG_CONST_STR = "const_str"  # a NUL-terminated string in a read-only map (.rodata)
ARG_OUT_LONG = "out_long"  # 8 aligned bytes the helper writes (ARG_PTR_TO_FIXED_SIZE_MEM | MEM_UNINIT)
# Return kinds (enum bpf_return_type).
RET_INTEGER = "integer"
RET_MAP_VALUE_OR_NULL = "map_value_or_null"
RET_RINGBUF_MEM_OR_NULL = "ringbuf_mem_or_null"
RET_OTHER = "other"  # other pointers: only in prototypes not modelled


@dataclass(frozen=True)
class HelperProto:
    """One helper as the verifier sees it (struct bpf_func_proto).

    ``args`` is None while the prototype is not modelled, which is the case
    exactly when the simulator does not implement the helper (``fn`` None):
    the verifier then refuses the call saying so.
    """

    name: str
    args: tuple[str, ...] | None = None
    ret: str = RET_INTEGER
    gpl_only: bool = False
    might_sleep: bool = False
    fn: Callable[[list, int], int] | None = None
    maps: frozenset[int] | None = None  # the map types it accepts (check_map_func_compatibility()), None: any
    callback: str | None = None  # "loop" / "for_each": the callback's arguments


_NO_ARGS: tuple[str, ...] = ()
# Map types (enum bpf_map_type) by what the helpers accept.
_KV_MAPS = frozenset({1, 2, 5, 6, 9, 10})  # hash, array, percpu hash/array, LRU hash, LRU percpu hash
_PERCPU_MAPS = frozenset({5, 6, 10})
_QUEUES = frozenset({22, 23})  # queue, stack: not simulated, so these helpers are always refused
_RINGBUF = frozenset({27})
_LOAD_BYTES = (ARG_CTX, ARG_ANYTHING, ARG_UNINIT_MEM, ARG_CONST_SIZE)
_STRTOX = (ARG_MEM, ARG_CONST_SIZE, ARG_ANYTHING, ARG_OUT_LONG)
_PROBE_READ = (ARG_UNINIT_MEM, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING)

#: What a socket filter loaded by root may call on Linux 6.18, by helper id
#: (probed with BPF_PROG_LOAD: any other id gets "program of this type cannot
#: use helper"); implemented helpers carry their function and prototype.
SOCKET_FILTER_HELPERS: dict[int, HelperProto] = {
    1: HelperProto("map_lookup_elem", (ARG_MAP, ARG_MAP_KEY), RET_MAP_VALUE_OR_NULL, fn=_h_map_lookup, maps=_KV_MAPS),
    2: HelperProto(
        "map_update_elem", (ARG_MAP, ARG_MAP_KEY, ARG_MAP_VALUE, ARG_ANYTHING), fn=_h_map_update, maps=_KV_MAPS
    ),
    3: HelperProto("map_delete_elem", (ARG_MAP, ARG_MAP_KEY), fn=_h_map_delete, maps=_KV_MAPS),
    5: HelperProto("ktime_get_ns", _NO_ARGS, fn=_h_ktime),
    # arg3-arg5 are not in the kernel's prototype: not checked, whatever they hold.
    6: HelperProto("trace_printk", (ARG_MEM, ARG_CONST_SIZE), gpl_only=True, fn=_h_trace_printk),
    7: HelperProto("get_prandom_u32", _NO_ARGS, fn=_h_prandom),
    8: HelperProto("get_smp_processor_id", _NO_ARGS, fn=_h_cpu),
    12: HelperProto("tail_call"),
    14: HelperProto("get_current_pid_tgid", _NO_ARGS, fn=_h_zero),
    15: HelperProto("get_current_uid_gid", _NO_ARGS, fn=_h_zero),
    16: HelperProto("get_current_comm", (ARG_UNINIT_MEM, ARG_CONST_SIZE), fn=_h_current_comm),
    17: HelperProto("get_cgroup_classid"),
    22: HelperProto("perf_event_read", gpl_only=True),
    25: HelperProto("perf_event_output", gpl_only=True),
    26: HelperProto("skb_load_bytes", _LOAD_BYTES, fn=_h_skb_load_bytes),
    35: HelperProto("get_current_task", _NO_ARGS, gpl_only=True, fn=_h_current_task),
    37: HelperProto("current_task_under_cgroup"),
    42: HelperProto("get_numa_node_id", _NO_ARGS, fn=_h_numa),
    46: HelperProto("get_socket_cookie", (ARG_CTX,), fn=_h_cookie),
    47: HelperProto("get_socket_uid", (ARG_CTX,), fn=_h_uid),
    55: HelperProto("perf_event_read_value", gpl_only=True),
    68: HelperProto("skb_load_bytes_relative", (*_LOAD_BYTES, ARG_ANYTHING), fn=_h_skb_load_bytes_relative),
    80: HelperProto("get_current_cgroup_id", _NO_ARGS, fn=_h_cgroup_id),
    87: HelperProto("map_push_elem", (ARG_MAP, ARG_MAP_VALUE, ARG_ANYTHING), maps=_QUEUES),
    88: HelperProto("map_pop_elem", (ARG_MAP, ARG_UNINIT_MAP_VALUE), maps=_QUEUES),
    89: HelperProto("map_peek_elem", (ARG_MAP, ARG_UNINIT_MAP_VALUE), maps=_QUEUES),
    93: HelperProto("spin_lock"),
    94: HelperProto("spin_unlock"),
    105: HelperProto("strtol", _STRTOX, fn=_h_strtol),
    106: HelperProto("strtoul", _STRTOX, fn=_h_strtoul),
    109: HelperProto("send_signal"),
    112: HelperProto("probe_read_user", _PROBE_READ, gpl_only=True, fn=_h_probe_read_user),
    113: HelperProto("probe_read_kernel", _PROBE_READ, gpl_only=True, fn=_h_probe_read_kernel),
    114: HelperProto("probe_read_user_str", _PROBE_READ, gpl_only=True, fn=_h_probe_read_user_str),
    115: HelperProto("probe_read_kernel_str", _PROBE_READ, gpl_only=True, fn=_h_probe_read_kernel_str),
    117: HelperProto("send_signal_thread"),
    118: HelperProto("jiffies64", _NO_ARGS, fn=_h_jiffies64),
    120: HelperProto("get_ns_current_pid_tgid"),
    122: HelperProto("get_netns_cookie"),
    123: HelperProto("get_current_ancestor_cgroup_id", (ARG_ANYTHING,), fn=_h_ancestor_cgroup_id),
    125: HelperProto("ktime_get_boot_ns", _NO_ARGS, fn=_h_ktime),
    130: HelperProto(
        "ringbuf_output", (ARG_MAP, ARG_MEM, ARG_CONST_SIZE_OR_ZERO, ARG_ANYTHING), fn=_h_ringbuf_output, maps=_RINGBUF
    ),
    131: HelperProto(
        "ringbuf_reserve",
        (ARG_MAP, ARG_ALLOC_SIZE, ARG_ANYTHING),
        RET_RINGBUF_MEM_OR_NULL,
        fn=_h_ringbuf_reserve,
        maps=_RINGBUF,
    ),
    132: HelperProto("ringbuf_submit", (ARG_RINGBUF_MEM, ARG_ANYTHING), fn=_h_ringbuf_submit),
    133: HelperProto("ringbuf_discard", (ARG_RINGBUF_MEM, ARG_ANYTHING), fn=_h_ringbuf_discard),
    134: HelperProto("ringbuf_query", (ARG_MAP, ARG_ANYTHING), fn=_h_ringbuf_query, maps=_RINGBUF),
    136: HelperProto("skc_to_tcp6_sock", ret=RET_OTHER),
    137: HelperProto("skc_to_tcp_sock", ret=RET_OTHER),
    138: HelperProto("skc_to_tcp_timewait_sock", ret=RET_OTHER),
    139: HelperProto("skc_to_tcp_request_sock", ret=RET_OTHER),
    140: HelperProto("skc_to_udp6_sock", ret=RET_OTHER),
    141: HelperProto("get_task_stack"),
    148: HelperProto("copy_from_user", might_sleep=True),
    149: HelperProto("snprintf_btf"),
    153: HelperProto("per_cpu_ptr", ret=RET_OTHER),
    154: HelperProto("this_cpu_ptr", ret=RET_OTHER),
    156: HelperProto("task_storage_get", ret=RET_OTHER),
    157: HelperProto("task_storage_delete"),
    158: HelperProto("get_current_task_btf", ret=RET_OTHER, gpl_only=True),
    160: HelperProto("ktime_get_coarse_ns", _NO_ARGS, fn=_h_ktime),
    164: HelperProto(
        "for_each_map_elem",
        (ARG_MAP, ARG_FUNC, ARG_STACK_OR_NULL, ARG_ANYTHING),
        fn=_h_for_each_map_elem,
        maps=_KV_MAPS,
        callback="for_each",
    ),
    165: HelperProto(
        "snprintf",
        (ARG_MEM_OR_NULL, ARG_CONST_SIZE_OR_ZERO, ARG_CONST_STR, ARG_MEM_OR_NULL, ARG_CONST_SIZE_OR_ZERO),
        gpl_only=True,
        fn=_h_snprintf,
    ),
    169: HelperProto("timer_init", gpl_only=True),
    170: HelperProto("timer_set_callback", gpl_only=True),
    171: HelperProto("timer_start", gpl_only=True),
    172: HelperProto("timer_cancel", gpl_only=True),
    175: HelperProto("task_pt_regs", ret=RET_OTHER, gpl_only=True),
    176: HelperProto("get_branch_snapshot", gpl_only=True),
    177: HelperProto(
        "trace_vprintk",
        (ARG_MEM, ARG_CONST_SIZE, ARG_MEM_OR_NULL, ARG_CONST_SIZE_OR_ZERO),
        gpl_only=True,
        fn=_h_trace_vprintk,
    ),
    178: HelperProto("skc_to_unix_sock", ret=RET_OTHER),
    180: HelperProto("find_vma"),
    181: HelperProto("loop", (ARG_ANYTHING, ARG_FUNC, ARG_STACK_OR_NULL, ARG_ANYTHING), fn=_h_loop, callback="loop"),
    182: HelperProto("strncmp", (ARG_MEM, ARG_CONST_SIZE, ARG_CONST_STR), fn=_h_strncmp),
    191: HelperProto("copy_from_user_task", gpl_only=True, might_sleep=True),
    194: HelperProto("kptr_xchg", ret=RET_OTHER),
    195: HelperProto(
        "map_lookup_percpu_elem",
        (ARG_MAP, ARG_MAP_KEY, ARG_ANYTHING),
        RET_MAP_VALUE_OR_NULL,
        fn=_h_map_lookup_percpu,
        maps=_PERCPU_MAPS,
    ),
    196: HelperProto("skc_to_mptcp_sock", ret=RET_OTHER),
    197: HelperProto("dynptr_from_mem"),
    198: HelperProto("ringbuf_reserve_dynptr"),
    199: HelperProto("ringbuf_submit_dynptr"),
    200: HelperProto("ringbuf_discard_dynptr"),
    201: HelperProto("dynptr_read"),
    202: HelperProto("dynptr_write"),
    203: HelperProto("dynptr_data", ret=RET_OTHER),
    208: HelperProto("ktime_get_tai_ns", _NO_ARGS, fn=_h_ktime),
    209: HelperProto("user_ringbuf_drain"),
    210: HelperProto("cgrp_storage_get", ret=RET_OTHER),
    211: HelperProto("cgrp_storage_delete"),
}

#: The implemented helpers: id -> fn(run state, pc) -> r0.
HELPERS: dict[int, Callable[[list, int], int]] = {
    func_id: proto.fn for func_id, proto in SOCKET_FILTER_HELPERS.items() if proto.fn is not None
}
