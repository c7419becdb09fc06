"""The ``evl`` dispatcher: global options, plugin commands, external commands, errors.

In-process through the ``evl`` fixture where the behaviour is the
dispatcher's own; through the installed ``evl`` script (``sh``) where the
process matters (exec of externals, argv[0], exit status, imports).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import stat
import subprocess
import sys
import types
from pathlib import Path

import pytest

import evl_core
from evl_core.cli import USAGE
from evl_core.errors import EvlError
from evl_core.hookspecs import Command, hookimpl

VERSION = f"evl-tools {evl_core.__version__} [requires ABI {evl_core.EVL_ABI_PREREQ}]\n"
NET_SUMMARY = "manage the EVL out-of-band networking stack"
SYSTEM_PATH = "/usr/bin:/bin"
#: What `evl help` prints with the built-in commands only: C's evl-help format.
BUILTIN_LISTING = (
    "\navailable commands:\n\n"
    "help         list the available commands\n"
    "plugins      list the loaded plugins and what they provide\n"
)


# -- helpers -------------------------------------------------------------------


@pytest.fixture
def env(sim_env) -> dict[str, str]:
    """sim_env with a PATH that holds no evl-* command (a venv's bin/ has evl-net)."""
    return {**sim_env, "PATH": SYSTEM_PATH}


@pytest.fixture
def prefix(tmp_path) -> Path:
    """An empty command directory for external evl-* commands."""
    path = tmp_path / "libexec" / "evl"
    path.mkdir(parents=True)
    return path


def external(directory: Path, name: str, body: str, *, describe: str | None = None) -> Path:
    """Write an executable ``evl-<name>`` shell script; ``describe`` is its ``-@`` line."""
    head = "#!/bin/sh\n"
    if describe is not None:
        head += f'if [ "$1" = "-@" ]; then echo "{describe}"; exit 0; fi\n'
    path = directory / f"evl-{name}"
    path.write_text(head + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def help_rows(out: str) -> dict[str, str]:
    """name -> description of the lines `evl help` prints ("%-12s %s")."""
    rows = {}
    text = out.split("\navailable commands:\n\n", 1)[1]
    for line in text.splitlines():
        rows[line[:12].rstrip()] = line[13:]
    return rows


def plugin(name: str, *commands: Command, raises: BaseException | None = None) -> types.ModuleType:
    """A plugin module whose ``evl_commands`` returns ``commands`` (or raises)."""
    module = types.ModuleType(name)

    @hookimpl
    def evl_commands():
        if raises is not None:
            raise raises
        return list(commands)

    module.evl_commands = evl_commands
    return module


def simple_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", default="world")
    return parser


def greet(args: argparse.Namespace, ctx) -> int:
    ctx.stdout.write(f"greetings, {args.name} from {ctx.prog}\n")
    return 0


def command(name: str = "greet", handler=greet, summary: str | None = None, **kwargs) -> Command:
    return Command(name=name, summary=summary or f"the {name} command", parser=simple_parser, handler=handler, **kwargs)


def raising(exc: BaseException):
    def handler(args, ctx):
        raise exc

    return handler


# -- global options --------------------------------------------------------------


def test_usage_text():
    """C's synopsis (the command is optional) and options; this project's wording of them."""
    assert USAGE == (
        "usage: evl [options] [<command> [<args>]]\n"
        "-P --prefix=<dir>      directory of external evl-* commands\n"
        "-v -V --version        print the version and the EVL ABI level required\n"
        "-h --help              this help\n"
    )


def test_no_command_prints_usage_on_stderr_and_the_command_list_on_stdout(evl, env):
    """C prints its usage on stderr, then execs evl-help: the listing starts with its own blank line."""
    r = evl(env=env, autoload=False)
    assert (r.code, r.out, r.err) == (0, BUILTIN_LISTING, USAGE)


def test_no_command_in_a_real_process(sh, env):
    r = sh("evl", env=env)
    assert (r.code, r.err) == (0, USAGE)
    assert r.out.startswith("\navailable commands:\n\n")
    assert help_rows(r.out)["net"] == NET_SUMMARY
    assert r.out == sh("evl", "help", env=env).out


def test_usage_comes_before_plugin_warnings(evl, env):
    """C prints the usage before it looks for the command."""
    r = evl(env=env, plugins=[plugin("evl_test_bad", raises=RuntimeError("no list today"))], autoload=False)
    assert (r.code, r.out) == (0, BUILTIN_LISTING)
    assert r.err.startswith(USAGE + "evl: warning: ")
    assert r.err.count("\n") == USAGE.count("\n") + 1


def test_version_format():
    assert re.fullmatch(r"evl-tools \d+\.\d+\.\d+\S* \[requires ABI \d+\]\n", VERSION)
    assert VERSION == "evl-tools 0.1.0 [requires ABI 45]\n"


@pytest.mark.parametrize("option", ["-V", "-v", "--version", "--vers", "--v"])
def test_version(evl, env, option):
    r = evl(option, env=env)
    assert (r.code, r.out, r.err) == (0, VERSION, "")


def test_version_in_a_real_process(sh, env):
    r = sh("evl", "--version", env=env)
    assert (r.code, r.out, r.err) == (0, VERSION, "")


def test_version_wins_over_a_command(evl, env):
    r = evl("-V", "no-such-command", env=env)
    assert (r.code, r.out) == (0, VERSION)


@pytest.mark.parametrize(
    "argv", [["-h"], ["--help"], ["--he"], ["--"], ["-h", "--"], ["-hh"], ["-h", "-P", "/x"]], ids=" ".join
)
def test_help_option(evl, env, argv):
    """No command: usage on stderr, `evl help` on stdout, as C does with or without -h."""
    r = evl(*argv, env=env, autoload=False)
    assert (r.code, r.out, r.err) == (0, BUILTIN_LISTING, USAGE)


def test_help_option_in_a_real_process(sh, env):
    r = sh("evl", "--help", env=env)
    assert (r.code, r.err) == (0, USAGE)
    assert r.out == sh("evl", "help", env=env).out
    assert help_rows(r.out)["net"] == NET_SUMMARY


@pytest.mark.parametrize(
    "argv",
    [
        ["-h", "-V"],
        ["-hV"],
        ["-hv"],
        ["-V", "-h"],
        ["--help", "--version"],
        ["-h", "--vers"],
        ["-P", "/x", "-h", "-V"],
        ["-h", "-V", "-x"],
    ],
    ids=" ".join,
)
def test_version_wins_over_help(evl, env, argv):
    r = evl(*argv, env=env, autoload=False)
    assert (r.code, r.out, r.err) == (0, VERSION, "")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-h", "-x"], "invalid option -- 'x'"),
        (["-hx"], "invalid option -- 'x'"),
        (["-hP"], "option requires an argument -- 'P'"),
        (["-h", "-P"], "option requires an argument -- 'P'"),
        (["--help", "--bogus"], "unrecognized option '--bogus'"),
        (["--help", "--prefix"], "option '--prefix' requires an argument"),
        (["-h", "--help=1"], "option '--help' doesn't allow an argument"),
    ],
)
def test_help_then_a_bad_option_is_a_usage_error(evl, env, argv, message):
    """-h is not acted on before the whole option list has parsed, as in C's loop."""
    r = evl(*argv, env=env, autoload=False)
    assert (r.code, r.out, r.err) == (2, "", f"evl: {message}\n{USAGE}")


