"""The interpreter's exceptions, at the bottom so that every layer can raise them.

:class:`EbpfError` and its subclasses are the public ones.  :class:`RunError`
is what run-time support code (memory accesses, helpers) raises from inside
generated code, where the instruction's text is not at hand: the run loop
(:meth:`~.vm.Program.execute`) turns it into ``cls(message, pc, text)``.
"""

from __future__ import annotations


class EbpfError(Exception):
    """A program the interpreter refuses or cannot finish.

    ``insn`` is the index (in 8-byte slots) of the offending instruction,
    None when the error is about the program as a whole.
    """

    def __init__(self, message: str, insn: int | None = None, text: str | None = None) -> None:
        self.insn = insn
        self.detail = message
        where = ""
        if insn is not None:
            where = f"insn {insn}" + (f" ({text})" if text else "") + ": "
        super().__init__(where + message)


class UnsupportedError(EbpfError):
    """Valid eBPF the simulator does not implement (maps, kfuncs, most helpers)."""


class BudgetExceededError(EbpfError):
    """The run executed more instructions than the budget allows."""


class RunError(Exception):
    """Raised by run-time support code; the run loop adds the insn text."""

    def __init__(self, pc: int, message: str, cls: type[EbpfError] = EbpfError) -> None:
        super().__init__(message)
        self.pc = pc
        self.message = message
        self.cls = cls
