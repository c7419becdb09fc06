"""Files generated from the code (man pages, shell completions): write them, or check they are fresh."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping


def sync(files: Mapping[str, str], outdir: str, check: bool, what: str, script: str) -> int:
    """Write each ``name -> text`` under ``outdir`` where it differs; with ``check``, only report.

    Returns the exit status: 1 when ``check`` found a stale file (named on stderr), else 0.
    """
    stale = []
    for filename, text in files.items():
        path = os.path.join(outdir, filename)
        try:
            with open(path) as f:
                current: str | None = f.read()
        except FileNotFoundError:
            current = None
        if current == text:
            continue
        if check:
            stale.append(filename)
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        print(f"wrote {path}")
    if stale:
        print(f"stale {what}: " + ", ".join(stale) + f" (run: python {script})", file=sys.stderr)
        return 1
    return 0
