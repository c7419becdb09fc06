"""``evl net-config``: a board's whole out-of-band network setup as files (see :mod:`evl_net.netconfig`).

This release checks the files (``validate``); planning and applying them
to a board come with the next ones.
"""

from __future__ import annotations

import argparse
import json

from evl_core.errors import shown
from evl_core.hookspecs import Context


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evl net-config",
        description="A board's out-of-band network setup (interfaces, oob ports, VLAN filter, eBPF RX filters, "
        "peers) as TOML files: check them.",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    sub = parser.add_subparsers(dest="what", metavar="COMMAND")
    sub.required = True
    validate = sub.add_parser(
        "validate",
        help="check files, reporting every problem as FILE:LINE: key.path: what is wrong (exit 1); "
        "the board is not touched",
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="net-config files, layered in this order")
    return parser


def run(args: argparse.Namespace, ctx: Context) -> int:
    from evl_net.netconfig import read

    _, problems = read(args.files)
    if args.json:
        data = {
            "valid": not problems,
            "files": args.files,
            "problems": [{"file": p.file, "line": p.line, "key": p.key, "message": p.message} for p in problems],
        }
        ctx.stdout.write(json.dumps(data, separators=(",", ":")) + "\n")
    else:
        for p in problems:
            ctx.stderr.write(f"{ctx.prog}: {p}\n")
        if not problems:
            ctx.stdout.write("".join(f"{shown(path)}: valid\n" for path in args.files))
    return 1 if problems else 0
