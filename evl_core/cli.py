"""The ``evl`` dispatcher: ``evl [options] [<command> [<args>]]``."""

from __future__ import annotations

import os
import sys

from evl_core import EVL_ABI_PREREQ, __version__
from evl_core.errors import EvlError, one_line, shown
from evl_core.getopt import (
    NO_ARGUMENT,
    REQUIRED_ARGUMENT,
    Getopt,
    GetoptError,
    LongOption,
)
from evl_core.streams import CheckedOutput, OutputError, silence_stdout

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any, TextIO

SHORTOPTS = "+P:Vvh"
LONGOPTS = (
    LongOption("prefix", REQUIRED_ARGUMENT, "P"),
    LongOption("version", NO_ARGUMENT, "V"),
    LongOption("help", NO_ARGUMENT, "h"),
)

#: Printed on stderr, as C does.  The synopsis is C's (the command is optional:
#: it defaults to ``help``); the option lines keep this project's wording.
USAGE = """\
usage: evl [options] [<command> [<args>]]
-P --prefix=<dir>      directory of external evl-* commands
-v -V --version        print the version and the EVL ABI level required
-h --help              this help
"""

DEBUG_ENV = "EVL_DEBUG"


def version_line() -> str:
    return f"evl-tools {__version__} [requires ABI {EVL_ABI_PREREQ}]"


