"""The library API: open a board, run ``evl net`` operations on it, get typed results.

::

    from evl_net import api

    with api.open_board(transport="sim", board="manual") as board:
        board.enable("eth0.42", pool_size=4096)
        board.set_vlans("42")
        print(board.query("eth0.42").stat.skb_total)      # 4096

Every method runs the very operation ``evl net`` runs (same checks, same
order, same errors: :class:`evl_core.errors.EvlError`, worded as the
command words them), through any registered transport: ``"sim"``,
``"ioctl"``, ``"remote"`` (with ``remote="user@host"``) or ``"auto"``.
Results are the operations' records (:mod:`evl_net.ops`); ``to_json()``
gives the form ``evl net --json`` prints.  A simulated board holds the
simulator state's lock while it is open, as one ``evl net`` invocation does:
keep boards open for a batch of operations, not for the life of a program.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, TextIO

from evl_core.errors import EvlError
from evl_net.engine import execute, select
from evl_net.engine.request import OpResult, Request
from evl_net.registrations import Operation, TransportInfo
from evl_net.transports import NEIGH_MAYROUTE, NEIGH_PERMANENT


class Board:
    """One board, open through one transport; use it as a context manager (or call :meth:`close`)."""

    def __init__(self, transport: Any, operations: list[Operation]) -> None:
        self.transport = transport
        self._operations = operations

    def __enter__(self) -> Board:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    @property
    def operations(self) -> list[str]:
        """The names of the operations this board can run (built-ins and plugins')."""
        return sorted({op.name for op in self._operations})

    def run(self, operation: str, argument: Any = None, **fields: Any) -> OpResult:
        """Run one operation by name; ``fields`` are :class:`~evl_net.engine.request.Request` fields (``ifname``...)."""
        seen = fields.pop("_seen", ())
        from evl_core.record import fields as record_fields

        known = {f.name for f in record_fields(Request)}
        unknown = sorted(set(fields) - set(known))
        if unknown:
            raise EvlError(f"{operation}: unknown field '{unknown[0]}' (fields: {', '.join(sorted(known))})")
        request = Request(**fields)
        request.actions[operation] = argument
        request.seen.update(seen)
        steps = execute.plan(request, self._operations)
        if not steps:
            raise EvlError(f"no operation '{operation}' (available: {', '.join(self.operations)})")
        for op, _arg in steps:
            if op.needs_interface and not request.ifname and not request.all_interfaces:
                raise EvlError(f"{operation}: a network interface must be specified (ifname=...)")
            if op.has_arg == 0 and argument is not None:
                raise EvlError(f"{operation} takes no argument")
        execute.check(request, steps)
        (result,) = execute.run_all(request, steps, self.transport)
        return result

    # -- the built-in operations, by name --------------------------------------------------

    def enable(self, ifname: str, pool_size: int = 0, buffer_size: int = 0) -> Any:
        pool = _size(pool_size, "pool size", 32768)
        buf = _size(buffer_size, "buffer size", 2**64 - 1)  # the page-size bound is checked on the board
        return self.run("enable", ifname=ifname, pool_size=pool or None, buffer_size=buf or None)

    def disable(self, ifname: str) -> Any:
        return self.run("disable", ifname=ifname)

    def set_filter(self, ifname: str, path: str | os.PathLike[str] | None) -> Any:
        """Install the eBPF object at ``path`` as the port's RX filter, or remove the filter (None)."""
        return self.run("filter", None if path is None else os.fspath(path), ifname=ifname)

    def set_vlans(self, vlans: str | Iterable[int] | None) -> Any:
        """Set the global RX VLAN filter (kernel list syntax or ids); None clears it."""
        if vlans is not None and not isinstance(vlans, str):
            from evl_net.kernel import vlans as syntax

            try:
                ids = sorted({_vid(v) for v in vlans})
            except TypeError:
                raise EvlError(f"invalid VLAN ids {vlans!r}: expected a list string or integers") from None
            vlans = syntax.format(ids) or None
        return self.run("set-vlans", vlans)

    def vlans(self) -> Any:
        return self.run("show-vlans")

    def solicit(self, host: str, ifname: str | None = None, permanent: bool = False, may_route: bool = False) -> Any:
        seen = ["solicit-permanent"] if permanent else []
        return self.run("solicit", host, ifname=ifname, gateway=may_route, _seen=seen)

    def query(self, ifname: str) -> Any:
        return self.run("query", ifname=ifname)

    def query_all(self) -> Any:
        return self.run("query", all_interfaces=True)

    # -- beyond evl net: the board's links, and what is known of its filters and ARP front cache -----
    # (what evl net-config reads and changes; each is one request of the transport contract)

    def page_size(self) -> int:
        return int(self._call("cannot read the page size", "page_size"))

    def stat(self, ifname: str) -> Any:
        """The device's counters, pool and flags (:class:`~evl_net.model.DevStat`), port or not."""
        return self._call(f"cannot query out-of-band port on {ifname}", "get_stat", _name(ifname))

    def get_vlans(self) -> str:
        """The global RX VLAN filter in the kernel's list syntax ("" when empty)."""
        return str(self._call("cannot read VLAN filter", "get_vlans"))

    def core_abi(self) -> Any:
        """The ABI revisions the board's EVL core speaks (:class:`~evl_net.outcomes.CoreAbi`)."""
        return self._call("cannot read the EVL core's ABI", "core_abi")

    def links(self) -> list[Any]:
        """Every interface: VLAN set-up, MTU, state, addresses, oob flags (:class:`~evl_net.outcomes.Link`)."""
        return list(self._call("cannot list the network interfaces", "links"))

    def filter_state(self, ifname: str) -> Any:
        """What is known of the RX filter on port ``ifname``'s real device (:class:`~evl_net.outcomes.FilterState`)."""
        return self._call(f"cannot read the eBPF filter state of {ifname}", "filter_state", _name(ifname))

    def arp_cache(self) -> list[Any]:
        """The out-of-band ARP front cache (:class:`~evl_net.outcomes.Neighbour` entries)."""
        return list(self._call("cannot read the ARP front cache", "arp_cache"))

    def peer_route(self, host: str, ifname: str | None = None, permanent: bool = False, may_route: bool = False) -> Any:
        """Where soliciting ``host`` would go and what is cached for it (:class:`~evl_net.outcomes.PeerRoute`)."""
        flags = (NEIGH_PERMANENT if permanent else 0) | (NEIGH_MAYROUTE if may_route else 0)
        where = f" via {ifname}" if ifname else ""
        return self._call(
            f"cannot route {host}{where}", "peer_route", _host(host), None if ifname is None else _name(ifname), flags
        )

    def flush_arp(self) -> Any:
        return self._call("cannot flush the ARP front cache", "flush_arp")

    def create_vlan(self, ifname: str, parent: str, vlan_id: int) -> Any:
        if type(vlan_id) is not int or not 1 <= vlan_id <= 4094:
            raise EvlError(f"invalid VLAN id {vlan_id!r}: expected an integer in 1..4094")
        return self._call(
            f"cannot create VLAN device {ifname} on {parent}", "create_vlan", _name(ifname), _name(parent), vlan_id
        )

    def delete_link(self, ifname: str) -> Any:
        return self._call(f"cannot delete {ifname}", "delete_link", _name(ifname))

    def set_mtu(self, ifname: str, mtu: int) -> Any:
        if type(mtu) is not int or not 68 <= mtu <= 65535:
            raise EvlError(f"invalid MTU {mtu!r}: expected an integer in 68..65535")
        return self._call(f"cannot set the MTU of {ifname} to {mtu}", "set_mtu", _name(ifname), mtu)

    def set_link_up(self, ifname: str, up: bool) -> Any:
        word = "up" if up else "down"
        return self._call(f"cannot bring {ifname} {word}", "set_link_up", _name(ifname), int(bool(up)))

    def add_address(self, ifname: str, address: str) -> Any:
        return self._call(f"cannot add {address} to {ifname}", "add_address", _name(ifname), _cidr(address))

    def remove_address(self, ifname: str, address: str) -> Any:
        return self._call(f"cannot remove {address} from {ifname}", "remove_address", _name(ifname), _cidr(address))

    def _call(self, what: str, method: str, *args: Any) -> Any:
        try:
            return getattr(self.transport, method)(*args)
        except EvlError:
            raise
        except OSError as exc:
            raise EvlError.from_oserror(what, exc) from None


def _name(ifname: Any) -> str:
    from evl_net.kernel.names import name_problem

    problem = name_problem(ifname) if isinstance(ifname, str) else "not a string"
    if problem is not None:
        from evl_core.errors import shown

        raise EvlError(f"invalid interface name {shown(repr(ifname))}: {problem}")
    return str(ifname)


def _host(host: Any) -> str:
    if not isinstance(host, str) or not host or len(host) > 253 or not host.isprintable() or host != host.strip():
        from evl_core.errors import shown

        raise EvlError(f"invalid host {shown(repr(host))}")
    return host


def _cidr(address: Any) -> str:
    import ipaddress

    try:
        if not isinstance(address, str) or "/" not in address:
            raise ValueError
        return str(ipaddress.IPv4Interface(address))
    except ValueError:
        from evl_core.errors import shown

        raise EvlError(f"invalid address {shown(repr(address))}: expected an IPv4 address/prefix") from None


def _size(value: Any, what: str, limit: int) -> int:
    if type(value) is not int or not 0 <= value <= limit:
        raise EvlError(f"invalid {what} {value!r}: expected an integer in 0..{limit}")
    return value


def _vid(value: Any) -> int:
    if type(value) is not int or not 0 <= value <= 4095:
        raise EvlError(f"invalid VLAN id {value!r}: expected an integer in 0..4095")
    return value


def _context(env: Mapping[str, str], stderr: TextIO) -> Any:
    from evl_core import plugins
    from evl_core.commands import Context

    registry = plugins.load(stderr=stderr, env=dict(env))
    return Context(
        prog="evl-net",
        name="net",
        plugin_manager=registry.plugin_manager,
        commands=registry.commands,
        cmddir="",
        stdout=io.StringIO(),
        stderr=stderr,
        env=env,
        plugin_labels=registry.labels,
    )


def open_board(
    transport: str = "auto",
    board: str | None = None,
    remote: str | None = None,
    env: Mapping[str, str] | None = None,
    console: TextIO | None = None,
    **remote_options: Any,
) -> Board:
    """Open a board: ``transport`` auto, sim, ioctl or remote; ``board`` a simulated board (file or name);
    ``remote`` ``[user@]host[:port]`` for the remote transport, with ``ssh``, ``timeout`` (text, as the
    options of ``evl net`` take them) and ``accept_new_host_key``.  ``console`` receives kernel log lines
    and warnings (default: dropped)."""
    from evl_net.registry import named, operations

    unknown = sorted(set(remote_options) - {"ssh", "timeout", "accept_new_host_key"})
    if unknown:
        raise EvlError(f"open_board: unknown option '{unknown[0]}'")
    env = dict(os.environ if env is None else env)
    console = console if console is not None else io.StringIO()
    ctx = _context(env, console)
    request = Request(transport=transport, board=board, remotes=[remote] if remote else [], **remote_options)
    if remote and transport not in ("auto", "remote"):
        raise EvlError(f"a remote board needs the remote transport, not '{transport}'")
    name = "remote" if remote else select.local_name(None if transport == "auto" else transport, env)[0]
    found = named(ctx, "evl_net_transports", TransportInfo, "transport")
    info = select.find(name, found.records, found.conflicts)
    return Board(select.open_transport(info, request, env, console), operations(ctx).records)
