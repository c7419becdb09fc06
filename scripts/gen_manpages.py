#!/usr/bin/env python3
"""Generate man/evl.8 and man/evl-<cmd>.8 from the real parsers (argparse-manpage), evl-net-config.5 from its schema.

    python scripts/gen_manpages.py            # rewrite the pages in man/
    python scripts/gen_manpages.py --check    # exit 1 if a committed page is stale

Pages come from the built-in commands and the plugins this project ships,
never from whatever else happens to be installed, so the output is the same
on every machine (COLUMNS and the date are pinned too).
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAN_DIR = os.path.join(ROOT, "man")
SHIPPED_PLUGINS = ("evl_net.plugin",)

EVL_SECTIONS = [
    (
        "COMMANDS",
        r"""
\fBevl\fR runs \fIcommand\fR from the first of:
.IP 1. 3
a plugin command: built\-in commands (\fBhelp\fR, \fBplugins\fR) and the commands of installed
plugins (entry\-point group \fBevl\fR), such as \fBnet\fR;
.IP 2. 3
an executable \fBevl\-\fIcommand\fR found on \fBPATH\fR or in the command directory
(\fB\-P\fR), run with argv[0] \fBevl\-\fIcommand\fR and the environment below;
its exit status is that of \fBevl\fR.
.PP
Option parsing stops at the first word that is not an option: everything after the
command belongs to it.
With no command, \fBevl\fR prints its usage and the command list.
\fBevl help\fR lists every command with its one\-line description
(plugins give it through their hook, external commands answer \fB\-@\fR).
""",
    ),
    (
        "PLUGINS",
        r"""
A plugin is a Python distribution declaring an entry point in the \fBevl\fR group.
Its module implements the hooks of \fBevl_core.hookspecs\fR: \fBevl_commands\fR returns
command records (name, one\-line summary, parser builder, handler) and
\fBevl_addhooks\fR may add hook specifications of its own.
A plugin that fails to load costs one warning line and its own commands only.
Two plugins claiming one command name make that command unavailable, with an error
naming both.
.PP
What the plugins registered is kept in the registry cache,
\fI$XDG_CACHE_HOME/evl\-tools/registry\-*.marshal\fR (default \fI~/.cache\fR), so that a
command runs without importing pluggy or any plugin module.  It is used while every
directory of the interpreter's module path, the plugins' distribution metadata and their
modules are as they were when it was written: installing, upgrading or removing any
distribution rebuilds it.  A load that warned is not cached.  A cache that is missing,
corrupt, not a regular file of the user's own, writable by others, or that cannot be
written, only costs a load through pluggy.
""",
    ),
    (
        "ENVIRONMENT",
        r"""
.TP
\fBEVL_CMDDIR\fR, \fBEVL_TESTDIR\fR, \fBEVL_SYSDIR\fR, \fBEVL_TRACEDIR\fR
Set for external commands: the command directory, the test directory, the sysfs root
of EVL devices (\fI/sys/devices/virtual\fR unless already set) and the tracing directory.
.TP
\fBEVL_DISABLE_PLUGIN_AUTOLOAD\fR
When set, no plugin is loaded from entry points (built\-in commands remain).
.TP
\fBEVL_NO_REGISTRY_CACHE\fR
When set, the registry cache is neither read nor written.
.TP
\fBXDG_CACHE_HOME\fR
Where the registry cache is (\fI~/.cache\fR when unset or not absolute).
.TP
\fBEVL_DEBUG\fR
When set, errors come with a Python traceback.
""",
    ),
    (
        "EXIT STATUS",
        r"""
The exit status of the command that ran.
0 when no command is given, or for \fB\-V\fR and \fB\-h\fR;
1 for an unknown command (\fIevl: no 'foo' command. Try 'evl \-\-help'.\fR)
or a failure of a plugin command (\fIevl\-<cmd>: <message>: <reason>\fR on stderr);
2 for a bad global option (usage on stderr).
""",
    ),
    (
        "SEE ALSO",
        r"""
\fBevl\-net\fR(8), \fBevl\-help\fR(8), \fBevl\-plugins\fR(8)
""",
    ),
]


def render_all() -> dict[str, str]:
    """file name -> page text."""
    os.environ["COLUMNS"] = "80"
    sys.path[:0] = [ROOT, os.path.join(ROOT, "plugins", "net")]
    import importlib

    from evl_core import cli, manpage, plugins

    registry = plugins.load([importlib.import_module(m) for m in SHIPPED_PLUGINS], autoload=False)
    pages = {"evl.8": manpage.render(cli.build_parser(), "evl", "run a command of the EVL command set", EVL_SECTIONS)}
    for name, command in sorted(registry.commands.items()):
        pages[f"evl-{name}.8"] = manpage.command_page(command, registry.plugin_manager)
    from evl_net import netconfig
    from evl_net.netconfig import manpage as netconfig_manpage

    pages["evl-net-config.5"] = netconfig_manpage.page(netconfig.SCHEMA_PATH)  # the file format, from its schema
    return pages


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 when stale")
    ap.add_argument("--outdir", default=MAN_DIR)
    args = ap.parse_args(argv)
    files = render_all()  # puts the checkout on sys.path
    from evl_core.generated import sync

    return sync(files, args.outdir, args.check, "man pages", "scripts/gen_manpages.py")


if __name__ == "__main__":
    sys.exit(main())
