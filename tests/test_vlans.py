"""Tests for evl_net.kernel.vlans, the kernel bitmap_parselist()/%*pbl twin used for
the EVL global RX VLAN filter (sysfs attribute ``vlans``)."""

from __future__ import annotations

import errno
import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evl_net.kernel import vlans
from evl_net.kernel.vlans import _parselist

EINVAL, ERANGE, EOVERFLOW = errno.EINVAL, errno.ERANGE, errno.EOVERFLOW
KERNEL_ERRNOS = {EINVAL, ERANGE, EOVERFLOW}

# database=None: do not leave a .hypothesis/ directory in the tree.
PROPS = settings(max_examples=2000, deadline=None, database=None)
SMALL = settings(max_examples=300, deadline=None, database=None)


def errno_of(text: str) -> int:
    with pytest.raises(OSError) as info:
        vlans.parse(text)
    assert type(info.value) is OSError
    assert info.value.strerror  # os.strerror() text, like the failed write
    return info.value.errno


def bits(value: int) -> set[int]:
    return {i for i in range(value.bit_length()) if value >> i & 1}


# --------------------------------------------------------------------------
# Constants and the examples of the spec
# --------------------------------------------------------------------------


def test_constants():
    assert (vlans.NBITS, vlans.VID_MIN, vlans.VID_MAX) == (4096, 2, 4094)


def test_examples():
    assert vlans.parse("41-42,55-57,100") == {41, 42, 55, 56, 57, 100}
    assert vlans.format({41, 42, 55, 56, 57, 100}) == "41-42,55-57,100"
    assert isinstance(vlans.parse("41"), frozenset)


def test_strides():
    assert vlans.parse("100-199:2/10") == {v for base in range(100, 200, 10) for v in (base, base + 1)}
    # The last group is cut at the end of the range.
    assert vlans.parse("10-21:3/5") == {10, 11, 12, 15, 16, 17, 20, 21}
    assert vlans.parse("10-20:5/5") == set(range(10, 21))
    assert vlans.parse("10-20:1/1") == set(range(10, 21))
    assert vlans.parse("10-20:0/3") == set()  # used may be 0
    assert vlans.parse("10-10:1/4000") == {10}
    assert vlans.parse("2-4094:1/1000") == {2, 1002, 2002, 3002, 4002}


def test_all():
    assert _parselist("all") == set(range(4096))
    assert _parselist("ALL") == _parselist("aLl") == set(range(4096))
    assert _parselist("all:1/2") == set(range(0, 4096, 2))
    assert _parselist("AlL:3/1024") == {b + i for b in range(0, 4096, 1024) for i in range(3)}
    # all includes the reserved VIDs...
    assert errno_of("all") == EINVAL
    assert errno_of("ALL:1/2") == EINVAL
    # ... unless the stride leaves them out.
    assert vlans.parse("all:0/1") == set()
    assert vlans.parse("2,all:0/7,3") == {2, 3}
    for bad in ("al", "alll", "all-5", "all5", "all:", "all:1", "all:1/", "a ll", "al l", "allx", "ALL :1/2"):
        assert errno_of(bad) == EINVAL, bad


def test_last_bit_n():
    assert _parselist("4000-N") == set(range(4000, 4096))
    assert _parselist("N") == _parselist("N-N") == {4095}
    assert _parselist("0-N") == set(range(4096))
    # N is the reserved VID 4095, unless a stride skips it.
    assert errno_of("4000-N") == EINVAL
    assert errno_of("N") == EINVAL
    assert vlans.parse("4000-N:1/2") == set(range(4000, 4095, 2))
    assert vlans.parse("2-10:1/N") == {2}
    assert vlans.parse("2-10:N/N") == set(range(2, 11))
    assert vlans.parse("4094-N:1/N") == {4094}
    for bad in ("n", "4000-n", "NN", "N-", "-N", "N4", "2-N5", "N-4000", "2-10:1/n"):
        assert errno_of(bad) == EINVAL, bad


def test_empty_list_clears():
    for text in ("", ",", " ", ",,  ,, , ,  ,", " \t,\r\v\f,", "\n", " ,\n", "\0", "\0 5", ",\0 5", "\n\n\n"):
        assert vlans.parse(text) == frozenset(), repr(text)


# --------------------------------------------------------------------------
# Separators, terminators
# --------------------------------------------------------------------------


