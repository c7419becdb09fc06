"""GNU ``getopt_long`` semantics, which the EVL C commands use and scripts rely on.

argparse cannot reproduce them: an optional argument is taken only when it is
glued to its option (``-QoRTf``, ``--query-port=oR``), ``-Sg host`` makes
``g`` the argument of ``-S``, and long options may be abbreviated to any
unique prefix.  Options are yielded one at a time, so a command can act on an
option (``-@``) before a later error is seen, exactly as the C loop does.
"""

from __future__ import annotations

from evl_core.record import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

NO_ARGUMENT = 0
REQUIRED_ARGUMENT = 1
OPTIONAL_ARGUMENT = 2


@record(frozen=True)
class LongOption:
    """``name`` as typed after ``--``; ``key`` is what the parser yields for it.

    ``rank`` orders abbreviation matching: a prefix is matched against the
    lowest rank that has any candidate, so options added to a C tool's set
    (rank 1) never change what an abbreviation of the C tool's own options
    (rank 0) means.  Exact names match whatever their rank.
    """

    name: str
    has_arg: int
    key: str
    rank: int = 0


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
    """Iterate over ``(key, argument)`` pairs; ``operands`` holds the rest afterwards.

    ``posixly_correct`` is glibc's ``POSIXLY_CORRECT`` in the environment:
    scanning stops at the first operand, as with a leading ``+``.  While
    iterating, ``optind`` is the index in ``argv`` of the next word to scan;
    ``operand_index`` holds the index of each operand.
    """

    def __init__(
        self, argv: Sequence[str], shortopts: str, longopts: Sequence[LongOption] = (), posixly_correct: bool = False
    ) -> None:
        self.argv = list(argv)
        self.short, self.require_order = parse_shortopts(shortopts)
        self.require_order = self.require_order or posixly_correct
        self.long = list(longopts)
        self.operands: list[str] = []
        self.operand_index: list[int] = []
        self.optind = 0

    def _operands_from(self, start: int) -> None:
        self.operands.extend(self.argv[start:])
        self.operand_index.extend(range(start, len(self.argv)))

    def __iter__(self) -> Iterator[tuple[str, str | None]]:
        args = self.argv
        i = 0
        while i < len(args):
            arg = args[i]
            i += 1
            self.optind = i
            if arg == "--":
                self._operands_from(i)
                return
            if not arg.startswith("-") or arg == "-":
                if self.require_order:
                    self._operands_from(i - 1)
                    return
                self.operands.append(arg)
                self.operand_index.append(i - 1)
                continue
            if arg.startswith("--"):
                key, value, used_next = self._long(arg[2:], args[i] if i < len(args) else None)
                i += used_next
                self.optind = i
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
                    self.optind = i
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
        first_rank = min(o.rank for o in candidates)
        candidates = [o for o in candidates if o.rank == first_rank]
        distinct = {(o.key, o.has_arg) for o in candidates}
        if len(distinct) > 1:
            names = " ".join(f"'--{o.name}'" for o in candidates)
            raise GetoptError(f"option '--{word}' is ambiguous; possibilities: {names}")
        return candidates[0]
