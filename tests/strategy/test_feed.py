"""The StrategyFeed against the localnet's real quant engine: publication, rejections, staleness,
refresh on demand, the halt, start-up refusals. Audit entries are read from the real audit trail."""

from __future__ import annotations

import dataclasses
import re
import threading
from typing import Any

import pytest

from supervisors import ChildSpec, Fault, Runtime, Strategy, Supervisor, inject_fault
from tests.helpers import wait_until
from tests.plugins.localnet import start_localnet
from tests.strategy.conftest import (
    MANUAL,
    MINTS,
    QUANT_KEY,
    QUANT_KEY_ENV,
    AuditTrail,
    FakeClock,
    mints_of,
    quant_admin,
    quant_ranked,
)
from xorj_actors.kill_switch import HaltBoard
from xorj_actors.localnet import Localnet
from xorj_actors.strategy.settings import DEV_QUANT_API_KEY
from xorj_actors.messages import Halt, HaltMode
from xorj_actors.strategy import (
    DEFAULT_PROFILES,
    STRATEGY_FEED_NAME,
    RefreshStrategy,
    StrategyBoard,
    StrategyFeed,
    StrategyFeedError,
    StrategySettings,
)


def test_a_good_poll_publishes_the_engines_ranking(localnet: Localnet, start_feed, audit: AuditTrail) -> None:
    feed = start_feed(localnet)
    snap = feed.board.latest
    assert snap is not None and feed.board.fresh()
    served = quant_ranked(localnet)  # manual clock: the same round, the same data
    assert (snap.round, snap.scenario, snap.version) == (served["round"], served["scenario"], served["version"])
    assert snap.fetched_at == feed.clock()
    assert len(snap.traders) == len(served["traders"]) == localnet.settings.quant.traders
    for got, want in zip(snap.traders, served["traders"]):
        assert (got.rank, got.wallet, got.trust_score) == (want["rank"], want["walletAddress"], want["trustScore"])
        assert [(a.mint, a.weight) for a in got.allocation] == [(a["mint"], a["weight"]) for a in want["targetAllocation"]]
        assert (got.roi, got.sharpe_ratio, got.trade_count) == (
            want["metrics"]["roi"], want["metrics"]["sharpeRatio"], want["metrics"]["tradeCount"])
    status = feed.status()
    assert (status.round, status.fresh, status.polls, status.rejections, status.last_error) == (snap.round, True, 1, 0, None)
    assert status.last_ok_at == snap.fetched_at

    (entry,) = audit.wait_for(lambda e: e["details"].get("event") == "strategy_round", what="round audited")
    assert entry["event_type"] == "SYSTEM_EVENT" and entry["correlation_id"].endswith("-1")
    d = entry["details"]
    assert (d["round"], d["scenario"], d["traders"]) == (snap.round, snap.scenario, len(snap.traders))
    top = snap.traders[0]
    for profile in DEFAULT_PROFILES:
        expected = snap.trader_for(profile)
        assert d["targets"][profile.name]["wallet"] == (expected.wallet if expected else None)
    assert top.trust_score > 95 and d["targets"]["conservative"]["rank"] == 1


def test_accepted_rounds_are_audited_only_when_the_round_changes(localnet: Localnet, start_feed, audit: AuditTrail) -> None:
    feed = start_feed(localnet)
    first = feed.board.latest
    feed.refresh()
    feed.refresh()
    second = feed.board.latest
    assert second is not first and second.round == first.round  # re-published: fresher fetched_at
    quant_admin(localnet, "/admin/advance", {"rounds": 1})
    feed.refresh()
    assert feed.board.latest.round == first.round + 1
    rounds = audit.wait_for(lambda e: e["details"].get("event") == "strategy_round", 2, "two rounds audited")
    wait_until(lambda: len(audit.entries()) >= 3, what="the fresh transition")  # fresh + two rounds
    assert [e["details"]["round"] for e in rounds] == [first.round, first.round + 1]
    assert [e["correlation_id"][-2:] for e in rounds] == ["-1", "-4"]
    assert len(audit.events("strategy_fresh")) == 1
    assert feed.status().polls == 4


