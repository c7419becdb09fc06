"""Shell completion: the committed scripts are what the option tables generate, and they complete.

bash is driven two ways: by setting COMP_WORDS/COMP_CWORD (as bash would split
the line) and calling the completion function, and through real readline in a
pseudo-terminal.  zsh is driven through its line editor in a pseudo-terminal,
fish with ``complete -C``.  None of it needs the bash-completion package; zsh
and fish tests are skipped when the shell is not installed (Debian: zsh, fish).
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import script

ROOT = Path(__file__).resolve().parent.parent
COMPLETIONS = ROOT / "completions"
GENERATOR = ROOT / "scripts" / "gen_completions.py"
BASH_SCRIPT = COMPLETIONS / "evl.bash"
#: The interfaces of the simulator's default board.
SIM_INTERFACES = ["eth0", "eth0.42", "eth1", "eth1.42", "eth2", "lo"]
TRANSPORTS = ["auto", "ioctl", "remote", "sim"]
#: Where each committed file is installed, under the prefix (pyproject.toml's data-files).
INSTALLED = {
    "share/bash-completion/completions": ["completions/bash-completion/evl", "completions/bash-completion/evl-net"],
    "share/zsh/site-functions": ["completions/_evl"],
    "share/fish/vendor_completions.d": ["completions/evl.fish", "completions/evl-net.fish"],
}


def committed() -> list[str]:
    return sorted(str(p.relative_to(COMPLETIONS)) for p in COMPLETIONS.rglob("*") if p.is_file())


def sim_subcommands() -> list[str]:
    import argparse

    from evl_net.cli.sim import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(sub.choices)


def sys_interfaces() -> list[str]:
    return sorted(os.listdir("/sys/class/net"))


# -- the committed files --------------------------------------------------------


def test_scripts_are_fresh(tmp_path):
    proc = subprocess.run([sys.executable, str(GENERATOR), "--outdir", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    generated = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert generated == committed(), "completions/ and the generated set differ"
    for name in generated:
        assert (tmp_path / name).read_text() == (COMPLETIONS / name).read_text(), (
            f"completions/{name} is stale: run python scripts/gen_completions.py"
        )


def test_check_mode_reports_a_stale_script(tmp_path):
    shutil.copytree(COMPLETIONS, tmp_path, dirs_exist_ok=True)
    fish = tmp_path / "evl.fish"
    fish.write_text(fish.read_text().replace("--transport", "--transprot"))
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), "--check", "--outdir", str(tmp_path)], capture_output=True, text=True
    )
    assert proc.returncode == 1 and "evl.fish" in proc.stderr
    assert "--transprot" in fish.read_text(), "--check must not rewrite"


def test_bash_completion_copies_are_the_bash_script():
    for name in ("evl", "evl-net"):
        assert (COMPLETIONS / "bash-completion" / name).read_text() == BASH_SCRIPT.read_text()


def test_every_script_is_shipped_as_data_file():
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    for directory, files in INSTALLED.items():
        assert sorted(data[directory]) == sorted(files), directory
    shipped = sorted(f for d in INSTALLED for f in data[d])
    assert shipped == sorted(f"completions/{n}" for n in committed() if n != "evl.bash")


def test_scripts_come_from_the_tables():
    """What the generator read is what the parsers use (a smoke test of the model, not of a shell)."""
    from evl_net.cli import completion, options
    from evl_net.plugin import builtin_actions, evl_net_formatters

    m = completion.model()
    assert m.net.shortopts == options.shortopts(builtin_actions())
    assert [o.name for o in m.net.longopts] == [o.name for o in options.longopts(builtin_actions())]
    fmt = next(o for o in m.net.options if o.long == "format").value
    assert [w for w, _d in fmt.words] == [f.name for f in evl_net_formatters()] + ["list"]
    assert sorted(m.parsers["sim"].subcommands) == sim_subcommands()
    assert {"help", "plugins", "net", "sim", "net-agent", "net-config", "net-exporter"} <= {n for n, _s in m.commands}


def test_abbreviation_table_is_getopts():
    """The shell's two-step lookup (exact names, then shortest abbreviation) resolves as Getopt does."""
    from evl_core.getopt import Getopt, GetoptError
    from evl_net.cli import completion

    m = completion.model()
    for surface in (m.dispatcher, m.net):
        table = surface.abbreviations()
        names = [name for name, *_rest in table]
        for name, _shortest, _kind, _key in table:
            for n in range(1, len(name) + 1):
                prefix = name[:n]
                exact = [k for nm, _s, _h, k in table if nm == prefix]
                ranged = [k for nm, s, _h, k in table if nm.startswith(prefix) and len(prefix) >= len(s)]
                shell = exact[0] if exact else (ranged[0] if ranged else None)
                try:
                    real = next(iter(Getopt(["--" + prefix, "x"], "", surface.longopts)))[0]
                except GetoptError:
                    real = None
                assert shell == real, (prefix, names)


