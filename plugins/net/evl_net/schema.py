"""A small JSON Schema validator: every problem of a document, each as (key path, plain message).

Configuration files (simulated boards, and later ``evl net-config`` files)
are described by JSON Schemas that editors can use too; this checks a decoded
document against one without a dependency, and -- unlike a first-error check
-- returns all the problems in document order, so a message can name the
first and count the rest.

It knows a subset of draft 2020-12: ``type`` (object, array, string,
integer, number, boolean, null), ``properties``, ``required``,
``additionalProperties``, ``propertyNames``, ``minProperties``/
``maxProperties``, ``items``, ``minItems``/``maxItems``, ``minimum``/
``maximum``, ``exclusiveMinimum``/``exclusiveMaximum``, ``enum``,
``pattern``, ``minLength``/``maxLength``, ``$defs`` and local ``$ref``; the
annotations (``title``, ``description``, ``default``...) are ignored.  A
schema using anything else is refused (:class:`SchemaError`) rather than
half-checked.

As the specification says, a boolean is not a number, and a number with
no fractional part is an integer (``1.0``) -- unless the document comes
from a format that tells them apart: TOML's ``1.0`` is a float, and
``integral_floats=False`` makes it no integer.  A document decoded from TOML
may hold what JSON cannot: infinite and NaN floats are refused wherever they
are, and dates are of no JSON type.  ``pattern`` is searched as ECMA-262
does: ``$`` matches at the very end only, not before a final newline as in
Python; ``\\d`` and ``\\w`` keep Python's (Unicode) meaning, so schemas
should spell ``[0-9]``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: How messages name each JSON type ("expected an integer, got a string").
JSON_NAMES: Mapping[str, str] = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "float": "a number",
    "boolean": "a boolean",
    "null": "null",
}
#: The same in TOML's words, for documents read from TOML files.
TOML_NAMES: Mapping[str, str] = {**JSON_NAMES, "object": "a table", "float": "a float"}

#: Keywords that only annotate: accepted, never checked.
ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly"}
)
#: Keywords checked here, with the JSON type of their value.
KEYWORDS: Mapping[str, tuple[type, ...]] = {
    "type": (str, list),
    "properties": (dict,),
    "required": (list,),
    "additionalProperties": (bool, dict),
    "propertyNames": (bool, dict),
    "minProperties": (int,),
    "maxProperties": (int,),
    "items": (bool, dict),
    "minItems": (int,),
    "maxItems": (int,),
    "minimum": (int, float),
    "maximum": (int, float),
    "exclusiveMinimum": (int, float),
    "exclusiveMaximum": (int, float),
    "enum": (list,),
    "pattern": (str,),
    "minLength": (int,),
    "maxLength": (int,),
    "$defs": (dict,),
    "$ref": (str,),
}
TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")
#: Keys written bare in a key path; others are quoted, as TOML would.
_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")

Path = tuple[str | int, ...]


class SchemaError(ValueError):
    """The schema itself is wrong, or uses a keyword this validator does not know."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a document: where (``path``), what (``message``), and why (``keyword``).

    ``value`` is the offending value (the key, for a bad key; None for a
    missing one), for a caller that wants to echo it -- messages never do, so
    that the caller decides how (escaped, shortened).
    """

    path: Path
    message: str
    keyword: str
    value: Any = None

    @property
    def key(self) -> str:
        """The path as written in messages: ``interface[2].counters.rx_packets``."""
        return key_path(self.path)

    def __str__(self) -> str:
        return f"{self.key}: {self.message}" if self.path else self.message


def key_path(path: Sequence[str | int]) -> str:
    """``interface[2].counters.rx_packets``: keys joined by dots, indexes in brackets, odd keys quoted."""
    out = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
            continue
        key = part if part and all(c in _BARE for c in part) else _quoted(part)
        out.append(f".{key}" if out else key)
    return "".join(out)


def _quoted(key: str) -> str:
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def position(document: Any, path: Sequence[str | int]) -> tuple[int, ...]:
    """Where ``path`` is in ``document``, as a sort key: problems sorted by it are in document order.

    A key is placed by its rank in its table (decoders keep the file's
    order), a missing key after all present ones.
    """
    out = []
    node = document
    for part in path:
        if isinstance(node, dict):
            keys = list(node)
            rank = keys.index(part) if part in node else len(keys)
            out.append(rank)
            node = node.get(part) if isinstance(part, str) else None
        elif isinstance(node, list) and isinstance(part, int):
            out.append(part)
            node = node[part] if 0 <= part < len(node) else None
        else:
            out.append(0)
            node = None
    return tuple(out)


def validate(
    document: Any,
    schema: Mapping[str, Any] | bool,
    names: Mapping[str, str] = JSON_NAMES,
    integral_floats: bool = True,
) -> list[Problem]:
    """Every problem of ``document`` against ``schema``, in document order (empty: it is valid)."""
    return Validator(schema, names, integral_floats).problems(document)


def is_valid(document: Any, schema: Mapping[str, Any] | bool, integral_floats: bool = True) -> bool:
    """Whether ``document`` has no problem against ``schema``."""
    return not Validator(schema, integral_floats=integral_floats).problems(document)


def load(path: str) -> dict[str, Any]:
    """A JSON schema file, checked to be one this validator can apply."""
    import json

    with open(path, encoding="utf-8") as f:
        schema = json.load(f)
    if not isinstance(schema, dict):
        raise SchemaError(f"{path}: a schema must be a JSON object")
    Validator(schema)
    return schema


class Validator:
    """A schema, checked once and its patterns compiled, to apply to many documents.

    ``names`` words the types in messages (:data:`TOML_NAMES` for TOML
    files); ``integral_floats`` says whether ``1.0`` is an integer (JSON
    Schema: yes; a TOML file, whose ``1.0`` is a float: pass False).
    """

    def __init__(
        self, schema: Mapping[str, Any] | bool, names: Mapping[str, str] = JSON_NAMES, integral_floats: bool = True
    ) -> None:
        self.root = schema
        self.names = names
        self.integral_floats = integral_floats
        self._patterns: dict[str, Any] = {}
        self._check(schema, "#")

    # -- the schema ------------------------------------------------------------

    def _check(self, schema: Any, where: str) -> None:
        """Refuse what this validator cannot honour: unknown keywords, ill-typed values, bad refs."""
        if isinstance(schema, bool):
            return
        if not isinstance(schema, Mapping):
            raise SchemaError(f"{where}: a schema must be an object or a boolean")
        for word, value in schema.items():
            if word in ANNOTATIONS:
                continue
            kinds = KEYWORDS.get(word)
            if kinds is None:
                raise SchemaError(f"{where}: unsupported keyword {word!r}")
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                raise SchemaError(f"{where}/{word}: wrong type of value")
        kinds = schema.get("type")
        if kinds is not None:
            for kind in [kinds] if isinstance(kinds, str) else kinds:
                if kind not in TYPES:
                    raise SchemaError(f"{where}/type: unknown type {kind!r}")
        for word in ("properties", "$defs"):
            for key, sub in schema.get(word, {}).items():
                self._check(sub, f"{where}/{word}/{key}")
        for word in ("additionalProperties", "propertyNames", "items"):
            if word in schema:
                self._check(schema[word], f"{where}/{word}")
        if not all(isinstance(k, str) for k in schema.get("required", [])):
            raise SchemaError(f"{where}/required: not a list of strings")
        if "pattern" in schema:
            self._pattern(schema["pattern"], where)
        if "$ref" in schema:
            seen = {where}
            target: Any = schema
            while isinstance(target, Mapping) and "$ref" in target:  # a chain of refs must end somewhere
                ref = target["$ref"]
                if ref in seen:
                    raise SchemaError(f"{where}/$ref: {ref!r} refers to itself")
                seen.add(ref)
                target = self._resolve(ref, where)

    def _resolve(self, ref: str, where: str) -> Any:
        if ref != "#" and not ref.startswith("#/"):
            raise SchemaError(f"{where}/$ref: only local references (#/...) are supported, not {ref!r}")
        node: Any = self.root
        for token in ref[2:].split("/") if ref != "#" else ():
            token = token.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                raise SchemaError(f"{where}/$ref: {ref!r} refers to nothing")
        return node

    def _pattern(self, pattern: str, where: str = "#") -> Any:
        compiled = self._patterns.get(pattern)
        if compiled is None:
            import re

            try:
                compiled = re.compile(ecma_pattern(pattern))
            except re.error as exc:
                raise SchemaError(f"{where}/pattern: {exc}") from None
            self._patterns[pattern] = compiled
        return compiled

    # -- a document ------------------------------------------------------------

    def problems(self, document: Any) -> list[Problem]:
        """Every problem of ``document``, in document order."""
        return list(self._walk(document, self.root, ()))

    def _name(self, kind: str) -> str:
        return self.names.get(kind, kind)

    def _got(self, value: Any) -> str:
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)  # inf, -inf, nan
        kind = json_type(value)
        if kind == "number":
            return self._name("float")
        if kind is None:
            import datetime

            if isinstance(value, datetime.datetime):
                return "a date-time"
            if isinstance(value, datetime.date):
                return "a date"
            if isinstance(value, datetime.time):
                return "a time"
            return type(value).__name__
        return self._name(kind)

    def _walk(self, value: Any, schema: Any, path: Path) -> Iterator[Problem]:
        if schema is True or (isinstance(schema, Mapping) and not schema.keys() - ANNOTATIONS):
            yield from self._plain(value, path)
            return
        if schema is False:
            yield Problem(path, "not allowed here", "false", value)
            return
        if isinstance(value, float) and not math.isfinite(value):
            yield Problem(path, f"expected a finite number, got {value}", "type", value)
            return
        if "$ref" in schema:
            yield from self._walk(value, self._resolve(schema["$ref"], "#"), path)
        kinds = schema.get("type")
        if kinds is not None:
            kinds = [kinds] if isinstance(kinds, str) else kinds
            if not any(is_type(value, kind, self.integral_floats) for kind in kinds):
                expected = " or ".join(self._name(kind) for kind in kinds)
                yield Problem(path, f"expected {expected}, got {self._got(value)}", "type", value)
                return
        if isinstance(value, dict):
            yield from self._object(value, schema, path)
        elif isinstance(value, list):
            yield from self._array(value, schema, path)
        elif isinstance(value, str):
            yield from self._string(value, schema, path)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield from self._number(value, schema, path)
        elif json_type(value) is None and kinds is None and "$ref" not in schema:  # else said already
            yield Problem(path, f"expected JSON data, got {self._got(value)}", "type", value)
            return
        if "enum" in schema and not any(same(value, choice) for choice in schema["enum"]):
            yield Problem(path, "must be " + _choices(schema["enum"]), "enum", value)

    def _plain(self, value: Any, path: Path) -> Iterator[Problem]:
        """Problems of a value any schema accepts: only what JSON cannot hold (NaN, dates)."""
        stack = [(value, path)]
        while stack:
            value, path = stack.pop()
            if isinstance(value, float) and not math.isfinite(value):
                yield Problem(path, f"expected a finite number, got {value}", "type", value)
            elif isinstance(value, dict):
                stack.extend(reversed([(v, (*path, k)) for k, v in value.items()]))
            elif isinstance(value, list):
                stack.extend(reversed([(v, (*path, i)) for i, v in enumerate(value)]))
            elif json_type(value) is None:
                yield Problem(path, f"expected JSON data, got {self._got(value)}", "type", value)

    def _object(self, value: dict, schema: Mapping[str, Any], path: Path) -> Iterator[Problem]:
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            yield Problem(path, f"must have at most {_count(schema['maxProperties'], 'key')}", "maxProperties", value)
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            yield Problem(path, f"must have at least {_count(schema['minProperties'], 'key')}", "minProperties", value)
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        names = schema.get("propertyNames", True)
        for key, item in value.items():
            here = (*path, key)
            if names is not True:
                for problem in self._walk(key, names, here):
                    yield Problem(here, f"invalid key ({problem.message})", "propertyNames", key)
            if key in properties:
                yield from self._walk(item, properties[key], here)
            elif extra is False:
                yield Problem(here, "unknown key", "additionalProperties", key)
            else:
                yield from self._walk(item, extra, here)
        for key in schema.get("required", ()):
            if key not in value:
                yield Problem((*path, key), "missing", "required")

    def _array(self, value: list, schema: Mapping[str, Any], path: Path) -> Iterator[Problem]:
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            yield Problem(path, f"must have at most {_count(schema['maxItems'], 'item')}", "maxItems", value)
        if "minItems" in schema and len(value) < schema["minItems"]:
            yield Problem(path, f"must have at least {_count(schema['minItems'], 'item')}", "minItems", value)
        items = schema.get("items", True)
        for i, item in enumerate(value):
            yield from self._walk(item, items, (*path, i))

    def _string(self, value: str, schema: Mapping[str, Any], path: Path) -> Iterator[Problem]:
        low, high = schema.get("minLength"), schema.get("maxLength")
        if low is not None and len(value) < low:
            message = "must not be empty" if low == 1 else f"must be at least {_count(low, 'character')}"
            yield Problem(path, message, "minLength", value)
        if high is not None and len(value) > high:
            yield Problem(path, f"must be at most {_count(high, 'character')}", "maxLength", value)
        if "pattern" in schema and not self._pattern(schema["pattern"]).search(value):
            title = schema.get("title")
            message = f"not {article(title)} {title}" if title else f"does not match {schema['pattern']}"
            yield Problem(path, message, "pattern", value)

    def _number(self, value: float, schema: Mapping[str, Any], path: Path) -> Iterator[Problem]:
        for word, fails, says in (
            ("minimum", lambda v, m: v < m, "must be at least"),
            ("exclusiveMinimum", lambda v, m: v <= m, "must be greater than"),
            ("maximum", lambda v, m: v > m, "must be at most"),
            ("exclusiveMaximum", lambda v, m: v >= m, "must be less than"),
        ):
            if word in schema and fails(value, schema[word]):
                yield Problem(path, f"{says} {schema[word]}", word, value)


def json_type(value: Any) -> str | None:
    """The JSON type of a decoded value (``number`` for a float, even a whole one); None: none."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return None


def is_type(value: Any, kind: str, integral_floats: bool = True) -> bool:
    """Whether ``value`` is of JSON type ``kind``: True is no integer; 1.0 is one if ``integral_floats``."""
    actual = json_type(value)
    if kind == actual:
        return True
    if kind == "number":
        return actual == "integer"
    if kind == "integer":
        return integral_floats and actual == "number" and float(value).is_integer()
    return False


def same(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but True != 1, and containers compare item by item."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if json_type(a) in ("integer", "number") and json_type(b) in ("integer", "number"):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


def article(noun: str) -> str:
    """ "a" or "an" before ``noun``, by its first letter (good enough for titles: "an IPv4 address")."""
    return "an" if noun[:1].lower() in "aeio" else "a"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _choices(values: Sequence[Any]) -> str:
    shown = [_literal(v) for v in values]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return _quoted(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def ecma_pattern(pattern: str) -> str:
    """``pattern`` for Python's re with ECMA-262's meaning of ``$``: the end of the string only."""
    out = []
    i = 0
    in_class = False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "^":
                out.append("[^")
                i += 2
                continue
        elif ch == "$":
            ch = r"\Z"
        out.append(ch)
        i += 1
    return "".join(out)
