"""Jupiter's reference prices, shared by the trades that ask for the same mints at once.

A round sends many vaults the same pair within a moment; each trade's money check needs the
pair's USD prices. One ``GET /price/v3`` serves every check asking for the same mints within
``[execution] price_max_age_s`` (0: one request per check). The request runs as a task of its
own: a trade cancelled while it waits does not cancel it for the others. A failure is not kept:
its waiters get it, the next check asks again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable

from solders.pubkey import Pubkey

__all__ = ["ReferencePrices"]

#: Mint sets kept at most (a round trades a few pairs; expired entries go first).
_MAX_ENTRIES = 1_024

Prices = dict[str, float]


class ReferencePrices:
    """USD prices by mint, each answer reused for ``max_age_s`` (on one event loop)."""

    def __init__(self, max_age_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age_s = max_age_s
        self.clock = clock
        self._entries: dict[tuple[str, ...], tuple[float, asyncio.Task[Prices]]] = {}
        #: Requests actually made (what sharing saves is visible here).
        self.requests = 0

    async def get(self, mints: Iterable[Pubkey], fetch: Callable[[], Awaitable[Prices]]) -> Prices:
        """The prices of ``mints``: a fresh shared answer, else ``fetch()``'s (shared from now)."""
        if self.max_age_s <= 0:
            self.requests += 1
            return await fetch()
        key = tuple(sorted({str(m) for m in mints}))
        now = self.clock()
        entry = self._entries.get(key)
        if entry is None or entry[0] <= now or (entry[1].done() and entry[1].exception() is not None):
            if len(self._entries) >= _MAX_ENTRIES:
                self._evict(now)
            self.requests += 1
            task = asyncio.get_running_loop().create_task(_run(fetch))
            task.add_done_callback(lambda done: self._done(key, done))
            entry = self._entries[key] = (now + self.max_age_s, task)
        return await asyncio.shield(entry[1])

    def _done(self, key: tuple[str, ...], task: asyncio.Task[Prices]) -> None:
        if task.cancelled() or task.exception() is not None:
            if self._entries.get(key, (0.0, None))[1] is task:
                del self._entries[key]  # not kept: the next check asks again

    def _evict(self, now: float) -> None:
        for key in [k for k, (expires, _) in self._entries.items() if expires <= now]:
            del self._entries[key]
        while len(self._entries) >= _MAX_ENTRIES:
            del self._entries[next(iter(self._entries))]  # the oldest added


async def _run(fetch: Callable[[], Awaitable[Prices]]) -> Prices:
    return await fetch()
