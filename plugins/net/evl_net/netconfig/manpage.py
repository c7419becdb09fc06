"""evl-net-config(5): the file format, written from the JSON Schema's descriptions (one source for both)."""

from __future__ import annotations

import json
from typing import Any

EXAMPLE = """\
# /etc/evl/net.toml: the manual's setup
vlan_filter = "42"

[requires]
abi = "45"
oob_capable = ["eth0"]

[interface."eth0.42"]
parent = "eth0"
vlan_id = 42
addresses = ["10.10.10.11/24"]

[port."eth0.42"]
pool = 4096
buffer = 2048
filter = { object = "rx.o" }  # beside this file; sha256 = "<hex>" pins it

[[peer]]
host = "10.10.10.10"
via = "eth0.42"
permanent = true
"""


def _esc(text: str) -> str:
    return text.replace("\\", "\\e").replace("-", "\\-").replace("\n.", "\n\\&.")


def _type(spec: dict[str, Any]) -> str:
    kind = spec.get("type", "table")
    kinds = kind if isinstance(kind, list) else [kind]
    words = {"object": "table", "array": "array", "string": "string", "integer": "integer", "boolean": "boolean"}
    out = " or ".join(str(words.get(k, k)) for k in kinds)
    if "minimum" in spec and "maximum" in spec:
        out += f", {spec['minimum']}..{spec['maximum']}"
    return out


def _keys(lines: list[str], props: dict[str, Any], prefix: str, defs: dict[str, Any]) -> None:
    for key, spec in props.items():
        if "$ref" in spec:
            spec = defs[spec["$ref"].rsplit("/", 1)[1]]
        lines.append(".TP")
        lines.append(f"\\fB{_esc(prefix + key)}\\fR ({_esc(_type(spec))})")
        lines.append(_esc(spec.get("description", "")))
        if spec.get("type") == "object" and "properties" in spec:
            _keys(lines, spec["properties"], f"{prefix}{key}.", defs)


def page(schema_path: str) -> str:
    """The whole page, roff."""
    with open(schema_path, encoding="utf-8") as f:
        schema = json.load(f)
    defs = schema["$defs"]
    lines = [
        '.TH EVL\\-NET\\-CONFIG "5" "2026\\-12\\-02" "evl\\-tools 0.1.0" "File formats"',
        ".SH NAME",
        "evl\\-net\\-config \\- a board's out\\-of\\-band network setup, for evl net\\-config",
        ".SH DESCRIPTION",
        _esc(schema["description"]),
        ".PP",
        "The file is TOML. Several files layer, in the order given: tables of different names add up,",
        "peers append, and a key two files set to two values is an error naming both places.",
        "Its JSON Schema ships with the package (\\fIevl_net/netconfig/net\\-config.schema.json\\fR)",
        "for editors to check a file as it is typed.",
        ".SH KEYS",
    ]
    for key, spec in schema["properties"].items():
        lines.append(".TP")
        lines.append(f"\\fB{_esc(key)}\\fR ({_esc(_type(spec))})")
        lines.append(_esc(spec.get("description", "")))
        extra = spec.get("additionalProperties")
        item = extra if isinstance(extra, dict) else spec.get("items") if spec.get("type") == "array" else None
        if isinstance(item, dict) and "$ref" in item:
            sub = defs[item["$ref"].rsplit("/", 1)[1]]
            lines.append(".RS")
            _keys(lines, sub["properties"], "", defs)
            lines.append(".RE")
        elif "properties" in spec:
            lines.append(".RS")
            _keys(lines, spec["properties"], "", defs)
            lines.append(".RE")
    lines += [".SH EXAMPLE", ".nf", _esc(EXAMPLE).rstrip("\n"), ".fi"]
    lines += [".SH SEE ALSO", "\\fBevl\\-net\\-config\\fR(8), \\fBevl\\-net\\fR(8)"]
    return "\n".join(lines) + "\n"


#: Sections of evl-net-config(8) beyond its options.
SECTIONS = [
    (
        "COMMANDS",
        r"""
\fBvalidate\fR reads the files (layered in the order given) and reports every problem at once,
one line each, as \fIFILE\fB:\fILINE\fB: \fIkey.path\fB: \fIwhat is wrong\fR, then exits 1;
with none it prints \fIFILE\fB: valid\fR for each file and exits 0.
It checks the schema, the kernel's rules for interface names and VLAN lists, addresses, and that
a pinned eBPF object exists and has its sha256; the board is not touched.
The file format is in \fBevl\-net\-config\fR(5).
""",
    ),
    (
        "SEE ALSO",
        r"""
\fBevl\-net\-config\fR(5), \fBevl\-net\fR(8), \fBevl\-sim\fR(8)
""",
    ),
]


def sections() -> list[tuple[str, str]]:
    return SECTIONS
