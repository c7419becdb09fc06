"""A fast scan of installed entry points.

``importlib.metadata`` costs more than all the rest of ``evl``'s start-up
(it pulls in email, zipfile, csv, pathlib); reading ``entry_points.txt`` of
each installed distribution directly keeps ``evl net -Q`` quick.  Only
directory installs are seen, which is how pip installs (editable ones too).
"""

from __future__ import annotations

import os
import sys

from evl_core.record import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any


@record(frozen=True)
class EntryPoint:
    name: str
    value: str
    dist_name: str
    dist_version: str

    def load(self) -> Any:
        from evl_core.lazy import resolve

        module, _, attr = self.value.partition(":")
        if not attr:
            import importlib

            return importlib.import_module(module.strip())
        return resolve(f"{module.strip()}:{attr.strip()}")


def _split_dist(dirname: str) -> tuple[str, str]:
    stem = dirname.rsplit(".", 1)[0]
    name, _, version = stem.partition("-")
    return name, version.partition("-")[0] if dirname.endswith(".egg-info") else version


def _parse(text: str, group: str) -> Iterator[tuple[str, str]]:
    in_group = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            in_group = line == f"[{group}]"
            continue
        if in_group and "=" in line:
            name, _, value = line.partition("=")
            # drop "[extras]" markers, as importlib.metadata does for loading
            yield name.strip(), value.split("[", 1)[0].strip()


def entry_points(group: str, path: list[str] | None = None) -> list[EntryPoint]:
    """Entry points of ``group``, the first distribution of a name on sys.path winning."""
    seen: set[str] = set()
    found: list[EntryPoint] = []
    for entry in path if path is not None else sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for dirname in sorted(names):
            if not dirname.endswith((".dist-info", ".egg-info")):
                continue
            dist_name, version = _split_dist(dirname)
            key = dist_name.lower().replace("-", "_")
            if key in seen:
                continue
            seen.add(key)
            try:
                with open(os.path.join(entry or ".", dirname, "entry_points.txt"), encoding="utf-8") as f:
                    text = f.read()
            except OSError:
                continue
            for name, value in _parse(text, group):
                found.append(EntryPoint(name, value, dist_name, version))
    return found
