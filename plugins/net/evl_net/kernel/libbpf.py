"""Load an eBPF object with the system libbpf (``libbpf.so.1``) through ctypes.

This is what libevl's ``evl_net_set_filter()`` does before it hands the
first program's fd to ``EVL_NDEVIOC_SETRXEBPF``: open the object, load it
into the kernel (verifier included), take the first program.  Only ``-F``
with an object needs it, so ctypes and libbpf are imported here and nowhere
on the other paths.

Usage::

    with libbpf.load(data, "netrx.o") as prog:
        ioctl(devfd, EVL_NDEVIOC_SETRXEBPF, prog.fd)   # the object is closed after

The program fd stays valid for the whole ``with`` block; closing the object
afterwards drops libbpf's reference, the kernel keeps its own (the filter
holds the program).

Failures are OSError with the errno libbpf or the kernel gave (libbpf's own
codes 4000+ become EINVAL) and a ``.detail`` explanation; a missing libbpf is
``LibbpfUnavailable`` (ELIBACC).
"""

from __future__ import annotations

import errno
import os
from typing import Any, ClassVar

LIBRARY = "libbpf.so.1"
#: Environment variable naming another libbpf shared object.
LIBRARY_ENV = "EVL_NET_LIBBPF"

#: enum bpf_prog_type values used in messages.
PROG_TYPES = {
    0: "unspec",
    1: "socket_filter",
    2: "kprobe",
    3: "sched_cls",
    4: "sched_act",
    5: "tracepoint",
    6: "xdp",
    7: "perf_event",
    8: "cgroup_skb",
    9: "cgroup_sock",
    10: "lwt_in",
    11: "lwt_out",
    12: "lwt_xmit",
    13: "sock_ops",
    14: "sk_skb",
    15: "cgroup_device",
    16: "sk_msg",
    17: "raw_tracepoint",
    18: "cgroup_sock_addr",
    19: "lwt_seg6local",
    20: "lirc_mode2",
    21: "sk_reuseport",
    22: "flow_dissector",
    23: "cgroup_sysctl",
    24: "raw_tracepoint_writable",
    25: "cgroup_sockopt",
    26: "tracing",
    27: "struct_ops",
    28: "ext",
    29: "lsm",
    30: "sk_lookup",
    31: "syscall",
    32: "netfilter",
}
BPF_PROG_TYPE_SOCKET_FILTER = 1
#: libbpf's private error codes (enum libbpf_errno) start here.
LIBBPF_ERRNO_START = 4000
LIBBPF_ERRNO_END = 4100


class LibbpfUnavailable(OSError):
    """The system libbpf cannot be loaded (ELIBACC); ``.detail`` says why."""

    def __init__(self, detail: str) -> None:
        super().__init__(errno.ELIBACC, os.strerror(errno.ELIBACC))
        self.detail = detail


def _error(code: int, detail: str) -> OSError:
    from evl_net.errors import KernelError

    return KernelError(code, detail)


class _Lib:
    """The few libbpf entry points used, with their C signatures."""

    _cache: ClassVar[dict[str, _Lib]] = {}

    def __init__(self, path: str) -> None:
        import ctypes

        self.ctypes = ctypes
        try:
            lib = ctypes.CDLL(path, use_errno=True)
        except OSError as exc:
            raise LibbpfUnavailable(f"cannot load {path}: {exc}") from None
        c_void_p, c_int, c_char_p, c_size_t = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t
        try:
            sigs = {
                "bpf_object__open_mem": (c_void_p, [c_void_p, c_size_t, c_void_p]),
                "bpf_object__load": (c_int, [c_void_p]),
                "bpf_object__close": (None, [c_void_p]),
                "bpf_object__next_program": (c_void_p, [c_void_p, c_void_p]),
                "bpf_program__fd": (c_int, [c_void_p]),
                "bpf_program__name": (c_char_p, [c_void_p]),
                "bpf_program__section_name": (c_char_p, [c_void_p]),
                "bpf_program__type": (c_int, [c_void_p]),
                "libbpf_strerror": (c_int, [c_int, c_char_p, c_size_t]),
                "libbpf_set_print": (c_void_p, [c_void_p]),
            }
            for name, (restype, argtypes) in sigs.items():
                func = getattr(lib, name)
                func.restype, func.argtypes = restype, argtypes
        except AttributeError as exc:
            raise LibbpfUnavailable(f"{path} is not a usable libbpf: {exc}") from None
        self.lib = lib
        self.messages: list[str] = []
        self._printer = self._make_printer()
        lib.libbpf_set_print(ctypes.cast(self._printer, c_void_p))

    def _make_printer(self) -> Any:
        """A libbpf print callback keeping the messages (shown in errors), not printing them.

        ``int (*)(enum libbpf_print_level, const char *fmt, va_list ap)``: the
        va_list is handed on to libc's vsnprintf as an opaque pointer, which is
        how it is passed on x86_64, arm64 and 32-bit ARM.
        """
        ctypes = self.ctypes
        libc = ctypes.CDLL(None)
        vsnprintf = libc.vsnprintf
        vsnprintf.restype = ctypes.c_int
        vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
        buf = ctypes.create_string_buffer(1024)
        LIBBPF_DEBUG = 2

        @ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
        def printer(level: int, fmt: bytes, args: int) -> int:
            if level < LIBBPF_DEBUG:  # warnings and info; debug output is too chatty to keep
                vsnprintf(buf, len(buf), fmt, args)
                self.messages.append(buf.value.decode(errors="replace").rstrip())
            return 0

        return printer

    @classmethod
    def get(cls, path: str) -> _Lib:
        if path not in cls._cache:
            cls._cache[path] = cls(path)
        return cls._cache[path]

    def strerror(self, code: int) -> str:
        buf = self.ctypes.create_string_buffer(128)
        self.lib.libbpf_strerror(code, buf, len(buf))
        return buf.value.decode(errors="replace")


