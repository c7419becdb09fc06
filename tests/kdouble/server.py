"""The kernel double's server: the EVL kernel side of the syscall boundary.

``kdouble.c`` (LD_PRELOAD) forwards every open of the fake ``/dev/evl`` nodes
and sysfs attribute, every ioctl/read/write/setsockopt/close on the fds they
gave, and every ``socket()`` with a SOCK_OOB candidate bit, with the raw bytes
a kernel would read from user memory.  This server

* checks them the way the EVL core would see them: request numbers, struct
  sizes, zeroed padding and unused fields, a user pointer to a NUL-terminated
  interface name, a real BPF program fd (from ``/proc/self/fdinfo``), fds
  opened ``O_RDWR|O_CLOEXEC`` and all closed by exit; any deviation is a
  *violation*, which the tests assert there are none of;
* answers with the simulator's semantics, by driving a real ``SimTransport``
  on the chosen board (device fds from DEVOPEN are real fds on /dev/null the
  interposer opens on request);
* records every request (``records``) and the kernel log lines
  (``kernel_log``).

The request numbers and layouts here are the kernel's, written from
docs/abi.md ("Requests") independently of ``evl_net.kernel.abi``, so that a
mistake there cannot be mirrored here.
"""

from __future__ import annotations

import errno
import shutil
import socket
import socketserver
import struct
import subprocess
import threading
import traceback
from pathlib import Path
from typing import Any

from evl_net.model import to_json
from evl_net.transports.sim import SimTransport
from evl_net.transports.sim.records import FilterInfo

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "kdouble.c"

LP64 = struct.calcsize("P") == 8

# The kernel's request numbers (docs/abi.md, "Requests"), LP64 and 32-bit ARM.
GET_COREINFO = 0x80184300
DEVOPEN = 0xC010EF00
SETRXEBPF = 0x4004EF00
SETPORT = 0x4010EF01
GETSTAT = 0x4040EF02
SOLICIT = 0x4088EE05 if LP64 else 0x4084EE05
NAMES = {
    GET_COREINFO: "GET_COREINFO",
    DEVOPEN: "DEVOPEN",
    SETRXEBPF: "SETRXEBPF",
    SETPORT: "SETPORT",
    GETSTAT: "GETSTAT",
    SOLICIT: "SOLICIT",
}
EXPECTED = {
    "control": {GET_COREINFO},
    "net": {DEVOPEN},
    "netdev": {SETRXEBPF, SETPORT, GETSTAT},
    "oobsock": {SOLICIT},
}

EVL_IOC_TYPES = {0x43, 0xEE, 0xEF, 0xF0}

# The kernel's struct layouts (uapi), as struct formats in native byte order.
CORE_INFO = struct.Struct("=III4xQ")  # 24
DEVOPEN_S = struct.Struct("=Qi4x")  # 16
DEVPARAMS = struct.Struct("=QQ")  # 16
DEVSTAT = struct.Struct("=QQQQIIIIIII4x")  # 64
SOLICIT_SIZE = 136 if LP64 else 132
OOB_CAPABLE, OOB_PORT = 1 << 0, 1 << 1  # GCC bitfields, little-endian
IFNAMSIZ = 16
SOL_SOCKET, SO_BINDTODEVICE = 1, 25
O_ACCMODE, O_RDONLY, O_WRONLY, O_RDWR, O_CLOEXEC = 0o3, 0o0, 0o1, 0o2, 0o2000000
SOCK_TYPE_MASK = 0xF
OOB_BITS = (1 << 29) | (1 << 30)
BPF_PROG_TYPE_SOCKET_FILTER = 1