def test_whitespace_and_comma_separators():
    assert vlans.parse("2 3\t4\v5\f6\r7,8") == set(range(2, 9))
    assert vlans.parse("  ,, 2,,,3 , \t 4  ,,  ") == {2, 3, 4}
    assert vlans.parse("10-12 20-22") == {10, 11, 12, 20, 21, 22}
    assert vlans.parse(" 10-20:1/5 ,30") == {10, 15, 20, 30}


def test_no_spaces_inside_a_region():
    for bad in ("41 - 42", "41 -42", "41- 42", "10-20 :1/5", "10-20: 1/5", "10-20:1 /5", "10-20:1/ 5", "41-\t42"):
        assert errno_of(bad) == EINVAL, bad


def test_non_ascii_is_never_a_separator_nor_a_digit():
    # Written as UTF-8, none of these start with a kernel isspace() byte.
    for bad in ("2\xa03", "2\u20033", "\uff12", "\u0663", "2-\u0663", "\u00b2", "2\u2028"):
        assert errno_of(bad) == EINVAL, repr(bad)


def test_nul_ends_the_input():
    assert vlans.parse("2-5\0junk") == {2, 3, 4, 5}
    assert vlans.parse("2-5,\x00,0,1,4095,abc") == {2, 3, 4, 5}
    assert errno_of("7:\0") == EINVAL
    assert errno_of("7-\09") == EINVAL  # the list ends mid-region
    assert errno_of("7-9:1/\02") == EINVAL


def test_newline_ends_the_input():
    assert vlans.parse("41-42,55-57,100\n") == {41, 42, 55, 56, 57, 100}
    assert vlans.parse("7\n") == {7}
    assert vlans.parse("7\ngarbage") == {7}
    assert vlans.parse("7-9\n0,1,4095,x") == {7, 8, 9}
    assert errno_of("7-\n") == EINVAL


def test_newline_quirks_match_the_kernel():
    # The kernel only stops at a '\n' found right after an unstrided region;
    # anywhere else it skips it like any other isspace() character.
    assert vlans.parse("\n7") == {7}
    assert vlans.parse("7,\n8") == {7, 8}
    assert vlans.parse("7 \n8") == {7, 8}
    assert vlans.parse("2-9:1/2\n20") == {2, 4, 6, 8, 20}
    assert errno_of("2-9:1/2\nxyz") == EINVAL


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "x",
        "abc",
        "-1",
        "-0",
        "+5",
        "0x10",
        "5x",
        "5-",
        "-",
        ":",
        "/",
        ";",
        "5;6",
        "5.0",
        "5_000",
        "1e3",
        "10-5",
        "4094-2",
        "N-2",
        "2-10:",
        "2-10:1",
        "2-10:1/",
        "2-10:1/0",
        "2-10:0/0",
        "2-10:3/2",
        "2-10:1:2",
        "2-10/2",
        "2:1/2",
        "2-10:a/2",
        "2-10:1/a",
        "2-10:1/2x",
        "2-10:1/2:3",
        "2-10:1/2-3",
        "a-31",
        "0-a1",
        "2--4",
        "2-4-6",
        "5000-10",
        "4000-5000:3/2",
        "4294967295",
        "0-4294967295",
        "41 - 42",
    ],
)
def test_einval(text):
    assert errno_of(text) == EINVAL


@pytest.mark.parametrize(
    "text",
    [
        "4096",
        "2-4096",
        "4000-9999",
        "4096-4096",
        "4294967294",
        "2,4096",
        "5000-6000:1/2",
        "all,4096",
        "2-4096:0/1",
        "2-10:1/2,4096",
    ],
)
def test_erange(text):
    assert errno_of(text) == ERANGE


@pytest.mark.parametrize(
    "text",
    [
        "4294967296",
        "2-4294967296",
        "99999999999",
        "2-10:4294967296/1",
        "2-10:1/4294967296",
        "0-98765432123456789:10/1",
        "1" * 10000,
        "2," + "9" * 5000,
        "00000000004294967296",
    ],
)
def test_eoverflow(text):
    assert errno_of(text) == EOVERFLOW


def test_number_limits():
    assert vlans.parse("0000000000000000000000002") == {2}
    assert vlans.parse("00000004094") == {4094}
    assert errno_of("4294967294") == ERANGE
    # end + 1 wraps to a zero group length in the kernel's 32-bit unsigned
    # arithmetic: EINVAL, not ERANGE.
    assert errno_of("4294967295") == EINVAL
    assert errno_of("4294967296") == EOVERFLOW