def test_help_then_a_bad_option_in_a_real_process(sh, env):
    r = sh("evl", "-hP", env=env)
    assert (r.code, r.out, r.err) == (2, "", f"evl: option requires an argument -- 'P'\n{USAGE}")


def test_help_option_before_a_command_runs_the_command(evl, env):
    """C's -h only sets the default command; the command named after it wins."""
    plugins = [plugin("evl_test_one", command())]
    r = evl("-h", "greet", "--name", "x", env=env, plugins=plugins, autoload=False)
    assert (r.code, r.out, r.err) == (0, "greetings, x from evl-greet\n", "")
    r = evl("--help", "help", env=env, autoload=False)
    assert (r.code, r.out, r.err) == (0, BUILTIN_LISTING, "")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-z"], "invalid option -- 'z'"),
        (["--bogus"], "unrecognized option '--bogus'"),
        (["-P"], "option requires an argument -- 'P'"),
        (["--prefix"], "option '--prefix' requires an argument"),
        (["--version=1"], "option '--version' doesn't allow an argument"),
    ],
)
def test_bad_global_option(evl, env, argv, message):
    r = evl(*argv, env=env)
    assert r.code == 2
    assert r.out == ""
    assert r.err == f"evl: {message}\n{USAGE}"


def test_version_acts_before_a_later_bad_option(evl, env):
    """-V exits as soon as it is parsed, as the C loop does (-h does not: see above)."""
    for argv in (["-Vz"], ["-V", "--bogus"], ["-V", "-P"], ["-hVx"]):
        r = evl(*argv, env=env)
        assert (r.code, r.out, r.err) == (0, VERSION, ""), argv


def test_bad_global_option_in_a_real_process(sh, env):
    r = sh("evl", "-z", "help", env=env)
    assert r.code == 2
    assert r.out == ""
    assert r.err == f"evl: invalid option -- 'z'\n{USAGE}"


def test_unknown_command(evl, env):
    r = evl("foo", env=env, autoload=False)
    assert (r.code, r.out, r.err) == (1, "", "evl: no 'foo' command. Try 'evl --help'.\n")


def test_unknown_command_in_a_real_process(sh, env, prefix):
    r = sh("evl", "-P", str(prefix), "foo", "-x", env=env)
    assert (r.code, r.out, r.err) == (1, "", "evl: no 'foo' command. Try 'evl --help'.\n")


