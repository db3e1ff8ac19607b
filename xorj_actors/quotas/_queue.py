"""The fair queue of one bucket: callers wait their turn instead of failing.

When the bucket binds, waiters are served round robin across owners (vaults), oldest first
within an owner. Everything runs on one asyncio loop; the only timer is the next moment the
bucket may have a token, plus one per waiter with a deadline.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from xorj_actors.quotas._source import TokenSource

__all__ = ["FairQueue", "QuotaDropped", "QuotaError", "QuotaExpired", "QuotaRefused", "Waiting"]


class QuotaError(Exception):
    """A call that did not get its turn; ``reason`` says why."""

    reason: str = "quota"

    def __init__(self, endpoint: str, message: str) -> None:
        super().__init__(f"{endpoint}: {message}")
        self.endpoint = endpoint


class QuotaRefused(QuotaError):
    """Backpressure: the endpoint's queue is full; nothing was queued."""

    reason = "queue_full"


class QuotaExpired(QuotaError):
    """The caller's deadline passed while it waited: re-quote, then ask again."""

    reason = "expired"


class QuotaDropped(QuotaError):
    """The waiting work was dropped (the kill switch halted)."""

    reason = "dropped"


@dataclass(eq=False, slots=True)
class Waiting:
    """One waiter, as :meth:`FairQueue.drop`'s predicate sees it."""

    endpoint: str
    owner: str
    #: The caller's label of the work (e.g. ``"unsigned"``), for :meth:`FairQueue.drop`.
    kind: str
    since: float
    deadline: float | None
    future: asyncio.Future[float] = field(repr=False)
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


class FairQueue:
    """Waiters for one :class:`TokenSource`.

    Args:
        name: the bucket's endpoint name (in errors).
        source: the tokens.
        max_waiting: waiters allowed at once; one more is :class:`QuotaRefused`.
        on_grant: called with (endpoint, seconds waited) for each grant (the wait histogram).
    """

    def __init__(
        self, name: str, source: TokenSource, max_waiting: int,
        on_grant: Callable[[str, float], None] | None = None,
    ) -> None:
        self.name = name
        self.source = source
        self.max_waiting = max_waiting
        self._on_grant = on_grant
        #: owner -> its waiters, oldest first; the first owner is served next.
        self._owners: OrderedDict[str, deque[Waiting]] = OrderedDict()
        #: The same for waiters with a deadline: work already under way (a trade holding a
        #: quote), served before any new work, so a binding budget finishes what it started
        #: instead of spending its turns on quotes that go stale while they wait.
        self._urgent: OrderedDict[str, deque[Waiting]] = OrderedDict()
        self._count = 0
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return self._count

    def owners(self) -> int:
        """Owners with work waiting."""
        return len(set(self._owners) | set(self._urgent))

    async def acquire(self, endpoint: str, owner: str, deadline: float | None = None, kind: str = "") -> float:
        """Wait for a token of this bucket; return the seconds waited (clock: the loop's).

        Raises:
            QuotaRefused: the queue is full (nothing changed).
            QuotaExpired: ``deadline`` (loop time) passed while waiting.
            QuotaDropped: :meth:`drop` dropped this work.
        """
        if self.grant_now(endpoint):
            return 0.0
        loop = self._bind()
        now = loop.time()
        if self._count >= self.max_waiting:
            raise QuotaRefused(endpoint, f"{self._count} callers already waiting (max_waiting {self.max_waiting})")
        if deadline is not None and deadline <= now:
            raise QuotaExpired(endpoint, "the deadline had passed when the bucket was empty")
        w = Waiting(endpoint, owner, kind, now, deadline, loop.create_future())
        (self._urgent if deadline is not None else self._owners).setdefault(owner, deque()).append(w)
        self._count += 1
        if deadline is not None:
            w.timer = loop.call_at(deadline, self._expire, w)
        self._kick(0.0)
        try:
            return await w.future
        except asyncio.CancelledError:
            if w.future.done() and not w.future.cancelled() and w.future.exception() is None:
                # Granted, then cancelled before it ran: the token goes back, none is lost.
                self.source.give_back(loop.time())
            else:
                self._remove(w)
            self._kick(0.0)
            raise

    def grant_now(self, endpoint: str) -> bool:
        """Take a token at once if nobody waits and the bucket has one (no coroutine, no wait).

        Must run on the queue's loop, as :meth:`acquire`; False: :meth:`acquire` must wait.
        """
        loop = self._bind()
        if self._count or self.source.try_take(loop.time()) != 0.0:
            return False
        self._granted(endpoint, 0.0)
        return True

    def drop(self, predicate: Callable[[Waiting], bool], reason: str) -> int:
        """Drop every waiter ``predicate`` picks at once; each raises :class:`QuotaDropped`."""
        picked = [w for lane in (self._urgent, self._owners) for ws in lane.values() for w in ws if predicate(w)]
        for w in picked:
            self._remove(w)
            if not w.future.done():
                w.future.set_exception(QuotaDropped(w.endpoint, reason))
        return len(picked)

    # -- internals ----------------------------------------------------------------------------

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            if self._count:
                raise RuntimeError(f"the {self.name} quota queue runs on one event loop; called from another")
            # Nobody waits on the old loop (a restarted executor runs a new one): move over.
            self._loop = loop
        return loop

    def _granted(self, endpoint: str, waited: float) -> None:
        if self._on_grant is not None:
            self._on_grant(endpoint, waited)

    def _lane(self, w: Waiting) -> OrderedDict[str, deque[Waiting]]:
        return self._urgent if w.deadline is not None else self._owners

    def _remove(self, w: Waiting) -> None:
        lane = self._lane(w)
        ws = lane.get(w.owner)
        if ws is None or w not in ws:
            return
        ws.remove(w)
        if not ws:
            del lane[w.owner]
        self._count -= 1
        if w.timer is not None:
            w.timer.cancel()

    def _expire(self, w: Waiting) -> None:
        self._remove(w)
        if not w.future.done():
            waited = w.deadline - w.since if w.deadline is not None else 0.0
            w.future.set_exception(QuotaExpired(w.endpoint, f"deadline passed after {waited:.3f} s waiting"))

    def _kick(self, delay: float) -> None:
        """Run the dispatcher after ``delay`` (one timer at a time: the earliest wins)."""
        loop = self._loop
        if loop is None or not self._count:
            return
        when = loop.time() + delay
        if self._timer is not None:
            if self._timer.when() <= when:
                return
            self._timer.cancel()
        self._timer = loop.call_at(when, self._dispatch)

    def _dispatch(self) -> None:
        self._timer = None
        loop = self._loop
        assert loop is not None
        while self._urgent or self._owners:
            lane = self._urgent if self._urgent else self._owners
            owner, ws = next(iter(lane.items()))
            w = ws[0]
            if w.future.done():  # cancelled, its task not yet resumed to leave: no token for it
                self._remove(w)
                continue
            now = loop.time()
            wait = self.source.try_take(now)
            if wait > 0.0:
                self._kick(wait)
                return
            ws.popleft()
            self._count -= 1
            if ws:
                lane.move_to_end(owner)  # round robin: the next owner goes next
            else:
                del lane[owner]
            if w.timer is not None:
                w.timer.cancel()
            waited = now - w.since
            w.future.set_result(waited)
            self._granted(w.endpoint, waited)
