"""The machine's kernel, through the SYSTEM libbpf (libbpf.so.1), as a test oracle.

Why a second path to the kernel next to tests/bpf_syscall.py: that one loads
raw instructions, which is enough for map-less programs.  Filters with maps,
global data (.bss/.data/.rodata), bpf_loop() callbacks or ring buffers need
an ELF loader doing map creation and relocations; libbpf is the loader users
actually run, so its verdicts and map contents are the reference the
project's own loader and simulator are compared with.

Self-contained on purpose: nothing from evl_net / evl_core is imported, so a
bug in the project cannot leak into its own oracle.  ctypes only; signatures
are libbpf 1.1's (/usr/include/bpf/libbpf.h, /usr/include/bpf/bpf.h).

Typical use::

    reason = kernel_bpf.available()
    if reason:
        pytest.skip(reason)
    with kernel_bpf.KernelObject(obj_bytes, "users_hash_src") as ko:
        verdict = ko.run(frame)
        dumps = ko.maps()

Set EVL_TEST_LIBBPF_DEBUG=1 to see libbpf's own messages on stderr (they are
otherwise kept, not printed, and quoted in the OSError of a failed load).
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import functools
import os
import struct
import sys
from typing import Any

LIBBPF_SONAME = "libbpf.so.1"
DEBUG_ENV = "EVL_TEST_LIBBPF_DEBUG"

# enum bpf_map_type values this module knows how to dump (uapi <linux/bpf.h>).
BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_PERCPU_HASH = 5
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_LRU_HASH = 9
BPF_MAP_TYPE_LRU_PERCPU_HASH = 10
BPF_MAP_TYPE_RINGBUF = 27

ARRAY_TYPES = frozenset({BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY})
HASH_TYPES = frozenset(
    {BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH}
)
PERCPU_TYPES = frozenset({BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH})

BPF_PROG_TYPE_SOCKET_FILTER = 1
ETH_HLEN = 14


class _OpenOpts(ctypes.Structure):
    """The head of struct bpf_object_open_opts: libbpf accepts a shorter ``sz`` (later fields read as 0)."""

    _fields_ = [("sz", ctypes.c_size_t), ("object_name", ctypes.c_char_p), ("relaxed_maps", ctypes.c_bool)]


class _TestRunOpts(ctypes.Structure):
    """struct bpf_test_run_opts of libbpf 1.1, whole."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("data_in", ctypes.c_void_p),
        ("data_out", ctypes.c_void_p),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_void_p),
        ("ctx_out", ctypes.c_void_p),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("repeat", ctypes.c_int),
        ("duration", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
    ]


# int (*libbpf_print_fn_t)(enum libbpf_print_level, const char *, va_list).  A va_list
# parameter is passed as a pointer on x86-64 (and by reference on aarch64), so it can be
# handed on to vsnprintf() as a void *, once.
_PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
# int (*ring_buffer_sample_fn)(void *ctx, void *data, size_t size)
_SAMPLE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)

_log: list[str] = []
_log_buf = ctypes.create_string_buffer(1 << 20)


def _libbpf_print(level: int, fmt: bytes | None, ap: int | None) -> int:
    """Keep libbpf's messages (for the OSError of a failed load); echo them only under DEBUG_ENV."""
    if fmt is None:
        return 0
    n: int = _libc().vsnprintf(_log_buf, len(_log_buf), fmt, ap)
    text = _log_buf.value.decode(errors="replace")
    _log.append(text)
    if os.environ.get(DEBUG_ENV):
        sys.stderr.write(text)
    return n


_print_cb = _PRINT_FN(_libbpf_print)  # kept alive for as long as libbpf may call it


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
    libc.vsnprintf.restype = ctypes.c_int
    return libc