def test_options_after_the_command_go_to_the_command(sh, env):
    r = sh("evl", "help", "--json", env=env)
    assert (r.code, r.err) == (0, "")
    rows = {row["name"]: row for row in json.loads(r.out)}
    assert rows["help"]["summary"] == "list the available commands"
    assert rows["net"] == {"name": "net", "summary": NET_SUMMARY, "origin": "plugin"}
    # -V after the command is the command's option, not the dispatcher's;
    # evl help ignores what it does not know, as the C evl-help script does
    r = sh("evl", "help", "-V", env=env)
    assert (r.code, r.err) == (0, "")
    assert r.out == sh("evl", "help", env=env).out
    assert VERSION not in r.out
    r = sh("evl", "help", "-h", env=env)
    assert r.code == 0
    assert r.out.startswith("usage: evl-help")


def test_help_json_in_process(evl, env):
    r = evl("help", "--json", env=env, autoload=False)
    assert r.code == 0
    assert [row["name"] for row in json.loads(r.out)] == ["help", "plugins"]


def test_help_listing_format(evl, env):
    """C's evl-help: a blank line, "available commands:", a blank line, then printf '%-12s %s\\n'."""
    r = evl("help", env=env, autoload=False)
    assert (r.code, r.out, r.err) == (0, BUILTIN_LISTING, "")


@pytest.mark.parametrize(
    "argv", [["extra", "words"], ["-V"], ["-x", "--bogus", "word"], ["--", "x"], ["-@", "x"]], ids=" ".join
)
def test_help_ignores_extra_arguments(evl, env, argv):
    """The C evl-help is a shell script that ignores its arguments."""
    r = evl("help", *argv, env=env, autoload=False)
    assert (r.code, r.out, r.err) == (0, BUILTIN_LISTING, "")


def test_help_ignores_extra_words_in_a_real_process(sh, env):
    r = sh("evl", "help", "extra", "words", env=env)
    assert (r.code, r.err) == (0, "")
    assert r.out == sh("evl", "help", env=env).out


@pytest.mark.parametrize(
    "argv", [["--json", "extra"], ["extra", "--json"], ["a", "--json", "b", "-z"], ["--js"]], ids=" ".join
)
def test_help_json_with_extra_words(evl, env, argv):
    r = evl("help", *argv, env=env, autoload=False)
    assert (r.code, r.err) == (0, "")
    assert [row["name"] for row in json.loads(r.out)] == ["help", "plugins"]


def test_help_describes_itself_and_keeps_its_own_help(evl, env):
    r = evl("help", "-@", env=env, autoload=False)
    assert (r.code, r.out, r.err) == (0, "list the available commands\n", "")
    r = evl("help", "--help", env=env, autoload=False)
    assert (r.code, r.err) == (0, "")
    assert r.out.startswith("usage: evl-help [-h] [--json] [--man COMMAND] [word ...]\n")


def test_python_dash_m(env, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "evl_core", "-V"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, VERSION, "")


def test_plugins_command(evl, env):
    r = evl("plugins", "--json", env=env, plugins=[plugin("evl_test_one", command())], autoload=False)
    assert r.code == 0, r.err
    rows = {row["name"]: row for row in json.loads(r.out)}
    assert rows["evl_core.builtins"]["origin"] == "evl_core.builtins (built-in)"
    assert rows["evl_test_one"]["hooks"] == ["evl_commands"]


# -- external commands -------------------------------------------------------------


def test_external_argv0_is_evl_dash_command(sh, env, prefix):
    """A symlink to the interpreter shows the real argv[0] (a #! script would see its path)."""
    os.symlink(os.path.realpath(sys.executable), prefix / "evl-argv0")
    r = sh("evl", "-P", str(prefix), "argv0", "-c", "import sys; print(sys.orig_argv[0])", env=env)
    assert (r.code, r.out, r.err) == (0, "evl-argv0\n", "")


def test_external_script_sees_itself_as_evl_dash_command(sh, env, prefix):
    external(prefix, "me", 'printf "%s\\n" "$0"')
    r = sh("evl", "-P", str(prefix), "me", env=env)
    assert r.code == 0, r.err
    # the kernel hands a #! interpreter the script's path in place of argv[0]
    assert os.path.basename(r.out.strip()) == "evl-me"


ODD_ARGS = ["-x", "--long=1", "--", "-@", "two words", "", "-", "a\\b", "$HOME", "*", "-P", "/elsewhere", "--help"]


def test_external_arguments_pass_through_verbatim(sh, env, prefix):
    external(prefix, "args", 'for a in "$@"; do printf "[%s]\\n" "$a"; done')
    r = sh("evl", "-P", str(prefix), "args", *ODD_ARGS, env=env)
    assert r.code == 0, r.err
    assert r.out.splitlines() == [f"[{a}]" for a in ODD_ARGS]


def test_double_dash_before_the_command(sh, env, prefix):
    external(prefix, "args", 'for a in "$@"; do printf "[%s]\\n" "$a"; done')
    r = sh("evl", "-P", str(prefix), "--", "args", "-x", env=env)
    assert (r.code, r.out) == (0, "[-x]\n")


ENV_SCRIPT = "\n".join(
    f'printf "{var}=%s\\n" "${var}"' for var in ("EVL_CMDDIR", "EVL_TESTDIR", "EVL_TRACEDIR", "EVL_SYSDIR", "PATH")
)


def env_of(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.splitlines())


