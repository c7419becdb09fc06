"""The :class:`Transport` protocol: :data:`evl_net.transports.contract.PRIMITIVES` as Python methods.

For type checkers, and for the test that keeps the two equal; it lives apart
from the table because a ``typing.Protocol`` costs ``typing`` at import, which
running a request does not need (``contract.Transport`` still names it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from evl_net.model import DevStat
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


@runtime_checkable
class Transport(Protocol):
    """A way to reach one board's EVL network stack; each method is one row of :data:`PRIMITIVES`.

    A transport is used as a context manager around one invocation, so that
    one holding state (the simulator) can load and store it once.  ``name``
    says which one it is; ``console``, when set, receives the kernel log
    lines an operation prints, as a console would show them.
    """

    name: str

    def __enter__(self) -> Transport: ...

    def __exit__(self, *exc: Any) -> None: ...

    def close(self) -> None:
        """Release what the transport holds."""

    def page_size(self) -> int:
        """The board's page size, which bounds the buffer size (4 x page size)."""

    def interfaces(self) -> Sequence[Interface]:
        """Every network interface of the board."""

    def get_stat(self, ifname: str) -> DevStat:
        """Open the device and read its ``evl_net_devstat``."""

    def get_vlans(self) -> str:
        """The global RX VLAN filter as the kernel prints it, without the newline."""

    def enable_port(self, ifname: str, pool_size: int, buffer_size: int) -> PortConfig:
        """Open the device and make it an out-of-band port (0 = kernel default)."""

    def disable_port(self, ifname: str) -> Change:
        """Open the device and dismantle its out-of-band port."""

    def install_rx_filter(self, ifname: str, obj: bytes, obj_name: str) -> FilterInstalled:
        """Install the first program of an eBPF object as the RX filter of the port's real device."""

    def remove_rx_filter(self, ifname: str) -> Change:
        """Remove the port's RX filter (``changed`` is True where the kernel cannot tell)."""

    def solicit(self, host: str, ifname: str | None, flags: int) -> Solicited:
        """Resolve ``host`` and solicit it into the out-of-band ARP front cache."""

    def set_vlans(self, text: str) -> VlansSet:
        """Write the global RX VLAN filter (kernel list syntax; empty clears it)."""

    def core_abi(self) -> CoreAbi:
        """The ABI revisions the board's EVL core speaks."""

    def links(self) -> Sequence[Link]:
        """Every network interface with its networking set-up (VLAN, MTU, state, IPv4 addresses)."""

    def filter_state(self, ifname: str) -> FilterState:
        """What is known of the RX filter of port ``ifname``'s real device (ENODEV for a non-port)."""

    def arp_cache(self) -> Sequence[Neighbour]:
        """The entries of the out-of-band ARP front cache."""

    def peer_route(self, host: str, ifname: str | None, flags: int) -> PeerRoute:
        """Where soliciting ``host`` would go, and what the front cache holds for it; nothing is sent."""

    def flush_arp(self) -> Change:
        """Flush the out-of-band ARP front cache (``ipv4_flush_arp``)."""

    def create_vlan(self, ifname: str, parent: str, vlan_id: int) -> Change:
        """Create VLAN device ``ifname`` on ``parent`` (``ip link add link PARENT name IFNAME type vlan id N``)."""

    def delete_link(self, ifname: str) -> Change:
        """Delete a VLAN device (its port, if any, goes with it)."""

    def set_mtu(self, ifname: str, mtu: int) -> Change:
        """Set the MTU of a device."""

    def set_link_up(self, ifname: str, up: int) -> Change:
        """Bring a device up (1) or down (0); going down dismantles its port as the kernel does."""

    def add_address(self, ifname: str, address: str) -> Change:
        """Add an IPv4 address/prefix to a device."""

    def remove_address(self, ifname: str, address: str) -> Change:
        """Remove an IPv4 address/prefix from a device."""
