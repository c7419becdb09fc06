#!/usr/bin/env python3
"""Generate the shell completions in completions/ from the option tables (evl_net.cli.completion).

    python scripts/gen_completions.py            # rewrite the scripts in completions/
    python scripts/gen_completions.py --check    # exit 1 if a committed script is stale

Files written:

    completions/evl.bash                  bash (source it; needs no bash-completion helper)
    completions/bash-completion/evl       the same, named as bash-completion loads it
    completions/bash-completion/evl-net   the same, for the evl-net script
    completions/_evl                      zsh (#compdef evl evl-net)
    completions/evl.fish                  fish, evl
    completions/evl-net.fish              fish, evl-net

They come from the built-in commands and the plugins this project ships,
never from whatever else happens to be installed, so the output is the same
on every machine.  pyproject.toml installs them where each shell looks.
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPLETIONS_DIR = os.path.join(ROOT, "completions")


def render_all() -> dict[str, str]:
    """Path under completions/ -> script text."""
    sys.path[:0] = [ROOT, os.path.join(ROOT, "plugins", "net")]
    from evl_net.cli import completion

    return completion.scripts()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 when stale")
    ap.add_argument("--outdir", default=COMPLETIONS_DIR)
    args = ap.parse_args(argv)
    files = render_all()  # puts the checkout on sys.path
    from evl_core.generated import sync

    return sync(files, args.outdir, args.check, "completions", "scripts/gen_completions.py")


if __name__ == "__main__":
    sys.exit(main())
