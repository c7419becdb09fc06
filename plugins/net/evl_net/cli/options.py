"""The ``evl net`` command line: the C tool's options, parsed the way getopt does.

Checks run in the C tool's order: option errors, stray operands, "no command
given", then "a network interface must be specified".  Values are checked
strictly before anything is done (the C tool lets ``-p -1`` wrap around).
"""

from __future__ import annotations

from evl_core.errors import EvlError, UsageError, shown
from evl_core.getopt import NO_ARGUMENT, OPTIONAL_ARGUMENT, REQUIRED_ARGUMENT, Getopt, GetoptError, LongOption
from evl_net.engine.request import Request
from evl_net.registrations import C_LONG_OPTIONS, Operation

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

U64_MAX = 2**64 - 1
POOL_MAX = 32768

#: Options whose argument is optional, hence must be glued to them.
GLUED_ONLY = ("Q", "F", "N")

#: Options that are not commands: (long name, short letter, argument kind, metavar, help).
MODIFIERS = (
    ("interface", "i", REQUIRED_ARGUMENT, "IFNAME", "the network interface to act on"),
    (
        "pool-size",
        "p",
        REQUIRED_ARGUMENT,
        "COUNT",
        "with -e: number of buffers in the port's pool, 0..32768 (0 = 2048, the kernel default)",
    ),
    (
        "buffer-size",
        "b",
        REQUIRED_ARGUMENT,
        "BYTES",
        "with -e: size of a pool buffer, 0..4 x page size (0 = page size; raised to the MTU)",
    ),
    ("allow-gateway", "g", NO_ARGUMENT, None, "with -s/-S: allow routing to the peer via gateways"),
    ("help", "h", NO_ARGUMENT, None, "print the usage on stderr and exit"),
    ("json", None, NO_ARGUMENT, None, "print results as JSON, one object per line and per command"),
    ("all-interfaces", None, NO_ARGUMENT, None, "with -Q: query every interface (a table; no -i needed)"),
    ("format", None, REQUIRED_ARGUMENT, "NAME", "render results with the named formatter (see --format=list)"),
    ("transport", None, REQUIRED_ARGUMENT, "NAME", "auto (default), sim, ioctl or remote; also EVL_NET_TRANSPORT"),
    ("board", None, REQUIRED_ARGUMENT, "FILE", "the simulated board (sim transport); also EVL_SIM_BOARD"),
    (
        "remote",
        None,
        REQUIRED_ARGUMENT,
        "[USER@]HOST[:PORT]",
        "administer a remote board over SSH (repeatable); also EVL_NET_REMOTE",
    ),
    (
        "hosts",
        None,
        REQUIRED_ARGUMENT,
        "FILE",
        "administer the boards listed in FILE over SSH (one [USER@]HOST[:PORT] a line, # comments)",
    ),
    (
        "jobs",
        None,
        REQUIRED_ARGUMENT,
        "N",
        "with several boards: how many to serve at once (default: all, as the open-file and process limits allow; "
        "at most 256)",
    ),
    ("jsonl", None, NO_ARGUMENT, None, "with remote boards: one JSON object per board, printed as each finishes"),
    (
        "accept-new-host-key",
        None,
        NO_ARGUMENT,
        None,
        "trust the host key of a board seen for the first time (ssh StrictHostKeyChecking=accept-new); "
        "a changed key is still refused",
    ),
    (
        "ssh",
        None,
        REQUIRED_ARGUMENT,
        "ARGS",
        "extra ssh arguments for remote boards, e.g. --ssh='-F lab.cfg'; also EVL_NET_SSH",
    ),
    ("timeout", None, REQUIRED_ARGUMENT, "SECONDS", "with remote boards: the deadline of each request (default 10)"),
    (
        "retries",
        None,
        REQUIRED_ARGUMENT,
        "N",
        "with remote boards: connection attempts after a refused, reset or cut one, before hello "
        "(default 3, at most 10)",
    ),
    (
        "known-hosts",
        None,
        REQUIRED_ARGUMENT,
        "FILE",
        "with remote boards: the one known_hosts file to check host keys against (ssh UserKnownHostsFile)",
    ),
    (
        "watch",
        None,
        OPTIONAL_ARGUMENT,
        "SECONDS",
        "with -Q: sample every SECONDS (default 1) and show rates, pool use and errors as they grow; "
        "redrawn on a terminal (q quits), else one line per port per interval",
    ),
    ("count", None, REQUIRED_ARGUMENT, "N", "with --watch: stop after N intervals"),
)


