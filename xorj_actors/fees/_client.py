"""Recent fees of the accounts a transaction writes, from the RPC or a Helius-style estimator.

Two JSON-RPC methods, in the shapes mainnet providers serve:

- Agave's ``getRecentPrioritizationFees([accounts])``: ``[{"slot", "prioritizationFee"}, ...]``,
  each slot's minimum landed fee for transactions writing those accounts (at most 128).
- Helius' ``getPriorityFeeEstimate([{"accountKeys": [...], "options": {...}}])``: with
  ``priorityLevel`` it answers ``{"priorityFeeEstimate": n}``, with
  ``includeAllPriorityFeeLevels`` ``{"priorityFeeLevels": {"min", "low", ..., "unsafeMax"}}``.

Answers are cached per set of writable accounts for ``cache_s``, and concurrent asks for one set
share one request, so a burst of trades on one pool asks once.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from operator import itemgetter, lt
from typing import Any

import aiohttp
from solders.pubkey import Pubkey

from xorj_actors.fees._policy import FeeSample
from xorj_actors.fees.settings import MAX_FEE_ACCOUNTS, FeeProvider, FeeSettings, PriorityLevel
from xorj_actors.quotas import Endpoint, Quotas, turn

__all__ = ["FeeClient", "FeeUnavailable", "parse_estimate", "parse_levels", "parse_recent_fees"]


class FeeUnavailable(Exception):
    """The provider did not answer a usable fee (HTTP error, JSON-RPC error, bad shape)."""


class FeeThrottled(FeeUnavailable):
    """The provider answered 429: its budget, not a failure of the network."""


def _fee(value: Any, what: str) -> int:
    """A fee as an int: providers answer floats (``33549.0``); a fraction rounds up, since
    a price below the answer would bid under what landed."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise FeeUnavailable(f"{what}: expected a fee >= 0, got {value!r}")
    return math.ceil(value)


_SLOT, _FEE, _SECOND = itemgetter("slot"), itemgetter("prioritizationFee"), itemgetter(1)


def parse_recent_fees(result: Any) -> tuple[int, ...]:
    """The per-slot fees of a ``getRecentPrioritizationFees`` result, oldest slot first."""
    if not isinstance(result, list):
        raise FeeUnavailable(f"getRecentPrioritizationFees: expected an array, got {type(result).__name__}")
    # The common answer (150 dicts of two ints >= 0) checked and sorted in C, a column at a time;
    # anything else (a float fee, a bad row) goes through the loop below, which names the row.
    # A JSON row that is no dict (a list, a string, a number) fails the itemgetter with TypeError.
    try:
        slots, fees = list(map(_SLOT, result)), list(map(_FEE, result))
    except (KeyError, TypeError):
        slots = fees = None
    if fees is not None and set(map(type, slots)) <= {int} and set(map(type, fees)) <= {int} and min(fees, default=0) >= 0:
        if all(map(lt, slots, slots[1:])):  # the node's order: oldest slot first already
            return tuple(fees)
        return tuple(map(_SECOND, sorted(zip(slots, fees))))
    rows = []
    for i, row in enumerate(result):
        slot = row.get("slot") if type(row) is dict else None
        if type(slot) is not int:  # bool is no int here
            raise FeeUnavailable(f"getRecentPrioritizationFees[{i}]: expected {{slot, prioritizationFee}}")
        fee = row.get("prioritizationFee")
        # An int >= 0 as it is (the common answer, 150 a call); anything else checked in full.
        rows.append((slot, fee if type(fee) is int and fee >= 0 else _fee(fee, f"getRecentPrioritizationFees[{i}]")))
    rows.sort()
    return tuple(fee for _, fee in rows)


def parse_estimate(result: Any) -> int:
    """The ``priorityFeeEstimate`` of a ``getPriorityFeeEstimate`` result."""
    if not isinstance(result, dict) or "priorityFeeEstimate" not in result:
        raise FeeUnavailable("getPriorityFeeEstimate: no priorityFeeEstimate in the result")
    return _fee(result["priorityFeeEstimate"], "priorityFeeEstimate")


def parse_levels(result: Any) -> dict[PriorityLevel, int]:
    """Every level of a ``getPriorityFeeEstimate`` result asked with ``includeAllPriorityFeeLevels``."""
    levels = result.get("priorityFeeLevels") if isinstance(result, dict) else None
    if not isinstance(levels, dict):
        raise FeeUnavailable("getPriorityFeeEstimate: no priorityFeeLevels in the result")
    missing = [level.key for level in PriorityLevel if level.key not in levels]
    if missing:
        raise FeeUnavailable(f"priorityFeeLevels: missing {', '.join(missing)}")
    return {level: _fee(levels[level.key], f"priorityFeeLevels.{level.key}") for level in PriorityLevel}


