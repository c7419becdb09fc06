"""The operations table and the transport contract: one declaration, everything derived from it."""

from __future__ import annotations

import inspect
import json

import pytest

from evl_core.getopt import NO_ARGUMENT, REQUIRED_ARGUMENT
from evl_core.hookspecs import hookimpl
from evl_net.engine.request import OpResult
from evl_net.hookspecs import Formatter, Operation, TransportInfo
from evl_net.transports import contract
from evl_net.transports.remote import protocol

# -- the transport contract --------------------------------------------------------------------


def test_the_transport_protocol_is_the_primitives_table():
    declared = {
        name
        for name, member in vars(contract.Transport).items()
        if callable(member) and not name.startswith("_") and name != "close"
    }
    assert declared == set(contract.BY_METHOD)
    for primitive in contract.PRIMITIVES:
        params = list(inspect.signature(getattr(contract.Transport, primitive.method)).parameters)[1:]
        assert params == [a[0] for a in primitive.args], primitive.method


@pytest.mark.parametrize(
    "module, cls",
    [
        ("evl_net.transports.sim", "SimTransport"),
        ("evl_net.transports.ioctl", "IoctlTransport"),
    ],
)
def test_local_transports_implement_every_primitive_with_its_parameters(module, cls):
    import importlib

    klass = getattr(importlib.import_module(module), cls)
    for primitive in contract.PRIMITIVES:
        method = getattr(klass, primitive.method)
        params = list(inspect.signature(method).parameters)[1:]
        assert params == [a[0] for a in primitive.args], f"{cls}.{primitive.method}"


def test_the_remote_allowlist_is_derived_from_the_table():
    """Every primitive, and the session's own board.lock (no transport request: the session's lock)."""
    assert set(protocol.CAPS) == {p.wire for p in contract.PRIMITIVES} | {protocol.BOARD_LOCK}
    assert protocol.BOARD_LOCK not in {p.wire for p in contract.PRIMITIVES}
    for p in contract.PRIMITIVES:
        assert protocol.OPS[p.wire].mutation == p.mutates
    assert protocol.LARGE == {"bpf.load"}
    assert set(protocol.OPS["bpf.load"].args) == {"ifname", "name", "size", "sha256", "data"}


def test_remote_transport_methods_come_from_the_table():
    from evl_net.transports.remote import RemoteTransport

    sent = []

    class Session:
        label = "board"

        async def call(self, op, args):
            sent.append((op, args))
            value = {"changed": True, "pool_size": 7, "buffer_size": 4096}
            return protocol.Reply(1, True, {"data": value, "changed": True, "before": None, "after": None}, None, [])

    import asyncio

    t = RemoteTransport(Session(), asyncio.run)
    port = t.enable_port("eth0.42", 7, 0)
    assert sent == [("port.enable", {"ifname": "eth0.42", "pool_size": 7, "buffer_size": 0})]
    assert (port.changed, port.pool_size, port.buffer_size) == (True, 7, 4096)
    with pytest.raises(AttributeError):
        t.no_such_primitive  # noqa: B018


# -- collisions ------------------------------------------------------------------------------------


class Extra(OpResult):
    action = "x"


def _op(name, long, short=None, run="tests:nothing"):
    return Operation(name, 80, long, short, NO_ARGUMENT, run, f"the {name} operation")


class PluginA:
    __name__ = "plugin_a"

    @hookimpl
    def evl_net_operations(self):
        return [_op("frob", "frob"), _op("query", "query-twice"), _op("sneaky", "sneaky", short="z")]

    @hookimpl
    def evl_net_formatters(self):
        return [Formatter("json", "a takeover", "x:y"), Formatter("yaml", "mine", "x:y")]

    @hookimpl
    def evl_net_transports(self):
        return [TransportInfo("carrier", "pigeons", "x:y")]


class PluginB:
    __name__ = "plugin_b"

    @hookimpl
    def evl_net_operations(self):
        return [_op("frobnicate", "frob")]

    @hookimpl
    def evl_net_formatters(self):
        return [Formatter("yaml", "mine too", "x:y")]

    @hookimpl
    def evl_net_transports(self):
        return [TransportInfo("carrier", "pigeons too", "x:y")]


