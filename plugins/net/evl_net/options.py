"""The ``evl net`` command line: the C tool's options, parsed the way getopt does.

Checks run in the C tool's order: option errors, stray operands, "no command
given", then "a network interface must be specified".  Values are checked
strictly before anything is done (the C tool lets ``-p -1`` wrap around).
"""

from __future__ import annotations

from typing import Sequence

from evl_core.errors import EvlError, UsageError
from evl_core.getopt import NO_ARGUMENT, OPTIONAL_ARGUMENT, REQUIRED_ARGUMENT, Getopt, GetoptError, LongOption
from evl_net.hookspecs import Action
from evl_net.request import Request
from evl_net.usage import USAGE

QUERY_MODIFIERS = "RrTtosfacx"
U64_MAX = 2**64 - 1

#: Options that are not commands: (long name, short letter, argument kind, metavar, help).
MODIFIERS = (
    ("interface", "i", REQUIRED_ARGUMENT, "IFNAME", "the network interface to act on"),
    ("pool-size", "p", REQUIRED_ARGUMENT, "COUNT",
     "with -e: number of buffers in the port's pool, 0..32768 (0 = 2048, the kernel default)"),
    ("buffer-size", "b", REQUIRED_ARGUMENT, "BYTES",
     "with -e: size of a pool buffer, 0..4 x page size (0 = page size; raised to the MTU)"),
    ("allow-gateway", "g", NO_ARGUMENT, None, "with -s/-S: allow routing to the peer via gateways"),
    ("help", "h", NO_ARGUMENT, None, "print the usage on stderr and exit"),
    ("json", None, NO_ARGUMENT, None, "print results as JSON, one object per line and per command"),
    ("all", None, NO_ARGUMENT, None, "with -Q: query every interface (a table; no -i needed)"),
    ("format", None, REQUIRED_ARGUMENT, "NAME", "render results with the named formatter (see --format=list)"),
    ("transport", None, REQUIRED_ARGUMENT, "NAME",
     "auto (default), sim, ioctl or remote; also EVL_NET_TRANSPORT"),
    ("board", None, REQUIRED_ARGUMENT, "FILE", "the simulated board (sim transport); also EVL_SIM_BOARD"),
    ("remote", None, REQUIRED_ARGUMENT, "[USER@]HOST[:PORT]",
     "administer a remote board over SSH (repeatable); also EVL_NET_REMOTE"),
    ("hosts", None, REQUIRED_ARGUMENT, "FILE",
     "administer the boards listed in FILE over SSH (one [USER@]HOST[:PORT] a line, # comments)"),
    ("jobs", None, REQUIRED_ARGUMENT, "N", "with several boards: how many to serve at once (default 16, at most 256)"),
    ("jsonl", None, NO_ARGUMENT, None, "with remote boards: one JSON object per board, printed as each finishes"),
    ("accept-new-host-key", None, NO_ARGUMENT, None,
     "trust the host key of a board seen for the first time (ssh StrictHostKeyChecking=accept-new); "
     "a changed key is still refused"),
    ("ssh", None, REQUIRED_ARGUMENT, "ARGS",
     "extra ssh arguments for remote boards, e.g. --ssh='-F lab.cfg'; also EVL_NET_SSH"),
    ("timeout", None, REQUIRED_ARGUMENT, "SECONDS", "with remote boards: the deadline of each request (default 10)"),
)


def shortopts(actions: Sequence[Action]) -> str:
    spec = "@"
    for long, short, kind, _m, _h in MODIFIERS:
        if short:
            spec += short + (":" if kind == REQUIRED_ARGUMENT else "")
    for action in actions:
        if action.short:
            spec += action.short + {NO_ARGUMENT: "", REQUIRED_ARGUMENT: ":", OPTIONAL_ARGUMENT: "::"}[action.has_arg]
    return spec


def longopts(actions: Sequence[Action]) -> list[LongOption]:
    table = [LongOption(long, kind, short or long) for long, short, kind, _m, _h in MODIFIERS]
    table += [LongOption(a.long, a.has_arg, a.short or a.long) for a in actions]
    return table


