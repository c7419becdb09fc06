"""What a board's out-of-band network stack is and what its operations return, as typed records.

Every transport returns these records, so a command gives the same result
whichever transport ran it.  Their JSON form lives here and nowhere else:
:func:`to_json` writes it (``--json``, the remote protocol, the library API)
and :func:`from_json` reads it back strictly (a remote agent's reply is
hostile input: a wrong type is a :class:`ShapeError`, never a wrong value).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

T = TypeVar("T")


class ShapeError(ValueError):
    """A JSON value that does not have the shape of the record it should be."""


def inline(default: Any = None) -> Any:
    """A field whose record's keys sit in the parent's JSON object rather than under its name."""
    return field(default=default, metadata={"json": "inline"})


def optional(default: Any = None) -> Any:
    """A field left out of the JSON object while it is None."""
    return field(default=default, metadata={"json": "optional"})


@dataclass
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
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


# -- the JSON form ---------------------------------------------------------------------------------


def to_json(record: Any) -> Any:
    """The JSON value of a record (nested records inline; ``None`` fields kept as null)."""
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(record):
            if f.metadata.get("json") == "inline":
                value = getattr(record, f.name)
                if value is not None:
                    out.update(to_json(value))
                continue
            value = getattr(record, f.name)
            if value is None and f.metadata.get("json") == "optional":
                continue
            out[f.name] = to_json(value)
        return out
    if isinstance(record, (list, tuple)):
        return [to_json(item) for item in record]
    return record


def from_json(kind: Any, value: Any, where: str = "result") -> Any:
    """``value`` read back as ``kind`` (a record class or a type hint); ShapeError if it is not one."""
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
        (item,) = typing.get_args(kind)[:1] or (Any,)
        return [from_json(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if kind is Any:
        return value
    if kind is bool:
        if type(value) is not bool:
            raise ShapeError(f"{where} is not a boolean")
        return value
    if kind is int:
        if type(value) is not int:
            raise ShapeError(f"{where} is not an integer")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise ShapeError(f"{where} is not a string")
        return value
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return _record(kind, value, where)
    raise ShapeError(f"{where}: no JSON form for {kind!r}")


def _record(kind: type[T], value: Any, where: str) -> T:
    if not isinstance(value, dict):
        raise ShapeError(f"{where} is not an object")
    hints = typing.get_type_hints(kind)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(kind):  # type: ignore[arg-type]
        if f.metadata.get("json") == "inline":
            inner = typing.get_args(hints[f.name])[0] if typing.get_origin(hints[f.name]) else hints[f.name]
            present = [g.name for g in dataclasses.fields(inner) if g.name in value]
            if not present and type(None) not in typing.get_args(hints[f.name]):
                raise ShapeError(f"{where} lacks the fields of '{f.name}'")
            kwargs[f.name] = _record(inner, {k: value[k] for k in present}, where) if present else None
            continue
        if f.name not in value:
            if f.metadata.get("json") == "optional":  # left out while None: the only key that may be missing
                continue
            raise ShapeError(f"{where} lacks '{f.name}'")
        kwargs[f.name] = from_json(hints[f.name], value[f.name], f"{where}.{f.name}")
    return kind(**kwargs)
