"""The last minute's trades: what the ``trades`` command (and ``xorj-actors top``) shows."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from xorj_actors.ops import TradeWindow


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_outcomes_rate_and_confirmed_percentiles_cover_the_last_window_only() -> None:
    clock = Clock()
    w = TradeWindow(60.0, clock=clock)
    w.record("failed", 9.0)  # leaves the window below
    clock.now += 30
    for i in range(1, 101):  # 1 .. 100 ms ... s: p50 50 s, p99 99 s (nearest rank)
        w.record("confirmed", float(i))
    w.record("rejected", 0.5)
    clock.now += 40  # the failure is now 70 s old

    snap = w.snapshot()

    assert snap["outcomes"] == {"confirmed": 100, "rejected": 1}
    assert snap["confirmed_p50_s"] == 50.0
    assert snap["confirmed_p99_s"] == 99.0
    assert snap["rate_per_s"] == pytest.approx(101 / 60, abs=1e-3)
    assert snap["total"] == 102
    assert snap["covered_s"] == 60.0


def test_a_young_window_counts_its_rate_over_the_time_since_the_start() -> None:
    clock = Clock()
    w = TradeWindow(60.0, clock=clock)
    clock.now += 4
    for _ in range(2):
        w.on_outcome(SimpleNamespace(status="confirmed"), 1.25)

    snap = w.snapshot()

    assert snap["rate_per_s"] == 0.5
    assert snap["covered_s"] == 4.0
    assert snap["confirmed_p50_s"] == snap["confirmed_p99_s"] == 1.25


def test_without_a_confirmed_trade_the_percentiles_are_null() -> None:
    w = TradeWindow(clock=Clock())
    w.record("failed", 3.0)
    snap = w.snapshot()
    assert (snap["confirmed_p50_s"], snap["confirmed_p99_s"]) == (None, None)
    assert snap["outcomes"] == {"failed": 1}


def test_after_calls_the_metrics_hook_then_records() -> None:
    seen: list[tuple[str, float]] = []
    w = TradeWindow(clock=Clock())
    hook = w.after(lambda outcome, seconds: seen.append((outcome.status, seconds)))
    hook(SimpleNamespace(status="expired"), 2.0)
    assert seen == [("expired", 2.0)]
    assert w.snapshot()["outcomes"] == {"expired": 1}


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_a_window_that_is_not_a_positive_duration_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="window_s"):
        TradeWindow(bad)
