"""The ``evl net`` plugin contract: operations, transports and formatters.

Any ``evl`` plugin may implement these hooks; the ``net`` plugin adds them to
the host through ``evl_addhooks`` and registers its own built-ins through them
too.  Records carry ``"module:attr"`` strings so that registering costs no
imports.  Two plugins claiming one operation, option, transport or formatter
name make it unavailable, with an error naming both; a built-in always wins
over a third party (see :mod:`evl_net.registry`).
"""

from __future__ import annotations

from collections.abc import Sequence

from evl_core.hookspecs import hookspec
from evl_net.registrations import C_LONG_OPTIONS, OPTION_NAMES, Formatter, Operation, TransportInfo

__all__ = ["C_LONG_OPTIONS", "OPTION_NAMES", "Formatter", "Operation", "TransportInfo"]


@hookspec
def evl_net_transports() -> Sequence[TransportInfo]:
    """Return the transports this plugin provides."""
    return ()  # pluggy never calls a specification: this only makes the function match its type


@hookspec
def evl_net_formatters() -> Sequence[Formatter]:
    """Return the output formatters this plugin provides."""
    return ()  # pluggy never calls a specification: this only makes the function match its type


@hookspec
def evl_net_operations() -> Sequence[Operation]:
    """Return the ``evl net`` operations (command options) this plugin provides."""
    return ()  # pluggy never calls a specification: this only makes the function match its type
