"""The evl.net.board role under ansible-playbook, on localhost, as a user installs and runs it.

The collection is built with ``ansible-galaxy collection build`` and installed
from the tarball; evl-tools and evl-net are built as wheels, which the role
copies to the "board" and pip-installs into a venv there (their dependencies
from the package index).  Every path the role writes (the venv, the
net-config file, the systemd tree it enables the unit in, the simulator's
state and lock) is under the test's directory.  One board goes through:

1. the first run: everything installed, written, applied and enabled (changed);
2. the same run again: changed=0;
3. check mode with a new setup: reported changed, the board, its file and its
   state untouched (read back with ``evl net -Q``);
4. a setup ``evl net-config validate`` rejects: the role fails saying why, the
   old file stays and the board is untouched;
5. the setup as a controller file (``evl_net_config_src``): written as it is and applied.

The role's ``evl.net.to_net_config`` filter is also tried alone (fast): what it
writes reads back, with tomllib, as the data it was given.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from typing import Any

import pytest

import ansible_lab

UNIT = "evl-net-config.service"

SETUP = {
    "vlan_filter": "42",
    "port": {"eth0.42": {"pool": 4096}},
    "peer": [{"host": "10.10.10.10", "via": "eth0.42", "permanent": True}],
}
CHECKED = {"vlan_filter": "42", "port": {"eth0.42": {"pool": 1024}}}  # a new setup, in check mode only
INVALID = {"vlan_filter": "42", "bogus": 1, "port": {"eth0.42": {"pool": -5}}}
FILE_SETUP = """\
# the setup as a file on the controller
vlan_filter = "42,43"

[port."eth0.42"]
pool = 512
"""

RECAP = re.compile(r"^localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


@dataclass
class Stage:
    """One ansible-playbook run and what the board looked like after it."""

    run: ansible_lab.Results
    recap: dict[str, int]
    state: bytes  # the simulator's state file
    config: str | None  # the board's net-config file
    port: dict[str, Any]  # evl net -Q -i eth0.42 --json
    export: str  # evl net-config export

    def task(self, name: str) -> dict[str, Any]:
        """The record of the role's task ``name``."""
        found = [r for r in self.run.records if r["task"].endswith(f" : {name}") or r["task"] == name]
        assert found, f"no task {name!r}:\n{self.run.output[-3000:]}"
        return found[-1]


@dataclass
class Board:
    tmp: pathlib.Path
    venv: pathlib.Path
    config: pathlib.Path
    root: pathlib.Path
    env: dict[str, str]  # the board's simulator, for evl
    stages: dict[str, Stage]

    def evl(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / "evl"), *argv], env=self.env, capture_output=True, text=True, timeout=60
        )


