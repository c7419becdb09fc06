"""Data flows one way: each layer of evl_net imports only from the layers below it.

No private name crosses a module boundary either.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "plugins" / "net" / "evl_net"
CORE = Path(__file__).resolve().parent.parent / "evl_core"

#: layer -> the layers (module prefixes) it may import from, besides itself.
BELOW = {
    "evl_net.errors": set(),
    "evl_net.model": set(),
    "evl_net.outcomes": set(),
    "evl_net.schema": set(),
    "evl_net.boardlock": {"evl_net.errors"},
    "evl_net.kernel": {"evl_net.errors", "evl_net.model", "evl_net.outcomes"},
    "evl_net.transports": {"evl_net.errors", "evl_net.model", "evl_net.outcomes", "evl_net.kernel", "evl_net.schema"},
    "evl_net.engine.request": {"evl_net.model", "evl_net.outcomes"},
    # the records plugins register; hookspecs re-exports them beside the hook specifications
    "evl_net.registrations": {"evl_net.transports"},
    "evl_net.hookspecs": {"evl_net.transports", "evl_net.registrations"},
    "evl_net.ops": {
        "evl_net.engine.request",
        "evl_net.hookspecs",
        "evl_net.registrations",
        "evl_net.model",
        "evl_net.outcomes",
        "evl_net.kernel",
        "evl_net.transports",
        "evl_net.errors",
    },
    "evl_net.registry": {"evl_net.hookspecs", "evl_net.registrations", "evl_net.transports"},
    "evl_net.engine": {
        "evl_net.hookspecs",
        "evl_net.registrations",
        "evl_net.model",
        "evl_net.outcomes",
        "evl_net.kernel",
        "evl_net.transports",
        "evl_net.errors",
        "evl_net.registry",
    },
    "evl_net.plugin": {"evl_net.hookspecs", "evl_net.registrations", "evl_net.ops"},
    "evl_net.api": {
        "evl_net.transports",
        "evl_net.engine",
        "evl_net.hookspecs",
        "evl_net.registrations",
        "evl_net.registry",
        "evl_net.kernel",
        "evl_net.ops",
        "evl_net.model",
        "evl_net.outcomes",
    },
    # evl net-config: files, plans and applies, on the library API
    "evl_net.netconfig": {
        "evl_net.api",
        "evl_net.boardlock",
        "evl_net.errors",
        "evl_net.model",
        "evl_net.outcomes",
        "evl_net.kernel",
        "evl_net.schema",
    },
    "evl_net.agent": {
        "evl_net.boardlock",
        "evl_net.engine",
        "evl_net.hookspecs",
        "evl_net.registrations",
        "evl_net.registry",
        "evl_net.model",
        "evl_net.outcomes",
        "evl_net.transports",
        "evl_net.errors",
    },
    "evl_net.cli": {
        "evl_net.engine",
        "evl_net.hookspecs",
        "evl_net.registrations",
        "evl_net.registry",
        "evl_net.kernel",
        "evl_net.ops",
        "evl_net.model",
        "evl_net.outcomes",
        "evl_net.transports",
        "evl_net.errors",
        "evl_net.plugin",
        "evl_net.netconfig",
        "evl_net.api",
    },
}


def _layer(module: str) -> str:
    best = max((name for name in BELOW if module == name or module.startswith(name + ".")), key=len, default=None)
    assert best is not None, f"{module} belongs to no layer: add it to BELOW"
    return best


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PKG.rglob("*.py")):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if name != "evl_net":
            out.append((name, path))
    return out


def _is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:])
    return (PKG / relative).with_suffix(".py").exists() or (PKG / relative / "__init__.py").exists()


def _imports(path: Path, module: str) -> list[tuple[str, list[str], int]]:
    """(imported module, names, line) of every import, at any depth, with relative imports resolved."""
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            out.append((base, [a.name for a in node.names], node.lineno))
    return out


@pytest.mark.parametrize(("module", "path"), _modules(), ids=[m for m, _p in _modules()])
def test_imports_go_down_only(module, path):
    layer = _layer(module)
    allowed = BELOW[layer] | {layer}
    for target, names, line in _imports(path, module):
        if not target.startswith("evl_net"):
            continue
        # ``from evl_net import x`` imports the module evl_net.x when there is one, else a name of the package
        modules = [f"{target}.{n}" for n in names if _is_module(f"{target}.{n}")] if target == "evl_net" else [target]
        for full in modules:
            if not any(full == a or full.startswith(a + ".") for a in allowed):
                pytest.fail(f"{path.relative_to(PKG.parent)}:{line}: {layer} imports {full} (a layer above it)")


@pytest.mark.parametrize("path", sorted([*PKG.rglob("*.py"), *CORE.rglob("*.py")]), ids=lambda p: p.name)
def test_no_private_name_crosses_a_module_boundary(path):
    for target, names, line in _imports(path, "x"):
        private = [n for n in names if n.startswith("_") and not n.startswith("__")]
        if target.startswith(("evl_net", "evl_core")) and private:
            pytest.fail(f"{path}:{line}: imports {private} from {target}")
