"""Every endpoint's budget in one object the engine owns: acquire a turn, report the answer.

A caller ``await quotas.acquire(endpoint, owner=vault_id, deadline=...)`` before each call and
``quotas.report(permit, status, retry_after)`` after it. The report says what the answer means
for the caller's breaker: a 429 is throttling, never a network failure.
"""

from __future__ import annotations

import asyncio
import enum
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from xorj_actors.quotas._bucket import retry_after_seconds
from xorj_actors.quotas._metrics import QuotaMetrics
from xorj_actors.quotas._queue import FairQueue, QuotaDropped, QuotaError, QuotaExpired, QuotaRefused, Waiting
from xorj_actors.quotas._source import LocalTokenSource, TokenSource
from xorj_actors.quotas.settings import Endpoint, QuotaSettings

__all__ = ["Answer", "Permit", "Quotas"]

HTTP_TOO_MANY_REQUESTS = 429
HTTP_SERVER_ERROR = 500


class Answer(enum.StrEnum):
    """What a provider's answer means for the budget and the breakers."""

    #: Not throttled (a 5xx too: that is the breakers' business); below 500 the bucket speeds up.
    OK = "ok"
    #: A 429 to a call inside our budget: the provider's limit is lower than we thought.
    THROTTLED = "throttled"
    #: A 429 to a call beyond our own budget (or made without a permit): our bug.
    SELF_INFLICTED = "self_inflicted"


@dataclass(frozen=True, slots=True)
class Permit:
    """One granted turn: the endpoint, the bucket it drew from, the wait, and whether the grant
    kept the bucket within its budget for the window."""

    endpoint: Endpoint
    bucket: Endpoint
    waited_s: float
    within_budget: bool


