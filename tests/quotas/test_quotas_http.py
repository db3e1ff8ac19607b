"""Quotas against a provider that answers 429 past its budget: a tiny aiohttp server on a free
port, counting requests in a sliding window (as Jupiter does)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from xorj_actors.quotas import (
    Answer,
    Endpoint,
    EndpointBudget,
    QuotaDropped,
    QuotaExpired,
    QuotaRefused,
    QuotaSettings,
    Quotas,
)


@dataclass
class Provider:
    """Allows ``limit`` requests in any ``window_s``; past that, 429 with ``Retry-After``."""

    limit: int
    window_s: float
    retry_after: str | None = None
    seen: deque[float] = field(default_factory=deque)
    throttled: int = 0
    served: int = 0

    async def handle(self, _: web.Request) -> web.Response:
        now = time.monotonic()
        while self.seen and self.seen[0] <= now - self.window_s:
            self.seen.popleft()
        if len(self.seen) >= self.limit:
            self.throttled += 1
            headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
            return web.json_response({"error": "Rate limit exceeded"}, status=429, headers=headers)
        self.seen.append(now)
        self.served += 1
        return web.json_response({"ok": True})


@contextlib.asynccontextmanager
async def _serve(provider: Provider) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/swap/v1/quote", provider.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # noqa: SLF001 - the free port
    try:
        yield f"http://127.0.0.1:{port}/swap/v1/quote"
    finally:
        await runner.cleanup()


def _quotas(requests: int, window_s: float, registry: CollectorRegistry) -> Quotas:
    budget = EndpointBudget(requests=requests, window_s=window_s, burst=2, pause_s=0.05)
    return Quotas(QuotaSettings(jupiter_quote=budget), registry=registry)


async def _trade_quotes(quotas: Quotas, url: str, owners: int, calls_each: int) -> list[Answer]:
    answers: list[Answer] = []
    async with aiohttp.ClientSession() as session:

        async def vault(owner: str) -> None:
            for _ in range(calls_each):
                while True:  # a throttled call waits its turn again
                    permit = await quotas.acquire(Endpoint.JUPITER_QUOTE, owner=owner)
                    async with session.get(url) as resp:
                        answer = quotas.report(
                            Endpoint.JUPITER_QUOTE, resp.status, permit=permit, retry_after=resp.headers.get("Retry-After")
                        )
                    answers.append(answer)
                    if answer is Answer.OK:
                        break

        await asyncio.gather(*(vault(f"vault-{i}") for i in range(owners)))
    return answers


async def test_under_our_budget_the_provider_never_answers_429() -> None:
    provider = Provider(limit=50, window_s=0.5)
    registry = CollectorRegistry()
    # A budget a little under the provider's: requests reach it later than they were granted.
    quotas = _quotas(45, 0.5, registry)
    async with _serve(provider) as url:
        answers = await _trade_quotes(quotas, url, owners=30, calls_each=5)
    assert provider.throttled == 0 and provider.served == 150
    assert answers.count(Answer.OK) == 150
    assert registry.get_sample_value("xorj_rpc_429_total", {"endpoint": "jupiter_quote"}) == 0
    row = quotas.snapshot()["jupiter_quote"]
    assert row["granted"] == 150 and row["throttled"] == 0 and row["self_inflicted"] == 0


async def test_a_provider_stricter_than_our_budget_slows_the_bucket_and_is_counted_as_its_429s() -> None:
    provider = Provider(limit=10, window_s=0.5, retry_after="0")
    registry = CollectorRegistry()
    quotas = _quotas(100, 0.5, registry)  # we believe 100; the provider allows 10
    async with _serve(provider) as url:
        answers = await _trade_quotes(quotas, url, owners=10, calls_each=4)
    assert answers.count(Answer.OK) == 40  # every trade got its quote in the end
    assert Answer.SELF_INFLICTED not in answers
    row = quotas.snapshot()["jupiter_quote"]
    assert row["throttled"] == provider.throttled > 0
    assert row["self_inflicted"] == 0 and row["rate_factor"] < 1.0
    assert registry.get_sample_value("xorj_rpc_429_total", {"endpoint": "jupiter_quote"}) == provider.throttled
    assert registry.get_sample_value("xorj_quota_self_inflicted_429_total", {"endpoint": "jupiter_quote"}) == 0


def test_a_429_to_a_call_made_without_a_permit_is_ours() -> None:
    registry = CollectorRegistry()
    quotas = _quotas(10, 1.0, registry)
    assert quotas.report("jupiter_quote", 429, permit=None) is Answer.SELF_INFLICTED
    assert registry.get_sample_value("xorj_quota_self_inflicted_429_total", {"endpoint": "jupiter_quote"}) == 1
    assert registry.get_sample_value("xorj_rpc_429_total", {"endpoint": "jupiter_quote"}) == 1


async def test_endpoints_that_share_a_bucket_draw_from_it_together() -> None:
    registry = CollectorRegistry()
    quotas = Quotas(QuotaSettings(), registry=registry)
    burst = QuotaSettings().jupiter_quote.effective_burst
    for i in range(burst):
        permit = await quotas.acquire(Endpoint.JUPITER_PRICE if i % 2 else Endpoint.JUPITER_QUOTE, owner="v")
        assert permit.bucket is Endpoint.JUPITER_QUOTE and permit.within_budget
    snap = quotas.snapshot()
    assert snap["jupiter_quote"]["used_in_window"] == snap["jupiter_price"]["used_in_window"] == burst
    # one gauge per bucket: a shared endpoint is counted in its owner's
    assert registry.get_sample_value("xorj_quota_used_ratio", {"endpoint": "jupiter_quote"}) == pytest.approx(burst / 60)
    assert registry.get_sample_value("xorj_quota_used_ratio", {"endpoint": "jupiter_price"}) is None


async def test_an_unknown_endpoint_is_refused_and_changes_nothing() -> None:
    quotas = Quotas(QuotaSettings())
    before = quotas.snapshot()
    with pytest.raises(ValueError, match="jupiter_qoute"):
        await quotas.acquire("jupiter_qoute", owner="v")
    with pytest.raises(ValueError):
        quotas.report("nope", 429, permit=None)
    assert {k: v for k, v in quotas.snapshot().items()} == before


async def test_calls_not_served_are_counted_by_reason_and_the_halt_drops_only_unsigned_work() -> None:
    registry = CollectorRegistry()
    budget = EndpointBudget(requests=1, window_s=3600.0, burst=1, max_waiting=2)
    quotas = Quotas(QuotaSettings(block_engine=budget), registry=registry)
    await quotas.acquire("block_engine", owner="v1")  # the one token of the hour
    loop = asyncio.get_running_loop()
    with pytest.raises(QuotaExpired):
        await quotas.acquire("block_engine", owner="v1", deadline=loop.time() + 0.01)
    unsigned = asyncio.create_task(quotas.acquire("block_engine", owner="v2", kind="unsigned"))
    signed = asyncio.create_task(quotas.acquire("block_engine", owner="v3", kind="signed"))
    await asyncio.sleep(0)
    with pytest.raises(QuotaRefused):
        await quotas.acquire("block_engine", owner="v4")
    assert quotas.drop(lambda w: w.kind == "unsigned", "kill switch: halted") == 1
    with pytest.raises(QuotaDropped):
        await unsigned
    assert quotas.waiting("block_engine") == 1 and not signed.done()
    signed.cancel()
    row = quotas.snapshot()["block_engine"]
    assert (row["granted"], row["expired"], row["queue_full"], row["dropped"]) == (1, 1, 1, 1)
    for reason in ("expired", "queue_full", "dropped"):
        labels = {"endpoint": "block_engine", "reason": reason}
        assert registry.get_sample_value("xorj_quota_not_served_total", labels) == 1
    assert registry.get_sample_value("xorj_quota_wait_seconds_count", {"endpoint": "block_engine"}) == 1


def test_after_a_429_only_answers_below_500_speed_the_bucket_up_again() -> None:
    quotas = Quotas(QuotaSettings())
    quotas.report("rpc_send", 429, permit=None, retry_after="0")
    assert quotas.snapshot()["rpc_send"]["rate_factor"] == 0.5
    assert quotas.report("rpc_send", 503, permit=None) is Answer.OK
    assert quotas.snapshot()["rpc_send"]["rate_factor"] == 0.5
    quotas.report("rpc_send", 200, permit=None)
    assert quotas.snapshot()["rpc_send"]["rate_factor"] == 0.55