class LoadedProgram:
    """The first program of a loaded object; ``fd`` is valid until ``close()``."""

    def __init__(self, lib: _Lib, obj: int, prog: int, keep: Any) -> None:
        self._lib, self._obj, self._keep = lib, obj, keep
        api = lib.lib
        self.fd: int = api.bpf_program__fd(prog)
        self.name: str = (api.bpf_program__name(prog) or b"").decode(errors="replace")
        self.section: str = (api.bpf_program__section_name(prog) or b"").decode(errors="replace")
        self.prog_type: int = api.bpf_program__type(prog)

    @property
    def type_name(self) -> str:
        return PROG_TYPES.get(self.prog_type, str(self.prog_type))

    def close(self) -> None:
        if self._obj:
            self._lib.lib.bpf_object__close(self._obj)
            self._obj = 0
            self._keep = None

    def __enter__(self) -> LoadedProgram:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _explain(lib: _Lib, code: int, data: bytes, name: str, what: str) -> OSError:
    """An OSError for a libbpf failure, with the reason as precise as can be told."""
    detail = None
    if what == "open":
        # Defects of the object file itself: the simulator's parser names them
        # the same way on every transport.
        from evl_net.kernel import bpfobj

        try:
            bpfobj.parse(data, name)
        except bpfobj.BpfObjectError as exc:
            detail = str(exc)
    if LIBBPF_ERRNO_START <= code < LIBBPF_ERRNO_END:
        detail = detail or f"{name}: {lib.strerror(code)}"
        code = errno.EINVAL  # libbpf's own codes have no strerror
    if detail is None:
        verdict = _verifier_verdict(lib.messages)
        if verdict:
            detail = f"{name}: the kernel's verifier refused program '{verdict[0]}': {verdict[1]}"
    if detail is None:
        last = next((m for m in reversed(lib.messages) if m), None)
        detail = f"{name}: libbpf cannot {what} it" + (f" ({last.removeprefix('libbpf: ')})" if last else "")
    return _error(code, detail)


def _verifier_verdict(messages: list[str]) -> tuple[str, str] | None:
    """(program, reason) from the verifier log libbpf passed on, if any.

    The log ends with the verifier's complaint, then a statistics line
    ("processed N insns ..."); the complaint is what a user needs to see.
    """
    begin, end = "-- BEGIN PROG LOAD LOG --", "-- END PROG LOAD LOG --"
    for message in messages:
        if begin not in message:
            continue
        head, _, log = message.partition(begin)
        prog = head.split("'")[1] if head.count("'") >= 2 else "?"
        lines = [line.strip() for line in log.split(end)[0].splitlines()]
        lines = [line for line in lines if line and not line.startswith("processed ")]
        if lines:
            return prog, lines[-1]
    return None


def load(data: bytes, name: str, library: str | None = None) -> LoadedProgram:
    """Open and load the eBPF object ``data``; return its first program.

    ``name`` is the object's name in messages (and libbpf's object name).
    """
    lib = _Lib.get(library or os.environ.get(LIBRARY_ENV) or LIBRARY)
    import ctypes  # lib.ctypes, already imported; a module name, so that ctypes.Structure can be a base class

    api = lib.lib
    lib.messages.clear()
    buf = ctypes.create_string_buffer(data, max(len(data), 1))
    obj_name = ctypes.create_string_buffer(os.path.basename(name).encode(errors="replace") or b"object")

    class OpenOpts(ctypes.Structure):
        # The head of struct bpf_object_open_opts: libbpf reads no further than .sz.
        _fields_ = (("sz", ctypes.c_size_t), ("object_name", ctypes.c_char_p))

    opts = OpenOpts(ctypes.sizeof(OpenOpts), ctypes.cast(obj_name, ctypes.c_char_p))
    obj = api.bpf_object__open_mem(buf, len(data), ctypes.byref(opts))
    if not obj:
        raise _explain(lib, ctypes.get_errno() or errno.EINVAL, data, name, "open")
    try:
        prog = api.bpf_object__next_program(obj, None)
        if not prog:
            raise _error(errno.EINVAL, f"{name}: no eBPF program in object")
        ret = api.bpf_object__load(obj)
        if ret < 0:
            raise _explain(lib, -ret, data, name, "load")
        loaded = LoadedProgram(lib, obj, prog, (buf, obj_name, opts))
        if loaded.fd < 0:
            raise _error(errno.EBADF, f"{name}: libbpf gave no fd for program '{loaded.name}'")
    except BaseException:
        api.bpf_object__close(obj)
        raise
    return loaded