def parse_size(text: str, what: str, limit: int) -> int:
    """A strict size: plain decimal, non-negative, within the kernel limit."""
    if not text.isascii() or not text.isdigit():
        raise EvlError(f"invalid {what} '{text}': expected a decimal integer in 0..{limit}")
    value = int(text)
    if value > limit:
        raise EvlError(f"invalid {what} '{text}': the kernel accepts at most {limit}")
    return value


class DescriptionRequested(Exception):
    """``-@`` was seen: print the one-line description and stop, as the C tool does."""


class HelpRequested(Exception):
    """``-h`` was seen."""


def parse(argv: Sequence[str], actions: Sequence[Action]) -> Request:
    """Parse an ``evl net`` command line into a Request (nothing is checked against a board yet)."""
    by_key = {(a.short or a.long): a for a in actions}
    request = Request()
    parser = Getopt(argv, shortopts(actions), longopts(actions))
    try:
        for key, value in parser:
            if key == "@":
                raise DescriptionRequested()
            if key == "h":
                raise HelpRequested()
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
                request.pool_size = value  # type: ignore[assignment]  (checked below)
            elif long == "buffer-size":
                request.buffer_size = value  # type: ignore[assignment]
            elif long == "allow-gateway":
                request.gateway = True
            elif long == "remote":
                request.remotes.append(value or "")
            else:  # long-only options map onto Request fields of the same name
                kind = next(m[2] for m in MODIFIERS if m[0] == long)
                setattr(request, long.replace("-", "_"), True if kind == NO_ARGUMENT else value)
    except GetoptError as exc:
        raise UsageError(str(exc)) from None
    if parser.operands:
        extra = parser.operands[0]
        raise UsageError(f"unexpected argument '{extra}' (an optional argument must be glued to its option, as in -Q<mods>)")
    return request


def check(request: Request, actions: Sequence[Action]) -> None:
    """Semantic checks that need no transport, in the C tool's order."""
    if not request.actions:
        raise UsageError("no command given")
    by_name = {a.name: a for a in actions}
    needs_if = [n for n in request.actions if by_name[n].needs_interface]
    if request.all and "query" in request.actions:
        if request.ifname is not None:
            raise UsageError("--all queries every interface: drop -i")
        needs_if = [n for n in needs_if if n != "query"]
    if needs_if and request.ifname is None:
        raise UsageError("a network interface must be specified")
    if request.all and "query" not in request.actions:
        raise UsageError("--all applies to -Q only")
    mods = request.actions.get("query")
    if mods:
        for letter in mods:
            if letter not in QUERY_MODIFIERS:
                raise EvlError(f"invalid query modifier '{letter}' (valid: {QUERY_MODIFIERS})")
    if (request.pool_size is not None or request.buffer_size is not None) and "enable" not in request.actions:
        raise UsageError("-p and -b apply to -e (enable) only")
    if request.pool_size is not None:
        request.pool_size = parse_size(str(request.pool_size), "pool size", 32768)
    if request.buffer_size is not None:
        # The page-size bound depends on the board; the transport checks it too.
        request.buffer_size = parse_size(str(request.buffer_size), "buffer size", U64_MAX)
    if request.actions.get("solicit") == "broadcast" and request.ifname is None:
        raise UsageError("soliciting 'broadcast' needs an interface: add -i <ifname>")


def build_parser():  # -> argparse.ArgumentParser, for the man page and documentation only
    """The option surface as argparse, from the same tables that drive parsing."""
    import argparse

    from evl_net import SUMMARY
    from evl_net.plugin import builtin_actions

    parser = argparse.ArgumentParser(
        prog="evl net",
        usage="evl net [options]",
        description=SUMMARY.capitalize() + ". Enable and disable out-of-band ports, solicit peers into the "
        "out-of-band ARP front cache, query port statistics, set and show the global RX VLAN "
        "filter, and install eBPF RX filters.",
        add_help=False,
    )
    commands = parser.add_argument_group("commands (run in this order when combined)")
    for action in sorted(builtin_actions(), key=lambda a: (a.order, a.long)):
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
            modifiers.add_argument(*flags, metavar=metavar, help=help_text)
    modifiers.add_argument("-@", dest="describe", action="store_true",
                           help="print the one-line description of the command and exit")
    return parser
