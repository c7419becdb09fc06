"""Typed records that cost nothing at import: ``@record`` classes.

``@dataclass`` costs ``import dataclasses`` (which imports ``inspect``,
``ast``, ``dis``, ``tokenize``...) and generated code for every class when its
module is imported; ``evl net -Q`` pays that on every call.  A ``@record``
class is a ``__slots__`` class whose ``__init__`` is written the first time
the class is instantiated, so a module of records imports in microseconds.
For the type checker it *is* a dataclass (``dataclass_transform``).

What ``@record`` offers is the part of ``dataclasses`` this project uses:
fields with defaults and ``field(default_factory=..., metadata=...)``,
``frozen``, ``eq``, ``repr``, base records' fields first.  :func:`fields`,
:func:`replace` and :func:`is_record` accept real dataclasses too (a third
party's result records are dataclasses), so code that walks records takes
both.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")


class FrozenInstanceError(AttributeError):
    """Assigning to a field of a frozen record."""


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


#: No default (``Field.default`` and ``Field.default_factory`` when not given).
MISSING: Any = _Missing()


class Field:
    """One field of a record: the attributes of :class:`dataclasses.Field` this project reads."""

    __slots__ = ("default", "default_factory", "metadata", "name", "type")

    def __init__(self, default: Any = MISSING, default_factory: Any = MISSING, metadata: Any = None) -> None:
        self.name = ""
        self.type: Any = None
        self.default = default
        self.default_factory = default_factory
        self.metadata = dict(metadata or {})

    @property
    def required(self) -> bool:
        return self.default is MISSING and self.default_factory is MISSING

    def __repr__(self) -> str:
        return f"Field({self.name!r})"


def field(*, default: Any = MISSING, default_factory: Callable[[], Any] | Any = MISSING, metadata: Any = None) -> Any:
    """A field's default made by ``default_factory()`` for each record, or a field with ``metadata``."""
    if default is not MISSING and default_factory is not MISSING:
        raise ValueError("a field takes a default or a default_factory, not both")
    return Field(default, default_factory, metadata)


def _is_classvar(annotation: Any) -> bool:
    if isinstance(annotation, str):
        return annotation.startswith(("ClassVar", "typing.ClassVar"))
    return getattr(annotation, "__origin__", None) is not None and "ClassVar" in repr(annotation)


def _build(cls: type, frozen: bool, eq: bool, repr_: bool) -> type:
    own: list[Field] = []
    namespace = dict(cls.__dict__)
    for name, annotation in namespace.get("__annotations__", {}).items():
        if _is_classvar(annotation):
            continue
        value = namespace.pop(name, MISSING)
        if isinstance(value, (list, dict, set)):
            raise ValueError(f"{cls.__name__}.{name}: a mutable default is shared: use field(default_factory=...)")
        spec = value if isinstance(value, Field) else Field(default=value)
        spec.name, spec.type = name, annotation
        own.append(spec)
    inherited: dict[str, Field] = {}  # a field keeps the place of its first definition, as in dataclasses
    for base in reversed(cls.__mro__[1:]):
        base_fields = getattr(base, "__record_fields__", None)
        if base_fields is None:
            continue
        if base.__dict__.get("__record_frozen__", frozen) != frozen:
            this, that = ("frozen", "non-frozen") if frozen else ("non-frozen", "frozen")
            raise TypeError(f"{cls.__name__}: cannot inherit a {this} record from a {that} one")
        for spec in base_fields:
            inherited[spec.name] = spec
    for spec in own:
        inherited[spec.name] = spec
    all_fields = tuple(inherited.values())
    seen_default = False
    for spec in all_fields:
        if not spec.required:
            seen_default = True
        elif seen_default:
            raise TypeError(f"{cls.__name__}: field '{spec.name}' without a default follows one with a default")
    namespace.pop("__dict__", None)
    namespace.pop("__weakref__", None)
    slots = [
        f.name
        for f in own
        if not any(
            hasattr(b, "__record_fields__") and f.name in b.__dict__.get("__slots__", ()) for b in cls.__mro__[1:]
        )
    ]
    if not any(
        "__weakref__" in getattr(b, "__dict__", {}) or "__weakref__" in getattr(b, "__slots__", ())
        for b in cls.__mro__[1:-1]
    ):
        slots.append("__weakref__")
    namespace["__slots__"] = tuple(slots)
    namespace["__record_fields__"] = all_fields
    namespace["__record_frozen__"] = frozen
    namespace["__match_args__"] = tuple(f.name for f in all_fields)
    namespace.setdefault("__init__", _lazy_init)  # a class's own __init__, __repr__, __eq__ are kept
    namespace["__reduce__"] = _reduce  # copy and pickle through __init__ (frozen records too)
    if repr_:
        namespace.setdefault("__repr__", _repr)
    if eq and "__eq__" not in namespace:
        namespace["__eq__"] = _eq
        namespace["__hash__"] = _hash if frozen else None
    if frozen:
        namespace["__setattr__"] = _frozen_setattr
        namespace["__delattr__"] = _frozen_delattr
    new = type(cls)(cls.__name__, cls.__bases__, namespace)
    _rebind_class_cells(new, cls)
    return new