#: mode -> (rejection kind, a pattern the reason must match)
BAD_DATA = {
    "negative_weights": ("invalid_data", r"traders\[0\]\.targetAllocation\[\d+\]\.weight: -0\.25 is not in \(0, 1\]"),
    "weights_not_summing": ("invalid_data", r"traders\[0\]\.targetAllocation: weights sum to 0\.(8|79)\d*, not 1 within 1e-06"),
    "unknown_mint": ("invalid_data", r"traders\[0\]\.targetAllocation\[0\]\.mint: '\w+' is not a mint the engine trades"),
    "nan": ("invalid_data", r"not strict JSON: NaN is not a JSON value"),
    "http_500": ("http_status", r"HTTP 500: \{\"error\": \"internal server error\"\}"),
    "timeout": ("timeout", r"no complete answer within 0\.5 s"),
    "malformed_json": ("invalid_data", r"malformed JSON: "),
}


@pytest.mark.parametrize("mode", sorted(BAD_DATA))
def test_bad_data_is_rejected_whole_and_the_last_good_snapshot_kept(
    localnet: Localnet, start_feed, audit: AuditTrail, logs: list[str], mode: str
) -> None:
    feed = start_feed(localnet, dataclasses.replace(MANUAL, request_timeout_s=0.5))
    good = feed.board.latest
    assert good is not None
    quant_admin(localnet, "/admin/advance", {"rounds": 1})  # the bad answer carries a newer round
    quant_admin(localnet, "/admin/fault", {"mode": mode, "count": 1})

    status = feed.refresh()
    assert feed.board.latest is good  # nothing of the bad answer was published
    kind, pattern = BAD_DATA[mode]
    assert status.rejections == 1 and status.round == good.round and status.fresh
    assert status.last_error is not None and status.last_error.startswith(f"{kind}: ")
    assert re.search(pattern, status.last_error), status.last_error
    (entry,) = audit.wait_for(lambda e: e["event_type"] == "ERROR_EVENT", what="rejection audited")
    assert entry["correlation_id"].endswith("-2") and entry["details"]["kind"] == kind
    assert re.search(pattern, entry["details"]["reason"]) and entry["details"]["kept_round"] == good.round
    assert any("rejected" in line and re.search(pattern, line) for line in list(logs))

    status = feed.refresh()  # the fault served once: good data again
    assert feed.board.latest is not good and feed.board.latest.round == good.round + 1
    assert (status.rejections, status.polls) == (1, 3)


def test_a_wrong_api_key_is_a_rejection_and_is_never_logged(
    localnet: Localnet, start_feed, audit: AuditTrail, logs: list[str]
) -> None:
    wrong = "not-the-quant-key-0451"
    feed = start_feed(localnet, environ={QUANT_KEY_ENV: wrong})
    status = feed.status()
    assert feed.board.latest is None and not status.fresh and status.rejections == 1
    assert status.last_error.startswith("http_status: HTTP 401 (API key refused)")
    (entry,) = audit.wait_for(lambda e: e["event_type"] == "ERROR_EVENT", what="401 audited")
    assert "401" in entry["details"]["reason"]
    assert not any(wrong in line or QUANT_KEY in line for line in list(logs))


def test_development_falls_back_to_the_public_dev_key(
    monkeypatch: pytest.MonkeyPatch, start_feed, logs: list[str]
) -> None:
    monkeypatch.delenv(QUANT_KEY_ENV)
    ln = start_localnet()  # serves the dev key, as `make run` does
    try:
        feed = start_feed(ln, environ={})
        assert feed.board.latest is not None and feed.status().rejections == 0
        assert any("using the public DEVELOPMENT quant API key" in line for line in list(logs))
        assert not any(DEV_QUANT_API_KEY in line for line in list(logs))
    finally:
        ln.stop()


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, r"\$XORJ_QUANT_API_KEY is unset: the quantitative engine's API key is required in production"),
        ({QUANT_KEY_ENV: DEV_QUANT_API_KEY}, r"holds the public development key; refused in production"),
    ],
)
def test_production_refuses_to_start_without_a_real_key(
    localnet: Localnet, runtime: Runtime, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(StrategyFeedError, match=message):
        StrategyFeed.start(HaltBoard(), MANUAL, StrategyBoard(MANUAL.stale_after_s), localnet.urls["quant"],
                           mints_of(localnet), environ, "production")
    assert runtime.whereis(STRATEGY_FEED_NAME) is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "no quant engine URL"),
        ("ftp://quant.internal", "must be http:// or https://"),
        ("https://user:secret@quant.internal", "no credentials in the quant engine URL"),
    ],
)
def test_a_bad_url_is_refused_at_start(runtime: Runtime, url: str, message: str) -> None:
    with pytest.raises(StrategyFeedError, match=message):
        StrategyFeed.start(HaltBoard(), MANUAL, StrategyBoard(MANUAL.stale_after_s), url, MINTS,
                           {QUANT_KEY_ENV: QUANT_KEY}, "development")


