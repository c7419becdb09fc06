"""The parser and handler of ``evl hello``, imported only when it runs."""

import argparse
import errno

from evl_core.errors import EvlError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evl hello", description="Say hello.")
    parser.add_argument("--name", default="world", help="whom to greet")
    parser.add_argument("--fail", action="store_true", help="fail with EPERM instead")
    return parser


def run(args: argparse.Namespace, ctx) -> int:
    if args.fail:
        raise EvlError("cannot greet", errno.EPERM)
    ctx.stdout.write(f"hello, {args.name}\n")
    return 0
