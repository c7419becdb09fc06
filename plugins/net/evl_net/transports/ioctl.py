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
* the VLAN filter is ``$EVL_SYSDIR/evl/net/vlans``; writing
  ``$EVL_SYSDIR/evl/net/ipv4_flush_arp`` flushes the ARP front cache of the
  writer's network namespace;
* links, addresses, routes and in-band neighbours are rtnetlink's
  (:mod:`evl_net.transports.rtnetlink`), in this process's namespace.

The ledger.  The kernel cannot be asked which eBPF filter a device carries,
nor (reliably) what the ARP front cache holds, so this transport notes what
it did in ``$EVL_RUNDIR/net-ledger.json`` (default ``/run/evl``: a tmpfs
cleared at boot, as the kernel's state is), one section per network
namespace (``st_dev:st_ino`` of its nsfs inode), each holding:

* ``filters``: per real device (a VLAN's parent, found in
  ``/sys/class/net``), its ifindex and ``installed``, with the object path,
  its sha256 and the program name when true.  The first port on a device
  (GETSTAT before showed no pool) records false, as does a port going whose
  GETSTAT afterwards shows no pool; a port request whose GETSTAT cannot
  tell forgets the entry;
* ``solicited``: each solicitation that succeeded (host IP, device asked
  for or null, flags), with the sequence number it got and the ifindex of
  every device then; ``ports`` holds the sequence number of each port's last
  enable, disable, down or delete, which voids the solicitations before it
  (the kernel flushes a port's entries when it goes); ``ipv4_flush_arp``
  voids them all.

An entry holds only while its device has the ifindex it recorded (a device
deleted and re-created is seen) and, for ``filter_state``, the device
carries a port; otherwise the answer is "unknown".  Where a solicitation's
entry sits is the route of its host *now* (rtnetlink), its MAC the in-band
neighbour's.  What other tools (the C ``evl-net``, a link going down
behind our back) do is not seen beyond that.  The file is replaced
atomically (a temporary file renamed in the same directory, nothing
followed through a symlink, mode 0644, the directory made 0755) under an
flock of ``net-ledger.lock`` (a regular file, never opened through a
symlink nor blocking on a FIFO), which also removes the temporary files of
writers killed before their rename; it is read without a lock, tolerantly: a
missing, corrupt, oversized (> 4 MiB) or unreadable ledger is no
knowledge, never an error.  When the run directory is not writable the
ledger is simply not updated: the EVL request it would record has been
made and succeeded all the same.

Start-up: ``evl net -Q`` goes through here, so only cheap built-in modules
are imported at module level (``_socket`` rather than ``socket``, whose enum
set-up costs milliseconds); ctypes and libbpf are imported by ``-F`` with an
object only.  pyroute2 (100+ ms) is imported by the link requests only: ``-Q``,
``-e``, ``-d``, ``-s``/``-S`` and ``-F`` find a VLAN's real device in sysfs and
write the ledger with the json module alone.
"""

from __future__ import annotations

import _socket
import errno
import fcntl
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from evl_core.errors import EvlError
from evl_net.errors import KernelError, device_open_stage
from evl_net.errors import KernelError as kernel_error
from evl_net.kernel import abi
from evl_net.model import DevStat
from evl_net.transports import TransportBase

if TYPE_CHECKING:
    from evl_net.outcomes import (
        Change,
        CoreAbi,
        FilterInstalled,
        FilterState,
        Interface,
        Link,
        Neighbour,
        PeerRoute,
        PortConfig,
        Solicited,
        VlansSet,
    )

DEVDIR_ENV = "EVL_DEVDIR"
SYSDIR_ENV = "EVL_SYSDIR"
RUNDIR_ENV = "EVL_RUNDIR"
DEFAULT_DEVDIR = "/dev/evl"
DEFAULT_SYSDIR = "/sys/devices/virtual"
DEFAULT_RUNDIR = "/run/evl"
BROADCAST = "255.255.255.255"
SYS_CLASS_NET = "/sys/class/net"

# include/uapi/linux/sockios.h and if.h, for the "up" column of -Q --all-interfaces.
SIOCGIFFLAGS = 0x8913
IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFF_NOARP = 0x80
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
        rundir=env.get(RUNDIR_ENV) or DEFAULT_RUNDIR,
    )
    transport.check_core()
    return transport


class IoctlTransport(TransportBase):
    name = "ioctl"

    def __init__(
        self,
        devdir: str = DEFAULT_DEVDIR,
        sysdir: str = DEFAULT_SYSDIR,
        libbpf: str | None = None,
        rundir: str = DEFAULT_RUNDIR,
    ) -> None:
        self.devdir = devdir
        self.sysdir = sysdir
        self.libbpf = libbpf
        self.ledger = Ledger(rundir)
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

    @property
    def flush_arp_path(self) -> str:
        return os.path.join(self.sysdir, *abi.FLUSH_ARP_ATTR)

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
        changed = before is None or not before.oob_port
        if changed:
            # The first port on its real device (no pool before) starts without a filter.
            self._note_port(ifname, None if before is None else not before.skb_total)
        return PortConfig(changed, after.skb_total if after else None, after.skb_size if after else None)

    def disable_port(self, ifname: str) -> Change:
        from evl_net.outcomes import Change  # only mutations need it

        devfd = self._open_dev(ifname)
        try:
            before = self._try_getstat(devfd)
            _ioctl(devfd, abi.EVL_NDEVIOC_SETPORT, 0)  # NULL: switch the port off
            after = self._try_getstat(devfd) if before and before.oob_port else None
        finally:
            os.close(devfd)
        if before and before.oob_port:
            # The last port on its real device (no pool left) took the filter along.
            self._note_port(ifname, None if after is None else not after.skb_total)
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
        self._note_filter(ifname, {"installed": False})
        # The kernel does not tell whether a filter was there: a removal counts as a change.
        return Change(True)

    def install_rx_filter(self, ifname: str, obj: bytes, obj_name: str) -> FilterInstalled:
        import hashlib
        import struct

        from evl_net.outcomes import FilterInstalled  # only mutations need it

        sha256 = hashlib.sha256(obj).hexdigest()
        # Installed all the same: the ledger may be behind the kernel (another tool, a port gone and back).
        was = self._known_filter(ifname)
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
        finally:
            os.close(devfd)
        entry = {"installed": True, "object": obj_name, "sha256": sha256, "program": prog.name}
        self._note_filter(ifname, entry)
        # The very object the ledger says the device runs: the same filter, loaded again (its maps start
        # afresh, as every load's do), is no change.  Where the ledger cannot tell, the install is one.
        return FilterInstalled(was != sha256, prog.name, prog.section)

    def _known_filter(self, ifname: str) -> str | None:
        """The sha256 of the object the ledger says port ``ifname``'s real device runs; None when unknown or none."""
        real = real_device(ifname)
        section, _ = self.ledger.read()
        entry = section["filters"].get(real)
        if not isinstance(entry, dict) or entry.get("installed") is not True or entry.get("ifindex") != _ifindex(real):
            return None
        sha256 = entry.get("sha256")
        return sha256 if isinstance(sha256, str) else None

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

    def _check_bind_name(self, ifname: str | None) -> None:
        """A solicitation's device name, checked as binding the UDP socket to it would fail."""
        if ifname is not None:
            try:
                self._check_name(ifname)
            except OSError as exc:
                raise KernelError.wrap(exc, stage=f"cannot bind UDP socket to device {ifname}") from None

    def solicit(self, host: str, ifname: str | None, flags: int) -> Solicited:
        import struct

        from evl_net.outcomes import Solicited  # only mutations need it

        ip = self.resolve(host)
        self._check_bind_name(ifname)
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
        self._note_solicit(ip, ifname, flags)
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
        from evl_net.outcomes import Interface

        out = []
        for _index, name in sorted(_socket.if_nameindex()):
            flags = _if_flags(name)
            try:
                port = self.get_stat(name).oob_port
            except OSError:
                port = False
            out.append(Interface(name=name, oob_port=port, up=True if flags is None else bool(flags & IFF_UP)))
        return out

    # -- what evl net-config reads and changes -------------------------------------------------------------

    def core_abi(self) -> CoreAbi:
        from evl_net.outcomes import CoreAbi

        info = self.core_info or self.check_core()
        return CoreAbi(info["abi_base"], info["abi_current"])

    def links(self) -> Sequence[Link]:
        from evl_core import record
        from evl_net.transports import rtnetlink

        out = []
        for link in rtnetlink.links(None):
            try:
                stat = self.get_stat(link.name)
            except OSError:  # no EVL device: neither capable nor a port
                out.append(link)
                continue
            out.append(record.replace(link, oob_capable=stat.oob_capable, oob_port=stat.oob_port))
        return out

    def filter_state(self, ifname: str) -> FilterState:
        from evl_net.outcomes import FilterState

        if not self.get_stat(ifname).oob_port:
            raise KernelError(errno.ENODEV, f"{ifname} is not an out-of-band port")
        real = real_device(ifname)
        section, _ = self.ledger.read()
        entry = section["filters"].get(real)
        if not isinstance(entry, dict) or entry.get("ifindex") != _ifindex(real):
            return FilterState(real, None)
        installed = entry.get("installed")
        if installed is not True:
            return FilterState(real, False if installed is False else None)

        def text(key: str) -> str | None:
            value = entry.get(key)
            return value if isinstance(value, str) else None

        return FilterState(real, True, text("object"), text("sha256"), text("program"))

    def arp_cache(self) -> Sequence[Neighbour]:
        from evl_net.outcomes import Neighbour
        from evl_net.transports import rtnetlink

        section, _ = self.ledger.read()
        out = []
        for (dev, nexthop), permanent in self._cached(section).items():
            try:
                found = rtnetlink.neighbour(nexthop, dev)
            except OSError:
                found = None
            out.append(Neighbour(dev, nexthop, found[0] if found else rtnetlink.ZERO_MAC, permanent))
        return out

    def peer_route(self, host: str, ifname: str | None, flags: int) -> PeerRoute:
        from evl_net.outcomes import PeerRoute

        ip = self.resolve(host)
        self._check_bind_name(ifname)
        if flags & ~(abi.EVL_NEIGH_PERMANENT | abi.EVL_NEIGH_MAYROUTE):
            raise KernelError(errno.EINVAL)
        dev, nexthop, noarp = _route(ip, ifname, bool(flags & abi.EVL_NEIGH_MAYROUTE))
        if noarp:
            return PeerRoute(ip, dev, nexthop, "N")
        section, known = self.ledger.read()
        if not known:
            return PeerRoute(ip, dev, nexthop, "?")
        permanent = self._cached(section).get((dev, nexthop))
        return PeerRoute(ip, dev, nexthop, "" if permanent is None else "P" if permanent else "R")

    def _cached(self, section: dict[str, Any]) -> dict[tuple[str, str], bool]:
        """(port, next hop) -> permanent, of the ledger's solicitations that still hold."""
        found: dict[tuple[str, str], bool] = {}
        ports: dict[str, bool] = {}
        for entry in section["solicited"]:
            ip, ifname, flags, seq, indexes = (entry.get(k) for k in ("ip", "ifname", "flags", "seq", "ifindex"))
            if not (isinstance(ip, str) and isinstance(flags, int) and isinstance(seq, int)):
                continue
            if not (ifname is None or isinstance(ifname, str)) or not isinstance(indexes, dict):
                continue
            try:
                dev, nexthop, noarp = _route(ip, ifname, bool(flags & abi.EVL_NEIGH_MAYROUTE))
            except OSError:
                continue
            if noarp or indexes.get(dev) != _ifindex(dev) or seq <= _int(section["ports"].get(dev), -1):
                continue
            if dev not in ports:
                try:
                    ports[dev] = self.get_stat(dev).oob_port
                except OSError:
                    ports[dev] = False
            if ports[dev]:
                found[(dev, nexthop)] = found.get((dev, nexthop), False) or bool(flags & abi.EVL_NEIGH_PERMANENT)
        return found

    def flush_arp(self) -> Change:
        from evl_net.outcomes import Change

        path = self.flush_arp_path
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise _error(exc.errno or errno.EIO, f"cannot open {path} for writing") from None
        try:
            os.write(fd, b"1\n")
        except OSError as exc:
            raise _error(exc.errno or errno.EIO) from None
        finally:
            os.close(fd)

        def flush(section: dict[str, Any]) -> None:
            section["solicited"] = []

        self.ledger.update(flush)
        # The kernel does not tell whether the cache held anything: a flush counts as a change.
        return Change(True)

    def create_vlan(self, ifname: str, parent: str, vlan_id: int) -> Change:
        from evl_net.outcomes import Change
        from evl_net.transports import rtnetlink

        return Change(rtnetlink.create_vlan(None, ifname, parent, vlan_id))

    def delete_link(self, ifname: str) -> Change:
        from evl_net.outcomes import Change
        from evl_net.transports import rtnetlink

        real = real_device(ifname)
        changed = rtnetlink.delete_link(None, ifname)
        self._note_gone([ifname], real)
        return Change(changed)

    def set_mtu(self, ifname: str, mtu: int) -> Change:
        from evl_net.outcomes import Change
        from evl_net.transports import rtnetlink

        return Change(rtnetlink.set_mtu(None, ifname, mtu))

    def set_link_up(self, ifname: str, up: int) -> Change:
        from evl_net.outcomes import Change
        from evl_net.transports import rtnetlink

        changed = rtnetlink.set_link_up(None, ifname, up)
        if changed and not up:
            # NETDEV_GOING_DOWN: the device's port goes, and a real device takes its VLANs' ports along.
            vlans = [link.name for link in rtnetlink.links(None) if link.parent == ifname]
            self._note_gone([ifname, *vlans], real_device(ifname))
        return Change(changed)

    def add_address(self, ifname: str, address: str) -> Change:
        from evl_net.outcomes import Change
        from evl_net.transports import rtnetlink

        return Change(rtnetlink.add_address(None, ifname, address))

    def remove_address(self, ifname: str, address: str) -> Change:
        from evl_net.outcomes import Change
        from evl_net.transports import rtnetlink

        return Change(rtnetlink.remove_address(None, ifname, address))

    # -- the ledger's records ------------------------------------------------------------------------------

    def _note_port(self, ifname: str, filter_gone: bool | None) -> None:
        """Port ``ifname`` came or went: its solicitations are void; its real device's filter is
        gone (True), as it was (False) or unknown (None)."""
        real = real_device(ifname)

        def note(section: dict[str, Any]) -> None:
            _void_port(section, ifname)
            if filter_gone is None:
                section["filters"].pop(real, None)
            elif filter_gone:
                section["filters"][real] = {"ifindex": _ifindex(real), "installed": False}

        self.ledger.update(note)

    def _note_gone(self, devices: list[str], real: str) -> None:
        """``devices`` went down or away, and their ports with them: what was known of them is void."""

        def note(section: dict[str, Any]) -> None:
            for dev in devices:
                _void_port(section, dev)
            section["filters"].pop(real, None)

        self.ledger.update(note)

    def _note_filter(self, ifname: str, entry: dict[str, Any]) -> None:
        real = real_device(ifname)

        def note(section: dict[str, Any]) -> None:
            section["filters"][real] = {"ifindex": _ifindex(real), **entry}

        self.ledger.update(note)

    def _note_solicit(self, ip: str, ifname: str | None, flags: int) -> None:
        indexes = {name: index for index, name in _socket.if_nameindex()}

        def note(section: dict[str, Any]) -> None:
            seq = section["seq"] = _int(section.get("seq"), 0) + 1
            kept = [
                e for e in section["solicited"] if (e.get("ip"), e.get("ifname"), e.get("flags")) != (ip, ifname, flags)
            ]
            kept.append({"ip": ip, "ifname": ifname, "flags": flags, "seq": seq, "ifindex": indexes})
            section["solicited"] = kept[-SOLICIT_KEEP:]

        self.ledger.update(note)


# -- helpers of the requests above --------------------------------------------------------------------------------


def _if_flags(name: str) -> int | None:
    """SIOCGIFFLAGS of ``name`` in this namespace, None when the kernel does not answer."""
    import struct

    probe = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM, 0)
    try:
        ifreq = fcntl.ioctl(probe.fileno(), SIOCGIFFLAGS, name.encode()[:15].ljust(IFREQ_SIZE, b"\0"))
        return int(struct.unpack_from("=H", ifreq, 16)[0])
    except OSError:
        return None
    finally:
        probe.close()


