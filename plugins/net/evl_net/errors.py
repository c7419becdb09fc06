"""The one error type every transport raises for a failed kernel operation."""

from __future__ import annotations

import os


class KernelError(OSError):
    """An OSError as a syscall raises it, with what the C tool would say of it.

    ``detail`` explains the errno (shown in parentheses before the strerror);
    ``stage`` names the step that failed when it is not the operation itself,
    in the C tool's words (``cannot open out-of-band port eth9``), so every
    transport words one failure alike.
    """

    def __init__(self, code: int, detail: str | None = None, stage: str | None = None) -> None:
        super().__init__(code, os.strerror(code))
        self.detail = detail
        self.stage = stage

    @classmethod
    def wrap(cls, exc: OSError, detail: str | None = None, stage: str | None = None) -> KernelError:
        """``exc`` as a KernelError, keeping what it already says unless told otherwise."""
        return cls(
            exc.errno or 5,  # EIO when the OSError has no errno
            detail if detail is not None else getattr(exc, "detail", None),
            stage if stage is not None else getattr(exc, "stage", None),
        )


def device_open_stage(ifname: str) -> str:
    """What the C tool says when opening a device (EVL_NETIOC_DEVOPEN) fails."""
    return f"cannot open out-of-band port {ifname}"
