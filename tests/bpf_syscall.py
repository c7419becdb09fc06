"""bpf(2) through ctypes, for the tests that take the machine's kernel as their oracle.

One syscall wrapper and one BPF_PROG_LOAD of a socket filter, shared by the
interpreter's tests (BPF_PROG_TEST_RUN verdicts) and the verifier's (the
kernel's refusals and their log).
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct

SYS_BPF = {
    "x86_64": 321,
    "aarch64": 280,
    "riscv64": 280,
    "loongarch64": 280,
    "ppc64le": 361,
    "ppc64": 361,
    "s390x": 351,
    "i686": 357,
    "i386": 357,
    "armv7l": 386,
    "armv6l": 386,
}
BPF_MAP_CREATE, BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM, BPF_MAP_GET_NEXT_KEY = 0, 1, 2, 4
BPF_PROG_LOAD, BPF_PROG_TEST_RUN = 5, 10
BPF_PROG_TYPE_SOCKET_FILTER = 1


class Bpf:
    """The bpf(2) system call of this machine; OSError(ENOSYS) where its number is not known."""

    def __init__(self) -> None:
        nr = SYS_BPF.get(platform.machine())
        if nr is None:
            raise OSError(errno.ENOSYS, f"no bpf(2) number known for {platform.machine()}")
        self.nr = nr
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.syscall.restype = ctypes.c_long

    def call(self, cmd: int, attr: bytearray) -> int:
        """bpf(cmd, attr); OSError with the errno on failure."""
        buf = (ctypes.c_char * len(attr)).from_buffer(attr)
        ret = self.libc.syscall(self.nr, cmd, buf, len(attr))
        if ret < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return ret

    def prog_load(self, insns: bytes, license: bytes = b"GPL", log_size: int = 0) -> tuple[int, str]:
        """(the program fd, or -errno; the verifier's log, when ``log_size`` asks for one)."""
        code = ctypes.create_string_buffer(insns, len(insns))
        lic = ctypes.create_string_buffer(license)
        log = ctypes.create_string_buffer(max(log_size, 1))
        attr = bytearray(128)
        struct.pack_into(
            "IIQQIIQ",
            attr,
            0,
            BPF_PROG_TYPE_SOCKET_FILTER,
            len(insns) // 8,
            ctypes.addressof(code),
            ctypes.addressof(lic),
            1 if log_size else 0,
            log_size,
            ctypes.addressof(log) if log_size else 0,
        )
        try:
            fd = self.call(BPF_PROG_LOAD, attr)
        except OSError as exc:
            fd = -(exc.errno or errno.EINVAL)
        return fd, log.value.decode(errors="replace")

    def test_run(self, fd: int, frame: bytes, ctx: bytes | None = None) -> int:
        """BPF_PROG_TEST_RUN of program ``fd`` on a whole Ethernet frame (and ``ctx_in``): the u32 it returns."""
        data = ctypes.create_string_buffer(bytes(frame), len(frame))
        cbuf = ctypes.create_string_buffer(bytes(ctx), len(ctx)) if ctx else None
        attr = bytearray(128)
        struct.pack_into(
            "IIIIQQIIIIQQ",
            attr,
            0,
            fd,
            0,
            len(frame),
            0,
            ctypes.addressof(data),
            0,
            1,
            0,
            len(ctx) if ctx else 0,
            0,
            ctypes.addressof(cbuf) if cbuf is not None else 0,
            0,
        )
        self.call(BPF_PROG_TEST_RUN, attr)
        return int(struct.unpack_from("I", attr, 4)[0])

    def map_create(self, map_type: int, key_size: int, value_size: int, max_entries: int, flags: int = 0) -> int:
        """BPF_MAP_CREATE: the map's fd."""
        attr = bytearray(128)
        struct.pack_into("IIIII", attr, 0, map_type, key_size, value_size, max_entries, flags)
        return self.call(BPF_MAP_CREATE, attr)

    def map_lookup(self, fd: int, key: bytes, value_size: int) -> bytes | None:
        """BPF_MAP_LOOKUP_ELEM from user space: the value (all CPUs' for per-CPU maps), None when absent."""
        k = ctypes.create_string_buffer(key, len(key))
        v = ctypes.create_string_buffer(value_size)
        attr = bytearray(128)
        struct.pack_into("IIQQQ", attr, 0, fd, 0, ctypes.addressof(k), ctypes.addressof(v), 0)
        try:
            self.call(BPF_MAP_LOOKUP_ELEM, attr)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise
        return v.raw


class KernelVerifier:
    """BPF_PROG_LOAD of socket filters on this machine, with the verifier's log."""

    def __init__(self) -> None:
        self.bpf = Bpf()
        code, _ = self.load(struct.pack("<BBhiBBhi", 0xB7, 0, 0, 0, 0x95, 0, 0, 0), log=False)  # r0 = 0; exit
        if code:
            raise OSError(code, os.strerror(code))

    def load(self, insns: bytes, license: str = "GPL", log: bool = True) -> tuple[int, list[str]]:
        """(0 or the errno, the log's lines) of loading ``insns``."""
        fd, text = self.bpf.prog_load(insns, license.encode(), log_size=1 << 20 if log else 0)
        code = 0 if fd >= 0 else -fd
        if fd >= 0:
            os.close(fd)
        if code == errno.ENOSPC and log:  # the log overflowed (it keeps its end): the verdict without it
            code = self.load(insns, license, log=False)[0]
        return code, text.splitlines()

    def verdict(self, insns: bytes, license: str = "GPL") -> tuple[int, str]:
        """(errno, message) as our VerifierError words it: ``<insn>: <text>: <reason>``, or the reason alone."""
        code, lines = self.load(insns, license)
        # The reason is the last line, before the statistics (and the states an infinite loop shows).
        lines = [line for line in lines if line and not line.startswith(("processed ", "cur state:", "old state:"))]
        if not lines:
            return code, ""
        reason = lines[-1]
        prev = lines[-2].split(" ;")[0].rstrip() if len(lines) > 1 else ""
        if prev[:1].isdigit() and ": (" in prev:
            return code, f"{prev}: {reason}"
        return code, reason
