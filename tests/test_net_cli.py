"""The ``evl net`` command line: getopt semantics, check order, errors, output formats."""

from __future__ import annotations

import json

import pytest

from test_manual import USAGE

#: The C tool's long options, with their short letters ("" for none).
C_LONG = {
    "interface": "i",
    "filter": "F",
    "solicit": "s",
    "solicit-permanent": "S",
    "enable-port": "e",
    "disable-port": "d",
    "pool-size": "p",
    "buffer-size": "b",
    "query-port": "Q",
    "allow-gateway": "g",
    "set-vlan-ids": "N",
    "print-vlan-ids": "n",
    "help": "h",
}


def usage_error(run, message: str, bare: bool = False) -> None:
    assert run.code == 1
    assert run.out == ""
    assert run.err == ("" if bare else "evl-net: ") + f"{message}\n" + USAGE


def help_text(run) -> None:
    """A help request: the C usage byte for byte first, then this tool's long options."""
    assert (run.code, run.out) == (0, "")
    assert run.err.startswith(USAGE)
    extra = run.err[len(USAGE) :]
    assert extra.startswith("\nlong options of this implementation (see man evl-net):\n")
    for option in (
        "--json",
        "--all-interfaces",
        "--format=NAME",
        "--transport=NAME",
        "--board=FILE",
        "--remote=",
        "--hosts=FILE",
    ):
        assert f"\n{option}" in extra
    assert "--interface" not in extra  # C's own options are in the usage already


# -- getopt semantics ------------------------------------------------------


def test_no_arguments_prints_usage_and_succeeds(evl):
    help_text(evl("net"))


@pytest.mark.parametrize("argv", [["-h"], ["--help"], ["--h"], ["--he"], ["-h", "-e"], ["-h", "-p", "abc"]])
def test_help(evl, argv):
    help_text(evl("net", *argv))


def test_options_act_in_argv_order(evl):
    # -p is checked when it is seen: before a later -h can print the help.
    usage_error(evl("net", "-p", "abc", "-h"), "invalid pool size 'abc': expected a decimal integer in 0..32768")


def _c_option_for(prefix: str) -> str | None:
    matches = [name for name in C_LONG if name.startswith(prefix)]
    return matches[0] if len(matches) == 1 else None


C_PREFIXES = sorted({name[:n] for name in C_LONG for n in range(1, len(name) + 1)})


@pytest.mark.parametrize("prefix", C_PREFIXES)
def test_abbreviations_of_c_long_options_mean_what_they_mean_in_c(prefix):
    """Every prefix of every C long option resolves among the C options alone, whatever we added."""
    from evl_core.getopt import Getopt, GetoptError
    from evl_net.cli import options
    from evl_net.plugin import builtin_actions

    actions = builtin_actions()
    longs = options.longopts(actions)
    ours = Getopt([f"--{prefix}=x"], options.shortopts(actions), longs)
    expected = _c_option_for(prefix)
    exact = prefix in C_LONG
    try:
        key = next(iter(ours))[0]
    except GetoptError as exc:
        message = str(exc)
        if expected is None and not exact:
            assert "is ambiguous" in message
            # only C options are offered as possibilities
            offered = {p.strip("'-") for p in message.split("possibilities: ")[1].split()}
            assert offered == {name for name in C_LONG if name.startswith(prefix)}
        else:
            assert "doesn't allow an argument" in message  # a no-argument C option, matched
            name = prefix if exact else expected
            assert f"'--{name}'" in message
        return
    name = prefix if exact else expected
    assert name is not None, f"--{prefix} should be ambiguous among the C options"
    assert key == (C_LONG[name] or name)


