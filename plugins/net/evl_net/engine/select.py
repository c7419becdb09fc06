"""Which transport serves a command: the choice ``evl net``, the board agent and the library share."""

from __future__ import annotations

import os

from evl_core.errors import EvlError
from evl_net.registrations import TransportInfo
from evl_net.transports import REMOTE_ENV

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

TRANSPORT_ENV = "EVL_NET_TRANSPORT"
DEVDIR_ENV = "EVL_DEVDIR"

#: Options that only make sense with remote boards.
REMOTE_ONLY = frozenset({"jobs", "jsonl", "accept-new-host-key", "ssh", "timeout", "retries", "known-hosts"})


def remote_wanted(request: Any, env: Mapping[str, str]) -> bool:
    """Whether the command goes to remote boards (decided without importing anything of remote).

    Boards named on the command line win over ``EVL_NET_TRANSPORT``;
    ``EVL_NET_REMOTE`` applies when no transport is chosen.
    """
    if request.remotes or request.hosts:
        if request.transport not in (None, "remote"):
            raise EvlError(f"--remote and --hosts need the remote transport, not '{request.transport}'")
        if request.board:
            raise EvlError("--board names a simulated board here; a remote board is the board itself")
        return True
    name = request.transport or env.get(TRANSPORT_ENV) or "auto"
    return name == "remote" or (name == "auto" and bool(env.get(REMOTE_ENV)))


def local_name(name: str | None, env: Mapping[str, str]) -> tuple[str, str | None]:
    """(transport name, the device node looked for) with ``auto`` settled: ioctl where an EVL core is."""
    name = name or env.get(TRANSPORT_ENV) or "auto"
    if name != "auto":
        return name, None
    node = os.path.join(env.get(DEVDIR_ENV) or "/dev/evl", "net")
    return ("ioctl" if os.path.exists(node) else "sim"), node


def find(
    name: str,
    transports: Sequence[TransportInfo],
    conflicts: Mapping[str, Sequence[str]] = {},
    exclude: tuple[str, ...] = (),
) -> TransportInfo:
    """The registered transport ``name``, or a clear error naming what there is."""
    key = f"transport '{name}'"
    if key in conflicts:
        raise EvlError(f"{key} is claimed by several plugins: " + " and ".join(conflicts[key]))
    for info in transports:
        if info.name == name and name not in exclude:
            return info
    available = ", ".join(["auto", *sorted(t.name for t in transports if t.name not in exclude)])
    raise EvlError(f"unknown transport '{name}' (available: {available})")


def open_transport(info: TransportInfo, request: Any, env: Mapping[str, str], console: Any = None) -> Any:
    """Build the transport; ``console`` receives the kernel log lines its operations print."""
    from evl_core.lazy import resolve

    factory: Callable[..., Any] = resolve(info.factory)
    transport = factory(request, env)
    if console is not None and hasattr(transport, "console"):
        transport.console = console
    return transport
