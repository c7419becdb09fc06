"""The registry cache: what the plugins registered, kept as plain data between runs.

A command's start-up would otherwise import pluggy and every plugin module
to learn what it already learnt last time.  After a clean load (no warning),
:func:`write` stores the commands, the labels, and what every hook without
arguments returned (records whose fields are plain data, classes named as
``"module:qualname"``), with a stamp of what they came from: the
distributions each ``sys.path`` directory holds (the names of their metadata
directories, which an install, an upgrade or a removal changes, the status
of their entry points, the ``.pth`` files), and the status of every module
the load imported from the plugins' and their records' packages.
:func:`read` answers only while every stamp still holds.  A load that read a
file changed less than two seconds before it began is not cached: it may
have read it half old, half new.

It is written with :mod:`marshal` (read in microseconds, with no import),
and read only from a private directory, as a regular file of the user's own
that nobody else may write to.

The cache is a speed-up, never a source of truth: a cache that is missing,
corrupt, of another format, not the user's own, or that cannot be written,
costs a load through pluggy and nothing else -- no warning, no error.
It is ``$XDG_CACHE_HOME/evl-tools/registry-<digest>.marshal`` (default
``~/.cache``), one per interpreter and ``sys.path``; ``EVL_NO_REGISTRY_CACHE=1``
turns it off.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from evl_core.plugins import Registry

FORMAT = 4
OFF_ENV = "EVL_NO_REGISTRY_CACHE"
#: A cache file larger than this is not ours.
MAX_BYTES = 4 * 1024 * 1024
#: Registry caches kept (``python -m evl_core`` from another directory is another ``sys.path``).
KEEP_FILES = 32


class Uncacheable(Exception):
    """A registration that cannot be kept as plain data (a callable, a local class...)."""


def cache_path(env: Mapping[str, str], key: str | None = None) -> str | None:
    if env.get(OFF_ENV):
        return None
    from evl_core.files import cache_directory

    where = cache_directory(env)
    if where is None:
        return None
    import zlib  # built in: hashlib would cost more than the rest of this module

    raw = (key or _key(sys.path)).encode("utf-8", "surrogateescape")
    return os.path.join(where, f"registry-{zlib.crc32(raw):08x}{zlib.adler32(raw):08x}.marshal")


def _key(path: list[Any]) -> str:
    """What a cache file is for (two that share a file name only overwrite each other)."""
    return repr((FORMAT, sys.version, path))


class Before:
    """What a load through pluggy starts from: ``sys.path`` (a plugin may extend it) and the time.

    A file that changed since shortly before the load began may have been
    read before or after its change: a load that saw such a file is not
    cached (the two seconds cover file systems' coarse times).
    """

    def __init__(self) -> None:
        import time

        self.path = list(sys.path)
        self.modules = set(sys.modules)
        self.since_ns = time.time_ns() - 2_000_000_000


def _stamp(path: str) -> list[Any]:
    """What a file's status is: it changed if this changed."""
    try:
        st = os.stat(path)
    except OSError:
        return [path, None]
    return [path, st.st_mtime_ns, st.st_size, st.st_ino]


def _distributions(path: str) -> list[Any] | None:
    """What of a ``sys.path`` directory says which distributions it holds, or None if it is no directory.

    The names of its ``.dist-info``/``.egg-info`` directories (an install, an
    upgrade or a removal changes them) with the status of their entry points
    (a file written in place, as a source tree's egg-info is, or added), and
    its ``.pth`` files with their status (an editable install's finder is named
    there).  Other files come and go (a current directory on ``sys.path``)
    without making the cache stale.
    """
    try:
        names = os.listdir(path)
    except OSError:
        return None
    out: list[Any] = []
    for name in sorted(names):
        if name.endswith((".dist-info", ".egg-info")):
            out.append(_stamp(os.path.join(path, name, "entry_points.txt")))
        elif name.endswith(".pth"):
            out.append(_stamp(os.path.join(path, name)))
    return out


def _dir_stamp(path: str) -> list[Any]:
    """A ``sys.path`` entry: the directory (its inode: not another one by that name) and its distributions."""
    try:
        st = os.stat(path)
    except OSError:
        return [path, None]
    return [path, st.st_ino, _distributions(path)]


def _dir_fresh(stamp: list[Any]) -> bool:
    """A ``sys.path`` entry holds the same distributions, their entry points unchanged."""
    return _dir_stamp(stamp[0]) == stamp


def _fresh(data: dict[str, Any]) -> bool:
    dirs, files = data.get("dirs"), data.get("files")
    if not isinstance(dirs, list) or not isinstance(files, list):
        return False
    for stamp in dirs:
        if not isinstance(stamp, list) or not stamp or not isinstance(stamp[0], str) or not _dir_fresh(stamp):
            return False
    for stamp in files:
        if not isinstance(stamp, list) or not stamp or not isinstance(stamp[0], str) or _stamp(stamp[0]) != stamp:
            return False
    return True


# -- plain data ---------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """``value`` itself if it is plain data (kept as is by marshal), else :class:`Uncacheable`."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    if type(value) in (list, tuple, frozenset):
        for item in value:
            _plain(item)
        return value
    raise Uncacheable(type(value).__name__)


def _encode_record(record: Any, modules: set[str]) -> list[Any]:
    from evl_core.record import fields, is_record

    kind = type(record)
    if not is_record(kind) or "<" in kind.__qualname__ or kind.__module__ not in sys.modules:
        raise Uncacheable(kind.__qualname__)
    modules.add(kind.__module__)
    return [f"{kind.__module__}:{kind.__qualname__}", {f.name: _plain(getattr(record, f.name)) for f in fields(kind)}]


def _decode_record(data: Any) -> Any:
    from evl_core.lazy import resolve

    ref, values = data
    return resolve(ref)(**values)


# -- writing ------------------------------------------------------------------------------------------


def _module_file(name: str | None) -> str | None:
    module = sys.modules.get(name or "")
    path = getattr(module, "__file__", None)
    return path if isinstance(path, str) else None


def write(registry: Registry, env: Mapping[str, str], before: Before) -> None:
    """Keep ``registry`` (a clean load through pluggy) for the next runs, if it is plain data; else nothing."""
    try:
        key = _key(before.path)
        path = cache_path(env, key)
        if path is None:
            return
        data = _snapshot(registry, before, key)
        if data is None:
            return
        import marshal

        _write_private(path, marshal.dumps(data))
    except Exception:  # noqa: BLE001, S110 -- uncacheable, unwritable, unmarshallable: it costs speed only
        pass


def _snapshot(registry: Registry, before: Before, key: str) -> dict[str, Any] | None:
    from evl_core.plugins import call_each

    pm = registry.plugin_manager
    modules: set[str] = set()
    problems: list[str] = []
    hooks: dict[str, list[Any]] = {}
    for name in sorted(vars(pm.hook)):
        caller = getattr(pm.hook, name)
        spec = getattr(caller, "spec", None)
        if spec is None or spec.argnames or spec.opts.get("historic") or name == "evl_commands":
            continue
        rows = []
        for plugin_name, records in call_each(caller.get_hookimpls(), problems.append):
            if not isinstance(records, (list, tuple)):
                raise Uncacheable(f"{name} returned {type(records).__name__}")
            module_name = getattr(pm.get_plugin(plugin_name), "__name__", None)
            rows.append([plugin_name, module_name, [_encode_record(r, modules) for r in records]])
        hooks[name] = rows
    if problems:  # a hook that raises warns each time: not cached
        return None
    commands = {name: _encode_record(command, modules) for name, command in registry.commands.items()}
    files: list[str] = []
    for _plugin_name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        modules.add(plugin.__name__ if isinstance(plugin, type(sys)) else type(plugin).__module__)
    # Every module the load imported from the plugins' and records' packages: an edit to any of them
    # (the operations table, a summary) may change what they register.
    packages = {name.partition(".")[0] for name in modules}
    loaded = [name for name in set(sys.modules) - before.modules if name.partition(".")[0] in packages]
    for module_name in sorted(modules | set(loaded)):
        module_file = _module_file(module_name)
        if module_file is None:
            if module_name in modules:
                raise Uncacheable(module_name)  # nothing to check it by
            continue
        files.append(module_file)
    if any(not isinstance(entry, str) for entry in before.path):
        raise Uncacheable("a sys.path entry that is not a string")
    stamps = [_stamp(f) for f in files]
    dirs = [_dir_stamp(entry or ".") for entry in before.path]
    inner = [stamp for d in dirs if len(d) == 3 and d[2] for stamp in d[2]]  # what they hold, not their own times
    if any(len(stamp) > 2 and stamp[1] >= before.since_ns for stamp in stamps + inner):
        return None  # changed while (or just before) it was loaded: maybe read half old, half new
    return {
        "format": FORMAT,
        "key": key,
        "dirs": dirs,
        "files": stamps,
        "commands": commands,
        "conflicts": registry.conflicts,
        "labels": registry.labels,
        "hooks": hooks,
    }


def _write_private(path: str, blob: bytes) -> None:
    where = os.path.dirname(path)
    os.makedirs(where, mode=0o700, exist_ok=True)
    if not _private_dir(where):
        return
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _prune(where, keep=path)


def _prune(where: str, keep: str) -> None:
    """At most :data:`KEEP_FILES` registry caches (one per interpreter and ``sys.path``): the oldest go."""
    try:
        names = [n for n in os.listdir(where) if n.startswith("registry-")]
        if len(names) <= KEEP_FILES:
            return
        aged = sorted(names, key=lambda n: os.lstat(os.path.join(where, n)).st_mtime_ns)
    except OSError:
        return
    for name in aged[: len(names) - KEEP_FILES]:
        if os.path.join(where, name) != keep:
            try:
                os.unlink(os.path.join(where, name))
            except OSError:
                pass


def _private_dir(where: str) -> bool:
    """The cache directory is the user's own and nobody else may write to it."""
    try:
        st = os.lstat(where)
    except OSError:
        return False
    import stat

    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


# -- reading ------------------------------------------------------------------------------------------


def read(env: Mapping[str, str], stderr: Any = None) -> Registry | None:
    """The cached registry, if there is a valid one for this interpreter and its installed distributions."""
    path = cache_path(env)
    if path is None:
        return None
    try:
        blob = _read_private(path)
    except OSError:
        return None
    if blob is None:
        return None
    import marshal

    try:
        data = marshal.loads(blob)  # noqa: S302 -- our own file, checked private first; its shape is checked below
        if (
            not isinstance(data, dict)
            or data.get("format") != FORMAT
            or data.get("key") != _key(sys.path)
            or not _fresh(data)
        ):
            return None
        commands = {name: _decode_record(value) for name, value in data["commands"].items()}
        conflicts, labels, hooks = data["conflicts"], data["labels"], data["hooks"]
        if not (isinstance(conflicts, dict) and isinstance(labels, dict) and isinstance(hooks, dict)):
            return None
    except Exception:  # noqa: BLE001 -- a cache that is not what we wrote only costs a load through pluggy
        return None
    from evl_core.commands import Command
    from evl_core.plugins import Registry

    if not all(isinstance(c, Command) for c in commands.values()):
        return None
    return Registry(CachedPlugins(hooks, path, stderr), commands, conflicts, labels)


def _read_private(path: str) -> bytes | None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        import stat

        st = os.fstat(fd)
        if (
            not stat.S_ISREG(st.st_mode)
            or st.st_uid != os.geteuid()
            or st.st_mode & 0o022
            or st.st_size > MAX_BYTES
            or not _private_dir(os.path.dirname(path))
        ):
            return None
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


class CachedPlugins:
    """Stands in for the plugin manager of a registry read from the cache.

    :func:`evl_core.plugins.hook_results` asks it for what a hook returned;
    anything else (``evl plugins``, a man page, a hook with arguments) builds
    the real plugin manager through pluggy, once, and is answered by it.
    """

    def __init__(self, hooks: dict[str, Any], path: str, stderr: Any) -> None:
        self._hooks = hooks
        self._path = path
        self._stderr = stderr
        self._decoded: dict[str, list[tuple[str, str | None, list[Any]]]] = {}
        self._real: Any = None

    def cached_results(self, hook: str) -> list[tuple[str, str | None, list[Any]]] | None:
        found = self._decoded.get(hook)
        if found is None:
            rows = self._hooks.get(hook)
            if rows is None:
                return None
            try:
                found = [(name, module, [_decode_record(r) for r in records]) for name, module, records in rows]
            except Exception:  # noqa: BLE001 -- not what we wrote (a class changed): ask pluggy
                return None
            self._decoded[hook] = found
        return found

    def real(self) -> Any:
        """pluggy's plugin manager, loaded as the cache was made.

        A load that warns now (a plugin that broke in a way no stamp shows)
        says so, and the cache is dropped: the next run loads through pluggy.
        """
        if self._real is None:
            from evl_core.plugins import load_through_pluggy

            registry = load_through_pluggy((), True, self._stderr or sys.stderr)
            if registry.warned:
                try:
                    os.unlink(self._path)
                except OSError:
                    pass
            self._real = registry.plugin_manager
        return self._real

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.real(), name)