def shortopts(operations: Sequence[Operation]) -> str:
    spec = "@"
    for _long, short, kind, _m, _h in MODIFIERS:
        if short:
            spec += short + (":" if kind == REQUIRED_ARGUMENT else "")
    for action in operations:
        if action.short:
            spec += action.short + {NO_ARGUMENT: "", REQUIRED_ARGUMENT: ":", OPTIONAL_ARGUMENT: "::"}[action.has_arg]
    return spec


def op_key(op: Operation) -> str:
    """What the parser yields for an operation's option: its letter, else ``--long`` (never a letter)."""
    return op.short or f"--{op.long}"


def _rank(long: str) -> int:
    return 0 if long in C_LONG_OPTIONS else 1


def longopts(operations: Sequence[Operation]) -> list[LongOption]:
    table = [LongOption(long, kind, short or long, _rank(long)) for long, short, kind, _m, _h in MODIFIERS]
    table += [LongOption(a.long, a.has_arg, op_key(a), _rank(a.long)) for a in operations]
    return table


def long_only_help(operations: Sequence[Operation]) -> str:
    """What ``--help`` prints after the C tool's usage: the options this tool adds."""
    lines = ["", "long options of this implementation (see man evl-net):"]
    rows = [(long, kind, metavar, text) for long, short, kind, metavar, text in MODIFIERS if short is None]
    rows += [(a.long, a.has_arg, a.metavar, a.help) for a in operations if a.short is None]
    for long, kind, metavar, text in rows:
        spelled = (
            f"--{long}"
            + {NO_ARGUMENT: "", REQUIRED_ARGUMENT: f"={metavar or 'ARG'}", OPTIONAL_ARGUMENT: f"[={metavar or 'ARG'}]"}[
                kind
            ]
        )
        lines.append(f"{spelled:<35}{text}")
    return "\n".join(lines) + "\n"


def parse_size(text: str, what: str, limit: int) -> int:
    """A strict size: plain decimal, non-negative, within the kernel limit (a usage error otherwise)."""
    if not text.isascii() or not text.isdigit():
        raise UsageError(f"invalid {what} '{text}': expected a decimal integer in 0..{limit}")
    value = int(text)
    if value > limit:
        raise UsageError(f"invalid {what} '{text}': the kernel accepts at most {limit}")
    return value


class DescriptionRequested(Exception):
    """``-@`` was seen: print the one-line description and stop, as the C tool does."""


class HelpRequested(Exception):
    """``-h`` was seen."""


#: The key of a long option two plugins claim: parsing it is an error naming both.
BLOCKED = "\0blocked"


