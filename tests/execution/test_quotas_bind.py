"""The executor lives within its budgets: when Jupiter's binds, trades wait their fair turn and
none is lost, and the provider never answers 429 (the localnet's Jupiter paths, budgeted with
``[quotas] on_localnet``)."""

from __future__ import annotations

from collections.abc import Callable

from tests.execution.conftest import Harness

#: 3 Jupiter calls a trade (quote, swap-instructions, price) against 10 a second, one bucket.
TIGHT = """
[jupiter]
api = "swap"
[quotas]
on_localnet = true
[quotas.jupiter_quote]
requests = 10
window_s = 1.0
burst = 2
"""


def test_a_binding_jupiter_budget_queues_trades_and_loses_none(exec_engine_factory: Callable[..., Harness]) -> None:
    h = exec_engine_factory(TIGHT)
    ids = [f"vault-000{v}:budget:{i}" for v in range(4) for i in range(3)]
    for tid in ids:
        vault = int(tid[8])
        h.executor.tell(h.request(tid, vault=vault, amount=1_000_000))
    outcomes = [h.wait(tid, timeout=60) for tid in ids]
    assert [o.status for o in outcomes] == ["confirmed"] * len(ids), outcomes
    sample = h.engine.metrics.registry.get_sample_value
    endpoints = ("jupiter_quote", "jupiter_swap_instructions", "jupiter_price")
    calls = sum(sample("xorj_quota_wait_seconds_count", {"endpoint": e}) or 0 for e in endpoints)
    waited = sum(sample("xorj_quota_wait_seconds_sum", {"endpoint": e}) or 0 for e in endpoints)
    assert calls >= 3 * len(ids), calls  # every Jupiter call took its turn through the bucket
    assert waited > 0.5, waited  # and the budget made them wait
    assert not sample("xorj_rpc_429_total", {"endpoint": "jupiter_quote"})
    snapshot = h.engine.quotas.snapshot()["jupiter_quote"]
    assert snapshot["used_in_window"] <= 10, snapshot
