"""The ``evl net`` command line: getopt semantics, check order, errors, output formats."""

from __future__ import annotations

import json

import pytest

from test_manual import USAGE


def usage_error(run, message: str) -> None:
    assert run.code == 1
    assert run.out == ""
    assert run.err == f"evl-net: {message}\n" + USAGE


# -- getopt semantics ------------------------------------------------------

def test_no_arguments_prints_usage_and_succeeds(evl):
    run = evl("net")
    assert (run.code, run.out, run.err) == (0, "", USAGE)


def test_describe_acts_immediately(evl):
    run = evl("net", "-@", "-z")
    assert (run.code, run.out, run.err) == (0, "manage the EVL out-of-band networking stack\n", "")


def test_option_error_before_describe_wins(evl):
    usage_error(evl("net", "-z", "-@"), "invalid option -- 'z'")


def test_optional_argument_must_be_glued(evl):
    usage_error(evl("net", "-Q", "oRTf", "-i", "eth0"),
                "unexpected argument 'oRTf' (an optional argument must be glued to its option, as in -Q<mods>)")


def test_long_optional_argument_with_equals(evl):
    assert evl("net", "-ei", "eth0.42").code == 0
    run = evl("net", "--query-port=oR", "--interface", "eth0.42")
    assert (run.code, run.out) == (0, "1 0\n")


def test_unique_prefixes_of_long_options(evl):
    assert evl("net", "--enable", "--inter=eth0.42").code == 0
    assert evl("net", "--quer=a", "--int", "eth0.42").out == "2048\n"


def test_ambiguous_prefix(evl):
    usage_error(evl("net", "--sol", "x"),
                "option '--sol' is ambiguous; possibilities: '--solicit' '--solicit-permanent'")


def test_clustered_flags_and_options_after_operands_order(evl):
    # -Sg host: 'g' is the argument of -S, as getopt parses it.
    run = evl("net", "-Sg", "-i", "eth0.42")
    assert (run.code, run.err) == (1, "evl-net: invalid host/IP address 'g'\n")
    # Options after operands are still options (getopt permutes).
    usage_error(evl("net", "stray", "-e"), "unexpected argument 'stray' (an optional argument must be glued to its option, as in -Q<mods>)")


def test_required_argument_missing(evl):
    usage_error(evl("net", "-e", "-i"), "option requires an argument -- 'i'")


def test_print_vlan_ids_takes_no_argument(evl):
    assert evl("net", "-N42").code == 0
    run = evl("net", "--print-vlan-ids")
    assert (run.code, run.out) == (0, "42\n")
    usage_error(evl("net", "--print-vlan-ids=x"), "option '--print-vlan-ids' doesn't allow an argument")


def test_help_wins_and_goes_to_stderr(evl):
    run = evl("net", "-h", "-e")
    assert (run.code, run.out, run.err) == (0, "", USAGE)


# -- the C tool's order of checks -----------------------------------------

def test_stray_operand_before_missing_command(evl):
    usage_error(evl("net", "stray"), "unexpected argument 'stray' (an optional argument must be glued to its option, as in -Q<mods>)")


def test_no_command_given(evl):
    usage_error(evl("net", "-i", "eth0"), "no command given")
    usage_error(evl("net", "-g"), "no command given")


@pytest.mark.parametrize("option", ["-e", "-d", "-Q", "-F", "-Qa", "-Fx.o"])
def test_interface_required(evl, option):
    usage_error(evl("net", option), "a network interface must be specified")


@pytest.mark.parametrize("argv", [["-N42"], ["-n"], ["-S", "10.10.10.10", "-g"]])
def test_interface_not_required(evl, argv):
    assert "interface must be specified" not in evl("net", *argv).err


# -- strict values ------------------------------------------------------------

