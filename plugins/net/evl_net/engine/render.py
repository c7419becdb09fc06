"""Built-in output formatters: operation results in, text out.

Each returns None for a result it does not render; :func:`render` then falls
back to the result's own text, unless the formatter was asked for by name,
which is an error naming the formatters that can render it.
"""

from __future__ import annotations

from evl_core.errors import EvlError
from evl_net.engine.request import OpResult, Request

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any


def render_text(result: OpResult, request: Request) -> str | None:
    return result.text(request)


def render_verbose(result: Any, request: Request) -> str | None:
    return result.verbose() if hasattr(result, "verbose") else None


def render_terse(result: Any, request: Request) -> str | None:
    return result.terse() if hasattr(result, "terse") else None


def render_table(result: Any, request: Request) -> str | None:
    return result.table() if hasattr(result, "table") else None


def render_names(result: Any, request: Request) -> str | None:
    return result.names() if hasattr(result, "names") else None


def render_json(result: OpResult, request: Request) -> str | None:
    import json

    return json.dumps(result.to_json(), separators=(",", ":")) + "\n"


def choose(result: OpResult, request: Request) -> str:
    """The formatter a result gets when none is named: JSON with --json, else its kind's own."""
    if request.format:
        return request.format
    if request.json:
        return "json"
    if hasattr(result, "table"):
        return "table"
    if hasattr(result, "terse"):
        return "terse" if getattr(result, "modifiers", "") else "verbose"
    return "text"


def render(result: OpResult, request: Request, formatters: Mapping[str, Any]) -> str:
    """The text of one result, by the chosen formatter."""
    from evl_core.lazy import resolve

    name = choose(result, request)
    text = resolve(formatters[name].render)(result, request)
    if text is not None:
        return str(text)
    if request.format:
        able = sorted(n for n, f in formatters.items() if resolve(f.render)(result, request) is not None)
        raise EvlError(
            f"formatter '{name}' cannot render the result of {result.action} (formatters that can: {', '.join(able)})"
        )
    return result.text(request)