def parse(
    argv: Sequence[str],
    operations: Sequence[Operation],
    posixly_correct: bool = False,
    blocked: Mapping[str, str] | None = None,
) -> Request:
    """Parse an ``evl net`` command line into a Request (nothing is checked against a board yet).

    Options act as they are seen, as in the C tool's getopt loop: ``-@`` and
    ``-h`` stop at once, a bad ``-p``/``-b`` value is a usage error there and
    then.  ``posixly_correct`` is ``POSIXLY_CORRECT`` in the environment;
    ``blocked`` maps the long options plugins collided on to the error to give.
    """
    blocked = blocked or {}
    by_key = {op_key(a): a for a in operations}
    request = Request()
    shorts = shortopts(operations)
    table = longopts(operations) + [LongOption(name, OPTIONAL_ARGUMENT, BLOCKED, 1) for name in blocked]
    parser = Getopt(argv, shorts, table, posixly_correct=posixly_correct)
    glued_only_end: dict[int, tuple[str, str]] = {}  # argv index after a bare -Q/-F/-N -> (its word, letter)
    solicit: tuple[str, str] | None = None
    try:
        for key, value in parser:
            if key == "@":
                raise DescriptionRequested()
            if key == "h":
                raise HelpRequested()
            if key == BLOCKED:
                word = parser.argv[parser.optind - 1].partition("=")[0]
                raise EvlError(next(m for n, m in blocked.items() if f"--{n}".startswith(word)))
            if key in GLUED_ONLY and value is None:
                glued_only_end[parser.optind] = (parser.argv[parser.optind - 1], key)
            if key in ("s", "S") and value is not None:
                solicit = (key, value)
            action = by_key.get(key)
            if action is not None:
                request.actions[action.name] = value
                request.seen.add(action.long)
                continue
            long = next(m[0] for m in MODIFIERS if key in (m[0], m[1]))
            request.seen.add(long)
            if long == "interface":
                request.ifname = value
            elif long == "pool-size":
                request.pool_size = parse_size(value or "", "pool size", POOL_MAX)
            elif long == "buffer-size":
                # The page-size bound depends on the board: checked once a transport is open.
                request.buffer_size = parse_size(value or "", "buffer size", U64_MAX)
            elif long == "allow-gateway":
                request.gateway = True
            elif long == "remote":
                request.remotes.append(value or "")
            elif long == "watch":
                request.watch = "" if value is None else value
            else:  # long-only options map onto Request fields of the same name
                kind = next(m[2] for m in MODIFIERS if m[0] == long)
                setattr(request, long.replace("-", "_"), True if kind == NO_ARGUMENT else value)
    except GetoptError as exc:
        raise UsageError(str(exc)) from None
    if parser.operands:
        wants_if = request.ifname is None and (
            solicit is not None or any(op.needs_interface for op in operations if op.name in request.actions)
        )
        raise UsageError(_stray_message(parser, glued_only_end, solicit, shorts, wants_if))
    return request


def _stray_message(
    parser: Getopt,
    glued_only_end: dict[int, tuple[str, str]],
    solicit: tuple[str, str] | None,
    shorts: str,
    wants_if: bool,
) -> str:
    """Say what a stray operand most likely means, as one line.

    ``wants_if``: an operation given needs an interface and ``-i`` is missing.
    """
    if solicit is not None:
        hint = solicit_hint(*solicit, parser.operands, shorts)
        if hint:
            return hint
    word, index = parser.operands[0], parser.operand_index[0]
    shown_word = shown(word)
    glued_to = glued_only_end.get(index)
    if wants_if and len(parser.operands) == 1 and _looks_like_interface(word, glued_to[1] if glued_to else None):
        # "-e eth0.42", "-Q eth0.42", the manual's prose "-S10.10.10.10 eth0.42": the interface goes with -i.
        return f"unexpected argument '{shown_word}': the interface goes with -i (-i {shown_word})"
    if glued_to is not None:
        option = glued_to[0]
        glued = option + ("=" if option.startswith("--") else "") + shown_word
        return f"unexpected argument '{shown_word}' (an optional argument must be glued to its option: {glued})"
    return f"unexpected argument '{shown_word}'"


def _looks_like_interface(word: str, after: str | None) -> bool:
    """Whether a stray word reads as an interface name rather than what follows option ``-<after>``."""
    import os

    from evl_net.kernel.names import name_problem
    from evl_net.ops.query import MODIFIERS

    if name_problem(word) is not None:
        return False
    parts = word.split(".")
    if len(parts) == 4 and all(p.isdigit() for p in parts):
        return False  # an address
    if after == "Q":
        return not all(c in MODIFIERS for c in word)
    if after == "N":
        return not all(c in "0123456789,-:N" for c in word)
    if after == "F":
        return not (word.endswith(".o") or os.path.exists(word))
    return True


def solicit_hint(letter: str, host: str, operands: Sequence[str], shorts: str) -> str | None:
    """``-Si eth0 10.10.10.11``: getopt took ``i`` as the host; say what was meant, if that is clear."""
    from evl_core.getopt import parse_shortopts

    table, _order = parse_shortopts(shorts.lstrip("@"))
    if not host or any(c not in table or c == "@" for c in host):
        return None
    words, flags = list(operands), []
    for c in host:
        if table[c] == REQUIRED_ARGUMENT:
            if not words:
                return None
            flags.append(f"-{c} {words.pop(0)}")
        else:
            flags.append(f"-{c}")
    if len(words) != 1:
        return None
    return f"-{letter} took '{host}' as its host; did you mean -{letter} {words[0]} {' '.join(flags)}?"


