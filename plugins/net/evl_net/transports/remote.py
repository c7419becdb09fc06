"""The remote transport: a board administered over SSH."""

from __future__ import annotations

from typing import Any, Mapping

from evl_core.errors import EvlError


def factory(request: Any, env: Mapping[str, str]) -> Any:
    raise EvlError("the remote transport is not available in this version: use --transport=sim")
