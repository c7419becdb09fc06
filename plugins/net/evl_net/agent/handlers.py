"""What each request does on the board: the transport contract's primitives, run on the local transport.

There is one handler for every row of
:data:`evl_net.transports.contract.PRIMITIVES`, derived from the row: the
arguments (checked by the protocol's schema, an eBPF object checked for size
and digest before anything loads it) go to the local transport's method of
the same row; the typed result goes back in its one JSON form.  A mutation
also records the board's state before and after (the row's ``probe``).
Nothing here names a file on the board.

The agent also checks what it can itself, so that a client that is not
``evl net`` gets one clear EINVAL rather than whatever the board makes of it:
a pool size above the kernel's limit and solicitation flags the ABI does not
define are refused with the arguments, before the board's lock is taken or
the transport opened; a buffer size above 4 x the board's page size, which
only the transport knows, before anything else reaches the transport.
"""

from __future__ import annotations

import errno

from evl_net.errors import KernelError
from evl_net.model import to_json
from evl_net.transports.contract import BY_WIRE, DEFAULT_POOL, NEIGH_MAYROUTE, NEIGH_PERMANENT, POOL_MAX, Primitive
from evl_net.transports.remote import protocol

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

#: The flags of a solicitation the ABI defines (docs/abi.md, "Requests"); any other bit is refused.
SOLICIT_FLAGS = NEIGH_PERMANENT | NEIGH_MAYROUTE
#: No Linux page is larger than 256 KiB: a buffer size above 4 x that is refused with the arguments.
BUFFER_MAX = 4 * 256 * 1024


def primitive(op: str) -> Primitive:
    return BY_WIRE[op]


def arguments(op: str, args: Mapping[str, Any], max_bpf: int) -> dict[str, Any]:
    """A validated request's arguments as the primitive's parameters.

    ProtocolError for a bad object, and EINVAL for a value the kernel is
    known to refuse whatever the board (see the module docstring).
    """
    kwargs = protocol.decode_args(BY_WIRE[op], args, max_bpf)
    if op == "port.enable":
        pool, buffer = kwargs["pool_size"], kwargs["buffer_size"]
        if pool > POOL_MAX:
            raise protocol.ProtocolError(
                "EINVAL", f"{op}: pool size {pool} is above the kernel's limit of {POOL_MAX} (0: {DEFAULT_POOL})"
            )
        if buffer > BUFFER_MAX:
            raise protocol.ProtocolError(
                "EINVAL", f"{op}: buffer size {buffer} is above 4 x the largest page size ({BUFFER_MAX})"
            )
    elif op in ("solicit", "peer.route"):
        unknown = kwargs["flags"] & ~SOLICIT_FLAGS
        if unknown:
            raise protocol.ProtocolError(
                "EINVAL",
                f"{op}: unknown flags 0x{unknown:x} (the ABI defines 0x{NEIGH_PERMANENT:x} permanent, "
                f"0x{NEIGH_MAYROUTE:x} may-route)",
            )
    return kwargs


def check_board(transport: Any, op: str, kwargs: Mapping[str, Any]) -> None:
    """Refuse (EINVAL) what exceeds the board's own limits, asking the transport only what it reads.

    A port's buffer size may be at most 4 x the board's page size (0: the
    page size); the transport's ``page_size`` is the one request made first.
    """
    if op == "port.enable" and kwargs["buffer_size"]:
        page = transport.page_size()
        if kwargs["buffer_size"] > 4 * page:
            raise KernelError(
                errno.EINVAL,
                f"{op}: buffer size {kwargs['buffer_size']} is above the board's limit of {4 * page} "
                f"(4 x its {page}-byte pages)",
            )


def _probe(transport: Any, kind: str | None, args: Mapping[str, Any], after: bool) -> Any:
    if kind == "port":
        try:
            stat = transport.get_stat(args["ifname"])
        except OSError:
            return None
        return {"oob_port": bool(stat.oob_port), "skb_total": stat.skb_total, "skb_size": stat.skb_size}
    if kind == "vlans":
        return transport.get_vlans()
    if kind == "filter":  # the kernel cannot be asked which program is installed: what this request left
        return {"filter_sha256": args.get("sha256")} if after else None
    return None


def handle(transport: Any, op: str, kwargs: Mapping[str, Any], args: Mapping[str, Any]) -> dict[str, Any]:
    """Run request ``op`` on ``transport``.

    The reply of a read is ``{"value"}``; of a mutation, ``{"data", "changed", "before", "after"}``.
    """
    spec = BY_WIRE[op]
    check_board(transport, op, kwargs)
    method = getattr(transport, spec.method)
    if not spec.mutates:
        return {"value": to_json(method(**kwargs))}
    before = _probe(transport, spec.probe, args, after=False)
    data = to_json(method(**kwargs))
    after = _probe(transport, spec.probe, args, after=True)
    return {"data": data, "changed": data.get("changed") is True, "before": before, "after": after}
