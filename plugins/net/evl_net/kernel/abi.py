"""The EVL kernel interface of ``evl net``, in Python: request numbers, struct layouts, constants.

Everything here is derived from the uapi definitions (see
docs/abi.md, "Requests"), never pasted as magic numbers: the
request numbers are computed with the Linux ``_IOC`` encoding from each
struct's size, and the struct sizes and offsets follow the C alignment rules
for the running platform (pointer size, alignment of a 64-bit integer, byte
order).  ``tests/test_abi.py`` compiles the project's own C header
(``tests/abi/evl_abi.h``) with gcc and checks every size, offset and number
below against it.

Kernel ABI generations (docs/abi.md, "ABI generations"):

* **G4, the newest, is what this module and the ioctl transport implement**:
  ``EVL_NETIOC_DEVOPEN`` on ``/dev/evl/net`` returns a device fd, on which
  ``EVL_NDEVIOC_SETPORT`` (NULL to disable), ``EVL_NDEVIOC_GETSTAT`` (with the
  ``oob_port`` flag) and ``EVL_NDEVIOC_SETRXEBPF`` operate; solicitation goes
  through ``EVL_SOCKIOC_SOLICIT`` with a sockaddr-storage request.  It is what
  libevl with ``EVL_ABI_PREREQ`` 45 talks to, and the core check refuses a
  kernel whose ABI range does not include 45.
* **G2/G3 kernels are not supported.**  They would need: enabling through
  ``EVL_NET_OPENPORT`` on ``/dev/evl/net`` (name, pool and buffer sizes in one
  32-byte struct, returning the device fd), disabling through
  ``EVL_NDEVIOC_SWITCHOFF`` (``_IO``, no argument) on that fd, opening an
  existing port only through ``EVL_NET_GETDEVFD`` (which shares DEVOPEN's
  number but fails with EINVAL on a device that is not a port, so ``-Q`` on a
  non-port fails), a ``GETSTAT`` without the ``oob_port`` flag (so "changed"
  could no longer be told), and a way to tell the generation apart, which the
  ABI number cannot give today (the revision that introduced DEVOPEN is not
  known).  Their request numbers are kept below (``G2_*``), checked like the
  others, so that such a port starts from verified values.
* G0/G1 (port switched through a socket; only ``-F/-s/-S``) are out of scope.

Only the asm-generic ioctl encoding is implemented: it is the one of every
architecture EVL runs on (x86_64, arm64, 32-bit ARM; riscv too).
"""

from __future__ import annotations

import struct
import sys
from typing import Any

from evl_core import EVL_ABI_PREREQ

__all__ = [
    "CORE_INFO",
    "DEVOPEN",
    "DEVPARAMS",
    "DEVSTAT",
    "EVL_ABI_PREREQ",
    "EVL_CTLIOC_GET_COREINFO",
    "EVL_NDEVIOC_GETSTAT",
    "EVL_NDEVIOC_SETPORT",
    "EVL_NDEVIOC_SETRXEBPF",
    "EVL_NETIOC_DEVOPEN",
    "EVL_SOCKIOC_SOLICIT",
    "NATIVE",
    "SOLICIT",
    "Layout",
    "Platform",
    "layouts",
    "requests",
]

# -- the Linux ioctl request encoding (include/uapi/asm-generic/ioctl.h) -----

_IOC_NRBITS = 8
_IOC_TYPEBITS = 8
_IOC_SIZEBITS = 14
_IOC_DIRBITS = 2

_IOC_NRSHIFT = 0
_IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS
_IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS
_IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS

_IOC_NONE = 0
_IOC_WRITE = 1
_IOC_READ = 2


def _IOC(direction: int, type_: int | str, nr: int, size: int) -> int:
    """``_IOC(dir, type, nr, size)``: one request number."""
    if isinstance(type_, str):
        type_ = ord(type_)
    for value, bits, what in (
        (direction, _IOC_DIRBITS, "dir"),
        (type_, _IOC_TYPEBITS, "type"),
        (nr, _IOC_NRBITS, "nr"),
        (size, _IOC_SIZEBITS, "size"),
    ):
        if not 0 <= value < 1 << bits:
            raise ValueError(f"ioctl {what} {value} does not fit in {bits} bits")
    return (direction << _IOC_DIRSHIFT) | (type_ << _IOC_TYPESHIFT) | (nr << _IOC_NRSHIFT) | (size << _IOC_SIZESHIFT)


