"""Resolve ``"module:attr"`` references only when they are needed.

Command records name their handlers this way so that ``evl --help`` never
imports what a command needs to run.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any


def resolve(ref: Any) -> Any:
    """Return ``ref`` itself, or the object a ``"pkg.module:attr.sub"`` string names."""
    if not isinstance(ref, str):
        return ref
    module_name, sep, attr_path = ref.partition(":")
    if not sep or not module_name or not attr_path:
        raise ValueError(f"bad reference {ref!r}: expected 'module:attr'")
    obj: Any = importlib.import_module(module_name)
    for part in attr_path.split("."):
        obj = getattr(obj, part)
    return obj
