"""``evl_core.getopt``: GNU ``getopt_long`` semantics, messages in glibc's words.

The last part checks the same cases against glibc itself, through a tiny C
program, where a C compiler and glibc are at hand.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from evl_core.getopt import (
    NO_ARGUMENT,
    OPTIONAL_ARGUMENT,
    REQUIRED_ARGUMENT,
    Getopt,
    GetoptError,
    LongOption,
    parse_shortopts,
)

SHORT = "ab:c::i:v"
LONG = (
    LongOption("verbose", NO_ARGUMENT, "v"),
    LongOption("version", NO_ARGUMENT, "V"),
    LongOption("name", REQUIRED_ARGUMENT, "n"),
    LongOption("color", OPTIONAL_ARGUMENT, "C"),
    LongOption("prefix", REQUIRED_ARGUMENT, "P"),
    LongOption("prefix-all", NO_ARGUMENT, "A"),
    # two spellings of one option: a prefix of both is not ambiguous
    LongOption("silent", NO_ARGUMENT, "s"),
    LongOption("silently", NO_ARGUMENT, "s"),
)


def parse(argv, shortopts=SHORT, longopts=LONG):
    """(options, operands) of a whole command line."""
    g = Getopt(argv, shortopts, longopts)
    return list(g), g.operands


def error(argv, shortopts=SHORT, longopts=LONG) -> str:
    with pytest.raises(GetoptError) as info:
        parse(argv, shortopts, longopts)
    return str(info.value)


# -- the option string ----------------------------------------------------------


def test_parse_shortopts():
    assert parse_shortopts("ab:c::") == ({"a": NO_ARGUMENT, "b": REQUIRED_ARGUMENT, "c": OPTIONAL_ARGUMENT}, False)
    assert parse_shortopts("+P:Vvh") == (
        {"P": REQUIRED_ARGUMENT, "V": NO_ARGUMENT, "v": NO_ARGUMENT, "h": NO_ARGUMENT},
        True,
    )
    assert parse_shortopts("") == ({}, False)


# -- short options -------------------------------------------------------------


def test_cluster_of_flags():
    assert parse(["-av"]) == ([("a", None), ("v", None)], [])
    assert parse(["-a", "-v", "-a"]) == ([("a", None), ("v", None), ("a", None)], [])


def test_cluster_ending_in_an_option_with_a_required_argument():
    assert parse(["-avb", "x"]) == ([("a", None), ("v", None), ("b", "x")], [])
    assert parse(["-avbx"]) == ([("a", None), ("v", None), ("b", "x")], [])


def test_required_argument_glued_or_separate():
    assert parse(["-ieth0"]) == ([("i", "eth0")], [])
    assert parse(["-i", "eth0"]) == ([("i", "eth0")], [])
    # the rest of the cluster is the argument, letters included
    assert parse(["-iav"]) == ([("i", "av")], [])
    # the next word is taken whatever it looks like
    assert parse(["-i", "-a"]) == ([("i", "-a")], [])
    assert parse(["-i", "--"]) == ([("i", "--")], [])


def test_required_argument_missing():
    assert error(["-i"]) == "option requires an argument -- 'i'"
    assert error(["-a", "-avi"]) == "option requires an argument -- 'i'"


def test_optional_argument_only_when_glued():
    assert parse(["-cfoo"]) == ([("c", "foo")], [])
    assert parse(["-c", "foo"]) == ([("c", None)], ["foo"])
    assert parse(["-ac"]) == ([("a", None), ("c", None)], [])
    assert parse(["-acv"]) == ([("a", None), ("c", "v")], [])


def test_unknown_short_option():
    assert error(["-z"]) == "invalid option -- 'z'"
    assert error(["-az"]) == "invalid option -- 'z'"
    # ':' in the option string is syntax, never an option
    assert error(["-:"]) == "invalid option -- ':'"


# -- long options --------------------------------------------------------------


def test_long_required_argument():
    assert parse(["--name=x"]) == ([("n", "x")], [])
    assert parse(["--name", "x"]) == ([("n", "x")], [])
    assert parse(["--name="]) == ([("n", "")], [])
    assert parse(["--name", "--verbose"]) == ([("n", "--verbose")], [])
    assert parse(["--name=a=b"]) == ([("n", "a=b")], [])


def test_long_required_argument_missing():
    assert error(["--name"]) == "option '--name' requires an argument"
    assert error(["--na"]) == "option '--name' requires an argument"


def test_long_optional_argument_only_with_equals():
    assert parse(["--color=always"]) == ([("C", "always")], [])
    assert parse(["--color", "always"]) == ([("C", None)], ["always"])
    assert parse(["--color"]) == ([("C", None)], [])


def test_unique_prefixes():
    assert parse(["--verb"]) == ([("v", None)], [])
    assert parse(["--vers"]) == ([("V", None)], [])
    assert parse(["--n", "x"]) == ([("n", "x")], [])
    assert parse(["--col=x"]) == ([("C", "x")], [])


def test_ambiguous_prefix_lists_the_possibilities():
    assert error(["--ver"]) == "option '--ver' is ambiguous; possibilities: '--verbose' '--version'"
    assert error(["--pre", "x"]) == "option '--pre' is ambiguous; possibilities: '--prefix' '--prefix-all'"


def test_prefix_of_two_spellings_of_one_option_is_not_ambiguous():
    assert parse(["--sil"]) == ([("s", None)], [])


def test_exact_match_beats_a_longer_option():
    assert parse(["--prefix", "x"]) == ([("P", "x")], [])
    assert parse(["--prefix=x"]) == ([("P", "x")], [])
    assert parse(["--prefix-all"]) == ([("A", None)], [])
    assert parse(["--prefix-"]) == ([("A", None)], [])


def test_argument_to_a_long_option_that_takes_none():
    assert error(["--verbose=1"]) == "option '--verbose' doesn't allow an argument"
    # named by its full name, as glibc does
    assert error(["--verb=1"]) == "option '--verbose' doesn't allow an argument"


def test_unknown_long_option():
    assert error(["--foo"]) == "unrecognized option '--foo'"
    assert error(["-a", "--foo", "x"]) == "unrecognized option '--foo'"


def test_unknown_long_option_with_a_value_is_named_whole():
    assert error(["--foo=bar"]) == "unrecognized option '--foo=bar'"


def test_ambiguous_prefix_with_a_value_is_named_whole():
    assert error(["--ver=1"]) == "option '--ver=1' is ambiguous; possibilities: '--verbose' '--version'"


# -- operands ------------------------------------------------------------------


def test_double_dash_ends_options():
    assert parse(["-a", "--", "-v", "--name"]) == ([("a", None)], ["-v", "--name"])
    assert parse(["--"]) == ([], [])
    # only the first one is special
    assert parse(["--", "--"]) == ([], ["--"])


def test_single_dash_is_an_operand():
    assert parse(["-", "-a"]) == ([("a", None)], ["-"])
    assert parse(["-a", "-"], "+a") == ([("a", None)], ["-"])


def test_permutation_collects_operands_from_anywhere():
    options, operands = parse(["x", "-a", "y", "--name", "n", "z", "-iq", "w"])
    assert options == [("a", None), ("n", "n"), ("i", "q")]
    assert operands == ["x", "y", "z", "w"]


def test_permutation_then_double_dash():
    assert parse(["x", "-a", "--", "-v", "y"]) == ([("a", None)], ["x", "-v", "y"])


def test_require_order_stops_at_the_first_operand():
    assert parse(["-a", "cmd", "-v", "--name", "x"], "+ab:v") == ([("a", None)], ["cmd", "-v", "--name", "x"])
    assert parse(["cmd", "-a"], "+a") == ([], ["cmd", "-a"])
    # what the dispatcher relies on: a bad option after the command is the command's business
    assert parse(["-b", "dir", "net", "-z", "--bogus"], "+b:") == ([("b", "dir")], ["net", "-z", "--bogus"])


def test_require_order_double_dash():
    assert parse(["-a", "--", "-a"], "+a") == ([("a", None)], ["-a"])
    assert parse(["x", "--", "-a"], "+a") == ([], ["x", "--", "-a"])


def test_operands_are_empty_before_iteration():
    g = Getopt(["x", "-a"], "a")
    assert g.operands == []


# -- laziness ------------------------------------------------------------------


def test_options_are_yielded_before_a_later_error():
    it = iter(Getopt(["-a", "-z"], "a"))
    assert next(it) == ("a", None)
    with pytest.raises(GetoptError, match="invalid option -- 'z'"):
        next(it)


def test_options_of_a_cluster_are_yielded_before_an_error_in_it():
    it = iter(Getopt(["-avz"], "av"))
    assert next(it) == ("a", None)
    assert next(it) == ("v", None)
    with pytest.raises(GetoptError, match="invalid option -- 'z'"):
        next(it)


def test_long_option_is_yielded_before_a_later_missing_argument():
    it = iter(Getopt(["--verbose", "x", "--name"], "", LONG))
    assert next(it) == ("v", None)
    with pytest.raises(GetoptError, match="option '--name' requires an argument"):
        next(it)


def test_an_early_exit_leaves_the_rest_unparsed():
    """The C loop acts on -@ at once; what follows is never looked at."""
    seen = []
    for key, _value in Getopt(["-@", "-z", "--bogus"], "@"):
        seen.append(key)
        break
    assert seen == ["@"]


# -- against glibc ---------------------------------------------------------------

ORACLE_C = r"""
#include <getopt.h>
#include <stdio.h>

