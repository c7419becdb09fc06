"""What a board's out-of-band network stack is and what its operations return, as typed records.

Every transport returns these records, so a command gives the same result
whichever transport ran it.  Their JSON form lives here and nowhere else:
:func:`to_json` writes it (``--json``, the remote protocol, the library API)
and :func:`from_json` reads it back strictly (a remote agent's reply is
hostile input: a wrong type is a :class:`ShapeError`, never a wrong value).

Both take :mod:`evl_core.record` records and real dataclasses (a third
party's result records).  Importing this module imports neither
``dataclasses`` nor ``typing``: every ``evl net -Q`` imports it, and only
:func:`from_json` (the remote client, the library) needs ``typing``.
"""

from __future__ import annotations

import sys

from evl_core.record import Field, fields, is_record, record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any, ClassVar, TypeVar

    T = TypeVar("T")


class ShapeError(ValueError):
    """A JSON value that does not have the shape of the record it should be."""


class _JsonField(Field):
    """A field of :func:`inline` or :func:`optional`: an :func:`evl_core.record.field`, which a real
    ``@dataclass`` takes too (a third party's records, or ours not moved to ``@record`` yet).

    ``@record`` reads its class's namespace as it is, so it finds this field and takes it out of
    the class.  ``@dataclass`` reads each field's default as a class attribute (``getattr``, so that
    a base class's default counts), and a field is what it expects to find there: this descriptor
    hands it a :func:`dataclasses.field` with the same default and metadata, which the dataclass
    then replaces by the default.  ``dataclasses`` is imported only then, by a module that already has.
    """

    __slots__ = ()

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        import dataclasses

        return dataclasses.field(default=self.default, metadata=self.metadata)


def inline(default: Any = None) -> Any:
    """A field whose record's keys sit in the parent's JSON object rather than under its name."""
    return _JsonField(default, metadata={"json": "inline"})


def optional(default: Any = None) -> Any:
    """A field left out of the JSON object while it is None."""
    return _JsonField(default, metadata={"json": "optional"})


@record
class DevStat:
    """``struct evl_net_devstat``: a device's out-of-band counters, pool and flags."""

    rx_packets: int = 0
    rx_bytes: int = 0
    tx_packets: int = 0
    tx_bytes: int = 0
    skb_size: int = 0
    skb_free: int = 0
    skb_total: int = 0
    csum_errors: int = 0
    rx_nomem: int = 0
    tx_nomem: int = 0
    oob_capable: bool = False
    oob_port: bool = False

    COUNTERS: ClassVar[tuple[str, ...]] = (
        "rx_packets",
        "rx_bytes",
        "tx_packets",
        "tx_bytes",
        "skb_size",
        "skb_free",
        "skb_total",
        "csum_errors",
        "rx_nomem",
        "tx_nomem",
    )

    @classmethod
    def from_counters(cls, data: dict[str, Any]) -> DevStat:
        """A DevStat from a mapping holding some of its fields (a board's initial counters)."""
        if not data:
            return cls()
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


# -- the JSON form ---------------------------------------------------------------------------------

_PLAIN, _INLINE, _OPTIONAL = 0, 1, 2
#: A field's ``metadata["json"]`` -> how it is written (a field without one is plain).
_MODES: dict[Any, int] = {"inline": _INLINE, "optional": _OPTIONAL}
#: Values that are their own JSON value (the common case, returned without a look-up).
_SCALARS = frozenset({int, str, bool, float, type(None)})
#: Per record (or dataclass) class: its fields' names and how each is written, in order.
_PLANS: dict[type, tuple[tuple[str, int], ...]] = {}


def _plan(kind: type) -> tuple[tuple[str, int], ...]:
    plan = _PLANS[kind] = tuple((f.name, _MODES.get(f.metadata.get("json"), _PLAIN)) for f in fields(kind))
    return plan