# -- bash, function by function -------------------------------------------------


def bash_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No bash-completion, no evl-* on PATH (but the tests' own), no EVL_* settings."""
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "LC_ALL": "C.UTF-8"}
    env.update(extra)
    (tmp_path / "bin").mkdir(exist_ok=True)
    return env


def complete_bash(
    words: list[str], env: dict[str, str], function: str = "_evl", prelude: str = "", cwd: Path | None = None
) -> list[str]:
    """COMPREPLY after calling ``function`` with COMP_WORDS=words (the last one being completed)."""
    program = textwrap.dedent(f"""\
        {prelude}
        source {BASH_SCRIPT}
        if declare -F _init_completion _get_comp_words_by_ref _filedir >/dev/null; then
            echo 'bash-completion is loaded: this test must run without it' >&2; exit 3
        fi
        COMP_WORDS=("$@")
        COMP_CWORD=$(( $# - 1 ))
        COMP_LINE="$*"
        COMP_POINT=${{#COMP_LINE}}
        COMPREPLY=()
        {function}
        printf '%s\\0' "${{COMPREPLY[@]}}"
        """)
    proc = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program, "bash", *words],
        env=env,
        cwd=cwd or env["HOME"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "compopt" not in proc.stderr and proc.stderr == "", proc.stderr
    return [w for w in proc.stdout.split("\0") if w]


def test_bash_script_needs_no_bash_completion_helper():
    text = BASH_SCRIPT.read_text()
    for helper in (
        "_init_completion",
        "_get_comp_words_by_ref",
        "_filedir",
        "__ltrim_colon_completions",
        "_count_args",
        "_known_hosts",
    ):
        assert helper not in text, helper


def test_bash_commands(tmp_path):
    env = bash_env(tmp_path)
    assert complete_bash(["evl", "n"], env) == ["net", "net-agent", "net-config", "net-exporter"]
    assert {"help", "plugins", "net", "sim", "net-agent", "net-config", "net-exporter"} <= set(
        complete_bash(["evl", ""], env)
    )
    assert complete_bash(["evl", "-P", "/tmp", "s"], env) == ["sim"]
    assert complete_bash(["evl", "--", "pl"], env) == ["plugins"]


def test_bash_external_commands_on_path_and_in_the_command_directory(tmp_path):
    env = bash_env(tmp_path)
    cmddir = tmp_path / "libexec"
    cmddir.mkdir()
    for path in (tmp_path / "bin" / "evl-foo", cmddir / "evl-fob", tmp_path / "bin" / "evl-notexec"):
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755 if "notexec" not in path.name else 0o644)
    assert complete_bash(["evl", "fo"], env) == ["foo"]
    assert complete_bash(["evl", "-P", str(cmddir), "fo"], env) == ["foo", "fob"]
    assert complete_bash(["evl", "no"], env) == []


