"""Entry point of the ``net`` plugin: what it registers, by name only.

Nothing here imports a handler, a transport or a formatter; ``evl help``
loads this module and nothing more.
"""

from __future__ import annotations

from evl_core.hookspecs import Command, hookimpl
from evl_net import SUMMARY
from evl_net.registrations import Formatter, Operation, TransportInfo


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
            name="net-config",
            summary="a board's whole out-of-band network setup as files: validate, plan, apply, export",
            parser="evl_net.cli.netconfig:build_parser",
            handler="evl_net.cli.netconfig:run",
            manpage="evl_net.netconfig.manpage:sections",
        ),
        Command(
            name="net-agent",
            summary="serve evl net operations to a remote workstation (over SSH)",
            parser="evl_net.agent:build_parser",
            handler="evl_net.agent:run",
            manpage="evl_net.agent:manpage_sections",
        ),
        Command(
            name="net-exporter",
            summary="serve the board's out-of-band network statistics to Prometheus (/metrics over HTTP)",
            parser="evl_net.cli.exporter:build_parser",
            handler="evl_net.cli.exporter:run",
            manpage="evl_net.cli.exporter:manpage_sections",
        ),
    ]


def builtin_actions() -> list[Operation]:
    """The built-in operations (the C tool's commands)."""
    from evl_net.ops import builtin

    return builtin()


@hookimpl
def evl_net_operations() -> list[Operation]:
    return builtin_actions()


@hookimpl
def evl_net_transports() -> list[TransportInfo]:
    return [
        TransportInfo(
            "sim",
            "a simulator of the EVL network stack (the default without an EVL core)",
            "evl_net.transports.sim:factory",
        ),
        TransportInfo("ioctl", "the EVL kernel ABI (/dev/evl/net)", "evl_net.transports.ioctl:factory"),
        TransportInfo("remote", "a remote board over SSH", "evl_net.transports.remote:factory"),
    ]


@hookimpl
def evl_net_formatters() -> list[Formatter]:
    fmt = "evl_net.engine.render"
    return [
        Formatter("text", "what the C tool prints: messages, the VLAN list, the -Q report", f"{fmt}:render_text"),
        Formatter("verbose", "-Q without modifiers: the manual's layout", f"{fmt}:render_verbose"),
        Formatter("terse", "-Q<mods>: the selected values on one line", f"{fmt}:render_terse"),
        Formatter("table", "-Q --all-interfaces: one row per interface", f"{fmt}:render_table"),
        Formatter("json", "--json: one JSON object per command", f"{fmt}:render_json"),
        Formatter("names", "-Q --all-interfaces: the interface names, one a line", f"{fmt}:render_names"),
        Formatter(
            "prometheus",
            "-Q, -Q --all-interfaces: the Prometheus text exposition format (node_exporter's textfile collector)",
            "evl_net.engine.prometheus:render",
        ),
    ]