@pytest.mark.parametrize(
    "prefix, key",
    [
        ("fo", "format"),
        ("tr", "transport"),
        ("bo", "board"),
        ("ho", "hosts"),
        ("js", None),
        ("all-", "all-interfaces"),
        ("all-interfaces", "all-interfaces"),
        ("accept", "accept-new-host-key"),
        ("jobs", "jobs"),
        ("json", "json"),
    ],
)
def test_new_long_options_match_only_where_no_c_option_does(prefix, key):
    from evl_core.getopt import Getopt, GetoptError
    from evl_net.cli import options
    from evl_net.plugin import builtin_actions

    actions = builtin_actions()
    parser = Getopt([f"--{prefix}"], options.shortopts(actions), options.longopts(actions))
    if key is None:
        with pytest.raises(GetoptError, match="ambiguous"):
            list(parser)
        return
    try:
        got = next(iter(parser))[0]
    except GetoptError as exc:  # an option that needs an argument was matched
        assert f"'--{key}' requires an argument" in str(exc)
        return
    assert got == key


def test_posixly_correct_stops_at_the_first_operand(evl, sim_env):
    env = {**sim_env, "POSIXLY_CORRECT": "1"}
    usage_error(evl("net", "foo", "-h", env=env), "unexpected argument 'foo'")
    help_text(evl("net", "foo", "-h"))  # without it, getopt permutes: -h is seen
    usage_error(evl("net", "-n", "foo", "-e", env=env), "unexpected argument 'foo'")


def test_describe_acts_immediately(evl):
    run = evl("net", "-@", "-z")
    assert (run.code, run.out, run.err) == (0, "manage the EVL out-of-band networking stack\n", "")


def test_option_error_before_describe_wins(evl):
    usage_error(evl("net", "-z", "-@"), "invalid option -- 'z'")


@pytest.mark.parametrize(
    "argv, glued",
    [
        (["-Q", "oRTf", "-i", "eth0"], "-QoRTf"),
        (["-eQ", "oRTf", "-i", "eth0"], "-eQoRTf"),
        (["--query-port", "oRTf", "-i", "eth0"], "--query-port=oRTf"),
        (["-i", "eth0", "-F", "netrx.o"], "-Fnetrx.o"),
        (["-N", "42"], "-N42"),
    ],
)
def test_optional_argument_must_be_glued(evl, argv, glued):
    stray = next(w for w in argv if not w.startswith("-") and w != "eth0")
    usage_error(
        evl("net", *argv), f"unexpected argument '{stray}' (an optional argument must be glued to its option: {glued})"
    )


@pytest.mark.parametrize("argv", [["-e", "foo", "-i", "eth0"], ["-n", "foo"], ["foo", "-Q", "-i", "eth0"]])
def test_glue_hint_only_where_it_applies(evl, argv):
    usage_error(evl("net", *argv), "unexpected argument 'foo'")


@pytest.mark.parametrize(
    "argv, hint",
    [
        (["-Si", "eth0", "10.10.10.11"], "-S took 'i' as its host; did you mean -S 10.10.10.11 -i eth0?"),
        (["-si", "eth0", "10.10.10.11"], "-s took 'i' as its host; did you mean -s 10.10.10.11 -i eth0?"),
        (["-Sg", "10.10.10.10"], "-S took 'g' as its host; did you mean -S 10.10.10.10 -g?"),
        (["-Sgi", "eth0", "peer"], "-S took 'gi' as its host; did you mean -S peer -g -i eth0?"),
    ],
)
def test_solicit_that_swallowed_an_option_letter(evl, argv, hint):
    usage_error(evl("net", *argv), hint)


def test_long_optional_argument_with_equals(evl):
    assert evl("net", "-ei", "eth0.42").code == 0
    run = evl("net", "--query-port=oR", "--interface", "eth0.42")
    assert (run.code, run.out) == (0, "yes 0\n")


def test_unique_prefixes_of_long_options(evl):
    assert evl("net", "--enable", "--inter=eth0.42").code == 0
    assert evl("net", "--quer=a", "--int", "eth0.42").out == "2048\n"


def test_ambiguous_prefix(evl):
    usage_error(
        evl("net", "--sol", "x"), "option '--sol' is ambiguous; possibilities: '--solicit' '--solicit-permanent'"
    )