def _IO(type_: int | str, nr: int) -> int:
    return _IOC(_IOC_NONE, type_, nr, 0)


def _IOR(type_: int | str, nr: int, size: int) -> int:
    return _IOC(_IOC_READ, type_, nr, size)


def _IOW(type_: int | str, nr: int, size: int) -> int:
    return _IOC(_IOC_WRITE, type_, nr, size)


def _IOWR(type_: int | str, nr: int, size: int) -> int:
    return _IOC(_IOC_READ | _IOC_WRITE, type_, nr, size)


def _IOC_DIR(request: int) -> int:
    return (request >> _IOC_DIRSHIFT) & ((1 << _IOC_DIRBITS) - 1)


def _IOC_TYPE(request: int) -> int:
    return (request >> _IOC_TYPESHIFT) & ((1 << _IOC_TYPEBITS) - 1)


def _IOC_NR(request: int) -> int:
    return (request >> _IOC_NRSHIFT) & ((1 << _IOC_NRBITS) - 1)


def _IOC_SIZE(request: int) -> int:
    return (request >> _IOC_SIZESHIFT) & ((1 << _IOC_SIZEBITS) - 1)


# -- struct layouts ------------------------------------------------------------


class Platform:
    """What decides the C layouts: pointer size, alignment of a __u64, byte order."""

    __slots__ = ("byteorder", "ptr_size", "u64_align")

    def __init__(self, ptr_size: int, u64_align: int, byteorder: str = "little") -> None:
        self.ptr_size, self.u64_align, self.byteorder = ptr_size, u64_align, byteorder

    @classmethod
    def native(cls) -> Platform:
        # calcsize("@P") is sizeof(void *); "@IQ" puts a u64 after a u32, so its
        # size minus 8 is the u64 alignment (8 on LP64 and ARM EABI, 4 on i386).
        return cls(struct.calcsize("@P"), struct.calcsize("@IQ") - 8, sys.byteorder)

    def __repr__(self) -> str:
        return f"Platform(ptr_size={self.ptr_size}, u64_align={self.u64_align}, byteorder={self.byteorder!r})"


#: The platform this process runs on.
NATIVE = Platform.native()
#: 32-bit ARM (EABI): 4-byte pointers, 8-byte aligned __u64.
ARM32 = Platform(ptr_size=4, u64_align=8, byteorder="little")

# Field kinds: struct code and natural alignment (None: decided by the platform).
_SCALARS = {"u16": ("H", 2), "u32": ("I", 4), "s32": ("i", 4), "u64": ("Q", None)}


class Field:
    """One member of a struct: name, kind (u16/u32/s32/u64 or "bytes"), offset, size."""

    __slots__ = ("kind", "name", "offset", "size")

    def __init__(self, name: str, kind: str, offset: int, size: int) -> None:
        self.name, self.kind, self.offset, self.size = name, kind, offset, size

    def __repr__(self) -> str:
        return f"Field({self.name!r}, {self.kind!r}, offset={self.offset}, size={self.size})"


class Layout:
    """A C struct: offsets, size and (un)packing with zeroed padding, in native byte order."""

    def __init__(
        self, name: str, fields: list[tuple[str, str] | tuple[str, str, int, int]], platform: Platform
    ) -> None:
        self.name = name
        self.platform = platform
        order = "<" if platform.byteorder == "little" else ">"
        offset = 0
        align_max = 1
        fmt = order
        out: list[Field] = []
        self.padding: list[tuple[int, int]] = []
        for spec in fields:
            fname, kind = spec[0], spec[1]
            if kind == "bytes":
                size, align = spec[2], spec[3]  # type: ignore[misc]
                code = f"{size}s"
            else:
                code, align = _SCALARS[kind]
                size = struct.calcsize("=" + code)
                if align is None:
                    align = platform.u64_align
            pad = -offset % align
            if pad:
                self.padding.append((offset, pad))
                fmt += f"{pad}x"
                offset += pad
            out.append(Field(fname, kind, offset, size))
            fmt += code
            offset += size
            align_max = max(align_max, align)
        tail = -offset % align_max
        if tail:
            self.padding.append((offset, tail))
            fmt += f"{tail}x"
        self.fields = tuple(out)
        self.size = offset + tail
        self.align = align_max
        self.offsets = {f.name: f.offset for f in out}
        self._struct = struct.Struct(fmt)
        assert self._struct.size == self.size, (name, self._struct.size, self.size)

    def pack(self, **values: Any) -> bytes:
        """The struct's bytes: unnamed fields are zero, and so is every padding byte."""
        unknown = set(values) - set(self.offsets)
        if unknown:
            raise TypeError(f"struct {self.name} has no field {', '.join(sorted(unknown))}")
        args = [values.get(f.name, b"" if f.kind == "bytes" else 0) for f in self.fields]
        return self._struct.pack(*args)

    def buffer(self, **values: Any) -> bytearray:
        """A mutable copy of pack(), for an ioctl the kernel writes back into."""
        return bytearray(self.pack(**values))

    def unpack(self, data: bytes | bytearray) -> dict[str, Any]:
        if len(data) != self.size:
            raise ValueError(f"struct {self.name} is {self.size} bytes, got {len(data)}")
        return dict(zip((f.name for f in self.fields), self._struct.unpack(bytes(data)), strict=True))

    def padding_is_zero(self, data: bytes | bytearray) -> bool:
        return all(not any(data[o : o + n]) for o, n in self.padding)

    def __repr__(self) -> str:
        return f"<Layout struct {self.name}: {self.size} bytes>"


