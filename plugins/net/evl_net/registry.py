"""What the ``net`` hooks of every loaded plugin register, with collisions settled once.

The rule is the core's rule for commands: a name (an operation, a long
option, a transport, a formatter) that two plugins claim is unavailable, and
using it is an error naming both; a built-in always wins over a third party,
which gets one warning.  A broken hook costs one warning and its own records.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:  # for the type checker only: typing costs start-up time
    from collections.abc import Callable, Iterable
    from typing import Any, Protocol, TypeVar
    from typing import Generic as _Generic

    from evl_core.commands import Context

    T = TypeVar("T")

    class _Named(Protocol):
        @property
        def name(self) -> str: ...

    N = TypeVar("N", bound=_Named)

else:

    class _Generic:
        """``Registered[X]`` at run time (annotations are never evaluated, but say so anyway)."""

        def __class_getitem__(cls, item: object) -> object:
            return cls

    T = None

BUILTIN_MODULE = "evl_net.plugin"


class Registered(_Generic[T]):
    """The usable records of one hook, and the names that collided (``name -> claimants``)."""

    def __init__(self) -> None:
        self.records: list[T] = []
        self.conflicts: dict[str, list[str]] = {}

    def conflict_message(self, name: str) -> str | None:
        """The error for using ``name`` (as the keys spell it), if it is one that collided."""
        if name not in self.conflicts:
            return None
        return f"{name} is claimed by several plugins: " + " and ".join(self.conflicts[name])


def _warn(ctx: Context, text: str) -> None:
    ctx.stderr.write(f"{ctx.prog}: warning: {text}\n")


def _results(ctx: Context, hook: str) -> list[tuple[str, bool, Any]]:
    """(plugin label, built in?, records) for each implementation of ``hook``."""
    from evl_core.plugins import hook_results

    out = []
    for name, module_name, records in hook_results(ctx.plugin_manager, hook, lambda t: _warn(ctx, t)):
        out.append((ctx.plugin_labels.get(name, name), module_name == BUILTIN_MODULE, list(records or ())))
    return sorted(out, key=lambda item: not item[1])  # built-ins first, whatever the registration order


def collect(
    ctx: Context,
    hook: str,
    kind: type[T],
    keys: Callable[[T], Iterable[str]],
    what: str,
    refuse: Callable[[T, bool], str | None] | None = None,
    adapt: Callable[[T, bool], T] | None = None,
) -> Registered[T]:
    """The records of ``hook`` of type ``kind``; ``keys(record)`` are the names it claims.

    ``refuse(record, built_in)`` may give a reason to drop a record (with a
    warning); ``adapt(record, built_in)`` may replace one that is kept.  A
    record claiming a name a built-in claims is dropped with a warning; two
    third parties claiming one name both lose every record
    claiming it, and the name goes to ``conflicts``.
    """
    out: Registered[T] = Registered()
    owner: dict[str, tuple[str, bool]] = {}  # name -> (label, built in)
    claims: list[tuple[T, list[str]]] = []
    for label, builtin, records in _results(ctx, hook):
        for record in records:
            problem = (
                f"ignored a {what} record of type {type(record).__name__}"
                if not isinstance(record, kind)
                else refuse(record, builtin)
                if refuse is not None
                else None
            )
            if problem:
                _warn(ctx, f"plugin {label}: {problem}")
                continue
            names = list(keys(record))
            taken = [n for n in names if n in owner and owner[n][1] and owner[n][0] != label]
            if taken and not builtin:
                _warn(ctx, f"plugin {label}: {taken[0]} is built in; ignored")
                continue
            for name in names:
                if name in owner and owner[name][0] != label:
                    claimants = out.conflicts.setdefault(name, [owner[name][0]])
                    if label not in claimants:
                        claimants.append(label)
                else:
                    owner[name] = (label, builtin)
            claims.append((adapt(record, builtin) if adapt is not None else record, names))
    out.records = [record for record, names in claims if not any(n in out.conflicts for n in names)]
    return out


def operations(ctx: Context) -> Registered[Any]:
    """The operations of every plugin: each claims its name and its options."""
    from evl_net.registrations import C_LONG_OPTIONS, OPTION_NAMES, Operation

    def refuse(op: Operation, builtin: bool) -> str | None:
        if builtin:
            return None
        if op.short:
            return f"operation '{op.name}': -{op.short}: the C tool's letters are taken, new options are long-only"
        if not op.long or op.long.startswith("-") or "=" in op.long:
            return f"operation '{op.name}': invalid long option {op.long!r}"
        if op.long in OPTION_NAMES:
            return f"operation '{op.name}': --{op.long} is built in"
        shadowed = sorted(c for c in C_LONG_OPTIONS if c.startswith(op.long))
        if shadowed:  # --all would stop meaning --allow-gateway
            return (
                f"operation '{op.name}': --{op.long} would change what it abbreviates in the C tool (--{shadowed[0]})"
            )
        from evl_net.transports.contract import BY_METHOD

        unknown = [r for r in op.requests if r not in BY_METHOD]
        if unknown:
            return f"operation '{op.name}': {unknown[0]!r} is not a primitive of the transport contract"
        return None

    return collect(
        ctx,
        "evl_net_operations",
        Operation,
        lambda op: [f"operation '{op.name}'", f"option --{op.long}"] + ([f"option -{op.short}"] if op.short else []),
        "operation",
        refuse,
        lambda op, builtin: op if builtin else _held_to_requests(op),
    )


def named(ctx: Context, hook: str, kind: type[N], what: str) -> Registered[N]:
    """Records named by their ``name`` (transports, formatters)."""
    return collect(ctx, hook, kind, lambda r: [f"{what} '{r.name}'"], what)


def _held_to_requests(op: Any) -> Any:
    """A third party's operation, given a transport that offers only the primitives it declares."""
    from evl_core.record import replace

    return replace(op, run=_DeclaredRun(op.name, op.run, frozenset(op.requests)))


class _DeclaredRun:
    """``run`` of a third party's operation: its transport answers the declared primitives only.

    So ``requests`` says what the operation does (and whether it mutates)
    truthfully, on every transport.
    """

    def __init__(self, name: str, run: Any, allowed: frozenset[str]) -> None:
        self.name, self.run, self.allowed = name, run, allowed

    def __call__(self, request: Any, argument: Any, transport: Any) -> Any:
        from evl_core.lazy import resolve

        return resolve(self.run)(request, argument, _Declared(transport, self.name, self.allowed))


class _Declared:
    def __init__(self, transport: Any, name: str, allowed: frozenset[str]) -> None:
        self._transport, self._name, self._allowed = transport, name, allowed

    def __getattr__(self, attr: str) -> Any:
        from evl_core.errors import EvlError
        from evl_net.transports.contract import BY_METHOD

        if attr in BY_METHOD and attr not in self._allowed:
            raise EvlError(f"operation '{self._name}' calls {attr}, which its requests do not declare")
        return getattr(self._transport, attr)