def test_an_unknown_environment_is_refused(localnet: Localnet, runtime: Runtime) -> None:
    with pytest.raises(StrategyFeedError, match="environment must be development or production"):
        StrategyFeed.start(HaltBoard(), MANUAL, StrategyBoard(MANUAL.stale_after_s), localnet.urls["quant"],
                           mints_of(localnet), {}, "staging")


def test_every_poll_reports_its_outcome_for_metrics(localnet: Localnet, start_feed) -> None:
    outcomes: list[str] = []
    feed = start_feed(localnet, on_poll=outcomes.append)
    quant_admin(localnet, "/admin/fault", {"mode": "http_500", "count": 1})
    feed.refresh()
    quant_admin(localnet, "/admin/fault", {"mode": "nan", "count": 1})
    feed.refresh()
    feed.refresh()
    assert outcomes == ["ok", "http_status", "invalid_data", "ok"]
    assert set(outcomes) <= {"ok", *StrategyFeed.REJECTION_KINDS}


def test_production_polls_with_its_key(localnet: Localnet, start_feed) -> None:
    feed = start_feed(localnet, environment="production")
    assert feed.board.latest is not None and feed.status().rejections == 0


def test_start_refuses_a_board_that_disagrees_on_staleness(localnet: Localnet, runtime: Runtime) -> None:
    with pytest.raises(StrategyFeedError, match="stale_after_s"):
        StrategyFeed.start(HaltBoard(), MANUAL, StrategyBoard(60.0), localnet.urls["quant"], mints_of(localnet),
                           {QUANT_KEY_ENV: QUANT_KEY}, "development")


def test_staleness_is_detected_logged_and_audited_once_per_transition(
    localnet: Localnet, start_feed, clock: FakeClock, audit: AuditTrail, logs: list[str]
) -> None:
    feed = start_feed(localnet)
    good = feed.board.latest
    conservative = DEFAULT_PROFILES[0]
    clock.advance(MANUAL.stale_after_s - 1)
    assert feed.status().fresh and feed.board.fresh() and feed.board.target_for(conservative).trader is not None

    clock.advance(1)  # no good response for exactly stale_after_s
    assert not feed.board.fresh()
    assert not feed.status().fresh
    target = feed.board.target_for(conservative)
    assert target.trader is None and target.reason.startswith("strategy stale: last good response 7200 s ago")
    assert feed.board.latest is good  # kept: stale data is not thrown away, only not traded on
    quant_admin(localnet, "/admin/fault", {"mode": "http_500", "count": 1})
    status = feed.refresh()  # a rejection while stale stays stale
    assert not status.fresh and status.rejections == 1
    feed.status()
    (stale,) = audit.wait_for(lambda e: e["details"].get("event") == "strategy_stale", what="stale audited")
    assert stale["severity"] == "WARNING" and stale["details"]["age_s"] == MANUAL.stale_after_s
    assert any("strategy STALE" in line for line in list(logs))

    status = feed.refresh()
    assert status.fresh and feed.board.fresh() and feed.board.latest.fetched_at == clock()
    fresh = audit.wait_for(lambda e: e["details"].get("event") == "strategy_fresh", 2, "fresh again audited")
    assert len(fresh) == 2  # the first good answer, then the recovery
    assert len(audit.events("strategy_stale")) == 1


