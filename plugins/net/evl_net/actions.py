"""What each ``evl net`` command does, in terms of transport operations.

Each handler returns a Result (data, no text) or raises an EvlError worded
like the C tool's messages: ``cannot enable out-of-band port on eth9``.
"""

from __future__ import annotations

import errno
from typing import Any

from evl_core.errors import EvlError
from evl_net.engine.request import Request, Result
from evl_net.transports import NEIGH_MAYROUTE, NEIGH_PERMANENT, Transport


_fail = EvlError.from_oserror


def enable(request: Request, arg: Any, transport: Transport) -> Result:
    ifname = request.ifname
    try:
        data = transport.enable_port(ifname, request.pool_size or 0, request.buffer_size or 0)
    except OSError as exc:
        raise _fail(f"cannot enable out-of-band port on {ifname}", exc) from None
    return Result("enable", ifname, data)


def disable(request: Request, arg: Any, transport: Transport) -> Result:
    ifname = request.ifname
    try:
        data = transport.disable_port(ifname)
    except OSError as exc:
        raise _fail(f"cannot disable out-of-band port on {ifname}", exc) from None
    return Result("disable", ifname, data)


def set_filter(request: Request, path: str | None, transport: Transport) -> Result:
    ifname = request.ifname
    obj = None
    if path is not None:  # --filter= names an (empty) path, as in C: not a removal
        try:
            with open(path, "rb") as f:
                obj = f.read()
        except OSError as exc:
            raise EvlError(f"cannot set BPF filter on {ifname}: cannot read {path or repr(path)}", exc.errno) from None
    try:
        data = transport.set_rx_filter(ifname, obj, path)
    except OSError as exc:
        raise _fail(f"cannot set BPF filter on {ifname}", exc) from None
    return Result("filter", ifname, {"object": path, **data})


def set_vlans(request: Request, text: str | None, transport: Transport) -> Result:
    # "cleared" says what was asked (-N alone), not what a read-back holds.
    try:
        data = transport.set_vlans(text or "")
    except OSError as exc:
        raise _fail(f"invalid VLAN id. list '{text or ''}'", exc) from None
    return Result("set-vlans", None, {"cleared": text is None, **data})


def show_vlans(request: Request, arg: Any, transport: Transport) -> Result:
    try:
        text = transport.get_vlans()
    except OSError as exc:
        raise _fail("cannot read the VLAN filter", exc) from None
    from evl_net.kernel import vlans

    ids = sorted(vlans.parse(text)) if text else []
    return Result("show-vlans", None, {"vlans": text, "ids": ids})


def solicit(request: Request, host: str, transport: Transport) -> Result:
    flags = NEIGH_MAYROUTE if request.gateway else 0
    if "solicit-permanent" in request.seen:
        flags |= NEIGH_PERMANENT
    try:
        data = transport.solicit(host, request.ifname, flags)
    except OSError as exc:
        if exc.errno == errno.ESRCH:
            raise EvlError(f"invalid host/IP address '{host}'") from None
        # The socket steps fail with the C tool's own words; the request itself with "did not respond".
        raise _fail(getattr(exc, "stage", None) or f"{host} did not respond", exc) from None
    return Result("solicit", request.ifname, {"host": host, **data})


def query(request: Request, mods: str | None, transport: Transport) -> Result:
    if request.all_interfaces:
        rows = []
        for iface in transport.interfaces():
            try:
                stat = transport.get_stat(iface.name).as_dict()
            except OSError as exc:  # one unreadable interface must not cost the whole table
                stat = {"error": exc.strerror or str(exc)}
            rows.append({"ifname": iface.name, "up": iface.up, **stat})
        return Result("query", None, {"modifiers": mods or "", "interfaces": rows})
    stat = _stat(transport, request.ifname)
    return Result("query", request.ifname, {"modifiers": mods or "", **stat.as_dict()})


def _stat(transport: Transport, ifname: str):
    try:
        return transport.get_stat(ifname)
    except OSError as exc:
        raise _fail(f"cannot query out-of-band port on {ifname}", exc) from None