def test_external_environment(sh, env, tmp_path):
    cwd = tmp_path.resolve()
    (cwd / "cmds").mkdir()
    external(cwd / "cmds", "env", ENV_SCRIPT)
    r = sh("evl", "-P", "cmds", "env", env=env, cwd=str(cwd))  # a relative prefix
    assert r.code == 0, r.err
    seen = env_of(r.out)
    assert seen["EVL_CMDDIR"] == str(cwd / "cmds")
    assert seen["EVL_SYSDIR"] == "/sys/devices/virtual"
    assert os.path.isabs(seen["EVL_TESTDIR"])
    assert os.path.isabs(seen["EVL_TRACEDIR"])
    assert seen["PATH"] == SYSTEM_PATH + os.pathsep + str(cwd / "cmds")


def test_external_environment_keeps_what_the_caller_set(sh, env, prefix):
    external(prefix, "env", ENV_SCRIPT)
    env = {
        **env,
        "EVL_SYSDIR": "/tmp/fake-sys",
        "EVL_TESTDIR": "/tmp/tests",
        "EVL_TRACEDIR": "/tmp/trace",
        "PATH": f"{prefix}:{SYSTEM_PATH}",
    }
    r = sh("evl", "-P", str(prefix), "env", env=env)
    assert r.code == 0, r.err
    seen = env_of(r.out)
    assert seen["EVL_SYSDIR"] == "/tmp/fake-sys"
    assert seen["EVL_TESTDIR"] == "/tmp/tests"
    assert seen["EVL_TRACEDIR"] == "/tmp/trace"
    # already on PATH: not added twice
    assert seen["PATH"] == f"{prefix}:{SYSTEM_PATH}"


def test_external_cmddir_is_overridden(sh, env, prefix):
    external(prefix, "env", ENV_SCRIPT)
    r = sh("evl", "-P", str(prefix), "env", env={**env, "EVL_CMDDIR": "/nowhere"})
    assert env_of(r.out)["EVL_CMDDIR"] == str(prefix)


def test_external_exit_status_propagates(sh, env, prefix):
    external(prefix, "seven", "echo out; echo err >&2; exit 7")
    r = sh("evl", "-P", str(prefix), "seven", env=env)
    assert (r.code, r.out, r.err) == (7, "out\n", "err\n")


def test_external_exit_status_in_process(evl, env, prefix, capfd):
    """In-process the dispatcher waits for the child instead of exec'ing it."""
    external(prefix, "seven", "exit 7")
    external(prefix, "term", "kill -TERM $$")
    assert evl("-P", str(prefix), "seven", env=env, autoload=False).code == 7
    assert evl("-P", str(prefix), "term", env=env, autoload=False).code == 128 + 15


def test_path_wins_over_the_command_directory(sh, env, tmp_path, prefix):
    on_path = tmp_path / "bin"
    on_path.mkdir()
    external(on_path, "which", "echo from-path")
    external(prefix, "which", "echo from-prefix")
    external(prefix, "only", "echo only-in-prefix")
    env = {**env, "PATH": f"{on_path}:{SYSTEM_PATH}"}
    assert sh("evl", "-P", str(prefix), "which", env=env).out == "from-path\n"
    assert sh("evl", "-P", str(prefix), "only", env=env).out == "only-in-prefix\n"


@pytest.mark.parametrize("form", ["-P {}", "-P{}", "--prefix={}", "--prefix {}", "--pre={}"])
def test_prefix_option_forms(sh, env, prefix, form):
    external(prefix, "hi", "echo hi")
    r = sh("evl", *form.format(prefix).split(" "), "hi", env=env)
    assert (r.code, r.out, r.err) == (0, "hi\n", "")


def test_last_prefix_wins(sh, env, tmp_path, prefix):
    external(prefix, "hi", "echo hi")
    r = sh("evl", "-P", str(tmp_path), "-P", str(prefix), "hi", env=env)
    assert (r.code, r.out) == (0, "hi\n")


def test_non_executable_file_is_not_a_command(evl, env, prefix):
    (prefix / "evl-plain").write_text("#!/bin/sh\necho plain\n")
    r = evl("-P", str(prefix), "plain", env=env, autoload=False)
    assert (r.code, r.err) == (1, "evl: no 'plain' command. Try 'evl --help'.\n")
    assert "plain" not in help_rows(evl("-P", str(prefix), "help", env=env, autoload=False).out)


def test_help_lists_externals_with_their_description(evl, env, prefix):
    external(prefix, "good", "exit 0", describe="a well-behaved external")
    external(prefix, "bad", "exit 3")  # fails -@
    external(prefix, "silent", "exit 0", describe="")
    r = evl("-P", str(prefix), "help", env=env, autoload=False)
    assert (r.code, r.err) == (0, "")
    lines = r.out.splitlines()
    assert f"{'good':<12} a well-behaved external" in lines
    assert f"{'bad':<12} " in lines
    assert f"{'help':<12} list the available commands" in lines
    names = list(help_rows(r.out))
    assert names == sorted(names)
    rows = {
        row["name"]: row for row in json.loads(evl("-P", str(prefix), "help", "--json", env=env, autoload=False).out)
    }
    assert rows["good"]["origin"] == str(prefix / "evl-good")
    assert rows["bad"]["summary"] == ""