@pytest.mark.parametrize("value, message", [
    ("-1", "invalid pool size '-1': expected a decimal integer in 0..32768"),
    ("0x10", "invalid pool size '0x10': expected a decimal integer in 0..32768"),
    ("12abc", "invalid pool size '12abc': expected a decimal integer in 0..32768"),
    ("", "invalid pool size '': expected a decimal integer in 0..32768"),
    ("32769", "invalid pool size '32769': the kernel accepts at most 32768"),
])
def test_bad_pool_size(evl, value, message):
    run = evl("net", "-ei", "eth0.42", "-p", value)
    assert (run.code, run.out, run.err) == (1, "", f"evl-net: {message}\n")
    assert evl("net", "-Qa", "-i", "eth0.42").out == "0\n"  # nothing was enabled


def test_bad_buffer_size_is_checked_against_the_board_before_anything_runs(evl):
    assert evl("net", "-ei", "eth0.42").code == 0
    run = evl("net", "-d", "-e", "-i", "eth0.42", "-b", "16385")
    assert (run.code, run.out) == (1, "")
    assert run.err == "evl-net: invalid buffer size '16385': the kernel accepts at most 16384 (4 x page size)\n"
    # The disable that came first in the plan did not run.
    assert evl("net", "-Qa", "-i", "eth0.42").out == "2048\n"


def test_pool_size_without_enable(evl):
    usage_error(evl("net", "-Q", "-i", "eth0", "-p", "10"), "-p and -b apply to -e (enable) only")


def test_invalid_query_modifier_is_rejected_before_anything(evl):
    run = evl("net", "-e", "-QoZ", "-i", "eth0.42")
    assert (run.code, run.out) == (1, "")
    assert run.err == "evl-net: invalid query modifier 'Z' (valid: RrTtosfacx)\n"
    assert evl("net", "-Qa", "-i", "eth0.42").out == "0\n"  # -e did not run


def test_broadcast_needs_an_interface(evl):
    usage_error(evl("net", "-s", "broadcast"), "soliciting 'broadcast' needs an interface: add -i <ifname>")


# -- runtime errors -----------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["-ei", "eth9"], "cannot enable out-of-band port on eth9: No such device"),
    (["-di", "eth9"], "cannot disable out-of-band port on eth9: No such device"),
    (["-Q", "-i", "eth9"], "cannot query out-of-band port on eth9: No such device"),
    (["-F", "-i", "eth9"], "cannot set BPF filter on eth9: No such device"),
    (["-N5000"], "invalid VLAN id. list '5000': Numerical result out of range"),
    (["-N1"], "invalid VLAN id. list '1': Invalid argument"),
    (["-N41 - 42"], "invalid VLAN id. list '41 - 42': Invalid argument"),
    (["-s", "no-such-host"], "invalid host/IP address 'no-such-host'"),
    (["-s", "10.10.10.10", "-i", "eth9"], "cannot bind UDP socket to device eth9: No such device"),
])
def test_runtime_errors(evl, argv, message):
    run = evl("net", *argv)
    assert (run.code, run.out, run.err) == (1, "", f"evl-net: {message}\n")


def test_vlan_error_keeps_the_previous_filter(evl):
    assert evl("net", "-N41,42").code == 0
    assert evl("net", "-N41,5000").code == 1
    assert evl("net", "-n").out == "41-42\n"


def test_commands_run_in_the_fixed_order_and_stop_at_the_first_failure(evl):
    # Given as query, set VLANs, enable: run as enable, set VLANs, query.
    run = evl("net", "-QoR", "-N7", "-e", "-n", "-i", "eth0.42")
    assert (run.code, run.out) == (0, "7\n1 0\n")
    run = evl("net", "-N3000", "-ei", "eth9", "-n")
    assert (run.code, run.out) == (1, "")
    assert run.err == "evl-net: cannot enable out-of-band port on eth9: No such device\n"
    assert evl("net", "-n").out == "7\n"  # -N ran after -e in the plan: never reached


