"""``-Q --all-interfaces`` at scale, the table writer beside tabulate, and the records' one JSON form.

* A 4000-interface board, queried by real processes: the JSON says what the
  board file says (names in order, up, ports, their counters, oob capability),
  and the table is what tabulate writes for the JSON's values.
* :func:`evl_net.ops.table.simple` against tabulate itself, on generated tables:
  plain ones (which it writes) and every other kind (which it hands to tabulate).
* The records of ``-Q`` (``@record`` classes) and a third party's real dataclass
  through :func:`to_json` and :func:`from_json`; what importing them costs.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tabulate import tabulate

from evl_core.record import fields, is_record
from evl_net.engine.request import OpResult
from evl_net.model import DevStat, ShapeError, from_json, inline, optional, to_json
from evl_net.ops import table
from evl_net.ops.query import PortStatus
from evl_net.ops.query_all import TABLE_COLUMNS, AllInterfaces, InterfaceStat

COUNTERS = ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "csum_errors", "rx_nomem", "tx_nomem")


def board_text(vlans: int) -> str:
    """lo, two oob-capable NICs carrying ``vlans`` VLAN devices between them, and a NIC that is not capable.

    Some devices are down; some of those up boot as ports, with counters of their own."""
    out = ['[[interface]]\nname = "lo"\nloopback = true\n']
    out += [f'[[interface]]\nname = "{nic}"\ndriver = "fec"\n' for nic in ("eth0", "eth1")]
    out.append('[[interface]]\nname = "eth2"\noob_capable = false\nport = false\n')
    for n in range(vlans):
        parent, vid = ("eth0", 2 + n // 2) if n % 2 == 0 else ("eth1", 3000 - n // 2)
        text = f'[[interface]]\nname = "{parent}.{vid}"\nparent = "{parent}"\nvlan_id = {vid}\n'
        if n % 11 == 5:
            text += "up = false\n"
        elif n % 4 == 1:
            values = ", ".join(f"{key} = {n * (i + 3) + i}" for i, key in enumerate(COUNTERS))
            text += f"port = true\ncounters = {{ {values} }}\n"
        out.append(text)
    return "\n".join(out)


def cells(values: dict[str, Any], keys: list[str]) -> list[str]:
    return [("yes" if values[k] else "no") if isinstance(values[k], bool) else str(values[k]) for k in keys]


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """The 4000-interface board's file and its interfaces as the file says them, with a query runner."""
    where = tmp_path_factory.mktemp("big")
    path = where / "board.toml"
    path.write_text(board_text(4000))
    env = {
        "PATH": "/usr/bin:/bin",
        "EVL_NET_TRANSPORT": "sim",
        "EVL_SIM_STATE": str(where / "state.json"),
        "XDG_STATE_HOME": str(where / "xdg"),
        "XDG_CACHE_HOME": str(where / "cache"),
    }
    evl = Path(sys.executable).parent / "evl"

    def query(*argv: str) -> str:
        proc = subprocess.run(
            [str(evl), "net", f"--board={path}", *argv], env=env, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        return proc.stdout

    return tomllib.loads(path.read_text())["interface"], query


def test_the_json_of_4000_interfaces_is_what_the_board_file_says(big):
    interfaces, query = big
    got = json.loads(query("-Q", "--all-interfaces", "--json"))
    assert got["action"] == "query" and got["modifiers"] == ""
    rows = got["interfaces"]
    assert [r["ifname"] for r in rows] == [i["name"] for i in interfaces]
    by_name = {i["name"]: i for i in interfaces}
    for row in rows:
        spec = by_name[row["ifname"]]
        parent = by_name.get(spec.get("parent", ""), spec)
        assert row["up"] is spec.get("up", True)
        assert row["oob_port"] is spec.get("port", False)
        assert row["oob_capable"] is parent.get("oob_capable", True)
        for key in COUNTERS:
            assert row[key] == spec.get("counters", {}).get(key, 0), (row["ifname"], key)
        assert set(row) == {"ifname", "up", *(f.name for f in fields(DevStat))}
    assert sum(r["oob_port"] for r in rows) > 800


def test_the_table_of_4000_interfaces_is_tabulates_of_the_json(big):
    _interfaces, query = big
    rows = json.loads(query("-Q", "--all-interfaces", "--json"))["interfaces"]
    keys, titles = [k for k, _t in TABLE_COLUMNS], [t for _k, t in TABLE_COLUMNS]
    expected = tabulate([cells(r, keys) for r in rows], titles, tablefmt="simple", disable_numparse=True) + "\n"
    assert query("-Q", "--all-interfaces") == expected
    # the columns the modifiers select, and the names
    wanted = [(k, t) for k, t in TABLE_COLUMNS if k in ("ifname", "oob_port", "rx_packets", "tx_packets", "skb_free")]
    expected = tabulate(
        [cells(r, [k for k, _t in wanted]) for r in rows],
        [t for _k, t in wanted],
        tablefmt="simple",
        disable_numparse=True,
    )
    assert query("-QRTf", "--all-interfaces") == expected + "\n"
    assert query("-Q", "--all-interfaces", "--format=names") == "".join(r["ifname"] + "\n" for r in rows)


# -- the table writer against tabulate -------------------------------------------------------------

#: Cells tabulate would write as they are: printable ASCII, no white space at either end.
plain_cell = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12).filter(
    lambda s: s == s.strip()
)
#: Any cell: wide and combining characters, ANSI codes, line breaks, tabs, padding, tabulate's separator mark.
any_cell = st.one_of(
    plain_cell,
    st.sampled_from(["", " x", "x ", "a\nb", "\x1b[31mred\x1b[0m", "\t", "\x01", "True", "ｗｉｄｅ", "é", "\r", "-"]),
    st.text(max_size=6),
)


