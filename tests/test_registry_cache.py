"""The registry cache (evl_core.regcache): used while valid, rebuilt when a distribution changes, never harmful.

The venv is a real one, with evl-tools and evl-net pip-installed; the evl-hello
test plugin is installed, upgraded (a new version with a new summary) and
removed with pip, as users do.  Whether a run used the cache is read from the
interpreter itself (``python -v`` names every module it imports): a run from
the cache imports neither pluggy nor a plugin module.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_plugin_venv import _copy  # one way to copy a source tree for pip, without its litter

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
HELLO = Path(__file__).resolve().parent / "plugins" / "evl-hello"
HELLO_SUMMARY = "say hello from a third-party plugin"


def _env(cache: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EVL_", "PYTHON", "PIP_REQUIRE", "VIRTUAL_ENV", "__PYVENV", "XDG_"))
    }
    env.update(PATH="/usr/bin:/bin", XDG_CACHE_HOME=str(cache), **extra)
    return env


#: A load that read a file changed less than 2 s before it began is not cached (it may have read it
#: half old, half new): after an install, the tests wait this long before a run they expect to write one.
SETTLE_S = 2.1


def _check(cmd: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd="/", env=env)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    if "install" in cmd:
        time.sleep(SETTLE_S)


class Venv:
    def __init__(self, root: Path, src: Path) -> None:
        self.root, self.src = root, src
        self.python = str(root / "bin" / "python")
        self.evl = str(root / "bin" / "evl")
        self.pip = [self.python, "-m", "pip", "--disable-pip-version-check", "-q"]

    def run(self, cache: Path, *argv: str, **extra: str) -> tuple[int, str, str, set[str]]:
        """``evl argv`` -> (exit code, stdout, the lines evl wrote on stderr, modules imported)."""
        proc = subprocess.run(
            [self.python, "-v", self.evl, *argv],
            env=_env(cache, **extra),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=60,
        )
        imported, err = set(), []
        for line in proc.stderr.splitlines():
            found = re.match(r"import '([^']+)' #", line)
            if found:
                imported.add(found.group(1))
            elif re.match(r"evl[-\w]*: |Traceback", line):  # ours, among the interpreter's own lines
                err.append(line + "\n")
        return proc.returncode, proc.stdout, "".join(err), imported

    def pip_install(self, src: Path, cache: Path, target: Path | None = None) -> None:
        """``pip install src`` into the venv, or with ``target`` into that directory (put on PYTHONPATH)."""
        into = ["--target", str(target)] if target is not None else []
        _check([*self.pip, "install", "--no-deps", "--no-build-isolation", *into, str(src)], _env(cache))

    def hello(self, version: str, summary: str) -> Path:
        """A copy of the evl-hello plugin, at ``version``, whose command says ``summary``."""
        dst = self.src / f"evl-hello-{version}"
        if not dst.exists():
            _copy(HELLO, dst)
            toml = dst / "pyproject.toml"
            toml.write_text(toml.read_text().replace('version = "0.1.0"', f'version = "{version}"'))
            init = dst / "evl_hello" / "__init__.py"
            init.write_text(init.read_text().replace(HELLO_SUMMARY, summary))
        return dst


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Venv:
    base = tmp_path_factory.mktemp("regcache-venv")
    src = base / "src"
    src.mkdir()
    core = _copy(ROOT, src / "evl-tools", skip=("tests", "plugins", "benchmarks"))
    net = _copy(ROOT / "plugins" / "net", src / "evl-net")
    root = base / "venv"
    env = _env(base / "cache")
    _check([sys.executable, "-m", "venv", str(root)], env)
    made = Venv(root, src)
    _check([*made.pip, "install", "--upgrade", "setuptools>=70.1"], env)
    _check([*made.pip, "install", "pluggy", "tabulate", "pyroute2", "argparse-manpage"], env)
    _check([*made.pip, "install", "--no-deps", "--no-build-isolation", str(core), str(net)], env)
    return made


def from_cache(imported: set[str]) -> bool:
    plugin_code = {"pluggy", "evl_net.plugin", "evl_core.builtins", "evl_core.hookspecs", "evl_hello"}
    return not imported & plugin_code


def commands(out: str) -> dict[str, str]:
    return {line[:12].rstrip(): line[13:] for line in out.splitlines() if line and not line.startswith("available")}


def test_second_run_is_answered_from_the_cache(venv, tmp_path):
    cache = tmp_path / "cache"
    code, out, err, imported = venv.run(cache, "help")
    assert (code, err) == (0, "")
    assert "pluggy" in imported and "evl_net.plugin" in imported  # nothing cached yet: loaded through pluggy
    files = list((cache / "evl-tools").iterdir())
    assert len(files) == 1 and files[0].name.startswith("registry-")
    assert (cache / "evl-tools").stat().st_mode & 0o777 == 0o700
    assert files[0].stat().st_mode & 0o777 == 0o600
    again = venv.run(cache, "help")
    assert again[:3] == (0, out, "")
    assert from_cache(again[3]), sorted(again[3] & {"pluggy", "evl_net.plugin"})
    # evl plugins needs the real plugin manager: built on demand, same answer as without the cache
    listed = venv.run(cache, "plugins")
    uncached = venv.run(cache, "plugins", EVL_NO_REGISTRY_CACHE="1")
    assert listed[0] == 0 and listed[1] == uncached[1] and "evl_net" in listed[1]


def test_installing_upgrading_and_removing_a_plugin_invalidates_it(venv, tmp_path):
    cache = tmp_path / "cache"
    assert "hello" not in commands(venv.run(cache, "help")[1])
    assert from_cache(venv.run(cache, "help")[3])

    venv.pip_install(venv.hello("0.1.0", "hello, first release"), cache)
    code, out, err, imported = venv.run(cache, "help")
    assert (code, err) == (0, "")
    assert commands(out)["hello"] == "hello, first release"
    assert not from_cache(imported)  # the install changed site-packages: loaded through pluggy again
    assert venv.run(cache, "hello", "--name", "x")[:3] == (0, "hello, x\n", "")
    assert from_cache(venv.run(cache, "help")[3])

    venv.pip_install(venv.hello("0.2.0", "hello, second release"), cache)
    code, out, err, imported = venv.run(cache, "help")
    assert (code, err) == (0, "")
    assert commands(out)["hello"] == "hello, second release"
    assert not from_cache(imported)

    _check([*venv.pip, "uninstall", "-y", "evl-hello"], _env(cache))
    code, out, err, imported = venv.run(cache, "help")
    assert (code, err) == (0, "")
    assert "hello" not in commands(out)
    code, _, err, _ = venv.run(cache, "hello")
    assert code == 1 and "no 'hello' command" in err


def _cache_file(cache: Path) -> Path:
    (found,) = (cache / "evl-tools").iterdir()
    return found


def _warm(venv: Venv, cache: Path) -> str:
    out = venv.run(cache, "help")[1]
    assert from_cache(venv.run(cache, "help")[3])
    return out


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "directory", "fifo"])
def test_a_corrupt_cache_costs_a_load_only(venv, tmp_path, damage):
    cache = tmp_path / "cache"
    out = _warm(venv, cache)
    path = _cache_file(cache)
    blob = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"\x00\xffnot marshal" * 50)
    elif damage == "truncated":
        path.write_bytes(blob[: len(blob) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "fifo":  # opened without blocking, and not read: not a regular file
        path.unlink()
        os.mkfifo(path, 0o600)
    else:
        path.unlink()
        path.mkdir()
    code, got, err, imported = venv.run(cache, "help")
    assert (code, got, err) == (0, out, "")
    assert not from_cache(imported)
    if damage != "directory":  # rewritten whole, and used again
        assert from_cache(venv.run(cache, "help")[3])


def test_a_cache_of_another_shape_costs_a_load_only(venv, tmp_path):
    """Valid marshal data that is not what we wrote (a command that is not a record, a class that is gone)."""
    import marshal

    cache = tmp_path / "cache"
    out = _warm(venv, cache)
    path = _cache_file(cache)
    data = marshal.loads(path.read_bytes())
    data["commands"]["help"] = ["evl_core.nowhere:Gone", {}]
    path.write_bytes(marshal.dumps(data))
    assert venv.run(cache, "help")[:3] == (0, out, "")
    data["commands"] = ["not", "a", "mapping"]
    path.write_bytes(marshal.dumps(data))
    assert venv.run(cache, "help")[:3] == (0, out, "")


@pytest.mark.parametrize("problem", ["foreign owner", "group-writable", "symlink", "open directory"])
def test_a_cache_that_is_not_the_users_own_is_not_read(venv, tmp_path, problem):
    cache = tmp_path / "cache"
    out = _warm(venv, cache)
    path = _cache_file(cache)
    if problem == "foreign owner":
        os.chown(path, 65534, 65534)
    elif problem == "group-writable":
        path.chmod(0o620)
    elif problem == "symlink":
        real = tmp_path / "elsewhere"
        path.rename(real)
        path.symlink_to(real)
    else:
        (cache / "evl-tools").chmod(0o777)
    code, got, err, imported = venv.run(cache, "help")
    assert (code, got, err) == (0, out, "")
    assert not from_cache(imported)


def test_an_unwritable_cache_costs_speed_only(venv, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory\n")
    for cache in (blocker, blocker / "below", Path("/proc/self/nope")):
        code, out, err, imported = venv.run(cache, "help")
        assert (code, err) == (0, "") and "net" in commands(out)
        assert not from_cache(imported)
    code, out, err, imported = venv.run(tmp_path / "c", "help", EVL_NO_REGISTRY_CACHE="1")
    assert (code, err) == (0, "") and not (tmp_path / "c").exists()


def test_editing_a_plugin_module_in_place_invalidates_it(venv, tmp_path):
    """A plugin on PYTHONPATH (as a source checkout is): its module's own status is in the stamp."""
    cache = tmp_path / "cache"
    target = tmp_path / "site"
    venv.pip_install(venv.hello("0.3.0", "v3"), cache, target)
    extra = {"PYTHONPATH": str(target)}
    assert commands(venv.run(cache, "help", **extra)[1])["hello"] == "v3"
    assert from_cache(venv.run(cache, "help", **extra)[3])
    init = target / "evl_hello" / "__init__.py"
    text = init.read_text().replace('"v3"', '"v4"')  # same size: only the status tells
    stat = init.stat()
    init.write_text(text)
    os.utime(init, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))  # (the .pyc checks whole seconds)
    time.sleep(SETTLE_S)
    code, out, err, imported = venv.run(cache, "help", **extra)
    assert (code, err) == (0, "") and commands(out)["hello"] == "v4"
    assert not from_cache(imported)