def test_collisions_name_both_plugins_and_built_ins_win(evl):
    plugins = [PluginA(), PluginB()]
    run = evl("net", "--frob", env=None, plugins=plugins)
    assert run.code == 1
    assert run.err.splitlines()[-1].startswith("evl-net: option --frob is claimed by several plugins: ")
    assert "plugin_a" in run.err.splitlines()[-1] and "plugin_b" in run.err.splitlines()[-1]
    assert "operation 'query' is built in; ignored" in run.err
    assert "-z: the C tool's letters are taken, new options are long-only" in run.err
    run = evl("net", "--format=yaml", "-n", plugins=plugins)
    assert run.code == 1 and "unknown formatter 'yaml'" in run.err
    run = evl("net", "--transport=carrier", "-n", plugins=plugins)
    assert run.code == 1
    assert "transport 'carrier' is claimed by several plugins: plugin_a and plugin_b" in run.err
    run = evl("net", "--json", "-n", plugins=plugins)  # the built-in json formatter stands
    assert run.code == 0 and json.loads(run.out.splitlines()[-1])["action"] == "show-vlans"
    run = evl("net", "-Qa", "-i", "eth0.42", plugins=plugins)  # and so does -Q
    assert run.code == 0 and run.out == "0\n"


class TextlessPlugin:
    __name__ = "plugin_textless"

    @hookimpl
    def evl_net_operations(self):
        return [
            Operation(
                "count-ifaces", 80, "count-interfaces", None, NO_ARGUMENT, count, "count them", requests=("interfaces",)
            ),
            Operation("echo", 85, "echo", None, REQUIRED_ARGUMENT, echo, "echo WORD", metavar="WORD"),
        ]


from dataclasses import dataclass  # noqa: E402
from typing import ClassVar  # noqa: E402


@dataclass(frozen=True)
class Counted(OpResult):
    action: ClassVar[str] = "count-ifaces"
    interfaces: int


@dataclass(frozen=True)
class Echoed(OpResult):
    action: ClassVar[str] = "echo"
    word: str

    def text(self, request):
        return self.word + "\n"


def count(request, argument, transport):
    return Counted(len(transport.interfaces()))


def echo(request, argument, transport):
    return Echoed(argument)


def test_a_third_party_result_without_text_still_prints(evl):
    run = evl("net", "--count-interfaces", plugins=[TextlessPlugin()])
    assert (run.code, run.out) == (0, "interfaces: 6\n")
    run = evl("net", "--echo", "hi", "--count-int", "--json", plugins=[TextlessPlugin()])
    assert [json.loads(x) for x in run.out.splitlines()] == [
        {"action": "count-ifaces", "interfaces": 6},
        {"action": "echo", "word": "hi"},
    ]
    run = evl("net", "--help", plugins=[TextlessPlugin()])
    assert "\n--echo=WORD" in run.err and "\n--count-interfaces" in run.err


class GreedyPlugin:
    """Third-party operations that would change what the C tool's options mean, or lie about what they do."""

    __name__ = "plugin_greedy"

    @hookimpl
    def evl_net_operations(self):
        return [
            Operation("take-q", 81, "Q", None, NO_ARGUMENT, count, "takes -Q's key", requests=("interfaces",)),
            Operation("take-json", 82, "json", None, NO_ARGUMENT, count, "takes --json", requests=("interfaces",)),
            Operation("take-all", 83, "all", None, NO_ARGUMENT, count, "takes --all", requests=("interfaces",)),
            Operation("bad-req", 84, "bad-req", None, NO_ARGUMENT, count, "asks for nothing", requests=("nope",)),
            Operation("sly", 85, "sly", None, NO_ARGUMENT, count, "declares nothing"),
        ]


def test_plugins_cannot_change_what_the_c_tools_options_mean(evl):
    plugins = [GreedyPlugin()]
    run = evl("net", "-Qo", "-i", "eth0.42", plugins=plugins)
    assert (run.code, run.out) == (0, "yes\n")  # -Q is still the C tool's
    for warning in (
        "--json is built in",
        "--all would change what it abbreviates in the C tool (--allow-gateway)",
        "'nope' is not a primitive of the transport contract",
    ):
        assert warning in run.err, warning
    run = evl("net", "-s", "10.10.10.10", "--all", plugins=plugins)  # --all still abbreviates --allow-gateway
    assert "take-all" not in run.out and "interfaces" not in run.out
    run = evl("net", "-n", "--json", plugins=plugins)
    assert run.code == 0 and json.loads(run.out)["action"] == "show-vlans"
    run = evl("net", "--Q", plugins=plugins)  # a long option of its own, apart from -Q
    assert (run.code, run.out) == (0, "interfaces: 6\n")


def test_a_third_party_operation_gets_only_the_primitives_it_declares(evl):
    run = evl("net", "--sly", plugins=[GreedyPlugin()])
    assert run.code == 1
    assert run.err.splitlines()[-1] == "evl-net: operation 'sly' calls interfaces, which its requests do not declare"