def test_bash_dispatcher_options(tmp_path):
    env = bash_env(tmp_path)
    assert complete_bash(["evl", "--pr"], env) == ["--prefix="]
    assert set(complete_bash(["evl", "-"], env)) == {"-P", "-V", "-v", "-h", "--prefix=", "--version", "--help"}


def test_bash_long_option_needing_an_argument_gets_an_equals_sign(tmp_path):
    env = bash_env(tmp_path)
    assert complete_bash(["evl", "net", "--tr"], env) == ["--transport="]
    assert complete_bash(["evl", "net", "--fo"], env) == ["--format="]
    assert sorted(complete_bash(["evl", "net", "--al"], env)) == ["--all-interfaces", "--allow-gateway"]


def test_bash_transport_names(tmp_path):
    env = bash_env(tmp_path)
    # `evl net --transport=<TAB>`: bash splits the word at "=" (COMP_WORDBREAKS).
    assert sorted(complete_bash(["evl", "net", "--transport", "="], env)) == TRANSPORTS
    assert complete_bash(["evl", "net", "--transport", "=", "s"], env) == ["sim"]
    assert complete_bash(["evl", "net", "--tr", "=", "io"], env) == ["ioctl"]  # getopt's abbreviation
    assert sorted(complete_bash(["evl", "net", "--transport", ""], env)) == TRANSPORTS
    # Without "=" in COMP_WORDBREAKS the whole word is replaced.
    nobreak = "COMP_WORDBREAKS=$' \\t\\n\"\\'><;|&('"
    assert sorted(complete_bash(["evl", "net", "--transport="], env, prelude=nobreak)) == [
        f"--transport={t}" for t in TRANSPORTS
    ]


def test_bash_formatter_names(tmp_path):
    from evl_net.plugin import evl_net_formatters

    env = bash_env(tmp_path)
    names = sorted([f.name for f in evl_net_formatters()] + ["list"])
    assert sorted(complete_bash(["evl", "net", "--format", "="], env)) == names
    assert sorted(complete_bash(["evl-net", "--format", "="], env, function="_evl_net_script")) == names


def test_bash_board_and_hosts_complete_files(tmp_path):
    env = bash_env(tmp_path)
    (tmp_path / "lab.toml").write_text("")
    (tmp_path / "labdir").mkdir()
    assert complete_bash(["evl", "net", "--board", "=", "la"], env) == ["lab.toml", "labdir"]
    assert complete_bash(["evl", "net", "--hosts", "la"], env) == ["lab.toml", "labdir"]


def test_bash_optional_arguments_take_no_separate_word(tmp_path):
    """-Q, -F, -N: their argument must be glued, so the next word is an option again."""
    env = bash_env(tmp_path)
    (tmp_path / "netrx.o").write_text("")
    all_options = set(complete_bash(["evl", "net", ""], env))
    assert "--interface=" in all_options and "-Q" in all_options
    for letter in "QFN":
        assert set(complete_bash(["evl", "net", f"-{letter}", ""], env)) == all_options, letter
        assert complete_bash(["evl", "net", f"-{letter}"], env) == [f"-{letter}"]
    for long in ("query-port", "filter", "set-vlan-ids"):
        assert set(complete_bash(["evl", "net", f"--{long}", ""], env)) == all_options, long
    # A glued eBPF object completes as one word.
    assert complete_bash(["evl", "net", "-Fnet"], env) == ["-Fnetrx.o"]


