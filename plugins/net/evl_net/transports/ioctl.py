"""The EVL kernel ABI transport: ``/dev/evl/net``, device fds, oob sockets and sysfs.

What libevl (G4, ``EVL_ABI_PREREQ`` 45) and ``evl-net`` do, in pure Python;
the numbers and layouts are in :mod:`evl_net.kernel.abi`, the facts in
docs/abi.md ("Core check", "Requests" and the sections after):

* the core check of ``evl_init()``: open ``$EVL_DEVDIR/control``,
  ``EVL_CTLIOC_GET_COREINFO``, ``abi_base <= EVL_ABI_PREREQ <= abi_current``
  (no mlockall, no vDSO, no shared memory: nothing here is real-time);
* a device is opened with ``EVL_NETIOC_DEVOPEN`` on ``$EVL_DEVDIR/net`` and
  every device operation runs on the fd it returns, closed right after;
* ``ENOTTY`` from a device or socket request becomes ``EBADF`` where libevl
  maps it (SETPORT-disable, GETSTAT, SETRXEBPF, SOLICIT), and ENOENT on
  ``/dev/evl/net`` becomes EOPNOTSUPP;
* the VLAN filter is ``$EVL_SYSDIR/evl/net/vlans``.

Start-up: ``evl net -Q`` goes through here, so only cheap built-in modules
are imported at module level (``_socket`` rather than ``socket``, whose enum
set-up costs milliseconds); ctypes and libbpf are imported by ``-F`` with an
object only.
"""

from __future__ import annotations

import _socket
import errno
import fcntl
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from evl_core.errors import EvlError
from evl_net.errors import KernelError, device_open_stage
from evl_net.errors import KernelError as kernel_error
from evl_net.kernel import abi
from evl_net.model import DevStat
from evl_net.transports import TransportBase

if TYPE_CHECKING:
    from evl_net.outcomes import Change, FilterInstalled, Interface, PortConfig, Solicited, VlansSet

DEVDIR_ENV = "EVL_DEVDIR"
SYSDIR_ENV = "EVL_SYSDIR"
DEFAULT_DEVDIR = "/dev/evl"
DEFAULT_SYSDIR = "/sys/devices/virtual"
BROADCAST = "255.255.255.255"

# include/uapi/linux/sockios.h and if.h, for the "up" column of -Q --all-interfaces.
SIOCGIFFLAGS = 0x8913
IFF_UP = 0x1
IFREQ_SIZE = 40


_error = kernel_error


def _ioctl(fd: int, request: int, arg: Any, enotty_is_ebadf: bool = True) -> None:
    """One request; ``arg`` is a bytearray the kernel may write back into, or an int."""
    try:
        if isinstance(arg, bytearray):
            fcntl.ioctl(fd, request, arg, True)
        else:
            fcntl.ioctl(fd, request, arg)
    except OSError as exc:
        name = abi.REQUEST_NAMES.get(request, hex(request))
        if exc.errno == errno.ENOTTY and enotty_is_ebadf:
            # libevl's mapping: "not an EVL device or socket fd".
            raise _error(errno.EBADF, f"{name} refused with ENOTTY: not an EVL device, or an ABI mismatch") from None
        raise _error(exc.errno or errno.EIO) from None


def factory(request: Any, env: Mapping[str, str]) -> IoctlTransport:
    transport = IoctlTransport(
        devdir=env.get(DEVDIR_ENV) or DEFAULT_DEVDIR,
        sysdir=env.get(SYSDIR_ENV) or DEFAULT_SYSDIR,
        libbpf=env.get("EVL_NET_LIBBPF") or None,
    )
    transport.check_core()
    return transport


