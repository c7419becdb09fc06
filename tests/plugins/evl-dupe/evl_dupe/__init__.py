"""An evl plugin claiming ``hello``, which evl-hello provides already."""

from evl_core.hookspecs import Command, hookimpl


@hookimpl
def evl_commands():
    return [
        Command(
            name="hello",
            summary="another hello",
            parser="argparse:ArgumentParser",
            handler="evl_dupe:run",
        ),
    ]


def run(args, ctx) -> int:
    ctx.stdout.write("dupe says hello\n")
    return 0
