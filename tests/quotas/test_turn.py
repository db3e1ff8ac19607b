"""One budgeted call (:func:`turn`), who waits (:func:`budget_scope`), JSON-RPC budget classes,
and one set of budgets shared by the event loops of several actors (threads)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from prometheus_client import CollectorRegistry

from xorj_actors.quotas import (
    Endpoint,
    EndpointBudget,
    QuotaDropped,
    QuotaSettings,
    Quotas,
    budget_scope,
    current_scope,
    rpc_endpoint,
    turn,
)


def _quotas(requests: int = 5, window_s: float = 1.0, burst: int = 1) -> Quotas:
    budget = EndpointBudget(requests=requests, window_s=window_s, burst=burst)
    return Quotas(QuotaSettings(rpc_read=budget, rpc_send=budget), registry=CollectorRegistry())


def test_json_rpc_methods_fall_into_send_simulate_and_read() -> None:
    assert rpc_endpoint("sendTransaction") is Endpoint.RPC_SEND
    assert rpc_endpoint("simulateTransaction") is Endpoint.RPC_SIMULATE
    for method in ("getMultipleAccounts", "getSignatureStatuses", "getLatestBlockhash", "getRecentPrioritizationFees"):
        assert rpc_endpoint(method) is Endpoint.RPC_READ


def test_without_budgets_a_turn_is_free_and_answers_are_ignored() -> None:
    async def run() -> None:
        async with turn(None, Endpoint.RPC_READ) as t:
            t.answered(429, "5")
        assert t.permit is None

    asyncio.run(run())


def test_a_turn_counts_its_grant_and_a_429_slows_the_bucket() -> None:
    q = _quotas(requests=100)

    async def run() -> None:
        async with turn(q, Endpoint.RPC_READ, owner="gateway"):
            pass
        async with turn(q, Endpoint.RPC_READ) as t:
            t.answered(429, None)

    asyncio.run(run())
    row = q.snapshot()["rpc_read"]
    assert row["granted"] == 2 and row["throttled"] == 1 and row["self_inflicted"] == 0
    assert row["rate_factor"] < 1.0  # halved by the 429
    assert row["paused_for_s"] > 0  # and paused (no Retry-After: the configured pause)


def test_a_turn_whose_call_raised_reports_no_success() -> None:
    """A transport failure says nothing about the budget: after a 429 the bucket only speeds up
    again on answers, never on exceptions."""
    q = _quotas(requests=100)

    async def run() -> None:
        async with turn(q, Endpoint.RPC_READ) as t:
            t.answered(429, "0")
        before = q.snapshot()["rpc_read"]["rate_factor"]
        with pytest.raises(ConnectionError):
            async with turn(q, Endpoint.RPC_READ):
                raise ConnectionError("refused")
        assert q.snapshot()["rpc_read"]["rate_factor"] == before
        async with turn(q, Endpoint.RPC_READ):
            pass  # an answer: the bucket speeds up
        assert q.snapshot()["rpc_read"]["rate_factor"] > before

    asyncio.run(run())


def test_a_scope_names_the_owner_and_kind_of_the_calls_below_it() -> None:
    """The executor scopes each trade's task to its vault: calls below wait as that vault's
    unsigned work, which an emergency halt drops; a call that names its owner keeps it."""
    q = _quotas(requests=1, window_s=60.0)
    seen: list[tuple[str, str]] = []

    async def waiter(owner: str) -> None:
        with budget_scope(owner, "unsigned"):
            assert current_scope().owner == owner
            async with turn(q, Endpoint.RPC_READ):
                pass

    async def run() -> None:
        async with turn(q, Endpoint.RPC_READ):  # takes the one token
            pass
        tasks = [asyncio.create_task(waiter(f"vault-{i}")) for i in range(3)]
        named = asyncio.create_task(turn(q, Endpoint.RPC_READ, owner="gateway", kind="").__aenter__())
        await asyncio.sleep(0.05)
        dropped = q.drop(lambda w: seen.append((w.owner, w.kind)) or w.kind == "unsigned", "halted")
        assert dropped == 3
        for task in tasks:
            with pytest.raises(QuotaDropped):
                await task
        named.cancel()
        assert current_scope().owner == ""  # the scope ended with its block

    asyncio.run(run())
    assert sorted(seen) == [("gateway", ""), ("vault-0", "unsigned"), ("vault-1", "unsigned"), ("vault-2", "unsigned")]


def test_actors_on_several_loops_share_one_budget_and_never_exceed_it() -> None:
    """The executor, the Confirmation actor and the gateway each run their own loop; their
    calls draw from one bucket per budget, so together they stay inside it."""
    requests, window_s, burst = 20, 1.0, 2
    q = _quotas(requests=requests, window_s=window_s, burst=burst)
    grants: list[float] = []
    lock = threading.Lock()

    def actor(name: str) -> None:
        async def run() -> None:
            for _ in range(8):
                async with turn(q, Endpoint.RPC_READ, owner=name):
                    with lock:
                        grants.append(time.monotonic())

        asyncio.run(run())

    start = time.monotonic()
    threads = [threading.Thread(target=actor, args=(f"actor-{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    elapsed = time.monotonic() - start
    assert len(grants) == 24
    # The bucket refills at (requests - burst + 1) / window_s after its burst: no more grants
    # than that in the time taken (late bookkeeping only makes ``elapsed`` longer).
    rate = (requests - burst + 1) / window_s
    assert len(grants) <= burst + rate * elapsed + 1, (len(grants), elapsed)
    assert q.snapshot()["rpc_read"]["granted"] == 24
    assert q.waiting(Endpoint.RPC_READ) == 0


def test_a_halt_on_one_loop_drops_unsigned_work_waiting_on_another() -> None:
    q = _quotas(requests=1, window_s=60.0)
    ready = threading.Event()
    outcome: list[BaseException | None] = []

    def other_loop() -> None:
        async def run() -> None:
            async with turn(q, Endpoint.RPC_READ):  # the one token
                pass
            ready.set()
            try:
                async with turn(q, Endpoint.RPC_READ, owner="vault-9", kind="unsigned"):
                    outcome.append(None)
            except QuotaDropped as exc:
                outcome.append(exc)

        asyncio.run(run())

    thread = threading.Thread(target=other_loop)
    thread.start()
    assert ready.wait(10)
    deadline = time.monotonic() + 10
    while q.waiting(Endpoint.RPC_READ) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)

    async def halt() -> int:
        return q.drop(lambda w: w.kind == "unsigned", "halted")

    assert asyncio.run(halt()) == 0  # not on this loop: dropped on its own loop, soon
    thread.join(timeout=10)
    assert len(outcome) == 1 and isinstance(outcome[0], QuotaDropped), outcome


def test_grants_and_the_budget_rate_are_exported_per_bucket_for_alerts_over_any_span() -> None:
    """``increase(xorj_quota_granted_total[15m]) / (900 * xorj_quota_budget_per_second)`` is the
    share of a 15-minute budget used: grants of endpoints sharing a bucket count in its owner's."""
    registry = CollectorRegistry()
    q = Quotas(QuotaSettings(), registry=registry)

    async def run() -> None:
        for endpoint in (Endpoint.JUPITER_QUOTE, Endpoint.JUPITER_ORDER, Endpoint.JUPITER_PRICE):
            async with turn(q, endpoint):
                pass

    asyncio.run(run())
    sample = registry.get_sample_value
    assert sample("xorj_quota_granted_total", {"endpoint": "jupiter_quote"}) == 3
    assert sample("xorj_quota_granted_total", {"endpoint": "jupiter_order"}) is None  # shares jupiter_quote's
    assert sample("xorj_quota_budget_per_second", {"endpoint": "jupiter_quote"}) == 1.0  # 60 a minute
    assert sample("xorj_quota_budget_per_second", {"endpoint": "rpc_read"}) == 100.0


def test_grant_now_grants_at_once_only_when_the_bucket_has_room_and_nobody_waits() -> None:
    q = _quotas(requests=1, window_s=60.0, burst=1)

    async def run() -> None:
        permit = q.grant_now("rpc_read")  # a plain string names the endpoint, as in acquire
        assert permit is not None and permit.waited_s == 0.0 and permit.within_budget
        assert permit.endpoint is Endpoint.RPC_READ
        assert q.grant_now(Endpoint.RPC_READ) is None  # the bucket is empty: acquire must wait
        waiter = asyncio.ensure_future(q.acquire(Endpoint.RPC_READ, owner="v1"))
        await asyncio.sleep(0)
        assert q.waiting(Endpoint.RPC_READ) == 1
        assert q.grant_now(Endpoint.RPC_READ) is None  # still empty, and a waiter is first in line
        waiter.cancel()

    asyncio.run(run())
    assert q.snapshot()["rpc_read"]["granted"] == 1