def test_first_failing_region_wins():
    assert errno_of("5000,x") == ERANGE
    assert errno_of("x,5000") == EINVAL
    assert errno_of("99999999999,x") == EOVERFLOW
    assert errno_of("10-5,99999999999") == EINVAL
    # Reserved VIDs are only looked at once the whole list parsed.
    assert errno_of("0,5000") == ERANGE
    assert errno_of("4095,abc") == EINVAL


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "1",
        "4095",
        "N",
        "0-5",
        "1-2",
        "4090-4095",
        "1,2,3",
        "2,3,1",
        "all",
        "0-10:1/5",
        "4094-4095",
        "2-4095",
        "1-4094",
        "0-4095",
    ],
)
def test_reserved_vids(text):
    assert errno_of(text) == EINVAL


def test_valid_bounds():
    assert vlans.parse("2") == {2}
    assert vlans.parse("4094") == {4094}
    assert vlans.parse("2-4094") == set(range(2, 4095))
    assert vlans.format(vlans.parse("2-4094")) == "2-4094"
    assert errno_of("1-10:1/2,2") == EINVAL  # 1 is set by the stride


# --------------------------------------------------------------------------
# Kernel corner cases reproduced on purpose
# --------------------------------------------------------------------------


def test_group_length_is_not_delimited():
    # bitmap_parse_region() does not check what follows the group length,
    # so the next region may start right there.
    assert _parselist("2-10:2/4N") == {2, 3, 6, 7, 10, 4095}
    assert vlans.parse("2-10:2/N5") == {2, 3, 5}
    assert vlans.parse("2-10:2/4all:0/1") == {2, 3, 6, 7, 10}
    assert errno_of("2-10:2/4N") == EINVAL  # 4095 is reserved


def test_group_length_wraps_around_32_bits():
    # start + group_len wraps in unsigned int: the kernel steps back by
    # 2**32 - group_len (here 8) and sets bits below start.
    assert vlans.parse("10-20:1/4294967288") == {2, 10}
    assert _parselist("5-10:1/4294967295") == set(range(6))
    assert errno_of("5-10:1/4294967295") == EINVAL


