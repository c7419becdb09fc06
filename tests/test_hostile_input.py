"""Hostile input (issue 11): every bad input gets one clear line, a non-zero exit, and changes nothing.

Each case of TABLE runs the real ``evl`` console script as a process, in a
directory of its own (HOME, XDG_STATE_HOME, EVL_SIM_STATE, EVL_NET_AGENT_DIR
point into it; ``ssh`` on PATH is a stub that never connects), after its
setup steps (a known-good simulator state copied in, FIFOs, devices,
symlink loops, sparse files, board and state variants, eBPF objects...).
The common checker (:func:`check`) fails a case on a traceback, an
``internal error``, a hang (20 s), a zero exit where the input must be
refused, more than one message line on stderr (the usage that ``evl net``
prints after a usage error, and argparse's usage before one, do not count),
raw control characters or invalid UTF-8 on stderr, a missing case-specific
message fragment, or a change to what the user had (the case directory,
state file included, byte for byte).

The cases run concurrently (processes are independent: one directory each),
once per session, for the cases pytest selected; each test then reports its
own case.  ``HOSTILE_REPORT=/path/report.md`` writes a report of the failing
cases grouped by class at the end of the session.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
EVL = str(BIN / "evl")
EVL_NET = str(BIN / "evl-net")
TIMEOUT = 20.0
WORKERS = int(os.environ.get("HOSTILE_WORKERS", "8"))
MEMORY_LIMIT = 3 * 1024**3  # bytes of address space per case: reading /dev/zero must not take the machine down
U64 = 2**64
STATE = "sim-state.json"


def _boards_dir() -> Path:
    from evl_net.transports.sim import board

    return Path(board.BOARDS_DIR)


MANUAL = (_boards_dir() / "manual.toml").read_text()


# ---------------------------------------------------------------------------------------------
# case records


@dataclass(frozen=True)
class Case:
    id: str
    cls: str
    argv: tuple[Any, ...]  # argv[0]: "evl" or "evl-net"; {D} case dir, {S} state file, {O} objects dir
    env: tuple[tuple[str, Any], ...] = ()  # overrides (None: unset)
    stdin: Any = None  # bytes, or the name of a generator in STDINS
    setup: tuple[str, ...] = ("good",)  # steps of SETUPS, "name" or "name:arg"
    ok: bool = False  # True: must succeed (exit 0); False: must be refused (non-zero)
    codes: tuple[int, ...] = ()  # the allowed exit statuses (empty: any non-zero / 0 per ok)
    has: tuple[str, ...] = ()  # every fragment appears in the message (case-insensitive)
    any: tuple[str, ...] = ()  # at least one of these appears
    prefix: str | None = None  # the message line starts with this
    lacks: tuple[str, ...] = ()  # none of these appears on stderr
    state: str | None = "bytes"  # "bytes": the case directory is unchanged; None: not checked
    lines: bool = True  # exactly one message line (when refused)
    maxlen: int | None = None  # the message line is at most this long
    stream: str | None = None  # stdout: None (a pipe), "closed", "full" (/dev/full), "epipe"
    post: tuple[str, ...] = ()  # checks of POSTS, after the run
    agent: bool = False  # the agent's rules: exit 0 or 3, JSON frames on stdout
    log_grows: bool = False  # the simulated kernel logs the refusal (as dmesg would): the state's log may grow
    note: str = ""


TABLE: list[Case] = []


def C(id: str, cls: str, argv: Any, **kw: Any) -> None:
    if isinstance(argv, (str, bytes)):
        argv = (argv,)
    if "env" in kw and isinstance(kw["env"], dict):
        kw["env"] = tuple(kw["env"].items())
    for key in ("has", "any", "lacks", "setup", "post", "codes"):
        if key in kw and isinstance(kw[key], str):
            kw[key] = (kw[key],)
    TABLE.append(Case(id=id, cls=cls, argv=tuple(argv), **kw))


# ---------------------------------------------------------------------------------------------
# A. files that are not regular files

KINDS = {
    "fifo": ("FIFO", "not a regular file"),
    "dir": ("Is a directory", "a directory"),
    "loop": ("Too many levels of symbolic links", "symbolic link"),
    "sparse": ("larger than", "too large", "too big", "limit"),
    "zero": ("not a regular file", "character device"),
    "full": ("not a regular file", "character device"),
}

for kind, frags in KINDS.items():
    thing = f"{{D}}/k-{kind}"
    mk = (f"make:{kind}:k-{kind}",)
    name = f"k-{kind}"
    A = "A non-regular files"
    C(
        f"board-{kind}",
        A,
        ("evl", "net", "--board", thing, "-n"),
        setup=("good", *mk),
        has=name,
        any=frags,
        prefix="evl-net: ",
    )
    C(
        f"board-env-{kind}",
        A,
        ("evl", "net", "-n"),
        env={"EVL_SIM_BOARD": thing},
        setup=("good", *mk),
        has=name,
        any=frags,
    )
    C(
        f"sim-board-{kind}",
        A,
        ("evl", "sim", "--board", thing, "show"),
        setup=("good", *mk),
        has=name,
        any=frags,
        prefix="evl-sim: ",
    )
    C(f"state-{kind}-read", A, ("evl", "net", "-n"), env={"EVL_SIM_STATE": thing}, setup=mk, has=name, any=frags)
    C(f"state-{kind}-mutate", A, ("evl", "net", "-N43"), env={"EVL_SIM_STATE": thing}, setup=mk, has=name, any=frags)
    C(
        f"state-{kind}-show",
        A,
        ("evl", "sim", "show"),
        env={"EVL_SIM_STATE": thing},
        setup=mk,
        has=name,
        any=frags,
        prefix="evl-sim: ",
    )
    if kind != "sparse":  # a big regular file as state is corrupt, and reset is the documented remedy
        C(
            f"state-{kind}-reset",
            A,
            ("evl", "sim", "reset"),
            env={"EVL_SIM_STATE": thing},
            setup=mk,
            has=name,
            any=frags,
            prefix="evl-sim: ",
        )
    if kind != "sparse":  # a big lock file is still a lock file: nothing reads it
        lock = (f"make:{kind}:{STATE}.lock",)
        C(f"lock-{kind}-read", A, ("evl", "net", "-n"), setup=("good", *lock), has=f"{STATE}.lock", any=frags)
        C(f"lock-{kind}-mutate", A, ("evl", "net", "-N43"), setup=("good", *lock), has=f"{STATE}.lock", any=frags)
        C(
            f"lock-{kind}-show",
            A,
            ("evl", "sim", "show"),
            setup=("good", *lock),
            has=f"{STATE}.lock",
            any=frags,
            prefix="evl-sim: ",
        )
    C(
        f"F-{kind}",
        A,
        ("evl", "net", "-i", "eth0.42", f"-F{thing}"),
        setup=("good", *mk),
        has=name,
        any=frags,
        prefix="evl-net: ",
    )
    C(f"filter-obj-{kind}", A, ("evl", "sim", "filter", thing), setup=mk, has=name, any=frags, prefix="evl-sim: ")
    C(
        f"net-config-{kind}",
        A,
        ("evl", "net-config", "validate", thing),
        setup=mk,
        has=name,
        any=frags if kind != "dir" else ("no net-config file (*.toml) in",),  # a directory is its *.toml files
        prefix="evl-net-config: ",
    )
    C(
        f"net-config-plan-{kind}",
        A,
        ("evl", "net-config", "plan", thing),
        setup=("good", *mk),
        has=name,
        any=frags if kind != "dir" else ("no net-config file (*.toml) in",),
        prefix="evl-net-config: ",
    )
    if kind not in ("dir", "sparse"):  # a directory stands for its files; a big regular file is replaced whole
        C(
            f"net-config-export-output-{kind}",
            A,
            ("evl", "net-config", "export", "--output", thing),
            setup=("good", *mk),
            has=name,
            any=("not a regular file", "Not a directory", "Permission denied", "Too many levels of symbolic links"),
            prefix="evl-net-config: ",
        )
    C(
        f"filter-pcap-{kind}",
        A,
        ("evl", "sim", "filter", "{O}/netrx.o", "--pcap", thing),
        setup=("bpf", *mk),
        has=name,
        any=frags,
        prefix="evl-sim: ",
    )
    C(
        f"filter-frames-{kind}",
        A,
        ("evl", "sim", "filter", "{O}/netrx.o", "--frames", thing),
        setup=("bpf", *mk),
        has=name,
        any=frags,
        prefix="evl-sim: ",
    )
    C(
        f"hosts-{kind}",
        A,
        ("evl", "net", "--hosts", thing, "-n"),
        setup=("good", *mk),
        has=name,
        any=frags,
        prefix="evl-net: ",
    )

# ---------------------------------------------------------------------------------------------
# B. board files

B = "B board files"
ETH0 = 'name = "eth0"\n'
VLAN = 'name = "eth0.42"\n'
BOARD_CASES: list[tuple[str, Any, tuple[str, ...], tuple[str, ...]]] = [
    # id, variant, fragments all of which appear, fragments one of which appears
    ("route-int", ("raw", b"route = [1]\n"), ("route[0]",), ()),
    ("route-string", ("raw", b'route = "default"\n'), ("route",), ()),
    ("route-table", ("raw", b'[route]\ndst = "default"\nvia = "192.0.2.1"\n'), ("route",), ()),
    ("peer-int", ("raw", b"peer = [5]\n"), ("peer[0]",), ()),
    ("peer-table", ("raw", b'[peer]\nip = "10.0.0.1"\nmac = "02:00:00:00:00:01"\n'), ("peer",), ()),
    ("interface-string", ("raw", b'interface = "eth0"\n'), ("interface",), ()),
    ("interface-int-item", ("raw", b"interface = [1]\n"), ("interface[0]",), ()),
    ("interface-string-item", ("raw", b'interface = ["eth0"]\n'), ("interface[0]",), ()),
    ("hosts-string", ("raw", b'hosts = "evl-peer"\n'), ("hosts",), ()),
    ("hosts-list", ("raw", b'hosts = ["evl-peer"]\n'), ("hosts",), ()),
    ("hosts-int", ("app", "[hosts.more]\nx = 1\n"), ("hosts",), ()),
    ("route-item-string", ("raw", b'route = ["default"]\n'), ("route[0]",), ()),
    ("counters-int", ("eth0", "counters = 5\n"), ("interface[1].counters",), ()),
    ("counters-list", ("eth0", "counters = [1]\n"), ("interface[1].counters",), ()),
    ("addresses-string", ("eth0", 'addresses = "10.0.0.1/8"\n'), ("interface[1].addresses",), ()),
    ("addresses-int", ("eth0", "addresses = [1]\n"), ("interface[1].addresses[0]",), ()),
    ("addresses-table", ("eth0", "addresses = [{a = 1}]\n"), ("interface[1].addresses[0]",), ()),
    ("name-int", ("sub", ETH0, "name = 5\n"), ("interface[1].name",), ()),
    ("mtu-string", ("eth0", 'mtu = "1500"\n'), ("interface[1].mtu",), ()),
    ("mtu-float", ("eth0", "mtu = 1e3\n"), ("interface[1].mtu",), ()),
    ("mtu-inf", ("eth0", "mtu = inf\n"), ("interface[1].mtu",), ()),
    ("mtu-nan", ("eth0", "mtu = nan\n"), ("interface[1].mtu",), ()),
    ("mtu-huge", ("eth0", "mtu = 99999999999999999999\n"), ("interface[1].mtu",), ()),
    ("mtu-negative", ("eth0", "mtu = -1500\n"), ("interface[1].mtu",), ()),
    ("up-string", ("eth0", 'up = "yes"\n'), ("interface[1].up",), ()),
    ("port-int", ("eth0", "port = 1\n"), ("interface[1].port",), ()),
    (
        "mac-int",
        (
            "sub",
            'mac = "50:2d:f4:1d:32:d0"\n\n[[interface]]\nname = "eth0.42"',
            'mac = 5\n\n[[interface]]\nname = "eth0.42"',
        ),
        ("interface[1].mac",),
        (),
    ),
    ("parent-int", ("sub", 'parent = "eth0"\n', "parent = 5\n"), ("interface[2].parent",), ()),
    (
        "vlan-id-float",
        ("sub", 'vlan_id = 42\nmac = "50:2d:f4:1d:32:d0"', 'vlan_id = 42.0\nmac = "50:2d:f4:1d:32:d0"'),
        ("interface[2].vlan_id",),
        (),
    ),
    (
        "vlan-id-string",
        ("sub", 'vlan_id = 42\nmac = "50:2d:f4:1d:32:d0"', 'vlan_id = "42"\nmac = "50:2d:f4:1d:32:d0"'),
        ("interface[2].vlan_id",),
        (),
    ),
    (
        "vlan-id-huge",
        ("sub", 'vlan_id = 42\nmac = "50:2d:f4:1d:32:d0"', 'vlan_id = 99999999999999999999\nmac = "50:2d:f4:1d:32:d0"'),
        ("interface[2].vlan_id",),
        (),
    ),
    ("page-size-string", ("sub", "page_size = 4096", 'page_size = "4096"'), ("page_size",), ()),
    ("page-size-float", ("sub", "page_size = 4096", "page_size = 4096.0"), ("page_size",), ()),
    ("page-size-inf", ("sub", "page_size = 4096", "page_size = inf"), ("page_size",), ()),
    ("solicit-inf", ("sub", "solicit_timeout = 5", "solicit_timeout = inf"), ("solicit_timeout",), ()),
    ("solicit-nan", ("sub", "solicit_timeout = 5", "solicit_timeout = nan"), ("solicit_timeout",), ()),
    ("solicit-huge", ("sub", "solicit_timeout = 5", "solicit_timeout = 1e308"), ("solicit_timeout",), ()),
    ("solicit-string", ("sub", "solicit_timeout = 5", 'solicit_timeout = "5"'), ("solicit_timeout",), ()),
    ("counter-negative", ("vlan", "counters = { rx_packets = -1 }\n"), ("interface[2].counters.rx_packets",), ()),
    (
        "counter-2p64",
        ("vlan", "counters = { rx_packets = 18446744073709551616 }\n"),
        ("interface[2].counters.rx_packets",),
        (),
    ),
    ("counter-float", ("vlan", "counters = { rx_bytes = 1.5 }\n"), ("interface[2].counters.rx_bytes",), ()),
    ("counter-inf", ("vlan", "counters = { rx_bytes = inf }\n"), ("interface[2].counters.rx_bytes",), ()),
    ("counter-nan", ("vlan", "counters = { tx_bytes = nan }\n"), ("interface[2].counters.tx_bytes",), ()),
    ("counter-string", ("vlan", 'counters = { tx_packets = "1" }\n'), ("interface[2].counters.tx_packets",), ()),
    ("counter-bool", ("vlan", "counters = { csum_errors = true }\n"), ("interface[2].counters.csum_errors",), ()),
    (
        "skb-free-above-total",
        ("eth0", "port = true\ncounters = { skb_total = 5, skb_free = 10 }\n"),
        ("interface[1].counters",),
        ("skb_free", "skb_total"),
    ),
    ("vlan-mtu-above-parent", ("vlan", "mtu = 9000\n"), ("interface[2].mtu",), ()),
    (
        "vlan-duplicate-id",
        ("app", '[[interface]]\nname = "eth0.x"\nparent = "eth0"\nvlan_id = 42\n'),
        ("vlan_id",),
        ("interface[6]", "eth0.x"),
    ),
    (
        "vlan-missing-parent",
        ("app", '[[interface]]\nname = "eth9.42"\nparent = "eth9"\nvlan_id = 42\n'),
        ("parent",),
        ("eth9",),
    ),
    (
        "vlan-id-zero",
        ("sub", 'vlan_id = 42\nmac = "50:2d:f4:1d:32:d0"', 'vlan_id = 0\nmac = "50:2d:f4:1d:32:d0"'),
        ("interface[2].vlan_id",),
        (),
    ),
    (
        "non-utf8-string",
        ("raw", MANUAL.replace('driver = "fec"', 'driver = "f\udcffc"').encode("utf-8", "surrogateescape")),
        ("board.toml",),
        ("UTF-8", "utf-8", "decode"),
    ),
    ("non-utf8-comment", ("raw", b"# caf\xe9\n" + MANUAL.encode()), ("board.toml",), ("UTF-8", "utf-8", "decode")),
    ("nul-byte", ("raw", MANUAL.encode().replace(b'driver = "fec"', b'driver = "f\x00c"')), ("board.toml",), ()),
    (
        "raw-escape-in-string",
        ("raw", MANUAL.encode().replace(b'driver = "fec"', b'driver = "f\x1b[2Jc"')),
        ("board.toml",),
        (),
    ),
    ("deep-nesting", ("raw", b"x = " + b"[" * 100000 + b"]" * 100000 + b"\n"), ("board.toml",), ()),
    ("unknown-key-escape", ("raw", b'"\\u001b[31mred" = 1\n'), ("board.toml",), ()),
    ("name-escape", ("sub", ETH0, 'name = "eth\\u001b[2J"\n'), ("interface[1].name",), ()),
    ("name-long", ("sub", ETH0, 'name = "' + "e" * 300 + '"\n'), ("interface[1].name",), ()),
    ("route-via-bad", ("sub", 'via = "192.0.2.1"', 'via = "999.0.0.1"'), ("route[0].via",), ()),
    ("route-dev-missing", ("sub", 'dev = "eth1"', 'dev = "eth9"'), ("route[0].dev",), ()),
    ("peer-ip-bad", ("sub", 'ip = "10.10.10.10"', 'ip = "10.10.10.300"'), ("peer[0].ip",), ()),
    ("peer-reachable-string", ("sub", "reachable = false", 'reachable = "no"'), ("peer[3].reachable",), ()),
    ("address-prefix-33", ("sub", '"10.10.10.11/24"', '"10.10.10.11/33"'), ("interface[2].addresses[0]",), ()),
    ("duplicate-key", ("raw", b"page_size = 4096\npage_size = 4096\n"), ("board.toml",), ()),
]
for bid, _variant, has, anyf in BOARD_CASES:
    C(
        f"board-{bid}",
        B,
        ("evl", "net", "--board", "{D}/board.toml", "-n"),
        setup=("good", f"board:{bid}"),
        has=has,
        any=anyf,
        prefix="evl-net: ",
        maxlen=300,
    )
for bid in ("route-int", "mtu-inf", "skb-free-above-total", "vlan-duplicate-id", "non-utf8-string", "counter-2p64"):
    C(
        f"board-sim-{bid}",
        B,
        ("evl", "sim", "--board", "{D}/board.toml", "show"),
        setup=("good", f"board:{bid}"),
        has=dict((b[0], b[2]) for b in BOARD_CASES)[bid],
        prefix="evl-sim: ",
    )
    C(
        f"board-env-{bid}",
        B,
        ("evl", "net", "-N43"),
        env={"EVL_SIM_BOARD": "{D}/board.toml"},
        setup=("good", f"board:{bid}"),
        has=dict((b[0], b[2]) for b in BOARD_CASES)[bid],
        prefix="evl-net: ",
    )

# ---------------------------------------------------------------------------------------------
# C. state files

S = "C state files"
CORRUPT = ("corrupt", "evl sim reset")


def _set(path: str, value: Any) -> Callable[[dict], Any]:
    def apply(d: dict) -> dict:
        keys = path.split(".")
        node = d
        for k in keys[:-1]:
            node = node[k] if not isinstance(node, list) else node[int(k)]
        if isinstance(node, list):
            node[int(keys[-1])] = value
        elif value is _DEL:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value
        return d

    return apply


_DEL = object()


def _map_state(**kw: Any) -> dict[str, Any]:
    """A map of a filter as the state keeps it (an array of 4 u64), with ``kw`` changed."""
    m: dict[str, Any] = {
        "name": "counts", "type": 2, "key_size": 4, "value_size": 8, "max_entries": 4, "flags": 0,
        "section": ".maps", "cpus": 1, "entries": {},
    }  # fmt: skip
    m.update(kw)
    return m


DEEP = "[" * 100000 + "]" * 100000
STATE_CASES: list[tuple[str, Any]] = [
    ("pools-list", _set("pools", [])),
    ("pools-int", _set("pools.eth0", 5)),
    ("pools-string", _set("pools", "eth0")),
    ("pool-free-string", _set("pools.eth0.skb_free", "x")),
    ("pool-free-negative", _set("pools.eth0.skb_free", -1)),
    ("pool-free-2p64", _set("pools.eth0.skb_free", U64)),
    ("pool-free-float", _set("pools.eth0.skb_free", 1.5)),
    ("pool-free-bool", _set("pools.eth0.skb_free", True)),
    ("pool-free-null", _set("pools.eth0.skb_free", None)),
    ("pool-total-negative", _set("pools.eth0.skb_total", -256)),
    ("pool-size-negative", _set("pools.eth0.skb_size", -4096)),
    ("pool-missing-key", _set("pools.eth0.skb_size", _DEL)),
    ("filters-list", _set("filters", [])),
    ("filters-int", _set("filters.eth0", 5)),
    ("filters-insns-int", _set("filters.eth0.insns", 5)),
    ("filters-on-non-port", _set("filters.eth1", {"object": "x.o"})),
    ("ports-object", _set("ports", {})),
    ("maps-int", _set("filters.eth0.maps", 5)),
    ("maps-partial", _set("filters.eth0.maps", [{"name": "m"}])),
    ("maps-type", _set("filters.eth0.maps", [_map_state(type=99)])),
    ("maps-cpus-0", _set("filters.eth0.maps", [_map_state(cpus=0)])),
    ("maps-cpus-array", _set("filters.eth0.maps", [_map_state(cpus=4)])),
    ("maps-key-hex", _set("filters.eth0.maps", [_map_state(entries={"0000000": "00" * 8})])),
    ("maps-value-short", _set("filters.eth0.maps", [_map_state(entries={"00000000": "00"})])),
    ("maps-not-hex", _set("filters.eth0.maps", [_map_state(entries={"zzzzzzzz": "00" * 8})])),
    ("maps-index", _set("filters.eth0.maps", [_map_state(entries={"04000000": "00" * 8})])),
    (
        "maps-too-many",
        _set(
            "filters.eth0.maps",
            [_map_state(type=1, max_entries=1, entries={"01000000": "00" * 8, "02000000": "00" * 8})],
        ),
    ),
    ("maps-huge", _set("filters.eth0.maps", [_map_state(max_entries=1 << 40)])),
    ("maps-name-escape", _set("filters.eth0.maps", [_map_state(name="a\x1b[31mred\n")])),
    ("maps-name-empty", _set("filters.eth0.maps", [_map_state(name="")])),
    (
        "maps-total",
        _set("filters.eth0.maps", [_map_state(name=f"m{i}", max_entries=1 << 20, value_size=60) for i in range(5)]),
    ),
    (
        "ringbuf-positions",
        _set(
            "filters.eth0.maps",
            [_map_state(type=27, key_size=0, value_size=0, max_entries=4096, records=["00"], prod=0, cons=0)],
        ),
    ),
    ("ports-int-item", _set("ports", [5])),
    ("ports-unknown", _set("ports", ["eth0.42", "nope0"])),
    ("ports-string", _set("ports", "eth0.42")),
    ("ports-null-item", _set("ports", [None])),
    ("ports-twice", _set("ports", ["eth0.42", "eth0.42"])),
    ("counters-negative", _set("counters", {"eth0.42": {"rx_packets": -1}})),
    ("counters-2p64", _set("counters", {"eth0.42": {"rx_packets": U64}})),
    ("counters-string", _set("counters", {"eth0.42": {"rx_packets": "1"}})),
    ("counters-float", _set("counters", {"eth0.42": {"rx_packets": 1.5}})),
    ("counters-list", _set("counters", [])),
    ("counters-flat", _set("counters", {"eth0.42": 5})),
    ("vlans-negative", _set("vlans", [-1])),
    ("vlans-4096", _set("vlans", [4096])),
    ("vlans-string", _set("vlans", ["42"])),
    ("vlans-bool", _set("vlans", [True])),
    ("vlans-int", _set("vlans", 42)),
    ("arp-int", _set("arp", [5])),
    ("arp-partial", _set("arp", [{"dev": "eth0.42"}])),
    ("arp-bad-state", _set("arp.0.state", "X")),
    ("arp-non-port", _set("arp.0.dev", "eth2")),
    ("log-int-item", _set("log", [5])),
    ("log-string", _set("log", "x")),
    ("boot-string", _set("boot", "x")),
    ("boot-nan", _set("boot", float("nan"))),
    ("boot-inf", _set("boot", float("inf"))),
    ("board-int", _set("board", 5)),
    ("board-interfaces-list", _set("board.interfaces", [])),
    ("board-page-size-string", _set("board.page_size", "x")),
    # The state only names a board file's board; one stored in full (an edited board's) is read as the board.
    ("board-mtu-negative", _set("board.interfaces", {"eth0": {"name": "eth0", "mtu": -1}})),
    ("board-counter-negative", _set("board.interfaces", {"eth0": {"name": "eth0", "counters": {"rx_packets": -5}}})),
    ("board-timeout-nan", _set("board.solicit_timeout", float("nan"))),
    ("board-route-dev-missing", _set("board.routes", [{"dst": "0.0.0.0/0", "via": "192.0.2.1", "dev": "nope0"}])),
    ("others-list", _set("others", [])),
    ("others-int", _set("others", {"k": 5})),
    ("format-3", _set("format", 3)),
    ("format-string", _set("format", "1")),
    ("format-missing", _set("format", _DEL)),
    ("key-int", _set("key", 5)),
    ("log-deep", ("replace", '"log":[', '"log":[' + DEEP + ",")),
    ("deep-nesting", ("raw", DEEP.encode())),
    ("huge-int", ("replace", '"vlans":[42]', '"vlans":[' + "9" * 5000 + "]")),
    ("top-array", ("raw", b"[1, 2, 3]")),
    ("top-string", ("raw", b'"state"')),
    ("top-null", ("raw", b"null")),
    ("top-number", ("raw", b"42")),
    ("empty", ("raw", b"")),
    ("garbage", ("raw", bytes(range(256)) * 4)),
    ("non-utf8", ("replace", '"log":[', '"log":["\udcff",')),
    ("truncated", ("truncate", 0.5)),
    ("nul-bytes", ("raw", b"\x00" * 4096)),
]
for sid, _transform in STATE_CASES:
    C(f"state-{sid}", S, ("evl", "net", "-n"), setup=(f"state:{sid}",), has=CORRUPT, prefix="evl-net: ", maxlen=400)
for sid in (
    "pools-list",
    "pool-free-negative",
    "ports-int-item",
    "filters-int",
    "counters-negative",
    "deep-nesting",
    "garbage",
    "boot-nan",
    "arp-bad-state",
    "format-3",
):
    C(f"state-{sid}-mutate", S, ("evl", "net", "-N43"), setup=(f"state:{sid}",), has=CORRUPT, prefix="evl-net: ")
    C(f"state-{sid}-sim-show", S, ("evl", "sim", "show"), setup=(f"state:{sid}",), has=CORRUPT, prefix="evl-sim: ")
    C(
        f"state-{sid}-sim-rx",
        S,
        ("evl", "sim", "rx", "eth0.42"),
        setup=(f"state:{sid}",),
        has=CORRUPT,
        prefix="evl-sim: ",
    )
for sid in ("pools-int", "vlans-string", "huge-int", "empty"):
    C(
        f"state-{sid}-query",
        S,
        ("evl", "net", "-Q", "-i", "eth0.42"),
        setup=(f"state:{sid}",),
        has=CORRUPT,
        prefix="evl-net: ",
    )
C(
    "state-filters-insns-garbage-rx",
    S,
    ("evl", "sim", "rx", "eth0.42"),
    setup=("good", "insns-garbage"),
    has=CORRUPT,
    prefix="evl-sim: ",
    note="a filter whose program is not base64: the state is corrupt (found at load or at use)",
)
C(
    "state-dir-reset-message",
    S,
    ("evl", "sim", "reset"),
    env={"EVL_SIM_STATE": "{D}/k-dir"},
    setup=("make:dir:k-dir",),
    has=("k-dir", "Is a directory"),
    prefix="evl-sim: ",
)

# ---------------------------------------------------------------------------------------------
# D. identity of the board; the symlinked state

D = "D identity and symlinks"
for how in ("touch", "rewrite", "newinode", "touchpast", "cpp"):
    C(
        f"board-copy-{how}",
        D,
        ("evl", "net", "--board", "{D}/board.toml", "-Qa", "-i", "eth0.42"),
        setup=("copyboard", f"board-{how}"),
        ok=True,
        state=None,
        post=("stdout256", "vlans42"),
    )
    C(
        f"board-copy-{how}-env",
        D,
        ("evl", "net", "-Qa", "-i", "eth0.42"),
        env={"EVL_SIM_BOARD": "{D}/board.toml"},
        setup=("copyboard", f"board-{how}"),
        ok=True,
        state=None,
        post=("stdout256",),
    )
C(
    "board-copy-touch-sim-show",
    D,
    ("evl", "sim", "--board", "{D}/board.toml", "--json", "show"),
    setup=("copyboard", "board-touch"),
    ok=True,
    state=None,
    post=("show_port",),
)
for how, kind in (("abs", "abs"), ("rel", "rel"), ("dangling", "dangling")):
    C(
        f"symlink-state-{how}-N",
        D,
        ("evl", "net", "-N43"),
        setup=(f"symstate:{kind}",),
        ok=True,
        state=None,
        post=("symlink_kept", "target_vlans43"),
    )
C(
    "symlink-state-abs-rx",
    D,
    ("evl", "sim", "rx", "eth0.42"),
    setup=("symstate:abs",),
    ok=True,
    state=None,
    post=("symlink_kept",),
)
C(
    "symlink-state-abs-enable",
    D,
    ("evl", "net", "-ei", "eth1.42"),
    setup=("symstate:abs",),
    ok=True,
    state=None,
    post=("symlink_kept",),
)
C(
    "symlink-state-rel-link-down",
    D,
    ("evl", "sim", "link", "eth1", "down"),
    setup=("symstate:rel",),
    ok=True,
    state=None,
    post=("symlink_kept",),
)

# ---------------------------------------------------------------------------------------------
# E. leftovers

E = "E leftovers"
C("leftover-N", E, ("evl", "net", "-N43"), setup=("good", "leftovers"), ok=True, state=None, post=("no_leftovers",))
C(
    "leftover-rx",
    E,
    ("evl", "sim", "rx", "eth0.42"),
    setup=("good", "leftovers"),
    ok=True,
    state=None,
    post=("no_leftovers",),
)
C(
    "leftover-enable",
    E,
    ("evl", "net", "-ei", "eth1.42"),
    setup=("good", "leftovers"),
    ok=True,
    state=None,
    post=("no_leftovers",),
)
C(
    "leftover-symlink",
    E,
    ("evl", "net", "-N43"),
    setup=("symstate:abs", "leftovers-target"),
    ok=True,
    state=None,
    post=("no_leftovers_target",),
)
C(
    "leftover-reset",
    E,
    ("evl", "sim", "reset"),
    setup=("good", "leftovers"),
    ok=True,
    state=None,
    post=("no_leftovers",),
)

# ---------------------------------------------------------------------------------------------
# F. numbers

F = "F numbers"
C(
    "wrap-rx",
    F,
    ("evl", "sim", "--board", "{D}/board.toml", "rx", "eth0.42"),
    setup=("wrapboard",),
    ok=True,
    state=None,
    post=("no_wrap",),
)
C(
    "wrap-rx-count",
    F,
    ("evl", "sim", "--board", "{D}/board.toml", "rx", "eth0.42", "--count", "3"),
    setup=("wrapboard",),
    ok=True,
    state=None,
    post=("no_wrap",),
)
C(
    "wrap-tx",
    F,
    ("evl", "sim", "--board", "{D}/board.toml", "tx", "eth0.42"),
    setup=("wrapboard",),
    ok=True,
    state=None,
    post=("no_wrap",),
)
C(
    "wrap-rx-bad-csum",
    F,
    ("evl", "sim", "--board", "{D}/board.toml", "rx", "eth0.42", "--bad-csum"),
    setup=("wrapboard",),
    ok=True,
    state=None,
    post=("no_wrap",),
)
C(
    "wrap-rx-nomem",
    F,
    ("evl", "sim", "--board", "{D}/board.toml", "rx", "eth0.42", "--nomem"),
    setup=("wrapboard",),
    ok=True,
    state=None,
    post=("no_wrap",),
)
NUMS = [
    ("rx-size-0", ("rx", "eth0.42", "--size", "0"), ("size",)),
    ("rx-size-negative", ("rx", "eth0.42", "--size=-1"), ("size",)),
    ("rx-size-100000", ("rx", "eth0.42", "--size", "100000"), ("size",)),
    ("rx-size-huge", ("rx", "eth0.42", "--size", "99999999999999999999"), ("size",)),
    ("rx-size-10", ("rx", "eth0.42", "--size", "10"), ("size",)),
    ("rx-count-1e12", ("rx", "eth0.42", "--count", str(10**12)), ("count",)),
    ("rx-count-huge", ("rx", "eth0.42", "--count", "99999999999999999999"), ("count",)),
    ("rx-count-negative", ("rx", "eth0.42", "--count=-1"), ("count",)),
    ("rx-count-unicode-digits", ("rx", "eth0.42", "--count", "\u0663"), ("count",)),
    ("rx-sport-65536", ("rx", "eth0.42", "--sport", "65536"), ("sport",)),
    ("rx-dport-70000", ("rx", "eth0.42", "--dport", "70000"), ("dport",)),
    ("rx-sport-negative", ("rx", "eth0.42", "--sport=-1"), ("sport",)),
    ("rx-src-999", ("rx", "eth0.42", "--src", "999.0.0.1"), ("999.0.0.1",)),
    ("rx-dst-short", ("rx", "eth0.42", "--dst", "1.2.3"), ("1.2.3",)),
    ("rx-src-empty", ("rx", "eth0.42", "--src", ""), ("src",)),
    ("rx-src-name", ("rx", "eth0.42", "--src", "evl-peer;rm"), ("evl-peer;rm",)),
    ("rx-vlan-4096", ("rx", "eth0.42", "--vlan", "4096"), ("vlan",)),
    ("rx-vlan-negative", ("rx", "eth0.42", "--vlan=-1"), ("vlan",)),
    ("tx-size-0", ("tx", "eth0.42", "--size", "0"), ("size",)),
    ("tx-size-100000", ("tx", "eth0.42", "--size", "100000"), ("size",)),
    ("tx-size-huge", ("tx", "eth0.42", "--size", "99999999999999999999"), ("size",)),
    ("tx-count-1e12", ("tx", "eth0.42", "--count", str(10**12)), ("count",)),
    ("tx-count-huge", ("tx", "eth0.42", "--count", "99999999999999999999"), ("count",)),
    ("tx-count-negative", ("tx", "eth0.42", "--count=-5"), ("count",)),
    ("filter-size-0", ("filter", "{O}/netrx.o", "--size", "0"), ("size",)),
    ("filter-size-huge", ("filter", "{O}/netrx.o", "--size", "99999999999999999999"), ("size",)),
    ("filter-sport-99999", ("filter", "{O}/netrx.o", "--sport", "99999"), ("sport",)),
    ("filter-src-999", ("filter", "{O}/netrx.o", "--src", "999.0.0.1"), ("999.0.0.1",)),
]
for nid, args, has in NUMS:
    C(f"num-{nid}", F, ("evl", "sim", *args), setup=("good", "bpf"), has=has, prefix="evl-sim: ")
FRAMES = [
    ("size-string", b'{"size": "x"}\n', ("size",)),
    ("size-negative", b'{"size": -1}\n', ("size",)),
    ("size-zero", b'{"size": 0}\n', ("size",)),
    ("size-huge", b'{"size": 99999999999999999999}\n', ("size",)),
    ("vlan-99999", b'{"vlan": 99999}\n', ("vlan",)),
    ("src-999", b'{"src": "999.0.0.1"}\n', ("999.0.0.1",)),
    ("sport-70000", b'{"sport": 70000}\n', ("sport",)),
    ("proto-bogus", b'{"proto": "bogus"}\n', ("proto",)),
    ("bad-csum-string", b'{"bad_csum": "yes"}\n', ("bad_csum",)),
    ("size-nan", b'{"size": NaN}\n', ("size",)),
    ("deep", b"[" * 100000 + b"]" * 100000 + b"\n", (":1",)),
    ("list", b"[1]\n", (":1",)),
    ("non-utf8", b'{"src": "\xff"}\n', ("frames.jsonl",)),
]
for fid, _data, has in FRAMES:
    C(
        f"frames-{fid}",
        F,
        ("evl", "sim", "filter", "{O}/netrx.o", "--frames", "{D}/frames.jsonl"),
        setup=("bpf", f"data:frames.jsonl:frames-{fid}"),
        has=has,
        prefix="evl-sim: ",
        maxlen=300,
    )

# ---------------------------------------------------------------------------------------------
# G. eBPF objects

G = "G eBPF objects"
OBJECTS = [
    ("unknown-helper", "unknown_helper.o", ("helper",)),
    ("direct-data", "direct_data.o", ("data", "access", "context")),
    ("unbounded-loop", "unbounded_loop.o", ("loop", "back-edge", "jump", "too large", "complex")),
    ("r0-uninit", "r0_uninit.o", ("R0", "not initialized", "read_ok", "uninit")),
    ("bad-opcode", "bad_opcode.o", ("opcode", "invalid", "unknown")),
    ("jump-out", "jump_out.o", ("jump", "range", "out of")),
    ("write-r10", "write_r10.o", ("R10", "frame pointer", "read only", "read-only")),
    ("fall-off", "fall_off.o", ("exit", "last insn", "fall", "end")),
    ("xdp", "xdp_pass.o", ("socket", "section", "program")),
    ("garbage", "garbage.o", ("ELF",)),
    ("empty", "empty.o", ("ELF", "empty")),
    ("truncated", "truncated.o", ("ELF", "truncated")),
    ("header-only", "header_only.o", ("ELF", "truncated", "section")),
    ("shoff-huge", "shoff_huge.o", ("ELF", "truncated", "section")),
    ("shnum-huge", "shnum_huge.o", ("ELF", "truncated", "section")),
    ("source", "netrx.c", ("ELF",)),
    ("big-garbage", "big_garbage.o", ("ELF", "larger than", "too large", "limit")),
    ("map-huge-array", "map_huge_array.o", ("map 'huge'", "64 MiB")),
    ("map-big-bss", "map_big_bss.o", (".bss", "too large")),
    ("map-bad-ringbuf", "map_bad_ringbuf.o", ("map 'rb'", "power of 2")),
    ("map-lpm", "map_lpm.o", ("lpm_trie",)),
    ("map-total", "map_total.o", ("maps need", "256 MiB")),
    ("btf-magic", "btf_magic.o", ("BTF",)),
    ("btf-gone", "btf_gone.o", ("BTF",)),
    ("btf-type-len", "btf_type_len.o", ("BTF",)),
]
for gid, obj, anyf in OBJECTS:
    C(
        f"F-{gid}",
        G,
        ("evl", "net", "-i", "eth0.42", f"-F{{O}}/{obj}"),
        setup=("good", "bpf"),
        any=anyf,
        prefix="evl-net: ",
        log_grows=gid == "xdp",  # EVL logs "invalid out-of-band eBPF program" for a program of another type
    )
    C(f"sim-filter-{gid}", G, ("evl", "sim", "filter", f"{{O}}/{obj}"), setup=("bpf",), any=anyf, prefix="evl-sim: ")
for gid in ("unknown-helper", "direct-data", "unbounded-loop", "garbage"):
    C(
        f"F-json-{gid}",
        G,
        ("evl", "net", "--json", "-i", "eth0.42", f"-F{{O}}/{dict((o[0], o[1]) for o in OBJECTS)[gid]}"),
        setup=("good", "bpf"),
        lines=False,
    )

# ---------------------------------------------------------------------------------------------
# H. output streams

H = "H output streams"
STREAM_CMDS = [
    ("evl-help-opt", ("evl", "--help"), "bytes"),
    ("evl-V", ("evl", "-V"), "bytes"),
    ("evl-help", ("evl", "help"), "bytes"),
    ("evl-help-man", ("evl", "help", "--man", "net"), "bytes"),
    ("evl-plugins", ("evl", "plugins"), "bytes"),
    ("net-Q-eth0", ("evl", "net", "-Q", "-i", "eth0"), "bytes"),
    ("net-Q-eth0.42", ("evl", "net", "-Q", "-i", "eth0.42"), "bytes"),
    ("net-help", ("evl", "net", "--help"), "bytes"),
    ("net-n", ("evl", "net", "-n"), "bytes"),
    ("evl-net-n", ("evl-net", "-n"), "bytes"),
    ("net-Q-all", ("evl", "net", "-Q", "--all-interfaces"), "bytes"),
    ("sim-show", ("evl", "sim", "show"), "bytes"),
    ("sim-show-json", ("evl", "sim", "--json", "show"), "bytes"),
    ("sim-log", ("evl", "sim", "log"), "bytes"),
    ("sim-help", ("evl", "sim", "--help"), "bytes"),
    ("sim-maps", ("evl", "sim", "maps"), "bytes"),
    ("sim-maps-json", ("evl", "sim", "--json", "maps"), "bytes"),
    ("net-config-help", ("evl", "net-config", "--help"), "bytes"),
    ("net-enable", ("evl", "net", "-i", "eth0.42", "-e"), None),
    ("net-enable-json", ("evl", "net", "--json", "-ei", "eth1.42"), None),
    ("net-N-clear", ("evl", "net", "-N"), None),
    ("net-F-remove", ("evl", "net", "-F", "-i", "eth0.42"), None),
    ("sim-rx", ("evl", "sim", "rx", "eth0.42"), None),
]
for sid, argv, st in STREAM_CMDS:
    mutation = st is None
    for stream in ("closed", "full", "epipe"):
        expect: dict[str, Any] = {}
        if stream == "full":
            expect = {"has": ("No space left on device",)}
            if mutation:
                expect["any"] = (
                    "changed",
                    "was made",
                    "done",
                    "applied",
                    "took effect",
                    "happened",
                    "not changed",
                    "unchanged",
                )
        elif stream == "closed":
            expect = {"any": ("write error", "Bad file descriptor", "standard output")}
        C(
            f"{stream}-{sid}",
            H,
            argv,
            setup=("good", "bpf"),
            stream=stream,
            state=st,
            **expect,
            note="mutation: the message must say whether the change happened" if mutation else "",
        )

for stream in ("closed", "full", "epipe"):  # a file to read, then output: validate and its JSON
    for vid, json_flag in (("text", ()), ("json", ("--json",))):
        C(
            f"{stream}-net-config-validate-{vid}",
            H,
            ("evl", "net-config", *json_flag, "validate", "{D}/net.toml"),
            setup=("data:net.toml:net-config-good",),
            stream=stream,
            **({"has": ("No space left on device",)} if stream == "full" else {}),
        )
    for command in (("plan", "{D}/net.toml"), ("export",)):  # then the board is read, and the output fails
        C(
            f"{stream}-net-config-{command[0]}",
            H,
            ("evl", "net-config", *command),
            setup=("good", "data:net.toml:net-config-good"),
            stream=stream,
            **({"has": ("No space left on device",)} if stream == "full" else {}),
        )

# ---------------------------------------------------------------------------------------------
# I. echoed input

ECHO = "I echoed input"
PAYLOADS = {
    "esc": "eth\x1b[2J",
    "newline": "eth0\nevl-net: forged line",
    "soh-del": "eth\x01\x7f\r\t",
    "c1-csi": "eth\x9b2J",
    "bad-utf8": b"eth\xff\xfe",
}
POSITIONS = {
    "Q-i": lambda p: ("evl", "net", "-Q", "-i", p),
    "e-i": lambda p: ("evl", "net", "-e", "-i", p),
    "S-host": lambda p: ("evl", "net", "-S", p, "-i", "eth0.42"),
    "s-host": lambda p: ("evl", "net", "-s", p),
    "N-list": lambda p: ("evl", "net", _glue("-N", p)),
    "p-value": lambda p: ("evl", "net", "-ei", "eth0.42", "-p", p),
    "b-value": lambda p: ("evl", "net", "-ei", "eth0.42", "-b", p),
    "Q-mods": lambda p: ("evl", "net", _glue("-Q", p), "-i", "eth0.42"),
    "format": lambda p: ("evl", "net", _glue("--format=", p), "-n"),
    "transport": lambda p: ("evl", "net", _glue("--transport=", p), "-n"),
    "board": lambda p: ("evl", "net", _glue("--board=", p), "-n"),
    "F-path": lambda p: ("evl", "net", "-i", "eth0.42", _glue("-F", p)),
    "sim-rx-dev": lambda p: ("evl", "sim", "rx", p),
    "sim-link-dev": lambda p: ("evl", "sim", "link", p, "up"),
    "sim-filter-obj": lambda p: ("evl", "sim", "filter", p),
    "net-config-file": lambda p: ("evl", "net-config", "validate", p),
    "sim-command": lambda p: ("evl", "sim", p),
    "evl-command": lambda p: ("evl", p),
    "net-option": lambda p: ("evl", "net", _glue("--", p)),
    "remote": lambda p: ("evl", "net", _glue("--remote=", p), "-n"),
}


def _glue(a: str, p: Any) -> Any:
    return a.encode() + p if isinstance(p, bytes) else a + p


for pos, make in POSITIONS.items():
    for pid, payload in PAYLOADS.items():
        C(f"echo-{pos}-{pid}", ECHO, make(payload), setup=("good",), maxlen=400)
LONG = "x" * 5000
for pos in (
    "Q-i",
    "S-host",
    "N-list",
    "p-value",
    "format",
    "board",
    "F-path",
    "sim-rx-dev",
    "evl-command",
    "net-option",
    "remote",
    "sim-filter-obj",
    "net-config-file",
):
    C(f"echo-{pos}-long", ECHO, POSITIONS[pos](LONG), setup=("good",), maxlen=240, note="echoed argument of 5000 chars")
C(
    "echo-state-path-esc",
    ECHO,
    ("evl", "net", "-n"),
    env={"EVL_SIM_STATE": "{D}/plain\x1b[2J\x07/x"},
    setup=("data:plain\x1b[2J\x07:plain",),
    has=("Not a directory",),
    maxlen=400,
)
C("echo-board-env-newline", ECHO, ("evl", "net", "-n"), env={"EVL_SIM_BOARD": "{D}/no\nsuch.toml"}, maxlen=400)
C("echo-board-env-long", ECHO, ("evl", "net", "-n"), env={"EVL_SIM_BOARD": "{D}/" + "b" * 5000 + ".toml"}, maxlen=240)
C("echo-transport-env-esc", ECHO, ("evl", "net", "-n"), env={"EVL_NET_TRANSPORT": "sim\x1b[31m"}, maxlen=400)

# ---------------------------------------------------------------------------------------------
# J. misleading messages

J = "J misleading messages"
for sid, argv in (
    ("net-n", ("evl", "net", "-n")),
    ("net-N", ("evl", "net", "-N43")),
    ("sim-show", ("evl", "sim", "show")),
    ("sim-reset", ("evl", "sim", "reset")),
    ("net-Q", ("evl", "net", "-Q", "-i", "eth0.42")),
):
    C(
        f"passwd-{sid}",
        J,
        argv,
        env={"EVL_SIM_STATE": "/etc/passwd/x"},
        setup=(),
        has=("Not a directory", "/etc/passwd"),
    )
    C(
        f"file-component-{sid}",
        J,
        argv,
        env={"EVL_SIM_STATE": "{D}/plain/x"},
        setup=("data:plain:plain",),
        has=("Not a directory", "plain"),
    )
C(
    "lock-dir-names-lock",
    J,
    ("evl", "net", "-Q", "-i", "eth0.42"),
    setup=("good", f"make:dir:{STATE}.lock"),
    has=(f"{STATE}.lock",),
)
C(
    "lock-dangling-symlink",
    J,
    ("evl", "net", "-N43"),
    setup=("good", f"make:dangling:{STATE}.lock"),
    has=(f"{STATE}.lock",),
)
C(
    "lock-unwritable-dir",
    J,
    ("evl", "net", "-n"),
    env={"EVL_SIM_STATE": "/proc/self/evl-state.json"},
    setup=(),
    has=("evl-state.json",),
)
PCAPS = [
    ("random", ("not a pcap file",)),
    ("empty", ("not a pcap file",)),
    ("short-header", ("not a pcap file", "truncated")),
    ("pcapng", ("not a pcap file", "pcapng")),
    ("text", ("not a pcap file",)),
]
for pid, anyf in PCAPS:
    C(
        f"pcap-{pid}",
        J,
        ("evl", "sim", "filter", "{O}/netrx.o", "--pcap", "{D}/in.pcap"),
        setup=("bpf", f"data:in.pcap:pcap-{pid}"),
        any=anyf,
        prefix="evl-sim: ",
    )
for pid, anyf in (
    ("huge-record", ("truncated", "record", "too large", "larger")),
    ("linktype-wifi", ("link type", "linktype", "Ethernet")),
    ("snaplen-zero-record", ("truncated", "record", "frame")),
    ("record-cut", ("truncated", "record")),
):
    C(
        f"pcap-{pid}",
        J,
        ("evl", "sim", "filter", "{O}/netrx.o", "--pcap", "{D}/in.pcap"),
        setup=("bpf", f"data:in.pcap:pcap-{pid}"),
        any=anyf,
        prefix="evl-sim: ",
    )
for sid, argv in (
    ("S-glued", ("evl", "net", "-S10.10.10.10", "eth0.42")),
    ("S-sep", ("evl", "net", "-S", "10.10.10.10", "eth0.42")),
    ("s-sep", ("evl", "net", "-s", "10.10.10.10", "eth0.42")),
    ("Q-operand", ("evl", "net", "-Q", "eth0.42")),
    ("e-operand", ("evl", "net", "-e", "eth0.42")),
    ("d-operand", ("evl", "net", "-d", "eth0.42")),
):
    C(
        f"operand-{sid}",
        J,
        argv,
        has=("-i",),
        any=("with -i", "-i eth0.42"),
        prefix="evl-net: ",
        note="the interface goes with -i",
    )
C(
    "state-empty-env",
    J,
    ("evl", "net", "-n"),
    env={"EVL_SIM_STATE": ""},
    setup=(),
    any=("empty", "EVL_SIM_STATE"),
    codes=(0, 1),
    note="ambiguous: an empty variable may mean unset (the default path); if refused, say so",
)
C("board-missing-name", J, ("evl", "net", "-n"), env={"EVL_SIM_BOARD": "no-such-board"}, has=("no-such-board",))
C("board-empty-opt", J, ("evl", "net", "--board=", "-n"), any=("board", "empty"))
C("board-missing-file", J, ("evl", "net", "--board", "{D}/missing.toml", "-n"), has=("missing.toml", "No such file"))
C("hosts-missing-file", J, ("evl", "net", "--hosts", "{D}/missing.txt", "-n"), has=("missing.txt", "No such file"))
NET_CONFIGS = {
    "esc-key": ('[interface."eth \\u001b[2J"]\nup = true\n', ("not an interface name",)),
    "esc-value": ('[[peer]]\nhost = "a\\u001b[31m\\nevl-net: forged"\n', ("not an IPv4 address or host name",)),
    "deep": ("x = " + "[" * 5000 + "]" * 5000 + "\n", ("nested too deep",)),
    "deep-value": ("vlan_filter = " + "[" * 300 + "]" * 300 + "\n", ("vlan_filter",)),
    "huge-int": ("[port.eth0]\npool = " + "9" * 5000 + "\n", ("too many digits",)),
    "nul": ('vlan_filter = "42\x00"\n', ("not TOML",)),
    "binary": ("\x00\x01\x02\xff", ("UTF-8", "not TOML")),
}
for _nid, (_text, _frags) in NET_CONFIGS.items():
    C(
        f"net-config-content-{_nid}",
        J,
        ("evl", "net-config", "validate", "{D}/net.toml"),
        setup=(f"data:net.toml:net-config-{_nid}",),
        any=_frags,
        prefix="evl-net-config: ",
        lines=_nid not in ("esc-key", "esc-value"),
        maxlen=400,
    )
C("sim-maps-no-device", J, ("evl", "sim", "maps", "nope0"), has="nope0", prefix="evl-sim: ")
C("sim-maps-no-filter", J, ("evl", "sim", "maps", "eth2"), has=("no eBPF filter", "eth2"), prefix="evl-sim: ")
C("sim-maps-bad-name", J, ("evl", "sim", "maps", "a/b"), has="invalid interface name", prefix="evl-sim: ")
C("F-missing-file", J, ("evl", "net", "-i", "eth0.42", "-F{D}/missing.o"), has=("missing.o", "No such file"))
C(
    "frames-missing-file",
    J,
    ("evl", "sim", "filter", "{O}/netrx.o", "--frames", "{D}/missing.jsonl"),
    setup=("bpf",),
    has=("missing.jsonl", "No such file"),
    prefix="evl-sim: ",
)

# ---------------------------------------------------------------------------------------------
# K. consistency of evl sim

K = "K evl sim consistency"
for uid, args in (
    ("no-command", ()),
    ("bogus-command", ("bogus",)),
    ("bogus-option", ("--bogus", "show")),
    ("show-extra", ("show", "extra")),
    ("reset-extra", ("reset", "extra")),
    ("log-extra", ("log", "extra")),
    ("rx-missing-dev", ("rx",)),
    ("rx-count-x", ("rx", "eth0.42", "--count", "x")),
    ("rx-proto-bogus", ("rx", "eth0.42", "--proto", "bogus")),
    ("rx-vlan-5000", ("rx", "eth0.42", "--vlan", "5000")),
    ("tx-missing-dev", ("tx",)),
    ("tx-count-x", ("tx", "eth0.42", "--count", "x")),
    ("drain-missing-dev", ("drain",)),
    ("drain-extra", ("drain", "eth0", "eth1")),
    ("link-bad-state", ("link", "eth0", "sideways")),
    ("link-missing", ("link", "eth0")),
    ("filter-missing", ("filter",)),
    ("filter-both-sources", ("filter", "{O}/netrx.o", "--pcap", "a", "--frames", "b")),
    ("board-missing-arg", ("--board",)),
):
    C(f"sim-usage-{uid}", K, ("evl", "sim", *args), setup=("good", "bpf"), codes=(2,), prefix="evl-sim: ")
for uid, args in (
    ("rx-no-dev", ("rx", "nope0")),
    ("tx-no-port", ("tx", "eth2")),
    ("drain-no-dev", ("drain", "nope0")),
    ("link-no-dev", ("link", "nope0", "down")),
    ("filter-no-object", ("filter", "{D}/none.o")),
):
    C(f"sim-fail-{uid}", K, ("evl", "sim", *args), setup=("good",), codes=(1,), prefix="evl-sim: ")

# ---------------------------------------------------------------------------------------------
# L. the options of evl net

L = "L evl net options"
OPTS = [
    ("p-abc", ("-ei", "eth1.42", "-p", "abc"), ("abc",)),
    ("p-negative", ("-ei", "eth1.42", "-p", "-1"), ("-1",)),
    ("p-huge", ("-ei", "eth1.42", "-p", "99999999999999999999"), ("99999999999999999999",)),
    ("p-32769", ("-ei", "eth1.42", "-p", "32769"), ("32769",)),
    ("p-empty", ("-ei", "eth1.42", "-p", ""), ("pool",)),
    ("p-hex", ("-ei", "eth1.42", "-p", "0x10"), ("0x10",)),
    ("p-space", ("-ei", "eth1.42", "-p", " 5"), ("pool",)),
    ("p-plus", ("-ei", "eth1.42", "-p", "+5"), ("+5",)),
    ("p-unicode-digits", ("-ei", "eth1.42", "-p", "\u0661\u0662"), ("pool",)),
    ("p-underscore", ("-ei", "eth1.42", "-p", "1_000"), ("1_000",)),
    ("b-1e3", ("-ei", "eth1.42", "-b", "1e3"), ("1e3",)),
    ("b-negative", ("-ei", "eth1.42", "-b", "-1"), ("-1",)),
    ("b-huge", ("-ei", "eth1.42", "-b", "99999999999999999999"), ("99999999999999999999",)),
    ("b-16385", ("-ei", "eth1.42", "-b", "16385"), ("16385",)),
    ("b-float", ("-ei", "eth1.42", "-b", "2048.0"), ("2048.0",)),
    ("i-empty", ("-Q", "-i", ""), ("interface",)),
    ("i-16-chars", ("-Q", "-i", "abcdefghijklmnop"), ("abcdefghijklmnop",)),
    ("i-20-chars-e", ("-e", "-i", "abcdefghijklmnopqrst"), ("abcdefghijklmnopqrst",)),
    ("i-slash", ("-Q", "-i", "eth0/x"), ("eth0/x",)),
    ("i-dotdot", ("-e", "-i", ".."), ("..",)),
    ("i-dot", ("-Q", "-i", "."), ("interface",)),
    ("i-space", ("-Q", "-i", "eth0 "), ("interface",)),
    ("i-colon-alias", ("-e", "-i", "eth0:1"), ("eth0:1",)),
    ("N-5000", ("-N5000",), ("5000",)),
    ("N-4096", ("-N4096",), ("4096",)),
    ("N-1-2-3", ("-N1-2-3",), ("1-2-3",)),
    ("N-negative", ("-N-1",), ("-1",)),
    ("N-reversed", ("-N42-41",), ("42-41",)),
    ("N-huge", ("-N99999999999999999999",), ("99999999999999999999",)),
    ("N-unicode-digits", ("-N\u0664\u0662",), ("vlan",)),
    ("N-empty-long", ("--set-vlan-ids=",), ("vlan", "empty", "list")),
    ("N-huge-range", ("-N1-99999999999999999999",), ("99999999999999999999",)),
    ("S-256", ("-S", "256.1.1.1", "-i", "eth0.42"), ("256.1.1.1",)),
    ("S-empty", ("-S", "", "-i", "eth0.42"), ("host", "''", "empty")),
    ("s-short", ("-s", "1.2.3", "-i", "eth0.42"), ("1.2.3",)),
    ("s-five-parts", ("-s", "10.10.10.10.10", "-i", "eth0.42"), ("10.10.10.10.10",)),
    ("s-leading-dash", ("-s", "-1"), ("-1",)),
    ("s-ipv6", ("-s", "::1", "-i", "eth0.42"), ("::1",)),
    ("Q-bad-mod", ("-Qz", "-i", "eth0.42"), ("z",)),
    ("Q-separate-mods", ("-Q", "oR", "-i", "eth0.42"), ("oR",)),
    ("format-bogus", ("--format=bogus", "-n"), ("bogus",)),
    ("format-empty", ("--format=", "-n"), ("format",)),
    ("transport-bogus", ("--transport=bogus", "-n"), ("bogus",)),
    ("transport-empty", ("--transport=", "-n"), ("transport",)),
    ("jobs-0", ("--remote=board1", "--jobs=0", "-n"), ("jobs",)),
    ("jobs-257", ("--remote=board1", "--jobs=257", "-n"), ("257",)),
    ("jobs-abc", ("--remote=board1", "--jobs=abc", "-n"), ("abc",)),
    ("timeout-negative", ("--remote=board1", "--timeout=-1", "-n"), ("timeout",)),
    ("timeout-nan", ("--remote=board1", "--timeout=nan", "-n"), ("nan",)),
    ("timeout-inf", ("--remote=board1", "--timeout=inf", "-n"), ("inf",)),
    ("timeout-1e400", ("--remote=board1", "--timeout=1e400", "-n"), ("1e400",)),
    ("timeout-zero", ("--remote=board1", "--timeout=0", "-n"), ("timeout",)),
    ("json-and-format", ("--json", "--format=terse", "-Q", "-i", "eth0.42"), ("--json",)),
    ("no-command", ("-i", "eth0.42"), ()),
    ("unknown-short", ("-Z",), ("Z",)),
    ("unknown-long", ("--bogus",), ("bogus",)),
    ("ambiguous-long", ("--j", "-n"), ("--j",)),
    ("board-and-remote", ("--board=manual", "--remote=board1", "-n"), ("--board",)),
    ("p-without-value", ("-ei", "eth1.42", "-p"), ("-p", "'p'", "pool")),
    ("watch-zero", ("-Q", "-i", "eth0.42", "--watch=0"), ("interval",)),
    ("watch-1e999", ("-Q", "-i", "eth0.42", "--watch=1e999"), ("1e999",)),
    ("watch-inf", ("-Q", "-i", "eth0.42", "--watch=inf"), ("inf",)),
    ("watch-underscore", ("-Q", "-i", "eth0.42", "--watch=1_0"), ("1_0",)),
    ("watch-unicode-digits", ("-Q", "-i", "eth0.42", "--watch=\u0661"), ("interval",)),
    ("watch-with-enable", ("-Q", "-ei", "eth0.42", "--watch"), ("--watch",)),
    ("count-huge", ("-Q", "-i", "eth0.42", "--watch", "--count", "9" * 30), ("count",)),
    ("count-zero", ("-Q", "-i", "eth0.42", "--watch", "--count", "0"), ("count",)),
    ("count-without-watch", ("-Q", "-i", "eth0.42", "--count", "3"), ("--count",)),
    ("retries-11", ("--remote=board1", "--retries=11", "-n"), ("11",)),
    ("retries-abc", ("--remote=board1", "--retries=abc", "-n"), ("abc",)),
    ("retries-local", ("--retries=3", "-n"), ("--retries", "remote")),
    ("known-hosts-missing", ("--remote=board1", "--known-hosts=/nonexistent/kh", "-n"), ("/nonexistent/kh",)),
    ("ssh-quiet", ("--remote=board1", "--ssh=-q", "-n"), ("-q",)),
    ("ssh-log-file", ("--remote=board1", "--ssh=-E /tmp/x", "-n"), ("-E",)),
]
for oid, args, anyf in OPTS:
    C(
        f"opt-{oid}",
        L,
        ("evl", "net", *args),
        any=anyf,
        prefix=None if oid in ("no-command", "i-empty") else "evl-net: ",
        maxlen=300,
        post=("no_ssh",) if any("--remote" in a for a in args) else (),
    )

# What the kernel's bitmap_parselist() accepts, -N passes on as the C tool does (drop-in): a
# separator run or a leading blank is no error, and the filter is what the kernel would make of it.
for oid, arg, expect in (("N-commas", "-N,,", ""), ("N-space", "-N 42", "42"), ("N-trailing-comma", "-N42,", "42")):
    C(f"opt-{oid}", L, ("evl", "net", arg), ok=True, state=None, post=(f"vlans_is:{expect}",))

# ---------------------------------------------------------------------------------------------
# M. remote targets and hosts files

M = "M remote and hosts"
REMOTES = [
    ("newline", "board1\nboard2"),
    ("leading-dash", "-oProxyCommand=touch /tmp/pwned"),
    ("space", "board 1"),
    ("empty", ""),
    ("port-99999", "board1:99999"),
    ("port-0", "board1:0"),
    ("port-negative", "board1:-1"),
    ("port-alpha", "board1:ssh"),
    ("at-only", "@board1"),
    ("user-only", "evl@"),
    ("bracket", "[::1"),
    ("semicolon", "board1;reboot"),
    ("dollar", "$(reboot)"),
    ("long", "h" * 300),
    ("nul-like", "board1\x00"[:-1] + "\x01"),
]
for rid, target in REMOTES:
    C(f"remote-{rid}", M, ("evl", "net", f"--remote={target}", "-n"), maxlen=300, prefix="evl-net: ", post=("no_ssh",))
C(
    "remote-env-commas",
    M,
    ("evl", "net", "-n"),
    env={"EVL_NET_REMOTE": ",,", "EVL_NET_TRANSPORT": None},
    post=("no_ssh",),
)
C(
    "remote-env-dash",
    M,
    ("evl", "net", "-n"),
    env={"EVL_NET_REMOTE": "-oProxyCommand=x", "EVL_NET_TRANSPORT": None},
    has=("-oProxyCommand=x",),
    post=("no_ssh",),
)
C(
    "ssh-unterminated",
    M,
    ("evl", "net", "--remote=board1", '--ssh="unterminated', "-n"),
    any=("ssh", "quot"),
    post=("no_ssh",),
)
C(
    "ssh-env-unterminated",
    M,
    ("evl", "net", "--remote=board1", "-n"),
    env={"EVL_NET_SSH": "'"},
    any=("ssh", "quot"),
    post=("no_ssh",),
)
C(
    "ssh-hostkey-override",
    M,
    ("evl", "net", "--remote=board1", "--ssh=-oStrictHostKeyChecking=no", "-n"),
    post=("hostkey_first",),
    note="either refused, or ssh gets StrictHostKeyChecking=yes first (ssh keeps the first)",
)
C(
    "ssh-env-hostkey-override",
    M,
    ("evl", "net", "--remote=board1", "-n"),
    env={"EVL_NET_SSH": "-o StrictHostKeyChecking=no -o BatchMode=no"},
    post=("hostkey_first",),
)
HOSTS = [
    ("garbage", bytes(range(1, 256))),
    ("nul", b"board1\x00board2\n"),
    ("dash", b"-oProxyCommand=touch /tmp/pwned\n"),
    ("space", b"board 1\n"),
    ("non-utf8", b"board\xff\n"),
    ("escape", b"board\x1b[2J\n"),
    ("long-line", b"h" * (2 * 1024 * 1024) + b"\n"),
    ("port-99999", b"board1:99999\n"),
    ("only-comments", b"# nothing\n\n   \n"),
    ("empty", b""),
    ("one-bad-of-two", b"board1\nboard2:99999\n"),
    ("cr", b"board1\r\nbad host\r\n"),
]
for hid, _data in HOSTS:
    C(
        f"hosts-{hid}",
        M,
        ("evl", "net", "--hosts", "{D}/lab.txt", "-n"),
        setup=("good", f"data:lab.txt:hosts-{hid}"),
        has=("lab.txt",),
        maxlen=300,
        prefix="evl-net: ",
        post=("no_ssh",),
    )

# ---------------------------------------------------------------------------------------------
# N. the agent fed garbage

N = "N net-agent"
HELLO = b'{"id":1,"op":"hello","args":{"proto":[2,2],"client":"hostile"}}\n'
AGENT_INPUTS = [
    ("random", "random"),
    ("line-100MB", "line100mb"),
    ("invalid-json", b"{not json\n"),
    ("array", b"[1,2,3]\n"),
    ("number", b"42\n"),
    ("string", b'"hello"\n'),
    ("null", b"null\n"),
    ("no-op", b'{"id":1}\n'),
    ("op-int", b'{"id":1,"op":5,"args":{}}\n'),
    ("op-unknown", b'{"id":1,"op":"os.system","args":{"cmd":"reboot"}}\n'),
    ("args-list", b'{"id":1,"op":"hello","args":[2,2]}\n'),
    ("hello-bad-proto", b'{"id":1,"op":"hello","args":{"proto":[99,99],"client":"x"}}\n'),
    ("hello-proto-strings", b'{"id":1,"op":"hello","args":{"proto":["2","2"],"client":"x"}}\n'),
    (
        "hello-then-enable-types",
        HELLO + b'{"id":2,"op":"port.enable","args":{"ifname":5,"pool_size":"x","buffer_size":[]}}\n',
    ),
    (
        "hello-then-enable-negative",
        HELLO + b'{"id":2,"op":"port.enable","args":{"ifname":"eth1.42","pool_size":-1,"buffer_size":0}}\n',
    ),
    ("hello-then-vlans-set-garbage", HELLO + b'{"id":2,"op":"vlans.set","args":{"vlans":"all"}}\n'),
    (
        "hello-then-bpf-bad-digest",
        HELLO + b'{"id":2,"op":"bpf.load","args":{"ifname":"eth0.42","size":4,"sha256":"00","data":"AAAA"}}\n',
    ),
    ("hello-then-huge-id", HELLO + b'{"id":' + b"9" * 5000 + b',"op":"vlans.get","args":{}}\n'),
    ("deep", b"[" * 100000 + b"]" * 100000 + b"\n"),
    ("deep-object", b'{"a":' * 50000 + b"1" + b"}" * 50000 + b"\n"),
    ("nan", b'{"id":NaN,"op":"hello","args":{}}\n'),
    ("lone-surrogate", b'{"id":1,"op":"\\ud800","args":{}}\n'),
    ("nul-bytes", b"\x00" * 1000 + b"\n"),
    ("whitespace-2MB", b" " * (2 * 1024 * 1024) + b"\n"),
    ("empty-lines", b"\n" * 10000),
    ("no-final-newline", HELLO + b'{"id":2,"op":"vlans.get"'),
    ("crlf", HELLO.replace(b"\n", b"\r\n") + b'{"id":2,"op":"vlans.get","args":{}}\r\n'),
    ("duplicate-keys", b'{"id":1,"id":2,"op":"hello","args":{}}\n'),
    ("many-keys", b"{" + b",".join(b'"k%d":1' % i for i in range(100000)) + b"}\n"),
    (
        "bpf-4MB-frame",
        HELLO
        + b'{"id":2,"op":"bpf.load","args":{"ifname":"eth0.42","size":1,"sha256":"'
        + b"0" * 64
        + b'","data":"'
        + b"A" * (5 * 1024 * 1024)
        + b'"}}\n',
    ),
]
for aid, data in AGENT_INPUTS:
    C(
        f"agent-{aid}",
        N,
        ("evl", "net-agent", "--stdio", "--log", "none", "--idle-timeout", "5"),
        stdin=data,
        agent=True,
        post=("agent_frames",),
    )
for uid, args in (
    ("no-stdio", ()),
    ("bad-log", ("--stdio", "--log", "bogus")),
    ("idle-negative", ("--stdio", "--idle-timeout", "-1")),
    ("idle-nan", ("--stdio", "--idle-timeout", "nan")),
    ("frame-timeout-abc", ("--stdio", "--frame-timeout", "abc")),
):
    C(f"agent-usage-{uid}", N, ("evl", "net-agent", *args), stdin=b"", codes=(2,))
C(
    "agent-bad-board",
    N,
    ("evl", "net-agent", "--stdio", "--log", "none", "--board", "{D}/k-fifo"),
    stdin=HELLO,
    setup=("good", "make:fifo:k-fifo"),
    lines=False,
    agent=True,
    codes=(0, 1, 3),
    note="a FIFO board must not hang the agent",
)

# ---------------------------------------------------------------------------------------------
# O. the dispatcher and the transport environment

DISP = "O dispatcher and transport env"
for tid, value, anyf in (
    ("bogus", "bogus", ("bogus",)),
    ("empty", "", ("transport", "EVL_NET_TRANSPORT")),
    ("space", " sim", ("transport", "EVL_NET_TRANSPORT")),
    ("upper", "SIM", ("SIM",)),
    ("newline", "sim\n", ("transport", "EVL_NET_TRANSPORT")),
    ("remote-no-board", "remote", ("no board", "--remote")),
    ("ioctl-no-core", "ioctl", ("EVL core", "/dev/evl")),
    ("long", "t" * 5000, ("transport", "EVL_NET_TRANSPORT")),
):
    C(
        f"transport-env-{tid}",
        DISP,
        ("evl", "net", "-n"),
        env={"EVL_NET_TRANSPORT": value},
        any=anyf,
        maxlen=240,
        prefix="evl-net: ",
        **(
            {"codes": (0, 1), "lines": False, "note": "ambiguous: an empty variable may mean unset (auto)"}
            if tid == "empty"
            else {}
        ),
    )
    C(
        f"transport-env-{tid}-agent",
        DISP,
        ("evl", "net-agent", "--stdio", "--log", "none"),
        env={"EVL_NET_TRANSPORT": value},
        stdin=HELLO,
        lines=False,
        agent=True,
        codes=(0, 1, 2, 3),
        post=("agent_frames",),
    )
for did, argv, anyf, kw in (
    ("P-nonexistent", ("evl", "-P", "/nonexistent", "net", "-n"), ("/nonexistent",), {"ok": None}),
    ("empty-command", ("evl", ""), ("no '' command", "command"), {}),
    ("dotdot-command", ("evl", "../x"), ("../x",), {}),
    ("abs-command", ("evl", "/bin/true"), ("/bin/true",), {}),
    ("slash-command", ("evl", "net/../sim", "show"), ("net/../sim",), {}),
    ("P-empty", ("evl", "-P", "", "net", "-n"), ("-P", "prefix", "directory"), {"ok": None}),
    ("P-missing-arg", ("evl", "-P"), ("-P", "'P'", "prefix"), {}),
    ("unknown-option", ("evl", "--bogus"), ("bogus",), {}),
    ("unknown-short", ("evl", "-Z"), ("Z",), {}),
    ("dash-command", ("evl", "-", "net"), ("-",), {}),
    # The C evl-help ignores its arguments: the listing, exit 0 (documented in evl-help(8)).
    ("help-unknown", ("evl", "help", "nope"), (), {"ok": True, "state": None}),
    ("help-man-unknown", ("evl", "help", "--man", "nope"), ("nope",), {}),
    ("help-man-missing", ("evl", "help", "--man"), ("--man",), {}),
    ("P-file", ("evl", "-P", "/etc/passwd", "foo"), ("foo",), {}),
    ("disable-autoload-net", ("evl", "net", "-n"), ("net",), {"env": {"EVL_DISABLE_PLUGIN_AUTOLOAD": "1"}}),
):
    opts: dict[str, Any] = {"any": anyf, "maxlen": 300}
    opts.update(kw)
    if opts.get("ok") is None and "ok" in opts:
        opts.pop("ok")
        opts["codes"] = (0, 1, 2)
        opts["any"] = ()
        opts["note"] = "ambiguous: either works (net is a plugin) or names the bad -P directory"
    C(f"dispatch-{did}", DISP, argv, **opts)


# ---------------------------------------------------------------------------------------------
# data files


def _pcap_header(linktype: int = 1, snaplen: int = 65535) -> bytes:
    import struct

    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype)


def _pcap_record(data: bytes, caplen: int | None = None, origlen: int | None = None) -> bytes:
    import struct

    return (
        struct.pack("<IIII", 0, 0, len(data) if caplen is None else caplen, len(data) if origlen is None else origlen)
        + data
    )


_FRAME = bytes.fromhex("ffffffffffff502df41d32d00800") + bytes(50)
DATA: dict[str, Any] = {
    "plain": b"a regular file\n",
    "pcap-random": lambda: os.urandom(4096),
    "pcap-empty": b"",
    "pcap-short-header": b"\xd4\xc3\xb2\xa1\x02\x00",
    "pcap-pcapng": bytes.fromhex("0a0d0d0a1c0000004d3c2b1a01000000ffffffffffffffff1c000000"),
    "pcap-text": b"this is not a capture\n",
    "pcap-huge-record": _pcap_header() + _pcap_record(_FRAME, caplen=0x7FFFFFFF, origlen=0x7FFFFFFF),
    "pcap-linktype-wifi": _pcap_header(linktype=105) + _pcap_record(_FRAME),
    "pcap-snaplen-zero-record": _pcap_header(snaplen=0) + _pcap_record(b""),
    "pcap-record-cut": _pcap_header() + _pcap_record(_FRAME)[:30],
}
for _fid, _data, _ in FRAMES:
    DATA[f"frames-{_fid}"] = _data
for _hid, _data in HOSTS:
    DATA[f"hosts-{_hid}"] = _data
DATA["net-config-good"] = b'vlan_filter = "42"\n[port."eth0.42"]\npool = 64\n[[peer]]\nhost = "10.10.10.10"\n'
for _nid, (_text, _frags) in NET_CONFIGS.items():
    DATA[f"net-config-{_nid}"] = _text.encode("latin-1") if _nid == "binary" else _text.encode()

STDINS: dict[str, Callable[[], bytes]] = {
    "random": lambda: os.urandom(65536),
    "line100mb": lambda: b"x" * (100 * 1024 * 1024) + b"\n",
}


# ---------------------------------------------------------------------------------------------
# the session: golden state, objects, runs


@dataclass
class World:
    base: Path
    golden: bytes
    objdir: Path | None
    objerr: str | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    refs: dict[tuple, Any] = field(default_factory=dict)


def base_env(d: Path, fakebin: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVL_")}
    env.update(
        HOME=str(d / "home"),
        XDG_STATE_HOME=str(d / "xdg"),
        XDG_RUNTIME_DIR=str(d / "run"),
        EVL_SIM_STATE=str(d / STATE),
        EVL_NET_TRANSPORT="sim",
        EVL_NET_AGENT_DIR=str(d / "agent"),
        PATH=f"{fakebin}{os.pathsep}{env.get('PATH', '')}",
        LC_ALL="C.UTF-8",
    )
    env.pop("PYTHONWARNINGS", None)
    return env


def _limit() -> list[str]:
    prlimit = shutil.which("prlimit")
    return [prlimit, f"--as={MEMORY_LIMIT}", "--"] if prlimit else []


def _fakebin(base: Path) -> Path:
    fb = base / "fakebin"
    fb.mkdir(exist_ok=True)
    ssh = fb / "ssh"
    ssh.write_text(
        '#!/bin/sh\necho "$@" >> "$HOME/ssh-called"\necho "ssh: connect to host: Connection refused" >&2\nexit 255\n'
    )
    ssh.chmod(0o755)
    return fb


def _evl_run(argv: list[Any], env: dict, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    exe = {"evl": EVL, "evl-net": EVL_NET}[argv[0]]
    return subprocess.run([exe, *argv[1:]], env=env, capture_output=True, timeout=timeout)


def _build_objects(objdir: Path) -> str | None:
    """Build the eBPF objects of the G cases (and netrx.o); the reason when they cannot be built."""
    import bpf_build as bb

    if not bb.have_clang():
        return "clang with the BPF target is needed"
    objdir.mkdir(exist_ok=True)
    try:
        for name in ("netrx", "xdp_pass"):
            bb.build(name, objdir)
        saved = bb.SRC_DIR
        try:
            bb.SRC_DIR = HERE / "hostile"
            for name in ("unknown_helper", "direct_data", "unbounded_loop"):
                bb.build(name, objdir)
            from evl_net.cli.sim import cflags

            for name in ("map_huge_array", "map_big_bss", "map_bad_ringbuf", "map_lpm", "map_total"):
                bb.build(name, objdir, flags=("-g", *cflags()))
            bb.SRC_DIR = saved
            bb.build("users_percpu_count", objdir, flags=("-g", *cflags()))
        finally:
            bb.SRC_DIR = saved
    except RuntimeError as exc:
        return str(exc)
    netrx = (objdir / "netrx.o").read_bytes()
    insn = bytes.fromhex("b7000000030000009500000000000000")  # r0 = 3; exit
    at = netrx.find(insn)
    assert at > 0, "netrx.o does not hold 'r0 = 3; exit'"

    def patched(new: bytes) -> bytes:
        return netrx[:at] + new + netrx[at + len(new) :]

    (objdir / "r0_uninit.o").write_bytes(patched(bytes.fromhex("b701000003000000")))  # r1 = 3: r0 never set
    (objdir / "bad_opcode.o").write_bytes(patched(bytes.fromhex("ff00000000000000")))
    (objdir / "jump_out.o").write_bytes(patched(bytes.fromhex("0500640000000000")))  # goto +100
    (objdir / "write_r10.o").write_bytes(patched(bytes.fromhex("b70a000003000000")))  # r10 = 3
    (objdir / "fall_off.o").write_bytes(patched(bytes.fromhex("b700000003000000b700000003000000")))  # no exit
    (objdir / "garbage.o").write_bytes(os.urandom(4096))
    (objdir / "empty.o").write_bytes(b"")
    (objdir / "truncated.o").write_bytes(netrx[:100])
    (objdir / "header_only.o").write_bytes(netrx[:64])
    import struct

    shoff = bytearray(netrx)
    struct.pack_into("<Q", shoff, 0x28, 0xFFFFFFFF0)
    (objdir / "shoff_huge.o").write_bytes(bytes(shoff))
    shnum = bytearray(netrx)
    struct.pack_into("<H", shnum, 0x3C, 0xFFFF)
    (objdir / "shnum_huge.o").write_bytes(bytes(shnum))
    (objdir / "big_garbage.o").write_bytes(b"\x7fELF" + os.urandom(64 * 1024) * 80)  # 5 MiB
    shutil.copy(HERE / "bpf" / "netrx.c", objdir / "netrx.c")
    # A filter with a BTF-defined map, its BTF broken: bad magic, gone (section renamed), cut short.
    maps = (objdir / "users_percpu_count.o").read_bytes()
    magic = maps.find(b"\x9f\xeb\x01")
    assert magic > 0, "no BTF in users_percpu_count.o"
    (objdir / "btf_magic.o").write_bytes(maps[:magic] + b"\x00\x00" + maps[magic + 2 :])
    renamed = maps.replace(b".rel.BTF\0", b".rel.XTF\0", 1)  # renames .BTF too: it shares the string's tail
    assert renamed != maps
    (objdir / "btf_gone.o").write_bytes(renamed)
    hdr = bytearray(maps)
    struct.pack_into("<I", hdr, magic + 12, 0x7FFFFFFF)  # type_len past the end of the section
    (objdir / "btf_type_len.o").write_bytes(bytes(hdr))
    return None


def _golden(base: Path, objdir: Path | None, fakebin: Path) -> bytes:
    d = base / "golden"
    d.mkdir()
    env = base_env(d, fakebin)
    steps = [
        ["evl", "net", "-i", "eth0.42", "-e", "-p", "256"],
        ["evl", "net", "-N42"],
        ["evl", "net", "-S", "10.10.10.10", "-i", "eth0.42"],
    ]
    if objdir is not None:
        steps.append(["evl", "net", "-i", "eth0.42", f"-F{objdir / 'netrx.o'}"])
    for argv in steps:
        proc = _evl_run(argv, env, timeout=60)
        assert proc.returncode == 0, f"golden state: {argv} failed: {proc.stderr!r}"
    return (d / STATE).read_bytes()


# -- setup steps ---------------------------------------------------------------------------------


@dataclass
class Ctx:
    d: Path
    world: World
    env: dict[str, str]

    @property
    def state(self) -> Path:
        return self.d / STATE

    def fmt(self, value: Any) -> Any:
        if isinstance(value, str):
            objdir = str(self.world.objdir) if self.world.objdir else str(self.d / "no-objects")
            return value.replace("{D}", str(self.d)).replace("{S}", str(self.state)).replace("{O}", objdir)
        return value

    def evl(self, *argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return _evl_run(list(argv), env or self.env)


def _make(ctx: Ctx, arg: str) -> None:
    kind, name = arg.split(":", 1)
    path = ctx.d / name
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        path.mkdir()
        (path / "keep").write_text("a file the user had\n")
    elif kind == "loop":
        os.symlink(name, path)
    elif kind == "dangling":
        os.symlink(ctx.d / "nowhere" / "x", path)
    elif kind == "sparse":
        with open(path, "wb") as f:
            f.truncate(2 * 1024**3)
    elif kind in ("zero", "full"):
        try:
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 5 if kind == "zero" else 7))
        except OSError as exc:
            pytest.skip(f"cannot make a character device: {exc}")
    else:
        raise ValueError(kind)


def _board_text(bid: str) -> bytes:
    variant = dict((b[0], b[1]) for b in BOARD_CASES)[bid]
    how = variant[0]
    if how == "raw":
        return variant[1]
    if how == "sub":
        assert variant[1] in MANUAL, (bid, variant[1])
        return MANUAL.replace(variant[1], variant[2], 1).encode()
    if how == "eth0":
        assert ETH0 in MANUAL
        return MANUAL.replace(ETH0, ETH0 + variant[1], 1).encode()
    if how == "vlan":
        return MANUAL.replace(VLAN, VLAN + variant[1], 1).encode()
    if how == "app":
        return (MANUAL + "\n" + variant[1]).encode()
    raise ValueError(how)


def _state_bytes(world: World, sid: str) -> bytes:
    transform = dict(STATE_CASES)[sid]
    text = world.golden.decode()
    if isinstance(transform, tuple):
        how = transform[0]
        if how == "raw":
            return transform[1]
        if how == "replace":
            assert transform[1] in text, (sid, transform[1])
            return text.replace(transform[1], transform[2], 1).encode("utf-8", "surrogateescape")
        if how == "truncate":
            return world.golden[: int(len(world.golden) * transform[1])]
        raise ValueError(how)
    data = json.loads(text)
    return json.dumps(transform(data), separators=(",", ":")).encode()


def _copyboard(ctx: Ctx, arg: str) -> None:
    board = ctx.d / "board.toml"
    board.write_text(MANUAL)
    for argv in (
        ["evl", "net", "--board", str(board), "-ei", "eth0.42", "-p", "256"],
        ["evl", "net", "--board", str(board), "-N42"],
    ):
        proc = ctx.evl(*argv)
        assert proc.returncode == 0, proc.stderr
    proc = ctx.evl("evl", "net", "--board", str(board), "-Qa", "-i", "eth0.42")
    assert proc.stdout == b"256\n", proc


def _board_touch(ctx: Ctx, how: str) -> None:
    board = ctx.d / "board.toml"
    data = board.read_bytes()
    time.sleep(0.01)
    if how == "touch":
        os.utime(board)
    elif how == "rewrite":
        board.write_bytes(data)
    elif how == "newinode":
        new = ctx.d / "board.toml.new"
        new.write_bytes(data)
        os.replace(new, board)
    elif how == "touchpast":
        os.utime(board, (1_000_000_000, 1_000_000_000))
    elif how == "cpp":  # cp -p then mv: same bytes and mtime, a new inode
        new = ctx.d / "board.toml.new"
        shutil.copy2(board, new)
        os.replace(new, board)


def _symstate(ctx: Ctx, kind: str) -> None:
    real = ctx.d / "real"
    real.mkdir()
    if kind == "dangling":
        os.symlink(real / "new.json", ctx.state)
        return
    (real / "state.json").write_bytes(ctx.world.golden)
    os.symlink("real/state.json" if kind == "rel" else real / "state.json", ctx.state)


def _dead_pid() -> int:
    for pid in range(4194000, 4194300):
        if not os.path.exists(f"/proc/{pid}"):
            return pid
    return 999999


def _leftovers(ctx: Ctx, target: Path) -> None:
    pid = _dead_pid()
    (target.parent / f"{target.name}.tmp.{pid}").write_text('{"half": ')
    (target.parent / f"{target.name}.tmp.{pid + 1}").write_text("")
    (target.parent / f"{target.name}.tmp.notapid").write_text("the user's file\n")


def _wrapboard(ctx: Ctx, arg: str) -> None:
    m = U64 - 1
    text = MANUAL.replace(
        VLAN,
        VLAN + f"port = true\ncounters = {{ rx_packets = {m}, rx_bytes = {m - 10}, tx_packets = {m}, "
        f"tx_bytes = {m - 10}, csum_errors = {m}, rx_nomem = {m}, tx_nomem = {m} }}\n",
        1,
    )
    board = ctx.d / "board.toml"
    board.write_text(text)
    proc = ctx.evl("evl", "net", "--board", str(board), "-N42")
    assert proc.returncode == 0, proc.stderr


def _setup(ctx: Ctx, step: str) -> None:
    name, _, arg = step.partition(":")
    w = ctx.world
    if name == "good":
        ctx.state.write_bytes(w.golden)
    elif name == "bpf":
        if w.objdir is None:
            pytest.skip(w.objerr or "no eBPF objects")
    elif name == "make":
        _make(ctx, arg)
    elif name == "board":
        (ctx.d / "board.toml").write_bytes(_board_text(arg))
    elif name == "state":
        ctx.state.write_bytes(_state_bytes(w, arg))
    elif name == "data":
        fname, key = arg.split(":", 1)
        data = DATA[key]
        (ctx.d / fname).write_bytes(data() if callable(data) else data)
    elif name == "copyboard":
        _copyboard(ctx, arg)
    elif name.startswith("board-"):
        _board_touch(ctx, name[len("board-") :])
    elif name == "symstate":
        _symstate(ctx, arg)
    elif name == "leftovers":
        _leftovers(ctx, ctx.state)
    elif name == "leftovers-target":
        _leftovers(ctx, ctx.d / "real" / "state.json")
    elif name == "insns-garbage":
        data = json.loads(w.golden)
        for f in data["filters"].values():
            f["insns"] = "!!!not base64!!!"
        ctx.state.write_bytes(json.dumps(data).encode())
    elif name == "wrapboard":
        _wrapboard(ctx, arg)
    else:
        raise ValueError(step)


# -- snapshots -----------------------------------------------------------------------------------

SKIP_NEW = (".lock",)


def snapshot(d: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for root, dirs, files in os.walk(d):
        for name in dirs + files:
            p = Path(root) / name
            rel = str(p.relative_to(d))
            if rel.split(os.sep)[0] in ("home", "xdg", "run", "agent", "ref"):
                continue
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", p.read_bytes() if st.st_size < 64 * 1024**2 else (st.st_size, st.st_mtime_ns))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)
            else:
                out[rel] = ("special", stat.S_IFMT(st.st_mode), st.st_rdev)
        dirs[:] = [x for x in dirs if not os.path.islink(Path(root) / x)]
    return out


def _only_log_grew(a: Any, b: Any) -> bool:
    """Whether two versions of the state file differ only by lines appended to the kernel log."""
    try:
        x, y = json.loads(a[1]), json.loads(b[1])
        old, new = x.pop("log"), y.pop("log")
    except (TypeError, ValueError, IndexError, KeyError, AttributeError):
        return False
    return x == y and new[: len(old)] == old


def diff_snapshots(before: dict, after: dict, log_grows: bool = False) -> list[str]:
    problems = []
    for rel, what in before.items():
        if rel not in after:
            problems.append(f"{rel} was removed")
        elif log_grows and rel == STATE and _only_log_grew(what, after[rel]):
            continue
        elif after[rel] != what:
            kind = what[0] if what[0] == after[rel][0] else f"{what[0]} -> {after[rel][0]}"
            problems.append(f"{rel} changed ({kind}{_json_keys(what, after[rel])})")
    for rel in after:
        if rel not in before and not rel.endswith(SKIP_NEW):
            problems.append(f"{rel} appeared")
    return problems


def _json_keys(a: Any, b: Any) -> str:
    """For a JSON file that changed: which top-level keys did."""
    try:
        x, y = json.loads(a[1]), json.loads(b[1])
    except (TypeError, ValueError, IndexError):
        return ""
    if not isinstance(x, dict) or not isinstance(y, dict):
        return ""
    keys = sorted(k for k in set(x) | set(y) if x.get(k) != y.get(k))
    return ": keys " + ", ".join(keys) if keys else ""


# -- post checks ---------------------------------------------------------------------------------


def _json_show(ctx: Ctx, *extra: str) -> Any:
    proc = ctx.evl("evl", "sim", *extra, "--json", "show")
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout)


def post_stdout256(ctx: Ctx, proc: Any) -> list[str]:
    return [] if proc.stdout == b"256\n" else [f"-Qa printed {proc.stdout!r}, not 256: the board's state was lost"]


def post_vlans42(ctx: Ctx, proc: Any) -> list[str]:
    p = ctx.evl("evl", "net", "--board", str(ctx.d / "board.toml"), "-n")
    return [] if p.stdout == b"42\n" else [f"-n printed {p.stdout!r}, not 42: the board's state was lost"]


def post_vlans_is(ctx: Ctx, proc: Any, expect: str = "") -> list[str]:
    p = ctx.evl("evl", "net", "-n")
    want = (expect + "\n").encode() if expect else b""
    return [] if p.stdout == want else [f"-n printed {p.stdout!r}, not {want!r}"]


def post_show_port(ctx: Ctx, proc: Any) -> list[str]:
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        return ["sim show --json printed no JSON"]
    return [] if "eth0.42" in data.get("ports", []) else ["eth0.42 is no longer a port: the state was wiped"]


def post_symlink_kept(ctx: Ctx, proc: Any) -> list[str]:
    if not os.path.islink(ctx.state):
        return [f"{STATE} is no longer a symbolic link"]
    target = Path(os.path.realpath(ctx.state))
    if not target.is_file():
        return [f"the link's target {target} is not a file"]
    return []


def post_target_vlans43(ctx: Ctx, proc: Any) -> list[str]:
    target = Path(os.path.realpath(ctx.state))
    try:
        data = json.loads(target.read_bytes())
    except (OSError, ValueError) as exc:
        return [f"the link's target is unreadable: {exc}"]
    return [] if data.get("vlans") == [43] else [f"the link's target holds vlans {data.get('vlans')!r}, not [43]"]


def _leftover_check(directory: Path, base: str) -> list[str]:
    names = os.listdir(directory)
    left = [n for n in names if n.startswith(base + ".tmp.") and n[len(base) + 5 :].isdigit()]
    problems = [f"stale {n} left behind" for n in left]
    if base + ".tmp.notapid" not in names:
        problems.append(f"{base}.tmp.notapid (not a writer's leftover) was removed")
    return problems


def post_no_leftovers(ctx: Ctx, proc: Any) -> list[str]:
    return _leftover_check(ctx.d, STATE)


def post_no_leftovers_target(ctx: Ctx, proc: Any) -> list[str]:
    return _leftover_check(ctx.d / "real", "state.json")


def post_no_wrap(ctx: Ctx, proc: Any) -> list[str]:
    problems = []
    board = str(ctx.d / "board.toml")
    for argv in (
        ("evl", "net", "--board", board, "-Q", "-i", "eth0.42"),
        ("evl", "net", "--board", board, "--json", "-Q", "-i", "eth0.42"),
        ("evl", "sim", "--board", board, "show"),
    ):
        p = ctx.evl(*argv)
        text = (p.stdout + p.stderr).decode(errors="replace")
        big = [n for n in re.findall(r"\d+", text) if int(n) >= U64]
        if p.returncode != 0:
            problems.append(f"{' '.join(argv[1:])} failed: {text.strip()[:200]}")
        if big:
            problems.append(f"{' '.join(argv[1:3])} printed {big[0]} (>= 2^64)")
    return problems


def post_no_ssh(ctx: Ctx, proc: Any) -> list[str]:
    called = ctx.d / "home" / "ssh-called"
    return [f"ssh was run with: {called.read_text().strip()[:200]!r}"] if called.exists() else []


def post_hostkey_first(ctx: Ctx, proc: Any) -> list[str]:
    called = ctx.d / "home" / "ssh-called"
    if not called.exists():
        return []  # refused before ssh: fine
    words = called.read_text().split()
    seen = [w.split("=", 1)[1].lower() for w in words if w.lstrip("-o").startswith("StrictHostKeyChecking=")]
    return [] if seen and seen[0] == "yes" else [f"ssh's first StrictHostKeyChecking is {seen[:1]!r}, not 'yes'"]


def post_agent_frames(ctx: Ctx, proc: Any) -> list[str]:
    problems = []
    for n, line in enumerate(proc.stdout.split(b"\n")):
        if not line:
            continue
        try:
            frame = json.loads(line)
        except ValueError:
            problems.append(f"stdout line {n + 1} is not JSON: {line[:80]!r}")
            continue
        if not isinstance(frame, dict) or "ok" not in frame:
            problems.append(f"stdout line {n + 1} is not a reply frame: {line[:80]!r}")
    return problems


POSTS: dict[str, Callable[..., list[str]]] = {
    name[len("post_") :]: fn for name, fn in globals().items() if name.startswith("post_")
}


# -- running a case ------------------------------------------------------------------------------


@dataclass
class Outcome:
    case: Case
    cmd: str
    code: int | None
    out: bytes
    err: bytes
    problems: list[str]
    seconds: float
    skipped: str | None = None
    normal: bytes = b""  # stderr of the reference run (stream cases)


CONTROL = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]")


KERNEL_LINE = re.compile(r"^\[\s*\d+\.\d+\] ")


def message_lines(err: str, normal: str = "") -> list[str]:
    """The lines of stderr that are messages.

    Left out: argparse's leading usage, evl-net's trailing usage, the
    simulated kernel's console lines (``[  1.234] ...``, dmesg on a board) and
    the lines the command prints on stderr on a working stdout (``normal``:
    ``evl --help`` prints its usage there).
    """
    known = set(normal.split("\n")) - {""}
    lines = [line for line in err.split("\n") if not KERNEL_LINE.match(line) and line not in known]
    if lines and lines[-1] == "":
        lines.pop()
    if lines and lines[0].startswith("usage:"):
        i = 1
        while i < len(lines) and lines[i].startswith(" "):
            i += 1
        lines = lines[i:]
    for i, line in enumerate(lines):
        if i > 0 and line.startswith("usage:"):
            lines = lines[:i]
            break
    return lines


def check(case: Case, code: int | None, out: bytes, err: bytes, normal: bytes = b"") -> list[str]:
    problems: list[str] = []
    text = err.decode("utf-8", "replace")
    if code is None:
        return [f"hung: no exit within {TIMEOUT:.0f} s"]
    if "Traceback (most recent call last)" in text:
        problems.append("a Python traceback on stderr")
    if "internal error" in text:
        problems.append("'internal error' on stderr")
    if "Exception ignored" in text:
        problems.append("'Exception ignored' (an unhandled exception at exit) on stderr")
    if case.agent:
        allowed = case.codes or (0, 3)
        if code not in allowed:
            problems.append(f"exit status {code}, expected one of {allowed}")
    elif case.codes:
        if code not in case.codes:
            problems.append(f"exit status {code}, expected {'/'.join(map(str, case.codes))}")
    elif case.ok and code != 0:
        problems.append(f"exit status {code}, expected success")
    elif not case.ok and code == 0:
        problems.append("exit status 0: the input was accepted")
    bad = CONTROL.search(err)
    if bad:
        problems.append(f"raw control character {bad.group()!r} on stderr")
    try:
        err.decode("utf-8")
    except UnicodeDecodeError:
        problems.append("invalid UTF-8 on stderr (raw bytes echoed)")
    refused = code != 0
    msgs = message_lines(text, normal.decode("utf-8", "replace"))
    if refused and case.stream == "epipe":
        if len(msgs) > 1:
            problems.append(f"{len(msgs)} message lines on stderr, expected at most 1")
    elif refused and case.lines and not case.agent:
        if len(msgs) != 1:
            problems.append(f"{len(msgs)} message lines on stderr, expected 1")
    elif case.agent and len(msgs) > 1:
        problems.append(f"{len(msgs)} lines on the agent's stderr")
    msg = msgs[0] if msgs else ""
    folded = "\n".join(msgs).casefold()
    if refused or (not case.ok and 0 not in case.codes):
        missing = [f for f in case.has if f.casefold() not in folded]
        if missing:
            problems.append("message lacks " + ", ".join(repr(f) for f in missing))
        if case.any and not any(f.casefold() in folded for f in case.any):
            problems.append("message has none of " + ", ".join(repr(f) for f in case.any))
        if case.prefix and refused and not msg.startswith(case.prefix):
            problems.append(f"message does not start with {case.prefix!r}")
        if case.maxlen and refused and max((len(m) for m in msgs), default=0) > case.maxlen:
            problems.append(f"a message line of {max(len(m) for m in msgs)} chars (echoed argument not truncated)")
    for f in case.lacks:
        if f.casefold() in text.casefold():
            problems.append(f"stderr has {f!r}")
    return problems


def _spawn(argv: list[Any], env: dict, stdin: Any, stream: str | None) -> tuple[int | None, bytes, bytes]:
    exe = {"evl": EVL, "evl-net": EVL_NET}[argv[0]]
    cmd: list[Any] = [*_limit(), exe, *argv[1:]]
    stdout: Any = subprocess.PIPE
    closers: list[Any] = []
    if stream == "closed":
        cmd = [*_limit(), "sh", "-c", 'exec "$0" "$@" >&-', exe, *argv[1:]]
        stdout = subprocess.DEVNULL  # replaced by the shell's >&-
    elif stream == "full":
        stdout = open("/dev/full", "wb")
        closers.append(stdout)
    elif stream == "epipe":
        r, w = os.pipe()
        os.close(r)
        stdout = w
        closers.append(w)
    data = stdin if stdin is None or isinstance(stdin, bytes) else STDINS[stdin]()
    try:
        proc = subprocess.run(
            cmd,
            env=env,
            input=data,
            stdout=stdout,
            stderr=subprocess.PIPE,
            stdin=None if data is not None else subprocess.DEVNULL,
            timeout=TIMEOUT,
        )
        return proc.returncode, proc.stdout or b"", proc.stderr
    except subprocess.TimeoutExpired as exc:
        return None, exc.stdout or b"", exc.stderr or b""
    finally:
        for c in closers:
            if isinstance(c, int):
                os.close(c)
            else:
                c.close()


def _shell_quote(argv: list[Any]) -> str:
    import shlex

    parts = []
    for a in argv:
        if isinstance(a, bytes):
            parts.append("$'" + "".join(f"\\x{b:02x}" if b < 32 or b > 126 else chr(b) for b in a) + "'")
        elif any(ord(c) < 32 or ord(c) == 127 or 0x80 <= ord(c) <= 0x9F for c in a):
            parts.append(
                "$'"
                + "".join(
                    f"\\x{ord(c):02x}" if ord(c) < 32 or ord(c) == 127 or 0x80 <= ord(c) <= 0x9F else c for c in a
                )
                + "'"
            )
        else:
            parts.append(shlex.quote(a if len(a) <= 100 else a[:60] + f"...({len(a)} chars)"))
    return " ".join(parts)


def run_case(case: Case, world: World) -> Outcome:
    d = world.base / "cases" / re.sub(r"[^A-Za-z0-9_.-]", "_", case.id)
    d.mkdir(parents=True)
    fakebin = world.base / "fakebin"
    env = base_env(d, fakebin)
    for sub in ("home", "agent", "run"):
        (d / sub).mkdir(exist_ok=True)
    ctx = Ctx(d, world, env)
    t0 = time.monotonic()
    try:
        for step in case.setup:
            _setup(ctx, step)
    except pytest.skip.Exception as exc:
        return Outcome(case, "", 0, b"", b"", [], 0.0, skipped=str(exc))
    except Exception as exc:  # reported as the case's failure
        return Outcome(case, f"(setup {case.setup})", None, b"", b"", [f"setup failed: {exc!r}"], 0.0)
    run_env = dict(env)
    for key, value in case.env:
        if value is None:
            run_env.pop(key, None)
        else:
            run_env[key] = ctx.fmt(value)
    argv = [ctx.fmt(a) for a in case.argv]
    shown_env = " ".join(f"{k}={_shell_quote([ctx.fmt(v)]) if v is not None else '(unset)'}" for k, v in case.env)
    redirect = {"closed": " >&-", "full": " >/dev/full", "epipe": " | (closed pipe)"}.get(case.stream or "", "")
    cmd = (shown_env + " " if shown_env else "") + _shell_quote(argv) + redirect
    if case.stdin is not None:
        cmd = f"<{case.stdin if isinstance(case.stdin, str) else f'{len(case.stdin)} bytes'}> | " + cmd
    before = snapshot(d) if case.state == "bytes" else None
    ref_out, ref_err = None, b""
    if case.stream:
        ref_out, ref_err = _reference(case, world, argv, fakebin)
    code, out, err = _spawn(argv, run_env, case.stdin, case.stream)
    if case.stream and ref_out == b"" and code == 0:  # nothing to write: success is right
        problems = [p for p in check(case, code, out, err, ref_err) if not p.startswith(("exit status 0", "message"))]
    else:
        problems = check(case, code, out, err, ref_err)
    if before is not None:
        problems += diff_snapshots(before, snapshot(d), case.log_grows)
    if code is not None:
        for spec in case.post:  # "name" or "name:argument"
            name, colon, arg = spec.partition(":")
            result = type("P", (), {"stdout": out, "stderr": err, "returncode": code})()
            problems += POSTS[name](ctx, result, *([arg] if colon else []))
    return Outcome(case, cmd, code, out, err, problems, time.monotonic() - t0, normal=ref_err)


def _reference(case: Case, world: World, argv: list[Any], fakebin: Path) -> tuple[bytes, bytes]:
    """What the command prints on a working stdout (from a fresh good state); cached per command."""
    key = tuple(a if isinstance(a, str) else repr(a) for a in case.argv)
    with world.lock:
        if key in world.refs:
            return world.refs[key]
    d = world.base / "refs" / re.sub(r"[^A-Za-z0-9_.-]", "_", case.id)
    d.mkdir(parents=True)
    (d / STATE).write_bytes(world.golden)
    _, out, err = _spawn(argv, base_env(d, fakebin), None, None)
    with world.lock:
        world.refs[key] = (out, err)
    return out, err


# ---------------------------------------------------------------------------------------------
# pytest glue

CASES = {c.id: c for c in TABLE}
assert len(CASES) == len(TABLE), "duplicate case ids: " + ", ".join(
    sorted({c.id for c in TABLE if sum(1 for d in TABLE if d.id == c.id) > 1})
)


@pytest.fixture(scope="session")
def outcomes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    base = tmp_path_factory.mktemp("hostile")
    fakebin = _fakebin(base)
    objerr = _build_objects(base / "objects")
    objdir = None if objerr is not None else base / "objects"
    golden = _golden(base, objdir, fakebin)
    world = World(base, golden, objdir, objerr)
    wanted = [
        item.callspec.params["case_id"]
        for item in request.session.items
        if getattr(item, "function", None) is test_hostile and hasattr(item, "callspec")
    ]
    wanted = wanted or list(CASES)
    results: dict[str, Outcome] = {}
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = {cid: pool.submit(run_case, CASES[cid], world) for cid in wanted if cid in CASES}
        for cid, fut in futures.items():
            results[cid] = fut.result()
    report = os.environ.get("HOSTILE_REPORT")
    if report:
        write_report(Path(report), results)
    return results


def _describe(o: Outcome) -> str:
    err = o.err.decode("utf-8", "backslashreplace")
    msgs = message_lines(err, o.normal.decode("utf-8", "replace"))
    head = [m for m in msgs if m][:3] or err.splitlines()[:3]
    if len(head) == 3 and len(msgs) > 3:
        head.append(f"... ({len(msgs)} message lines)")
    status = "timeout (killed)" if o.code is None else str(o.code)
    cmd = re.sub(r"/tmp/pytest-of-[^/]+/pytest-\d+/hostile\d+/(cases/|objects/)?", "", o.cmd)
    lines = [f"- **{o.case.id}** — `{cmd}`", f"  - exit: {status}"]
    shown = [
        re.sub(r"/tmp/pytest-of-[^/]+/pytest-\d+/hostile\d+/(cases/|objects/)?", "", repr(h)[1:-1])[:240] for h in head
    ]
    lines.append("  - stderr: " + (" ⏎ ".join(shown) if shown else "(empty)"))
    lines.append("  - wrong: " + "; ".join(o.problems))
    if o.case.note:
        lines.append(f"  - note: {o.case.note}")
    return "\n".join(lines)


AMBIGUITIES = [
    "Wording: cases assert fragments any sensible message contains (the offending path, value, key path or "
    "errno text such as 'Not a directory'); where several wordings are plausible a case accepts any of a few.",
    "Kernel console lines (`[  1.234] fec ...: ...`) that the simulator prints on stderr are not counted as "
    "message lines; but the line the simulated kernel appends to the state's `log` on a refused -F still counts "
    "as a state change (the requirement says the state is unchanged when -F refuses an object).",
    "`evl sim rx` is treated as a mutation for the output-stream cases: with stdout on /dev/full its message "
    "must say whether the frames were injected (accepted words: changed, done, applied, took effect, happened, "
    "was made, unchanged, not changed).",
    "EVL_SIM_STATE='' and EVL_NET_TRANSPORT='' may be treated as unset (success) or refused; explicit empty "
    "option values (`--board=`, `--transport=`) must be refused.",
    "`evl -P /nonexistent net -n` and `evl -P '' net -n` may succeed (net is a plugin) or be refused naming -P.",
    "`--ssh=-oStrictHostKeyChecking=no` may be refused, or passed after the tool's own "
    "StrictHostKeyChecking=yes (ssh keeps the first value): the case checks the first value ssh gets is yes.",
    "`evl sim rx --size 100000` on a 1500-MTU device, `--size 10` (shorter than an Ethernet header), a 300-char "
    "host name in --remote, `-N42,` (trailing comma) and `-N 42` (glued with a space) are expected to be refused.",
    "Timeouts are 20 s per case; the cases run 8 at a time, so a hang costs 20 s of wall time, not 20 s each.",
]


def write_report(path: Path, results: dict[str, Outcome]) -> None:
    by_class: dict[str, list[Outcome]] = {}
    for o in results.values():
        by_class.setdefault(o.case.cls, []).append(o)
    out = [
        "# Hostile input (issue 11): failing cases",
        "",
        f"{len(results)} cases run by tests/test_hostile_input.py.",
        "",
        "| class | passed | failed | skipped |",
        "|---|---|---|---|",
    ]
    tp = tf = ts = 0
    for cls in sorted(by_class):
        os_ = by_class[cls]
        s = sum(1 for o in os_ if o.skipped)
        f = sum(1 for o in os_ if o.problems and not o.skipped)
        p = len(os_) - s - f
        tp, tf, ts = tp + p, tf + f, ts + s
        out.append(f"| {cls} | {p} | {f} | {s} |")
    out.append(f"| **total** | {tp} | {tf} | {ts} |")
    out.append("")
    out.append(
        "Command lines show the case directory as a relative path; stderr shows the message lines "
        "(usage text and simulated kernel console lines left out), escaped."
    )
    out.append("")
    out.extend(["## Ambiguities (expectations chosen, to be confirmed)", ""] + [f"- {a}" for a in AMBIGUITIES] + [""])
    slow = sorted(results.values(), key=lambda o: -o.seconds)[:8]
    out.append("Slowest cases: " + ", ".join(f"{o.case.id} ({o.seconds:.1f} s)" for o in slow) + ".")
    out.append("")
    for cls in sorted(by_class):
        failing = [o for o in by_class[cls] if o.problems and not o.skipped]
        out.append(f"## {cls} ({len(failing)} failing of {len(by_class[cls])})")
        out.append("")
        out.extend(_describe(o) for o in failing)
        out.append("")
    path.write_text("\n".join(out) + "\n")


@pytest.mark.parametrize("case_id", list(CASES))
def test_hostile(case_id: str, outcomes: dict[str, Outcome]) -> None:
    o = outcomes[case_id]
    if o.skipped:
        pytest.skip(o.skipped)
    if o.problems:
        err = o.err.decode("utf-8", "backslashreplace").splitlines()
        pytest.fail(
            f"[{o.case.cls}] {o.cmd}\n  exit {o.code}; stderr: {err[:3]!r}\n  " + "\n  ".join(o.problems),
            pytrace=False,
        )


def test_table_is_large_enough() -> None:
    assert len(TABLE) >= 300
