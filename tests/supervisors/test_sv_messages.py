"""Messages are immutable all the way down: property-based checks with hypothesis."""

from __future__ import annotations

import copy
import dataclasses
import datetime
import enum
import pickle
import typing
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supervisors import Message, MessageDefinitionError


class Side(enum.Enum):
    BUY = "buy"
    SELL = "sell"


class Leaf(Message):
    amount: Decimal
    side: Side


# (annotation, strategy of valid values, a mutable value of the wrong kind for it)
IMMUTABLE_FIELD_TYPES = [
    (int, st.integers(), [1]),
    (str, st.text(max_size=20), bytearray(b"x")),
    (bytes, st.binary(max_size=20), bytearray(b"x")),
    (bool, st.booleans(), {"a": 1}),
    (Decimal, st.decimals(allow_nan=False, allow_infinity=False), [Decimal(1)]),
    (Side, st.sampled_from(Side), {"side"}),
    (float, st.floats(allow_nan=False), [1.0]),
    (tuple[int, ...], st.lists(st.integers(), max_size=5).map(tuple), [1, 2]),
    (frozenset[str], st.frozensets(st.text(max_size=5), max_size=5), {"a"}),
    (tuple[str, int], st.tuples(st.text(max_size=5), st.integers()), ["a", 1]),
    (int | None, st.one_of(st.none(), st.integers()), []),
    (Leaf, st.builds(Leaf, st.decimals(allow_nan=False, allow_infinity=False), st.sampled_from(Side)), {}),
    (tuple[Leaf, ...], st.lists(st.builds(Leaf, st.just(Decimal(1)), st.just(Side.BUY)), max_size=3).map(tuple), [Leaf(Decimal(1), Side.BUY)]),
    (datetime.datetime, st.datetimes(), [datetime.datetime(2026, 1, 1)]),
]
MUTABLE_FIELD_TYPES = [
    list[int],
    dict[str, int],
    set[int],
    bytearray,
    typing.Any,
    object,
    tuple[list[int], ...],
    frozenset[bytearray],
    int | list[int],
    typing.Mapping[str, int],
]

_counter = iter(range(10**9))


def define(fields: list[tuple[str, object]]) -> type[Message]:
    """Define a message class at run time, as a module would at import time."""
    name = f"Generated{next(_counter)}"
    cls = type(name, (Message,), {"__annotations__": dict(fields), "__module__": __name__})
    globals()[name] = cls  # importable by name, so pickle finds it
    return cls


field_specs = st.lists(st.sampled_from(range(len(IMMUTABLE_FIELD_TYPES))), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), picks=field_specs)
def test_messages_of_immutable_fields_are_frozen_values(data, picks) -> None:
    cls = define([(f"f{i}", IMMUTABLE_FIELD_TYPES[p][0]) for i, p in enumerate(picks)])
    values = [data.draw(IMMUTABLE_FIELD_TYPES[p][1]) for p in picks]
    msg = cls(*values)
    assert not hasattr(msg, "__dict__"), "messages are slotted"
    # Every field refuses assignment and deletion; no new attribute can be added.
    for i in range(len(picks)):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(msg, f"f{i}", values[i])
        with pytest.raises(dataclasses.FrozenInstanceError):
            delattr(msg, f"f{i}")
    with pytest.raises((AttributeError, TypeError)):
        msg.extra = 1  # type: ignore[attr-defined]
    # Values: equal to a rebuilt copy, hashable when their fields are, copies are the same object.
    assert msg == cls(*values)
    assert copy.copy(msg) is msg and copy.deepcopy(msg) is msg
    assert pickle.loads(pickle.dumps(msg)) == msg
    if not any(isinstance(v, float) and v != v for v in values):
        hash(msg)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), picks=field_specs, victim=st.integers(min_value=0, max_value=5))
def test_a_mutable_value_is_refused_at_construction(data, picks, victim) -> None:
    cls = define([(f"f{i}", IMMUTABLE_FIELD_TYPES[p][0]) for i, p in enumerate(picks)])
    values = [data.draw(IMMUTABLE_FIELD_TYPES[p][1]) for p in picks]
    victim %= len(picks)
    values[victim] = IMMUTABLE_FIELD_TYPES[picks[victim]][2]
    with pytest.raises(TypeError, match=f"f{victim}"):
        cls(*values)


@pytest.mark.parametrize("annotation", MUTABLE_FIELD_TYPES, ids=str)
def test_a_mutable_field_type_fails_when_the_class_is_defined(annotation) -> None:
    with pytest.raises(MessageDefinitionError):
        define([("ok", int), ("bad", annotation)])


def test_defaults_must_be_immutable_and_factories_are_refused() -> None:
    with pytest.raises(MessageDefinitionError):
        type("BadDefault", (Message,), {"__annotations__": {"x": tuple[int, ...]}, "x": [1], "__module__": __name__})
    with pytest.raises(MessageDefinitionError):
        type(
            "BadFactory",
            (Message,),
            {"__annotations__": {"x": tuple[int, ...]}, "x": dataclasses.field(default_factory=tuple), "__module__": __name__},
        )


def test_subclasses_inherit_fields_and_checks() -> None:
    class Base(Message):
        a: int

    class Child(Base):
        b: tuple[str, ...] = ()

    assert Child(1, ("x",)).b == ("x",)
    with pytest.raises(TypeError):
        Child(1, ["x"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Child("1")  # type: ignore[arg-type]
