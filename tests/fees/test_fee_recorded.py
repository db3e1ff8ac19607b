"""Recorded answers from the providers' documentation parse, and our requests match their shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from xorj_actors.fees import FeeUnavailable, PriorityLevel, parse_estimate, parse_levels, parse_recent_fees

DATA = Path(__file__).resolve().parents[1] / "data" / "helius"


def recorded(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text())


def test_documented_estimates_parse_as_whole_micro_lamports() -> None:
    assert parse_estimate(recorded("estimate_recommended.json")["response"]["result"]) == 33_549
    assert parse_estimate(recorded("estimate_api_reference.json")["response"]["result"]) == 120_000


def test_documented_levels_parse_into_every_level() -> None:
    levels = parse_levels(recorded("estimate_all_levels.json")["response"]["result"])
    assert levels == {
        PriorityLevel.MIN: 0,
        PriorityLevel.LOW: 0,
        PriorityLevel.MEDIUM: 1,
        PriorityLevel.HIGH: 26_824,
        PriorityLevel.VERY_HIGH: 1_124_014,
        PriorityLevel.UNSAFE_MAX: 530_175_841,
    }


def test_documented_recent_fees_parse_oldest_slot_first() -> None:
    result = recorded("recent_prioritization_fees.json")["response"]["result"]
    assert parse_recent_fees(list(reversed(result))) == (0, 1_000, 500, 0, 1_234)


def test_level_keys_are_the_documented_ones() -> None:
    documented = recorded("estimate_all_levels.json")["response"]["result"]["priorityFeeLevels"]
    assert [level.key for level in PriorityLevel] == list(documented)
    request = recorded("estimate_all_levels.json")["request"]["params"][0]
    assert set(request) == {"accountKeys", "options"}


@pytest.mark.parametrize(
    "result",
    [
        {},
        {"priorityFeeEstimate": None},
        {"priorityFeeEstimate": -1},
        {"priorityFeeEstimate": True},
        {"priorityFeeEstimate": "120000"},
    ],
)
def test_an_unusable_estimate_is_refused(result: Any) -> None:
    with pytest.raises(FeeUnavailable):
        parse_estimate(result)


def test_levels_missing_one_are_refused() -> None:
    levels = dict(recorded("estimate_all_levels.json")["response"]["result"]["priorityFeeLevels"])
    del levels["veryHigh"]
    with pytest.raises(FeeUnavailable, match="missing veryHigh"):
        parse_levels({"priorityFeeLevels": levels})


@pytest.mark.parametrize("result", [None, [{"slot": 1}], [{"slot": "1", "prioritizationFee": 0}], {"slot": 1}])
def test_unusable_recent_fees_are_refused(result: Any) -> None:
    with pytest.raises(FeeUnavailable):
        parse_recent_fees(result)


@pytest.mark.parametrize(
    ("result", "fees"),
    [
        ([{"slot": 3, "prioritizationFee": 7}, {"slot": 3, "prioritizationFee": 5}], (5, 7)),  # a repeated slot: by fee
        ([{"slot": 2, "prioritizationFee": 1}, {"slot": 1, "prioritizationFee": 2.5}], (3, 1)),  # a float: rounded up
        ([{"slot": 1, "prioritizationFee": 1, "extra": None}], (1,)),
        ([], ()),
    ],
)
def test_the_column_path_and_the_row_loop_agree(result: list[dict[str, object]], fees: tuple[int, ...]) -> None:
    assert parse_recent_fees(result) == fees


@pytest.mark.parametrize("row", [None, "slot", [1, 2], 7, {"slot": 1}, {"slot": True, "prioritizationFee": 1}, {"slot": 1, "prioritizationFee": -1}])
def test_a_bad_row_is_named_whichever_path_sees_it(row: object) -> None:
    with pytest.raises(FeeUnavailable, match=r"getRecentPrioritizationFees\[1\]"):
        parse_recent_fees([{"slot": 1, "prioritizationFee": 1}, row])