def test_clustered_flags_and_options_after_operands_order(evl):
    # -Sg host: 'g' is the argument of -S, as getopt parses it.
    run = evl("net", "-Sg", "-i", "eth0.42")
    assert (run.code, run.err) == (1, "evl-net: invalid host/IP address 'g'\n")
    # Options after operands are still options (getopt permutes).
    usage_error(evl("net", "stray", "-e"), "unexpected argument 'stray': the interface goes with -i (-i stray)")


def test_required_argument_missing(evl):
    usage_error(evl("net", "-e", "-i"), "option requires an argument -- 'i'")


def test_print_vlan_ids_takes_no_argument(evl):
    assert evl("net", "-N42").code == 0
    run = evl("net", "--print-vlan-ids")
    assert (run.code, run.out) == (0, "42\n")
    usage_error(evl("net", "--print-vlan-ids=x"), "option '--print-vlan-ids' doesn't allow an argument")


# -- the C tool's order of checks -----------------------------------------


def test_stray_operand_before_missing_command(evl):
    usage_error(evl("net", "stray"), "unexpected argument 'stray'")


def test_no_command_given(evl):
    # Printed bare, as the C tool prints it.
    usage_error(evl("net", "-i", "eth0"), "no command given", bare=True)
    usage_error(evl("net", "-g"), "no command given", bare=True)


@pytest.mark.parametrize("option", ["-e", "-d", "-Q", "-F", "-Qa", "-Fx.o"])
def test_interface_required(evl, option):
    usage_error(evl("net", option), "a network interface must be specified", bare=True)


@pytest.mark.parametrize("argv", [["-N42"], ["-n"], ["-S", "10.10.10.10", "-g"]])
def test_interface_not_required(evl, argv):
    assert "interface must be specified" not in evl("net", *argv).err


# -- strict values ------------------------------------------------------------


@pytest.mark.parametrize(
    "value, message",
    [
        ("-1", "invalid pool size '-1': expected a decimal integer in 0..32768"),
        ("0x10", "invalid pool size '0x10': expected a decimal integer in 0..32768"),
        ("12abc", "invalid pool size '12abc': expected a decimal integer in 0..32768"),
        ("", "invalid pool size '': expected a decimal integer in 0..32768"),
        ("32769", "invalid pool size '32769': the kernel accepts at most 32768"),
    ],
)
def test_bad_pool_size(evl, value, message):
    usage_error(evl("net", "-ei", "eth0.42", "-p", value), message)
    assert evl("net", "-Qa", "-i", "eth0.42").out == "0\n"  # nothing was enabled


def test_bad_buffer_size_is_checked_against_the_board_before_anything_runs(evl):
    assert evl("net", "-ei", "eth0.42").code == 0
    run = evl("net", "-d", "-e", "-i", "eth0.42", "-b", "16385")
    assert (run.code, run.out) == (1, "")
    assert run.err == "evl-net: invalid buffer size '16385': the kernel accepts at most 16384 (4 x page size)\n"
    # The disable that came first in the plan did not run.
    assert evl("net", "-Qa", "-i", "eth0.42").out == "2048\n"


@pytest.mark.parametrize(
    "argv, warning",
    [
        (["-p", "10"], "-p has no effect without -e"),
        (["-b", "2048"], "-b has no effect without -e"),
        (["-p", "10", "-b", "0"], "-p and -b have no effect without -e"),
    ],
)
def test_pool_and_buffer_size_without_enable_are_accepted_with_a_warning(evl, argv, warning):
    run = evl("net", "-QoR", "-i", "eth0.42", *argv)
    assert (run.code, run.out, run.err) == (0, "yes 0\n", f"evl-net: warning: {warning}\n")
    assert evl("net", "-ei", "eth0.42", *argv).err == ""


def test_invalid_query_modifier_is_rejected_before_anything(evl):
    run = evl("net", "-e", "-QoZ", "-i", "eth0.42")
    assert (run.code, run.out) == (1, "")
    assert run.err == "evl-net: invalid query modifier 'Z' (valid: RrTtosfacx)\n"
    assert evl("net", "-Qa", "-i", "eth0.42").out == "0\n"  # -e did not run


