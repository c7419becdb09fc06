"""An evl plugin that imports fine but whose command listing raises."""

from evl_core.hookspecs import hookimpl


@hookimpl
def evl_commands():
    raise RuntimeError("evl_raising cannot list its commands")
