"""One error model for every command: an expected failure is an EvlError."""

from __future__ import annotations

import os

#: Echoed input longer than this is shortened in messages (its head and tail kept).
SHOWN_MAX = 80


class EvlError(Exception):
    """An expected failure, printed as ``<prog>: <message>[: <strerror>]``.

    ``errno`` is optional: some failures (a bad board file, a malformed
    argument) have no kernel error behind them.
    """

    def __init__(self, message: str, errno: int | None = None, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.errno = errno
        self.exit_code = exit_code

    def format(self, prog: str) -> str:
        if self.errno:
            return one_line(f"{prog}: {self.message}: {strerror(self.errno)}")
        return one_line(f"{prog}: {self.message}")

    def said(self) -> str:
        """The message as :meth:`format` prints it, without the program name (for a report or a table)."""
        return self.format("x")[3:]

    @classmethod
    def from_oserror(cls, message: str, exc: OSError) -> EvlError:
        """Wrap an OSError raised by a transport, keeping its errno.

        A transport's error may carry ``detail`` (explains the errno; shown in
        parentheses before the strerror) and ``stage`` (the C tool's words for
        the step that failed, used instead of ``message``).
        """
        message = getattr(exc, "stage", None) or message  # the step that failed names itself
        detail = getattr(exc, "detail", None)
        if detail:
            message = f"{message} ({detail})"
        if exc.errno:
            return cls(message, exc.errno)
        return cls(f"{message}: {exc}")


class UsageError(EvlError):
    """A command-line mistake: the command prints its usage after the message.

    ``bare`` messages are printed without the program name, as the C tools
    print ``no command given``.
    """

    def __init__(self, message: str, bare: bool = False) -> None:
        super().__init__(message)
        self.bare = bare

    def format(self, prog: str) -> str:
        return one_line(self.message) if self.bare else super().format(prog)

    def said(self) -> str:
        return one_line(self.message) if self.bare else super().said()


def strerror(errno: int) -> str:
    # glibc spells ENOTSUP/EOPNOTSUPP this way too; os.strerror matches it on Linux.
    return os.strerror(errno)


def escape(text: str) -> str:
    """``text`` with control characters (and lone surrogates from undecodable bytes) escaped: ``\\x1b``."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        elif "\udc80" <= ch <= "\udcff":  # a byte that was not UTF-8 (os.fsdecode's surrogateescape)
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def one_line(text: str) -> str:
    """A message as one printable line, whatever input it echoes (quoted values shortened)."""
    return shorten_quoted(escape(text))


def shown(value: str, limit: int = SHOWN_MAX) -> str:
    """An echoed argument as a message shows it: escaped, and shortened past ``limit`` characters."""
    text = escape(value)
    if len(text) <= limit:
        return text
    keep = (limit - 3) // 2
    return f"{text[:keep]}...{text[-keep:]}"


def shorten_quoted(message: str, limit: int = SHOWN_MAX) -> str:
    """``message`` with each quoted value longer than ``limit`` shortened (messages made by other libraries)."""
    import re

    return re.sub(
        "'([^']{" + str(limit + 1) + ",})'",
        lambda m: "'" + shown(m.group(1), limit) + "'",
        message,
    )