# Kernel lib/test_bitmap.c parselist_tests[], with their own map sizes.
EXP1 = [
    1,
    2,
    0x0000FFFF,
    0xFFFF0000,
    0x55555555,
    0xAAAAAAAA,
    0x11111111,
    0x22222222,
    0xFFFFFFFF,
    0xFFFFFFFE,
    0x3333333311111111,
    0xFFFFFFFF77777777,
    0,
    0x00008000,
    0x80000000,
]
EXP2 = 0x3333333311111111 | 0xFFFFFFFF77777777 << 64
KERNEL_VECTORS = [
    (0, "0", EXP1[0], 8),
    (0, "1", EXP1[1], 8),
    (0, "0-15", EXP1[2], 32),
    (0, "16-31", EXP1[3], 32),
    (0, "0-31:1/2", EXP1[4], 32),
    (0, "1-31:1/2", EXP1[5], 32),
    (0, "0-31:1/4", EXP1[6], 32),
    (0, "1-31:1/4", EXP1[7], 32),
    (0, "0-31:4/4", EXP1[8], 32),
    (0, "1-31:4/4", EXP1[9], 32),
    (0, "0-31:1/4,32-63:2/4", EXP1[10], 64),
    (0, "0-31:3/4,32-63:4/4", EXP1[11], 64),
    (0, "  ,,  0-31:3/4  ,, 32-63:4/4  ,,  ", EXP1[11], 64),
    (0, "0-31:1/4,32-63:2/4,64-95:3/4,96-127:4/4", EXP2, 128),
    (0, "0-2047:128/256", sum(((1 << 128) - 1) << b for b in range(0, 2048, 256)), 2048),
    (0, "", EXP1[12], 8),
    (0, "\n", EXP1[12], 8),
    (0, ",,  ,,  , ,  ,", EXP1[12], 8),
    (0, " ,  ,,  , ,   ", EXP1[12], 8),
    (0, " ,  ,,  , ,   \n", EXP1[12], 8),
    (0, "0-0", EXP1[0], 32),
    (0, "1-1", EXP1[1], 32),
    (0, "15-15", EXP1[13], 32),
    (0, "31-31", EXP1[14], 32),
    (0, "0-0:0/1", EXP1[12], 32),
    (0, "0-0:1/1", EXP1[0], 32),
    (0, "0-0:1/31", EXP1[0], 32),
    (0, "0-0:31/31", EXP1[0], 32),
    (0, "1-1:1/1", EXP1[1], 32),
    (0, "0-15:16/31", EXP1[2], 32),
    (0, "15-15:1/2", EXP1[13], 32),
    (0, "15-15:31/31", EXP1[13], 32),
    (0, "15-31:1/31", EXP1[13], 32),
    (0, "16-31:16/31", EXP1[3], 32),
    (0, "31-31:31/31", EXP1[14], 32),
    (0, "N-N", EXP1[14], 32),
    (0, "0-0:1/N", EXP1[0], 32),
    (0, "0-0:N/N", EXP1[0], 32),
    (0, "0-15:16/N", EXP1[2], 32),
    (0, "15-15:N/N", EXP1[13], 32),
    (0, "15-N:1/N", EXP1[13], 32),
    (0, "16-N:16/N", EXP1[3], 32),
    (0, "N-N:N/N", EXP1[14], 32),
    (0, "0-N:1/3,1-N:1/3,2-N:1/3", EXP1[8], 32),
    (0, "0-31:1/3,1-31:1/3,2-31:1/3", EXP1[8], 32),
    (0, "1-10:8/12,8-31:24/29,0-31:0/3", EXP1[9], 32),
    (0, "all", EXP1[8], 32),
    (0, "0, 1, all,  ", EXP1[8], 32),
    (0, "all:1/2", EXP1[4], 32),
    (0, "ALL:1/2", EXP1[4], 32),
    (EINVAL, "al", None, 8),
    (EINVAL, "alll", None, 8),
    (EINVAL, "-1", None, 8),
    (EINVAL, "-0", None, 8),
    (EINVAL, "10-1", None, 8),
    (ERANGE, "8-8", None, 8),
    (ERANGE, "0-31", None, 8),
    (EINVAL, "0-31:", None, 32),
    (EINVAL, "0-31:0", None, 32),
    (EINVAL, "0-31:0/", None, 32),
    (EINVAL, "0-31:0/0", None, 32),
    (EINVAL, "0-31:1/0", None, 32),
    (EINVAL, "0-31:10/1", None, 32),
    (EOVERFLOW, "0-98765432123456789:10/1", None, 8),
    (EINVAL, "a-31", None, 8),
    (EINVAL, "0-a1", None, 8),
    (EINVAL, "a-31:10/1", None, 8),
    (EINVAL, "0-31:a/1", None, 8),
    (EINVAL, "0-\n", None, 8),
]


@pytest.mark.parametrize("err,text,expected,nbits", KERNEL_VECTORS)
def test_kernel_test_bitmap_vectors(err, text, expected, nbits):
    if err:
        with pytest.raises(OSError) as info:
            _parselist(text, nbits)
        assert info.value.errno == err
    else:
        assert _parselist(text, nbits) == bits(expected & ((1 << nbits) - 1))


# --------------------------------------------------------------------------
# format()
# --------------------------------------------------------------------------


def test_format():
    assert vlans.format([]) == ""
    assert vlans.format(set()) == ""
    assert vlans.format([7]) == "7"
    assert vlans.format([7, 8]) == "7-8"
    assert vlans.format([8, 7, 7, 8, 8]) == "7-8"
    assert vlans.format(iter([100, 57, 41, 56, 42, 55])) == "41-42,55-57,100"
    assert vlans.format(range(2, 4095)) == "2-4094"
    assert vlans.format([2, 4, 6]) == "2,4,6"
    assert vlans.format(range(4096)) == "0-4095"  # what %*pbl would show
    assert vlans.format([0, 4095]) == "0,4095"
    assert not vlans.format([5]).endswith("\n")


def test_format_rejects_what_the_map_cannot_hold():
    for bad in ([-1], [4096], [2, 10**9]):
        with pytest.raises(ValueError):
            vlans.format(bad)
    for bad in (["5"], [5.0], [None]):
        with pytest.raises(TypeError):
            vlans.format(bad)


# --------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------

vids = st.integers(vlans.VID_MIN, vlans.VID_MAX)


