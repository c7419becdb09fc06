"""Built-in output formatters: results in, text out."""

from __future__ import annotations

from evl_net.engine.request import Request, Result

# The current C tool's layout, byte for byte: every label right-aligned on the colon
# (an older release, which the manual shows, indented "csum errors" by six).
VERBOSE = """\
oob capability: {oob}
    rx packets: {rx_packets}
      rx bytes: {rx_bytes}
    tx packets: {tx_packets}
      tx bytes: {tx_bytes}
      skb size: {skb_size}
      skb free: {skb_free} / {skb_total}
   csum errors: {csum_errors}
      rx nomem: {rx_nomem}
      tx nomem: {tx_nomem}
"""

TERSE_FIELDS = {
    "R": ("rx_packets",), "r": ("rx_bytes",), "T": ("tx_packets",), "t": ("tx_bytes",),
    "o": ("oob_capable",), "s": ("skb_size",), "f": ("skb_free",), "a": ("skb_total",),
    "c": ("csum_errors",), "x": ("rx_nomem", "tx_nomem"),
}


def render_text(result: Result, request: Request) -> str | None:
    if result.action == "query":
        return render_verbose(result, request) if not result.data.get("modifiers") else render_terse(result, request)
    if result.action == "filter" and result.data.get("object") is None:
        return f"eBPF module removed from {result.ifname}\n"
    if result.action == "set-vlans":
        return "VLAN filter cleared\n" if result.data.get("cleared") else ""
    if result.action == "show-vlans":
        text = result.data.get("vlans", "")
        return text + "\n" if text else ""  # an empty filter prints nothing, as the C tool does
    return ""


def render_verbose(result: Result, request: Request) -> str | None:
    if result.action != "query" or "interfaces" in result.data:
        return None
    data = result.data
    return VERBOSE.format(oob="yes" if data["oob_capable"] else "no", **data)


def terse_values(data: dict, mods: str) -> list[str]:
    values = []
    for letter in mods:
        for field in TERSE_FIELDS[letter]:
            value = data[field]
            values.append(("yes" if value else "no") if isinstance(value, bool) else str(value))
    return values


def render_terse(result: Result, request: Request) -> str | None:
    if result.action != "query" or "interfaces" in result.data:
        return None
    return " ".join(terse_values(result.data, result.data.get("modifiers") or "RrTtosfacx")) + "\n"


TABLE_COLUMNS = (
    ("ifname", "interface"), ("oob_port", "port"), ("oob_capable", "oob"), ("up", "up"),
    ("rx_packets", "rx packets"), ("rx_bytes", "rx bytes"), ("tx_packets", "tx packets"),
    ("tx_bytes", "tx bytes"), ("skb_size", "skb size"), ("skb_free", "skb free"),
    ("skb_total", "skb total"), ("csum_errors", "csum errors"), ("rx_nomem", "rx nomem"),
    ("tx_nomem", "tx nomem"),
)
LETTER_COLUMNS = {"o": ["oob_capable"], **{k: list(v) for k, v in TERSE_FIELDS.items() if k != "o"}}


def render_table(result: Result, request: Request) -> str | None:
    if result.action != "query" or "interfaces" not in result.data:
        return None
    from tabulate import tabulate

    mods = result.data.get("modifiers")
    columns = list(TABLE_COLUMNS)
    if mods:
        wanted = ["ifname", "oob_port"] + [f for letter in mods for f in LETTER_COLUMNS[letter]]
        columns = [c for c in TABLE_COLUMNS if c[0] in wanted]
    rows = []
    for row in result.data["interfaces"]:
        cells = []
        for key, _title in columns:
            value = row.get(key, "-")  # an interface whose stats could not be read: its "error"
            cells.append(("yes" if value else "no") if isinstance(value, bool) else str(value))
        if "error" in row:
            cells.append(row["error"])
        rows.append(cells)
    return tabulate(rows, headers=[t for _k, t in columns], tablefmt="simple", disable_numparse=True) + "\n"


def render_json(result: Result, request: Request) -> str | None:
    import json

    return json.dumps(result.as_json(), separators=(",", ":")) + "\n"
