"""The simulator transport: the EVL network stack's kernel semantics, in user space.

The public face is here: :func:`factory` (the ``sim`` transport of the
registry), :class:`SimTransport`, :func:`host_netns` and :data:`BOARD_ENV`.
The package is split by concern:

* :mod:`~evl_net.transports.sim.kernel`: :class:`SimTransport`, what the EVL
  core does for each request (docs/abi.md says what it relies on);
* :mod:`~evl_net.transports.sim.fib`: host names, route lookup and peers;
* :mod:`~evl_net.transports.sim.records`: the state as typed records, and
  their JSON form;
* :mod:`~evl_net.transports.sim.store`: every board's state in one file,
  switching boards and reconciling the host mirror;
  :mod:`~evl_net.transports.sim.state`: that file's locking and atomic writes;
* :mod:`~evl_net.transports.sim.board`: board files;
  :mod:`~evl_net.transports.sim.host`: the host mirror (a board taken from
  the live kernel);
* :mod:`~evl_net.transports.sim.traffic`, ``frames`` and ``ebpf``: RX frames
  through the EVL input path, TX through the pool, the eBPF interpreter.
"""

from __future__ import annotations

from evl_net.transports.sim.kernel import SimTransport

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

__all__ = ["BOARD_ENV", "SimTransport", "factory", "host_netns"]

#: The environment variable naming the board when ``--board`` does not.
BOARD_ENV = "EVL_SIM_BOARD"


def host_netns(spec: str | None) -> str | None:
    """The namespace a ``host`` / ``host:NETNS`` board mirrors ("" = ours), None for other boards."""
    if spec == "host":
        return ""
    if spec and spec.startswith("host:") and spec[5:]:
        return spec[5:]
    return None


def factory(request: Any, env: Mapping[str, str]) -> SimTransport:
    """The simulator transport of a request: its board (``--board``, else EVL_SIM_BOARD) and the state file."""
    from evl_net.transports.sim.boardcache import default_dir
    from evl_net.transports.sim.state import default_path

    return SimTransport(
        board=request.board or env.get(BOARD_ENV) or None, state_path=default_path(env), cache_dir=default_dir(env)
    )