@st.composite
def vid_sets(draw) -> frozenset[int]:
    """Sparse sets, and sets made of runs (so long ranges show up too)."""
    if draw(st.booleans()):
        return frozenset(draw(st.sets(vids, max_size=64)))
    out: set[int] = set()
    for a, b in draw(st.lists(st.tuples(vids, vids), max_size=12)):
        out.update(range(min(a, b), max(a, b) + 1))
    return frozenset(out)


def reference_format(ids) -> str:
    """Independent %*pbl: group consecutive ids by (id - position)."""
    out = []
    for _, run in itertools.groupby(enumerate(sorted(set(ids))), lambda p: p[1] - p[0]):
        run = [v for _, v in run]
        out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(out)


@PROPS
@given(vid_sets())
def test_round_trip(ids):
    assert vlans.parse(vlans.format(ids)) == ids
    assert vlans.parse(vlans.format(ids) + "\n") == ids


@PROPS
@given(vid_sets(), st.integers(0, 2**32))
def test_format_is_canonical(ids, seed):
    text = vlans.format(ids)
    assert text == reference_format(ids)
    shuffled = list(ids) * 2
    random.Random(seed).shuffle(shuffled)
    assert vlans.format(shuffled) == text
    if not ids:
        assert text == ""
        return
    assert text.strip() == text and " " not in text and ",," not in text
    runs = []
    for region in text.split(","):
        a, _, b = region.partition("-")
        assert a == str(int(a)) and (not b or b == str(int(b)))
        lo, hi = int(a), int(b or a)
        assert lo < hi if b else lo == hi  # a-b only for runs of >= 2
        runs.append((lo, hi))
    for (_, hi), (lo, _) in itertools.pairwise(runs):
        assert hi + 1 < lo  # sorted, disjoint, merged
    assert sum(hi - lo + 1 for lo, hi in runs) == len(ids)


GARBAGE_CHARS = "0123456789-:/,N aAlL\t\n\0x+.\xa0\u0663"


@PROPS
@given(st.one_of(st.text(alphabet=GARBAGE_CHARS, max_size=40), st.text(max_size=40)))
def test_garbage_parses_or_fails_like_the_kernel(text):
    try:
        result = vlans.parse(text)
    except OSError as exc:
        assert type(exc) is OSError
        assert exc.errno in KERNEL_ERRNOS
        outcome = exc.errno
    else:
        assert isinstance(result, frozenset)
        assert all(vlans.VID_MIN <= v <= vlans.VID_MAX for v in result)
        assert vlans.parse(vlans.format(result)) == result
        outcome = result
    # Anything after a NUL is never read.
    try:
        again = vlans.parse(text.partition("\0")[0] + "\0" + text)
    except OSError as exc:
        again = exc.errno
    assert again == outcome


@st.composite
def regions(draw) -> tuple[str, set[int]]:
    """A well-formed region and the set it must give (computed directly)."""
    a, b = sorted((draw(vids), draw(vids)))
    kind = draw(st.sampled_from(["one", "range", "stride"]))
    if kind == "one":
        return str(a), {a}
    if kind == "range":
        return f"{a}-{b}", set(range(a, b + 1))
    group = draw(st.integers(1, b - a + 2))
    used = draw(st.integers(0, group))
    return (f"{a}-{b}:{used}/{group}", {v for v in range(a, b + 1) if (v - a) % group < used})


separators = st.text(alphabet=", \t\r\v\f", min_size=1, max_size=3)


@PROPS
@given(st.lists(regions(), min_size=1, max_size=8), st.data())
def test_regions_order_and_repetition_do_not_matter(regs, data):
    expected = set().union(*(want for _, want in regs))
    texts = [text for text, _ in regs]

    def join(items: list[str]) -> str:
        lead = data.draw(st.sampled_from(["", ",", " ", " ,\t"]))
        seps = data.draw(st.lists(separators, min_size=len(items), max_size=len(items)))
        return lead + "".join(i + s for i, s in zip(items, seps, strict=True))

    assert vlans.parse(join(texts)) == expected
    permuted = data.draw(st.permutations(texts))
    assert vlans.parse(join(permuted)) == expected
    extra = data.draw(st.lists(st.sampled_from(texts), max_size=8))
    assert vlans.parse(join(permuted + extra)) == expected


@SMALL
@given(vid_sets(), st.sampled_from(["0", "1", "4095", "N", "0-3", "all"]))
def test_any_reserved_vid_poisons_the_list(ids, reserved):
    text = ",".join(x for x in (vlans.format(ids), reserved) if x)
    assert errno_of(text) == EINVAL
