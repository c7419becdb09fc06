"""Built-in commands, registered through the same hook as any plugin."""

from __future__ import annotations

from evl_core.hookspecs import Command, hookimpl


@hookimpl
def evl_commands() -> list[Command]:
    return [
        Command(
            name="help",
            summary="list the available commands",
            parser="evl_core.help:build_parser",
            handler="evl_core.help:run",
        ),
        Command(
            name="plugins",
            summary="list the loaded plugins and what they provide",
            parser="evl_core.help:build_plugins_parser",
            handler="evl_core.help:run_plugins",
        ),
    ]
