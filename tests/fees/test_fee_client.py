"""The fee client against the localnet: a busy pool bids higher than an idle account, in both
providers' shapes; one burst on one pool asks once; failures and bad input."""

from __future__ import annotations

import asyncio

import pytest
from solders.keypair import Keypair

from tests.fees.market import POOL_PRICES, Market, market  # noqa: F401 (the fixture)
from xorj_actors.fees import FeeClient, FeePolicy, FeeProvider, FeeSettings, FeeUnavailable, PriorityLevel


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def client(market: Market, clock: Clock | None = None, url: str | None = None, **changes: object) -> FeeClient:
    return FeeClient(FeeSettings(**changes), url or market.url, market.session, clock=clock or Clock())  # type: ignore[arg-type]


async def test_rpc_provider_prices_a_busy_pool_above_an_idle_account(market: Market) -> None:
    fees = client(market)
    policy = FeePolicy(fees.settings)
    busy = await fees.sample([market.pool])
    idle = await fees.sample([market.idle])
    # Each slot's minimum for the pool is what the pool's transaction paid; the idle account
    # sees the block minimum, which the zero-price transactions hold at 0.
    assert [f for f in busy.slot_fees if f] == list(POOL_PRICES)
    assert set(idle.slot_fees) == {0}
    top = policy.tier_for(1e6)
    assert policy.price_for(top, 1, busy) > policy.price_for(top, 1, idle) == 0


async def test_estimate_provider_prices_a_busy_pool_above_an_idle_account(market: Market) -> None:
    fees = client(market, provider=FeeProvider.ESTIMATE)
    busy = await fees.sample([market.pool])
    idle = await fees.sample([market.idle])
    assert busy.levels[PriorityLevel.MIN] == 10_000
    assert busy.levels[PriorityLevel.MEDIUM] == 20_000
    assert busy.levels[PriorityLevel.UNSAFE_MAX] == 40_000
    assert set(idle.levels.values()) == {0}
    assert await fees.estimate([market.pool, market.idle], PriorityLevel.HIGH) == 30_000
    assert await fees.estimate([market.idle], PriorityLevel.HIGH) == 0


async def test_a_burst_on_one_pool_asks_once_until_the_cache_expires(market: Market) -> None:
    clock = Clock()
    fees = client(market, clock, cache_s=2.0)
    other = Keypair().pubkey()
    samples = await asyncio.gather(*(fees.sample([market.pool, other]) for _ in range(20)))
    assert fees.requests == 1
    assert all(s == samples[0] for s in samples)
    await fees.sample([other, market.pool, other])  # any order, repeats: the same set
    assert fees.requests == 1
    await fees.sample([market.idle])  # another set asks for itself
    assert fees.requests == 2
    clock.now += 2.0
    await fees.sample([market.pool, other])
    assert fees.requests == 3


async def test_a_failed_answer_is_not_cached(market: Market) -> None:
    fees = client(market, url=market.url.rstrip("/") + "/no-such-path")
    for attempt in (1, 2):
        with pytest.raises(FeeUnavailable, match="HTTP 404"):
            await fees.sample([market.pool])
        assert fees.requests == attempt


async def test_bad_account_sets_are_refused_before_asking(market: Market) -> None:
    fees = client(market)
    with pytest.raises(ValueError, match="at least one writable account"):
        await fees.sample([])
    with pytest.raises(ValueError, match="at most 128"):
        await fees.sample([Keypair().pubkey() for _ in range(129)])
    assert fees.requests == 0


async def test_the_estimate_url_serves_only_the_estimate_provider(market: Market) -> None:
    elsewhere = "http://127.0.0.1:9/"
    assert client(market, provider=FeeProvider.ESTIMATE, estimate_url=elsewhere).url == elsewhere
    assert client(market, estimate_url=elsewhere).url == market.url
