"""The standard streams of a command, made safe to write to whatever they are.

A command's output may go nowhere it can be written: stdout closed
(``evl net -Q -i eth0 >&-``), a full device (``> /dev/full``), or a pipe whose
reader went away (``| head -c1``).  :class:`CheckedOutput` turns a failed
write into :class:`OutputError` (``<prog>: write error: No space left on
device``, exit 1) and keeps ``EPIPE`` a :class:`BrokenPipeError`, which the
command runner ends quietly on, as coreutils do.  :func:`guard_standard_fds`
makes sure a closed descriptor 0, 1 or 2 is never reused by a file the
command opens (a state file opened as fd 1 would receive the output).
"""

from __future__ import annotations

import errno
import os
import sys

from evl_core.errors import EvlError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any, TextIO


class OutputError(EvlError):
    """The command's output could not be written."""

    def __init__(self, errno_value: int | None, message: str = "write error") -> None:
        super().__init__(message, errno_value)


class CheckedOutput:
    """A text stream whose write failures are :class:`OutputError` (EPIPE: BrokenPipeError)."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream  # None: the descriptor was closed when the command started
        #: The errno of the first failed write: sticky, so that a caller that swallowed the
        #: error (argparse does) still fails at the final flush.
        self.failed: int | None = None
        #: The failure was reported: what is left unwritten is to be dropped, not reported again.
        self.abandoned = False

    def _fail(self, exc: OSError | None) -> None:
        code = errno.EBADF if exc is None else exc.errno
        self.failed = self.failed or code
        if code == errno.EPIPE:
            raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE)) from None
        raise OutputError(code) from None

    def write(self, text: str) -> int:
        if not text:
            return 0  # nothing to say is no failure (and a 0-byte write to /dev/full fails)
        if self.stream is None:
            self._fail(None)
        try:
            return self.stream.write(text)  # type: ignore[union-attr]
        except OSError as exc:
            self._fail(exc)
        except ValueError:  # the stream was closed
            self._fail(None)
        return 0

    def flush(self) -> None:
        if self.abandoned:
            return
        if self.failed is not None:
            self._fail(OSError(self.failed, os.strerror(self.failed)))
        if self.stream is None:
            return
        try:
            self.stream.flush()
        except OSError as exc:
            self._fail(exc)
        except ValueError:
            self._fail(None)

    def abandon(self) -> None:
        """The command reported the write error: later flushes neither fail nor write."""
        self.failed = None
        self.abandoned = True

    def isatty(self) -> bool:
        return self.stream is not None and self.stream.isatty()

    def __getattr__(self, name: str) -> Any:
        if self.stream is None:
            raise AttributeError(name)
        return getattr(self.stream, name)


def guard_standard_fds() -> set[int]:
    """Open /dev/null on each of fds 0-2 that is closed; the set of those that were."""
    closed = set()
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            closed.add(fd)
    for fd in sorted(closed):
        null = os.open(os.devnull, os.O_RDWR)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
    return closed


def silence_stdout() -> None:
    """Point fd 1 at /dev/null, so that the interpreter's last flush of unwritable output is quiet."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
    except OSError:
        pass


#: The standard descriptors that were closed when this process started (now on /dev/null).
closed_at_start: set[int] = set()


def standard_streams() -> tuple[CheckedOutput, TextIO]:
    """(stdout, stderr) of a command run as a process: stdout checked, both usable even if closed."""
    closed = guard_standard_fds()
    closed_at_start.update(closed)
    if 0 in closed or sys.stdin is None:
        sys.stdin = open(0, closefd=False)
    if 2 in closed or sys.stderr is None:
        sys.stderr = open(2, "w", closefd=False)
    if 1 in closed or sys.stdout is None:
        sys.stdout = open(1, "w", closefd=False)
        return CheckedOutput(None), sys.stderr
    return CheckedOutput(sys.stdout), sys.stderr
