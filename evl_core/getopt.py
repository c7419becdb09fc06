"""GNU ``getopt_long`` semantics, which the EVL C commands use and scripts rely on.

argparse cannot reproduce them: an optional argument is taken only when it is
glued to its option (``-QoRTf``, ``--query-port=oR``), ``-Sg host`` makes
``g`` the argument of ``-S``, and long options may be abbreviated to any
unique prefix.  Options are yielded one at a time, so a command can act on an
option (``-@``) before a later error is seen, exactly as the C loop does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

NO_ARGUMENT = 0
REQUIRED_ARGUMENT = 1
OPTIONAL_ARGUMENT = 2


@dataclass(frozen=True)
class LongOption:
    """``name`` as typed after ``--``; ``key`` is what the parser yields for it."""

    name: str
    has_arg: int
    key: str


class GetoptError(Exception):
    """A command-line error, worded as glibc words it (without the program name)."""


def parse_shortopts(spec: str) -> tuple[dict[str, int], bool]:
    """Map each option letter of a getopt string to its argument kind.

    A leading ``+`` stops option parsing at the first operand (POSIX order),
    which is what a dispatcher needs.
    """
    require_order = spec.startswith("+")
    if require_order:
        spec = spec[1:]
    table: dict[str, int] = {}
    i = 0
    while i < len(spec):
        letter = spec[i]
        i += 1
        kind = NO_ARGUMENT
        if spec.startswith("::", i):
            kind, i = OPTIONAL_ARGUMENT, i + 2
        elif spec.startswith(":", i):
            kind, i = REQUIRED_ARGUMENT, i + 1
        table[letter] = kind
    return table, require_order


class Getopt:
    """Iterate over ``(key, argument)`` pairs; ``operands`` holds the rest afterwards."""

    def __init__(self, argv: Sequence[str], shortopts: str, longopts: Sequence[LongOption] = ()) -> None:
        self.argv = list(argv)
        self.short, self.require_order = parse_shortopts(shortopts)
        self.long = list(longopts)
        self.operands: list[str] = []

    def __iter__(self) -> Iterator[tuple[str, str | None]]:
        args = self.argv
        i = 0
        while i < len(args):
            arg = args[i]
            i += 1
            if arg == "--":
                self.operands.extend(args[i:])
                return
            if not arg.startswith("-") or arg == "-":
                if self.require_order:
                    self.operands.extend(args[i - 1:])
                    return
                self.operands.append(arg)
                continue
            if arg.startswith("--"):
                key, value, used_next = self._long(arg[2:], args[i] if i < len(args) else None)
                i += used_next
                yield key, value
                continue
            # A cluster of short options: -ei eth0, -QoRTf, -Sg.
            pos = 1
            while pos < len(arg):
                letter = arg[pos]
                pos += 1
                kind = self.short.get(letter)
                if kind is None or letter == ":":
                    raise GetoptError(f"invalid option -- '{letter}'")
                if kind == NO_ARGUMENT:
                    yield letter, None
                    continue
                rest = arg[pos:]
                if rest:
                    yield letter, rest
                elif kind == OPTIONAL_ARGUMENT:
                    yield letter, None
                elif i < len(args):
                    i += 1
                    yield letter, args[i - 1]
                else:
                    raise GetoptError(f"option requires an argument -- '{letter}'")
                break

    def _long(self, body: str, following: str | None) -> tuple[str, str | None, int]:
        name, eq, value = body.partition("=")
        option = self._match(name, body)
        if option.has_arg == NO_ARGUMENT:
            if eq:
                raise GetoptError(f"option '--{option.name}' doesn't allow an argument")
            return option.key, None, 0
        if eq:
            return option.key, value, 0
        if option.has_arg == OPTIONAL_ARGUMENT:
            return option.key, None, 0
        if following is None:
            raise GetoptError(f"option '--{option.name}' requires an argument")
        return option.key, following, 1

    def _match(self, name: str, word: str) -> LongOption:
        exact = [o for o in self.long if o.name == name]
        if exact:
            return exact[0]
        candidates = [o for o in self.long if o.name.startswith(name)] if name else []
        if not candidates:
            raise GetoptError(f"unrecognized option '--{word}'")
        distinct = {(o.key, o.has_arg) for o in candidates}
        if len(distinct) > 1:
            names = " ".join(f"'--{o.name}'" for o in candidates)
            raise GetoptError(f"option '--{word}' is ambiguous; possibilities: {names}")
        return candidates[0]
