"""The library API: the operations of ``evl net`` with typed results; bad input is an EvlError."""

from __future__ import annotations

import pytest

from evl_core.errors import EvlError
from evl_net import api
from evl_net.model import DevStat, ShapeError, from_json, to_json


@pytest.fixture
def board(sim_env):
    with api.open_board(transport="sim", board="manual", env=sim_env) as b:
        yield b


def test_the_readme_example(board):
    board.enable("eth0.42", pool_size=4096)
    board.set_vlans([41, 42])
    assert (board.query("eth0.42").stat.skb_total, board.vlans().vlans) == (4096, "41-42")
    assert board.query("eth0.42").to_json()["action"] == "query"
    assert board.solicit("10.10.10.10", permanent=True).to_json()["permanent"] is True
    assert [row.ifname for row in board.query_all().interfaces][:2] == ["lo", "eth0"]


def test_results_are_what_evl_net_json_prints(sim_env, evl):
    import json

    with api.open_board(transport="sim", board="manual", env=sim_env) as board:
        board.enable("eth0.42")
        ours = board.query("eth0.42").to_json()
    # (an open simulated board holds the state's lock: evl net runs once it is closed)
    assert ours == json.loads(evl("net", "--json", "-Q", "-i", "eth0.42").out)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda b: b.set_vlans([5000]), "invalid VLAN id 5000"),
        (lambda b: b.set_vlans([-1]), "invalid VLAN id -1"),
        (lambda b: b.set_vlans(["a"]), "invalid VLAN id 'a'"),
        (lambda b: b.set_vlans(42), "invalid VLAN ids 42"),
        (lambda b: b.set_vlans("5000"), "invalid VLAN id. list '5000'"),
        (lambda b: b.enable("eth0.42", pool_size="12"), "invalid pool size '12'"),
        (lambda b: b.enable("eth0.42", pool_size=-5), "invalid pool size -5"),
        (lambda b: b.enable("eth0.42", pool_size=40000), "invalid pool size 40000"),
        (lambda b: b.run("enable", ifname="eth0.42", nope=1), "unknown field 'nope'"),
        (lambda b: b.query(None), "a network interface must be specified"),
        (lambda b: b.run("query"), "a network interface must be specified"),
        (lambda b: b.run("show-vlans", "x"), "show-vlans takes no argument"),
        (lambda b: b.run("frobnicate"), "no operation 'frobnicate'"),
        (lambda b: b.query("eth9"), "cannot open out-of-band port eth9"),
    ],
)
def test_bad_input_is_an_evl_error(board, call, message):
    with pytest.raises(EvlError) as info:
        call(board)
    assert message in info.value.format("x")


def test_tuple_of_vlan_ids(board):
    assert board.set_vlans((55, 56, 57)).vlans == "55-57"


def test_open_board_errors(sim_env):
    with pytest.raises(EvlError, match="unknown transport 'pigeon'"):
        api.open_board(transport="pigeon", env=sim_env)
    with pytest.raises(EvlError, match="needs the remote transport"):
        api.open_board(transport="sim", remote="board1", env=sim_env)


def test_from_json_is_strict():
    stat = DevStat(rx_packets=5, oob_port=True)
    assert from_json(DevStat, to_json(stat)) == stat
    short = {k: v for k, v in to_json(stat).items() if k != "tx_nomem"}
    with pytest.raises(ShapeError, match="lacks 'tx_nomem'"):
        from_json(DevStat, short)
    with pytest.raises(ShapeError, match="not an integer"):
        from_json(DevStat, {**to_json(stat), "rx_packets": True})
    with pytest.raises(ShapeError, match="not a boolean"):
        from_json(DevStat, {**to_json(stat), "oob_port": 1})


def test_one_open_board_sees_each_change_of_its_ports(board):
    """A batch on one open board: a port disabled and another enabled (the list's length unchanged)."""
    board.enable("eth0")
    assert board.query("eth0").stat.oob_port is True
    board.disable("eth0")
    board.enable("eth1")
    assert (board.query("eth1").stat.oob_port, board.query("eth0").stat.oob_port) == (True, False)
    ports = {row.ifname: row.stat.oob_port for row in board.query_all().interfaces if row.stat is not None}
    assert ports["eth1"] is True and ports["eth0"] is False
