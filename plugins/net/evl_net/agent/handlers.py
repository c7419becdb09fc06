"""What each request does on the board: the transport contract's primitives, run on the local transport.

There is one handler for every row of
:data:`evl_net.transports.contract.PRIMITIVES`, derived from the row: the
arguments (checked by the protocol's schema, an eBPF object checked for size
and digest before anything loads it) go to the local transport's method of
the same row; the typed result goes back in its one JSON form.  A mutation
also records the board's state before and after (the row's ``probe``).
Nothing here names a file on the board.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evl_net.model import to_json
from evl_net.transports.contract import BY_WIRE, Primitive
from evl_net.transports.remote import protocol


def primitive(op: str) -> Primitive:
    return BY_WIRE[op]


def arguments(op: str, args: Mapping[str, Any], max_bpf: int) -> dict[str, Any]:
    """A validated request's arguments as the primitive's parameters; ProtocolError for a bad object."""
    return protocol.decode_args(BY_WIRE[op], args, max_bpf)


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
    method = getattr(transport, spec.method)
    if not spec.mutates:
        return {"value": to_json(method(**kwargs))}
    before = _probe(transport, spec.probe, args, after=False)
    data = to_json(method(**kwargs))
    after = _probe(transport, spec.probe, args, after=True)
    return {"data": data, "changed": data.get("changed") is True, "before": before, "after": after}