def test_the_feed_notices_staleness_by_itself(localnet: Localnet, start_feed, audit: AuditTrail) -> None:
    """Nothing reaches the feed while its only request hangs: its own timer finds the deadline
    (real clock, short limit; a request that hangs far longer than the limit)."""
    quick = StrategySettings(poll_interval_s=0.3, retry_interval_s=0.1, stale_after_s=0.6, request_timeout_s=4.0)
    feed = start_feed(localnet, quick, real_clock=True)
    assert feed.board.fresh()
    quant_admin(localnet, "/admin/fault", {"mode": "timeout", "count": None})  # every request hangs
    (stale,) = audit.wait_for(lambda e: e["details"].get("event") == "strategy_stale", what="stale noticed")
    # Noticed at the deadline, not when the hung request gave up (4.3 s after the last answer).
    assert stale["details"]["age_s"] < 2.5
    assert feed.status().polling and not feed.board.fresh() and feed.board.latest is not None
    quant_admin(localnet, "/admin/fault", {}, method="DELETE")
    audit.wait_for(lambda e: e["details"].get("event") == "strategy_fresh", 2, "fresh again by polling")
    assert feed.status().rejections == 1


def test_refresh_on_demand_fetches_a_new_round(localnet: Localnet, start_feed) -> None:
    feed = start_feed(localnet)
    first = feed.board.latest.round
    quant_admin(localnet, "/admin/advance", {"rounds": 2})
    assert feed.board.latest.round == first  # nothing polls by itself within the hour
    feed.refresh()
    assert feed.board.latest.round == first + 2


def test_refreshes_during_a_request_are_coalesced_into_one_more(localnet: Localnet, start_feed) -> None:
    feed = start_feed(localnet, dataclasses.replace(MANUAL, request_timeout_s=1.0))
    quant_admin(localnet, "/admin/fault", {"mode": "timeout", "count": 1})
    quant_admin(localnet, "/admin/advance", {"rounds": 1})
    for _ in range(6):  # the first one's request hangs for the whole timeout
        feed.ref.tell(RefreshStrategy(reason="burst"))
    status = feed.settled(3)
    assert status.polls == 3 and status.rejections == 1  # start, the hung one, one queued behind it
    assert status.last_error.startswith("timeout: ")
    assert status.round == feed.board.latest.round and status.fresh


def test_polling_continues_through_a_halt(localnet: Localnet, start_feed) -> None:
    feed = start_feed(localnet)
    first = feed.board.latest.round
    feed.ref.tell(Halt(epoch=1, mode=HaltMode.EMERGENCY, reason="test", source="test"))
    quant_admin(localnet, "/admin/advance", {"rounds": 1})
    feed.refresh()
    assert feed.board.latest.round == first + 1 and feed.status().fresh


def test_stopping_the_feed_ends_its_http_thread(localnet: Localnet, start_feed) -> None:
    feed = start_feed(localnet)
    assert any(t.name == "strategy-feed-http" for t in threading.enumerate())
    feed.ref.stop(block=True, timeout=5)
    wait_until(lambda: not any(t.name == "strategy-feed-http" for t in threading.enumerate()), 5, "http thread to end")


def test_a_crashed_feed_is_restarted_by_its_supervisor_and_polls_again(
    localnet: Localnet, runtime: Runtime, clock: FakeClock, audit: AuditTrail
) -> None:
    board = StrategyBoard(MANUAL.stale_after_s, clock=clock)

    def start() -> Any:
        return StrategyFeed.start(HaltBoard(), MANUAL, board, localnet.urls["quant"], mints_of(localnet),
                                  {QUANT_KEY_ENV: QUANT_KEY}, "development", clock=clock)

    Supervisor.start([ChildSpec(STRATEGY_FEED_NAME, start, shutdown_timeout=5)], strategy=Strategy.ONE_FOR_ONE,
                     max_restarts=3, period=10, name="test-sup")
    wait_until(lambda: board.latest is not None, what="first snapshot")
    first = runtime.whereis(STRATEGY_FEED_NAME)
    quant_admin(localnet, "/admin/advance", {"rounds": 1})
    inject_fault(first, Fault.RAISE)
    wait_until(lambda: (ref := runtime.whereis(STRATEGY_FEED_NAME)) is not None and ref is not first, what="restart")
    wait_until(lambda: board.latest.round == 1, what="the new feed's first poll")
    # The dead feed's loop thread ended with it: one HTTP thread, the new feed's.
    wait_until(lambda: sum(t.name == "strategy-feed-http" for t in threading.enumerate()) == 1, 5, "one http thread")
    rounds = audit.wait_for(lambda e: e["details"].get("event") == "strategy_round", 2, "both rounds audited")
    assert [e["details"]["round"] for e in rounds] == [0, 1]
    assert len(audit.events("strategy_fresh")) == 1  # the new feed took the fresh board over
