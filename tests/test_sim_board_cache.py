"""The board cache and the per-board state (issue 17): a board is parsed once per content, the state holds
only what changes, and switching boards in a file of many costs no rewrite.

The cache is observed from outside: its entry's file appears, keeps its inode
and mtime while the board is used (an entry is only written after a parse),
and a planted entry (a sound one, of another board's content) is what the
command shows, which proves the board came from the cache, not from its file.
An entry that may not be trusted (corrupt, a link, someone else's, writable by
others) must be ignored: the command then shows the file's board, and says
nothing about it.
"""

from __future__ import annotations

import ast
import io
import json
import os
import stat
from pathlib import Path

import pytest

from evl_net.transports.sim import SimTransport, boardcache
from evl_net.transports.sim import board as boards
from evl_net.transports.sim.records import BoardState, to_json
from evl_net.transports.sim.state import FORMAT, StateFile

MANUAL = Path(boards.BOARDS_DIR, "manual.toml").read_text()
SIM = Path(boards.__file__).parent


@pytest.fixture
def env(sim_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The simulator's environment with its board cache in tmp_path/cache/evl-tools."""
    return {**sim_env, "XDG_CACHE_HOME": str(tmp_path / "cache")}


def cache_dir(env: dict[str, str]) -> Path:
    return Path(env["XDG_CACHE_HOME"], "evl-tools")


def entry_path(env: dict[str, str], board: Path) -> Path:
    return cache_dir(env) / ("board-" + boards.digest(board.read_bytes()).split(":")[1])


def show(sh, env: dict[str, str], board: Path) -> dict:
    run = sh("evl", "sim", "--board", str(board), "--json", "show", env=env)
    assert (run.code, run.err) == (0, ""), run.err
    return json.loads(run.out)


def mtu(sh, env: dict[str, str], board: Path, ifname: str = "eth0") -> int:
    value: int = show(sh, env, board)["board"]["interfaces"][ifname]["mtu"]
    return value


def planted(board_text: str, fingerprint: str) -> bytes:
    """A sound cache entry of ``board_text``'s board, filed under another content's ``fingerprint``."""
    board = boards.parse(board_text.encode(), "planted.toml")
    board.fingerprint = fingerprint
    return boardcache.encode(board)


def with_mtu(value: int) -> str:
    return MANUAL.replace('driver = "fec"', f'driver = "fec"\nmtu = {value}', 1)


# -- parsed once per content ---------------------------------------------------------------------


def test_a_board_is_parsed_once_and_then_comes_from_the_cache(tmp_path: Path, env, sh) -> None:
    board = tmp_path / "board.toml"
    board.write_text(with_mtu(1400))
    assert mtu(sh, env, board) == 1400
    entry = entry_path(env, board)
    st = entry.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600 and stat.S_IMODE(cache_dir(env).stat().st_mode) == 0o700
    assert st.st_uid == os.geteuid()
    for _ in range(3):  # neither a parse (which writes the entry anew) nor a write of any kind
        assert mtu(sh, env, board) == 1400
        again = entry.stat()
        assert (again.st_ino, again.st_mtime_ns, again.st_size) == (st.st_ino, st.st_mtime_ns, st.st_size)

    # A sound entry of another content, planted under this file's: what is shown comes from the cache.
    entry.write_bytes(planted(with_mtu(1234), boards.digest(board.read_bytes())))
    assert mtu(sh, env, board) == 1234


def test_the_same_content_elsewhere_is_not_parsed_again(tmp_path: Path, env, sh) -> None:
    first, second = tmp_path / "a.toml", tmp_path / "b.toml"
    first.write_text(with_mtu(1400))
    assert mtu(sh, env, first) == 1400
    entry = entry_path(env, first)
    entry.write_bytes(planted(with_mtu(1234), boards.digest(first.read_bytes())))
    second.write_text(with_mtu(1400))  # another file, the same bytes
    assert mtu(sh, env, second) == 1234
    assert [p.name for p in cache_dir(env).glob("board-*")] == [entry.name]  # (the registry cache is there too)


def test_an_edit_of_the_same_size_and_mtime_gives_the_new_content(tmp_path: Path, env, sh) -> None:
    board = tmp_path / "board.toml"
    board.write_text(with_mtu(1400))
    old = board.stat()
    os.utime(board, ns=(old.st_atime_ns, old.st_mtime_ns - 10_000_000_000))  # settled: its stamp is kept
    old = board.stat()
    assert sh("evl", "net", "--board", str(board), "-ei", "eth0", env=env).code == 0
    assert mtu(sh, env, board) == 1400
    with open(board, "r+b") as f:  # in place: same inode, same size
        f.write(with_mtu(1300).encode())
    os.utime(board, ns=(old.st_atime_ns, old.st_mtime_ns))
    new = board.stat()
    assert (new.st_ino, new.st_size, new.st_mtime_ns) == (old.st_ino, old.st_size, old.st_mtime_ns)
    shown = show(sh, env, board)
    assert shown["board"]["interfaces"]["eth0"]["mtu"] == 1300
    assert shown["ports"] == []  # another content: the board booted afresh
    assert entry_path(env, board).exists()


# -- a cache that cannot be trusted or written costs speed only ------------------------------------


def _garbage(entry: Path, board: Path) -> None:
    entry.write_bytes(b"\x00garbage\xff" * 50)


def _truncated(entry: Path, board: Path) -> None:
    entry.write_bytes(entry.read_bytes()[:-7])


def _flipped(entry: Path, board: Path) -> None:
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0x10  # one bit in the middle of the board: only the checksum can tell
    entry.write_bytes(bytes(data))


def _empty(entry: Path, board: Path) -> None:
    entry.write_bytes(b"")


def _other_version(entry: Path, board: Path) -> None:
    entry.write_bytes(entry.read_bytes().replace(b"evl-board-cache\n", b"evl-board-cache\r", 1))


def _symlink(entry: Path, board: Path) -> None:
    target = entry.parent.parent / "elsewhere"
    target.write_bytes(planted(with_mtu(1234), boards.digest(board.read_bytes())))
    target.chmod(0o600)
    entry.unlink()
    entry.symlink_to(target)


def _foreign(entry: Path, board: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("making a file someone else's needs root")
    entry.write_bytes(planted(with_mtu(1234), boards.digest(board.read_bytes())))
    os.chown(entry, 4242, 4242)


def _group_writable(entry: Path, board: Path) -> None:
    entry.write_bytes(planted(with_mtu(1234), boards.digest(board.read_bytes())))
    entry.chmod(0o620)


def _dir_other_writable(entry: Path, board: Path) -> None:
    entry.write_bytes(planted(with_mtu(1234), boards.digest(board.read_bytes())))
    entry.parent.chmod(0o703)


def _dir_symlink(entry: Path, board: Path) -> None:
    real = entry.parent.parent / "real-cache"
    entry.parent.rename(real)
    (real / entry.name).write_bytes(planted(with_mtu(1234), boards.digest(board.read_bytes())))
    entry.parent.symlink_to(real)


def _dir_a_file(entry: Path, board: Path) -> None:
    for p in entry.parent.iterdir():
        p.unlink()
    entry.parent.rmdir()
    entry.parent.write_text("not a directory\n")


def _hard_link(entry: Path, board: Path) -> None:
    entry.write_bytes(planted(with_mtu(1234), boards.digest(board.read_bytes())))
    os.link(entry, entry.parent.parent / "second-name")


BAD_CACHE = {
    "garbage": _garbage,
    "truncated": _truncated,
    "one-bit-flipped": _flipped,
    "empty": _empty,
    "another-format": _other_version,
    "symlink-to-a-planted-entry": _symlink,
    "someone-elses-planted-entry": _foreign,
    "group-writable-planted-entry": _group_writable,
    "dir-other-writable": _dir_other_writable,
    "dir-a-symlink": _dir_symlink,
    "dir-a-file": _dir_a_file,
    "hard-linked-planted-entry": _hard_link,
}


@pytest.mark.parametrize("case", list(BAD_CACHE))
def test_a_cache_entry_that_cannot_be_trusted_is_ignored(case: str, tmp_path: Path, env, sh) -> None:
    board = tmp_path / "board.toml"
    board.write_text(with_mtu(1400))
    assert sh("evl", "net", "--board", str(board), "-ei", "eth0", env=env).code == 0
    entry = entry_path(env, board)
    assert entry.exists()
    BAD_CACHE[case](entry, board)
    for _ in range(2):
        shown = show(sh, env, board)  # no error, nothing on stderr (show() checks)
        assert shown["board"]["interfaces"]["eth0"]["mtu"] == 1400
        assert shown["ports"] == ["eth0"]  # and the state is the board's
        run = sh("evl", "net", "--board", str(board), "-Qa", "-i", "eth0", env=env)
        assert (run.code, run.out, run.err) == (0, "2048\n", "")
    if case == "symlink-to-a-planted-entry":
        assert (entry.parent.parent / "elsewhere").read_bytes().startswith(b"evl-board-cache\n")  # not written through


def test_an_unwritable_cache_place_costs_nothing_but_speed(tmp_path: Path, env, sh) -> None:
    board = tmp_path / "board.toml"
    board.write_text(with_mtu(1400))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for cache in (str(blocker / "cache"), "relative/cache", ""):
        run_env = {**env, "XDG_CACHE_HOME": cache, "HOME": str(blocker)}
        for _ in range(2):
            assert mtu(sh, run_env, board) == 1400
    assert not Path("relative").exists()


def test_a_corrupt_entry_is_replaced_by_a_sound_one(tmp_path: Path, env, sh) -> None:
    board = tmp_path / "board.toml"
    board.write_text(with_mtu(1400))
    assert mtu(sh, env, board) == 1400
    entry = entry_path(env, board)
    entry.write_bytes(b"junk")
    assert mtu(sh, env, board) == 1400
    assert entry.read_bytes().startswith(b"evl-board-cache\n")
    assert boardcache.decode(entry.read_bytes(), boards.digest(board.read_bytes()), "x") is not None


# -- the state: only what changes; switching boards ---------------------------------------------------


def quiet_sim(state: Path, board: Path | str | None, cache: Path) -> SimTransport:
    return SimTransport(
        board=str(board) if board else None, state_path=str(state), console=io.StringIO(), cache_dir=str(cache)
    )


def test_the_state_names_a_board_files_board_and_holds_it_in_full_once_edited(tmp_path: Path, env, sh) -> None:
    state = Path(env["EVL_SIM_STATE"])
    assert sh("evl", "net", "-ei", "eth0.42", env=env).code == 0
    data = json.loads(state.read_text())
    assert data["format"] == FORMAT == 2
    assert data["board"] == {"name": "manual", "fingerprint": boards.fingerprint(boards.locate(None)[1])}
    assert "edited" not in data
    # A link change makes the board differ from its file's: stored in full, and kept so.
    assert sh("evl", "sim", "link", "eth1", "down", env=env).code == 0
    data = json.loads(state.read_text())
    assert data["edited"] is True and data["board"]["interfaces"]["eth1"]["up"] is False
    assert sh("evl", "net", "-N42", env=env).code == 0
    data = json.loads(state.read_text())
    assert data["edited"] is True and data["board"]["interfaces"]["eth1"]["up"] is False
    assert show(sh, env, Path(boards.locate(None)[1]))["board"]["interfaces"]["eth1"]["up"] is False


def test_switching_among_a_hundred_boards_keeps_each_state_and_rewrites_nothing(tmp_path: Path, env, sh) -> None:
    state = Path(env["EVL_SIM_STATE"])
    cache = cache_dir(env)
    paths = []
    for i in range(100):
        path = tmp_path / f"b{i:03d}.toml"
        path.write_text(f"# board {i}\n{MANUAL}")
        os.utime(path, (1e9, 1e9))  # settled: the state keeps its stamp, a stat is all a use costs
        paths.append(path)
        with quiet_sim(state, path, cache) as t:
            t.set_vlans(str(2 + i))
    a, b = paths[0], paths[57]
    assert sh("evl", "net", "--board", str(a), "-ei", "eth1", env=env).code == 0
    before = state.stat()
    run = sh("evl", "net", "--json", "--board", str(b), "-Q", "-i", "eth1", env=env)
    assert run.code == 0 and json.loads(run.out)["oob_port"] is False
    run = sh("evl", "net", "--board", str(b), "-n", env=env)
    assert (run.code, run.out) == (0, "59\n")
    after = state.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # a switch is no write
    run = sh("evl", "net", "--json", "--board", str(a), "-Q", "-i", "eth1", env=env)
    assert run.code == 0 and json.loads(run.out)["oob_port"] is True
    # A change on B: written with B current; every other board's state is still there, unchanged.
    assert sh("evl", "net", "--board", str(b), "-ei", "eth1.42", env=env).code == 0
    data = json.loads(state.read_text())
    assert data["key"] == str(b) and "eth1.42" in data["ports"]
    assert len(data["others"]) == 99
    assert all(o["board"].keys() == {"name", "fingerprint"} for o in data["others"].values())
    for i, path in enumerate(paths):
        run = sh("evl", "net", "--board", str(path), "-n", env=env) if i % 25 == 0 else None
        if run is not None:
            assert (run.code, run.out) == (0, f"{2 + i}\n")
        with quiet_sim(state, path, cache) as t:
            assert t.get_vlans() == str(2 + i)
            assert t.get_stat("eth1").oob_port == (path == a)
            assert t.get_stat("eth1.42").oob_port == (path == b)


def old_format(states: list[tuple[str, BoardState]]) -> dict:
    """A state file as the previous release wrote it (format 1): every board in full, the first one current."""
    (key, current), *others = states
    data = {"format": 1, **to_json(current), "key": key}
    data.pop("others", None)
    data["others"] = {k: {**to_json(s), "key": k} for k, s in others}
    return data


def test_a_state_file_of_the_previous_format_is_migrated_without_losing_state(tmp_path: Path, env, sh) -> None:
    state = Path(env["EVL_SIM_STATE"])
    cache = cache_dir(env)
    other = tmp_path / "other.toml"
    other.write_text(with_mtu(1400))
    scratch = tmp_path / "scratch.json"
    with quiet_sim(scratch, None, cache) as t:
        t.enable_port("eth0.42", 256, 0)
        t.set_vlans("42,55-57")
        manual = t.load()
    with quiet_sim(tmp_path / "scratch2.json", other, cache) as t:
        t.enable_port("eth1", 0, 0)
        t.set_mtu("eth2", 1300)  # an edited board: it must stay as it was
        edited = t.load()
    state.write_text(json.dumps(old_format([("manual", manual), (str(other), edited)])))
    for p in cache.glob("board-*"):
        p.unlink()  # no board cached: the migration reads the board files

    run = sh("evl", "net", "-Qa", "-i", "eth0.42", env=env)
    assert (run.code, run.out, run.err) == (0, "256\n", "")
    assert sh("evl", "net", "-n", env=env).out == "42,55-57\n"
    run = sh("evl", "net", "--json", "--board", str(other), "-Q", "-i", "eth1", env=env)
    assert run.code == 0 and json.loads(run.out)["oob_port"] is True
    assert mtu(sh, env, other, "eth2") == 1300 and mtu(sh, env, other) == 1400

    assert sh("evl", "net", "-N43", env=env).code == 0  # a write: the new format
    data = json.loads(state.read_text())
    assert data["format"] == 2 and data["key"] == "manual" and data["vlans"] == [43]
    assert data["board"].keys() == {"name", "fingerprint"}
    assert sh("evl", "net", "--board", str(other), "-ei", "eth0", env=env).code == 0
    data = json.loads(state.read_text())
    assert data["edited"] is True and data["board"]["interfaces"]["eth2"]["mtu"] == 1300
    assert sorted(data["ports"]) == ["eth0", "eth1"]
    assert data["others"]["manual"]["vlans"] == [43] and data["others"]["manual"]["ports"] == ["eth0.42"]
    assert StateFile(str(state)).read() is not None


# -- a large board ---------------------------------------------------------------------------------


def big_board(count: int = 4000) -> str:
    out = ['[[interface]]\nname = "lo"\nloopback = true\nmtu = 65536\ndriver = "loopback"\n']
    for nic in range(4):
        out.append(f'[[interface]]\nname = "eth{nic}"\ndriver = "fec"\nmtu = {9000 - nic}\n')
    for i in range(count - 5):
        nic, vid = i % 4, 2 + i // 4
        counters = f"counters = {{ rx_packets = {i}, tx_packets = {i * 3} }}\n" if i % 100 == 7 else ""
        out.append(
            f'[[interface]]\nname = "eth{nic}.{vid}"\nparent = "eth{nic}"\nvlan_id = {vid}\n'
            f'addresses = ["10.{nic}.{vid // 256}.{vid % 256}/16"]\n{counters}'
        )
    return "".join(out)


def test_a_board_of_4000_interfaces_gives_the_right_values(tmp_path: Path, env, sh) -> None:
    board = tmp_path / "big.toml"
    board.write_text(big_board())
    i = 3907  # eth3.978, with counters
    name = f"eth{i % 4}.{2 + i // 4}"
    assert sh("evl", "net", "--board", str(board), "-ei", name, "-p", "64", env=env).code == 0
    for _ in range(2):  # parsed, then from the cache
        run = sh("evl", "net", "--board", str(board), "-QRTao", "-i", name, env=env)
        assert (run.code, run.out, run.err) == (0, f"{i} {i * 3} 64 yes\n", "")
        run = sh("evl", "net", "--board", str(board), "-QRo", "-i", "eth2.502", env=env)  # i = 2002
        assert (run.code, run.out, run.err) == (0, "0 yes\n", ""), run
    with quiet_sim(Path(env["EVL_SIM_STATE"]), board, cache_dir(env)) as t:
        b = t.board
        assert len(b.interfaces) == 4000 and list(b.interfaces)[:2] == ["lo", "eth0"]
        assert b.interfaces[name].mtu == 1500 and b.interfaces[name].addresses == ["10.3.3.210/16"]
        assert b.interfaces["eth2"].mtu == 8998 and b.interfaces["eth1.999"].parent == "eth1"
        assert t.get_stat(name).skb_total == 64 and t.get_stat(name).rx_packets == i
    assert json.loads(Path(env["EVL_SIM_STATE"]).read_text())["board"].keys() == {"name", "fingerprint"}


def test_the_interfaces_of_a_cached_board_are_made_when_used_and_behave_as_a_dict(tmp_path: Path) -> None:
    import copy
    import pickle

    from evl_net.transports.sim.records import Board as BoardRecord
    from evl_net.transports.sim.records import decode

    parsed = boards.parse(big_board(400).encode(), "big.toml")
    entry = boardcache.encode(parsed)

    def fresh() -> boards.Board:
        board = boardcache.decode(entry, parsed.fingerprint, "big.toml")
        assert board is not None
        return board

    board = fresh()
    lazy = board.interfaces
    assert isinstance(lazy, boardcache.Interfaces) and isinstance(lazy, dict)
    assert len(lazy) == 400 and "eth3.99" in lazy and list(lazy)[:3] == ["lo", "eth0", "eth1"]
    assert lazy.made() == []  # names, length and membership make none
    assert lazy["eth3.99"] == parsed.interfaces["eth3.99"] and lazy.get("eth0") == parsed.interfaces["eth0"]
    assert lazy.get("nope") is None and lazy.get("nope", 5) == 5
    assert sorted(lazy.made()) == ["eth0", "eth3.99"]
    assert boardcache.unchanged(board, entry)
    lazy["eth0"].addresses.append("192.0.2.1/24")
    assert not boardcache.unchanged(board, entry)  # a change in a made interface is seen
    board = fresh()
    assert board == parsed and parsed == board and board.interfaces == parsed.interfaces
    assert parsed.interfaces == fresh().interfaces
    for copied in (dict(fresh().interfaces), {**fresh().interfaces}, fresh().interfaces.copy()):
        assert type(copied) is dict and copied == parsed.interfaces
    assert copy.deepcopy(fresh().interfaces) == parsed.interfaces
    assert pickle.loads(pickle.dumps(fresh().interfaces)) == parsed.interfaces
    assert list(fresh().interfaces.values()) == list(parsed.interfaces.values())
    assert dict(fresh().interfaces.items()) == parsed.interfaces
    assert decode(BoardRecord, json.loads(json.dumps(to_json(fresh())))) == parsed
    board = fresh()
    assert board.interfaces.pop("eth1.2").name == "eth1.2" and "eth1.2" not in board.interfaces
    del board.interfaces["eth0.2"]
    board.interfaces["new0"] = boards.Iface("new0")
    assert len(board.interfaces) == 399 and list(board.interfaces)[-1] == "new0"
    assert not boardcache.unchanged(board, entry)
    board = fresh()
    del board.interfaces["eth0.2"]
    assert not boardcache.unchanged(board, entry)  # gone without ever being made


def test_a_query_on_a_large_board_makes_only_the_interfaces_it_uses(tmp_path: Path, env) -> None:
    board = tmp_path / "big.toml"
    board.write_text(big_board())
    state, cache = Path(env["EVL_SIM_STATE"]), cache_dir(env)
    with quiet_sim(state, board, cache) as t:
        t.enable_port("eth1.500", 0, 0)
    with quiet_sim(state, board, cache) as t:
        assert t.get_stat("eth1.500").oob_port is True
        made = t.board.interfaces.made()
        assert made == ["eth1.500"]  # its parent is named by it, not made
        t.enable_port("eth2.7", 0, 0)  # a write: neither the board's check nor its storage makes the others
    assert json.loads(state.read_text())["board"].keys() == {"name", "fingerprint"}
    with quiet_sim(state, board, cache) as t:
        assert t.get_stat("eth2.7").oob_port and t.get_stat("eth1.500").oob_port
        assert sorted(t.board.interfaces.made()) == ["eth1.500", "eth2.7"]


# -- what start-up imports -------------------------------------------------------------------------

HOT = ("store", "state", "board", "boardcache", "records", "kernel", "loader")


@pytest.mark.parametrize("module", HOT)
def test_the_simulators_start_up_modules_import_neither_typing_nor_dataclasses(module: str) -> None:
    source = (SIM / f"{module}.py").read_text()
    tree = ast.parse(source)

    def run_time_imports(body: list[ast.stmt]) -> list[str]:
        found = []
        for node in body:
            if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
                found += run_time_imports(node.orelse)
                continue
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import):
                    found += [a.name for a in sub.names]
                elif isinstance(sub, ast.ImportFrom):
                    found.append(sub.module or "")
        return found

    bad = [m for m in run_time_imports(tree.body) if m.split(".")[0] in ("typing", "dataclasses")]
    assert bad == []
    assert "get_type_hints" not in source and "type_hints(" not in source


def test_a_query_evaluates_no_type_hint(tmp_path: Path, env, monkeypatch) -> None:
    import typing

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("type hints evaluated on the simulator's path")

    state, cache = Path(env["EVL_SIM_STATE"]), cache_dir(env)
    with quiet_sim(state, None, cache) as t:
        t.enable_port("eth0.42", 0, 0)
    monkeypatch.setattr(typing, "get_type_hints", refuse)
    with quiet_sim(state, None, cache) as t:
        assert t.get_stat("eth0.42").oob_port is True
        t.set_vlans("42")
