"""The evl.net collection as users get it: built, installed, documented, and through ansible-test sanity.

The collection is built with ``ansible-galaxy collection build`` and the tarball installed offline into a
temporary collections path; everything else runs against that installed copy.  ``ansible-doc`` must render
every module found in ``plugins/modules`` with options that are exactly the module's public argument_spec
(the argument_spec is captured by running the module's ``main()`` with ``AnsibleModule`` replaced), with
examples that use the module's own options and a RETURN section.  Without the evl-tools library on the
board each module must fail with its own message, not a traceback.  The slow test runs the ansible-test
sanity tests that need nothing but PyPI.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCE = ROOT / "ansible" / "ansible_collections" / "evl" / "net"
BIN = pathlib.Path(sys.executable).parent
GALAXY = BIN / "ansible-galaxy"
DOC = BIN / "ansible-doc"
ANSIBLE_TEST = BIN / "ansible-test"

MODULES = sorted(p.stem for p in (SOURCE / "plugins" / "modules").glob("*.py") if p.stem != "__init__")

if not GALAXY.exists():  # a test dependency (requirements-test.txt): its absence is a failure, not a skip
    raise RuntimeError(f"ansible-core is not installed next to {sys.executable}: pip install -r requirements-test.txt")

# The least each module needs to get past its argument checks to the point where it needs evl-tools.
NEEDS_LIBRARY = {
    "config": {"config": {}},
    "info": {},
    "peer": {"address": "192.0.2.1"},
    "port": {"name": "eth0"},
    "rx_filter": {"name": "eth0", "state": "absent"},
    "vlan_filter": {"vlans": "42"},
}

LIBRARY_MISSING = "the evl-tools library (evl_net) cannot be imported"

# The sanity tests that need nothing but PyPI (for their virtual environments).  Left out: changelog (the
# collection keeps no changelogs/; it would fetch antsibull-changelog only to skip), pslint (needs pwsh,
# and there is no PowerShell), shellcheck (needs the shellcheck binary, and there are no shell scripts).
SANITY_TESTS = [
    "action-plugin-docs",
    "ansible-doc",
    "compile",
    "empty-init",
    "ignores",
    "import",
    "line-endings",
    "no-assert",
    "no-get-exception",
    "no-illegal-filenames",
    "no-smart-quotes",
    "pep8",
    "pylint",
    "replace-urlopen",
    "runtime-metadata",
    "shebang",
    "symlinks",
    "use-argspec-type-path",
    "use-compat-six",
    "validate-modules",
    "yamllint",
]

# ansible-test bootstraps pip in its virtual environments with a script it downloads from
# ci-files.testing.ansible.com; this stand-in (kept where ansible-test caches that script) needs only PyPI.
GET_PIP = """\
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", *args])
subprocess.call([sys.executable, "-m", "pip", "uninstall", "-q", "-y", "setuptools"])
"""

# Runs a module's main() with AnsibleModule replaced: prints the argument_spec it was given.
CAPTURE_SPEC = """\
import json, runpy, sys
import ansible.module_utils.basic as basic

def capture(*args, argument_spec=None, **kwargs):
    print(json.dumps(argument_spec))
    sys.exit(0)