def _ifindex(name: str) -> int | None:
    try:
        return int(_socket.if_nametoindex(name))
    except (OSError, ValueError, UnicodeError):
        return None


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def real_device(ifname: str) -> str:
    """The device EVL keeps the pool and filter of port ``ifname`` on: a VLAN's real device, else itself.

    Read from sysfs (``DEVTYPE=vlan`` in the uevent, the one ``lower_*``
    link), stacked VLANs followed down as ``vlan_dev_real_dev()`` does: the
    requests of ``-e``, ``-d`` and ``-F`` must not pay for pyroute2.
    """
    name = ifname
    for _ in range(8):
        base = os.path.join(SYS_CLASS_NET, name)
        try:
            with open(os.path.join(base, "uevent"), encoding="utf-8", errors="replace") as f:
                vlan = "DEVTYPE=vlan" in f.read().splitlines()
            lowers = [e[len("lower_") :] for e in os.listdir(base) if e.startswith("lower_")] if vlan else []
        except OSError:
            return name
        if len(lowers) != 1:
            return name
        name = lowers[0]
    return name


def _route(ip: str, ifname: str | None, may_route: bool) -> tuple[str, str, bool]:
    """(port, next hop, NOARP) of a solicitation of ``ip``, as the EVL core asks the in-band FIB."""
    if ip == BROADCAST:
        if ifname is None:
            raise KernelError(errno.ENETUNREACH, "broadcast needs an interface (-i)")
        return ifname, ip, True
    from evl_net.transports import rtnetlink

    dev, nexthop = rtnetlink.route(None, ip, ifname, may_route)
    flags = _if_flags(dev) or 0
    return dev, nexthop, bool(flags & (IFF_LOOPBACK | IFF_NOARP))