def build_parser() -> Any:
    """The dispatcher's options as an argparse parser, for its man page."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="evl",
        description="Run a command of the EVL command set.",
        usage="evl [options] [<command> [<args>]]",
    )
    parser.add_argument(
        "-P",
        "--prefix",
        metavar="DIR",
        help="directory of external evl-* commands (default: <prefix>/libexec/evl "
        "of the installation); it is appended to PATH",
    )
    parser.add_argument(
        "-V", "-v", "--version", action="store_true", help="print the version and the EVL ABI level the tools require"
    )
    parser.add_argument("command", nargs="?", help="the command to run, e.g. net; help when omitted")
    parser.add_argument("args", nargs="*", help="the command's own arguments")
    return parser


def main(
    argv: Sequence[str] | None = None,
    plugins: Iterable[Any] = (),
    autoload: bool | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    env: dict[str, str] | None = None,
    real_process: bool | None = None,
) -> int:
    """Run ``evl`` on ``argv``; ``plugins`` registers extra plugin objects (a test seam).

    ``real_process``: an external command replaces this process (default: when ``argv`` is None).
    """
    real_process = argv is None if real_process is None else real_process
    argv = list(sys.argv[1:] if argv is None else argv)
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    env = dict(os.environ if env is None else env)

    # As in C's loop: -V acts at once (so it wins over anything after it) and a
    # bad option is a usage error.  -h only names the default command, `help`,
    # which runs after the usage anyway when no command is given; a command
    # given after -h still runs, as C's `cmd = argv[optind]` overrides it.
    cmddir = None
    try:
        parser = Getopt(argv, SHORTOPTS, LONGOPTS)
        for key, value in parser:
            if key == "P":
                cmddir = value
            elif key in ("V", "v"):
                stdout.write(version_line() + "\n")
                return 0
    except GetoptError as exc:
        stderr.write(f"evl: {one_line(str(exc))}\n{USAGE}")
        return 2

    operands = parser.operands
    name, args = (operands[0], operands[1:]) if operands else ("help", [])
    if not operands:
        # C prints its usage on stderr, then execs evl-help, whose listing goes to stdout.
        stderr.write(USAGE)

    from evl_core import externals
    from evl_core import plugins as plugin_loading

    cmddir = os.path.abspath(cmddir) if cmddir else externals.default_cmddir()
    registry = plugin_loading.load(plugins, autoload=autoload, stderr=stderr, env=env)

    from evl_core.commands import Context

    ctx = Context(
        prog=f"evl-{name}",
        name=name,
        plugin_manager=registry.plugin_manager,
        commands=registry.commands,
        cmddir=cmddir,
        stdout=stdout,
        stderr=stderr,
        env=externals.child_env(cmddir, env),
        conflicts=registry.conflicts,
        plugin_labels=registry.labels,
    )
    if name in registry.conflicts:
        stderr.write("evl: " + plugin_loading.conflict_message(name, registry.conflicts[name]) + "\n")
        return 1
    command = registry.commands.get(name)
    if command is not None:
        return run_command(command, args, ctx)
    path = externals.find(name, cmddir, env)
    if path is None:
        stderr.write(f"evl: no '{shown(name)}' command. Try 'evl --help'.\n")
        return 1
    return externals.run(path, name, args, ctx.env, replace_process=real_process)


def run_command(command: Any, args: list[str], ctx: Any) -> int:
    """Run a plugin command, turning expected failures into one stderr line."""
    from evl_core.lazy import resolve

    try:
        if args == ["-@"]:  # the EVL convention: every command describes itself in one line
            ctx.stdout.write(command.summary + "\n")
            return 0
        if command.raw_args:
            code = int(resolve(command.handler)(args, ctx) or 0)
            ctx.stdout.flush()
            return code
        from evl_core.commands import build_parser_for

        # argparse prints to sys.stdout/sys.stderr: the context's streams for the parse (contextlib's
        # redirect_stdout does this, at the cost of importing contextlib on every call)
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = ctx.stdout, ctx.stderr
        try:
            parsed = build_parser_for(command, ctx.prog).parse_args(args)
        finally:
            sys.stdout, sys.stderr = saved
        code = int(resolve(command.handler)(parsed, ctx) or 0)
        ctx.stdout.flush()  # a write error is still this command's
        return code
    except SystemExit as exc:  # argparse usage errors and --help
        status = exc.code
        try:
            ctx.stdout.flush()  # what argparse printed (--help)
        except BrokenPipeError:
            silence_stdout()
            return 141
        except EvlError as error:
            if isinstance(ctx.stdout, CheckedOutput):
                ctx.stdout.abandon()
            ctx.stderr.write(error.format(ctx.prog) + "\n")
            return error.exit_code
        return status if isinstance(status, int) else (0 if status is None else 1)
    except EvlError as exc:
        if isinstance(exc, OutputError) and isinstance(ctx.stdout, CheckedOutput):
            ctx.stdout.abandon()
        if ctx.env.get(DEBUG_ENV):
            import traceback

            traceback.print_exc(file=ctx.stderr)
        ctx.stderr.write(exc.format(ctx.prog) + "\n")
        return exc.exit_code
    except KeyboardInterrupt:
        ctx.stderr.write(f"{ctx.prog}: interrupted\n")
        return 130
    except BrokenPipeError:
        # The reader went away (`evl net -Q ... | head`): not our failure, but not a success either.
        silence_stdout()
        return 141
    except Exception as exc:  # noqa: BLE001 -- any other failure is one line, never a traceback
        import traceback

        if ctx.env.get(DEBUG_ENV):
            traceback.print_exc(file=ctx.stderr)
            hint = ""
        else:
            hint = f" (set {DEBUG_ENV}=1 for a traceback)"
        ctx.stderr.write(f"{ctx.prog}: internal error: {type(exc).__name__}: {one_line(str(exc))}{hint}\n")
        return 1


def console_main(argv: Sequence[str] | None = None, prog: str = "evl") -> int:
    """Entry point of the ``evl`` console script (and, with ``argv``, of ``evl-*`` ones).

    The standard streams are made safe first: a write error is one line and
    exit 1, a closed pipe a quiet exit 141, and nothing is left for the
    interpreter to fail flushing at exit.
    """
    from evl_core.streams import standard_streams

    stdout, stderr = standard_streams()
    try:
        code = main(list(sys.argv[1:] if argv is None else argv), stdout=stdout, stderr=stderr, real_process=True)  # type: ignore[arg-type]
        if stdout.abandoned:
            silence_stdout()  # the interpreter's own last flush must not fail on what is left
        stdout.flush()
        return code
    except OutputError as exc:
        silence_stdout()
        stderr.write(exc.format(prog) + "\n")
        return 1
    except BrokenPipeError:
        silence_stdout()
        return 141
    except KeyboardInterrupt:  # before a command's own handling started (or after it ended)
        stderr.write(f"{prog}: interrupted\n")
        return 130