def _rebind_class_cells(new: type, old: type) -> None:
    """Methods using ``super()`` (their ``__class__`` cell) name the class made here, as dataclasses does."""
    for member in new.__dict__.values():
        for function in (member, getattr(member, "__func__", None), getattr(member, "fget", None)):
            for cell in getattr(function, "__closure__", None) or ():
                try:
                    if cell.cell_contents is old:
                        cell.cell_contents = new
                except ValueError:  # an empty cell
                    continue


def _lazy_init(self: Any, *args: Any, **kwargs: Any) -> None:
    """Write this class's ``__init__`` (once), then run it."""
    for cls in type(self).__mro__:
        if cls.__dict__.get("__init__") is _lazy_init:
            break
    init = _make_init(cls)
    cls.__init__ = init  # type: ignore[misc]
    init(self, *args, **kwargs)


def _make_init(cls: type) -> Any:
    specs: tuple[Field, ...] = cls.__record_fields__  # type: ignore[attr-defined]
    frozen = cls.__record_frozen__  # type: ignore[attr-defined]
    # the generated code's own names start with _record_: they cannot be a field's parameter name
    params, body = [], []
    scope: dict[str, Any] = {"_record_MISSING": MISSING, "_record_set": object.__setattr__}
    for i, spec in enumerate(specs):
        if spec.default_factory is not MISSING:
            scope[f"_record_factory{i}"] = spec.default_factory
            params.append(f"{spec.name}=_record_MISSING")
            value = f"_record_factory{i}() if {spec.name} is _record_MISSING else {spec.name}"
        elif spec.default is not MISSING:
            scope[f"_record_default{i}"] = spec.default
            params.append(f"{spec.name}=_record_default{i}")
            value = spec.name
        else:
            params.append(spec.name)
            value = spec.name
        body.append(f"_record_set(self, {spec.name!r}, {value})" if frozen else f"self.{spec.name} = {value}")
    if hasattr(cls, "__post_init__"):
        body.append("self.__post_init__()")
    source = f"def __init__(self, {', '.join(params)}):\n    " + ("\n    ".join(body) or "pass") + "\n"
    exec(source, scope)  # noqa: S102 -- our own source, from the class's field names
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    return init


def _repr(self: Any) -> str:
    inner = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in self.__record_fields__)
    return f"{type(self).__qualname__}({inner})"


def _eq(self: Any, other: Any) -> Any:
    if type(other) is not type(self):
        return NotImplemented
    return all(getattr(self, f.name) == getattr(other, f.name) for f in self.__record_fields__)


def _reduce(self: Any) -> tuple[Any, ...]:
    return type(self), tuple(getattr(self, f.name) for f in self.__record_fields__)


def _hash(self: Any) -> int:
    return hash(tuple(getattr(self, f.name) for f in self.__record_fields__))


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field '{name}'")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field '{name}'")


if TYPE_CHECKING:

    @dataclass_transform(field_specifiers=(field,))
    def record(cls: type[T] | None = None, /, *, frozen: bool = False, eq: bool = True, repr: bool = True) -> Any: ...

else:

    def record(cls=None, /, *, frozen=False, eq=True, repr=True):
        """Make ``cls`` a record (``@record`` or ``@record(frozen=True, eq=False, repr=False)``)."""
        if cls is None:
            return lambda c: _build(c, frozen, eq, repr)
        return _build(cls, frozen, eq, repr)


def is_record(obj: Any) -> bool:
    """Whether ``obj`` is a record or a dataclass, or the class of one."""
    kind = obj if isinstance(obj, type) else type(obj)
    return hasattr(kind, "__record_fields__") or hasattr(kind, "__dataclass_fields__")


def fields(obj: Any) -> tuple[Field, ...]:
    """The fields of a record or a dataclass (instance or class), in order."""
    kind = obj if isinstance(obj, type) else type(obj)
    found = getattr(kind, "__record_fields__", None)
    if found is not None:
        return found
    if not hasattr(kind, "__dataclass_fields__"):
        raise TypeError(f"{kind.__name__} is not a record")
    cached = _DATACLASS_FIELDS.get(kind)
    if cached is None:
        import dataclasses

        cached = []
        for f in dataclasses.fields(kind):
            spec = Field(
                MISSING if f.default is dataclasses.MISSING else f.default,
                MISSING if f.default_factory is dataclasses.MISSING else f.default_factory,
                f.metadata,
            )
            spec.name, spec.type = f.name, f.type
            cached.append(spec)
        cached = _DATACLASS_FIELDS[kind] = tuple(cached)
    return cached


_DATACLASS_FIELDS: dict[type, Any] = {}


def replace(obj: T, **changes: Any) -> T:
    """A copy of ``obj`` with ``changes`` (as :func:`dataclasses.replace`)."""
    if not hasattr(type(obj), "__record_fields__"):
        import dataclasses

        return dataclasses.replace(obj, **changes)  # type: ignore[type-var]
    specs = fields(obj)
    unknown = set(changes) - {f.name for f in specs}
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field '{sorted(unknown)[0]}'")
    values = {f.name: changes[f.name] if f.name in changes else getattr(obj, f.name) for f in specs}
    return type(obj)(**values)