static const struct option longopts[] = {
%(longopts)s
  {NULL, 0, NULL, 0},
};

int main(int argc, char **argv) {
  const char *spec = argv[1];
  int c;
  argv[1] = argv[0];
  argc--;
  argv++;
  while ((c = getopt_long(argc, argv, spec, longopts, NULL)) != -1) {
    if (c == '?') { printf("ERR\n"); return 0; }
    printf("OPT %%c %%s\n", c, optarg ? optarg : "(null)");
  }
  for (int i = optind; i < argc; i++) printf("ARG %%s\n", argv[i]);
  return 0;
}
"""

KINDS = {NO_ARGUMENT: "no_argument", REQUIRED_ARGUMENT: "required_argument", OPTIONAL_ARGUMENT: "optional_argument"}

CASES = [
    ("ab:c::i:v", ["-av", "x", "-bfoo", "-b", "bar", "y"]),
    ("ab:c::i:v", ["-avbx", "-c", "z", "-cq"]),
    ("ab:c::i:v", ["-iav"]),
    ("ab:c::i:v", ["-i", "-a"]),
    ("ab:c::i:v", ["-a", "-i"]),
    ("ab:c::i:v", ["-az"]),
    ("ab:c::i:v", ["-:"]),
    ("ab:c::i:v", ["--name=x", "--name", "y", "--name="]),
    ("ab:c::i:v", ["--na"]),
    ("ab:c::i:v", ["--color", "always", "--color=never", "--col"]),
    ("ab:c::i:v", ["--verb", "--vers", "--sil", "--silently"]),
    ("ab:c::i:v", ["--ver"]),
    ("ab:c::i:v", ["--pre", "x"]),
    ("ab:c::i:v", ["--prefix", "x", "--prefix-all", "--prefix-"]),
    ("ab:c::i:v", ["--verb=1"]),
    ("ab:c::i:v", ["--foo", "x"]),
    ("ab:c::i:v", ["x", "-a", "--", "-v", "y"]),
    ("ab:c::i:v", ["-", "-a", "--", "--"]),
    ("ab:c::i:v", ["x", "-a", "y", "--name", "n", "z", "-iq", "w"]),
    ("+ab:v", ["-a", "cmd", "-v", "--name", "x"]),
    ("+ab:v", ["-b", "dir", "net", "-z", "--bogus"]),
    ("+ab:v", ["x", "--", "-a"]),
    ("+ab:v", ["-a", "--", "-a"]),
    ("ab:c::i:v", ["--foo=bar"]),
    ("ab:c::i:v", ["--ver=1"]),
]
#: Known differences from glibc (none at present).
DIFFERENCES: dict[str, str] = {}


def _case(spec: str, argv: list[str]):
    case_id = f"{spec} {' '.join(argv)}"
    reason = DIFFERENCES.get(" ".join(argv))
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(spec, argv, id=case_id, marks=marks)


@pytest.fixture(scope="module")
def oracle(tmp_path_factory) -> str:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    workdir = tmp_path_factory.mktemp("getopt-oracle")
    longopts = "\n".join(f"  {{\"{o.name}\", {KINDS[o.has_arg]}, NULL, '{o.key}'}}," for o in LONG)
    source = workdir / "oracle.c"
    source.write_text(ORACLE_C % {"longopts": longopts})
    binary = workdir / "oracle"
    proc = subprocess.run([cc, "-o", str(binary), str(source)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot build the getopt oracle: {proc.stderr}")
    probe = subprocess.run([str(binary), "a", "--name=x"], capture_output=True, text=True)
    if probe.stdout != "OPT n x\n":
        pytest.skip("the C library's getopt_long is not GNU's")
    return str(binary)


def glibc(oracle: str, spec: str, argv: list[str], posixly_correct: bool = False) -> list[tuple[str, ...]]:
    env = {k: v for k, v in os.environ.items() if k != "POSIXLY_CORRECT"}
    env["LC_ALL"] = "C"
    if posixly_correct:
        env["POSIXLY_CORRECT"] = "1"
    proc = subprocess.run([oracle, spec, *argv], capture_output=True, text=True, env=env)
    events: list[tuple[str, ...]] = []
    for line in proc.stdout.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "OPT":
            key, _, arg = rest.partition(" ")
            events.append(("OPT", key, None if arg == "(null)" else arg))
        elif kind == "ARG":
            events.append(("ARG", rest))
        else:
            prog = oracle + ": "  # glibc prefixes argv[0]
            message = proc.stderr.strip()
            events.append(("ERR", message[len(prog) :] if message.startswith(prog) else message))
    return events


def ours(spec: str, argv: list[str], posixly_correct: bool = False) -> list[tuple[str, ...]]:
    g = Getopt(argv, spec, LONG, posixly_correct=posixly_correct)
    events: list[tuple[str, ...]] = []
    try:
        for key, value in g:
            events.append(("OPT", key, value))
    except GetoptError as exc:
        return [*events, ("ERR", str(exc))]
    return events + [("ARG", operand) for operand in g.operands]


@pytest.mark.parametrize(("spec", "argv"), [_case(*case) for case in CASES])
def test_same_as_glibc(oracle, spec, argv):
    assert ours(spec, argv) == glibc(oracle, spec, argv)


POSIX_CASES = [
    ("ab:c::i:v", ["-a", "x", "-v"]),
    ("ab:c::i:v", ["x", "-a"]),
    ("ab:c::i:v", ["-b", "x", "y", "-z"]),
    ("ab:c::i:v", ["--verb", "op", "--name", "n"]),
    ("ab:c::i:v", ["-a", "--", "-v"]),
    ("ab:c::i:v", ["-az", "x"]),
]


@pytest.mark.parametrize(("spec", "argv"), POSIX_CASES)
def test_same_as_glibc_with_posixly_correct(oracle, spec, argv):
    assert ours(spec, argv, posixly_correct=True) == glibc(oracle, spec, argv, posixly_correct=True)


# -- ranks: options added to a C tool's set ---------------------------------------------

RANKED = (
    LongOption("allow-gateway", NO_ARGUMENT, "g"),
    LongOption("help", NO_ARGUMENT, "h"),
    LongOption("all-interfaces", NO_ARGUMENT, "A", rank=1),
    LongOption("hosts", REQUIRED_ARGUMENT, "H", rank=1),
    LongOption("json", NO_ARGUMENT, "J", rank=1),
    LongOption("jsonl", NO_ARGUMENT, "L", rank=1),
)


@pytest.mark.parametrize(
    "word, key",
    [
        ("--a", "g"),
        ("--al", "g"),
        ("--all", "g"),
        ("--h", "h"),
        ("--ho=x", "H"),
        ("--all-", "A"),
        ("--all-interfaces", "A"),
        ("--json", "J"),
        ("--jsonl", "L"),
    ],
)
def test_a_prefix_matches_the_lowest_rank_first(word, key):
    assert parse([word], "", RANKED)[0][0][0] == key


def test_ambiguity_within_the_added_options_is_still_an_error():
    assert error(["--js"], "", RANKED) == "option '--js' is ambiguous; possibilities: '--json' '--jsonl'"


def test_operand_positions_and_optind():
    g = Getopt(["-a", "x", "-b", "v", "y"], SHORT, LONG)
    seen = [(key, g.optind) for key, _value in g]
    assert seen == [("a", 1), ("b", 4)]
    assert (g.operands, g.operand_index) == (["x", "y"], [1, 4])