def test_help_lists_externals_by_their_full_name(evl, env, prefix):
    """`evl-foo-bar` is listed as what runs it, `foo-bar` (the C script's `cut -f2` would say `foo`)."""
    external(prefix, "foo-bar", "echo ran foo-bar", describe="a hyphenated external")
    r = evl("-P", str(prefix), "help", env=env, autoload=False)
    assert (r.code, r.err) == (0, "")
    assert r.out == (
        "\navailable commands:\n\n"
        "foo-bar      a hyphenated external\n"
        "help         list the available commands\n"
        "plugins      list the loaded plugins and what they provide\n"
    )
    assert evl("-P", str(prefix), "foo-bar", env=env, autoload=False).code == 0


def test_help_lists_externals_in_a_real_process(sh, env, prefix):
    external(prefix, "good", "exit 0", describe="a well-behaved external")
    r = sh("evl", "-P", str(prefix), "help", env=env)
    assert r.code == 0
    assert f"{'good':<12} a well-behaved external" in r.out.splitlines()


def test_help_lists_the_first_external_on_the_search_path(evl, env, tmp_path, prefix):
    on_path = tmp_path / "bin"
    on_path.mkdir()
    external(on_path, "twin", "exit 0", describe="the one on PATH")
    external(prefix, "twin", "exit 0", describe="the one in the prefix")
    r = evl("-P", str(prefix), "help", env={**env, "PATH": f"{on_path}:{SYSTEM_PATH}"}, autoload=False)
    assert help_rows(r.out)["twin"] == "the one on PATH"


def test_plugin_command_wins_over_an_external(evl, env, prefix, capfd):
    external(prefix, "greet", "echo external; exit 42", describe="the external greet")
    plugins = [plugin("evl_test_one", command())]
    r = evl("-P", str(prefix), "greet", env=env, plugins=plugins, autoload=False)
    assert (r.code, r.out) == (0, "greetings, world from evl-greet\n")
    assert "external" not in capfd.readouterr().out
    r = evl("-P", str(prefix), "help", "--json", env=env, plugins=plugins, autoload=False)
    rows = {row["name"]: row for row in json.loads(r.out)}
    assert rows["greet"] == {"name": "greet", "summary": "the greet command", "origin": "plugin"}


def test_builtin_command_wins_over_an_external_in_a_real_process(sh, env, prefix):
    external(prefix, "help", "echo external help; exit 42")
    external(prefix, "net", "echo external net; exit 42")
    r = sh("evl", "-P", str(prefix), "help", env=env)
    assert r.code == 0
    assert "available commands" in r.out and "external" not in r.out
    r = sh("evl", "-P", str(prefix), "net", "-@", env=env)
    assert (r.code, r.out) == (0, NET_SUMMARY + "\n")


# -- plugin commands, in process -------------------------------------------------


def test_plugin_command_is_listed_and_runs(evl, env):
    plugins = [plugin("evl_test_one", command(summary="greet someone"))]
    r = evl("help", env=env, plugins=plugins, autoload=False)
    assert (r.code, r.err) == (0, "")
    assert f"{'greet':<12} greet someone" in r.out.splitlines()
    r = evl("greet", "--name", "x", env=env, plugins=plugins, autoload=False)
    assert (r.code, r.out, r.err) == (0, "greetings, x from evl-greet\n", "")


def test_plugin_command_describes_itself(evl, env):
    plugins = [plugin("evl_test_one", command(summary="greet someone"))]
    r = evl("greet", "-@", env=env, plugins=plugins, autoload=False)
    assert (r.code, r.out, r.err) == (0, "greet someone\n", "")


def test_plugin_command_may_be_named_by_reference(evl, env):
    """Handlers and parsers named "module:attr" are resolved when the command runs."""
    cmd = Command(
        name="ref", summary="by reference", parser="argparse:ArgumentParser", handler=f"{__name__}:_ref_handler"
    )
    r = evl("ref", env=env, plugins=[plugin("evl_test_ref", cmd)], autoload=False)
    assert (r.code, r.out) == (0, "resolved\n")


def _ref_handler(args, ctx) -> int:
    ctx.stdout.write("resolved\n")
    return 0


def test_raw_args_command_gets_its_arguments_verbatim(evl, env):
    seen = []

    def handler(argv, ctx):
        seen.append(list(argv))
        return 3

    plugins = [plugin("evl_test_raw", command("raw", handler=handler, raw_args=True))]
    r = evl("raw", *ODD_ARGS, env=env, plugins=plugins, autoload=False)
    assert r.code == 3
    assert seen == [ODD_ARGS]


def test_handler_returning_none_is_success(evl, env):
    plugins = [plugin("evl_test_none", command("none", handler=lambda args, ctx: None))]
    assert evl("none", env=env, plugins=plugins, autoload=False).code == 0