def check(request: Request, operations: Sequence[Operation]) -> list[str]:
    """Semantic checks that need no transport, in the C tool's order; the warnings to print."""
    if not request.actions:
        raise UsageError("no command given", bare=True)
    by_name = {a.name: a for a in operations}
    needs_if = [n for n in request.actions if by_name[n].needs_interface]
    if request.all_interfaces and "query" in request.actions:
        if request.ifname is not None:
            raise UsageError("--all-interfaces queries every interface: drop -i")
        needs_if = [n for n in needs_if if n != "query"]
    if needs_if and request.ifname is None:
        raise UsageError("a network interface must be specified", bare=True)
    if request.ifname is not None:
        from evl_net.kernel.names import name_problem

        problem = name_problem(request.ifname)
        if problem is not None:
            raise EvlError(f"invalid interface name '{shown(request.ifname)}': {problem}")
    if request.all_interfaces and "query" not in request.actions:
        raise UsageError("--all-interfaces applies to -Q only")
    if request.watch is not None and (set(request.actions) != {"query"} or request.format):
        raise UsageError("--watch applies to -Q alone (with -i IF or --all-interfaces; --json for JSON lines)")
    if request.count is not None and request.watch is None:
        raise UsageError("--count applies to --watch only")
    if request.watch is not None:
        from evl_net.engine import watch

        watch.parse(request)  # a bad --watch=SECONDS or --count N: a usage error, with the usage
    from evl_net.engine import execute

    execute.check(request, execute.plan(request, operations))  # each operation's own checks
    return sizes_warning(request)


def sizes_warning(request: Request) -> list[str]:
    """``-p``/``-b`` without ``-e``: accepted as the C tool accepts them, but said to do nothing."""
    given = [
        f"-{letter}" for letter, value in (("p", request.pool_size), ("b", request.buffer_size)) if value is not None
    ]
    if not given or "enable" in request.actions:
        return []
    return [f"{' and '.join(given)} {'has' if len(given) == 1 else 'have'} no effect without -e"]


def build_parser(plugin_manager: Any = None) -> Any:  # -> argparse.ArgumentParser, for documentation only
    """The option surface as argparse, from the same tables that drive parsing.

    With ``plugin_manager``, the operations of every plugin it holds (so a
    third party's option is in the man page); else the built-ins.
    """
    import argparse

    from evl_net import SUMMARY
    from evl_net.ops import builtin

    operations = builtin()
    if plugin_manager is not None:
        import io
        from types import SimpleNamespace

        from evl_net.registry import operations as registered_operations

        quiet = SimpleNamespace(plugin_manager=plugin_manager, stderr=io.StringIO(), prog="evl-net", plugin_labels={})
        operations = registered_operations(quiet).records  # type: ignore[arg-type]

    parser = argparse.ArgumentParser(
        prog="evl net",
        usage="evl net [options]",
        description=SUMMARY.capitalize() + ". Enable and disable out-of-band ports, solicit peers into the "
        "out-of-band ARP front cache, query port statistics, set and show the global RX VLAN "
        "filter, and install eBPF RX filters.",
        add_help=False,
    )
    commands = parser.add_argument_group("commands (run in this order when combined)")
    for action in sorted(operations, key=lambda a: (a.order, a.long)):
        flags = ([f"-{action.short}"] if action.short else []) + [f"--{action.long}"]
        if action.has_arg == NO_ARGUMENT:
            commands.add_argument(*flags, action="store_true", help=action.help)
        else:
            nargs = "?" if action.has_arg == OPTIONAL_ARGUMENT else None
            commands.add_argument(*flags, nargs=nargs, metavar=action.metavar, help=action.help)
    modifiers = parser.add_argument_group("options")
    for long, short, kind, metavar, help_text in MODIFIERS:
        flags = ([f"-{short}"] if short else []) + [f"--{long}"]
        if kind == NO_ARGUMENT:
            modifiers.add_argument(*flags, action="store_true", help=help_text)
        else:
            nargs = "?" if kind == OPTIONAL_ARGUMENT else None
            modifiers.add_argument(*flags, nargs=nargs, metavar=metavar, help=help_text)
    modifiers.add_argument(
        "-@", dest="describe", action="store_true", help="print the one-line description of the command and exit"
    )
    return parser
