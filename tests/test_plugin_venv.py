"""Third-party plugins as users get them: distributions pip-installed into a clean venv.

One venv per module holds evl-tools, evl-net and the evl-hello test plugin.
The misbehaving plugins (tests/plugins/evl-broken, evl-raising, evl-dupe) are
installed with ``pip install --target`` into directories of their own, in the
same venv, and put on ``sys.path`` through PYTHONPATH only by the tests that
want them: entry points are found on ``sys.path`` exactly as in site-packages,
and no test depends on the order the others ran in.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
TEST_PLUGINS = Path(__file__).resolve().parent / "plugins"

HELLO_SUMMARY = "say hello from a third-party plugin"
NET_SUMMARY = "manage the EVL out-of-band networking stack"
#: What a source tree must not bring into the copy pip builds from.
BUILD_LITTER = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", ".*")


def dist(name: str) -> str:
    """A pattern for a distribution's name as a label may spell it: evl-hello or evl_hello.

    Labels come from the dist-info directory, whose name is normalized with
    underscores, or from the metadata, which keeps the project's spelling.
    """
    return name.replace("-", "[-_]")


def names(text: str, *dists: str) -> bool:
    return all(re.search(dist(d), text) for d in dists)


@dataclass
class Run:
    code: int
    out: str
    err: str


@dataclass
class Venv:
    root: Path
    #: --target directories of the second installation step
    broken_dir: Path
    dupe_dir: Path
    twin_dir: Path

    @property
    def evl(self) -> str:
        return str(self.root / "bin" / "evl")

    @property
    def python(self) -> str:
        return str(self.root / "bin" / "python")


def _check(cmd: list[str], **kwargs) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=kwargs.pop("cwd", "/"), **kwargs)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def _copy(src: Path, dst: Path, skip: tuple[str, ...] = ()) -> Path:
    """Build from a copy: an in-tree build would leave build/ and *.egg-info in the checkout."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        ignored = set(BUILD_LITTER(directory, names))
        if Path(directory) == src:
            ignored.update(n for n in names if n in skip)
        return ignored

    shutil.copytree(src, dst, ignore=ignore)
    return dst


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Venv:
    base = tmp_path_factory.mktemp("plugin-venv")
    src = base / "src"
    src.mkdir()
    core = _copy(ROOT, src / "evl-tools", skip=("tests", "plugins", "benchmarks", "scripts"))
    net = _copy(ROOT / "plugins" / "net", src / "evl-net")
    plugins = {
        name: _copy(TEST_PLUGINS / name, src / name)
        for name in ("evl-hello", "evl-broken", "evl-raising", "evl-dupe", "evl-netx", "evl-netx-twin")
    }

    root = base / "venv"
    env = _env()
    _check([sys.executable, "-m", "venv", str(root)], env=env)
    pip = [str(root / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "install", "-q"]
    # setuptools first: --no-build-isolation builds with what the venv has
    # (a recent one, which builds wheels without the 'wheel' package).
    _check([*pip, "--upgrade", "setuptools>=70.1"], env=env)
    _check([*pip, "pluggy", "tabulate", "pyroute2", "argparse-manpage"], env=env)
    local = [*pip, "--no-deps", "--no-build-isolation"]
    _check([*local, str(core), str(net), str(plugins["evl-hello"]), str(plugins["evl-netx"])], env=env)
    # Second step, same venv and same pip: the misbehaving plugins.
    broken_dir, dupe_dir = base / "site-broken", base / "site-dupe"
    _check([*local, "--target", str(broken_dir), str(plugins["evl-broken"]), str(plugins["evl-raising"])], env=env)
    _check([*local, "--target", str(dupe_dir), str(plugins["evl-dupe"])], env=env)
    twin_dir = base / "site-twin"
    _check([*local, "--target", str(twin_dir), str(plugins["evl-netx-twin"])], env=env)
    return Venv(root, broken_dir, dupe_dir, twin_dir)


def _env(**extra: str) -> dict[str, str]:
    """The caller's environment without EVL_*, Python or venv settings, and a PATH without venvs."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EVL_", "PYTHON", "PIP_REQUIRE", "VIRTUAL_ENV", "__PYVENV"))
    }
    # No bin/ of a venv on PATH: its evl-net console script would show up as an external.
    env["PATH"] = "/usr/bin:/bin"
    env.update(extra)
    return env


def evl(venv: Venv, *argv: str, **extra_env: str) -> Run:
    proc = subprocess.run(
        [venv.evl, *argv], env=_env(**extra_env), cwd=venv.root, capture_output=True, text=True, timeout=60
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def with_broken(venv: Venv) -> dict[str, str]:
    return {"PYTHONPATH": str(venv.broken_dir)}


def with_dupe(venv: Venv) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([str(venv.broken_dir), str(venv.dupe_dir)])}


def listed(out: str) -> dict[str, str]:
    """name -> summary of the lines `evl help` prints."""
    rows = {}
    for line in out.splitlines():
        if line and not line.startswith(("available commands", "usage")) and line[0] != " ":
            rows[line[:12].rstrip()] = line[13:]
    return rows


# -- the venv itself ---------------------------------------------------------


def test_venv_is_clean(venv):
    """Nothing leaks in from the venv running the tests or from the system site-packages."""
    cfg = (venv.root / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in cfg
    # cwd: `python -c` puts the current directory first on sys.path, and the checkout has evl_core/.
    run = dict(env=_env(), cwd=venv.root, capture_output=True, text=True)
    proc = subprocess.run([venv.python, "-c", "import hypothesis"], **run)
    assert proc.returncode != 0, "hypothesis is only in the outer venv; the test venv must not see it"
    proc = subprocess.run(
        [venv.python, "-c", "import evl_core, evl_hello; print(evl_core.__file__); print(evl_hello.__file__)"],
        **run,
    )
    assert proc.returncode == 0, proc.stderr
    for path in proc.stdout.split():
        assert path.startswith(str(venv.root)), path


# -- a well-behaved third-party plugin -----------------------------------------


def test_help_lists_the_third_party_command(venv):
    r = evl(venv, "help")
    assert (r.code, r.err) == (0, "")
    lines = r.out.splitlines()
    assert f"{'hello':<12} {HELLO_SUMMARY}" in lines
    assert f"{'net':<12} {NET_SUMMARY}" in lines


def test_hello_runs(venv):
    r = evl(venv, "hello", "--name", "x")
    assert (r.code, r.out, r.err) == (0, "hello, x\n", "")


def test_hello_failure_is_one_line(venv):
    r = evl(venv, "hello", "--fail")
    assert r.code == 1
    assert r.out == ""
    assert r.err == "evl-hello: cannot greet: Operation not permitted\n"
    assert "Traceback" not in r.err


def test_hello_describes_itself(venv):
    r = evl(venv, "hello", "-@")
    assert (r.code, r.out, r.err) == (0, HELLO_SUMMARY + "\n", "")


def test_hello_usage_errors_come_from_its_parser(venv):
    r = evl(venv, "hello", "--bogus")
    assert r.code == 2
    assert "usage: evl-hello" in r.err
    assert "Traceback" not in r.err


def test_plugins_lists_the_distribution(venv):
    r = evl(venv, "plugins")
    assert r.code == 0, r.err
    assert re.search(rf"^hello \({dist('evl-hello')} 0\.1\.0\) +evl_commands$", r.out, re.M), r.out
    assert re.search(rf"^net \({dist('evl-net')} 0\.1\.0\) ", r.out, re.M), r.out


def test_autoload_can_be_disabled(venv):
    r = evl(venv, "help", EVL_DISABLE_PLUGIN_AUTOLOAD="1")
    assert (r.code, r.err) == (0, "")
    rows = listed(r.out)
    assert "hello" not in rows and "net" not in rows
    assert {"help", "plugins"} <= set(rows)
    r = evl(venv, "hello", EVL_DISABLE_PLUGIN_AUTOLOAD="1")
    assert (r.code, r.err) == (1, "evl: no 'hello' command. Try 'evl --help'.\n")


# -- a plugin that cannot be imported, one whose hook raises -------------------


def _assert_one_warning_each(err: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert all(line.startswith("evl: warning: ") for line in lines), err
    assert len([line for line in lines if names(line, "evl-broken")]) == 1, err
    assert len([line for line in lines if names(line, "evl-raising")]) == 1, err
    assert "Traceback" not in err


def test_broken_plugins_cost_one_warning_each(venv):
    r = evl(venv, "help", **with_broken(venv))
    assert r.code == 0
    _assert_one_warning_each(r.err)
    rows = listed(r.out)
    assert rows["hello"] == HELLO_SUMMARY
    assert rows["net"] == NET_SUMMARY


def test_other_plugins_work_beside_broken_ones(venv):
    r = evl(venv, "hello", "--name", "y", **with_broken(venv))
    assert (r.code, r.out) == (0, "hello, y\n")
    _assert_one_warning_each(r.err)
    r = evl(venv, "net", "-@", **with_broken(venv))
    assert (r.code, r.out) == (0, NET_SUMMARY + "\n")
    _assert_one_warning_each(r.err)


# -- two plugins claiming one command -----------------------------------------


def test_a_claimed_twice_command_fails_naming_both(venv):
    r = evl(venv, "hello", **with_dupe(venv))
    assert r.code == 1
    assert r.out == ""
    lines = r.err.splitlines()
    conflict = [line for line in lines if not line.startswith("evl: warning: ")]
    assert len(conflict) == 1, r.err
    assert conflict[0].startswith("evl: command 'hello' is claimed by several plugins: ")
    assert names(conflict[0], "evl-hello", "evl-dupe"), conflict[0]
    assert "Traceback" not in r.err


def test_other_commands_work_beside_a_conflict(venv):
    r = evl(venv, "net", "-@", **with_dupe(venv))
    assert (r.code, r.out) == (0, NET_SUMMARY + "\n")
    r = evl(venv, "help", **with_dupe(venv))
    assert r.code == 0
    hello = listed(r.out)["hello"]
    assert hello.startswith("(unavailable: claimed by ")
    assert names(hello, "evl-hello", "evl-dupe"), hello


def test_the_boot_unit_is_installed_with_the_data_files(venv):
    unit = venv.root / "share" / "evl-tools" / "systemd" / "evl-net-config.service"
    assert unit.read_text() == (ROOT / "systemd" / "evl-net-config.service").read_text()


def test_man_pages_are_installed_where_man_finds_them(venv):
    for page in ("evl", "evl-net", "evl-sim"):
        assert (venv.root / "share" / "man" / "man8" / f"{page}.8").is_file(), page
    if not shutil.which("man"):
        pytest.skip("man is not installed")
    # man-db derives <prefix>/share/man from each PATH entry's bin/.
    env = _env(PATH=f"{venv.root / 'bin'}:/usr/bin:/bin", MANPATH="")
    for page in ("evl", "evl-net"):
        proc = subprocess.run(["man", "-w", page], env=env, capture_output=True, text=True)
        assert proc.stdout.strip() == str(venv.root / "share" / "man" / "man8" / f"{page}.8"), proc.stderr


#: Shell completions as installed under the prefix -> the committed file (scripts/gen_completions.py).
COMPLETIONS = {
    "share/bash-completion/completions/evl": "completions/bash-completion/evl",
    "share/bash-completion/completions/evl-net": "completions/bash-completion/evl-net",
    "share/zsh/site-functions/_evl": "completions/_evl",
    "share/fish/vendor_completions.d/evl.fish": "completions/evl.fish",
    "share/fish/vendor_completions.d/evl-net.fish": "completions/evl-net.fish",
}


def _shell(venv: Venv, argv: list[str], home: Path) -> subprocess.CompletedProcess:
    """A shell finding the venv's share/ as it finds a prefix's: through XDG_DATA_DIRS (bash-completion, fish)."""
    env = _env(
        PATH=f"{venv.root / 'bin'}:/usr/bin:/bin", HOME=str(home), XDG_DATA_DIRS=f"{venv.root / 'share'}:/usr/share"
    )
    return subprocess.run(argv, env=env, cwd=home, capture_output=True, text=True, timeout=60)


def test_completions_are_installed_where_each_shell_looks(venv, tmp_path):
    for installed, source in COMPLETIONS.items():
        assert (venv.root / installed).read_text() == (ROOT / source).read_text(), installed
    loaded = []
    loader = Path("/usr/share/bash-completion/bash_completion")
    if loader.is_file():
        # bash-completion loads <dir>/bash-completion/completions/<command>, <dir> from XDG_DATA_DIRS.
        script = f"source {loader}; __load_completion evl && __load_completion evl-net && complete -p evl evl-net"
        proc = _shell(venv, ["bash", "--norc", "--noprofile", "-c", script], tmp_path)
        assert proc.stdout.splitlines() == ["complete -F _evl evl", "complete -F _evl_net_script evl-net"], proc.stderr
        loaded.append("bash-completion")
    if shutil.which("zsh"):
        script = (
            f"fpath=({venv.root / 'share' / 'zsh' / 'site-functions'} $fpath); autoload -Uz compinit; "
            "compinit -u -D; print -r -- $_comps[evl] $_comps[evl-net]"
        )
        proc = _shell(venv, ["zsh", "-f", "-c", script], tmp_path)
        assert proc.stdout.strip() == "_evl _evl", proc.stderr
        loaded.append("zsh")
    if shutil.which("fish"):
        # fish's complete path holds <dir>/fish/vendor_completions.d of each XDG_DATA_DIRS entry.
        proc = _shell(venv, ["fish", "-c", 'complete -C "evl n"; complete -C "evl-net --tr"'], tmp_path)
        assert [row.split("\t")[0] for row in proc.stdout.splitlines()] == [
            "net",
            "net-agent",
            "net-config",
            "net-exporter",
            "--transport",
        ], proc.stdout + proc.stderr
        loaded.append("fish")
    if not loaded:
        pytest.skip("installed, but neither bash-completion, zsh nor fish is here to load them")


def test_completions_and_man_pages_are_installed_by_an_editable_install(tmp_path_factory):
    """setuptools leaves data files out of editable wheels; the project's backend (build_backend/) adds them."""
    base = tmp_path_factory.mktemp("editable-venv")
    core = _copy(ROOT, base / "evl-tools", skip=("tests", "plugins", "benchmarks", "scripts"))
    root = base / "venv"
    env = _env()
    _check([sys.executable, "-m", "venv", str(root)], env=env)
    pip = [str(root / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "install", "-q"]
    _check([*pip, "--upgrade", "setuptools>=70.1"], env=env)
    _check([*pip, "--no-deps", "--no-build-isolation", "-e", str(core)], env=env)
    assert (root / "bin" / "evl").is_file()
    missing = [path for path in COMPLETIONS if not (root / path).is_file()]
    assert not missing, f"pip install -e . did not install {missing}"
    assert (root / "share" / "man" / "man8" / "evl-net.8").read_text() == (ROOT / "man" / "evl-net.8").read_text()
    if shutil.which("man"):
        found = subprocess.run(
            ["man", "-w", "evl-net"],
            env={**env, "PATH": f"{root / 'bin'}:/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert found.stdout.strip() == str(root / "share" / "man" / "man8" / "evl-net.8")


def test_readme_main_job_on_the_installed_tools(venv, tmp_path):
    """The work README's first command runs, on the simulator, once installed."""
    state = {"EVL_SIM_STATE": str(tmp_path / "state.json")}
    run = evl(venv, "net", "-ei", "eth0.42", **state)
    assert run.code == 0 and run.err.endswith("using the simulator\n"), run.err
    assert evl(venv, "net", "-N41,42,55-57", **state).code == 0
    assert evl(venv, "net", "-n", **state).out == "41-42,55-57\n"
    assert evl(venv, "net", "-Q", "-i", "eth0.42", **state).out.startswith("oob capability: yes\n")


# -- a third-party evl net operation -------------------------------------------------------


def _sim(venv: Venv, name: str = "local") -> dict[str, str]:
    return {"EVL_NET_TRANSPORT": "sim", "EVL_SIM_STATE": str(venv.root / f"{name}-state.json")}


def test_third_party_operation_runs_locally(venv):
    env = _sim(venv)
    assert evl(venv, "net", "-ei", "eth0.42", **env).code == 0
    r = evl(venv, "net", "--pool-usage", "-i", "eth0.42", **env)
    assert (r.code, r.out, r.err) == (0, "eth0.42: 0 of 2048 buffers in use\n", "")
    r = evl(venv, "net", "--json", "--pool-usage", "-i", "eth0.42", **env)
    assert r.out == '{"action":"pool-usage","ifname":"eth0.42","in_use":0,"total":2048}\n'
    # It runs in the C tool's fixed order, after the built-ins, and needs -i as it says.
    r = evl(venv, "net", "--pool-usage", "-QoR", "-i", "eth0.42", **env)
    assert r.out == "yes 0\neth0.42: 0 of 2048 buffers in use\n"
    r = evl(venv, "net", "--pool-usage", **env)
    assert r.code == 1 and r.err.startswith("a network interface must be specified\n")
    r = evl(venv, "net", "--help")
    assert "\n--pool-usage" in r.err and "print how many buffers" in r.err


def test_third_party_operation_runs_over_the_remote_transport(venv, tmp_path):
    """Only the transport's primitives travel: the board's agent needs no plugin for it."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    board_state = tmp_path / "board-state.json"
    ssh = bindir / "ssh"  # stands in for OpenSSH: runs the board's agent on this machine
    ssh.write_text(  # the configuration check (ssh -G) is the real ssh's
        '#!/bin/sh\ncase " $* " in *" -G "*) exec /usr/bin/ssh "$@";; esac\n'
        f"EVL_SIM_STATE={board_state} exec {venv.evl} net-agent --stdio --transport=sim --log=none\n"
    )
    ssh.chmod(0o755)
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "EVL_SIM_STATE": str(tmp_path / "unused.json")}
    assert evl(venv, "net", "--remote=board1", "-ei", "eth0.42", **env).code == 0
    r = evl(venv, "net", "--remote=board1", "--pool-usage", "-i", "eth0.42", **env)
    assert (r.code, r.out, r.err) == (0, "eth0.42: 0 of 2048 buffers in use\n", "")
    assert not (tmp_path / "unused.json").exists()  # it ran on the board, not here
    state = board_state.read_text()
    assert '"eth0.42"' in state


def test_third_party_option_is_in_the_man_page(venv):
    r = evl(venv, "help", "--man", "net")
    assert r.code == 0 and r.out.startswith(".TH EVL\\-NET")
    assert "\\-\\-pool\\-usage" in r.out and "print how many buffers" in r.out


def test_two_plugins_claiming_one_option_lose_it_and_built_ins_win(venv):
    env = {**_sim(venv, "twin"), "PYTHONPATH": str(venv.twin_dir)}
    assert evl(venv, "net", "-ei", "eth0.42", **env).code == 0
    r = evl(venv, "net", "--pool-usage", "-i", "eth0.42", **env)
    assert r.code == 1
    message = r.err.splitlines()[-1]
    assert message.startswith("evl-net: option --pool-usage is claimed by several plugins: ")
    assert names(message, "evl-netx", "evl-netx-twin")
    # The built-in query and json formatter stand; the takeover attempts cost a warning each.
    r = evl(venv, "net", "--json", "-QoR", "-i", "eth0.42", **env)
    assert r.code == 0 and r.out.startswith('{"action":"query"')
    assert "operation 'query' is built in; ignored" in r.err
    assert "formatter 'json' is built in; ignored" in r.err