def test_raising_hook_costs_one_warning(evl, env):
    plugins = [plugin("evl_test_bad", raises=RuntimeError("no list today")), plugin("evl_test_one", command())]
    r = evl("greet", env=env, plugins=plugins, autoload=False)
    assert (r.code, r.out) == (0, "greetings, world from evl-greet\n")
    lines = r.err.splitlines()
    assert len(lines) == 1, r.err
    assert lines[0].startswith("evl: warning: ")
    assert "evl_test_bad" in lines[0] and "no list today" in lines[0]
    r = evl("help", env=env, plugins=plugins, autoload=False)
    assert r.code == 0
    assert len(r.err.splitlines()) == 1
    assert {"greet", "help", "plugins"} <= set(help_rows(r.out))


def badargs_plugin() -> types.ModuleType:
    """A hookimpl that does not match its spec: pluggy refuses it at register time."""
    bad = types.ModuleType("evl_test_badargs")

    @hookimpl
    def evl_commands(verbose):  # the spec takes no argument
        return [command("never")]

    bad.evl_commands = evl_commands
    return bad


def test_unregistrable_plugin_costs_only_itself(evl, env):
    plugins = [badargs_plugin(), plugin("evl_test_one", command())]
    r = evl("greet", env=env, plugins=plugins, autoload=False)
    assert (r.code, r.out) == (0, "greetings, world from evl-greet\n")
    assert r.err.startswith("evl: warning: plugin 'evl_test_badargs' cannot be registered: ")
    r = evl("help", "--json", env=env, plugins=plugins, autoload=False)
    assert "never" not in [row["name"] for row in json.loads(r.out)]
    r = evl("plugins", "--json", env=env, plugins=plugins, autoload=False)
    assert "evl_test_badargs" not in [row["name"] for row in json.loads(r.out)]


def test_unregistrable_plugin_costs_one_warning_line(evl, env):
    r = evl("greet", env=env, plugins=[badargs_plugin(), plugin("evl_test_one", command())], autoload=False)
    assert len(r.err.splitlines()) == 1, r.err


def test_two_plugins_claiming_one_name(evl, env):
    plugins = [
        plugin("evl_test_one", command()),
        plugin("evl_test_two", command()),
        plugin("evl_test_other", command("other")),
    ]
    r = evl("greet", env=env, plugins=plugins, autoload=False)
    assert (r.code, r.out) == (1, "")
    assert r.err == "evl: command 'greet' is claimed by several plugins: evl_test_one and evl_test_two\n"
    # the others still work, and help tells what happened
    assert evl("other", env=env, plugins=plugins, autoload=False).code == 0
    r = evl("help", env=env, plugins=plugins, autoload=False)
    assert r.code == 0
    assert help_rows(r.out)["greet"] == "(unavailable: claimed by evl_test_one and evl_test_two)"


def test_three_plugins_claiming_one_name(evl, env):
    plugins = [plugin(f"evl_test_{n}", command()) for n in ("one", "two", "three")]
    r = evl("greet", env=env, plugins=plugins, autoload=False)
    assert r.code == 1
    assert "evl_test_one and evl_test_two and evl_test_three" in r.err


def test_conflict_beats_an_external(evl, env, prefix, capfd):
    external(prefix, "greet", "echo external; exit 42")
    plugins = [plugin("evl_test_one", command()), plugin("evl_test_two", command())]
    r = evl("-P", str(prefix), "greet", env=env, plugins=plugins, autoload=False)
    assert r.code == 1
    assert "claimed by several plugins" in r.err
    assert "external" not in capfd.readouterr().out


def test_evl_error_with_errno(evl, env):
    plugins = [plugin("evl_test_one", command(handler=raising(EvlError("cannot greet", errno.EPERM))))]
    r = evl("greet", env=env, plugins=plugins, autoload=False)
    assert (r.code, r.out) == (1, "")
    assert r.err == "evl-greet: cannot greet: Operation not permitted\n"


def test_evl_error_without_errno_and_exit_code(evl, env):
    plugins = [plugin("evl_test_one", command(handler=raising(EvlError("bad board file", exit_code=4))))]
    r = evl("greet", env=env, plugins=plugins, autoload=False)
    assert (r.code, r.err) == (4, "evl-greet: bad board file\n")


def test_evl_error_with_debug_adds_the_traceback(evl, env):
    plugins = [plugin("evl_test_one", command(handler=raising(EvlError("cannot greet", errno.ENODEV))))]
    r = evl("greet", env={**env, "EVL_DEBUG": "1"}, plugins=plugins, autoload=False)
    assert r.code == 1
    assert "Traceback (most recent call last)" in r.err
    assert r.err.splitlines()[-1] == "evl-greet: cannot greet: No such device"


def test_unexpected_exception_is_one_line(evl, env):
    plugins = [plugin("evl_test_one", command(handler=raising(ValueError("boom"))))]
    r = evl("greet", env=env, plugins=plugins, autoload=False)
    assert (r.code, r.out) == (1, "")
    assert len(r.err.splitlines()) == 1, r.err
    assert r.err.startswith("evl-greet: internal error: ValueError: boom")
    assert "EVL_DEBUG=1" in r.err
    assert "Traceback" not in r.err