basic.AnsibleModule = capture
runpy.run_path(sys.argv[1], run_name="__main__")
sys.exit("the module's main() did not create an AnsibleModule")
"""


def galaxy_version() -> str:
    return yaml.safe_load((SOURCE / "galaxy.yml").read_text())["version"]


def run(argv: list, env: dict | None = None, timeout: float = 120, cwd: pathlib.Path | None = None):
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd, check=False
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("build")
    proc = run([GALAXY, "collection", "build", "--output-path", out, SOURCE], env=ansible_env(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tarball = out / f"evl-net-{galaxy_version()}.tar.gz"
    assert tarball.is_file(), f"{proc.stdout}: no {tarball.name} in {sorted(os.listdir(out))}"
    return tarball


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory) -> pathlib.Path:
    """The collections path the tarball is installed in (offline)."""
    dest = tmp_path_factory.mktemp("install") / "collections"
    proc = run([GALAXY, "collection", "install", "--offline", "-p", dest, built], env=ansible_env(dest.parent))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"evl.net:{galaxy_version()} was installed successfully" in proc.stdout
    return dest


def ansible_env(home: pathlib.Path, collections: pathlib.Path | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_HOME=str(home / "ansible-home"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    if collections is not None:
        env["ANSIBLE_COLLECTIONS_PATH"] = str(collections)
    return env


def collection_dir(installed: pathlib.Path) -> pathlib.Path:
    return installed / "ansible_collections" / "evl" / "net"


def test_modules_found():
    assert "port" in MODULES and "info" in MODULES, MODULES


def test_install_has_every_module_and_plugin(installed):
    there = collection_dir(installed)
    manifest = json.loads((there / "MANIFEST.json").read_text())
    assert manifest["collection_info"]["namespace"] == "evl"
    assert manifest["collection_info"]["name"] == "net"
    assert manifest["collection_info"]["dependencies"] == {}
    for sub in ("modules", "action", "module_utils", "doc_fragments"):
        want = sorted(p.name for p in (SOURCE / "plugins" / sub).glob("*.py"))
        assert want, sub
        assert sorted(p.name for p in (there / "plugins" / sub).glob("*.py")) == want, sub
    assert (there / "meta" / "runtime.yml").read_text() == (SOURCE / "meta" / "runtime.yml").read_text()
    assert not (there / "tests" / "output").exists()
    files = json.loads((there / "FILES.json").read_text())["files"]
    assert "plugins/modules/port.py" in {f["name"] for f in files}


@pytest.fixture(scope="module")
def docs(installed) -> dict:
    """``ansible-doc --json`` of every module, from the installed collection."""
    names = [f"evl.net.{m}" for m in MODULES]
    proc = run([DOC, "-t", "module", "--json", *names], env=ansible_env(installed.parent, installed))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = json.loads(proc.stdout)
    assert sorted(found) == sorted(names), proc.stderr
    return found


def argument_spec(installed: pathlib.Path, module: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(installed))
    path = collection_dir(installed) / "plugins" / "modules" / f"{module}.py"
    proc = run([sys.executable, "-c", CAPTURE_SPEC, path], env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def normal_default(spec: dict):
    value = spec.get("default")
    if value is not None and spec.get("type") == "float":
        return float(value)
    return value


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_text_names_every_option(installed, module):
    proc = run([DOC, "-t", "module", f"evl.net.{module}"], env=ansible_env(installed.parent, installed))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[WARNING]" not in proc.stderr, proc.stderr
    text = proc.stdout
    assert f"evl.net.{module}" in text
    for sections in ("OPTIONS", "ATTRIBUTES", "EXAMPLES:", "RETURN VALUES:"):
        assert sections in text, sections
    for name, data in argument_spec(installed, module).items():
        if not name.startswith("_"):
            found = re.search(rf"^([-=]) {re.escape(name)}(\s|$)", text, re.M)
            assert found, f"option {name} not rendered"
            assert found.group(1) == ("=" if data.get("required") else "-"), f"option {name}: wrong required mark"


@pytest.mark.parametrize("module", MODULES)
def test_documented_options_are_the_argument_spec(installed, docs, module):
    spec = argument_spec(installed, module)
    options = docs[f"evl.net.{module}"]["doc"].get("options") or {}
    public = {name: data for name, data in spec.items() if not name.startswith("_")}
    assert sorted(options) == sorted(public), "documented options differ from the argument_spec"
    for name, data in public.items():
        doc = options[name]
        assert doc.get("description"), name
        assert doc.get("type", "str") == data.get("type", "str"), name
        assert bool(doc.get("required")) == bool(data.get("required")), name
        assert sorted(doc.get("aliases") or []) == sorted(data.get("aliases") or []), name
        assert doc.get("choices") == data.get("choices"), name
        assert doc.get("elements") == data.get("elements"), name
        assert normal_default(doc | {"type": data.get("type")}) == normal_default(data), name


@pytest.mark.parametrize("module", MODULES)
def test_examples_and_return(docs, module):
    entry = docs[f"evl.net.{module}"]
    assert entry["doc"]["short_description"]
    assert entry["doc"]["module"] == module
    assert entry["return"], "RETURN is empty"
    for key, value in entry["return"].items():
        assert value.get("description") and value.get("type") and value.get("returned"), key
    assert entry["examples"].strip(), "EXAMPLES is empty"
    tasks = yaml.safe_load(entry["examples"])
    assert isinstance(tasks, list) and tasks
    options = entry["doc"].get("options") or {}
    known = set(options) | {alias for data in options.values() for alias in data.get("aliases") or []}
    own = [task for task in tasks if f"evl.net.{module}" in task]
    assert own, f"no example uses evl.net.{module} by its full name"
    for task in own:
        assert task.get("name"), task
        used = task[f"evl.net.{module}"] or {}
        assert set(used) <= known, f"examples use undocumented options {set(used) - known}"


def test_every_module_has_missing_library_arguments():
    assert sorted(NEEDS_LIBRARY) == MODULES


@pytest.mark.parametrize("module", MODULES)
def test_missing_library_fails_cleanly(installed, tmp_path, module):
    """On a board without evl-tools the module says what to install: no traceback."""
    for name in ("evl_net", "evl_core"):
        (tmp_path / "blocked" / name).mkdir(parents=True)
        (tmp_path / "blocked" / name / "__init__.py").write_text(
            f"raise ImportError({'No module named ' + name!r}, name={name!r})\n"
        )
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": NEEDS_LIBRARY.get(module, {})}))
    env = dict(os.environ, PYTHONPATH=f"{tmp_path / 'blocked'}{os.pathsep}{installed}")
    path = collection_dir(installed) / "plugins" / "modules" / f"{module}.py"
    proc = run([sys.executable, path, args], env=env, cwd=tmp_path)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert proc.returncode == 1, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["failed"] is True
    assert LIBRARY_MISSING in result["msg"], result["msg"]
    assert "pip install evl-tools evl-net" in result["msg"]
    assert "evl_net" in result["error"]


def pip_bootstrap_version() -> str | None:
    """The pip version ansible-test bootstraps its virtual environments with."""
    import inspect

    from ansible_test._internal import python_requirements

    found = re.search(r"pip='([\d.]+)'", inspect.getsource(python_requirements.get_venv_packages))
    return found.group(1) if found else None


@pytest.mark.slow
def test_sanity(installed, tmp_path):
    from ansible.release import __version__

    core = ".".join(__version__.split(".")[:2])
    there = collection_dir(installed)
    ignores = there / "tests" / "sanity" / f"ignore-{core}.txt"
    assert ignores.is_file(), f"no {ignores.name} for ansible-core {__version__} (requirements-test.txt pins it)"
    home = tmp_path / "home"
    pip = pip_bootstrap_version()
    if pip is not None:
        cache = home / ".ansible" / "test" / "cache"
        cache.mkdir(parents=True)
        (cache / f"get_pip_{pip.replace('.', '_')}.py").write_text(GET_PIP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "PYTHON"))}
    env.update(HOME=str(home), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    tests = [arg for name in SANITY_TESTS for arg in ("--test", name)]
    argv = [ANSIBLE_TEST, "sanity", "--venv", "--python", python, "--color", "no", *tests]
    proc = run(argv, env=env, cwd=there, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-20000:]
    for name in SANITY_TESTS:
        assert f'Running sanity test "{name}"' in out, f"{name} did not run"
    assert "ERROR:" not in out, out
    shutil.rmtree(home, ignore_errors=True)
