"""The board's own transport, as the agent opens it afresh for each operation."""

from __future__ import annotations

from evl_core.errors import EvlError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any


class Backend:
    """Opens the board's local transport, afresh for each operation."""

    def __init__(
        self,
        name: str,
        factory: Callable[..., Any],
        board: str | None,
        env: Mapping[str, str],
        notice: str | None = None,
    ) -> None:
        self.name = name
        self.factory = factory
        self.board = board
        self.env = env
        #: what local use would say on stderr about the choice (the simulator standing in for the core)
        self.notice = notice

    @classmethod
    def from_ctx(cls, name: str | None, board: str | None, ctx: Any) -> Backend:
        from evl_core.lazy import resolve
        from evl_net.engine import select
        from evl_net.registrations import TransportInfo
        from evl_net.registry import named

        env = {k: v for k, v in ctx.env.items() if k != select.REMOTE_ENV}
        name, node = select.local_name(name, env)
        notice = None
        if node is not None and name == "sim":
            notice = f"no EVL core there (no {node}): the board's agent uses the simulator"
        if name == "remote":
            raise EvlError("the agent serves its own board: --transport=remote is not allowed here")
        found = named(ctx, "evl_net_transports", TransportInfo, "transport")
        info = select.find(name, found.records, found.conflicts, exclude=("remote",))
        return cls(name, resolve(info.factory), board, env, notice)

    def open(self) -> Any:
        from evl_net.engine.request import Request

        return self.factory(Request(board=self.board, transport=self.name), self.env)

    def abi(self) -> dict[str, Any]:
        """The EVL ABI range of the board (the simulator claims the one these tools are written for)."""
        from evl_core import EVL_ABI_PREREQ

        try:
            transport = self.open()
        except (EvlError, OSError) as exc:
            return {"base": None, "current": None, "error": str(exc)}
        try:
            info = getattr(transport, "core_info", None)
            if isinstance(info, dict) and "abi_base" in info:
                return {"base": int(info["abi_base"]), "current": int(info["abi_current"])}
            return {"base": EVL_ABI_PREREQ, "current": EVL_ABI_PREREQ, "simulated": self.name == "sim"}
        finally:
            try:
                transport.close()
            except (EvlError, OSError):
                pass