def test_unknown_transport(evl):
    run = evl("net", "--transport=carrier-pigeon", "-n")
    assert run.code == 1
    assert run.err.startswith("evl-net: unknown transport 'carrier-pigeon' (available: auto, ")


def test_remote_transport_without_a_board_is_a_clear_error(evl):
    run = evl("net", "--transport=remote", "-n")
    assert (run.code, run.out, run.err) == (1, "", "evl-net: no board given: use --remote, --hosts or EVL_NET_REMOTE\n")


# -- output formats -----------------------------------------------------------

def test_json_lines_one_per_command(evl):
    run = evl("net", "--json", "-ei", "eth0.42", "-N41,42", "-n", "-QoR")
    lines = [json.loads(line) for line in run.out.splitlines()]
    assert [d["action"] for d in lines] == ["enable", "set-vlans", "show-vlans", "query"]
    assert lines[0] == {"action": "enable", "ifname": "eth0.42", "changed": True, "pool_size": 2048, "buffer_size": 4096}
    assert lines[1]["vlans"] == "41-42" and lines[1]["changed"] is True and lines[1]["cleared"] is False
    assert lines[2]["ids"] == [41, 42]
    assert lines[3]["oob_capable"] is True and lines[3]["oob_port"] is True and lines[3]["skb_total"] == 2048
    again = [json.loads(x) for x in evl("net", "--json", "-ei", "eth0.42").out.splitlines()]
    assert again[0]["changed"] is False  # enabling twice succeeds and changes nothing


def test_json_errors_leave_stdout_empty(evl):
    run = evl("net", "--json", "-Q", "-i", "eth9")
    assert (run.code, run.out) == (1, "")


def test_query_all_table(evl):
    evl("net", "-ei", "eth0.42")
    run = evl("net", "-Q", "--all")
    assert run.code == 0
    header, rule, *rows = run.out.splitlines()
    assert header.split()[:4] == ["interface", "port", "oob", "up"]
    table = {r.split()[0]: r.split() for r in rows}
    assert set(table) == {"lo", "eth0", "eth0.42", "eth1", "eth1.42", "eth2"}
    assert table["eth0.42"][1:4] == ["yes", "yes", "yes"]
    assert table["eth2"][1:3] == ["no", "no"]


def test_query_all_with_modifiers_selects_columns(evl):
    run = evl("net", "-Qof", "--all")
    assert run.out.splitlines()[0].split() == ["interface", "port", "oob", "skb", "free"]


def test_query_all_json(evl):
    run = evl("net", "--json", "-Q", "--all")
    (doc,) = [json.loads(x) for x in run.out.splitlines()]
    assert [i["ifname"] for i in doc["interfaces"]] == ["lo", "eth0", "eth0.42", "eth1", "eth1.42", "eth2"]


def test_all_with_interface_is_an_error(evl):
    usage_error(evl("net", "-Q", "--all", "-i", "eth0"), "--all queries every interface: drop -i")


def test_format_list_and_explicit_formatter(evl):
    run = evl("net", "--format=list")
    assert [line.split()[0] for line in run.out.splitlines()] == ["json", "table", "terse", "text", "verbose"]
    evl("net", "-ei", "eth0.42")
    assert evl("net", "--format=terse", "-Q", "-i", "eth0.42").out == "0 0 0 0 1 4096 2048 2048 0 0 0\n"
    run = evl("net", "--format=nope", "-n")
    assert (run.code, run.err) == (1, "evl-net: unknown formatter 'nope' (available: json, table, terse, text, verbose)\n")


def test_terse_x_prints_two_numbers(evl):
    evl("net", "-ei", "eth0.42")
    assert evl("net", "-Qx", "-i", "eth0.42").out == "0 0\n"


def test_non_oob_capable_driver(evl):
    assert evl("net", "-ei", "eth2").code == 0  # not an error: egress goes in-band
    assert evl("net", "-Qo", "-i", "eth2").out == "0\n"
    assert evl("net", "-Q", "-i", "eth2").out.startswith("oob capability: no\n")
