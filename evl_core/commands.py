"""The records of the plugin contract (a command, the context its handler runs in) and how a parser is built.

They live apart from :mod:`evl_core.hookspecs` (which re-exports them) so
that running a command, whose registrations come from the registry cache
(:mod:`evl_core.regcache`), imports neither pluggy nor the plugin modules.
"""

from __future__ import annotations

from evl_core.record import field, record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any, TextIO, Union

    from pluggy import PluginManager

    #: A callable, or a ``"module:attr"`` string resolved when first needed.
    Ref = Union[str, Callable[..., Any]]


@record(frozen=True)
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


@record
class Context:
    """What a handler may use besides its arguments.

    ``plugin_manager`` is pluggy's, or (commands loaded from the registry
    cache) a stand-in that builds the real one the first time it is used;
    :func:`evl_core.plugins.hook_results` reads either.
    """

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
