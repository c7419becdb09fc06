"""Plugin loading: built-ins and entry points through one registration path.

A plugin that fails to import, or whose hook raises, costs one warning line
and its own commands; every other command keeps working.

Loading through pluggy imports every plugin module and pluggy itself, which
costs more than the rest of a command's start-up; so what a clean load
registered is kept in the registry cache (:mod:`evl_core.regcache`), and
:func:`load` answers from it while the installed distributions are the same.
Read registrations through :func:`hook_results`, which takes either.
"""

from __future__ import annotations

import importlib
import os
import sys

from evl_core.commands import Command
from evl_core.record import field, record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import Any, TextIO

    import pluggy

ENTRY_POINT_GROUP = "evl"
BUILTIN_PLUGINS = ("evl_core.builtins",)
AUTOLOAD_OFF_ENV = "EVL_DISABLE_PLUGIN_AUTOLOAD"


@record
class Registry:
    """The loaded plugin manager and the commands it yielded."""

    plugin_manager: Any
    commands: dict[str, Command] = field(default_factory=dict)
    #: command name -> labels of every plugin claiming it
    conflicts: dict[str, list[str]] = field(default_factory=dict)
    #: plugin name -> "name (dist version)", for messages
    labels: dict[str, str] = field(default_factory=dict)
    #: whether loading warned (a registry that did is not cached: its warnings stay live)
    warned: bool = False


class _Warner:
    """Writes warnings to ``stream`` and remembers that it did."""

    def __init__(self, stream: TextIO) -> None:
        self.stream, self.warned = stream, False

    def write(self, text: str) -> None:
        self.warned = True
        self.stream.write(text)


def _warn(stream: Any, text: str) -> None:
    text = " ".join(text.split())  # one line, whatever the exception said
    stream.write(f"evl: warning: {text}\n")


def new_plugin_manager() -> pluggy.PluginManager:
    import pluggy

    from evl_core import hookspecs

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
    """Register built-ins, then ``plugins`` (a test seam), then entry points.

    With entry points and no extra ``plugins``, the registry cache answers
    when it is valid, and a clean load refreshes it.
    """
    stderr = stderr or sys.stderr
    env = os.environ if env is None else env
    if autoload is None:
        autoload = not env.get(AUTOLOAD_OFF_ENV)
    plugins = list(plugins)
    cacheable = autoload and not plugins
    if cacheable:
        from evl_core import regcache

        cached = regcache.read(env, stderr)
        if cached is not None:
            return cached
        before = regcache.Before()  # what the cache is written for: sys.path as it is now, the time
    registry = load_through_pluggy(plugins, autoload, stderr)
    if cacheable and not registry.warned:
        regcache.write(registry, env, before)
    return registry


def load_through_pluggy(plugins: Iterable[Any], autoload: bool, stderr: TextIO) -> Registry:
    """:func:`load` without the cache: every plugin imported and registered with pluggy.

    A Python warning a plugin raises while it loads (a DeprecationWarning...)
    is shown as Python shows it, and makes the load one that is not cached.
    """
    import warnings

    with warnings.catch_warnings(record=True) as caught:  # the filters in force still apply
        registry = _load_through_pluggy(plugins, autoload, stderr)
    for warning in caught:
        registry.warned = True
        try:
            stderr.write(warnings.formatwarning(warning.message, warning.category, warning.filename, warning.lineno))
        except Exception:  # noqa: BLE001, S110 -- a warning that cannot even be formatted is not worth a failure
            pass
    return registry


def _load_through_pluggy(plugins: Iterable[Any], autoload: bool, stderr: TextIO) -> Registry:
    warner = _Warner(stderr)
    stderr = warner  # type: ignore[assignment]
    pm = new_plugin_manager()
    registry = Registry(pm)
    for module_name in BUILTIN_PLUGINS:
        _register(pm, importlib.import_module(module_name), module_name, stderr)
        registry.labels[module_name] = f"{module_name} (built-in)"
    for plugin in plugins:
        name = getattr(plugin, "__name__", None) or repr(plugin)
        if _register(pm, plugin, name, stderr):
            registry.labels[name] = name
    if autoload:
        _load_entry_points(registry, stderr)
    _drop_invalid(registry, stderr)
    _collect_commands(registry, stderr)
    registry.warned = warner.warned
    return registry


def _drop_invalid(registry: Registry, stderr: TextIO) -> None:
    """A plugin implementing a hook nobody specified (a typo) is dropped with a warning."""
    import pluggy

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
        for command in records or ():
            problem = _check_record(command)
            if problem:
                _warn(stderr, f"plugin {label}: {problem}")
                continue
            name = command.name
            if name in registry.commands and owners[name].endswith("(built-in)"):
                _warn(stderr, f"plugin {label}: command '{name}' is built in; ignored")
                continue
            if name in registry.conflicts:
                registry.conflicts[name].append(label)
            elif name in registry.commands:
                registry.conflicts[name] = [owners[name], label]
                del registry.commands[name]
            else:
                registry.commands[name] = command
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


def hook_results(plugin_manager: Any, hook: str, warn: Callable[[str], None]) -> list[tuple[str, str | None, Any]]:
    """(plugin name, plugin module name, what it returned) for each implementation of a no-argument ``hook``.

    ``plugin_manager`` is pluggy's or the registry cache's stand-in
    (:class:`evl_core.regcache.CachedPlugins`), which answers from the cache.
    """
    cached = getattr(plugin_manager, "cached_results", None)
    if cached is not None:
        found = cached(hook)
        if found is not None:
            return found
    out = []
    for name, records in call_each(getattr(plugin_manager.hook, hook).get_hookimpls(), warn):
        out.append((name, getattr(plugin_manager.get_plugin(name), "__name__", None), records))
    return out


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