def tabulated(rows: list[list[str]], headers: list[str]) -> str:
    return str(tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_plain_tables_are_written_here_as_tabulate_writes_them(data):
    n = data.draw(st.integers(1, 6))
    headers = data.draw(st.lists(plain_cell, min_size=n, max_size=n))
    rows = data.draw(st.lists(st.lists(plain_cell, min_size=n, max_size=n), min_size=1, max_size=8))
    assert table.plain_widths([list(c) for c in zip(*rows, strict=True)], headers) is not None  # written here
    assert table.simple(rows, headers) == tabulated(rows, headers)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(plain_cell, min_size=1, max_size=5),
    st.lists(st.lists(plain_cell, min_size=1, max_size=5), min_size=1, max_size=8),
)
def test_plain_rows_of_any_length(headers, rows):
    assert table.simple(rows, headers) == tabulated(rows, headers)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(any_cell, min_size=1, max_size=4),
    st.lists(st.lists(any_cell, min_size=1, max_size=5), max_size=6),
)
def test_any_table_is_tabulates(headers, rows):
    assert table.simple(rows, headers) == tabulated(rows, headers)


@pytest.mark.parametrize(
    ("headers", "rows"),
    [
        (["a", "b"], [["True", "x"], ["False", "y"]]),  # a column tabulate reads as booleans
        (["a", "b", "c"], [["", "", ""], ["x", "", ""]]),  # empty cells, a column of nothing
        (["", " h", "h "], [["1", "2", "3"]]),  # headers are not stripped
        (["interface"], [["eth0"]] * 3),
        (["a"], [["1.5"], ["-2"], ["1e3"]]),  # numbers stay text
    ],
)
def test_plain_tables_tabulate_reads_as_other_types(headers, rows):
    assert table.plain_widths([list(c) for c in zip(*rows, strict=True)], headers) is not None
    assert table.simple(rows, headers) == tabulated(rows, headers)