def build_wheels(dest: pathlib.Path) -> list[pathlib.Path]:
    """The two wheels, built from a copy of the sources (a build leaves build/ directories where it runs)."""
    import shutil

    repo = dest.parent / "src"
    junk = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis", "tests")
    shutil.copytree(ansible_lab.REPO, repo, ignore=junk)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(dest),
            str(repo),
            str(repo / "plugins/net"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    wheels = sorted(dest.glob("*.whl"))
    assert [w.name.split("-")[0] for w in wheels] == ["evl_net", "evl_tools"], wheels
    return wheels


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Board:
    tmp = tmp_path_factory.mktemp("ansible-role")
    wheels = build_wheels(tmp / "wheels")
    collections = ansible_lab.install_collection(tmp / "galaxy")
    env = ansible_lab.clean_env(tmp) | {"ANSIBLE_COLLECTIONS_PATH": str(collections)}
    sim = {
        "EVL_SIM_STATE": str(tmp / "sim-state.json"),
        "EVL_NET_AGENT_DIR": str(tmp / "run"),
        "EVL_RUNDIR": str(tmp / "run"),
        "EVL_NET_TRANSPORT": "sim",
    }
    b = Board(
        tmp=tmp,
        venv=tmp / "opt" / "evl-tools",
        config=tmp / "etc" / "evl" / "net.toml",
        root=tmp / "sysroot",
        env={k: v for k, v in os.environ.items() if not k.startswith("EVL_")} | sim,
        stages={},
    )
    (tmp / "files").mkdir()
    (tmp / "files" / "net.toml").write_text(FILE_SETUP)
    host: dict[str, Any] = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "evl_tools_python": sys.executable,
        "evl_tools_venv": str(b.venv),
        "evl_tools_wheels": [str(w) for w in wheels],
        "evl_tools_systemd_root": str(b.root),
        "evl_net_config_path": str(b.config),
        "evl_net_environment": sim,
    }
    play = [{"name": "an EVL board", "hosts": "boards", "gather_facts": False, "roles": ["evl.net.board"]}]
    runs = [
        ("first", {"evl_net_config": SETUP}, []),
        ("again", {"evl_net_config": SETUP}, []),
        ("check", {"evl_net_config": CHECKED}, ["--check", "--diff"]),
        ("invalid", {"evl_net_config": INVALID}, []),
        ("src", {"evl_net_config_src": str(tmp / "files" / "net.toml")}, []),
        ("src dir check", {"evl_net_config_src": str(tmp / "files")}, ["--check"]),
        ("src dir", {"evl_net_config_src": str(tmp / "files")}, []),
    ]
    for name, setup, args in runs:
        inventory = {"boards": {"hosts": {"localhost": host | setup}}}
        run = ansible_lab.playbook(tmp, play, inventory, env, *args, timeout=300)
        recap = RECAP.findall(run.output)
        assert len(recap) == 1, f"{name}: no PLAY RECAP for localhost:\n{run.output[-3000:]}"
        query = b.evl("net", "-Q", "-i", "eth0.42", "--json")
        assert query.returncode == 0, query.stderr
        b.stages[name] = Stage(
            run=run,
            recap=dict(zip(("ok", "changed", "unreachable", "failed"), map(int, recap[0]), strict=True)),
            state=pathlib.Path(sim["EVL_SIM_STATE"]).read_bytes(),
            config=b.config.read_text() if b.config.exists() else None,
            port=json.loads(query.stdout),
            export=b.evl("net-config", "export").stdout,
        )
    return b


@pytest.mark.slow
def test_first_run_installs_writes_applies_and_enables(board: Board) -> None:
    first = board.stages["first"]
    assert first.run.returncode == 0, first.run.output[-3000:]
    assert first.recap["changed"] > 0 and first.recap["failed"] == 0
    # evl-tools in the venv, from the wheels copied to the board
    assert (board.venv / "bin" / "evl").is_file()
    assert sorted(p.name.split("-")[0] for p in (board.venv / "wheels").glob("*.whl")) == ["evl_net", "evl_tools"]
    # the setup applied: the port's pool, read back by the venv's evl on the same simulator state
    assert (first.port["oob_port"], first.port["skb_total"]) == (True, 4096)
    assert 'host = "10.10.10.10"' in first.export and "permanent = true" in first.export
    # the file, as TOML, says the inventory's setup
    assert first.config is not None and tomllib.loads(first.config) == SETUP
    applied = first.task("Apply the net-config setup (in check mode, plan it)")
    assert applied["status"] == "ok" and applied["result"]["changed"] is True


@pytest.mark.slow
def test_the_unit_is_installed_and_enabled_without_a_running_systemd(board: Board) -> None:
    unit_dir = board.root / "etc" / "systemd" / "system"
    unit = (unit_dir / UNIT).read_text()
    evl = board.venv / "bin" / "evl"
    assert f"\nExecStart={evl} net-config apply {board.config}\n" in unit
    assert f"\nConditionPathExists={board.config}\n" in unit
    wants = unit_dir / "multi-user.target.wants" / UNIT
    assert wants.is_symlink() and os.readlink(wants) == f"/etc/systemd/system/{UNIT}"
    enabled = subprocess.run(["systemctl", f"--root={board.root}", "is-enabled", UNIT], capture_output=True, text=True)
    assert enabled.stdout.strip() == "enabled", enabled
    # the root is not the running system's: systemd is never asked to reload, and nothing failed for it
    assert board.stages["first"].task("Reload systemd")["status"] == "skipped"


@pytest.mark.slow
def test_second_run_changes_nothing(board: Board) -> None:
    again = board.stages["again"]
    assert again.run.returncode == 0, again.run.output[-3000:]
    changed = [r["task"] for r in again.run.records if r["result"].get("changed")]
    assert again.recap["changed"] == 0, changed
    assert again.state == board.stages["first"].state
    assert again.config == board.stages["first"].config