def test_broadcast_needs_an_interface(evl):
    usage_error(evl("net", "-s", "broadcast"), "soliciting 'broadcast' needs an interface: add -i <ifname>")


# -- runtime errors -----------------------------------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        # The device cannot be opened (EVL_NETIOC_DEVOPEN): the C tool's words for that step.
        (["-ei", "eth9"], "cannot open out-of-band port eth9: No such device"),
        (["-di", "eth9"], "cannot open out-of-band port eth9: No such device"),
        (["-Q", "-i", "eth9"], "cannot open out-of-band port eth9: No such device"),
        (["-F", "-i", "eth9"], "cannot open out-of-band port eth9: No such device"),
        (
            ["--filter=", "-i", "eth0.42"],
            "cannot set BPF filter on eth0.42: cannot read eBPF object '': No such file or directory",
        ),
        (["-N5000"], "invalid VLAN id. list '5000': Numerical result out of range"),
        (["-N1"], "invalid VLAN id. list '1': Invalid argument"),
        (["-N41 - 42"], "invalid VLAN id. list '41 - 42': Invalid argument"),
        (["-s", "no-such-host"], "invalid host/IP address 'no-such-host'"),
        (["-s", "10.10.10.10", "-i", "eth9"], "cannot bind UDP socket to device eth9: No such device"),
    ],
)
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
    assert (run.code, run.out) == (0, "7\nyes 0\n")
    run = evl("net", "-N3000", "-ei", "eth9", "-n")
    assert (run.code, run.out) == (1, "")
    assert run.err == "evl-net: cannot open out-of-band port eth9: No such device\n"
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
    assert lines[0] == {
        "action": "enable",
        "ifname": "eth0.42",
        "changed": True,
        "pool_size": 2048,
        "buffer_size": 4096,
    }
    assert lines[1]["vlans"] == "41-42" and lines[1]["changed"] is True and lines[1]["cleared"] is False
    assert lines[2]["ids"] == [41, 42]
    assert lines[3]["oob_capable"] is True and lines[3]["oob_port"] is True and lines[3]["skb_total"] == 2048
    again = [json.loads(x) for x in evl("net", "--json", "-ei", "eth0.42").out.splitlines()]
    assert again[0]["changed"] is False  # enabling twice succeeds and changes nothing


def test_json_errors_are_a_json_object_too(evl):
    run = evl("net", "--json", "-Q", "-i", "eth9")
    assert run.code == 1
    assert json.loads(run.out) == {
        "error": {"message": "cannot open out-of-band port eth9: No such device", "errno": 19, "code": "ENODEV"}
    }
    assert run.err == "evl-net: cannot open out-of-band port eth9: No such device\n"
    # results before the failure come first, one object each
    run = evl("net", "--json", "-N42", "-ei", "eth9")
    assert run.code == 1 and [json.loads(x).get("action", "error") for x in run.out.splitlines()] == ["error"]
    run = evl("net", "--json", "-n", "-S", "no-such-host")
    assert [next(iter(json.loads(x))) for x in run.out.splitlines()] == ["action", "error"]


def test_format_errors(evl):
    usage_error(evl("net", "--format=", "-n"), "--format needs a formatter name (see --format=list)")
    run = evl("net", "--format=verbose", "-n")
    assert (run.code, run.out, run.err) == (
        1,
        "",
        "evl-net: formatter 'verbose' cannot render the result of show-vlans (formatters that can: json, text)\n",
    )
    evl("net", "-ei", "eth0.42")
    run = evl("net", "--format=table", "-Q", "-i", "eth0.42")
    assert run.err.endswith("(formatters that can: json, prometheus, terse, text, verbose)\n")


def test_every_formatter_renders_the_table_it_can(evl):
    table = evl("net", "-Q", "--all-interfaces").out
    assert evl("net", "-Q", "--all-interfaces", "--format=text").out == table  # was empty
    assert evl("net", "-Q", "--all-interfaces", "--format=table").out == table
    assert evl("net", "-Q", "--all-interfaces", "--format=names").out.split() == [
        "lo",
        "eth0",
        "eth0.42",
        "eth1",
        "eth1.42",
        "eth2",
    ]