def build(out_dir: Path) -> Path:
    """Compile the interposer with gcc into out_dir; return the .so path."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise RuntimeError("gcc is needed to build the kernel double")
    out = Path(out_dir) / "kdouble.so"
    cmd = [gcc, "-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-o", str(out), str(SOURCE), "-ldl", "-lpthread"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr}")
    return out


class Reject(Exception):
    """End a request with an errno (the kernel's answer)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class _LogSink:
    def __init__(self, double: KernelDouble) -> None:
        self.double = double

    def write(self, text: str) -> None:
        for line in text.splitlines():
            if line:
                self.double.kernel_log.append(line)

    def flush(self) -> None:
        pass


class KernelDouble:
    """A fake EVL kernel for processes started with ``env()``.

    Knobs (attributes, changeable between commands):

    * ``abi_range``: (abi_base, abi_current) reported by GET_COREINFO;
    * ``sock_oob_bit``: the SOCK_OOB bit this kernel knows (``1 << 29``, the
      newest; ``1 << 30``, older kernels; None: no EVL, both refused);
    * ``inject``: request name (GET_COREINFO, DEVOPEN, SETPORT, GETSTAT,
      SETRXEBPF, SOLICIT, SOCKET, SO_BINDTODEVICE, VLANS_WRITE) -> errno to
      fail it with, before any check of the kernel's own;
    * ``board``: the simulated board (name or TOML path) the answers follow;
    * ``make_nodes()``: which fake nodes exist (no control: no EVL core).

    Writing the write-only ``ipv4_flush_arp`` attribute flushes the board's
    ARP front cache (``FLUSH_ARP_WRITE`` in ``inject`` fails it); reading it
    is EIO, as a sysfs attribute without a show method answers.  Processes
    started with ``env()`` keep their ledger (EVL_RUNDIR) in the work
    directory, never in /run/evl.
    """

    def __init__(self, workdir: Path, so_path: Path, board: str | None = None) -> None:
        self.workdir = Path(workdir)
        self.so_path = so_path
        self.board = board
        self.devdir = self.workdir / "dev-evl"
        self.sysdir = self.workdir / "sys-devices-virtual"
        self.sock_path = self.workdir / "kdouble.sock"
        self.state_path = self.workdir / "kdouble-sim-state.json"
        self.rundir = self.workdir / "run-evl"
        self.abi_range = (45, 45)
        self.sock_oob_bit: int | None = 1 << 29
        self.inject: dict[str, int] = {}
        self.records: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.kernel_log: list[str] = []
        self._server: socketserver.ThreadingUnixStreamServer | None = None
        self._thread: threading.Thread | None = None
        self._handlers: list[_Handler] = []
        self.make_nodes()

    # -- set-up -------------------------------------------------------------------

    def make_nodes(self, control: bool = True, net: bool = True, vlans: bool = True, flush_arp: bool = True) -> None:
        """The fake /dev/evl nodes and sysfs attributes, as plain files."""
        self.devdir.mkdir(parents=True, exist_ok=True)
        netdir = self.sysdir / "evl" / "net"
        netdir.mkdir(parents=True, exist_ok=True)
        nodes = (
            (self.devdir / "control", control),
            (self.devdir / "net", net),
            (netdir / "vlans", vlans),
            (netdir / "ipv4_flush_arp", flush_arp),
        )
        for path, wanted in nodes:
            if wanted:
                path.touch()
            elif path.exists():
                path.unlink()

    def env(self, base: dict[str, str]) -> dict[str, str]:
        env = dict(base)
        env.update(
            {
                "LD_PRELOAD": str(self.so_path),
                "KDOUBLE_SOCK": str(self.sock_path),
                "KDOUBLE_DEVDIR": str(self.devdir),
                "KDOUBLE_SYSDIR": str(self.sysdir),
                "EVL_DEVDIR": str(self.devdir),
                "EVL_SYSDIR": str(self.sysdir),
                "EVL_RUNDIR": str(self.rundir),
            }
        )
        return env

    def start(self) -> KernelDouble:
        double = self

        class Handler(_Handler):
            pass

        Handler.double = double
        if self.sock_path.exists():
            self.sock_path.unlink()
        self._server = socketserver.ThreadingUnixStreamServer(str(self.sock_path), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="kdouble", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> KernelDouble:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def reset(self) -> None:
        """Boot the board afresh and forget what was recorded."""
        if self.state_path.exists():
            self.state_path.unlink()
        self.records.clear()
        self.violations.clear()
        self.kernel_log.clear()
        self.inject.clear()
        self.abi_range = (45, 45)
        self.sock_oob_bit = 1 << 29
        self.make_nodes()

    def sim(self) -> SimTransport:
        return SimTransport(board=self.board, state_path=str(self.state_path), console=_LogSink(self))

    # -- what the tests look at ------------------------------------------------

    def requests(self, pid: int | None = None) -> list[str]:
        """The ioctl request names seen, in order."""
        return [r["req"] for r in self.records if r["op"] == "ioctl" and (pid is None or r["pid"] == pid)]

    def violation(self, text: str) -> None:
        self.violations.append(text)


class _Handler(socketserver.StreamRequestHandler):
    """One client process."""

    double: KernelDouble

    def setup(self) -> None:
        super().setup()
        self.pid = 0
        self.said_bye = False
        self.fds: dict[int, dict[str, Any]] = {}

    # -- I/O -------------------------------------------------------------------

    def send(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\n")
        self.wfile.flush()

    def recv(self) -> list[str]:
        line = self.rfile.readline()
        if not line:
            raise EOFError
        return line.decode().split()

    def ask(self, line: str, verb: str) -> list[str]:
        self.send(line)
        words = self.recv()
        if not words or words[0] != verb:
            raise RuntimeError(f"expected {verb!r} from the interposer, got {words!r}")
        return words[1:]

    def peek(self, addr: int, length: int) -> tuple[int, bytes]:
        err, data = self.ask(f"peek {addr:x} {length}", "mem")
        return int(err), _unhex(data)

    def fdinfo(self, fd: int) -> tuple[str | None, str]:
        link, info = self.ask(f"fdinfo {fd}", "fdinfo")
        return (_unhex(link).decode() if link != "-" else None), _unhex(info).decode()

    def mkfd(self) -> int:
        (fd,) = self.ask("mkfd", "fd")
        return int(fd)

    def done(self, ret: int, err: int = 0, data: bytes | None = None) -> None:
        self.send(f"done {ret} {err}" + (f" {data.hex() or '-'}" if data is not None else ""))

    def record(self, **entry: Any) -> dict[str, Any]:
        entry = {"pid": self.pid, **entry}
        self.double.records.append(entry)
        return entry

    def violation(self, text: str) -> None:
        self.double.violation(f"pid {self.pid}: {text}")

    # -- the loop --------------------------------------------------------------

    def handle(self) -> None:
        try:
            while True:
                try:
                    words = self.recv()
                except EOFError:
                    break
                if not words:
                    continue
                verb, args = words[0], words[1:]
                handler = getattr(self, "on_" + verb, None)
                if handler is None:
                    self.violation(f"unknown message {words!r}")
                    continue
                handler(*args)
        except Exception:  # a bug of the double: make it visible to the test
            self.double.violation("kernel double failed:\n" + traceback.format_exc())
        finally:
            if not self.said_bye:  # killed, or it crashed: check what it left anyway
                self.check_leaks()

    def check_leaks(self) -> None:
        for fd, info in sorted(self.fds.items()):
            if info["kind"] != "other":
                what = info.get("ifname") or info.get("path", "")
                self.violation(f"fd {fd} ({info['kind']} {what}) left open at exit")

    # -- notifications -------------------------------------------------------------

    def on_hello(self, pid: str) -> None:
        self.pid = int(pid)

    def on_bye(self) -> None:
        """The process is exiting: whatever is still open now was leaked."""
        self.said_bye = True
        self.check_leaks()
        self.send("ok")

    def on_open(self, fd: str, flags: str, hexpath: str) -> None:
        path = _unhex(hexpath).decode()
        flags_i = int(flags)
        d = self.double
        kind = {
            str(d.devdir / "control"): "control",
            str(d.devdir / "net"): "net",
            str(d.sysdir / "evl" / "net" / "vlans"): "vlans",
            str(d.sysdir / "evl" / "net" / "ipv4_flush_arp"): "flush_arp",
        }.get(path, "other")
        self.fds[int(fd)] = {"kind": kind, "path": path, "flags": flags_i, "pos": 0, "content": None}
        self.record(op="open", kind=kind, path=path, flags=flags_i)
        if kind in ("control", "net"):
            if flags_i & O_ACCMODE != O_RDWR:
                self.violation(f"{path} opened without O_RDWR (flags {flags_i:#o})")
            if not flags_i & O_CLOEXEC:
                self.violation(f"{path} opened without O_CLOEXEC")

    def on_close(self, fd: str) -> None:
        info = self.fds.pop(int(fd), None)
        self.record(op="close", fd=int(fd), kind=info["kind"] if info else None)

    def on_tracked(self, fd: str) -> None:
        self.fds[int(fd)] = {"kind": "oobsock", "bound": None}
        self.record(op="oobsock", fd=int(fd))

    # -- socket() ---------------------------------------------------------------------

    def on_socket(self, domain: str, type_: str, proto: str) -> None:
        d = self.double
        domain_i, type_i, proto_i = int(domain), int(type_), int(proto)
        bits = type_i & OOB_BITS
        self.record(op="socket", domain=domain_i, type=type_i, bit=bits)
        if domain_i != socket.AF_INET or type_i & SOCK_TYPE_MASK != socket.SOCK_DGRAM or proto_i != 0:
            self.violation(
                f"socket({domain_i}, {type_i:#x}, {proto_i}): evl net asks for AF_INET, SOCK_DGRAM|SOCK_OOB, 0"
            )
        if "SOCKET" in d.inject:
            return self.done(-1, d.inject["SOCKET"])
        if d.sock_oob_bit is None or bits != d.sock_oob_bit:
            # Not this kernel's SOCK_OOB: an unknown type flag.
            return self.done(-1, errno.EINVAL)
        self.send(f"create {type_i & ~bits}")

    def on_setsockopt(self, fd: str, level: str, optname: str, hexval: str) -> None:
        info = self.fds.get(int(fd))
        if not info or info["kind"] != "oobsock" or (int(level), int(optname)) != (SOL_SOCKET, SO_BINDTODEVICE):
            return self.send("pass")
        value = _unhex(hexval)
        name = value.split(b"\0", 1)[0].decode(errors="replace")
        self.record(op="setsockopt", opt="SO_BINDTODEVICE", ifname=name, raw=value)
        if not value.endswith(b"\0") or value.index(b"\0") != len(value) - 1:
            self.violation(f"SO_BINDTODEVICE value {value!r}: expected the name and one NUL (strlen + 1)")
        if "SO_BINDTODEVICE" in self.double.inject:
            return self.done(-1, self.double.inject["SO_BINDTODEVICE"])
        with self.double.sim() as sim:
            if name not in sim.board.interfaces:
                return self.done(-1, errno.ENODEV)
        info["bound"] = name
        self.done(0)

    # -- read()/write() ---------------------------------------------------------------

    def on_write(self, fd: str, hexdata: str) -> None:
        info = self.fds.get(int(fd))
        if not info or info["kind"] == "other":
            return self.send("pass")
        data = _unhex(hexdata)
        self.record(op="write", kind=info["kind"], data=data)
        if info["kind"] == "flush_arp":
            return self.write_flush_arp(info, data)
        if info["kind"] != "vlans":
            self.violation(f"write() on {info['kind']}")
            return self.done(-1, errno.EINVAL)
        if info["flags"] & O_ACCMODE == O_RDONLY:
            return self.done(-1, errno.EBADF)
        if not data:
            return self.done(0)  # sysfs: an empty write never reaches the store handler
        if "VLANS_WRITE" in self.double.inject:
            return self.done(-1, self.double.inject["VLANS_WRITE"])
        text = data.split(b"\0", 1)[0].decode(errors="surrogateescape")
        try:
            with self.double.sim() as sim:
                sim.set_vlans(text)
        except OSError as exc:
            return self.done(-1, exc.errno or errno.EIO)
        self.done(len(data))

    def write_flush_arp(self, info: dict[str, Any], data: bytes) -> None:
        """ipv4_flush_arp's store handler: any write flushes the ARP front cache."""
        if info["flags"] & O_ACCMODE == O_RDONLY:
            return self.done(-1, errno.EBADF)
        if not data:
            return self.done(0)
        if "FLUSH_ARP_WRITE" in self.double.inject:
            return self.done(-1, self.double.inject["FLUSH_ARP_WRITE"])
        with self.double.sim() as sim:
            sim.flush_arp()
        self.done(len(data))

    def on_read(self, fd: str, count: str) -> None:
        info = self.fds.get(int(fd))
        if not info or info["kind"] == "other":
            return self.send("pass")
        if info["kind"] == "flush_arp":
            self.record(op="read", kind="flush_arp", data=b"")
            return self.done(-1, errno.EIO, b"")
        if info["kind"] != "vlans":
            self.violation(f"read() on {info['kind']}")
            return self.done(-1, errno.EINVAL, b"")
        if info["flags"] & O_ACCMODE == O_WRONLY:
            return self.done(-1, errno.EBADF, b"")
        if info["content"] is None:
            with self.double.sim() as sim:
                info["content"] = (sim.get_vlans() + "\n").encode()
        chunk = info["content"][info["pos"] : info["pos"] + int(count)]
        info["pos"] += len(chunk)
        self.record(op="read", kind="vlans", data=chunk)
        self.done(len(chunk), 0, chunk)

    # -- ioctl() --------------------------------------------------------------------

    def on_ioctl(self, fd: str, req: str, arg: str, hexdata: str) -> None:
        fd_i, req_i, arg_i = int(fd), int(req, 16), int(arg, 16)
        data = _unhex(hexdata)
        info = self.fds.get(fd_i)
        kind = info["kind"] if info else "?"
        name = NAMES.get(req_i, f"{req_i:#x}")
        entry = self.record(op="ioctl", kind=kind, fd=fd_i, req=name, number=req_i, arg=arg_i, data=data)
        if info is None or kind == "other":
            return self.send("pass")
        if kind == "oobsock" and (req_i >> 8) & 0xFF not in EVL_IOC_TYPES:
            # A socket's own ioctls (CPython's FIOCLEX, say) are the socket layer's business.
            return self.send("pass")
        if req_i not in EXPECTED.get(kind, ()):
            self.violation(f"request {req_i:#010x} on a {kind} fd: not an EVL request for it")
            return self.done(-1, errno.ENOTTY)
        if name in self.double.inject:
            return self.done(-1, self.double.inject[name])
        size = (req_i >> 16) & 0x3FFF
        if not (req_i == SETPORT and arg_i == 0):
            if arg_i == 0 or len(data) != size:
                self.violation(f"{name}: bad user pointer {arg_i:#x} ({len(data)} of {size} bytes readable)")
                return self.done(-1, errno.EFAULT)
        try:
            out = getattr(self, "ioctl_" + name)(info, arg_i, data, entry)
        except Reject as exc:
            return self.done(-1, exc.code)
        except OSError as exc:  # the simulator's kernel semantics
            return self.done(-1, exc.errno or errno.EIO)
        if out is None:
            self.done(0)
        else:
            self.done(0, 0, out)

    def ioctl_GET_COREINFO(self, info, arg, data, entry) -> bytes:
        base, current = self.double.abi_range
        return CORE_INFO.pack(base, current, 0, 0)

    def ioctl_DEVOPEN(self, info, arg, data, entry) -> bytes:
        name_ptr, fd = DEVOPEN_S.unpack(data)
        if fd != 0 or any(data[12:16]):
            self.violation(f"DEVOPEN struct not zeroed: {data.hex()}")
        if name_ptr == 0:
            self.violation("DEVOPEN with a NULL name pointer")
            raise Reject(errno.EFAULT)
        err, raw = self.peek(name_ptr, IFNAMSIZ)
        if err or b"\0" not in raw:
            self.violation(
                f"DEVOPEN name at {name_ptr:#x} is not a NUL-terminated string of at most "
                f"{IFNAMSIZ - 1} bytes: {raw!r} (errno {err})"
            )
            raise Reject(errno.EFAULT if err else errno.ENAMETOOLONG)
        ifname = raw.split(b"\0", 1)[0].decode(errors="replace")
        entry["ifname"] = ifname
        with self.double.sim() as sim:
            sim.device(ifname)  # ENODEV for a device the board lacks
        newfd = self.mkfd()
        self.fds[newfd] = {"kind": "netdev", "ifname": ifname}
        entry["devfd"] = newfd
        return DEVOPEN_S.pack(name_ptr, newfd)

    def ioctl_SETPORT(self, info, arg, data, entry) -> None:
        ifname = entry["ifname"] = info["ifname"]
        with self.double.sim() as sim:
            if arg == 0:
                entry["action"] = "disable"
                sim.disable_port(ifname)
            else:
                pool, buf = DEVPARAMS.unpack(data)
                entry.update(action="enable", poolsz=pool, bufsz=buf)
                sim.enable_port(ifname, pool, buf)
        return None

    def ioctl_GETSTAT(self, info, arg, data, entry) -> bytes:
        ifname = entry["ifname"] = info["ifname"]
        with self.double.sim() as sim:
            st = sim.get_stat(ifname)
        flags = (OOB_CAPABLE if st.oob_capable else 0) | (OOB_PORT if st.oob_port else 0)
        return DEVSTAT.pack(
            st.rx_packets,
            st.rx_bytes,
            st.tx_packets,
            st.tx_bytes,
            st.skb_size,
            st.skb_free,
            st.skb_total,
            st.csum_errors,
            st.rx_nomem,
            st.tx_nomem,
            flags,
        )

    def ioctl_SETRXEBPF(self, info, arg, data, entry) -> None:
        ifname = entry["ifname"] = info["ifname"]
        (progfd,) = struct.unpack("=i", data)
        entry["progfd"] = progfd
        with self.double.sim() as sim:
            if progfd == -1:
                entry["action"] = "remove"
                sim.remove_rx_filter(ifname)
                return None
            entry["action"] = "install"
            real = sim.filter_device(ifname)  # ENODEV for a device that is no port
            link, fdinfo = self.fdinfo(progfd)
            entry["link"] = link
            if link is None:
                raise Reject(errno.EBADF)
            fields = dict(line.split(":\t", 1) for line in fdinfo.splitlines() if ":\t" in line)
            prog_type = int(fields["prog_type"]) if link == "anon_inode:bpf-prog" and "prog_type" in fields else None
            entry.update(prog_type=prog_type, prog_tag=fields.get("prog_tag"), prog_id=fields.get("prog_id"))
            if prog_type != BPF_PROG_TYPE_SOCKET_FILTER:
                # bpf_prog_get_type(): not a program, or not a socket filter.
                sim.log(sim.netdev_prefix(real) + "invalid out-of-band eBPF program")
                raise Reject(errno.EINVAL)
            sim.attach_filter(real, FilterInfo(prog_tag=fields.get("prog_tag"), prog_id=fields.get("prog_id")))
        return None

    def ioctl_SOLICIT(self, info, arg, data, entry) -> None:
        if len(data) != SOLICIT_SIZE:
            raise Reject(errno.ENOTTY)
        (family,) = struct.unpack_from("=H", data, 0)
        port = data[2:4]
        ip = socket.inet_ntoa(data[4:8])
        (flags,) = struct.unpack_from("=I", data, 128)
        entry.update(family=family, ip=ip, flags=flags, bound=info.get("bound"))
        if family != socket.AF_INET:
            self.violation(f"SOLICIT address family {family}, expected AF_INET")
            raise Reject(errno.EAFNOSUPPORT)
        if any(port) or any(data[8:128]) or any(data[132:]):
            self.violation(f"SOLICIT struct not zeroed beyond the sockaddr_in address: {data.hex()}")
        with self.double.sim() as sim:
            entry["result"] = to_json(sim.solicit(ip, info.get("bound"), flags))
        return None


def _unhex(text: str) -> bytes:
    return b"" if text == "-" else bytes.fromhex(text)