@pytest.mark.slow
def test_check_mode_reports_the_change_and_makes_none(board: Board) -> None:
    before, check = board.stages["again"], board.stages["check"]
    assert check.run.returncode == 0, check.run.output[-3000:]
    assert check.recap["changed"] >= 2
    assert check.task("Write the net-config file (validated with evl net-config validate)")["result"]["changed"]
    planned = check.task("Apply the net-config setup (in check mode, plan it)")["result"]
    assert planned["changed"] is True and any("1024" in line for line in planned["plan"]), planned["plan"]
    # nothing on the board: its state, what evl reads back, its file
    assert check.state == before.state
    assert check.port["skb_total"] == 4096
    assert check.config == before.config


@pytest.mark.slow
def test_an_invalid_setup_fails_clearly_and_keeps_the_old_file(board: Board) -> None:
    before, invalid = board.stages["check"], board.stages["invalid"]
    assert invalid.run.returncode != 0
    assert invalid.recap["failed"] == 1
    said = invalid.task("Say why the net-config file was not written")
    assert said["status"] == "failed"
    msg = said["result"]["msg"]
    assert f"{board.config} was left as it was" in msg and "does not pass evl net-config validate" in msg, msg
    assert "bogus: unknown key" in msg and 'port."eth0.42".pool: must be at least 0' in msg, msg
    assert invalid.config == before.config and invalid.state == before.state
    assert not [p for p in board.config.parent.iterdir() if p.name != "net.toml"], "a stray file beside the config"


@pytest.mark.slow
def test_a_controller_file_is_written_as_it_is_and_applied(board: Board) -> None:
    src = board.stages["src"]
    assert src.run.returncode == 0, src.run.output[-3000:]
    assert src.recap["changed"] > 0
    assert src.config == FILE_SETUP
    assert src.port["skb_total"] == 512
    assert 'vlan_filter = "42-43"' in src.export and "[[peer]]" not in src.export


def to_net_config() -> Any:
    sys.path.insert(0, str(ansible_lab.REPO / "ansible"))
    try:
        from ansible_collections.evl.net.plugins.filter.to_net_config import to_net_config as render
    finally:
        sys.path.remove(str(ansible_lab.REPO / "ansible"))
    return render


def test_the_filter_writes_toml_that_reads_back_as_its_data() -> None:
    render = to_net_config()
    data = {
        "vlan_filter": [42, 43],
        "requires": {"abi": "45", "oob_capable": ["eth0"]},
        "interface": {"eth0.42": {"parent": "eth0", "vlan_id": 42, "addresses": ["10.10.10.11/24"], "up": True}},
        "port": {"eth0.42": {"pool": 4096, "filter": {"object": "/x/rx.o", "sha256": "ab"}}, "eth1": {}},
        "peer": [
            {"host": "10.10.10.10", "via": "eth0.42", "permanent": True},
            {"host": 'a"b\\c\x7f\x01\n\U0001f600é', "via": "eth1", "gateway": False},
        ],
        "odd key": [{"inline": 1.5}, "s"],
    }
    text = render(data)
    assert tomllib.loads(text) == data
    assert '[port."eth0.42"]\npool = 4096\n' in text and '\n[[peer]]\nhost = "10.10.10.10"\n' in text
    assert render({}) == ""


@pytest.mark.parametrize(
    ("data", "said"),
    [({"port": {"eth0": {"pool": None}}}, "port.eth0.pool is null"), ({"peer": [{1: "x"}]}, "key 1 in peer[0]")],
)
def test_the_filter_refuses_what_toml_cannot_say(data: dict[str, Any], said: str) -> None:
    from ansible.errors import AnsibleFilterError

    with pytest.raises(AnsibleFilterError, match=re.escape(said)):
        to_net_config()(data)


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["src dir check", "src dir"])
def test_a_directory_as_the_controller_file_is_refused_in_check_mode_too(board: Board, stage: str) -> None:
    before, run = board.stages["src"], board.stages[stage]
    assert run.run.returncode != 0 and run.recap["failed"] == 1, run.run.output[-3000:]
    assert run.config == before.config and board.config.is_file(), "the file stayed a file, as it was"
    assert run.state == before.state
