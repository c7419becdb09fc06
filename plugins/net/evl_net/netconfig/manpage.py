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
\fBvalidate\fR reads the files (layered in the order given; a directory stands for its
\fI*.toml\fR files in name order) and reports every problem at once,
one line each, as \fIFILE\fB:\fILINE\fB: \fIkey.path\fB: \fIwhat is wrong\fR, then exits 1;
with none it prints \fIFILE\fB: valid\fR for each file and exits 0.
It checks the schema, the kernel's rules for interface names and VLAN lists, addresses, and that
a pinned eBPF object exists and has its sha256; the board is not touched.
The file format is in \fBevl\-net\-config\fR(5).
.PP
\fBplan\fR reads the board's live state and prints the steps that would bring it to the files, in
dependency order: devices (VLAN devices created, MTU, link state), addresses, ports, eBPF filters,
the VLAN filter, peers.
Each line starts with \fB+\fR (added), \fB~\fR (changed) or \fB\-\fR (removed) and says what a
change costs, as in \fB~ port eth0.42: pool 2048 \(-> 4096 (port goes down and up: in\-flight oob
traffic on eth0.42 is dropped)\fR.
What the board cannot take (a port on a device it does not have, two sizes for one pool...) is
reported as \fIkey.path\fB: \fIwhat is wrong\fR, exit 1.
.PP
\fBapply\fR runs the plan, holding the board's lock (the one \fBevl net\-agent\fR sessions take)
for the whole run (on a remote board, the session holds the agent's lock until it ends);
each step's line is printed with \fBdone\fR as it ends.
When a step fails, apply stops, reads the board again and restores it as it first read it
(the VLAN devices it created are deleted; pools, filters and ARP entries the run took along come
back), and reports each step as \fBdone\fR, \fBfailed\fR, \fBundone\fR, \fBnot undone\fR (the
rollback could not restore everything, and says what) or \fBnot run\fR.
A second apply finds nothing to do.
.PP
\fBexport\fR prints the board's setup as a file that \fBapply\fR reproduces on a fresh board:
the VLAN filter, every VLAN device and every port's device with its real device, the ports with
their pools and filters (pinned by sha256), the ARP front cache's entries as peers.
""",
    ),
    (
        "BOARDS",
        r"""
The board is reached as \fBevl net\fR reaches it: the simulator (\fB\-\-board\fR, EVL_SIM_BOARD; a
\fBhost\fR board changes the live host's VLAN devices, addresses, MTU and link state through
rtnetlink), the real kernel (\fB\-\-transport=ioctl\fR), or boards over SSH: \fB\-\-remote\fR for
one (the plan is computed from its state read through its agent, and run through it),
\fB\-\-hosts\fR for several, \fB\-\-jobs\fR at a time, with a table of BOARD, STATUS (ok, changes,
changed, failed, or how a board did not answer), RESULT and MS.
.PP
The kernel cannot be asked which eBPF filter a device runs, nor what its ARP front cache holds;
on the real kernel the ioctl transport keeps a ledger of what it installed and solicited since boot
(under \fI/run/evl\fR). A filter it cannot identify is shown as \fBunknown\fR and replaced.
""",
    ),
    (
        "EXIT STATUS",
        r"""
\fBplan\fR and \fBapply \-\-check\fR: 0 nothing to do, 2 changes pending, 1 an error.
\fBapply\fR: 0 the board matches the files (whether or not it changed anything), 1 an error (a
failed step included).
Several boards: 0 when every board succeeded (2 when changes are pending on one), 4 when a board
failed, 8 when a board did not answer, 12 when both happened.
Usage errors exit 2.
""",
    ),
    (
        "FILES",
        r"""
.TP
\fI/etc/evl/net.toml\fR, \fI/etc/evl/net.d/*.toml\fR
Where a board's setup usually lives.
.TP
\fIshare/evl\-tools/systemd/evl\-net\-config.service\fR
A oneshot unit applying \fI/etc/evl/net.toml\fR after \fBnetwork\-online.target\fR; \fBsystemctl
reload\fR applies it again, and a failed apply fails the unit, with the step in \fBsystemctl
status\fR. Install it with \fBinstall \-m 644 .../evl\-net\-config.service /etc/systemd/system/\fR and
\fBsystemctl enable \-\-now evl\-net\-config\fR.
""",
    ),
    (
        "SEE ALSO",
        r"""
\fBevl\-net\-config\fR(5), \fBevl\-net\fR(8), \fBevl\-sim\fR(8), \fBevl\-net\-agent\fR(8)
""",
    ),
]


def sections() -> list[tuple[str, str]]:
    return SECTIONS
