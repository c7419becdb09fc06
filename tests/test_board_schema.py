"""Board files are checked by one schema (boards/board.schema.json), then for consistency.

Every hostile board below is refused by the library (``board.load``) and by a
real ``evl net`` process with one line naming the file and the key, exit 1,
no traceback.  The real ``jsonschema`` library is the oracle of our small
validator (:mod:`evl_net.schema`): both must agree, valid or not, on every
document, hostile or valid.  Three differences between a TOML board and a
JSON document are the oracle's to be told, not ours to copy:

* a TOML document may hold what JSON cannot (NaN, infinities, dates): such a
  document is not JSON data, so the oracle holds it invalid;
* TOML's ``1.0`` is a float, never an integer (JSON cannot tell 1 from 1.0,
  so draft 2020-12 calls 1.0 an integer): the oracle's "integer" is Python's int;
* ``pattern`` is an ECMA-262 regular expression, whose ``$`` does not match
  before a final newline (JSON-Schema-Test-Suite, optional/ecmascript-regex);
  jsonschema searches with Python's ``re``, where it does: the oracle's
  patterns end in ``\\Z`` instead.

:func:`test_stock_jsonschema_differs_only_where_toml_and_ecma_say_so` checks
that these are the only differences from jsonschema as it comes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from jsonschema import Draft202012Validator, ValidationError, validators

from evl_core.errors import EvlError
from evl_net import schema as jschema
from evl_net.transports.sim import board as boards

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
SCHEMA_FILE = Path(boards.SCHEMA_PATH)
SCHEMA = json.loads(SCHEMA_FILE.read_text())
MANUAL = (Path(boards.BOARDS_DIR) / "manual.toml").read_text()
TRAFFIC = (Path(boards.BOARDS_DIR) / "manual-traffic.toml").read_text()
ETH0 = 'name = "eth0"\n'
VLAN = 'name = "eth0.42"\n'
VLAN_ID = 'vlan_id = 42\nmac = "50:2d:f4:1d:32:d0"'
U64 = 2**64 - 1
NAME = "board.toml"  # the board's name, relative to the test's directory: messages name it in full


def sub(old: str, new: str) -> bytes:
    assert old in MANUAL, old
    return MANUAL.replace(old, new, 1).encode()


def after_eth0(text: str) -> bytes:
    return sub(ETH0, ETH0 + text)


def after_vlan(text: str) -> bytes:
    return sub(VLAN, VLAN + text)


def append(text: str) -> bytes:
    return (MANUAL + "\n" + text).encode()


# -- the hostile boards: (id, content, key path or reason in the message, more words in it) -------------------

HOSTILE: list[tuple[str, bytes, str, tuple[str, ...]]] = [
    # wrong types, at every level
    ("route-int", b"route = [1]\n", "route[0]", ("expected a table, got an integer",)),
    ("route-string", b'route = "default"\n', "route", ("expected an array",)),
    ("route-table", b'[route]\ndst = "default"\nvia = "192.0.2.1"\n', "route", ("expected an array, got a table",)),
    ("route-item-string", b'route = ["default"]\n', "route[0]", ("expected a table",)),
    ("peer-int", b"peer = [5]\n", "peer[0]", ("expected a table",)),
    ("peer-table", b'[peer]\nip = "10.0.0.1"\nmac = "02:00:00:00:00:01"\n', "peer", ("expected an array",)),
    ("interface-string", b'interface = "eth0"\n', "interface", ("expected an array, got a string",)),
    ("interface-int-item", b"interface = [1]\n", "interface[0]", ("expected a table",)),
    ("interface-string-item", b'interface = ["eth0"]\n', "interface[0]", ("expected a table",)),
    ("interface-table", b'[interface]\nname = "eth0"\n', "interface", ("expected an array",)),
    ("hosts-int", b"hosts = 5\n", "hosts", ("expected a table, got an integer",)),
    ("hosts-string", b'hosts = "evl-peer"\n', "hosts", ("expected a table",)),
    ("hosts-list", b'hosts = ["evl-peer"]\n', "hosts", ("expected a table, got an array",)),
    ("hosts-value-int", append("[hosts.more]\nx = 1\n"), "hosts.more", ("expected a string, got a table",)),
    ("hosts-value-number", sub('gateway = "192.0.2.1"', "gateway = 5"), "hosts.gateway", ("expected a string",)),
    ("hosts-value-bad-ip", sub('gateway = "192.0.2.1"', 'gateway = "192.0.2"'), "hosts.gateway", ("IPv4",)),
    ("hosts-bad-name", sub("gateway =", '"two words" ='), 'hosts."two words"', ("invalid key (not a host name)",)),
    ("counters-int", after_eth0("counters = 5\n"), "interface[1].counters", ("expected a table",)),
    ("counters-list", after_eth0("counters = [1]\n"), "interface[1].counters", ("expected a table, got an array",)),
    ("addresses-string", after_eth0('addresses = "10.0.0.1/8"\n'), "interface[1].addresses", ("expected an array",)),
    ("addresses-int", after_eth0("addresses = [1]\n"), "interface[1].addresses[0]", ("expected a string",)),
    ("addresses-table", after_eth0("addresses = [{a = 1}]\n"), "interface[1].addresses[0]", ("got a table",)),
    ("name-int", sub(ETH0, "name = 5\n"), "interface[1].name", ("expected a string, got an integer",)),
    ("name-bool", sub(ETH0, "name = true\n"), "interface[1].name", ("got a boolean",)),
    ("driver-int", sub('driver = "fec"', "driver = 1"), "interface[1].driver", ("expected a string",)),
    ("bus-list", sub('bus = "2188000.ethernet"', "bus = []"), "interface[1].bus", ("expected a string",)),
    ("up-string", after_eth0('up = "yes"\n'), "interface[1].up", ("expected a boolean, got a string",)),
    ("port-int", after_eth0("port = 1\n"), "interface[1].port", ("expected a boolean, got an integer",)),
    ("loopback-string", sub("loopback = true", 'loopback = "true"'), "interface[0].loopback", ("boolean",)),
    ("oob-capable-int", sub("oob_capable = false", "oob_capable = 0"), "interface[5].oob_capable", ("boolean",)),
    ("mac-int", sub('mac = "50:2d:f4:1d:32:d0"', "mac = 5"), "interface[1].mac", ("expected a string",)),
    ("parent-int", sub('parent = "eth0"\n', "parent = 5\n"), "interface[2].parent", ("expected a string",)),
    ("page-size-date", sub("page_size = 4096", "page_size = 1979-05-27"), "page_size", ("got a date",)),
    ("driver-time", sub('driver = "fec"', "driver = 07:32:00"), "interface[1].driver", ("got a time",)),
    # integers: floats, strings, booleans, out of bounds
    ("mtu-string", after_eth0('mtu = "1500"\n'), "interface[1].mtu", ("expected an integer, got a string",)),
    ("mtu-whole-float", after_eth0("mtu = 1e3\n"), "interface[1].mtu", ("expected an integer, got a float",)),
    ("mtu-fraction", after_eth0("mtu = 1500.5\n"), "interface[1].mtu", ("expected an integer",)),
    ("mtu-inf", after_eth0("mtu = inf\n"), "interface[1].mtu", ("got inf",)),
    ("mtu-nan", after_eth0("mtu = nan\n"), "interface[1].mtu", ("got nan",)),
    ("mtu-bool", after_eth0("mtu = true\n"), "interface[1].mtu", ("expected an integer, got a boolean",)),
    ("mtu-huge", after_eth0("mtu = 99999999999999999999\n"), "interface[1].mtu", ("must be at most 65536",)),
    ("mtu-negative", after_eth0("mtu = -1500\n"), "interface[1].mtu", ("must be at least 68",)),
    ("mtu-67", after_eth0("mtu = 67\n"), "interface[1].mtu", ("must be at least 68",)),
    ("mtu-65537", after_eth0("mtu = 65537\n"), "interface[1].mtu", ("must be at most 65536",)),
    ("vlan-id-whole-float", sub(VLAN_ID, VLAN_ID.replace("42", "42.0")), "interface[2].vlan_id", ("got a float",)),
    ("vlan-id-string", sub(VLAN_ID, VLAN_ID.replace("42", '"42"')), "interface[2].vlan_id", ("got a string",)),
    ("vlan-id-huge", sub(VLAN_ID, VLAN_ID.replace("42", "9" * 20)), "interface[2].vlan_id", ("at most 4094",)),
    ("vlan-id-zero", sub(VLAN_ID, VLAN_ID.replace("42", "0")), "interface[2].vlan_id", ("at least 1",)),
    ("vlan-id-4095", sub(VLAN_ID, VLAN_ID.replace("42", "4095")), "interface[2].vlan_id", ("at most 4094",)),
    ("page-size-string", sub("page_size = 4096", 'page_size = "4096"'), "page_size", ("got a string",)),
    ("page-size-float", sub("page_size = 4096", "page_size = 4096.0"), "page_size", ("got a float",)),
    ("page-size-inf", sub("page_size = 4096", "page_size = inf"), "page_size", ("inf",)),
    ("page-size-bool", sub("page_size = 4096", "page_size = true"), "page_size", ("got a boolean",)),
    ("page-size-1000", sub("page_size = 4096", "page_size = 1000"), "page_size", ("must be 4096, 16384 or 65536",)),
    # the solicitation timeout: a finite number of seconds, at most an hour
    ("solicit-inf", sub("solicit_timeout = 5", "solicit_timeout = inf"), "solicit_timeout", ("finite",)),
    ("solicit-minus-inf", sub("solicit_timeout = 5", "solicit_timeout = -inf"), "solicit_timeout", ("finite",)),
    ("solicit-nan", sub("solicit_timeout = 5", "solicit_timeout = nan"), "solicit_timeout", ("finite",)),
    ("solicit-huge", sub("solicit_timeout = 5", "solicit_timeout = 1e300"), "solicit_timeout", ("at most 3600",)),
    ("solicit-3601", sub("solicit_timeout = 5", "solicit_timeout = 3601"), "solicit_timeout", ("at most 3600",)),
    ("solicit-zero", sub("solicit_timeout = 5", "solicit_timeout = 0"), "solicit_timeout", ("greater than 0",)),
    ("solicit-negative", sub("solicit_timeout = 5", "solicit_timeout = -0.5"), "solicit_timeout", ("greater than",)),
    ("solicit-string", sub("solicit_timeout = 5", 'solicit_timeout = "5"'), "solicit_timeout", ("got a string",)),
    ("solicit-bool", sub("solicit_timeout = 5", "solicit_timeout = true"), "solicit_timeout", ("got a boolean",)),
    # counters: 0..2^64-1, known names, skb_free <= skb_total
    ("counter-negative", after_vlan("counters = { rx_packets = -1 }\n"), "interface[2].counters.rx_packets", ()),
    ("counter-2p64", after_vlan(f"counters = {{ rx_packets = {U64 + 1} }}\n"), "interface[2].counters.rx_packets", ()),
    ("counter-float", after_vlan("counters = { rx_bytes = 1.5 }\n"), "interface[2].counters.rx_bytes", ()),
    ("counter-inf", after_vlan("counters = { rx_bytes = inf }\n"), "interface[2].counters.rx_bytes", ("inf",)),
    ("counter-nan", after_vlan("counters = { tx_bytes = nan }\n"), "interface[2].counters.tx_bytes", ("nan",)),
    ("counter-string", after_vlan('counters = { tx_packets = "1" }\n'), "interface[2].counters.tx_packets", ()),
    ("counter-bool", after_vlan("counters = { csum_errors = true }\n"), "interface[2].counters.csum_errors", ()),
    ("counter-unknown", after_vlan("counters = { rx_pakets = 1 }\n"), "interface[2].counters.rx_pakets", ("counter",)),
    (
        "skb-free-above-total",
        after_eth0("port = true\ncounters = { skb_total = 5, skb_free = 10 }\n"),
        "interface[1].counters.skb_free",
        ("skb_total",),
    ),
    # interface names: 1..15 bytes, no '/', ':', white space nor control character; unique
    ("name-empty", sub(ETH0, 'name = ""\n'), "interface[1].name", ("must not be empty",)),
    ("name-slash", sub(ETH0, 'name = "eth/0"\n'), "interface[1].name", ("not an interface name: 'eth/0'",)),
    ("name-space", sub(ETH0, 'name = "eth 0"\n'), "interface[1].name", ("not an interface name",)),
    ("name-colon", sub(ETH0, 'name = "eth0:1"\n'), "interface[1].name", ("not an interface name",)),
    ("name-escape", sub(ETH0, 'name = "eth\\u001b[2J"\n'), "interface[1].name", ("\\x1b",)),
    ("name-trailing-newline", sub(ETH0, 'name = "eth9\\n"\n'), "interface[1].name", ("not an interface name",)),
    ("name-dot", sub(ETH0, 'name = "."\n'), "interface[1].name", ("not an interface name",)),
    ("name-16-chars", sub(ETH0, 'name = "eth0123456789abc"\n'), "interface[1].name", ("at most 15",)),
    ("name-16-bytes", sub(ETH0, 'name = "' + "\u00e9" * 8 + '"\n'), "interface[1].name", ("bytes",)),
    ("name-long", sub(ETH0, 'name = "' + "e" * 300 + '"\n'), "interface[1].name", ("at most 15",)),
    ("name-duplicate", sub('name = "eth2"', 'name = "eth1"'), "interface[5].name", ("duplicate", "interface[3]")),
    # VLAN devices: on a real device that exists, no wider than it, one per (parent, id)
    ("vlan-mtu-above-parent", after_vlan("mtu = 9000\n"), "interface[2].mtu", ("at most 1500", "eth0")),
    (
        "vlan-mtu-above-small-parent",
        sub(ETH0, ETH0 + "mtu = 1000\n").decode().replace(VLAN, VLAN + "mtu = 1200\n").encode(),
        "interface[2].mtu",
        ("at most 1000",),
    ),
    (
        "vlan-duplicate-id",
        append('[[interface]]\nname = "eth0.x"\nparent = "eth0"\nvlan_id = 42\n'),
        "interface[6].vlan_id",
        ("eth0.x", "eth0.42", "VLAN 42"),
    ),
    (
        "vlan-missing-parent",
        append('[[interface]]\nname = "eth9.42"\nparent = "eth9"\nvlan_id = 42\n'),
        "interface[6].parent",
        ("no interface 'eth9'",),
    ),
    ("vlan-parent-is-vlan", sub('parent = "eth1"', 'parent = "eth0.42"'), "interface[4].parent", ("VLAN device",)),
    ("vlan-parent-loopback", sub('parent = "eth1"', 'parent = "lo"'), "interface[4].parent", ("loopback",)),
    ("vlan-is-loopback", after_vlan("loopback = true\n"), "interface[2].loopback", ("loopback",)),
    ("vlan-id-without-parent", sub('parent = "eth0"\n', ""), "interface[2].parent", ("missing", "vlan_id")),
    ("parent-without-vlan-id", sub(VLAN_ID, 'mac = "50:2d:f4:1d:32:d0"'), "interface[2].vlan_id", ("missing",)),
    # addresses, routes, peers
    ("address-bad", sub('"10.10.10.11/24"', '"10.10.10.300/24"'), "interface[2].addresses[0]", ("IPv4",)),
    ("address-prefix-33", sub('"10.10.10.11/24"', '"10.10.10.11/33"'), "interface[2].addresses[0]", ("IPv4",)),
    ("address-bad-netmask", sub('"10.10.10.11/24"', '"10.10.10.11/1.2.3.4"'), "interface[2].addresses[0]", ()),
    ("address-leading-zero", sub('"10.10.10.11/24"', '"10.10.010.11/24"'), "interface[2].addresses[0]", ()),
    ("mac-bad", sub('mac = "50:2d:f4:1d:40:10"', 'mac = "zz"'), "peer[0].mac", ("not a MAC address: 'zz'",)),
    ("mac-trailing-newline", sub('mac = "50:2d:f4:1d:40:10"', 'mac = "50:2d:f4:1d:40:10\\n"'), "peer[0].mac", ()),
    ("route-via-bad", sub('via = "192.0.2.1"', 'via = "999.0.0.1"'), "route[0].via", ("not an IPv4 address",)),
    ("route-dst-bad", sub('dst = "default"', 'dst = "everywhere"'), "route[0].dst", ("not an IPv4 network",)),
    ("route-dst-bad-netmask", sub('dst = "default"', 'dst = "10.0.0.0/1.2.3.4"'), "route[0].dst", ("network",)),
    ("route-dev-missing", sub('dev = "eth1"', 'dev = "eth9"'), "route[0].dev", ("no interface 'eth9'",)),
    ("route-no-via", sub('via = "192.0.2.1"\n', ""), "route[0].via", ("missing",)),
    ("route-unknown-key", sub('dev = "eth1"', 'dev = "eth1"\nmetric = 5'), "route[0].metric", ("unknown key",)),
    ("peer-ip-bad", sub('ip = "10.10.10.10"', 'ip = "10.10.10.300"'), "peer[0].ip", ("IPv4",)),
    ("peer-no-mac", sub('mac = "50:2d:f4:1d:40:10"\n', ""), "peer[0].mac", ("missing",)),
    ("peer-dev-missing", sub('mac = "50:2d:f4:1d:40:10"', 'mac = "50:2d:f4:1d:40:10"\ndev = "x"'), "peer[0].dev", ()),
    ("peer-reachable-string", sub("reachable = false", 'reachable = "no"'), "peer[3].reachable", ("boolean",)),
    ("no-name", sub(ETH0, ""), "interface[1].name", ("missing",)),
    ("unknown-top-key", sub("page_size = 4096", "page_size = 4096\npagesize = 1"), "pagesize", ("unknown key",)),
    ("unknown-interface-key", after_eth0("speed = 1000\n"), "interface[1].speed", ("unknown key",)),
    ("unknown-key-escape", b'"\\u001b[31mred" = 1\n', '"\\x1b[31mred"', ("unknown key",)),
    ("driver-long", sub('driver = "fec"', 'driver = "' + "d" * 32 + '"'), "interface[1].driver", ("at most 31",)),
    # bytes that are not a TOML document
    ("non-utf8-string", MANUAL.encode().replace(b'"fec"', b'"f\xffc"'), "line 20", ("UTF-8", "0xff")),
    ("non-utf8-comment", b"# caf\xe9\n" + MANUAL.encode(), "line 1, column 6", ("UTF-8", "0xe9", "offset 5")),
    ("nul-byte", MANUAL.encode().replace(b'"fec"', b'"f\x00c"'), "line 20", ()),
    ("raw-escape-in-string", MANUAL.encode().replace(b'"fec"', b'"f\x1b[2Jc"'), "line 20", ()),
    ("not-toml", b"this is = not toml\n", "line 1", ()),
    ("duplicate-key", b"page_size = 4096\npage_size = 4096\n", "line 2", ()),
    ("deep-nesting", b"x = " + b"[" * 100000 + b"]" * 100000 + b"\n", NAME, ("nested too deep",)),
    ("deep-tables", b"x = " + b"{a = " * 5000 + b"1" + b"}" * 5000 + b"\n", NAME, ("nested too deep",)),
    ("int-of-5000-digits", b"page_size = " + b"9" * 5000 + b"\n", NAME, ("too many digits",)),
]
HOSTILE_IDS = [h[0] for h in HOSTILE]

#: Paths that are no board file: (id, how to make it in the test's directory, words in the message).
FILES: list[tuple[str, str, tuple[str, ...]]] = [
    ("fifo", "fifo.toml", ("not a regular file", "FIFO")),
    ("directory", "dir.toml", ("Is a directory",)),
    ("dev-zero", "/dev/zero", ("character device",)),
    ("dev-null", "/dev/null", ("character device",)),
    ("symlink-loop", "loop.toml", ("Too many levels of symbolic links",)),
    ("dangling-symlink", "dangling.toml", ("No such file or directory",)),
    ("missing", "missing.toml", ("No such file or directory",)),
    ("huge-sparse", "huge.toml", ("larger than the 16 MiB limit",)),
    ("huge-comments", "comments.toml", ("larger than the 16 MiB limit",)),
]


def make(tmp: Path, fid: str) -> str:
    """The path (relative to ``tmp``, or absolute) of file case ``fid``, made in ``tmp``."""
    name = dict((f[0], f[1]) for f in FILES)[fid]
    path = tmp / name
    if fid == "fifo":
        os.mkfifo(path)
    elif fid == "directory":
        path.mkdir()
    elif fid == "symlink-loop":
        path.symlink_to(name)
    elif fid == "dangling-symlink":
        path.symlink_to("nowhere.toml")
    elif fid == "huge-sparse":
        with open(path, "wb") as f:
            f.truncate(17 * 1024 * 1024)
    elif fid == "huge-comments":
        path.write_bytes(b"#" * (16 * 1024 * 1024) + b"\n")
    return name


# -- valid boards ---------------------------------------------------------------------------------------------

VALID: list[tuple[str, bytes]] = [
    ("manual", MANUAL.encode()),
    ("manual-traffic", TRAFFIC.encode()),
    ("empty", b""),
    ("no-interfaces", b"interface = []\nroute = []\npeer = []\n[hosts]\n"),
    ("one-nic", b'[[interface]]\nname = "eth0"\ndriver = "igb"\n'),
    ("fractional-timeout", sub("solicit_timeout = 5", "solicit_timeout = 0.25")),
    ("an-hour-timeout", sub("solicit_timeout = 5", "solicit_timeout = 3600")),
    ("page-size-64k", sub("page_size = 4096", "page_size = 65536")),
    ("mtu-bounds", after_eth0("mtu = 68\n")),  # and lo's 65536
    (
        "vlan-id-bounds",
        sub(VLAN_ID, VLAN_ID.replace("42", "4094")).decode().replace("vlan_id = 42", "vlan_id = 1").encode(),
    ),
    ("counters-bounds", after_vlan(f"port = true\ncounters = {{ rx_packets = 0, tx_bytes = {U64} }}\n")),
    ("skb-free-equal-total", after_vlan("port = true\ncounters = { skb_total = 5, skb_free = 5, skb_size = 2048 }\n")),
    ("name-15-bytes", sub(ETH0, 'name = "eth0123456789ab"\n').decode().replace('"eth0"', '"eth0123456789ab"').encode()),
    ("name-unicode", sub('name = "eth2"', 'name = "\u00e9th2"')),
    ("address-forms", sub('"10.10.10.11/24"', '"10.10.10.11/255.255.255.0", "10.10.11.1", "10.10.12.1/0.0.0.255"')),
    ("route-dst-forms", sub('dst = "default"', 'dst = "10.1.2.3/8"')),
    ("mac-upper-case", sub('mac = "50:2d:f4:1d:40:10"', 'mac = "50:2D:F4:1D:40:10"')),
    ("host-names", sub("gateway =", '"gw.example_1-a" =')),
    ("vlan-on-small-parent", sub(ETH0, ETH0 + "mtu = 1000\n")),
    ("vlan-mtu-equal-parent", sub(ETH0, ETH0 + "mtu = 9000\n").decode().replace(VLAN, VLAN + "mtu = 9000\n").encode()),
    ("route-without-dev", sub('dev = "eth1"\n', "")),
]
VALID_IDS = [v[0] for v in VALID]

#: Hostile boards the schema accepts: what is wrong with them is for the consistency checks.
CONSISTENCY = {
    "skb-free-above-total",
    "name-dot",
    "name-16-bytes",
    "name-duplicate",
    "vlan-mtu-above-parent",
    "vlan-mtu-above-small-parent",
    "vlan-duplicate-id",
    "vlan-missing-parent",
    "vlan-parent-is-vlan",
    "vlan-parent-loopback",
    "vlan-is-loopback",
    "vlan-id-without-parent",
    "parent-without-vlan-id",
    "address-bad-netmask",
    "route-dst-bad-netmask",
    "route-dev-missing",
    "peer-dev-missing",
}
#: Hostile boards that are not TOML: nothing to validate.
NOT_TOML = {
    "non-utf8-string",
    "non-utf8-comment",
    "nul-byte",
    "raw-escape-in-string",
    "not-toml",
    "duplicate-key",
    "deep-nesting",
    "deep-tables",
    "int-of-5000-digits",
}


def content(cid: str) -> bytes:
    return dict((h[0], h[1]) for h in HOSTILE)[cid] if cid in HOSTILE_IDS else dict(VALID)[cid]


def decoded(cid: str) -> dict[str, Any]:
    return tomllib.loads(content(cid).decode())


def env_for(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVL_")}
    env.update(EVL_SIM_STATE=str(tmp / "state.json"), EVL_NET_TRANSPORT="sim", XDG_STATE_HOME=str(tmp / "xdg"))
    return env


def run_evl(tmp: Path, board: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "evl"), "net", *(argv or ("-Q", "-i", "eth0")), "--board", board],
        cwd=tmp,
        env=env_for(tmp),
        capture_output=True,
        text=True,
        timeout=30,
    )


def assert_one_line(err: str, prefix: str, *words: str) -> None:
    """One printable line on stderr, starting with ``prefix``, naming every word; no traceback."""
    assert err.endswith("\n") and err.count("\n") == 1, err
    line = err[:-1]
    assert line.isprintable(), line
    assert line.startswith(prefix), line
    assert "Traceback" not in err and "internal error" not in err, err
    for word in words:
        assert word in line, (word, line)


# -- the hostile boards, through the library and a process -------------------------------------------------------


@pytest.mark.parametrize("cid", HOSTILE_IDS)
def test_hostile_board_is_one_line_from_the_library(cid: str, tmp_path: Path, monkeypatch) -> None:
    _id, data, key, words = next(h for h in HOSTILE if h[0] == cid)
    monkeypatch.chdir(tmp_path)
    (tmp_path / NAME).write_bytes(data)
    with pytest.raises(EvlError) as info:
        boards.load(NAME)
    line = info.value.format("evl-net") + "\n"
    assert_one_line(line, f"evl-net: board file {NAME}: ", key, *words)
    assert len(line) < 400  # the file's values are shortened, not echoed whole


@pytest.mark.parametrize("cid", HOSTILE_IDS)
def test_hostile_board_is_one_line_from_evl_net(cid: str, tmp_path: Path) -> None:
    _id, data, key, words = next(h for h in HOSTILE if h[0] == cid)
    (tmp_path / NAME).write_bytes(data)
    run = run_evl(tmp_path, NAME)
    assert (run.returncode, run.stdout) == (1, "")
    assert_one_line(run.stderr, f"evl-net: board file {NAME}: ", key, *words)
    assert not (tmp_path / "state.json").exists()  # nothing booted


@pytest.mark.parametrize("fid", [f[0] for f in FILES])
def test_a_path_that_is_no_board_file_is_one_line_and_never_hangs(fid: str, tmp_path: Path) -> None:
    board = make(tmp_path, fid)
    words = dict((f[0], f[2]) for f in FILES)[fid]
    run = run_evl(tmp_path, board)
    assert (run.returncode, run.stdout) == (1, "")
    assert_one_line(run.stderr, f"evl-net: cannot read board file {board}: ", *words)
    # The library, in a process of its own (a FIFO must not hang the tests): load() and fingerprint() agree.
    code = (
        "import sys\n"
        "from evl_core.errors import EvlError\n"
        "from evl_net.transports.sim import board\n"
        "for f in (board.load, board.fingerprint):\n"
        "    try:\n"
        "        f(sys.argv[1])\n"
        "    except EvlError as exc:\n"
        "        print(exc.format('evl-net'))\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", code, board], cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert child.returncode == 0 and child.stderr == "", child.stderr
    load_line, fingerprint_line = child.stdout.splitlines()
    assert load_line == fingerprint_line == run.stderr[:-1]


def test_a_fifo_with_a_writer_is_still_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", f"exec 3>{fifo}; sleep 30"])
    try:
        run = run_evl(tmp_path, "fifo.toml")
        assert run.returncode == 1 and "not a regular file (a FIFO)" in run.stderr
    finally:
        writer.kill()
        writer.wait()


def test_several_problems_name_the_first_in_document_order_and_count_the_rest(tmp_path: Path) -> None:
    text = '[[route]]\ndst = "nowhere"\nvia = "192.0.2.1"\n\n[[interface]]\nname = "eth 0"\nmtu = 5\n\n[hosts]\nx = 1\n'
    path = tmp_path / NAME
    path.write_text(text)
    with pytest.raises(EvlError) as info:
        boards.load(str(path))
    assert info.value.message == (
        f"board file {path}: route[0].dst: not an IPv4 network: 'nowhere' (and 3 more problems)"
    )
    found = boards.problems(tomllib.loads(text))
    assert [p.key for p in found] == ["route[0].dst", "interface[0].name", "interface[0].mtu", "hosts.x"]
    # Consistency problems too, in document order whatever order they were found in.
    text = (
        '[[peer]]\nip = "10.0.0.1"\nmac = "02:00:00:00:00:01"\ndev = "nope"\n\n'
        '[[interface]]\nname = "eth0"\nmtu = 1000\n\n'
        '[[interface]]\nname = "eth0.5"\nparent = "eth0"\nvlan_id = 5\nmtu = 1400\n\n'
        '[[interface]]\nname = "eth0"\n'
    )
    found = boards.problems(tomllib.loads(text))
    assert [p.key for p in found] == ["peer[0].dev", "interface[1].mtu", "interface[2].name"]
    path.write_text(text)
    with pytest.raises(EvlError) as info:
        boards.load(str(path))
    assert info.value.message.endswith(": peer[0].dev: no interface 'nope' (and 2 more problems)")
    path.write_text('[[interface]]\nname = "a b"\n\n[[interface]]\nname = "c d"\n')
    with pytest.raises(EvlError) as info:
        boards.load(str(path))
    assert info.value.message.endswith("interface[0].name: not an interface name: 'a b' (and 1 more problem)")


def test_values_from_the_file_are_escaped_and_shortened(tmp_path: Path) -> None:
    path = tmp_path / NAME
    key = "k" * 5000
    path.write_text(f'[hosts]\nevl = "{"9" * 5000}"\n{key} = "10.0.0.1"\n')
    with pytest.raises(EvlError) as info:
        boards.load(str(path))
    line = info.value.format("evl-net")
    assert line.startswith(f"evl-net: board file {path}: hosts.evl: not an IPv4 address: '999")
    assert "..." in line and len(line) < 300
    assert line.endswith("(and 2 more problems)")  # the long key: too long, and no host name


# -- the oracle: jsonschema agrees with our validator ------------------------------------------------------------


def _strict_integer(checker: Any, instance: Any) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    if validator.is_type(instance, "string") and not re.search(pattern[:-1] + r"\Z", instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


Oracle = validators.extend(
    Draft202012Validator,
    validators={"pattern": _ecma_pattern},
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _strict_integer),
)


def patterns(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in (patterns(v) if k != "pattern" else [v])]
    if isinstance(node, list):
        return [p for v in node for p in patterns(v)]
    return []


def is_json(document: Any) -> bool:
    try:
        json.dumps(document, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def oracle_valid(document: Any) -> bool:
    return is_json(document) and Oracle(SCHEMA).is_valid(document)


def ours_valid(document: Any) -> bool:
    return not boards.validator().problems(document)


def test_the_oracle_needs_every_pattern_anchored_at_the_end_only() -> None:
    found = patterns(SCHEMA)
    assert len(found) >= 5
    for pattern in found:  # what _ecma_pattern relies on to give "$" its ECMA-262 meaning
        assert pattern.startswith("^") and pattern.endswith("$") and pattern.count("$") == 1, pattern


@pytest.mark.parametrize("cid", [c for c in HOSTILE_IDS if c not in NOT_TOML] + VALID_IDS)
def test_our_validator_and_jsonschema_agree(cid: str) -> None:
    document = decoded(cid)
    expected = cid in VALID_IDS or cid in CONSISTENCY
    assert oracle_valid(document) is expected
    assert ours_valid(document) is expected


def test_stock_jsonschema_differs_only_where_toml_and_ecma_say_so() -> None:
    differ = set()
    for cid in [c for c in HOSTILE_IDS if c not in NOT_TOML] + VALID_IDS:
        document = decoded(cid)
        if is_json(document) and Draft202012Validator(SCHEMA).is_valid(document) != ours_valid(document):
            differ.add(cid)
    whole_floats = {"mtu-whole-float", "vlan-id-whole-float", "page-size-float"}  # TOML's 1.0 is no integer
    final_newlines = {"name-trailing-newline", "mac-trailing-newline"}  # ECMA-262's "$"
    assert differ == whole_floats | final_newlines


def test_the_board_schema_is_a_valid_draft_2020_12_schema() -> None:
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert jsonschema.validators.validator_for(SCHEMA) is Draft202012Validator
    Draft202012Validator.check_schema(SCHEMA)
    Draft202012Validator(Draft202012Validator.META_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(
        SCHEMA
    )
    assert jschema.load(str(SCHEMA_FILE)) == SCHEMA  # and one our validator takes


def test_every_key_of_the_board_schema_is_described() -> None:
    assert SCHEMA["title"] and SCHEMA["description"]

    def walk(node: dict[str, Any], where: str) -> None:
        for key, sub in node.get("properties", {}).items():
            assert sub.get("description"), f"{where}.{key}"
            walk(sub, f"{where}.{key}")
        for word in ("items", "additionalProperties", "propertyNames"):
            if isinstance(node.get(word), dict):
                walk(node[word], f"{where}.{word}")

    walk(SCHEMA, "board")
    for name, sub in SCHEMA["$defs"].items():
        assert sub.get("description"), name
        walk(sub, name)


@pytest.mark.parametrize("cid", VALID_IDS)
def test_valid_boards_load(cid: str, tmp_path: Path) -> None:
    path = tmp_path / NAME
    path.write_bytes(content(cid))
    board = boards.load(str(path))
    assert board.fingerprint == "sha256:" + hashlib.sha256(content(cid)).hexdigest()


def test_shipped_boards_validate_and_load_as_before() -> None:
    for name in ("manual", "manual-traffic"):
        _name, path = boards.locate(name)
        document = tomllib.loads(Path(path).read_text())
        assert boards.problems(document) == [] and oracle_valid(document)
        board = boards.load(name)
        assert list(board.interfaces) == ["lo", "eth0", "eth0.42", "eth1", "eth1.42", "eth2"]
        assert board.interfaces["lo"].mtu == 65536 and board.interfaces["eth0.42"].mtu == 1500
        assert board.interfaces["eth1.42"].oob_capable and not board.interfaces["eth2"].oob_capable
        assert board.routes[0].dst == "0.0.0.0/0" and board.peers[3].reachable is False
        assert board.hosts == {"evl-peer": "10.10.10.10", "gateway": "192.0.2.1"}
        assert board.page_size == 4096 and board.solicit_timeout == 5.0
    assert boards.load("manual-traffic").interfaces["eth0.42"].counters["rx_packets"] == 2092625


def test_a_checked_board_is_normalised(tmp_path: Path) -> None:
    path = tmp_path / NAME
    path.write_bytes(content("vlan-on-small-parent"))
    board = boards.load(str(path))
    assert board.interfaces["eth0"].mtu == 1000 and board.interfaces["eth0.42"].mtu == 1000  # fits in its parent
    path.write_bytes(content("address-forms"))
    assert boards.load(str(path)).interfaces["eth0.42"].addresses == [
        "10.10.10.11/24",
        "10.10.11.1/32",
        "10.10.12.1/24",
    ]
    path.write_bytes(content("mac-upper-case"))
    assert boards.load(str(path)).peers[0].mac == "50:2d:f4:1d:40:10"
    path.write_bytes(content("route-dst-forms"))
    assert boards.load(str(path)).routes[0].dst == "10.0.0.0/8"
    path.write_bytes(content("fractional-timeout"))
    assert boards.load(str(path)).solicit_timeout == 0.25


def test_the_schema_ships_with_the_package() -> None:
    from importlib.resources import files

    assert (files("evl_net") / "boards" / "board.schema.json").is_file()
    assert os.path.samefile(boards.SCHEMA_PATH, str(files("evl_net") / "boards" / "board.schema.json"))
    pyproject = tomllib.loads((ROOT / "plugins" / "net" / "pyproject.toml").read_text())
    assert "boards/*.json" in pyproject["tool"]["setuptools"]["package-data"]["evl_net"]


# -- identity: the content, read once ------------------------------------------------------------------------------


def test_the_fingerprint_is_the_content(tmp_path: Path) -> None:
    one, two = tmp_path / "one.toml", tmp_path / "sub" / "two.toml"
    two.parent.mkdir()
    one.write_text(MANUAL)
    two.write_text(MANUAL)
    first = boards.fingerprint(str(one))
    assert first == "sha256:" + hashlib.sha256(MANUAL.encode()).hexdigest()
    assert boards.fingerprint(str(two)) == first == boards.fingerprint(boards.locate(None)[1])  # wherever it is
    os.utime(one, (1, 1))
    assert boards.fingerprint(str(one)) == first  # touched: the same board
    one.write_text(MANUAL + "\n")
    assert boards.fingerprint(str(one)) != first  # edited: another


def test_booting_reads_the_file_once(tmp_path: Path, monkeypatch) -> None:
    path = str(tmp_path / NAME)
    Path(path).write_text(MANUAL)
    reads = []
    real = boards.read_regular
    monkeypatch.setattr(boards, "read_regular", lambda *a, **k: reads.append(a[0]) or real(*a, **k))
    digest = boards.fingerprint(path)
    board = boards.load(path)
    assert reads == [path] and board.fingerprint == digest
    # An edit between the two is seen: the board loaded is the file's content now, and says so.
    boards.fingerprint(path)
    Path(path).write_text(MANUAL.replace("solicit_timeout = 5", "solicit_timeout = 2"))
    board = boards.load(path)
    assert len(reads) == 3 and board.solicit_timeout == 2.0 and board.fingerprint != digest
    # Without a fingerprint just before, load() reads the file itself.
    boards.load(path)
    assert len(reads) == 4


def test_touching_a_board_keeps_its_state_and_editing_it_boots_afresh(tmp_path: Path) -> None:
    (tmp_path / NAME).write_text(MANUAL)
    assert run_evl(tmp_path, NAME, "-ei", "eth0.42").returncode == 0

    def is_port() -> bool:
        run = run_evl(tmp_path, NAME, "--json", "-Q", "-i", "eth0.42")
        assert run.returncode == 0, run.stderr
        return bool(json.loads(run.stdout)["oob_port"])

    assert is_port()
    os.utime(tmp_path / NAME, (12345, 12345))
    assert is_port()
    (tmp_path / NAME).write_text(MANUAL + "# edited\n")
    assert not is_port()


# -- the validator on its own -----------------------------------------------------------------------------------

SMALL = {
    "type": "object",
    "additionalProperties": False,
    "required": ["n"],
    "properties": {
        "n": {"type": "integer", "maximum": 65536},
        "x": {"type": "number"},
        "s": {"type": "string", "minLength": 1, "maxLength": 3},
        "e": {"enum": ["a", 1, True]},
        "list": {"type": "array", "maxItems": 2, "items": {"$ref": "#/$defs/word"}},
        "map": {"type": "object", "maxProperties": 1, "propertyNames": {"pattern": "^[a-z]+$"}},
        "any": {},
        "t": {"type": ["string", "null"]},
    },
    "$defs": {"word": {"title": "IPv4 address", "type": "string", "pattern": "^w$"}},
}


@pytest.mark.parametrize(
    "document, expected",
    [
        ({"n": 1}, []),
        ({"n": "1"}, [("n", "expected an integer, got a string")]),
        ({"n": True}, [("n", "expected an integer, got a boolean")]),
        ({"n": 1.0}, []),  # JSON Schema's 1.0 is an integer...
        ({"n": 70000}, [("n", "must be at most 65536")]),
        ({}, [("n", "missing")]),
        ({"n": 1, "zz": 2, "Odd key": 3}, [("zz", "unknown key"), ('"Odd key"', "unknown key")]),
        ({"n": 1, "x": math.inf}, [("x", "expected a finite number, got inf")]),
        ({"n": 1, "any": [1, {"k": math.nan}]}, [("any[1].k", "expected a finite number, got nan")]),
        ({"n": 1, "x": False}, [("x", "expected a number, got a boolean")]),
        ({"n": 1, "s": ""}, [("s", "must not be empty")]),
        ({"n": 1, "s": "abcd"}, [("s", "must be at most 3 characters")]),
        ({"n": 1, "e": 1.0}, []),
        ({"n": 1, "e": "b"}, [("e", 'must be "a", 1 or true')]),
        (
            {"n": 1, "list": ["w", "v", "w"]},
            [("list", "must have at most 2 items"), ("list[1]", "not an IPv4 address")],
        ),
        ({"n": 1, "list": ["w\n"]}, [("list[0]", "not an IPv4 address")]),  # "$" is the very end
        (
            {"n": 1, "map": {"a": 1, "B": 2}},
            [("map", "must have at most 1 key"), ("map.B", "invalid key (does not match ^[a-z]+$)")],
        ),
        ({"n": 1, "t": 5}, [("t", "expected a string or null, got an integer")]),
        ({"s": 5, "n": "x"}, [("s", "expected a string, got an integer"), ("n", "expected an integer, got a string")]),
    ],
)
def test_the_validator_finds_every_problem_in_document_order(document: Any, expected: list) -> None:
    found = jschema.validate(document, SMALL)
    assert [(p.key, p.message) for p in found] == expected
    if is_json(document) and "w\n" not in document.get("list", []):  # jsonschema's "$" is Python's
        assert (not found) == Draft202012Validator(SMALL).is_valid(document)


def test_toml_documents_say_table_and_refuse_whole_floats_as_integers() -> None:
    found = jschema.validate({"n": 1.0, "map": 5}, SMALL, names=jschema.TOML_NAMES, integral_floats=False)
    assert [str(p) for p in found] == ["n: expected an integer, got a float", "map: expected a table, got an integer"]


def test_key_paths_and_positions() -> None:
    assert jschema.key_path(("interface", 2, "counters", "rx_packets")) == "interface[2].counters.rx_packets"
    assert jschema.key_path(("hosts", "foo")) == "hosts.foo"
    assert jschema.key_path(("hosts", "a.b", 'q"')) == 'hosts."a.b"."q\\""'
    document = {"b": [0, {"y": 1, "x": 2}], "a": 1}
    paths = [("a",), ("b", 1, "x"), ("b", 1, "zz"), ("b", 0), ("b", 1, "y")]
    assert sorted(paths, key=lambda p: jschema.position(document, p)) == [
        ("b", 0),
        ("b", 1, "y"),
        ("b", 1, "x"),
        ("b", 1, "zz"),
        ("a",),
    ]


@pytest.mark.parametrize(
    "schema, words",
    [
        ({"type": "object", "oneOf": []}, "unsupported keyword 'oneOf'"),
        ({"type": "float"}, "unknown type 'float'"),
        ({"maximum": "3"}, "wrong type"),
        ({"$ref": "https://example.com/s.json"}, "only local references"),
        ({"$ref": "#/$defs/nothing"}, "refers to nothing"),
        ({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}, "refers to itself"),
        ({"pattern": "("}, "pattern"),
        ({"properties": {"a": 5}}, "a schema must be an object or a boolean"),
    ],
)
def test_a_schema_it_cannot_honour_is_refused(schema: dict, words: str) -> None:
    with pytest.raises(jschema.SchemaError, match=re.escape(words)):
        jschema.Validator(schema)