def test_bash_interfaces_come_from_the_board(tmp_path, sim_env):
    """`evl net -i <TAB>` runs `evl net -Q --all-interfaces --format=names` on the simulator."""
    evl = script("evl")
    env = bash_env(
        tmp_path,
        EVL_NET_TRANSPORT="sim",
        EVL_SIM_STATE=sim_env["EVL_SIM_STATE"],
        XDG_STATE_HOME=sim_env["XDG_STATE_HOME"],
    )
    probe = subprocess.run(
        [evl, "net", "-Q", "--all-interfaces", "--format=names"], env=env, capture_output=True, text=True, timeout=60
    )
    assert probe.returncode == 0, f"the 'names' formatter is needed: {probe.stderr}"
    assert sorted(complete_bash([evl, "net", "-i", ""], env)) == SIM_INTERFACES
    assert complete_bash([evl, "net", "-i", "eth0."], env) == ["eth0.42"]
    assert complete_bash([evl, "net", "-ie"], env) == [f"-i{n}" for n in SIM_INTERFACES if n.startswith("e")]
    assert complete_bash([evl, "net", "--interface", "=", "eth1"], env) == ["eth1", "eth1.42"]
    evl_net = script("evl-net")
    assert sorted(complete_bash([evl_net, "-i", ""], env, function="_evl_net_script")) == SIM_INTERFACES


FAKE_EVL = """#!/bin/sh
printf '%s\\n' "$*" >> "$0.calls"
{body}
"""


def fake_evl(tmp_path: Path, body: str) -> Path:
    fake = tmp_path / "bin" / "evl"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text(FAKE_EVL.format(body=body))
    fake.chmod(0o755)
    return fake


def test_bash_interfaces_pass_on_the_options_choosing_the_board(tmp_path):
    env = bash_env(tmp_path)
    fake = fake_evl(tmp_path, "printf 'b0\\nb1\\n'")
    words = [str(fake), "net", "--transport=remote", "--board", "x.toml", "--rem=pi@board", "-e", "-i", ""]
    assert complete_bash(words, env) == ["b0", "b1"]
    assert Path(f"{fake}.calls").read_text() == (
        "net --transport=remote --board=x.toml --remote=pi@board -Q --all-interfaces --format=names\n"
    )


def test_bash_interfaces_fall_back_to_sysfs(tmp_path):
    """When the board cannot be asked (no names formatter, no board), /sys/class/net answers."""
    env = bash_env(tmp_path)
    fake = fake_evl(tmp_path, "echo 'evl-net: unknown formatter' >&2; exit 1")
    assert sorted(complete_bash([str(fake), "net", "-i", ""], env)) == sys_interfaces()
    fake = fake_evl(tmp_path, "exit 0")  # nothing printed: no better than failing
    assert sorted(complete_bash([str(fake), "net", "-i", ""], env)) == sys_interfaces()


def test_bash_sim_subcommands_and_arguments(tmp_path):
    env = bash_env(tmp_path)
    fake = fake_evl(tmp_path, "printf 'lo\\neth0\\n'")
    assert sorted(complete_bash(["evl", "sim", ""], env)) == sim_subcommands()
    assert complete_bash(["evl", "sim", "--json", "r"], env) == ["reset", "rx"]
    assert complete_bash(["evl", "sim", "rx", "eth0", "--proto", "i"], env) == ["icmp", "ipv6"]
    assert complete_bash(["evl", "sim", "link", "eth0", ""], env) == ["up", "down"]
    # The interfaces of `evl sim` are the simulator's, of the board given to evl sim.
    Path(f"{fake}.calls").unlink(missing_ok=True)
    assert complete_bash([str(fake), "sim", "--board", "b.toml", "rx", ""], env) == ["lo", "eth0"]
    assert Path(f"{fake}.calls").read_text() == (
        "net --transport=sim --board=b.toml -Q --all-interfaces --format=names\n"
    )


def test_bash_other_commands(tmp_path):
    env = bash_env(tmp_path)
    assert complete_bash(["evl", "help", "--j"], env) == ["--json"]
    assert complete_bash(["evl", "net-agent", "--log", "s"], env) == ["syslog", "stderr"]
    assert complete_bash(["evl", "plugins", "--"], env) == ["--help", "--json"]


