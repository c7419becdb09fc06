"""The ``evl net`` plugin contract: transports, formatters and option handlers.

Any ``evl`` plugin may implement these hooks; the ``net`` plugin adds them to
the host through ``evl_addhooks``.  Records carry ``"module:attr"`` strings so
that registering costs no imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from evl_core.hookspecs import Ref, hookspec

if TYPE_CHECKING:
    from evl_net.engine.request import Request, Result


@dataclass(frozen=True)
class TransportInfo:
    """A way to reach an EVL network stack.

    ``factory(request) -> Transport`` builds it (see
    :class:`evl_net.transports.Transport` for the operations it must offer).
    """

    name: str
    summary: str
    factory: Ref


@dataclass(frozen=True)
class Formatter:
    """Renders results as text: ``render(result, request) -> str | None``.

    ``None`` means "not a kind of result I render": the plain text formatter
    is used instead.
    """

    name: str
    summary: str
    render: Ref


@dataclass(frozen=True)
class Action:
    """What one command option of ``evl net`` does.

    Actions given together run in ``order`` (the C tool's fixed sequence:
    disable 10, enable 20, filter 30, set VLANs 40, show VLANs 50, solicit 60,
    query 70).  ``run(request, argument, transport) -> Result | None``.  A third
    party adds a long-only option this way (``short`` stays ``None``: the
    C tool's letters are taken).  ``has_arg`` uses getopt's 0 / 1 / 2.
    """

    name: str
    order: int
    long: str
    short: str | None
    has_arg: int
    run: Ref
    help: str
    metavar: str | None = None
    needs_interface: bool = False


@hookspec
def evl_net_transports() -> Sequence[TransportInfo]:
    """Return the transports this plugin provides."""


@hookspec
def evl_net_formatters() -> Sequence[Formatter]:
    """Return the output formatters this plugin provides."""


@hookspec
def evl_net_actions() -> Sequence[Action]:
    """Return the ``evl net`` command options this plugin handles."""