@functools.cache
def _lib() -> ctypes.CDLL:
    """libbpf.so.1 with the prototypes used here declared (wrong defaults would truncate pointers)."""
    lib = ctypes.CDLL(LIBBPF_SONAME, use_errno=True)
    vp, i, u32, sz, cp = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_size_t, ctypes.c_char_p
    protos: dict[str, tuple[Any, list[Any]]] = {
        "libbpf_set_print": (vp, [_PRINT_FN]),
        "bpf_object__open_mem": (vp, [vp, sz, ctypes.POINTER(_OpenOpts)]),
        "bpf_object__load": (i, [vp]),
        "bpf_object__close": (None, [vp]),
        "bpf_object__next_program": (vp, [vp, vp]),
        "bpf_object__next_map": (vp, [vp, vp]),
        "bpf_program__fd": (i, [vp]),
        "bpf_program__name": (cp, [vp]),
        "bpf_map__fd": (i, [vp]),
        "bpf_map__name": (cp, [vp]),
        "bpf_map__type": (i, [vp]),
        "bpf_map__key_size": (u32, [vp]),
        "bpf_map__value_size": (u32, [vp]),
        "bpf_map__max_entries": (u32, [vp]),
        "libbpf_bpf_map_type_str": (cp, [i]),
        "libbpf_num_possible_cpus": (i, []),
        "bpf_map_lookup_elem": (i, [i, vp, vp]),
        "bpf_map_get_next_key": (i, [i, vp, vp]),
        "bpf_map_create": (i, [i, cp, u32, u32, u32, vp]),
        "bpf_prog_load": (i, [i, cp, cp, vp, sz, vp]),
        "bpf_prog_test_run_opts": (i, [i, ctypes.POINTER(_TestRunOpts)]),
        "ring_buffer__new": (vp, [i, _SAMPLE_FN, vp, vp]),
        "ring_buffer__consume": (i, [vp]),
        "ring_buffer__free": (None, [vp]),
    }
    for name, (restype, argtypes) in protos.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    lib.libbpf_set_print(_print_cb)
    return lib


def _fail(ret: int, what: str) -> OSError:
    """OSError from a libbpf 1.x failure: ``ret`` is -errno (or NULL/-1 with errno set)."""
    err = -ret if ret < -1 else (ctypes.get_errno() or errno.EINVAL)
    tail = "".join(_log).strip().splitlines()[-30:]
    detail = ("\n" + "\n".join(tail)) if tail else ""
    return OSError(err, f"{what}: {os.strerror(err)}{detail}")


@dataclasses.dataclass
class MapDump:
    """One map of a loaded object, as bpftool would dump it.

    ``name`` is libbpf's.  For global data libbpf 1.1 names the internal
    maps "<object name truncated>" + section, within the kernel's 15
    characters: the prefix is at most 8 characters, so object "users_global"
    gives "users_gl.bss", "users_gl.data" and "users_gl.rodata" (seen with
    libbpf 1.1.2; KernelObject passes ``name`` as the object name, without
    it libbpf would use "<buffer address>-<size>").

    ``entries`` holds (key, value) pairs; for per-CPU maps a value is the
    list of one value per possible CPU.  Array maps list every index
    0..max_entries-1, hash/LRU maps every present key (kernel order).
    Ring buffers leave ``entries`` empty and put the consumed records in
    ``records``.  A map that cannot be dumped says why in ``skipped``.
    """

    name: str
    type: int
    type_name: str
    key_size: int
    value_size: int
    max_entries: int
    entries: list[tuple[bytes, bytes | list[bytes]]] = dataclasses.field(default_factory=list)
    records: list[bytes] = dataclasses.field(default_factory=list)
    skipped: str | None = None