def test_bash_evl_net_script(tmp_path):
    env = bash_env(tmp_path)
    assert complete_bash(["evl-net", "--tr"], env, function="_evl_net_script") == ["--transport="]
    assert complete_bash(["evl-net", "-s", "b"], env, function="_evl_net_script") == ["broadcast"]


def test_bash_survives_strict_shell_options(tmp_path):
    env = bash_env(tmp_path)
    strict = "set -u; shopt -s failglob nullglob extglob"
    assert complete_bash(["evl", "n"], env, prelude=strict) == ["net", "net-agent", "net-config", "net-exporter"]
    assert complete_bash(["evl", "net", "-i", ""], env, prelude=strict)  # /sys/class/net or a board
    assert sorted(complete_bash(["evl", "net", "--transport", "="], env, prelude=strict)) == TRANSPORTS


# -- interactive shells in a pseudo-terminal -------------------------------------


def interactive(
    argv: list[str], setup: list[str], typed: str, dump: Path, env: dict[str, str], timeout: float = 30
) -> str:
    """Type ``typed`` into an interactive shell, then C-x C-p, bound in ``setup`` to write the line to ``dump``.

    Line editors read keys in order, so the completion is over before the dump key is read.
    """
    try:
        pid, fd = pty.fork()
    except OSError as exc:
        pytest.skip(f"no pseudo-terminal here: {exc}")
    if pid == 0:  # pragma: no cover - the child
        os.chdir(env["HOME"])
        os.execvpe(argv[0], argv, env)
    try:
        os.write(fd, "".join(line + "\n" for line in setup).encode())
        os.write(fd, typed.encode() + b"\x18\x10")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if dump.exists() and dump.stat().st_size:
                time.sleep(0.05)
                return dump.read_text()
            if select.select([fd], [], [], 0.05)[0]:
                try:
                    os.read(fd, 65536)
                except OSError:
                    break
        pytest.fail(f"{argv[0]} did not answer for {typed!r}")
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(fd)


def test_bash_readline(tmp_path, sim_env):
    """The real thing: readline splits the line, calls the function and inserts the reply."""
    env = bash_env(
        tmp_path,
        TERM="dumb",
        PS1="$ ",
        EVL_NET_TRANSPORT="sim",
        EVL_SIM_STATE=sim_env["EVL_SIM_STATE"],
        XDG_STATE_HOME=sim_env["XDG_STATE_HOME"],
    )
    env["PATH"] = f"{Path(script('evl')).parent}:{env['PATH']}"
    cases = {
        "evl net --tr\t": "evl net --transport=",
        "evl net --transport=io\t": "evl net --transport=ioctl ",
        "evl net --fo=nam\t": "evl net --fo=names ",
        "evl sim li\t": "evl sim link ",
        "evl net -i eth0.\t": "evl net -i eth0.42 ",
        "evl net -Q --all-i\t": "evl net -Q --all-interfaces ",
    }
    for i, (typed, line) in enumerate(cases.items()):
        dump = tmp_path / f"line{i}"
        setup = [f"source {BASH_SCRIPT}", f'bind -x \'"\\C-x\\C-p": printf %s "$READLINE_LINE" > {dump}\'']
        assert interactive(["bash", "--norc", "--noprofile", "-i"], setup, typed, dump, env) == line, typed


ZSH = shutil.which("zsh")
FISH = shutil.which("fish")
needs_zsh = pytest.mark.skipif(ZSH is None, reason="zsh is not installed (Debian package: zsh)")
needs_fish = pytest.mark.skipif(FISH is None, reason="fish is not installed (Debian package: fish)")


@needs_zsh
def test_zsh_script_parses():
    proc = subprocess.run([ZSH, "-n", str(COMPLETIONS / "_evl")], capture_output=True, text=True)
    assert (proc.returncode, proc.stderr) == (0, "")


