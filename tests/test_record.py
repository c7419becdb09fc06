"""evl_core.record against the standard library's dataclasses, the oracle: the same classes, the same answers.

Every case defines one family of classes through a factory taking the decorator
and the field specifier, once with ``dataclasses`` and once with ``record``,
and compares what users of the classes observe.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
import subprocess
import sys
import weakref
from pathlib import Path
from typing import ClassVar

import pytest

from evl_core import record as rec


def family(decorate, field):
    @decorate
    class Base:
        x: int
        y: list[int] = field(default_factory=list)
        z: str = "q"
        K: ClassVar[int] = 3

        def total(self) -> int:
            return self.x + len(self.y)

    @decorate
    class Sub(Base):
        z: str = "overridden"  # keeps its place in the order, as dataclasses does
        w: int | None = None

        def total(self) -> int:
            return super().total() + 100

    @decorate(frozen=True)
    class Point:
        a: int
        b: int = 0

    @decorate
    class Post:
        a: int
        doubled: int = 0

        def __post_init__(self) -> None:
            self.doubled = self.a * 2

    @decorate
    class OwnRepr:
        a: int

        def __repr__(self) -> str:
            return "mine"

    return Base, Sub, Point, Post, OwnRepr


@rec.record(frozen=True)
class Pickled:
    a: int
    b: tuple[int, ...] = ()


DC = family(dataclasses.dataclass, dataclasses.field)
RC = family(rec.record, rec.field)


def names(kind) -> list[str]:
    return [f.name for f in rec.fields(kind)]


@pytest.mark.parametrize("i", range(5))
def test_fields_in_the_same_order(i):
    assert names(RC[i]) == [f.name for f in dataclasses.fields(DC[i])]


def test_construction_equality_repr_and_methods():
    for Base, Sub, Point, Post, OwnRepr in (DC, RC):
        a, b = Base(1), Base(1)
        assert a == b and a != Base(2) and a.y is not b.y  # a factory per instance
        assert Base(1, [2], "r") == Base(x=1, y=[2], z="r")
        assert Sub(1, [2, 3]).total() == 103  # super() works in a rebuilt class
        assert Sub(1).z == "overridden" and Sub(1, [], "a", 5).w == 5
        assert Base.K == 3 and "K" not in names(Base)
        assert Post(4).doubled == 8
        assert repr(OwnRepr(1)) == "mine"
        assert hash(Point(1, 2)) == hash(Point(1, 2))
        with pytest.raises(TypeError):
            hash(Base(1))  # eq without frozen: unhashable
        with pytest.raises(TypeError):
            Base()  # x is required
        with pytest.raises(TypeError):
            Base(1, [], "z", "extra")
    assert repr(RC[0](1, [2])) == "Base(x=1, y=[2], z='q')"
    assert repr(DC[0](1, [2])).endswith("Base(x=1, y=[2], z='q')")


def test_frozen():
    for Point, error in ((DC[2], dataclasses.FrozenInstanceError), (RC[2], rec.FrozenInstanceError)):
        p = Point(1)
        with pytest.raises(error):
            p.a = 2
        with pytest.raises(AttributeError):
            del p.a
        assert copy.copy(p) == p and copy.deepcopy(p) == p
    frozen = Pickled(1, (2, 3))
    assert pickle.loads(pickle.dumps(frozen)) == frozen


def test_copy_pickle_replace_match_weakref():
    Base = RC[0]
    a = Base(1, [2])
    assert copy.deepcopy(a) == a
    assert rec.replace(a, z="n") == Base(1, [2], "n")
    assert rec.replace(DC[0](1), z="n") == DC[0](1, [], "n")  # a real dataclass too
    with pytest.raises(TypeError):
        rec.replace(a, nope=1)
    assert Base.__match_args__ == DC[0].__match_args__
    match a:
        case Base(1, [2], z):
            assert z == "q"
        case _:
            pytest.fail("no match")
    assert weakref.ref(a)() is a
    assert rec.is_record(a) and rec.is_record(DC[0]) and not rec.is_record(object())


def test_what_dataclasses_refuse_is_refused():
    with pytest.raises(ValueError, match="mutable default"):

        @rec.record
        class Shared:
            tags: list[str] = []  # noqa: RUF012

    with pytest.raises(TypeError, match="without a default"):

        @rec.record
        class Order:
            a: int = 0
            b: int

    with pytest.raises(TypeError, match="non-frozen"):

        @rec.record
        class Thaw(RC[2]):  # type: ignore[misc]
            c: int = 0

    with pytest.raises(ValueError, match="not both"):
        rec.field(default=1, default_factory=int)


def test_a_field_may_be_named_like_the_generated_codes_helpers():
    @rec.record(frozen=True)
    class Odd:
        setter: int
        MISSING: int = 1
        default0: int = 2

    assert (Odd(5).setter, Odd(5).MISSING, Odd(5, 0, 9).default0) == (5, 1, 9)


def test_defining_records_imports_nothing():
    """The point of the module: no dataclasses, typing or inspect on import or definition."""
    code = (
        "import sys\n"
        "from evl_core.record import record, field\n"
        "@record\n"
        "class A:\n"
        "    x: int\n"
        "    y: list = field(default_factory=list)\n"
        "A(1)\n"
        "print(sorted(m for m in ('dataclasses', 'typing', 'inspect') if m in sys.modules))\n"
    )
    root = str(Path(__file__).resolve().parent.parent)
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, env={"PYTHONPATH": root})
    assert out.stdout == "[]\n", out.stderr
