"""The DrawdownMonitor's state file format and trigger episodes, without an actor (milliseconds)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from xorj_actors.risk._drawdown_state import CorruptState, DrawdownState, Episode, decode_state, encode_state

STATE = DrawdownState(
    index=0.9, peak=1.0, day=20_523, day_index=0.95, peak_usd_at_zero=100_000.0, day_usd_at_zero=95_000.0,
    drawdown=(False, 0.0), daily_loss=(True, 0.11), vaults={"vault-0000": (25_000.0, 1000.5)},
)


def test_the_state_survives_a_round_trip_as_compact_json() -> None:
    text = encode_state(STATE, saved_at=1234.5)
    assert decode_state(text) == STATE
    data = json.loads(text)
    assert list(data)[:2] == ["version", "saved_at"] and data["version"] == 1 and data["saved_at"] == 1234.5
    assert data["vaults"] == {"vault-0000": [25_000.0, 1000.5]} and " " not in text


def test_a_non_finite_figure_cannot_be_written() -> None:
    with pytest.raises(ValueError):
        encode_state(dataclasses.replace(STATE, index=float("nan")), saved_at=0.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 2}, "not a version 1 state"),
        ({"peak": -1}, "peak: -1"),
        ({"index": 1.5}, "index 1.5 above peak 1.0"),
        ({"day": "today"}, "day: 'today'"),
        ({"drawdown": [1, 0.2]}, "drawdown: [1, 0.2]"),
        ({"vaults": []}, "vaults: not an object"),
        ({"vaults": {"v": [1.0]}}, "vault 'v': [1.0]"),
        ({"vaults": {"v": [-1.0, 0.0]}}, "vault v value: -1.0"),
        ({"day_usd_at_zero": None}, "day_usd_at_zero: None"),
    ],
)
def test_anything_the_monitor_would_not_write_is_corrupt(change: dict, message: str) -> None:
    data = json.loads(encode_state(STATE, saved_at=0.0)) | change
    with pytest.raises(CorruptState) as err:
        decode_state(json.dumps(data))
    assert str(err.value) == message


def test_missing_fields_and_text_that_is_not_json_are_refused() -> None:
    data = json.loads(encode_state(STATE, saved_at=0.0))
    del data["peak"]
    with pytest.raises(KeyError):
        decode_state(json.dumps(data))
    with pytest.raises(ValueError):
        decode_state("{not json")


def test_an_episode_fires_on_breach_on_each_step_and_rearms_below_the_margin() -> None:
    e = Episode(0.15)
    assert e.update(0.149, margin=0.01, step=0.05) is None
    assert e.update(0.15, margin=0.01, step=0.05) == "breach" and (e.latched, e.level) == (True, 0.15)
    assert e.update(0.19, margin=0.01, step=0.05) is None
    assert e.update(0.20, margin=0.01, step=0.05) == "escalation" and e.level == 0.20
    assert e.update(0.141, margin=0.01, step=0.05) is None and e.latched, "within the margin: still latched"
    assert e.update(0.139, margin=0.01, step=0.05) is None and not e.latched
    assert e.update(0.15, margin=0.01, step=0.05) == "breach"
