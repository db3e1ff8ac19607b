"""``xorj_strategy_feed_age_seconds`` from the feed's published status, against the localnet's quant engine."""

from __future__ import annotations

import time

from supervisors import Runtime
from tests.helpers import wait_until
from xorj_actors.kill_switch import HaltBoard
from xorj_actors.localnet import Localnet
from xorj_actors.metrics import Metrics


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