class IoctlTransport(TransportBase):
    name = "ioctl"

    def __init__(self, devdir: str = DEFAULT_DEVDIR, sysdir: str = DEFAULT_SYSDIR, libbpf: str | None = None) -> None:
        self.devdir = devdir
        self.sysdir = sysdir
        self.libbpf = libbpf
        self.core_info: dict[str, int] | None = None

    @property
    def control_path(self) -> str:
        return os.path.join(self.devdir, abi.EVL_CONTROL_DEV)

    @property
    def net_path(self) -> str:
        return os.path.join(self.devdir, abi.EVL_NET_DEV)

    @property
    def vlans_path(self) -> str:
        return os.path.join(self.sysdir, *abi.VLANS_ATTR)

    # -- the core check (evl_init) ------------------------------------------------

    def check_core(self) -> dict[str, int]:
        """Make sure an EVL core speaking our ABI is there; its evl_core_info."""
        path = self.control_path
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise EvlError(f"no EVL core in this kernel (no {path})") from None
            raise EvlError(f"cannot open {path}", exc.errno) from None
        try:
            buf = abi.CORE_INFO.buffer()
            try:
                _ioctl(fd, abi.EVL_CTLIOC_GET_COREINFO, buf, enotty_is_ebadf=False)
            except OSError as exc:
                if exc.errno == errno.ENOTTY:
                    # The struct size is part of the request number: ENOTTY means
                    # the kernel's evl_core_info is not the one we know.
                    raise EvlError(
                        f"EVL ABI mismatch: the EVL core does not answer EVL_CTLIOC_GET_COREINFO "
                        f"(0x{abi.EVL_CTLIOC_GET_COREINFO:08x}); these tools need ABI {abi.EVL_ABI_PREREQ}"
                    ) from None
                raise EvlError("cannot query the EVL core (EVL_CTLIOC_GET_COREINFO)", exc.errno) from None
        finally:
            os.close(fd)
        info = abi.CORE_INFO.unpack(buf)
        base, current = info["abi_base"], info["abi_current"]
        if not base <= abi.EVL_ABI_PREREQ <= current:
            span = f"{base}" if base == current else f"{base} to {current}"
            raise EvlError(
                f"EVL ABI mismatch: the kernel's EVL core supports ABI {span}, "
                f"these tools need ABI {abi.EVL_ABI_PREREQ}"
            )
        self.core_info = info
        return info

    # -- devices -------------------------------------------------------------------

    @staticmethod
    def _check_name(ifname: str) -> None:
        """ENODEV for a name the kernel does not know, before any EVL request.

        if_nametoindex() is one ioctl in the current network namespace; netlink
        through pyroute2 would say the same, but importing it costs more than
        100 ms, which ``evl net -Q`` must not pay.
        """
        try:
            _socket.if_nametoindex(ifname)
        except (OSError, ValueError, UnicodeError):
            raise _error(errno.ENODEV) from None

    def _open_dev(self, ifname: str) -> int:
        """EVL_NETIOC_DEVOPEN: a new fd on the device ``ifname``; failures in the C tool's words."""
        try:
            return self._devopen(ifname)
        except OSError as exc:
            raise KernelError.wrap(exc, stage=device_open_stage(ifname)) from None

    def _devopen(self, ifname: str) -> int:
        self._check_name(ifname)
        try:
            netfd = os.open(self.net_path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                # libevl: no net factory in this EVL core.
                raise _error(
                    errno.EOPNOTSUPP, f"no {self.net_path}: no out-of-band network stack in this EVL core"
                ) from None
            raise _error(exc.errno or errno.EIO) from None
        try:
            import array

            # The kernel reads the name through a user pointer: keep it in a
            # buffer whose address is stable for the duration of the ioctl.
            name = array.array("B", ifname.encode() + b"\0")
            req = abi.DEVOPEN.buffer(name_ptr=name.buffer_info()[0], fd=0)
            _ioctl(netfd, abi.EVL_NETIOC_DEVOPEN, req, enotty_is_ebadf=False)
        finally:
            os.close(netfd)
        return abi.DEVOPEN.unpack(req)["fd"]

    @staticmethod
    def _getstat(devfd: int) -> DevStat:
        buf = abi.DEVSTAT.buffer()
        _ioctl(devfd, abi.EVL_NDEVIOC_GETSTAT, buf)
        raw = abi.DEVSTAT.unpack(buf)
        flags = raw.pop("flags")
        return DevStat(
            **{k: raw[k] for k in DevStat.COUNTERS},
            oob_capable=bool(flags & abi.DEVSTAT_OOB_CAPABLE),
            oob_port=bool(flags & abi.DEVSTAT_OOB_PORT),
        )

    def page_size(self) -> int:
        return os.sysconf("SC_PAGE_SIZE")

    def _try_getstat(self, devfd: int) -> DevStat | None:
        """GETSTAT where its failure must not stop the operation around it."""
        try:
            return self._getstat(devfd)
        except OSError:
            return None

    def enable_port(self, ifname: str, pool_size: int, buffer_size: int) -> PortConfig:
        from evl_net.outcomes import PortConfig  # only mutations need it

        devfd = self._open_dev(ifname)
        try:
            # The kernel returns 0 for a port already enabled: the oob_port flag
            # before the request tells whether this one changed anything.  What
            # G4 GETSTAT does on a device that is no port is not documented, so
            # its failure there only means "not a port yet".
            before = self._try_getstat(devfd)
            params = abi.DEVPARAMS.buffer(poolsz=pool_size, bufsz=buffer_size)
            _ioctl(devfd, abi.EVL_NDEVIOC_SETPORT, params, enotty_is_ebadf=False)
            after = self._try_getstat(devfd)  # the port is up: a failure here is no reason to say it is not
        finally:
            os.close(devfd)
        return PortConfig(
            before is None or not before.oob_port, after.skb_total if after else None, after.skb_size if after else None
        )

    def disable_port(self, ifname: str) -> Change:
        from evl_net.outcomes import Change  # only mutations need it

        devfd = self._open_dev(ifname)
        try:
            before = self._try_getstat(devfd)
            _ioctl(devfd, abi.EVL_NDEVIOC_SETPORT, 0)  # NULL: switch the port off
        finally:
            os.close(devfd)
        return Change(bool(before and before.oob_port))

    def get_stat(self, ifname: str) -> DevStat:
        devfd = self._open_dev(ifname)
        try:
            return self._getstat(devfd)
        finally:
            os.close(devfd)

    def remove_rx_filter(self, ifname: str) -> Change:
        import struct

        from evl_net.outcomes import Change  # only mutations need it

        devfd = self._open_dev(ifname)
        try:
            _ioctl(devfd, abi.EVL_NDEVIOC_SETRXEBPF, bytearray(struct.pack("=i", abi.NO_PROGRAM)))
        finally:
            os.close(devfd)
        # The kernel does not tell whether a filter was there: a removal counts as a change.
        return Change(True)

    def install_rx_filter(self, ifname: str, obj: bytes, obj_name: str) -> FilterInstalled:
        import struct

        from evl_net.outcomes import FilterInstalled  # only mutations need it

        devfd = self._open_dev(ifname)
        try:
            from evl_net.kernel import libbpf

            name = obj_name or "object"
            try:
                prog = libbpf.load(obj, name, self.libbpf)
            except libbpf.LibbpfUnavailable as exc:
                raise EvlError(
                    f"cannot set BPF filter on {ifname}: the system libbpf is needed for -F ({exc.detail})"
                ) from None
            with prog:
                try:
                    _ioctl(devfd, abi.EVL_NDEVIOC_SETRXEBPF, bytearray(struct.pack("=i", prog.fd)))
                except OSError as exc:
                    if exc.errno == errno.EINVAL and prog.prog_type != libbpf.BPF_PROG_TYPE_SOCKET_FILTER:
                        raise KernelError(
                            exc.errno, f"{name}: program '{prog.section}' is not a socket filter"
                        ) from None
                    raise
                return FilterInstalled(True, prog.name, prog.section)
        finally:
            os.close(devfd)

    # -- solicitation ----------------------------------------------------------------

    @staticmethod
    def resolve(host: str) -> str:
        """evl-net's resolution: 'broadcast', else the first IPv4 getaddrinfo() gives."""
        if host == "broadcast":
            return BROADCAST
        try:
            infos = _socket.getaddrinfo(host, None, _socket.AF_INET, _socket.SOCK_STREAM, 0, _socket.AI_ADDRCONFIG)
        except _socket.gaierror as exc:
            raise _error(errno.ESRCH, f"cannot resolve {host!r}: {exc.strerror}") from None
        except OSError as exc:
            # EAI_SYSTEM: Python raises the underlying errno, which the C tool reports too.
            raise _error(exc.errno or errno.ESRCH) from None
        except (UnicodeError, ValueError):
            raise _error(errno.ESRCH) from None
        if not infos:
            raise _error(errno.ESRCH)
        return str(infos[0][4][0])  # AF_INET: (address, port), the address a str already

    @staticmethod
    def _oob_socket() -> Any:
        """``socket(AF_INET, SOCK_DGRAM | SOCK_OOB)``, whichever bit this kernel calls SOCK_OOB.

        The newest bit (29) is tried first, the older one (30) on EINVAL.  That
        is safe: socket() accepts no type flag besides SOCK_CLOEXEC,
        SOCK_NONBLOCK and (with Dovetail) SOCK_OOB, so a bit that is not this
        kernel's SOCK_OOB is refused with EINVAL before any socket exists; it
        can never create a socket of another kind.  A kernel knowing neither
        refuses both.
        """
        first_error = None
        for bit in abi.SOCK_OOB_CANDIDATES:
            try:
                return _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM | bit, 0)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise _error(exc.errno or errno.EIO, stage="cannot create out-of-band UDP socket") from None
                first_error = first_error or exc
        raise _error(errno.EINVAL, "this kernel knows no SOCK_OOB", stage="cannot create out-of-band UDP socket")

    def solicit(self, host: str, ifname: str | None, flags: int) -> Solicited:
        import struct

        from evl_net.outcomes import Solicited  # only mutations need it

        ip = self.resolve(host)
        if ifname is not None:
            try:
                self._check_name(ifname)
            except OSError as exc:
                raise KernelError.wrap(exc, stage=f"cannot bind UDP socket to device {ifname}") from None
        sock = self._oob_socket()
        try:
            if ifname is not None:
                try:
                    sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_BINDTODEVICE, ifname.encode() + b"\0")
                except OSError as exc:
                    raise _error(exc.errno or errno.EIO, stage=f"cannot bind UDP socket to device {ifname}") from None
            # struct sockaddr_in by hand: family (native u16), port 0 (unused),
            # the address in network order, 8 zero bytes.
            sin = struct.pack("=H", _socket.AF_INET) + struct.pack("!H", 0) + _socket.inet_aton(ip) + bytes(8)
            assert len(sin) == abi.SOCKADDR_IN_SIZE
            req = abi.SOLICIT.buffer(addr=sin, flags=flags)
            try:
                _ioctl(sock.fileno(), abi.EVL_SOCKIOC_SOLICIT, req)
            except OSError as exc:
                if exc.errno == errno.ENODEV and not getattr(exc, "detail", None):
                    # The preferred device, or the one the route goes through, is no port.
                    raise KernelError(exc.errno, f"no out-of-band port on the way to {ip}") from None
                raise
        finally:
            sock.close()
        # The kernel does not tell whether the entry was there: a solicitation counts as a change.
        return Solicited(ip, bool(flags & abi.EVL_NEIGH_PERMANENT), bool(flags & abi.EVL_NEIGH_MAYROUTE), changed=True)

    # -- the VLAN filter (sysfs) -----------------------------------------------------

    def _read_vlans(self) -> str:
        path = self.vlans_path
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise _error(exc.errno or errno.EIO, f"cannot open {path} for reading") from None
        try:
            chunks = []
            while True:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                chunks.append(chunk)
        except OSError as exc:
            raise _error(exc.errno or errno.EIO, f"cannot read {path}") from None
        finally:
            os.close(fd)
        text = b"".join(chunks).decode(errors="replace")
        return text[:-1] if text.endswith("\n") else text

    def set_vlans(self, text: str) -> VlansSet:
        from evl_net.outcomes import VlansSet  # only mutations need it

        path = self.vlans_path
        before = self._read_vlans()
        # An empty write never reaches the kernel's store handler: clearing
        # writes one NUL byte, an empty list to the kernel's parser.
        data = text.encode() if text else b"\0"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise _error(exc.errno or errno.EIO, f"cannot open {path} for writing") from None
        try:
            os.write(fd, data)
        except OSError as exc:
            raise _error(exc.errno or errno.EIO) from None
        finally:
            os.close(fd)
        after = self._read_vlans()
        return VlansSet(before != after, after)

    def get_vlans(self) -> str:
        return self._read_vlans()

    # -- -Q --all-interfaces ---------------------------------------------------------------------------

    def interfaces(self) -> Sequence[Interface]:
        import struct

        from evl_net.outcomes import Interface

        out = []
        probe = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM, 0)
        try:
            for _index, name in sorted(_socket.if_nameindex()):
                up = True
                try:
                    ifreq = fcntl.ioctl(probe.fileno(), SIOCGIFFLAGS, name.encode()[:15].ljust(IFREQ_SIZE, b"\0"))
                    up = bool(struct.unpack_from("=H", ifreq, 16)[0] & IFF_UP)
                except OSError:
                    pass
                try:
                    port = self.get_stat(name).oob_port
                except OSError:
                    port = False
                out.append(Interface(name=name, oob_port=port, up=up))
        finally:
            probe.close()
        return out