def test_query_all_table(evl):
    evl("net", "-ei", "eth0.42")
    run = evl("net", "-Q", "--all-interfaces")
    assert run.code == 0
    header, _rule, *rows = run.out.splitlines()
    assert header.split()[:4] == ["interface", "port", "oob", "up"]
    table = {r.split()[0]: r.split() for r in rows}
    assert set(table) == {"lo", "eth0", "eth0.42", "eth1", "eth1.42", "eth2"}
    assert table["eth0.42"][1:4] == ["yes", "yes", "yes"]
    assert table["eth2"][1:3] == ["no", "no"]


def test_query_all_with_modifiers_selects_columns(evl):
    run = evl("net", "-Qof", "--all-interfaces")
    assert run.out.splitlines()[0].split() == ["interface", "port", "oob", "skb", "free"]


def test_query_all_json(evl):
    run = evl("net", "--json", "-Q", "--all-interfaces")
    (doc,) = [json.loads(x) for x in run.out.splitlines()]
    assert [i["ifname"] for i in doc["interfaces"]] == ["lo", "eth0", "eth0.42", "eth1", "eth1.42", "eth2"]


def test_all_with_interface_is_an_error(evl):
    usage_error(evl("net", "-Q", "--all-interfaces", "-i", "eth0"), "--all-interfaces queries every interface: drop -i")


def test_format_list_and_explicit_formatter(evl):
    run = evl("net", "--format=list")
    assert [line.split()[0] for line in run.out.splitlines()] == [
        "json",
        "names",
        "prometheus",
        "table",
        "terse",
        "text",
        "verbose",
    ]
    evl("net", "-ei", "eth0.42")
    assert evl("net", "--format=terse", "-Q", "-i", "eth0.42").out == "0 0 0 0 yes 4096 2048 2048 0 0 0\n"
    run = evl("net", "--format=nope", "-n")
    assert (run.code, run.err) == (
        1,
        "evl-net: unknown formatter 'nope' (available: json, names, prometheus, table, terse, text, verbose)\n",
    )


def test_terse_x_prints_two_numbers(evl):
    evl("net", "-ei", "eth0.42")
    assert evl("net", "-Qx", "-i", "eth0.42").out == "0 0\n"


def test_non_oob_capable_driver(evl):
    assert evl("net", "-ei", "eth2").code == 0  # not an error: egress goes in-band
    assert evl("net", "-Qo", "-i", "eth2").out == "no\n"
    assert evl("net", "-Q", "-i", "eth2").out.startswith("oob capability: no\n")


# -- what the messages say --------------------------------------------------------


def test_filter_removal_is_reported(evl):
    assert evl("net", "-ei", "eth0.42").code == 0
    for argv in (["-F", "-i", "eth0.42"], ["--filter", "-i", "eth0.42"], ["--fil", "--int=eth0.42"]):
        run = evl("net", *argv)
        assert (run.code, run.out) == (0, "eBPF module removed from eth0.42\n"), argv


def test_vlan_clear_message_follows_the_request(evl):
    assert evl("net", "-N42").out == ""
    assert evl("net", "-N").out == "VLAN filter cleared\n"
    assert evl("net", "-N").out == "VLAN filter cleared\n"  # already clear: still what was asked
    assert evl("net", "-N", "-n").out == "VLAN filter cleared\n"  # and the filter reads back empty
    usage_error(evl("net", "--set-vlan-ids="), "empty VLAN id. list (-N alone clears the filter)")


def test_json_and_another_format_exclude_each_other(evl):
    usage_error(
        evl("net", "--json", "--format=names", "-Q", "--all-interfaces"), "--json and --format=names exclude each other"
    )
    assert evl("net", "--json", "--format=json", "-n").code == 0


def test_board_does_not_apply_to_remote_boards(evl):
    run = evl("net", "--remote=b1", "--board", "manual", "-n")
    assert (run.code, run.err) == (
        1,
        "evl-net: --board names a simulated board here; a remote board is the board itself\n",
    )
