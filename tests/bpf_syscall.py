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