def test_a_broken_plugin_warns_every_time(venv, tmp_path):
    """A load that warned is not cached: the warning is not lost on the next run."""
    cache = tmp_path / "cache"
    target = tmp_path / "site"
    venv.pip_install(Path(__file__).resolve().parent / "plugins" / "evl-broken", cache, target)
    for _ in range(3):
        code, out, err, imported = venv.run(cache, "help", PYTHONPATH=str(target))
        assert code == 0 and "net" in commands(out)
        assert err.startswith("evl: warning: plugin ") and "failed to load" in err
        assert not from_cache(imported)


def _hello_on_path(venv: Venv, tmp_path: Path, cache: Path, summary: str) -> tuple[Path, dict[str, str]]:
    target = tmp_path / "site"
    venv.pip_install(venv.hello(f"0.9.{len(summary)}", summary), cache, target)
    return target / "evl_hello", {"PYTHONPATH": str(target)}


def test_editing_a_module_the_registrations_come_from_invalidates_it(venv, tmp_path):
    """Not the entry point's module itself: one it imports what it registers from."""
    cache = tmp_path / "cache"
    package, extra = _hello_on_path(venv, tmp_path, cache, "from the entry module")
    init = package / "__init__.py"
    init.write_text(
        init.read_text().replace('SUMMARY = "from the entry module"', "from evl_hello.texts import SUMMARY")
    )
    (package / "texts.py").write_text('SUMMARY = "texts, first"\n')
    time.sleep(SETTLE_S)
    assert commands(venv.run(cache, "help", **extra)[1])["hello"] == "texts, first"
    assert from_cache(venv.run(cache, "help", **extra)[3])
    (package / "texts.py").write_text('SUMMARY = "texts, again"\n')
    os.utime(package / "texts.py", ns=(time.time_ns(), time.time_ns() + 2_000_000_000))  # the .pyc checks seconds
    time.sleep(SETTLE_S)
    code, out, err, imported = venv.run(cache, "help", **extra)
    assert (code, err) == (0, "") and commands(out)["hello"] == "texts, again"
    assert not from_cache(imported)


