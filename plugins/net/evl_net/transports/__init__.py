"""The ways to reach a board's EVL network stack: the kernel ABI, the simulator, a remote board.

:mod:`evl_net.transports.contract` is what they all implement; what they
share lives here, in the package itself, so that a local query loads no
module more than it needs.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any


#: The boards ``evl net`` administers when no transport is chosen: a comma list of [user@]host[:port].
REMOTE_ENV = "EVL_NET_REMOTE"

#: evl_net_solicit flags (uapi)
NEIGH_PERMANENT = 0x1
NEIGH_MAYROUTE = 0x2

#: Kernel limits of a port's buffer pool (docs/abi.md, "Ports").
POOL_MAX = 32768
DEFAULT_POOL = 2048


class TransportBase:
    """The context-manager protocol around :meth:`close`, which every transport has."""

    name = "?"
    console: Any = None

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Release what the transport holds."""