def to_json(record: Any) -> Any:
    """The JSON value of a record (nested records inline; ``None`` fields kept as null)."""
    kind = type(record)
    if kind in _SCALARS:
        return record
    plan = _PLANS.get(kind)
    if plan is None:
        if is_record(kind):  # a record or dataclass instance (a class is not: its type is its metaclass)
            plan = _plan(kind)
        elif isinstance(record, (list, tuple)):
            return [to_json(item) for item in record]
        else:
            return record
    out: dict[str, Any] = {}
    for name, mode in plan:
        value = getattr(record, name)
        if mode == _PLAIN:
            out[name] = value if type(value) in _SCALARS else to_json(value)
        elif mode == _INLINE:
            if value is not None:
                out.update(to_json(value))
        elif value is not None:
            out[name] = to_json(value)
    return out


#: Per record class: (field name, type hint, JSON mode, the inline record's field names, None allowed).
_READERS: dict[type, list[tuple[str, Any, int, Any, bool]]] = {}


class _Annotations:
    """What :func:`typing.get_type_hints` evaluates: the annotations of some fields of one class."""

    def __init__(self, annotations: dict[str, Any]) -> None:
        self.__annotations__ = annotations


def field_hints(kind: type) -> dict[str, Any]:
    """The type hints of a record's (or dataclass's) fields, each evaluated in the module of the class
    that declares it: only the fields' own annotations, so that a ``ClassVar`` or ``Any`` a module
    imports for the type checker alone need not be there at run time."""
    import typing

    names = {f.name for f in fields(kind)}
    hints: dict[str, Any] = {}
    for cls in reversed(kind.__mro__):
        own = {k: v for k, v in vars(cls).get("__annotations__", {}).items() if k in names}
        if own:
            # the module's names first, then the class's, as typing.get_type_hints(kind) looks them up
            module = vars(sys.modules[cls.__module__])
            hints.update(typing.get_type_hints(_Annotations(own), dict(vars(cls)), module))
    return hints


def _reader(kind: type) -> list[tuple[str, Any, int, Any, bool]]:
    import typing

    hints = field_hints(kind)
    reader = []
    for f in fields(kind):
        hint, mode = hints[f.name], _MODES.get(f.metadata.get("json"), _PLAIN)
        inner, nullable = None, False
        if mode == _INLINE:
            args = typing.get_args(hint)
            inner = args[0] if typing.get_origin(hint) else hint
            nullable = type(None) in args
        reader.append((f.name, hint, mode, inner, nullable))
    _READERS[kind] = reader
    return reader


def from_json(kind: Any, value: Any, where: str = "result") -> Any:
    """``value`` read back as ``kind`` (a record class or a type hint); ShapeError if it is not one."""
    if kind is int:
        if type(value) is not int:
            raise ShapeError(f"{where} is not an integer")
        return value
    if kind is bool:
        if type(value) is not bool:
            raise ShapeError(f"{where} is not a boolean")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise ShapeError(f"{where} is not a string")
        return value
    import types
    import typing

    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return from_json(option, value, where)
            except ShapeError:
                continue
        raise ShapeError(f"{where} has the wrong type")
    if origin in (list, tuple) or kind in (list, tuple):
        if not isinstance(value, list):
            raise ShapeError(f"{where} is not a list")
        (item,) = typing.get_args(kind)[:1] or (typing.Any,)
        return [from_json(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if kind is typing.Any:
        return value
    if isinstance(kind, type) and is_record(kind):
        return _record(kind, value, where)
    raise ShapeError(f"{where}: no JSON form for {kind!r}")


def _record(kind: type[T], value: Any, where: str) -> T:
    if not isinstance(value, dict):
        raise ShapeError(f"{where} is not an object")
    reader = _READERS.get(kind) or _reader(kind)
    kwargs: dict[str, Any] = {}
    for name, hint, mode, inner, nullable in reader:
        if mode == _INLINE:
            present = [f.name for f in fields(inner) if f.name in value]
            if not present and not nullable:
                raise ShapeError(f"{where} lacks the fields of '{name}'")
            kwargs[name] = _record(inner, {k: value[k] for k in present}, where) if present else None
            continue
        if name not in value:
            if mode == _OPTIONAL:  # left out while None: the only key that may be missing
                continue
            raise ShapeError(f"{where} lacks '{name}'")
        kwargs[name] = from_json(hint, value[name], f"{where}.{name}")
    return kind(**kwargs)
