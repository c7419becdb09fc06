"""``evl help`` and ``evl plugins``."""

from __future__ import annotations

import argparse

from evl_core import externals

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Sequence

    from evl_core.commands import Context


class _IgnoringParser(argparse.ArgumentParser):
    """A parser that drops what it does not know instead of failing.

    The C ``evl-help`` is a shell script that ignores its arguments, so
    ``evl help extra words`` (or a stray option) still lists the commands.
    """

    def parse_args(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        namespace: argparse.Namespace | None = None,
    ) -> argparse.Namespace:
        parsed, _ignored = self.parse_known_args(args, namespace)
        return parsed


def build_parser() -> argparse.ArgumentParser:
    parser = _IgnoringParser(
        prog="evl help",
        description="List every command, plugin and external alike, with its one-line description.",
    )
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    parser.add_argument(
        "--man",
        metavar="COMMAND",
        help="print the man page (roff) of COMMAND as the installed plugins make it, "
        "e.g. evl help --man net | man -l -",
    )
    parser.add_argument(
        "words",
        nargs="*",
        metavar="word",
        help="ignored, as is any unknown option: the C evl-help ignores its arguments",
    )
    return parser


def command_lines(ctx: Context) -> list[tuple[str, str, str]]:
    """(name, description, origin) of every command, sorted by name."""
    rows = {name: (name, cmd.summary, "plugin") for name, cmd in ctx.commands.items()}
    for name, claimants in ctx.conflicts.items():
        rows[name] = (name, "(unavailable: claimed by " + " and ".join(claimants) + ")", "conflict")
    found = {n: p for n, p in externals.list_all(ctx.cmddir, ctx.env).items() if n not in rows}
    if not found:
        return [rows[name] for name in sorted(rows)]
    from concurrent.futures import ThreadPoolExecutor

    # Each external is a process start; ask them all at once.
    with ThreadPoolExecutor(max_workers=8) as pool:
        summaries = pool.map(lambda path: externals.describe(path, ctx.env), found.values())
        for (name, path), summary in zip(found.items(), summaries, strict=True):
            rows[name] = (name, summary, path)
    return [rows[name] for name in sorted(rows)]


def run(args: argparse.Namespace, ctx: Context) -> int:
    if args.man is not None:
        return _man(args.man, ctx)
    lines = command_lines(ctx)
    if args.json:
        import json

        out = [{"name": n, "summary": s, "origin": o} for n, s, o in lines]
        ctx.stdout.write(json.dumps(out) + "\n")
        return 0
    ctx.stdout.write("\navailable commands:\n\n")
    for name, summary, _origin in lines:
        ctx.stdout.write(f"{name:<12} {summary}\n")  # C's printf '%-12s %s\n'
    return 0


def _man(name: str, ctx: Context) -> int:
    from evl_core import manpage
    from evl_core.errors import EvlError

    command = ctx.commands.get(name)
    if command is None:
        raise EvlError(f"no man page for '{name}': not a plugin command (see evl help)")
    ctx.stdout.write(manpage.command_page(command, ctx.plugin_manager))
    return 0


def build_plugins_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evl plugins",
        description="List the loaded plugins and the hooks they implement.",
    )
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    return parser


def run_plugins(args: argparse.Namespace, ctx: Context) -> int:
    pm = ctx.plugin_manager
    rows = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: str(item[0])):
        if plugin is None:
            continue
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or ())
        rows.append({"name": name, "origin": ctx.plugin_labels.get(name, name), "hooks": hooks})
    if args.json:
        import json

        ctx.stdout.write(json.dumps(rows) + "\n")
        return 0
    for row in rows:
        ctx.stdout.write(f"{row['origin']:<32} {', '.join(row['hooks'])}\n")
    return 0
