"""``evl net`` on the command line: the C tool's getopt surface, usage and man page."""

from __future__ import annotations

import sys


def console_main() -> int:
    """The ``evl-net`` console script, so EVL's own C dispatcher can run this tool."""
    from evl_core.cli import console_main as evl_main

    return evl_main(["net", *sys.argv[1:]], prog="evl-net")