def test_unexpected_exception_with_debug_has_a_traceback(evl, env):
    plugins = [plugin("evl_test_one", command(handler=raising(ValueError("boom"))))]
    r = evl("greet", env={**env, "EVL_DEBUG": "1"}, plugins=plugins, autoload=False)
    assert r.code == 1
    assert "Traceback (most recent call last)" in r.err
    assert "raise exc" in r.err
    assert r.err.splitlines()[-1] == "evl-greet: internal error: ValueError: boom"


def test_unresolvable_handler_is_an_internal_error(evl, env):
    cmd = Command(name="lost", summary="s", parser=simple_parser, handler="evl_no_such_module:run")
    r = evl("lost", env=env, plugins=[plugin("evl_test_lost", cmd)], autoload=False)
    assert r.code == 1
    assert r.err.startswith("evl-lost: internal error: ModuleNotFoundError")
    # listing it never touched the handler
    assert evl("help", env=env, plugins=[plugin("evl_test_lost", cmd)], autoload=False).code == 0


def test_keyboard_interrupt(evl, env):
    plugins = [plugin("evl_test_one", command(handler=raising(KeyboardInterrupt())))]
    r = evl("greet", env=env, plugins=plugins, autoload=False)
    assert (r.code, r.err) == (130, "evl-greet: interrupted\n")


def test_broken_pipe(evl, env, capsys):
    # capsys: sys.stdout has no file descriptor, so the dispatcher's dup2 onto it is a no-op here
    plugins = [plugin("evl_test_one", command(handler=raising(BrokenPipeError())))]
    r = evl("greet", env=env, plugins=plugins, autoload=False)
    assert (r.code, r.err) == (141, "")


def test_argparse_usage_error_exit_status(evl, env, capsys):
    plugins = [plugin("evl_test_one", command())]
    r = evl("greet", "--bogus", env=env, plugins=plugins, autoload=False)
    assert r.code == 2
    r = evl("greet", "-h", env=env, plugins=plugins, autoload=False)
    assert r.code == 0


def test_argparse_output_goes_to_the_given_streams(evl, env, capsys):
    plugins = [plugin("evl_test_one", command())]
    r = evl("greet", "--bogus", env=env, plugins=plugins, autoload=False)
    assert "usage: evl-greet" in r.err
    r = evl("greet", "-h", env=env, plugins=plugins, autoload=False)
    assert "usage: evl-greet" in r.out


@pytest.mark.parametrize("bad_name", ["Greet", "", "a/b", "-x", " greet", "greet "])
def test_invalid_command_names_are_ignored_with_a_warning(evl, env, bad_name):
    plugins = [plugin("evl_test_names", command(bad_name), command("fine"))]
    r = evl("help", "--json", env=env, plugins=plugins, autoload=False)
    assert r.code == 0
    names = [row["name"] for row in json.loads(r.out)]
    assert "fine" in names and bad_name not in names
    lines = r.err.splitlines()
    assert len(lines) == 1, r.err
    assert lines[0].startswith("evl: warning: plugin evl_test_names: ignored a command with an invalid name")
    assert repr(bad_name) in lines[0]


def test_records_that_are_not_commands_are_ignored_with_a_warning(evl, env):
    plugins = [plugin("evl_test_records", {"name": "dict"}, "string", command("fine"))]
    r = evl("fine", env=env, plugins=plugins, autoload=False)
    assert r.code == 0
    lines = r.err.splitlines()
    assert len(lines) == 2, r.err
    assert "of type dict" in lines[0] and "of type str" in lines[1]


def test_autoload_loads_the_net_plugin(evl, env):
    r = evl("net", "-@", env=env)
    assert (r.code, r.out) == (0, NET_SUMMARY + "\n")
    r = evl("net", "-@", env=env, autoload=False)
    assert r.code == 1


