"""Entry point of the ``net`` plugin: what it registers, by name only.

Nothing here imports a handler, a transport or a formatter; ``evl help``
loads this module and nothing more.
"""

from __future__ import annotations

from evl_core.getopt import NO_ARGUMENT, OPTIONAL_ARGUMENT, REQUIRED_ARGUMENT
from evl_core.hookspecs import Command, hookimpl
from evl_net import SUMMARY
from evl_net.hookspecs import Action, Formatter, TransportInfo

ACTIONS = "evl_net.actions"


@hookimpl
def evl_addhooks(pluginmanager) -> None:
    from evl_net import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


@hookimpl
def evl_commands() -> list[Command]:
    return [
        Command(
            name="net",
            summary=SUMMARY,
            parser="evl_net.cli.options:build_parser",
            handler="evl_net.cli.entry:run",
            raw_args=True,
            manpage="evl_net.cli.manpage:sections",
        ),
        Command(
            name="sim",
            summary="drive and inspect the simulated EVL network stack",
            parser="evl_net.cli.sim:build_parser",
            handler="evl_net.cli.sim:run",
            manpage="evl_net.cli.manpage:sim_sections",
        ),
        Command(
            name="net-agent",
            summary="serve evl net operations to a remote workstation (over SSH)",
            parser="evl_net.agent:build_parser",
            handler="evl_net.agent:run",
            manpage="evl_net.agent:manpage_sections",
        ),
    ]


def builtin_actions() -> list[Action]:
    return [
        Action("disable", 10, "disable-port", "d", NO_ARGUMENT, f"{ACTIONS}:disable",
               "disable the out-of-band port of the interface given with -i", needs_interface=True),
        Action("enable", 20, "enable-port", "e", NO_ARGUMENT, f"{ACTIONS}:enable",
               "enable an out-of-band port on the interface given with -i (see -p, -b)",
               needs_interface=True),
        Action("filter", 30, "filter", "F", OPTIONAL_ARGUMENT, f"{ACTIONS}:set_filter",
               "install the first program of an eBPF object as RX filter of the port given with -i, "
               "or remove the filter when no object is given; the path must be glued: -Fnetrx.o",
               metavar="OBJ", needs_interface=True),
        Action("set-vlans", 40, "set-vlan-ids", "N", OPTIONAL_ARGUMENT, f"{ACTIONS}:set_vlans",
               "set the global RX VLAN filter to a list such as 41,42,55-57 (glued: -N42), "
               "or clear it when no list is given", metavar="LIST"),
        Action("show-vlans", 50, "print-vlan-ids", "n", NO_ARGUMENT, f"{ACTIONS}:show_vlans",
               "print the global RX VLAN filter"),
        Action("solicit", 60, "solicit", "s", REQUIRED_ARGUMENT, f"{ACTIONS}:solicit",
               "solicit HOST (IPv4 address, host name or 'broadcast') into the out-of-band ARP "
               "front cache, via the interface given with -i if any", metavar="HOST"),
        Action("solicit", 60, "solicit-permanent", "S", REQUIRED_ARGUMENT, f"{ACTIONS}:solicit",
               "like -s, marking the ARP entry as permanent", metavar="HOST"),
        Action("query", 70, "query-port", "Q", OPTIONAL_ARGUMENT, f"{ACTIONS}:query",
               "print the status and counters of the port given with -i, all of them (verbose) or "
               "the values the glued modifiers RrTtosfacx select (terse): -QoRTf",
               metavar="MODS", needs_interface=True),
    ]


@hookimpl
def evl_net_actions() -> list[Action]:
    return builtin_actions()


@hookimpl
def evl_net_transports() -> list[TransportInfo]:
    return [
        TransportInfo("sim", "a simulator of the EVL network stack (the default without an EVL core)",
                      "evl_net.transports.sim:factory"),
        TransportInfo("ioctl", "the EVL kernel ABI (/dev/evl/net)", "evl_net.transports.ioctl:factory"),
        TransportInfo("remote", "a remote board over SSH", "evl_net.transports.remote:factory"),
    ]


@hookimpl
def evl_net_formatters() -> list[Formatter]:
    fmt = "evl_net.engine.render"
    return [
        Formatter("text", "messages of state-changing commands and the VLAN list", f"{fmt}:render_text"),
        Formatter("verbose", "-Q without modifiers: the manual's layout", f"{fmt}:render_verbose"),
        Formatter("terse", "-Q<mods>: the selected values on one line", f"{fmt}:render_terse"),
        Formatter("table", "-Q --all-interfaces: one row per interface", f"{fmt}:render_table"),
        Formatter("json", "--json: one JSON object per command", f"{fmt}:render_json"),
    ]
