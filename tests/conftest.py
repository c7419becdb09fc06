"""Shared fixtures: an isolated simulator state and ways to run the real commands."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@dataclass
class Run:
    code: int
    out: str
    err: str


def script(name: str) -> str:
    """A console script installed beside the interpreter running the tests."""
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed beside {sys.executable}: pip install -e . -e plugins/net")
    return str(path)


@pytest.fixture(scope="session", autouse=True)
def _private_cache_home(tmp_path_factory: pytest.TempPathFactory):
    """The registry and board caches of the whole run in a directory of its own, never the user's ~/.cache."""
    saved = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if saved is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = saved


@pytest.fixture
def sim_env(tmp_path: Path) -> dict[str, str]:
    """An environment whose simulator state lives in tmp_path; no notice, no stray board."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVL_")}
    env["EVL_SIM_STATE"] = str(tmp_path / "sim-state.json")
    env["EVL_NET_TRANSPORT"] = "sim"
    env["XDG_STATE_HOME"] = str(tmp_path / "xdg")
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")  # the registry cache: each test starts without one
    return env


@pytest.fixture
def sh(sim_env):
    """Run a command line in a fresh process: sh("evl", "net", "-n")."""

    def run(*argv: str, env: dict[str, str] | None = None, cwd: str | None = None, timeout: float = 60) -> Run:
        cmd = [script(argv[0]), *argv[1:]]
        proc = subprocess.run(cmd, env=env or sim_env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
        return Run(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def evl(sim_env):
    """Run ``evl`` in this process (fast): evl("net", "-n")."""
    from evl_core.cli import main

    def run(*argv: str, env: dict[str, str] | None = None, plugins=(), autoload: bool | None = None) -> Run:
        out, err = io.StringIO(), io.StringIO()
        code = main(list(argv), plugins=plugins, autoload=autoload, stdout=out, stderr=err, env=env or sim_env)
        return Run(code, out.getvalue(), err.getvalue())

    return run
