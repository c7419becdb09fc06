"""The transport interface: the kernel-level operations ``evl net`` is made of.

Every transport (the real ioctl ABI, the simulator, a remote board) offers
the same operations with the same errno semantics, so the command, its
messages and its output are identical whichever one runs underneath.
Failures are raised as :class:`OSError` carrying the kernel's errno.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

from evl_net.errors import KernelError

#: evl_net_solicit flags (uapi)
NEIGH_PERMANENT = 0x1
NEIGH_MAYROUTE = 0x2

#: Kernel limits of a port's buffer pool (evl-abi §4).
POOL_MAX = 32768
DEFAULT_POOL = 2048


kernel_error = KernelError


@dataclass
class DevStat:
    """``struct evl_net_devstat``: a device's out-of-band counters and pool."""

    rx_packets: int = 0
    rx_bytes: int = 0
    tx_packets: int = 0
    tx_bytes: int = 0
    skb_size: int = 0
    skb_free: int = 0
    skb_total: int = 0
    csum_errors: int = 0
    rx_nomem: int = 0
    tx_nomem: int = 0
    oob_capable: bool = False
    oob_port: bool = False

    COUNTERS = (
        "rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "skb_size", "skb_free",
        "skb_total", "csum_errors", "rx_nomem", "tx_nomem",
    )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DevStat":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class Interface:
    """A network interface as ``evl net -Q --all-interfaces`` lists it."""

    name: str
    oob_port: bool
    up: bool = True


class Transport:
    """Base class: each method is one kernel operation.

    A transport is used as a context manager around one invocation, so that
    one holding state (the simulator) can load and store it once.
    """

    name = "?"

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Release what the transport holds."""

    def page_size(self) -> int:
        """The board's page size, which bounds the buffer size (4 × page size)."""
        raise NotImplementedError

    def enable_port(self, ifname: str, pool_size: int, buffer_size: int) -> dict[str, Any]:
        """Open the device and make it an out-of-band port (0 = kernel default)."""
        raise NotImplementedError

    def disable_port(self, ifname: str) -> dict[str, Any]:
        """Open the device and dismantle its out-of-band port."""
        raise NotImplementedError

    def get_stat(self, ifname: str) -> DevStat:
        """Open the device and read its ``evl_net_devstat``."""
        raise NotImplementedError

    def set_rx_filter(self, ifname: str, obj: bytes | None, obj_name: str | None) -> dict[str, Any]:
        """Install the first program of an eBPF object as RX filter, or remove it (``None``)."""
        raise NotImplementedError

    def solicit(self, host: str, ifname: str | None, flags: int) -> dict[str, Any]:
        """Resolve ``host`` and solicit it into the out-of-band ARP front cache."""
        raise NotImplementedError

    def set_vlans(self, text: str) -> dict[str, Any]:
        """Write the global RX VLAN filter (kernel list syntax; empty clears it)."""
        raise NotImplementedError

    def get_vlans(self) -> str:
        """Read the global RX VLAN filter as the kernel prints it, without the newline."""
        raise NotImplementedError

    def interfaces(self) -> Sequence[Interface]:
        """Every network interface, for ``-Q --all-interfaces``."""
        raise NotImplementedError