#: sizeof(struct __kernel_sockaddr_storage) (_K_SS_MAXSIZE): aligned like a pointer.
SOCKADDR_STORAGE_SIZE = 128
#: sizeof(struct sockaddr_in): what libevl copies into the storage.
SOCKADDR_IN_SIZE = 16


def layouts(platform: Platform = NATIVE) -> dict[str, Layout]:
    """Every struct of the interface, laid out for ``platform``."""
    return {
        # include/uapi/evl/control-abi.h
        "evl_core_info": Layout(
            "evl_core_info",
            [
                ("abi_base", "u32"),
                ("abi_current", "u32"),
                ("fpu_features", "u32"),
                ("shm_size", "u64"),
            ],
            platform,
        ),
        # include/uapi/evl/net/net-abi.h: the name is a user pointer passed as a __u64.
        "evl_net_devopen": Layout("evl_net_devopen", [("name_ptr", "u64"), ("fd", "s32")], platform),
        # include/uapi/evl/net/device-abi.h
        "evl_net_devparams": Layout("evl_net_devparams", [("poolsz", "u64"), ("bufsz", "u64")], platform),
        "evl_net_devstat": Layout(
            "evl_net_devstat",
            [
                ("rx_packets", "u64"),
                ("rx_bytes", "u64"),
                ("tx_packets", "u64"),
                ("tx_bytes", "u64"),
                ("skb_size", "u32"),
                ("skb_free", "u32"),
                ("skb_total", "u32"),
                ("csum_errors", "u32"),
                ("rx_nomem", "u32"),
                ("tx_nomem", "u32"),
                ("flags", "u32"),  # the union { oob_capable:1, oob_port:1 } / __flags
            ],
            platform,
        ),
        # include/uapi/evl/net/socket-abi.h
        "evl_net_solicit": Layout(
            "evl_net_solicit",
            [
                ("addr", "bytes", SOCKADDR_STORAGE_SIZE, platform.ptr_size),
                ("flags", "u32"),
            ],
            platform,
        ),
        # G2/G3 only (not used by the transport; see the module docstring).
        "evl_net_g2_openport": Layout(
            "evl_net_g2_openport",
            [
                ("name_ptr", "u64"),
                ("poolsz", "u64"),
                ("bufsz", "u64"),
                ("fd", "s32"),
            ],
            platform,
        ),
    }


def devstat_flag_bits(platform: Platform = NATIVE) -> tuple[int, int]:
    """(oob_capable, oob_port) masks in ``__flags``.

    GCC allocates bitfields from the least significant bit on little-endian
    targets and from the most significant one on big-endian targets.
    """
    if platform.byteorder == "little":
        return 1 << 0, 1 << 1
    return 1 << 31, 1 << 30


# -- request numbers ---------------------------------------------------------------

EVL_CONTROL_IOCBASE = "C"
EVL_NET_IOCBASE = 0xF0  # defined by net-abi.h, used by no request
EVL_NETDEV_IOCBASE = 0xEF
EVL_SOCKET_IOCBASE = 0xEE
S32_SIZE = 4


