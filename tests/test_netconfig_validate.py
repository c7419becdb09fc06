"""``evl net-config validate``: every problem of every file at once, each as ``FILE:LINE: key.path: message``.

A table of broken files with the exact lines expected (written by hand from
the file and the rule it breaks), files that are valid, layering, the JSON
form, and files that cannot be read.  Validation never touches a board: the
simulator's state file is not created.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from evl_net.netconfig.manpage import EXAMPLE as GOOD  # the example of evl-net-config(5), with rx.o beside it

#: name -> (file text, the exact lines, {F} for the file)
BROKEN = {
    "schema": (
        'vlan_filter = 42\n[interface."eth0.42"]\nparent = "eth0"\nvlan_id = 5000\nmtu = "big"\ncolour = "red"\n'
        '[port."eth0.42"]\npool = -1\n[[peer]]\nvia = "eth0.42"\n',
        [
            "{F}:1: vlan_filter: expected a string or an array, got an integer",
            '{F}:4: interface."eth0.42".vlan_id: must be at most 4094',
            '{F}:5: interface."eth0.42".mtu: expected an integer, got a string',
            '{F}:6: interface."eth0.42".colour: unknown key',
            '{F}:8: port."eth0.42".pool: must be at least 0',
            "{F}:9: peer[0].host: missing",
        ],
    ),
    "consistency": (
        'vlan_filter = "42,1"\n\n[requires]\nabi = "46-45"\n\n[interface."eth0.42"]\nparent = "eth0"\n'
        'addresses = ["10.10.10.300/24"]\n\n[interface."a b"]\nup = true\n\n[[peer]]\nhost = "10.10.10"\n'
        'via = "eth0/42"\n',
        [
            "{F}:1: vlan_filter: not a VLAN list (Invalid argument): '42,1'",
            "{F}:4: requires.abi: an empty range: 46-45",
            '{F}:6: interface."eth0.42": a VLAN device needs both parent and vlan_id',
            "{F}:8: interface.\"eth0.42\".addresses[0]: not an IPv4 address/prefix: '10.10.10.300/24'",
            "{F}:10: interface.\"a b\": not an interface name: 'a b' (' ' is not allowed in a device name)",
            "{F}:14: peer[0].host: not an IPv4 address or host name: '10.10.10'",
            "{F}:15: peer[0].via: not an interface name: 'eth0/42'",
        ],
    ),
    "vlan on a vlan": (
        '[interface."eth0.42"]\nparent = "eth0"\nvlan_id = 42\n[interface.x]\nparent = "eth0.42"\nvlan_id = 43\n'
        '[interface.y]\nparent = "eth0"\nvlan_id = 42\n',
        [
            "{F}:5: interface.x.parent: eth0.42 is a VLAN device: a VLAN device sits on a real device",
            "{F}:9: interface.y.vlan_id: VLAN 42 on eth0 is eth0.42 already",
        ],
    ),
    "not toml": ('vlan_filter = "42"\n[port\n', ["{F}:2: not TOML: Expected ']' at the end of a table declaration"]),
    "vlan list with a duplicate": ("vlan_filter = [42, 43, 42]\n", ["{F}:1: vlan_filter: a VLAN id is listed twice"]),
}


@pytest.fixture
def validate(evl, tmp_path):
    def run(*names: str, json_out: bool = False):
        args = ["net-config", *(["--json"] if json_out else []), "validate", *names]
        return evl(*args)

    return run


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    if not (tmp_path / "rx.o").exists():
        (tmp_path / "rx.o").write_bytes(b"\x7fELF")  # the object the example's filter names
    return str(path)


def test_a_valid_file(validate, tmp_path, sim_env):
    path = write(tmp_path, "net.toml", GOOD)
    r = validate(path)
    assert (r.code, r.out, r.err) == (0, f"{path}: valid\n", "")
    assert not Path(sim_env["EVL_SIM_STATE"]).exists()  # nothing touched the (simulated) board


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_files_give_every_problem_at_its_line(validate, tmp_path, name, sim_env):
    text, expected = BROKEN[name]
    path = write(tmp_path, "bad.toml", text)
    r = validate(path)
    assert r.code == 1 and r.out == ""
    assert r.err.splitlines() == ["evl-net-config: " + line.format(F=path) for line in expected]
    assert not Path(sim_env["EVL_SIM_STATE"]).exists()


def test_the_ebpf_object_is_checked_and_its_pin(validate, tmp_path):
    obj = tmp_path / "rx.o"
    obj.write_bytes(b"\x7fELF object")
    digest = hashlib.sha256(obj.read_bytes()).hexdigest()
    text = (
        '[port."eth0.42"]\nfilter = { object = "rx.o" }\n'
        f'[port."eth1.42"]\nfilter = {{ object = "rx.o", sha256 = "{"0" * 64}" }}\n'
        '[port."eth2"]\nfilter = { object = "missing.o" }\n'
        f'[port."eth3"]\nfilter = {{ object = "{obj}", sha256 = "{digest}" }}\n'
    )
    path = write(tmp_path, "net.toml", text)
    r = validate(path)
    assert r.err.splitlines() == [
        f'evl-net-config: {path}:4: port."eth1.42".filter.sha256: rx.o has sha256 {digest}',
        f"evl-net-config: {path}:6: port.eth2.filter.object: cannot read eBPF object {tmp_path}/missing.o: "
        "No such file or directory",
    ]  # a relative object is found beside the file


def test_files_layer_and_a_key_set_twice_is_named_with_both_places(validate, tmp_path):
    base = write(tmp_path, "10-base.toml", GOOD)
    more = write(tmp_path, "20-more.toml", '[port."eth0.42"]\npool = 4096\n[port."eth1.42"]\npool = 16\n')
    assert validate(base, more).code == 0  # the same value again, and another port: fine
    clash = write(tmp_path, "30-clash.toml", '\n[port."eth0.42"]\npool = 8192\n')
    r = validate(base, more, clash)
    assert r.code == 1
    assert r.err == f'evl-net-config: {clash}:3: port."eth0.42".pool: set to another value in {base}:14\n'


def test_json_output(validate, tmp_path):
    path = write(tmp_path, "bad.toml", 'vlan_filter = "0"\n')
    r = validate(path, json_out=True)
    assert r.code == 1 and r.err == ""
    assert json.loads(r.out) == {
        "valid": False,
        "files": [path],
        "problems": [
            {"file": path, "line": 1, "key": "vlan_filter", "message": "not a VLAN list (Invalid argument): '0'"}
        ],
    }


def test_files_that_cannot_be_read(validate, tmp_path):
    good = write(tmp_path, "net.toml", GOOD)
    empty = tmp_path / "empty.d"
    empty.mkdir()
    r = validate(str(tmp_path / "missing.toml"), str(empty), good)
    assert r.code == 1
    assert r.err.splitlines() == [
        f"evl-net-config: cannot read net-config file {tmp_path}/missing.toml: No such file or directory",
        f"evl-net-config: no net-config file (*.toml) in {empty}",
    ]


def test_a_directory_stands_for_its_toml_files_in_name_order(validate, tmp_path, monkeypatch):
    """``/etc/evl/net.d``: its ``*.toml`` files layer in name order; other files and hidden ones are not read."""
    monkeypatch.chdir(tmp_path)  # short names: long ones are shortened where they are echoed
    d = Path("net.d")
    d.mkdir()
    write(d, "10-base.toml", 'vlan_filter = "42"\n')
    write(d, "20-clash.toml", '\nvlan_filter = "43"\n')
    write(d, "README", "not toml at all [")
    write(d, ".30-hidden.toml", "not toml at all [")
    r = validate(str(d))
    assert r.code == 1
    assert r.err == f"evl-net-config: {d}/20-clash.toml:2: vlan_filter: set to another value in {d}/10-base.toml:1\n"


def test_the_schema_is_shipped_and_valid_for_editors():
    from evl_net import netconfig
    from evl_net.schema import load

    schema = load(netconfig.SCHEMA_PATH)
    assert schema["title"] == "evl-tools net-config file"


def test_the_readme_example_runs_as_written(tmp_path, sim_env):
    """The README's net.toml and commands, copied out of README.md and run by a shell as written."""
    import os
    import subprocess
    import sys

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    start = readme.index("cat > net.toml <<'T'")
    end = readme.index("\n", readme.index("evl net-config export > board.toml", start))
    env = dict(sim_env, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env["EVL_NET_AGENT_DIR"] = str(tmp_path / "agent")
    proc = subprocess.run(
        ["bash", "-e", "-c", readme[start:end]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0] == "net.toml: valid"
    plan = out[1 : out.index("plan: 2 to add, 1 to change, 0 to remove") + 1]
    assert plan == [
        "+ port eth0.42 (pool 4096)",
        "~ vlan filter (none) → 42",
        "+ solicit 10.10.10.10 via eth0.42 (permanent)",
        "plan: 2 to add, 1 to change, 0 to remove",
    ]
    assert readme.count("\n".join(plan)) == 1  # what the README shows of it
    assert out[len(plan) + 1 :] == [
        *[f"{line}: done" for line in plan[:-1]],
        "apply: 3 steps done",
        "no changes: the board matches the files",
    ]
    exported = (tmp_path / "board.toml").read_text()
    assert '[port."eth0.42"]\npool = 4096\nbuffer = 4096\n' in exported
    assert 'vlan_filter = "42"\n' in exported


def test_a_file_name_is_escaped_where_it_is_echoed(validate, tmp_path):
    path = write(tmp_path, "bad\x1b[2J.toml", "vlan_filter = 5\n")
    r = validate(path)
    assert r.code == 1 and "\x1b" not in r.err
    shown_path = f"{tmp_path}/bad\\x1b[2J.toml"
    assert r.err == f"evl-net-config: {shown_path}:1: vlan_filter: expected a string or an array, got an integer\n"
