"""What the ``net`` hooks of every loaded plugin register."""

from __future__ import annotations

from typing import Any

from evl_core.hookspecs import Context


def registered(ctx: Context, hook: str) -> list[Any]:
    """Every record a net hook yields; a plugin whose hook raises costs one warning and its records."""
    from evl_core.plugins import call_each

    caller = getattr(ctx.plugin_manager.hook, hook)
    records: list[Any] = []
    for _plugin, result in call_each(caller.get_hookimpls(), lambda t: ctx.stderr.write(f"{ctx.prog}: warning: {t}\n")):
        records.extend(result or ())
    return records