def test_a_plugin_that_warns_warns_every_time(venv, tmp_path):
    cache = tmp_path / "cache"
    package, extra = _hello_on_path(venv, tmp_path, cache, "warns")
    init = package / "__init__.py"
    init.write_text('import warnings\nwarnings.warn("evl_hello is old", FutureWarning)\n' + init.read_text())
    time.sleep(SETTLE_S)
    for _ in range(3):
        proc = subprocess.run(
            [venv.evl, "help"], env=_env(cache, **extra), capture_output=True, text=True, cwd=venv.root, timeout=60
        )
        assert proc.returncode == 0 and "hello" in commands(proc.stdout)
        assert "FutureWarning: evl_hello is old" in proc.stderr


def test_a_sys_path_entry_that_is_not_text_costs_speed_only(venv, tmp_path):
    """A .pth may put a pathlib.Path on sys.path: nothing to stamp it by, so no cache, and no traceback."""
    cache = tmp_path / "cache"
    site = tmp_path / "pth-site"
    site.mkdir()
    (site / "odd.pth").write_text(f"import sys, pathlib; sys.path.append(pathlib.Path({str(tmp_path)!r}))\n")
    extra = {"PYTHONPATH": str(site)}
    probe = [venv.python, "-c", "import site, sys; site.addsitedir(sys.argv[1]); print(type(sys.path[-1]).__name__)"]
    assert subprocess.run([*probe, str(site)], capture_output=True, text=True, env=_env(cache)).stdout == "PosixPath\n"
    runner = (
        "import site, sys, runpy; site.addsitedir(sys.argv.pop(1)); sys.argv = sys.argv[1:]; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    for _ in range(2):
        proc = subprocess.run(
            [venv.python, "-c", runner, str(site), venv.evl, "help"],
            env=_env(cache, **extra),
            capture_output=True,
            text=True,
            cwd=venv.root,
            timeout=60,
        )
        assert (proc.returncode, proc.stderr) == (0, "") and "net" in commands(proc.stdout)


def test_old_caches_are_pruned(venv, tmp_path):
    """One cache per interpreter and sys.path (python -m from many directories): the oldest beyond 32 go."""
    cache = tmp_path / "cache"
    where = cache / "evl-tools"
    where.mkdir(parents=True, mode=0o700)
    for i in range(40):
        old = where / f"registry-{i:016x}.marshal"
        old.write_bytes(b"old")
        os.utime(old, ns=(1_000_000_000 * (i + 1),) * 2)
    (where / "board-keep").write_bytes(b"not a registry cache")
    assert venv.run(cache, "help")[0] == 0
    left = sorted(p.name for p in where.iterdir() if p.name.startswith("registry-"))
    assert len(left) == 32
    assert "registry-0000000000000000.marshal" not in left  # the oldest went
    assert "registry-0000000000000027.marshal" in left  # the newest old one stayed
    assert (where / "board-keep").exists()
    assert from_cache(venv.run(cache, "help")[3])  # and the one just written is among those kept
