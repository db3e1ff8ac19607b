"""Where a bucket's tokens come from: :class:`TokenSource`, and the in-process one.

The fair queue asks a :class:`TokenSource` for tokens and tells it of 429s; it never sees the
bucket. A budget shared by several engine processes on one IP (the Cluster issue) plugs in as
another :class:`TokenSource` (docs/QUOTAS.md, "Sharing a budget"): say, one that leases batches
of tokens from a NATS key-value bucket with compare-and-set, and returns unused leases.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from xorj_actors.quotas import _bucket
from xorj_actors.quotas.settings import EndpointBudget

__all__ = ["LocalTokenSource", "SourceStatus", "TokenSource"]


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """A bucket's figures at one clock reading (for ``ctl quotas`` and the metrics)."""

    tokens: float
    rate_factor: float
    paused_for_s: float
    used_in_window: int


@runtime_checkable
class TokenSource(Protocol):
    """A bucket's tokens. Every method is called on the fair queue's loop and must not block
    (a shared source keeps a local lease and refills it in the background)."""

    budget: EndpointBudget

    def try_take(self, now: float) -> float:
        """Take a token: 0.0 if taken, else seconds until it is worth asking again."""

    def give_back(self, now: float) -> None:
        """Return a token taken whose call was never made."""

    def throttled(self, now: float, retry_after_s: float | None) -> None:
        """The provider answered 429."""

    def succeeded(self, now: float) -> None:
        """The provider answered without throttling."""

    def status(self, now: float) -> SourceStatus:
        """The figures now; callable from any thread."""


class LocalTokenSource:
    """The in-process bucket (:mod:`xorj_actors.quotas._bucket`), with the grants of the last
    window counted (``used_in_window``: at most ``requests``, one timestamp each)."""

    def __init__(self, budget: EndpointBudget, now: float) -> None:
        self.budget = budget
        self._state = _bucket.new_state(budget, now)
        self._grants: deque[float] = deque()
        # status() is read from the debug socket's thread while the loop grants.
        self._lock = threading.Lock()

    def _prune(self, now: float) -> None:
        horizon = now - self.budget.window_s
        while self._grants and self._grants[0] <= horizon:
            self._grants.popleft()

    def try_take(self, now: float) -> float:
        with self._lock:
            self._state, wait = _bucket.take(self.budget, self._state, now)
            if wait == 0.0:
                self._grants.append(now)
                self._prune(now)
            return wait

    def give_back(self, now: float) -> None:
        with self._lock:
            self._state = _bucket.give_back(self.budget, self._state)
            if self._grants:
                self._grants.pop()

    def throttled(self, now: float, retry_after_s: float | None) -> None:
        with self._lock:
            self._state = _bucket.on_throttled(self.budget, self._state, now, retry_after_s)

    def succeeded(self, now: float) -> None:
        with self._lock:
            self._state = _bucket.on_success(self.budget, self._state)

    def used_in_window(self, now: float) -> int:
        """Grants in the last window (what :meth:`status` reports, without the rest)."""
        with self._lock:
            self._prune(now)
            return len(self._grants)

    def status(self, now: float) -> SourceStatus:
        with self._lock:
            self._prune(now)
            s = self._state
            return SourceStatus(
                tokens=round(s.tokens, 3),
                rate_factor=round(s.rate_factor, 4),
                paused_for_s=round(max(0.0, s.paused_until - now), 3),
                used_in_window=len(self._grants),
            )
