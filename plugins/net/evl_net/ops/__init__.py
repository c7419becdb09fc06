"""The built-in operations of ``evl net``: the C tool's commands, as rows of the operations table.

Registering them imports nothing: each row names its ``check`` and ``run``
as ``"module:attr"`` strings, resolved when the operation is used.
"""

from __future__ import annotations

from evl_core.getopt import NO_ARGUMENT, OPTIONAL_ARGUMENT, REQUIRED_ARGUMENT
from evl_net.registrations import Operation

PORT = "evl_net.ops.port"
FILTER = "evl_net.ops.filter"
VLANS = "evl_net.ops.vlans"
SOLICIT = "evl_net.ops.solicit"
QUERY = "evl_net.ops.query"


def builtin() -> list[Operation]:
    return [
        Operation(
            "disable",
            10,
            "disable-port",
            "d",
            NO_ARGUMENT,
            f"{PORT}:disable",
            "disable the out-of-band port of the interface given with -i",
            needs_interface=True,
            requests=("disable_port",),
        ),
        Operation(
            "enable",
            20,
            "enable-port",
            "e",
            NO_ARGUMENT,
            f"{PORT}:enable",
            "enable an out-of-band port on the interface given with -i (see -p, -b)",
            needs_interface=True,
            requests=("page_size", "enable_port"),
            precheck=f"{PORT}:check_enable",
        ),
        Operation(
            "filter",
            30,
            "filter",
            "F",
            OPTIONAL_ARGUMENT,
            f"{FILTER}:run",
            "install the first program of an eBPF object as RX filter of the port given with -i, "
            "or remove the filter when no object is given; the path must be glued: -Fnetrx.o",
            metavar="OBJ",
            needs_interface=True,
            requests=("install_rx_filter", "remove_rx_filter"),
        ),
        Operation(
            "set-vlans",
            40,
            "set-vlan-ids",
            "N",
            OPTIONAL_ARGUMENT,
            f"{VLANS}:set_vlans",
            "set the global RX VLAN filter to a list such as 41,42,55-57 (glued: -N42), "
            "or clear it when no list is given",
            metavar="LIST",
            requests=("set_vlans",),
            check=f"{VLANS}:check_set",
        ),
        Operation(
            "show-vlans",
            50,
            "print-vlan-ids",
            "n",
            NO_ARGUMENT,
            f"{VLANS}:show_vlans",
            "print the global RX VLAN filter",
            requests=("get_vlans",),
        ),
        Operation(
            "solicit",
            60,
            "solicit",
            "s",
            REQUIRED_ARGUMENT,
            f"{SOLICIT}:run",
            "solicit HOST (IPv4 address, host name or 'broadcast') into the out-of-band ARP "
            "front cache, via the interface given with -i if any",
            metavar="HOST",
            requests=("solicit",),
            check=f"{SOLICIT}:check",
        ),
        Operation(
            "solicit",
            60,
            "solicit-permanent",
            "S",
            REQUIRED_ARGUMENT,
            f"{SOLICIT}:run",
            "like -s, marking the ARP entry as permanent",
            metavar="HOST",
            requests=("solicit",),
            check=f"{SOLICIT}:check",
        ),
        Operation(
            "query",
            70,
            "query-port",
            "Q",
            OPTIONAL_ARGUMENT,
            f"{QUERY}:run",
            "print the status and counters of the port given with -i, all of them (verbose) or "
            "the values the glued modifiers RrTtosfacx select (terse): -QoRTf",
            metavar="MODS",
            needs_interface=True,
            requests=("get_stat", "interfaces"),
            check=f"{QUERY}:check",
        ),
    ]