class Quotas:
    """The budgets of :class:`Endpoint`: one token source per bucket, shared by every thread,
    and one :class:`FairQueue` per bucket and event loop (the executor, the Confirmation actor
    and the gateway each run their own loop; a queue's futures belong to one).

    Args:
        settings: ``[quotas]``.
        registry: where the metrics go (None: no metrics).
        sources: a :class:`TokenSource` per bucket to use instead of the local one (a shared
            budget); buckets not named get a :class:`LocalTokenSource`.
        clock: monotonic seconds; must be the loop's clock (``time.monotonic`` on asyncio's loops).
        wall_clock: for ``Retry-After`` given as an HTTP date.
    """

    def __init__(
        self,
        settings: QuotaSettings,
        *,
        registry: CollectorRegistry | None = None,
        sources: Mapping[Endpoint, TokenSource] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._wall_clock = wall_clock
        now = clock()
        self._bucket = {e: settings.bucket_of(e) for e in Endpoint}
        given = dict(sources or {})
        self._sources: dict[Endpoint, TokenSource] = {
            b: given.get(b) or LocalTokenSource(settings.budget(b), now) for b in set(self._bucket.values())
        }
        self._metrics: QuotaMetrics | None = None
        if registry is not None:
            reasons = (QuotaRefused.reason, QuotaExpired.reason, QuotaDropped.reason)
            self._metrics = QuotaMetrics(registry, self.snapshot, (e.value for e in Endpoint), reasons)
        self._queues: dict[tuple[Endpoint, asyncio.AbstractEventLoop], FairQueue] = {}
        self._queues_lock = threading.Lock()
        # Counted on the loop, read by snapshot() from any thread: every key exists from the start.
        self._counts: dict[Endpoint, Counter[str]] = {e: Counter(dict.fromkeys(_COUNTS, 0)) for e in Endpoint}

    async def acquire(
        self, endpoint: Endpoint | str, *, owner: str, deadline: float | None = None, kind: str = ""
    ) -> Permit:
        """Wait for ``endpoint``'s turn (fairly across owners); ``deadline`` is on :attr:`clock`.

        Raises:
            ValueError: ``endpoint`` is no :class:`Endpoint`.
            QuotaRefused, QuotaExpired, QuotaDropped: see :mod:`xorj_actors.quotas`.
        """
        e = Endpoint(endpoint)
        bucket = self._bucket[e]
        try:
            waited = await self._queue(bucket).acquire(e.value, owner, deadline, kind)
        except QuotaError as exc:
            self._counts[e][exc.reason] += 1
            if self._metrics is not None:
                self._metrics.not_served.labels(e.value, exc.reason).inc()
            raise
        return self._permit(e, bucket, waited)

    def grant_now(self, endpoint: Endpoint) -> Permit | None:
        """``endpoint``'s turn at once when its budget has room and nobody waits; None: await
        :meth:`acquire` (the fast path without a coroutine, on the caller's running loop)."""
        e = Endpoint(endpoint)  # a plain string names it too, as in acquire
        bucket = self._bucket[e]
        if not self._queue(bucket).grant_now(e.value):
            return None
        return self._permit(e, bucket, 0.0)

    def _permit(self, e: Endpoint, bucket: Endpoint, waited: float) -> Permit:
        source = self._sources[bucket]
        now = self._clock()
        used = source.used_in_window(now) if isinstance(source, LocalTokenSource) else source.status(now).used_in_window
        within = used <= source.budget.requests
        self._counts[e]["granted"] += 1
        return Permit(endpoint=e, bucket=bucket, waited_s=waited, within_budget=within)

    def report(
        self, endpoint: Endpoint | str, status: int, *, permit: Permit | None, retry_after: str | None = None
    ) -> Answer:
        """Tell the bucket how ``endpoint`` answered (HTTP ``status``, its ``Retry-After``).

        A 429 shrinks and pauses the bucket (docs/QUOTAS.md). It is the provider's when the call
        held a ``permit`` granted within the budget, else ours (:attr:`Answer.SELF_INFLICTED`).
        Neither is a network failure: callers keep both away from their breakers.
        """
        e = Endpoint(endpoint)
        source = self._sources[self._bucket[e]]
        now = self._clock()
        if status != HTTP_TOO_MANY_REQUESTS:
            if status < HTTP_SERVER_ERROR:  # a failing server shows no spare capacity: no increase
                source.succeeded(now)
            return Answer.OK
        source.throttled(now, retry_after_seconds(retry_after, self._wall_clock()))
        ours = permit is None or not permit.within_budget
        answer = Answer.SELF_INFLICTED if ours else Answer.THROTTLED
        self._counts[e][answer.value] += 1
        if self._metrics is not None:
            self._metrics.throttled.labels(e.value).inc()
            if ours:
                self._metrics.self_inflicted.labels(e.value).inc()
        return answer

    def drop(self, predicate: Callable[[Waiting], bool], reason: str) -> int:
        """Drop the waiting work ``predicate`` picks, in every queue, at once (the kill switch:
        ``drop(lambda w: w.kind == "unsigned", "halted")``). Queues on the caller's loop are
        dropped now and counted; those on other loops as soon as their loop runs."""
        try:
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        dropped = 0
        for (_, loop), queue in self._queue_items():
            if loop is here:
                dropped += queue.drop(predicate, reason)
            elif not loop.is_closed():
                loop.call_soon_threadsafe(queue.drop, predicate, reason)
        return dropped

    def waiting(self, endpoint: Endpoint | str) -> int:
        """Callers waiting for ``endpoint``'s bucket, on every loop."""
        bucket = self._bucket[Endpoint(endpoint)]
        return sum(len(q) for (b, _), q in self._queue_items() if b is bucket)

    def _queue(self, bucket: Endpoint) -> FairQueue:
        """``bucket``'s queue on the running loop (made on first use; closed loops' pruned)."""
        loop = asyncio.get_running_loop()
        queue = self._queues.get((bucket, loop))
        if queue is None:
            with self._queues_lock:
                for key in [k for k in self._queues if k[1].is_closed()]:
                    del self._queues[key]
                queue = self._queues.get((bucket, loop))
                if queue is None:
                    budget = self._sources[bucket].budget
                    queue = FairQueue(bucket.value, self._sources[bucket], budget.max_waiting, self._on_grant)
                    self._queues[(bucket, loop)] = queue
        return queue

    def _queue_items(self) -> list[tuple[tuple[Endpoint, asyncio.AbstractEventLoop], FairQueue]]:
        with self._queues_lock:
            return list(self._queues.items())

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every endpoint's budget and figures now, JSON-able (``ctl quotas``); any thread."""
        now = self._clock()
        out: dict[str, dict[str, Any]] = {}
        statuses = {b: s.status(now) for b, s in self._sources.items()}
        queues: dict[Endpoint, list[FairQueue]] = {b: [] for b in self._sources}
        for (b, _), q in self._queue_items():
            queues[b].append(q)
        for e in Endpoint:
            bucket = self._bucket[e]
            budget, st = self._sources[bucket].budget, statuses[bucket]
            counts = dict(self._counts[e])
            out[e.value] = {
                "bucket": bucket.value,
                "requests": budget.requests,
                "window_s": budget.window_s,
                "burst": budget.effective_burst,
                "used_in_window": st.used_in_window,
                "used_ratio": round(st.used_in_window / budget.requests, 4),
                "tokens": st.tokens,
                "rate_factor": st.rate_factor,
                "paused_for_s": st.paused_for_s,
                "waiting": sum(len(q) for q in queues[bucket]),
                "waiting_owners": sum(q.owners() for q in queues[bucket]),
                **{k: counts.get(k, 0) for k in _COUNTS},
            }
        return out

    def _on_grant(self, endpoint: str, waited: float) -> None:
        if self._metrics is not None:
            self._metrics.wait_of[endpoint].observe(waited)


#: The per-endpoint counts in a snapshot row.
_COUNTS = ("granted", "throttled", "self_inflicted", "queue_full", "expired", "dropped")
