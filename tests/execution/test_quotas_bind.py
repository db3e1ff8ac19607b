"""The executor lives within its budgets: when Jupiter's binds, trades wait their fair turn and
none is lost, and the provider never answers 429 (the localnet's Jupiter paths, budgeted with
``[quotas] on_localnet``)."""

from __future__ import annotations

from collections.abc import Callable

from tests.execution.conftest import Harness

#: 3 Jupiter calls a trade (quote, swap-instructions, price: not shared) against 10 a second, one bucket.
TIGHT = """
[jupiter]
api = "swap"
[execution]
price_max_age_s = 0
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


def test_a_quote_that_waits_too_long_for_its_turn_is_asked_again_and_never_signed(
    exec_engine_factory: Callable[..., Harness],
) -> None:
    """One Jupiter call a second, and a quote may wait half a second for its next call: every
    quote goes stale while it waits, so each attempt re-quotes, and none is ever signed."""
    h = exec_engine_factory(
        '[jupiter]\napi = "swap"\n[quotas]\non_localnet = true\n'
        "[quotas.jupiter_quote]\nrequests = 2\nwindow_s = 2.0\nburst = 1\n"
        "[execution]\nquote_max_wait_s = 0.5\n[execution.retry]\nmax_attempts = 3\n"
    )
    tid = "vault-0001:stale:0"
    outcome = h.execute(h.request(tid, vault=1, amount=1_000_000), timeout=30)
    assert outcome.status == "rejected" and outcome.error_class == "quote_expired", outcome
    failed = [d["error_class"] for _, d in h.entries(tid) if d.get("phase") == "attempt_failed"]
    assert failed == ["quote_expired"] * 3, failed  # each attempt asked for a new quote
    assert not [d for _, d in h.entries(tid) if d.get("phase") == "signed"]


def _provider_limited(engine_rate: int) -> str:
    """The localnet's Jupiter paths answer 429 past 12 calls a second; the engine budgets itself
    at ``engine_rate`` (no burst beyond one call)."""
    return (
        '[jupiter]\napi = "swap"\n[localnet.quote]\nrate_limit_requests = 12\nrate_limit_window_s = 1.0\n'
        f"[quotas]\non_localnet = true\n[quotas.jupiter_quote]\nrequests = {engine_rate}\nwindow_s = 1.0\nburst = 1\n"
        "[execution.retry]\nmax_attempts = 20\n"
    )


def test_under_its_budget_the_engine_never_meets_a_429(exec_engine_factory: Callable[..., Harness]) -> None:
    h = exec_engine_factory(_provider_limited(10))
    ids = [f"vault-000{v}:under:{i}" for v in range(4) for i in range(2)]
    for tid in ids:
        h.executor.tell(h.request(tid, vault=int(tid[8]), amount=1_000_000))
    assert [h.wait(tid, timeout=60).status for tid in ids] == ["confirmed"] * len(ids)
    assert not h.engine.metrics.registry.get_sample_value("xorj_rpc_429_total", {"endpoint": "jupiter_quote"})


def test_a_providers_429s_slow_the_bucket_and_never_trip_the_network_breaker(
    exec_engine_factory: Callable[..., Harness],
) -> None:
    """The engine's budget (40 a second) is above the provider's (12): the provider's 429s are
    counted as its own, slow the bucket down, and the trades still land; the network breaker,
    which hears only real failures, stays closed."""
    h = exec_engine_factory(_provider_limited(40))
    ids = [f"vault-000{v}:over:{i}" for v in range(4) for i in range(3)]
    for tid in ids:
        h.executor.tell(h.request(tid, vault=int(tid[8]), amount=1_000_000))
    outcomes = [h.wait(tid, timeout=90) for tid in ids]
    assert [o.status for o in outcomes] == ["confirmed"] * len(ids), outcomes
    sample = h.engine.metrics.registry.get_sample_value
    throttled = sum(
        sample("xorj_rpc_429_total", {"endpoint": e}) or 0
        for e in ("jupiter_quote", "jupiter_swap_instructions", "jupiter_price")
    )
    assert throttled > 0, "the provider's limit is below the engine's: some calls met a 429"
    state = sample("xorj_circuit_breaker_state", {"breaker": "network_connectivity"})
    assert state == 0, state  # closed


def _rpc_provider_limited(send: int, simulate: int, read: int, provider: int = 60) -> str:
    """The localnet's JSON-RPC answers 429 (the public RPC's body) past ``provider`` calls a second, a
    batch counting its entries; the engine budgets each class of its calls as given (and
    Jupiter's far above what these trades need)."""
    return (
        f'[jupiter]\napi = "swap"\n[localnet]\nrpc_rate_limit_requests = {provider}\nrpc_rate_limit_window_s = 1.0\n'
        "[quotas]\non_localnet = true\n[quotas.jupiter_quote]\nrequests = 1000\nwindow_s = 1.0\n"
        f"[quotas.rpc_send]\nrequests = {send}\nwindow_s = 1.0\nburst = 1\n"
        f"[quotas.rpc_simulate]\nrequests = {simulate}\nwindow_s = 1.0\nburst = 1\n"
        f"[quotas.rpc_read]\nrequests = {read}\nwindow_s = 1.0\nburst = 1\n"
        "[execution.retry]\nmax_attempts = 20\n"
    )


_RPC_CLASSES = ("rpc_send", "rpc_simulate", "rpc_read")


def _all_confirmed(h: Harness, tag: str, per_vault: int) -> list[str]:
    """``per_vault`` trades in each of the 4 vaults at once; every one confirms."""
    ids = [f"vault-000{v}:{tag}:{i}" for v in range(4) for i in range(per_vault)]
    for tid in ids:
        h.executor.tell(h.request(tid, vault=int(tid[8]), amount=1_000_000))
    assert [h.wait(tid, timeout=120).status for tid in ids] == ["confirmed"] * len(ids)
    return ids


def test_every_rpc_call_of_every_actor_takes_its_turn_and_never_meets_a_429(
    exec_engine_factory: Callable[..., Harness],
) -> None:
    """The executor, the Confirmation actor and the gateway share the RPC budgets (10 + 10 +
    30 a second, under the provider's 60): all their calls wait their turns, none meets a 429."""
    h = exec_engine_factory(_rpc_provider_limited(10, 10, 30))
    ids = _all_confirmed(h, "rpc", per_vault=2)
    sample = h.engine.metrics.registry.get_sample_value
    granted = {e: sample("xorj_quota_wait_seconds_count", {"endpoint": e}) or 0 for e in _RPC_CLASSES}
    assert granted["rpc_send"] >= len(ids) and granted["rpc_simulate"] >= len(ids), granted
    assert granted["rpc_read"] >= len(ids), granted  # at least each pre-state read beside its simulation
    assert not any(sample("xorj_rpc_429_total", {"endpoint": e}) for e in _RPC_CLASSES)
    assert h.localnet.server.rpc_limit is not None and h.localnet.server.rpc_limit.refused == 0


def test_an_rpc_providers_429s_slow_the_buckets_and_never_trip_the_network_breaker(
    exec_engine_factory: Callable[..., Harness],
) -> None:
    """The engine's RPC budgets (40 + 40 + 80) are far above the provider's 20, and 24 trades
    start at once (so that even a loaded machine's engine exceeds it): its 429s are counted as
    the provider's, slow the buckets, and the trades still land with the breaker closed."""
    h = exec_engine_factory(_rpc_provider_limited(40, 40, 80, provider=20))
    _all_confirmed(h, "rpc429", per_vault=6)
    sample = h.engine.metrics.registry.get_sample_value
    assert h.localnet.server.rpc_limit is not None and h.localnet.server.rpc_limit.refused > 0
    assert sum(sample("xorj_rpc_429_total", {"endpoint": e}) or 0 for e in _RPC_CLASSES) > 0
    assert sample("xorj_circuit_breaker_state", {"breaker": "network_connectivity"}) == 0  # closed