def _void_port(section: dict[str, Any], port: str) -> None:
    """The solicitations through ``port`` before now no longer hold (its entries were flushed)."""
    seq = section["seq"] = _int(section.get("seq"), 0) + 1
    section["ports"][port] = seq
    section["solicited"] = [e for e in section["solicited"] if e.get("ifname") != port]


# -- the ledger ---------------------------------------------------------------------------------------------------

LEDGER_FILE = "net-ledger.json"
LEDGER_LOCK = "net-ledger.lock"
#: A writer's temporary file is ``.net-ledger.json.<pid>.tmp``, renamed over the ledger.
TMP_PREFIX, TMP_SUFFIX = f".{LEDGER_FILE}.", ".tmp"
LEDGER_MAX = 4 << 20
SOLICIT_KEEP = 1024


class Ledger:
    """What the ioctl transport did that the kernel cannot be asked back (see the module docstring)."""

    def __init__(self, rundir: str) -> None:
        self.rundir = rundir

    @staticmethod
    def _netns() -> str:
        try:
            st = os.stat("/proc/thread-self/ns/net")
        except OSError:
            return "?"
        return f"{st.st_dev}:{st.st_ino}"

    @staticmethod
    def _section(data: Any, netns: str) -> dict[str, Any]:
        """This namespace's section of ``data``, made well-formed (what is not is dropped)."""
        spaces = data.get("netns") if isinstance(data, dict) else None
        raw = spaces.get(netns) if isinstance(spaces, dict) else None
        raw = raw if isinstance(raw, dict) else {}
        filters, ports, solicited = raw.get("filters"), raw.get("ports"), raw.get("solicited")
        return {
            "seq": _int(raw.get("seq"), 0),
            "filters": {k: v for k, v in filters.items() if isinstance(v, dict)} if isinstance(filters, dict) else {},
            "ports": {k: v for k, v in ports.items() if isinstance(v, int)} if isinstance(ports, dict) else {},
            "solicited": [e for e in solicited if isinstance(e, dict)] if isinstance(solicited, list) else [],
        }

    def _dirfd(self, create: bool) -> int:
        """An fd on the run directory (never through a symlink), made 0755 first when ``create``."""
        from evl_core.files import open_directory

        fd, made = open_directory(self.rundir, 0o755 if create else None)
        if made:
            os.fchmod(fd, 0o755)  # world-readable, whatever the umask, as /run is
        return fd

    @staticmethod
    def _remove_leftovers(dirfd: int) -> int:
        """Remove the temporary files of writers killed before their rename; how many.

        Called under the lock, which every writer holds while its temporary
        file exists: whatever temporary file is there is a dead writer's.
        """
        removed = 0
        try:
            names = os.listdir(dirfd)
        except OSError:
            return 0
        for name in names:
            if name.startswith(TMP_PREFIX) and name.endswith(TMP_SUFFIX):
                pid = name[len(TMP_PREFIX) : -len(TMP_SUFFIX)]
                if pid.isdigit():
                    try:
                        os.unlink(name, dir_fd=dirfd)  # a symbolic link is removed, never followed
                        removed += 1
                    except OSError:
                        pass
        return removed

    @staticmethod
    def _load(dirfd: int) -> Any:
        """The whole ledger; None when it is missing or cannot be made sense of."""
        import json
        import stat

        try:
            fd = os.open(LEDGER_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dirfd)
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            chunks, size = [], 0
            while size <= LEDGER_MAX:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            if size > LEDGER_MAX:
                return None
            return json.loads(b"".join(chunks))
        except (OSError, ValueError, RecursionError):
            return None
        finally:
            os.close(fd)

    def read(self) -> tuple[dict[str, Any], bool]:
        """This namespace's section, and whether the ledger could be read (a missing one can: it is empty)."""
        try:
            dirfd = self._dirfd(create=False)
        except FileNotFoundError:
            return self._section(None, ""), True
        except OSError:
            return self._section(None, ""), False
        try:
            try:
                os.stat(LEDGER_FILE, dir_fd=dirfd, follow_symlinks=False)
            except FileNotFoundError:
                return self._section(None, ""), True
            except OSError:
                return self._section(None, ""), False
            data = self._load(dirfd)
            return self._section(data, self._netns()), isinstance(data, dict)
        finally:
            os.close(dirfd)

    def update(self, change: Callable[[dict[str, Any]], None]) -> None:
        """Apply ``change`` to this namespace's section, under the lock; nothing when the ledger cannot be written."""
        import json

        try:
            dirfd = self._dirfd(create=True)
        except OSError:
            return
        from evl_core.files import open_lock

        lock = tmp = -1
        tmp_name = f"{TMP_PREFIX}{os.getpid()}{TMP_SUFFIX}"
        try:
            try:
                # never through a symlink, never a FIFO or device (the directory may be a group's)
                lock = open_lock(LEDGER_LOCK, f"ledger lock {LEDGER_LOCK}", 0o644, dir_fd=dirfd)
            except EvlError:
                return  # the ledger cannot be written (the directory is closed below)
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._remove_leftovers(dirfd)
            data = self._load(dirfd)
            if not isinstance(data, dict) or not isinstance(data.get("netns"), dict):
                data = {"version": 1, "netns": {}}
            netns = self._netns()
            section = self._section(data, netns)
            change(section)
            data["netns"][netns] = section
            text = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
            if len(text) > LEDGER_MAX:
                data = {"version": 1, "netns": {netns: section}}  # the other namespaces' records go first
                text = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            tmp = os.open(tmp_name, flags, 0o644, dir_fd=dirfd)
            os.fchmod(tmp, 0o644)
            view = memoryview(text)
            while view:
                view = view[os.write(tmp, view) :]
            os.fsync(tmp)
            os.close(tmp)
            tmp = -1
            os.rename(tmp_name, LEDGER_FILE, src_dir_fd=dirfd, dst_dir_fd=dirfd)
        except OSError:
            try:
                os.unlink(tmp_name, dir_fd=dirfd)
            except OSError:
                pass
        finally:
            if tmp >= 0:
                os.close(tmp)
            if lock >= 0:
                os.close(lock)  # releases the flock
            os.close(dirfd)
