"""audit_event serialises the details once, canonically: the same text the old round trip made."""

from __future__ import annotations

import datetime as dt
import enum
import json
from decimal import Decimal
from typing import Any

import pytest

from xorj_actors.audit import audit_event
from xorj_actors.audit._chain import CanonicalDetails, canonical_json
from xorj_actors.audit._request import validated as _validated


class _Side(str, enum.Enum):
    BUY = "buy"


class _Level(enum.IntEnum):
    HIGH = 3


def _round_trip(details: dict[str, Any]) -> str:
    """What the Audit actor and the log made before: dumps, loads, canonical dump."""
    return canonical_json(json.loads(json.dumps(dict(details), sort_keys=True, default=str, allow_nan=False)))


CASES = [
    {},
    {"b": 1, "a": [1, 2.5, None, True], "c": {"z": "é", "y": (1, 2)}},
    {"price": Decimal("1.2345"), "side": _Side.BUY, "level": _Level.HIGH, "big": 10**30},
    {"when": dt.datetime(2026, 1, 2, 3, 4, 5), "nan_decimal": Decimal("NaN")},
    {"ints": {10: "a", 9: "b"}},  # non-str keys: sorted as text, as the round trip did
    {"nested": {"deep": [{"k": 1e-7}, {"k": -0.0}]}, "ünï": "\u2603"},
]


@pytest.mark.parametrize("details", CASES)
def test_same_text_as_the_round_trip(details: dict[str, Any]) -> None:
    event = audit_event("TRADE_EXECUTION", "x", details)
    assert event.canonical
    assert event.details_json == _round_trip(details)
    stored = _validated("TRADE_EXECUTION", "INFO", "x", None, CanonicalDetails(event.details_json))[4]
    assert stored == _validated("TRADE_EXECUTION", "INFO", "x", None, json.loads(event.details_json))[4]


def test_refusals_unchanged() -> None:
    with pytest.raises(ValueError):
        audit_event("TRADE_EXECUTION", "x", {"v": float("nan")})
    with pytest.raises(TypeError):
        audit_event("TRADE_EXECUTION", "x", {"v": {1: "a", "b": 2}})


def test_lone_surrogate_still_refused_by_the_log() -> None:
    event = audit_event("TRADE_EXECUTION", "x", {"v": "\ud800"})
    with pytest.raises(ValueError):
        _validated("TRADE_EXECUTION", "INFO", "x", None, CanonicalDetails(event.details_json))