def requests(platform: Platform = NATIVE, lay: dict[str, Layout] | None = None) -> dict[str, int]:
    """Every request number, for ``platform``'s struct sizes."""
    lay = lay or layouts(platform)
    return {
        "EVL_CTLIOC_GET_COREINFO": _IOR(EVL_CONTROL_IOCBASE, 0, lay["evl_core_info"].size),
        # DEVOPEN uses the netdev base, not EVL_NET_IOCBASE (docs/abi.md, "Requests").
        "EVL_NETIOC_DEVOPEN": _IOWR(EVL_NETDEV_IOCBASE, 0, lay["evl_net_devopen"].size),
        "EVL_NDEVIOC_SETRXEBPF": _IOW(EVL_NETDEV_IOCBASE, 0, S32_SIZE),
        "EVL_NDEVIOC_SETPORT": _IOW(EVL_NETDEV_IOCBASE, 1, lay["evl_net_devparams"].size),
        # _IOW although the kernel writes the struct back: that is how the uapi defines it.
        "EVL_NDEVIOC_GETSTAT": _IOW(EVL_NETDEV_IOCBASE, 2, lay["evl_net_devstat"].size),
        "EVL_SOCKIOC_SOLICIT": _IOW(EVL_SOCKET_IOCBASE, 5, lay["evl_net_solicit"].size),
        # G2/G3, for reference only.
        "G2_EVL_NET_GETDEVFD": _IOWR(EVL_NETDEV_IOCBASE, 0, lay["evl_net_devopen"].size),
        "G2_EVL_NET_OPENPORT": _IOWR(EVL_NETDEV_IOCBASE, 1, lay["evl_net_g2_openport"].size),
        "G2_EVL_NDEVIOC_SWITCHOFF": _IO(EVL_NETDEV_IOCBASE, 1),
    }


_LAYOUTS = layouts()
CORE_INFO = _LAYOUTS["evl_core_info"]
DEVOPEN = _LAYOUTS["evl_net_devopen"]
DEVPARAMS = _LAYOUTS["evl_net_devparams"]
DEVSTAT = _LAYOUTS["evl_net_devstat"]
SOLICIT = _LAYOUTS["evl_net_solicit"]
DEVSTAT_OOB_CAPABLE, DEVSTAT_OOB_PORT = devstat_flag_bits()

REQUESTS = requests(NATIVE, _LAYOUTS)
EVL_CTLIOC_GET_COREINFO = REQUESTS["EVL_CTLIOC_GET_COREINFO"]
EVL_NETIOC_DEVOPEN = REQUESTS["EVL_NETIOC_DEVOPEN"]
EVL_NDEVIOC_SETRXEBPF = REQUESTS["EVL_NDEVIOC_SETRXEBPF"]
EVL_NDEVIOC_SETPORT = REQUESTS["EVL_NDEVIOC_SETPORT"]
EVL_NDEVIOC_GETSTAT = REQUESTS["EVL_NDEVIOC_GETSTAT"]
EVL_SOCKIOC_SOLICIT = REQUESTS["EVL_SOCKIOC_SOLICIT"]

#: Request names by number, for messages (the G2 aliases of DEVOPEN's number left out).
REQUEST_NAMES = {v: k for k, v in reversed(list(REQUESTS.items()))}

# -- constants ---------------------------------------------------------------------

#: Device nodes under EVL_DEVDIR (default /dev/evl) and the sysfs attributes under EVL_SYSDIR.
EVL_CONTROL_DEV = "control"
EVL_NET_DEV = "net"
VLANS_ATTR = ("evl", "net", "vlans")
#: Write-only: any write flushes the ARP front cache of the writer's network namespace.
FLUSH_ARP_ATTR = ("evl", "net", "ipv4_flush_arp")

#: evl_net_solicit.flags
EVL_NEIGH_PERMANENT = 0x1
EVL_NEIGH_MAYROUTE = (
    0x2  # inferred (docs/abi.md, "What the sources leave open"): the kernel accepts only these two bits
)

#: SOCK_OOB (= O_OOB), OR'ed into socket()'s type, newest kernels first:
#: bit 29 on the newest (7.x-based) EVL trees, bit 30 on older ones (docs/abi.md, "Requests").
SOCK_OOB_CANDIDATES = (1 << 29, 1 << 30)

#: The value of SETRXEBPF that removes the filter.
NO_PROGRAM = -1
