"""The EVL kernel ABI transport (``/dev/evl/net``)."""

from __future__ import annotations

from typing import Any, Mapping

from evl_core.errors import EvlError


def factory(request: Any, env: Mapping[str, str]) -> Any:
    raise EvlError("the ioctl transport (EVL kernel ABI) is not available in this version: use --transport=sim")
