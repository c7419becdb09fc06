"""Man pages generated from the commands' own parsers (argparse-manpage).

For the shipped pages and ``evl help --man``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

DATE = "2026-11-25"
MANUAL = "EVL command set"


def render(parser: argparse.ArgumentParser, prog: str, description: str, sections: Sequence[tuple[str, str]]) -> str:
    """One page in roff: the parser's options, then the extra ``(heading, roff)`` sections."""
    from argparse_manpage.manpage import Manpage

    from evl_core import __version__

    page = Manpage(parser)
    page.prog = prog
    page.date = DATE
    page.section = 8
    page.manual = MANUAL
    page.source = f"evl-tools {__version__}"
    page.description = description
    for heading, content in sections:
        page.add_section(heading, ">", content.strip("\n"))
    return str(page)


def command_page(command: Any, plugin_manager: Any = None) -> str:
    """The page of ``evl <command>``, with what the plugins of ``plugin_manager`` add to it."""
    from evl_core.hookspecs import build_parser_for
    from evl_core.lazy import resolve

    parser = build_parser_for(command, f"evl {command.name}", plugin_manager)
    extra = list(resolve(command.manpage)()) if command.manpage else []
    if not any(h == "EXIT STATUS" for h, _c in extra):
        extra.append(("EXIT STATUS", "0 on success, 1 on failure, 2 on a usage error."))
    see_also = [c for h, c in extra if h == "SEE ALSO"]
    extra = [(h, c) for h, c in extra if h != "SEE ALSO"]
    extra.append(("SEE ALSO", ", ".join([r"\fBevl\fR(8)", *(c.strip() for c in see_also)])))
    return render(parser, f"evl-{command.name}", command.summary, extra)
