"""The feed's staleness rules, pure: which round may replace the accepted one, when to check again."""

from __future__ import annotations

import pytest

from xorj_actors.strategy import StrategySnapshot
from xorj_actors.strategy._staleness import RoundVerdict, round_verdict, stale_check_delay


def snapshot(round: int, generated_at: str, scenario: str = "rotation") -> StrategySnapshot:
    return StrategySnapshot(round=round, scenario=scenario, generated_at=generated_at, fetched_at=0.0, traders=())


LATEST = snapshot(5, "2026-11-21T20:00:00Z")


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        (snapshot(6, "2026-11-21T19:00:00Z"), RoundVerdict.ACCEPT),  # later round: whatever its time
        (snapshot(5, "2026-11-21T20:00:00Z"), RoundVerdict.ACCEPT),  # the same round again
        (snapshot(3, "2026-11-21T20:00:00+00:00"), RoundVerdict.OLD),  # not generated later: a replay
        (snapshot(3, "2026-11-21T19:59:59Z"), RoundVerdict.OLD),
        (snapshot(2, "2026-11-21T20:00:01Z"), RoundVerdict.RESTARTED),  # generated later: a restart
        (snapshot(1, "2026-11-21T10:00:00Z", scenario="risk_off"), RoundVerdict.ACCEPT),  # another scenario
    ],
)
def test_round_verdict(answer: StrategySnapshot, verdict: RoundVerdict) -> None:
    assert round_verdict(answer, LATEST) is verdict


def test_the_first_answer_is_accepted() -> None:
    assert round_verdict(snapshot(1, "2026-11-21T20:00:00Z"), None) is RoundVerdict.ACCEPT


def test_the_stale_check_fires_a_hair_after_the_snapshot_goes_stale_never_before() -> None:
    assert stale_check_delay(10.0, 60.0) == pytest.approx(50.05)
    assert stale_check_delay(60.0, 60.0) == pytest.approx(0.05)
    assert stale_check_delay(75.0, 60.0) == pytest.approx(0.05)  # already stale: check at once