def test_a_plain_table_does_not_import_tabulate():
    code = (
        "import sys\n"
        "from evl_net.ops import table\n"
        "text = table.simple([['eth0', 'yes', '12'], ['eth0.42', 'no', '3']], ['interface', 'port', 'rx'])\n"
        "assert text.splitlines()[1] == '-' * 11 + '  ' + '-' * 6 + '  ' + '-' * 4, text\n"
        "print(sorted(m for m in ('tabulate', 'importlib.metadata', 'dataclasses') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout == "[]\n"


def interface_rows() -> list[InterfaceStat]:
    return [
        InterfaceStat("lo", True, DevStat(oob_capable=True)),
        InterfaceStat("eth0", True, DevStat(rx_packets=12, skb_size=4096, oob_capable=True, oob_port=True)),
        InterfaceStat("eth0.42", False, DevStat(tx_bytes=7)),
    ]


@pytest.mark.parametrize("error_at", [None, 0, 1, 2])
@pytest.mark.parametrize("modifiers", ["", "RTf", "o", "x"])
def test_the_table_is_tabulates_with_or_without_an_unreadable_interface(modifiers, error_at):
    rows = interface_rows()
    if error_at is not None:  # tabulate's own handling of the row with one more cell, as before
        rows[error_at] = InterfaceStat(rows[error_at].ifname, True, error="No such device")
    result = AllInterfaces(modifiers, rows)
    columns = result.columns()
    expected = []
    for row in rows:
        values = {"ifname": row.ifname, "up": row.up}
        values |= {k: getattr(row.stat, k) if row.stat else "-" for k, _t in columns if k not in values}
        expected.append(cells(values, [k for k, _t in columns]) + ([row.error] if row.error else []))
    assert result.table() == tabulated(expected, [t for _k, t in columns]) + "\n"


# -- the records and their JSON form ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ThirdPartyResult(OpResult):
    """A plugin's result: a real dataclass, with the model's inline() and optional() fields."""

    action: ClassVar[str] = "third-party"
    ifname: str
    count: int
    stat: DevStat | None = inline()  # noqa: RUF009 -- the model's field spec; its default, None, is not shared
    note: str | None = optional()
    tags: list[str] = dataclasses.field(default_factory=list)


def test_a_third_partys_dataclass_takes_inline_and_optional():
    specs = {f.name: f for f in dataclasses.fields(ThirdPartyResult)}
    assert specs["stat"].default is None and specs["stat"].metadata["json"] == "inline"
    assert specs["note"].default is None and specs["note"].metadata["json"] == "optional"
    assert ThirdPartyResult.note is None  # the dataclass put the default in the field's place
    assert is_record(ThirdPartyResult) and [f.name for f in fields(ThirdPartyResult)] == list(specs)


@pytest.mark.parametrize(
    "result",
    [
        ThirdPartyResult("eth0", 3),
        ThirdPartyResult("eth0", 3, DevStat(rx_packets=5, oob_port=True), "hello", ["a", "b"]),
        PortStatus("eth0.42", "RTf", DevStat(rx_packets=1, tx_packets=2, skb_free=3, oob_capable=True)),
        AllInterfaces("", [*interface_rows(), InterfaceStat("eth9", False, error="No such device")]),
        AllInterfaces("x", []),
    ],
    ids=lambda r: type(r).__name__,
)
def test_records_round_trip_through_their_json(result):
    value = result.to_json()
    assert value["action"] == result.action
    assert json.loads(json.dumps(value)) == value
    assert from_json(type(result), value) == result


def test_the_json_form_of_the_records_is_unchanged():
    stat = DevStat(rx_packets=1, rx_bytes=2, skb_total=9, oob_capable=True)
    flat = {f.name: getattr(stat, f.name) for f in fields(DevStat)}
    assert list(flat) == [*DevStat.COUNTERS, "oob_capable", "oob_port"]
    assert to_json(stat) == flat
    assert PortStatus("eth0", "", stat).to_json() == {"action": "query", "ifname": "eth0", "modifiers": "", **flat}
    rows = [InterfaceStat("eth0", True, stat), InterfaceStat("eth1", False, error="Bad")]
    assert to_json(AllInterfaces("", rows)) == {
        "modifiers": "",
        "interfaces": [
            {"ifname": "eth0", "up": True, **flat},
            {"ifname": "eth1", "up": False, "error": "Bad"},  # no counters; the error kept only when there is one
        ],
    }
    assert ThirdPartyResult("eth0", 3).to_json() == {"action": "third-party", "ifname": "eth0", "count": 3, "tags": []}
    assert to_json((stat, [1, "a", None])) == [flat, [1, "a", None]]
    assert to_json(DevStat) is DevStat  # a class is not a record's value


def test_from_json_stays_strict():
    good = PortStatus("eth0", "", DevStat()).to_json()
    assert from_json(PortStatus, good) == PortStatus("eth0", "", DevStat())
    with pytest.raises(ShapeError, match="lacks the fields of 'stat'"):
        from_json(PortStatus, {"ifname": "eth0", "modifiers": ""})
    with pytest.raises(ShapeError, match=r"result\.interfaces\[0\]\.up is not a boolean"):
        from_json(AllInterfaces, {"modifiers": "", "interfaces": [{"ifname": "a", "up": 1}]})
    with pytest.raises(ShapeError, match="lacks 'count'"):
        from_json(ThirdPartyResult, {"ifname": "eth0"})
    with pytest.raises(ShapeError, match=r"result\.tags\[1\] is not a string"):
        from_json(ThirdPartyResult, {"ifname": "eth0", "count": 1, "tags": ["a", 2]})


def test_the_query_records_cost_no_dataclasses_nor_typing_at_import():
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"  # the interpreter's start-up (site) may have some already
        "import evl_net.model, evl_net.ops.query, evl_net.ops.query_all, evl_net.ops.table\n"
        "added = set(sys.modules) - before\n"
        "print(sorted(m for m in ('dataclasses', 'typing', 'types', 'tabulate', 'importlib.metadata') if m in added))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout == "[]\n"