def _writable_keys(accounts: Iterable[Pubkey]) -> tuple[str, ...]:
    """The accounts as a sorted, de-duplicated key (one pool asked in any order is one entry)."""
    keys = tuple(sorted({str(a) for a in accounts}))
    if not keys:
        raise ValueError("accounts: at least one writable account is required (without any, mainnet answers zeros)")
    if len(keys) > MAX_FEE_ACCOUNTS:
        raise ValueError(f"accounts: at most {MAX_FEE_ACCOUNTS} writable accounts, got {len(keys)}")
    return keys


class FeeClient:
    """Asks ``[execution.fees]``'s provider for the recent fees of a set of writable accounts."""

    def __init__(
        self,
        settings: FeeSettings,
        rpc_url: str,
        session: aiohttp.ClientSession,
        *,
        clock: Callable[[], float] = time.monotonic,
        quotas: Quotas | None = None,
    ) -> None:
        settings.validate()
        self.settings = settings
        estimating = settings.provider is FeeProvider.ESTIMATE
        self.url = (settings.estimate_url or rpc_url) if estimating else rpc_url
        self.session = session
        self.clock = clock
        #: Each request takes its turn in the ``rpc_read`` budget (None: unbudgeted).
        self.quotas = quotas
        #: Requests actually sent (what the cache saves is visible here).
        self.requests = 0
        self._ids = itertools.count(1)
        self._cache: OrderedDict[tuple[str, ...], tuple[float, asyncio.Future[FeeSample]]] = OrderedDict()

    async def sample(self, accounts: Iterable[Pubkey]) -> FeeSample:
        """The provider's recent fees for ``accounts`` (the accounts the transaction writes).

        Raises :class:`ValueError` for no accounts or more than 128, :class:`FeeUnavailable`
        when the provider fails (a failure is not cached: the next trade asks again).
        """
        keys = _writable_keys(accounts)
        now = self.clock()
        cached = self._cache.get(keys)
        if cached is not None and cached[0] > now:
            return await asyncio.shield(cached[1])
        future: asyncio.Future[FeeSample] = asyncio.get_running_loop().create_future()
        self._cache[keys] = (now + self.settings.cache_s, future)
        self._cache.move_to_end(keys)
        while len(self._cache) > self.settings.cache_entries:
            self._cache.popitem(last=False)
        try:
            fetched = await self._fetch(keys)
        except BaseException as exc:
            if self._cache.get(keys, (0.0, None))[1] is future:
                del self._cache[keys]
            future.set_exception(exc if isinstance(exc, Exception) else FeeUnavailable("cancelled"))
            future.exception()  # retrieved here: waiters re-raise it, nobody else must
            raise
        future.set_result(fetched)
        return fetched

    def _fetch(self, keys: tuple[str, ...]) -> Awaitable[FeeSample]:
        if self.settings.provider is FeeProvider.RPC:
            return self._recent(keys)
        return self._levels(keys)

    async def _recent(self, keys: tuple[str, ...]) -> FeeSample:
        result = await self._call("getRecentPrioritizationFees", [list(keys)])
        return FeeSample(slot_fees=parse_recent_fees(result))

    async def _levels(self, keys: tuple[str, ...]) -> FeeSample:
        # One request serves every tier: the cache then answers a Medium and a VeryHigh trade alike.
        options = {"includeAllPriorityFeeLevels": True}
        result = await self._call("getPriorityFeeEstimate", [{"accountKeys": list(keys), "options": options}])
        return FeeSample(levels=parse_levels(result))

    async def estimate(self, accounts: Iterable[Pubkey], level: PriorityLevel) -> int:
        """Helius' single estimate for ``accounts`` at ``level`` (not cached)."""
        keys = _writable_keys(accounts)
        params = [{"accountKeys": list(keys), "options": {"priorityLevel": level.value}}]
        return parse_estimate(await self._call("getPriorityFeeEstimate", params))

    async def _call(self, method: str, params: list[Any]) -> Any:
        payload = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
        try:
            async with turn(self.quotas, Endpoint.RPC_READ) as t:
                self.requests += 1
                async with self.session.post(self.url, json=payload, timeout=timeout) as resp:
                    t.answered(resp.status, resp.headers.get("Retry-After"))
                    if resp.status == 429:
                        raise FeeThrottled(f"{method}: HTTP 429 (Retry-After {resp.headers.get('Retry-After')})")
                    if resp.status != 200:
                        raise FeeUnavailable(f"{method}: HTTP {resp.status}")
                    body = await resp.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise FeeUnavailable(f"{method}: {type(exc).__name__}: {exc}") from None
        if not isinstance(body, dict):
            raise FeeUnavailable(f"{method}: the reply is not a JSON-RPC object")
        if "error" in body:
            error = body["error"] if isinstance(body["error"], dict) else {}
            raise FeeUnavailable(f"{method}: error {error.get('code')}: {error.get('message')}")
        if "result" not in body:
            raise FeeUnavailable(f"{method}: the reply has no result")
        return body["result"]
