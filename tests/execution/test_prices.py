"""ReferencePrices: the checks asking for the same mints at once share one price request."""

from __future__ import annotations

import asyncio

import pytest
from solders.pubkey import Pubkey

from xorj_actors.execution._prices import ReferencePrices

A, B = Pubkey.new_unique(), Pubkey.new_unique()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Fetcher:
    """A price request that answers when released; counts the requests made."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()
        self.fail: Exception | None = None

    async def __call__(self) -> dict[str, float]:
        self.calls += 1
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return {str(A): 1.0, str(B): 2.0}


async def _gather(prices: ReferencePrices, fetch: Fetcher, n: int) -> list[dict[str, float]]:
    waiting = [asyncio.ensure_future(prices.get([A, B] if i % 2 else [B, A], fetch)) for i in range(n)]
    await asyncio.sleep(0)
    fetch.release.set()
    return await asyncio.gather(*waiting)


def test_concurrent_checks_of_the_same_mints_share_one_request_until_it_is_too_old() -> None:
    async def run() -> None:
        clock, fetch = Clock(), Fetcher()
        prices = ReferencePrices(1.0, clock)
        answers = await _gather(prices, fetch, 5)
        assert fetch.calls == 1 and all(a == answers[0] for a in answers)  # in any order of the mints
        clock.now += 0.5
        await prices.get([A, B], fetch)
        assert fetch.calls == 1  # still fresh
        clock.now += 0.6
        await prices.get([A, B], fetch)
        assert fetch.calls == 2  # older than max_age_s: asked again
        await prices.get([A], fetch)
        assert fetch.calls == 3  # other mints: their own request

    asyncio.run(run())


def test_a_failure_reaches_its_waiters_and_is_not_kept() -> None:
    async def run() -> None:
        fetch = Fetcher()
        fetch.fail = RuntimeError("price API down")
        prices = ReferencePrices(1.0, Clock())
        waiting = [asyncio.ensure_future(prices.get([A, B], fetch)) for _ in range(3)]
        await asyncio.sleep(0)
        fetch.release.set()
        results = await asyncio.gather(*waiting, return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results) and fetch.calls == 1
        fetch.fail = None
        assert await prices.get([A, B], fetch) == {str(A): 1.0, str(B): 2.0}
        assert fetch.calls == 2  # the failure was not reused

    asyncio.run(run())


def test_a_cancelled_check_does_not_cancel_the_request_the_others_wait_for() -> None:
    async def run() -> None:
        fetch = Fetcher()
        prices = ReferencePrices(1.0, Clock())
        first = asyncio.ensure_future(prices.get([A, B], fetch))
        second = asyncio.ensure_future(prices.get([A, B], fetch))
        await asyncio.sleep(0)
        first.cancel()
        fetch.release.set()
        assert await second == {str(A): 1.0, str(B): 2.0}
        with pytest.raises(asyncio.CancelledError):
            await first
        assert fetch.calls == 1

    asyncio.run(run())


def test_max_age_zero_asks_for_every_check() -> None:
    async def run() -> None:
        fetch = Fetcher()
        fetch.release.set()
        prices = ReferencePrices(0.0, Clock())
        for _ in range(3):
            await prices.get([A, B], fetch)
        assert fetch.calls == 3 and prices.requests == 3

    asyncio.run(run())
