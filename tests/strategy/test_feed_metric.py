"""``xorj_strategy_feed_age_seconds`` from the feed's published status, against the localnet's quant engine."""

from __future__ import annotations

import time

from supervisors import Runtime
from tests.helpers import wait_until
from tests.strategy.conftest import MANUAL, QUANT_KEY, QUANT_KEY_ENV, FakeClock
from xorj_actors.kill_switch import HaltBoard
from xorj_actors.localnet import Localnet
from xorj_actors.metrics import Metrics
from xorj_actors.strategy import GetStrategyStatus, StrategyBoard, StrategyFeed, StrategyStatus


def test_the_age_restarts_at_each_good_response(runtime: Runtime, localnet: Localnet, start_feed) -> None:
    metrics = Metrics()
    metrics.watch(runtime, HaltBoard())

    def age() -> float:
        return metrics.registry.get_sample_value("xorj_strategy_feed_age_seconds")

    feed = start_feed(localnet, real_clock=True)
    ok_at = feed.status().last_ok_at
    before = time.time()
    first = age()
    assert before - ok_at <= first <= time.time() - ok_at
    wait_until(lambda: age() > first + 0.2, what="the age growing between polls")
    assert feed.refresh().last_ok_at > ok_at
    assert age() < first + 0.2  # a good response: fresh again


def test_a_feed_that_never_gets_a_good_answer_ages_from_the_first_start_across_restarts(
    runtime: Runtime, clock: FakeClock
) -> None:
    """Restarted (the supervisor's new feed on the engine's board) without a good answer: the age
    counts from the first feed's start, so it reaches the stale threshold all the same."""
    board = StrategyBoard(MANUAL.stale_after_s, clock=clock)
    mints = {"So11111111111111111111111111111111111111112": 9}

    def start() -> StrategyStatus:  # nothing listens on port 9: every poll fails
        ref = StrategyFeed.start(HaltBoard(), MANUAL, board, "http://127.0.0.1:9", mints, {QUANT_KEY_ENV: QUANT_KEY},
                                 "development", clock=clock)
        wait_until(lambda: (s := ref.ask(GetStrategyStatus(), timeout=5)).polls >= 1 and not s.polling, what="a poll")
        status = ref.ask(GetStrategyStatus(), timeout=5)
        ref.stop()
        return status

    first = start()
    assert first.last_ok_at is None
    clock.advance(MANUAL.stale_after_s / 2)
    again = start()
    assert again.last_ok_at is None and again.started_at == first.started_at
