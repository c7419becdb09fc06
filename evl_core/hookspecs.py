"""The whole plugin contract of ``evl``.

A plugin is a module (or object) with ``@hookimpl`` functions, registered
through the ``evl`` entry-point group::

    [project.entry-points.evl]
    mycmd = "evl_mycmd.plugin"

Built-in commands are registered through these very hooks.  Keep plugin
modules tiny: name handlers and parser builders as ``"module:attr"`` strings so
that listing commands imports nothing heavy.  What the hooks without
arguments return is kept in the registry cache (:mod:`evl_core.regcache`)
when it is plain data (records of strings, numbers, tuples, lists), so that
running a command imports neither pluggy nor the plugin's module; a record
holding a callable still works, without the cache.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Union

import pluggy

from evl_core.commands import Command, Context, build_parser_for, uniform_errors

if TYPE_CHECKING:
    from pluggy import PluginManager

PROJECT = "evl"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: A callable, or a ``"module:attr"`` string resolved when first needed.
Ref = Union[str, Callable[..., Any]]

__all__ = ["PROJECT", "Command", "Context", "Ref", "build_parser_for", "hookimpl", "hookspec", "uniform_errors"]


@hookspec(historic=True)
def evl_addhooks(pluginmanager: PluginManager) -> None:
    """Add a plugin's own hook specifications, e.g. ``pluginmanager.add_hookspecs(mod)``.

    Called for every plugin as it is registered, so a plugin may extend the
    contract for others (the ``net`` plugin declares its transports and
    formatters this way).
    """


@hookspec
def evl_commands() -> Sequence[Command]:
    """Return the commands this plugin provides, as :class:`Command` records."""
    return ()  # pluggy never calls a specification: this only makes the function match its type
