"""``evl hello``: a third-party plugin, as small as a plugin can be."""

from evl_core.hookspecs import Command, hookimpl

SUMMARY = "say hello from a third-party plugin"


@hookimpl
def evl_commands():
    return [
        Command(
            name="hello",
            summary=SUMMARY,
            parser="evl_hello.cli:build_parser",
            handler="evl_hello.cli:run",
        ),
    ]
