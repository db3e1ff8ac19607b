"""The SLIs of docs/SLO.md (issue 18): the counters the error-budget rules read, fed where the
event is decided (the executor's outcome hook, the kill switch's "halt complete" event), and a real
engine's halt counted within its ack deadline."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.ops.conftest import ENGINE_ENV, Api
from tests.ops.test_metrics_scrape import scrape, value
from tests.plugins.engine import wait_until
from xorj_actors.execution import TradeOutcome, TradeStatus
from xorj_actors.metrics import HALT_RESULTS, LANDING_RESULTS, Metrics


def _samples(metrics: Metrics) -> dict:
    families = text_string_to_metric_families(metrics.exposition().decode())
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def _landings(metrics: Metrics) -> dict[str, float | None]:
    samples = _samples(metrics)
    return {r: value(samples, "xorj_trade_landings_total", result=r) for r in LANDING_RESULTS}


def _outcome(trade_id: str, status: TradeStatus) -> TradeOutcome:
    return TradeOutcome(trade_id=trade_id, vault_id="v", input_mint="a", output_mint="b", status=status)


def test_every_slo_series_exists_at_zero() -> None:
    samples = _samples(Metrics())
    for result in LANDING_RESULTS:
        assert value(samples, "xorj_trade_landings_total", result=result) == 0.0
    for result in HALT_RESULTS:
        assert value(samples, "xorj_halts_completed_total", result=result) == 0.0


def test_a_trade_counts_once_late_if_it_ever_timed_out() -> None:
    metrics = Metrics()
    for trade_id, status in [
        ("quick", TradeStatus.CONFIRMED),
        ("reverted", TradeStatus.FAILED),  # landed in time, with an on-chain error
        ("refused", TradeStatus.REJECTED),  # never sent: no landing
        ("lost", TradeStatus.EXPIRED),
        ("slow", TradeStatus.TIMED_OUT),
        ("slow", TradeStatus.TIMED_OUT),  # the vault heard it once; a repeat is no second event
        ("slow", TradeStatus.CONFIRMED),  # confirmed after all: still late
    ]:
        metrics.on_trade_outcome(_outcome(trade_id, status), 1.0)
    assert _landings(metrics) == {"in_time": 2.0, "timed_out": 1.0, "expired": 1.0}
    metrics.on_trade_outcome(_outcome("slow", TradeStatus.CONFIRMED), 1.0)  # forgotten: a replay counts
    assert _landings(metrics)["in_time"] == 3.0


def test_a_halt_counts_against_the_deadline_it_carries() -> None:
    metrics = Metrics()
    metrics.on_kill_switch_event("HALT", {"what": "halt complete", "latency_s": 0.004, "deadline_s": 1.0})
    metrics.on_kill_switch_event("HALT", {"what": "halt complete", "latency_s": 1.0, "deadline_s": 1.0})
    metrics.on_kill_switch_event("HALT", {"what": "halt complete", "latency_s": 2.5, "deadline_s": 1.0})
    metrics.on_kill_switch_event("HALT", {"what": "halt complete", "latency_s": 2.5})  # no deadline: no SLI event
    samples = _samples(metrics)
    assert value(samples, "xorj_halts_completed_total", result="in_deadline") == 2.0
    assert value(samples, "xorj_halts_completed_total", result="late") == 1.0
    assert value(samples, "xorj_halt_ack_seconds_count") == 4.0


def test_a_real_halt_is_counted_within_its_deadline(engine_factory) -> None:
    api = Api(engine_factory(vaults=1, environ=dict(ENGINE_ENV)))
    assert value(scrape(api), "xorj_halts_completed_total", result="in_deadline") == 0.0
    assert api.post("/kill-switch/activate", {}).status == 202
    wait_until(lambda: value(scrape(api), "xorj_halts_completed_total", result="in_deadline") == 1.0,
               what="the halt counted within its deadline")
    assert value(scrape(api), "xorj_halts_completed_total", result="late") == 0.0
