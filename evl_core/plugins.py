"""Plugin loading: built-ins and entry points through one registration path.

A plugin that fails to import, or whose hook raises, costs one warning line
and its own commands; every other command keeps working.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

import pluggy

from evl_core import hookspecs
from evl_core.hookspecs import Command

ENTRY_POINT_GROUP = "evl"
BUILTIN_PLUGINS = ("evl_core.builtins",)
AUTOLOAD_OFF_ENV = "EVL_DISABLE_PLUGIN_AUTOLOAD"


@dataclass
class Registry:
    """The loaded plugin manager and the commands it yielded."""

    plugin_manager: pluggy.PluginManager
    commands: dict[str, Command] = field(default_factory=dict)
    #: command name -> labels of every plugin claiming it
    conflicts: dict[str, list[str]] = field(default_factory=dict)
    #: plugin name -> "name (dist version)", for messages
    labels: dict[str, str] = field(default_factory=dict)


def _warn(stream: TextIO, text: str) -> None:
    text = " ".join(text.split())  # one line, whatever the exception said
    stream.write(f"evl: warning: {text}\n")


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.hook.evl_addhooks.call_historic(kwargs={"pluginmanager": pm})
    return pm


def _register(pm: pluggy.PluginManager, plugin: Any, name: str, stderr: TextIO) -> bool:
    try:
        pm.register(plugin, name=name)
    except Exception as exc:  # noqa: BLE001 -- a plugin must never break the others: any failure is one warning
        _warn(stderr, f"plugin '{name}' cannot be registered: {exc}")
        try:
            pm.unregister(name=name)
        except Exception:  # noqa: BLE001, S110 -- best-effort cleanup: the failure was just reported
            pass
        return False
    return True


def load(
    plugins: Iterable[Any] = (),
    autoload: bool | None = None,
    stderr: TextIO | None = None,
    env: Mapping[str, str] | None = None,
) -> Registry:
    """Register built-ins, then ``plugins`` (a test seam), then entry points."""
    stderr = stderr or sys.stderr
    env = os.environ if env is None else env
    pm = new_plugin_manager()
    registry = Registry(pm)
    for module_name in BUILTIN_PLUGINS:
        _register(pm, importlib.import_module(module_name), module_name, stderr)
        registry.labels[module_name] = f"{module_name} (built-in)"
    for plugin in plugins:
        name = getattr(plugin, "__name__", None) or repr(plugin)
        if _register(pm, plugin, name, stderr):
            registry.labels[name] = name
    if autoload is None:
        autoload = not env.get(AUTOLOAD_OFF_ENV)
    if autoload:
        _load_entry_points(registry, stderr)
    _drop_invalid(registry, stderr)
    _collect_commands(registry, stderr)
    return registry


def _drop_invalid(registry: Registry, stderr: TextIO) -> None:
    """A plugin implementing a hook nobody specified (a typo) is dropped with a warning."""
    pm = registry.plugin_manager
    while True:
        try:
            pm.check_pending()
            return
        except pluggy.PluginValidationError as exc:
            name = pm.get_name(exc.plugin) or repr(exc.plugin)
            _warn(stderr, f"plugin {registry.labels.get(name, name)} ignored: {exc}")
            pm.unregister(exc.plugin)


def _load_entry_points(registry: Registry, stderr: TextIO) -> None:
    from evl_core.entrypoints import entry_points

    pm = registry.plugin_manager
    for ep in entry_points(ENTRY_POINT_GROUP):
        if pm.has_plugin(ep.name) or pm.is_blocked(ep.name):
            continue
        label = f"{ep.name} ({ep.dist_name} {ep.dist_version})"
        try:
            plugin = ep.load()
        except Exception as exc:  # noqa: BLE001 -- a plugin that cannot be imported costs one warning
            _warn(stderr, f"plugin {label} failed to load: {type(exc).__name__}: {exc}")
            continue
        if _register(pm, plugin, ep.name, stderr):
            registry.labels[ep.name] = label


def _collect_commands(registry: Registry, stderr: TextIO) -> None:
    pm = registry.plugin_manager
    owners: dict[str, str] = {}
    results = call_each(pm.hook.evl_commands.get_hookimpls(), lambda text: _warn(stderr, text))
    for plugin_name, records in results:
        label = registry.labels.get(plugin_name, plugin_name)
        for record in records or ():
            problem = _check_record(record)
            if problem:
                _warn(stderr, f"plugin {label}: {problem}")
                continue
            name = record.name
            if name in registry.commands and owners[name].endswith("(built-in)"):
                _warn(stderr, f"plugin {label}: command '{name}' is built in; ignored")
                continue
            if name in registry.conflicts:
                registry.conflicts[name].append(label)
            elif name in registry.commands:
                registry.conflicts[name] = [owners[name], label]
                del registry.commands[name]
            else:
                registry.commands[name] = record
                owners[name] = label


def _check_record(record: Any) -> str | None:
    if not isinstance(record, Command):
        return f"ignored a command record of type {type(record).__name__}"
    name = record.name
    if not isinstance(name, str) or not name or name != name.strip().lower() or "/" in name or name.startswith("-"):
        return f"ignored a command with an invalid name {name!r}"
    return None


def conflict_message(name: str, claimants: list[str]) -> str:
    return f"command '{name}' is claimed by several plugins: " + " and ".join(claimants)


def call_each(hook_impls: Iterable[Any], warn: Callable[[str], None], **kwargs: Any) -> list[tuple[str, Any]]:
    """Call each implementation of a hook alone, dropping (with a warning) the ones that raise.

    pluggy would stop at the first exception; one broken plugin must not cost the others.
    """
    results = []
    for impl in hook_impls:
        try:
            results.append((impl.plugin_name, impl.function(**kwargs)))
        except Exception as exc:  # noqa: BLE001 -- a broken hook costs one warning, not the others' results
            warn(f"plugin '{impl.plugin_name}' hook {impl.function.__name__} failed: {type(exc).__name__}: {exc}")
    return results