@needs_zsh
def test_zsh_completes(tmp_path, sim_env):
    env = bash_env(
        tmp_path,
        TERM="dumb",
        PS1="$ ",
        EVL_NET_TRANSPORT="sim",
        EVL_SIM_STATE=sim_env["EVL_SIM_STATE"],
        XDG_STATE_HOME=sim_env["XDG_STATE_HOME"],
    )
    env["PATH"] = f"{Path(script('evl')).parent}:{env['PATH']}"
    # C-x C-a inserts every match, so that a list can be read back from the line.
    cases = {
        "evl net --tr\t": "evl net --transport=",
        "evl net --transport=io\t": "evl net --transport=ioctl ",
        "evl n\x18\x01": "evl net net-agent net-config net-exporter ",
        "evl net --transport=\x18\x01": "evl net " + " ".join(f"--transport={t}" for t in TRANSPORTS) + " ",
        "evl net -i \x18\x01": "evl net -i " + " ".join(SIM_INTERFACES) + " ",
        "evl sim \x18\x01": "evl sim " + " ".join(sim_subcommands()) + " ",
        "evl-net --fo\t": "evl-net --format=",
    }
    for i, (typed, line) in enumerate(cases.items()):
        dump = tmp_path / f"line{i}"
        setup = [
            f"fpath=({COMPLETIONS} $fpath); autoload -Uz compinit; compinit -u -D",
            f"_dump() {{ print -rn -- $BUFFER > {dump} }}; zle -N _dump; bindkey '^X^P' _dump",
            "_all() { _main_complete; compstate[insert]=all }; zle -C all-matches complete-word _all",
            "bindkey '^X^A' all-matches",
        ]
        assert interactive([ZSH, "-f", "-i"], setup, typed, dump, env) == line, typed
    # -Q takes no separate word: after it come options again.
    dump = tmp_path / "q"
    setup[1] = f"_dump() {{ print -rn -- $BUFFER > {dump} }}; zle -N _dump; bindkey '^X^P' _dump"
    after_q = interactive([ZSH, "-f", "-i"], setup, "evl net -Q --in\t", dump, env)
    assert after_q == "evl net -Q --interface="


def complete_fish(line: str, env: dict[str, str]) -> list[str]:
    program = f"source {COMPLETIONS / 'evl.fish'}; source {COMPLETIONS / 'evl-net.fish'}; complete -C {line!r}"
    proc = subprocess.run(
        [FISH, "--no-config", "-c", program], env=env, cwd=env["HOME"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return [row.split("\t")[0] for row in proc.stdout.splitlines()]


@needs_fish
def test_fish_scripts_parse():
    for name in ("evl.fish", "evl-net.fish"):
        proc = subprocess.run([FISH, "--no-config", "-n", str(COMPLETIONS / name)], capture_output=True, text=True)
        assert (proc.returncode, proc.stderr) == (0, ""), name


@needs_fish
def test_fish_completes(tmp_path, sim_env):
    env = bash_env(
        tmp_path,
        EVL_NET_TRANSPORT="sim",
        EVL_SIM_STATE=sim_env["EVL_SIM_STATE"],
        XDG_STATE_HOME=sim_env["XDG_STATE_HOME"],
    )
    evl = script("evl")
    assert complete_fish("evl n", env) == ["net", "net-agent", "net-config", "net-exporter"]
    assert complete_fish("evl net --tr", env) == ["--transport"]
    assert sorted(complete_fish("evl net --transport=", env)) == [f"--transport={t}" for t in TRANSPORTS]
    assert sorted(complete_fish(f"{evl} net -i ", env)) == SIM_INTERFACES
    assert sorted(complete_fish("evl sim ", env)) == sim_subcommands()
    assert complete_fish("evl sim link eth0 ", env) == ["down", "up"]
    assert complete_fish("evl net -Q ", env) == []  # no separate argument; options start with "-"
    assert complete_fish("evl-net --fo", env) == ["--format"]
    assert sorted(complete_fish(f"{script('evl-net')} -i ", env)) == SIM_INTERFACES
