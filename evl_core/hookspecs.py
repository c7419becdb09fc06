"""The whole plugin contract of ``evl``.

A plugin is a module (or object) with ``@hookimpl`` functions, registered
through the ``evl`` entry-point group::

    [project.entry-points.evl]
    mycmd = "evl_mycmd.plugin"

Built-in commands are registered through these very hooks.  Keep plugin
modules tiny: name handlers and parser builders as ``"module:attr"`` strings so
that listing commands imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO, Union

import pluggy

if TYPE_CHECKING:
    import argparse

    from pluggy import PluginManager

PROJECT = "evl"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: A callable, or a ``"module:attr"`` string resolved when first needed.
Ref = Union[str, Callable[..., Any]]


@dataclass(frozen=True)
class Command:
    """One ``evl <name>`` command.

    ``parser`` builds the command's :class:`argparse.ArgumentParser`; it is
    what ``evl <name> args`` parses with and what its man page is generated
    from.  ``handler(args, ctx) -> int`` runs the command and returns its exit
    status.  A command with ``raw_args=True`` parses its own argument list
    (getopt-compatible commands): its handler receives the list of strings and
    its parser serves documentation only.  ``manpage`` may name a callable
    returning extra ``(heading, roff text)`` sections for the man page.
    """

    name: str
    summary: str
    parser: Ref
    handler: Ref
    raw_args: bool = False
    manpage: Ref | None = None


@dataclass
class Context:
    """What a handler may use besides its arguments."""

    prog: str
    name: str
    plugin_manager: PluginManager
    commands: Mapping[str, Command]
    cmddir: str
    stdout: TextIO
    stderr: TextIO
    env: Mapping[str, str] = field(default_factory=dict)
    #: Commands claimed by several plugins: name -> the claimants' labels.
    conflicts: Mapping[str, Sequence[str]] = field(default_factory=dict)
    #: plugin name -> "name (distribution version)"
    plugin_labels: Mapping[str, str] = field(default_factory=dict)


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


def build_parser_for(command: Command, prog: str, plugin_manager: Any = None) -> argparse.ArgumentParser:
    """Build a command's parser and give it the program name users see.

    A builder taking a ``plugin_manager`` argument gets the loaded plugins,
    so that what they add to the command (options of a plugin's own hooks)
    is documented with it.
    """
    from evl_core.lazy import resolve

    builder = resolve(command.parser)
    if plugin_manager is not None and _takes(builder, "plugin_manager"):
        parser = builder(plugin_manager=plugin_manager)
    else:
        parser = builder()
    parser.prog = prog
    uniform_errors(parser, prog)
    return parser


def uniform_errors(parser: argparse.ArgumentParser, prog: str) -> None:
    """Make ``parser`` and its subcommands' parsers report usage errors in the C tools' style.

    ``<prog>: <message>`` (one line: input it echoes is escaped and shortened),
    then the usage of the (sub)command, exit status 2, for every command alike.
    """
    import argparse
    import sys

    def error(sub: argparse.ArgumentParser, message: str) -> Any:
        from evl_core.errors import one_line

        sys.stderr.write(f"{prog}: {one_line(message)}\n")
        sub.print_usage(sys.stderr)
        sys.exit(2)

    seen: set[int] = set()
    todo = [parser]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        current.error = error.__get__(current)  # type: ignore[method-assign]
        for action in current._actions:
            choices = getattr(action, "choices", None)
            if isinstance(action, argparse._SubParsersAction) and isinstance(choices, dict):
                todo.extend(choices.values())


def _takes(function: Any, name: str) -> bool:
    code = getattr(function, "__code__", None)
    return code is not None and name in code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