class KernelObject:
    """A BPF ELF object opened and loaded by libbpf, its first program ready to test-run.

    A context manager: leaving it closes the object (programs and maps).
    OSError (with the errno) if libbpf or the kernel refuses the object;
    its message quotes libbpf's log, verifier output included.
    """

    def __init__(self, data: bytes, name: str) -> None:
        lib = _lib()
        _log.clear()
        # libbpf reads the ELF from this buffer while opening and loading; keep it alive.
        self._data = ctypes.create_string_buffer(data, len(data))
        self._name = name.encode()
        opts = _OpenOpts(sz=ctypes.sizeof(_OpenOpts), object_name=self._name)
        ctypes.set_errno(0)
        obj = lib.bpf_object__open_mem(self._data, len(data), ctypes.byref(opts))
        if not obj:
            raise _fail(-1, f"bpf_object__open_mem({name})")
        self._obj: int | None = obj
        try:
            ret = lib.bpf_object__load(obj)
            if ret < 0:
                raise _fail(ret, f"bpf_object__load({name})")
            prog = lib.bpf_object__next_program(obj, None)
            if not prog:
                raise OSError(errno.ENOENT, f"{name}: no program in the object")
            fd = lib.bpf_program__fd(prog)
            if fd < 0:
                raise _fail(fd, f"bpf_program__fd({name})")
        except BaseException:
            self.close()
            raise
        self.program_name: str = lib.bpf_program__name(prog).decode()
        self.prog_fd: int = fd
        self.log: str = "".join(_log)

    def __enter__(self) -> KernelObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Free the object: its fds close, the kernel drops programs and maps no one else holds."""
        if self._obj:
            _lib().bpf_object__close(self._obj)
            self._obj = None

    def run(self, frame: bytes, repeat: int = 1) -> int:
        """The u32 the program returns on ``frame`` (a whole Ethernet frame), by BPF_PROG_TEST_RUN.

        The kernel makes an skb of it with eth_type_trans(): skb->protocol is
        the outer ethertype and the data starts after the 14-byte Ethernet
        header; nothing is untagged.  The frame must hold at least ETH_HLEN
        bytes, and recent kernels (upstream 12bec2bd4b76, "bpf: reject short
        IPv4/IPv6 inputs in bpf_prog_test_run_skb", backported to stable)
        also refuse an outer ethertype of IPv4 with fewer than 20 bytes
        after the Ethernet header, or IPv6 with fewer than 40: OSError
        EINVAL, the program does not run.  With ``repeat`` > 1 the program
        runs that many times (maps see every run).
        """
        _log.clear()
        buf = ctypes.create_string_buffer(frame, len(frame))
        opts = _TestRunOpts(sz=ctypes.sizeof(_TestRunOpts), data_in=ctypes.addressof(buf), data_size_in=len(frame))
        opts.repeat = repeat
        ret = _lib().bpf_prog_test_run_opts(self.prog_fd, ctypes.byref(opts))
        if ret < 0:
            raise _fail(ret, "bpf_prog_test_run_opts")
        return int(opts.retval)

    def maps(self) -> list[MapDump]:
        """Every map of the object, dumped now (ring buffers are consumed: records are read once)."""
        if not self._obj:
            raise ValueError("object closed")
        lib = _lib()
        _log.clear()
        out: list[MapDump] = []
        m = lib.bpf_object__next_map(self._obj, None)
        while m:
            mtype = lib.bpf_map__type(m)
            tname = lib.libbpf_bpf_map_type_str(mtype)
            dump = MapDump(
                name=lib.bpf_map__name(m).decode(),
                type=mtype,
                type_name=tname.decode() if tname else str(mtype),
                key_size=lib.bpf_map__key_size(m),
                value_size=lib.bpf_map__value_size(m),
                max_entries=lib.bpf_map__max_entries(m),
            )
            fd = lib.bpf_map__fd(m)
            if fd < 0:
                dump.skipped = f"no fd ({os.strerror(-fd)})"
            elif mtype in ARRAY_TYPES:
                self._dump_array(fd, dump)
            elif mtype in HASH_TYPES:
                self._dump_hash(fd, dump)
            elif mtype == BPF_MAP_TYPE_RINGBUF:
                self._dump_ringbuf(fd, dump)
            else:
                dump.skipped = f"map type {dump.type_name} not dumped"
            out.append(dump)
            m = lib.bpf_object__next_map(self._obj, m)
        return out

    @staticmethod
    def _value_buffer(dump: MapDump) -> tuple[Any, int, int]:
        """(buffer, slot size, slots): per-CPU lookups fill one 8-byte-rounded slot per possible CPU."""
        if dump.type in PERCPU_TYPES:
            slot = (dump.value_size + 7) & ~7
            ncpu = possible_cpus()
        else:
            slot, ncpu = dump.value_size, 1
        return ctypes.create_string_buffer(max(slot * ncpu, 1)), slot, ncpu

    def _lookup(self, fd: int, key: Any, dump: MapDump) -> bytes | list[bytes] | None:
        buf, slot, ncpu = self._value_buffer(dump)
        ret = _lib().bpf_map_lookup_elem(fd, key, buf)
        if ret < 0:
            if -ret == errno.ENOENT:
                return None
            raise _fail(ret, f"bpf_map_lookup_elem({dump.name})")
        raw: bytes = buf.raw
        if dump.type in PERCPU_TYPES:
            return [raw[c * slot : c * slot + dump.value_size] for c in range(ncpu)]
        return raw[: dump.value_size]

    def _dump_array(self, fd: int, dump: MapDump) -> None:
        if dump.key_size != 4:
            dump.skipped = f"array with a {dump.key_size}-byte key"
            return
        for idx in range(dump.max_entries):
            key = struct.pack("=I", idx)
            kbuf = ctypes.create_string_buffer(key, 4)
            try:
                value = self._lookup(fd, kbuf, dump)
            except OSError as exc:
                dump.skipped = str(exc)
                return
            if value is not None:
                dump.entries.append((key, value))

    def _dump_hash(self, fd: int, dump: MapDump) -> None:
        lib = _lib()
        ksize = max(dump.key_size, 1)
        cur, nxt = ctypes.create_string_buffer(ksize), ctypes.create_string_buffer(ksize)
        prev: Any = None  # NULL: the first key
        while True:
            ret = lib.bpf_map_get_next_key(fd, prev, nxt)
            if ret < 0:
                if -ret != errno.ENOENT:
                    dump.skipped = str(_fail(ret, f"bpf_map_get_next_key({dump.name})"))
                return
            key = nxt.raw[: dump.key_size]
            try:
                value = self._lookup(fd, nxt, dump)
            except OSError as exc:
                dump.skipped = str(exc)
                return
            if value is not None:  # deleted between the two calls: skip it
                dump.entries.append((key, value))
            ctypes.memmove(cur, nxt, ksize)
            prev = cur

    @staticmethod
    def _dump_ringbuf(fd: int, dump: MapDump) -> None:
        lib = _lib()
        records: list[bytes] = []

        def sample(_ctx: int | None, data: int, size: int) -> int:
            records.append(ctypes.string_at(data, size))
            return 0

        cb = _SAMPLE_FN(sample)
        rb = lib.ring_buffer__new(fd, cb, None, None)
        if not rb:
            dump.skipped = str(_fail(-1, f"ring_buffer__new({dump.name})"))
            return
        try:
            ret = lib.ring_buffer__consume(rb)
            if ret < 0:
                dump.skipped = str(_fail(ret, f"ring_buffer__consume({dump.name})"))
        finally:
            lib.ring_buffer__free(rb)
        dump.records = records


def possible_cpus() -> int:
    """libbpf's count of possible CPUs: the number of slots of a per-CPU map value."""
    n: int = _lib().libbpf_num_possible_cpus()
    if n < 0:
        raise _fail(n, "libbpf_num_possible_cpus")
    return n


@functools.cache
def available() -> str | None:
    """None if the oracle can run here, else why not (for ``pytest.skip``).

    Checks libbpf.so.1 loads, then that this process may create a map, load
    a socket filter and test-run it: the three things every use needs.
    """
    try:
        lib = _lib()
    except OSError as exc:
        return f"cannot load {LIBBPF_SONAME}: {exc}"
    except AttributeError as exc:
        return f"{LIBBPF_SONAME} lacks a libbpf 1.x function: {exc}"
    fd = lib.bpf_map_create(BPF_MAP_TYPE_ARRAY, None, 4, 8, 1, None)
    if fd < 0:
        return f"bpf(BPF_MAP_CREATE) refused: {os.strerror(-fd)}"
    os.close(fd)
    # r0 = 1; exit
    insns = struct.pack("<BBhi", 0xB7, 0, 0, 1) + struct.pack("<BBhi", 0x95, 0, 0, 0)
    code = ctypes.create_string_buffer(insns, len(insns))
    fd = lib.bpf_prog_load(BPF_PROG_TYPE_SOCKET_FILTER, b"evl_probe", b"GPL", code, 2, None)
    if fd < 0:
        return f"bpf(BPF_PROG_LOAD) refused: {os.strerror(-fd)}"
    try:
        frame = ctypes.create_string_buffer(ETH_HLEN)
        opts = _TestRunOpts(sz=ctypes.sizeof(_TestRunOpts), data_in=ctypes.addressof(frame), data_size_in=ETH_HLEN)
        ret = lib.bpf_prog_test_run_opts(fd, ctypes.byref(opts))
        if ret < 0:
            return f"bpf(BPF_PROG_TEST_RUN) refused: {os.strerror(-ret)}"
        if opts.retval != 1:
            return f"BPF_PROG_TEST_RUN returned {opts.retval}, not 1"
    finally:
        os.close(fd)
    return None