def test_autoload_env_in_a_real_process(sh, env):
    r = sh("evl", "help", "--json", env={**env, "EVL_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert r.code == 0
    assert [row["name"] for row in json.loads(r.out)] == ["help", "plugins"]


def test_autoload_env_in_process(evl, env):
    r = evl("help", "--json", env={**env, "EVL_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert [row["name"] for row in json.loads(r.out)] == ["help", "plugins"]


# -- lazy imports ----------------------------------------------------------------

#: Runs the installed evl script and writes the modules it imported to $EVL_TEST_MODULES.
WRAPPER = """\
import atexit, json, os, runpy, sys
def _dump():
    with open(os.environ["EVL_TEST_MODULES"], "w") as f:
        json.dump(sorted(sys.modules), f)
atexit.register(_dump)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""

HEAVY = ("pyroute2", "tabulate", "evl_net.transports")
LAZY_CASES = [["--help"], ["help"], ["net", "-@"], ["net", "-h"]]


def imported_by(argv: list[str], env: dict[str, str], tmp_path: Path) -> tuple[set[str], set[str]]:
    """(modules in sys.modules at exit, modules -X importtime reported) of a real `evl` run.

    Both: -X importtime does not report modules loaded by importlib.import_module
    (the lazy references, entry points), and sys.modules misses nothing.
    """
    evl = Path(sys.executable).parent / "evl"
    dump = tmp_path / "modules.json"
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", WRAPPER, str(evl), *argv],
        env={**env, "EVL_TEST_MODULES": str(dump)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    timed = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    return set(json.loads(dump.read_text())), timed


def _under(modules: set[str], package: str) -> list[str]:
    return sorted(m for m in modules if m == package or m.startswith(package + "."))


@pytest.mark.parametrize("argv", LAZY_CASES, ids=" ".join)
def test_heavy_modules_are_not_imported(env, tmp_path, argv):
    modules, timed = imported_by(argv, env, tmp_path)
    assert "evl_core.cli" in modules and "evl_core.cli" in timed  # the probe works
    for package in HEAVY:
        assert not _under(modules, package), f"evl {' '.join(argv)} imported {_under(modules, package)}"
        assert not _under(timed, package)


@pytest.mark.parametrize("argv", LAZY_CASES, ids=" ".join)
def test_net_handler_is_not_imported(env, tmp_path, argv):
    modules, _timed = imported_by(argv, env, tmp_path)
    assert "evl_net.cli.main" not in modules


def test_help_option_imports_what_evl_help_imports(env, tmp_path):
    """`evl --help` lists the commands as `evl help` does, and imports nothing more."""
    imported_by(["help"], env, tmp_path)  # the registry cache written: both runs below read it
    help_option, _timed = imported_by(["--help"], env, tmp_path)
    help_command, _timed = imported_by(["help"], env, tmp_path)
    assert help_option - help_command == set()


def test_version_imports_no_plugin(env, tmp_path):
    modules, _timed = imported_by(["--version"], env, tmp_path)
    assert not _under(modules, "evl_net")
    assert "pluggy" not in modules


#: WRAPPER without what it imports itself (runpy and json bring typing, re and enum): exec of the script's code.
LEAN_WRAPPER = """\
import atexit, os, sys
def _dump():
    with open(os.environ["EVL_TEST_MODULES"], "w") as f:
        f.write(" ".join(sorted(sys.modules)))
atexit.register(_dump)
sys.argv = sys.argv[1:]
sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[0]))
with open(sys.argv[0]) as f:
    code = compile(f.read(), sys.argv[0], "exec")
try:
    exec(code, {"__name__": "__main__", "__file__": sys.argv[0]})
except SystemExit as exc:
    if exc.code:
        raise
"""

#: What a command answered from the registry cache never imports: pluggy and the costly standard modules.
NOT_ON_THE_HOT_PATH = ("pluggy", "typing", "dataclasses", "inspect", "importlib.metadata", "tabulate", "evl_net.plugin")


@pytest.mark.parametrize(
    "argv", [["net", "-QoRTf", "-i", "eth0.42"], ["net", "-Q", "-i", "eth0"], ["--version"], ["help"]], ids=" ".join
)
def test_a_cached_run_imports_no_plugin_machinery(env, tmp_path, argv):
    """As a non-editable install runs: python -S, the sources and site-packages on PYTHONPATH.

    (An editable install's finder, which site runs first, imports typing itself.)
    """
    import site
    import sysconfig

    root = Path(__file__).resolve().parent.parent
    path = [str(root), str(root / "plugins" / "net"), sysconfig.get_paths()["purelib"], *site.getsitepackages()]
    plain = {**env, "PYTHONPATH": os.pathsep.join(dict.fromkeys(path))}

    def imported(*script: str) -> set[str]:
        dump = tmp_path / "modules.txt"
        run = [sys.executable, "-S", "-c", LEAN_WRAPPER, *script]
        proc = subprocess.run(run, env={**plain, "EVL_TEST_MODULES": str(dump)}, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        return set(dump.read_text().split())

    evl = str(Path(sys.executable).parent / "evl")
    first = imported(evl, *argv)
    assert "pluggy" in first or argv == ["--version"]  # no cache yet: loaded through pluggy
    modules = imported(evl, *argv)
    assert "evl_core.cli" in modules  # the probe works
    assert "evl_core.regcache" in modules or argv == ["--version"]
    empty = tmp_path / "empty.py"
    empty.write_text("")
    ours = modules - imported(str(empty))
    for package in NOT_ON_THE_HOT_PATH:
        assert not _under(ours, package), f"evl {' '.join(argv)} imported {_under(ours, package)}"


def test_builtin_commands_cannot_be_taken_over(evl, env):
    r = evl("help", env=env, plugins=[plugin("evl_test_help", command("help"))], autoload=False)
    assert r.code == 0 and "available commands:" in r.out
    assert r.err == "evl: warning: plugin evl_test_help: command 'help' is built in; ignored\n"


def test_a_misspelt_hook_drops_its_plugin_with_one_warning(evl, env):
    typo = types.ModuleType("evl_test_typo")

    @hookimpl
    def evl_comands():  # sic
        return [command("typo")]

    typo.evl_comands = evl_comands
    r = evl("greet", env=env, plugins=[typo, plugin("evl_test_one", command())], autoload=False)
    assert r.code == 0
    assert r.err.startswith("evl: warning: plugin evl_test_typo ignored: ") and r.err.count("\n") == 1
    assert "evl_comands" in r.err
