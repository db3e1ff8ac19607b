"""The trades of the last minute: rate, outcomes by status, intent-to-confirmed percentiles.

The executor's ``on_outcome`` hook records each final outcome here (on the executor's thread);
the debug socket's ``trades`` command reads a snapshot (on its own thread) without asking any
actor, so ``xorj-actors top`` can poll it every second at no cost to trading. Prometheus has the
same figures as counters and a histogram; this window answers "what is happening now" exactly,
without a Prometheus server between the operator and the engine.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final

__all__ = ["TRADE_WINDOW_S", "TradeWindow"]

#: How far back the window looks (``xorj-actors top``: "over the last minute").
TRADE_WINDOW_S: Final = 60.0
#: At most this many outcomes are kept: past it the oldest go first (a burst of more than ~1,600
#: trades a second then shows a rate over a shorter span, never unbounded memory).
_MAX_ENTRIES: Final = 100_000
_CONFIRMED: Final = "confirmed"


def _percentile(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class TradeWindow:
    """Final trade outcomes of the last ``window_s`` seconds; thread-safe.

    Args:
        window_s: how far back :meth:`snapshot` looks.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, window_s: float = TRADE_WINDOW_S, *, clock: Callable[[], float] = time.monotonic) -> None:
        if not math.isfinite(window_s) or window_s <= 0:
            raise ValueError(f"window_s must be a positive number of seconds, not {window_s!r}")
        self.window_s = window_s
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()
        #: (at, status, seconds from intent to the outcome), oldest first.
        self._entries: deque[tuple[float, str, float]] = deque(maxlen=_MAX_ENTRIES)
        self._total = 0

    def record(self, status: str, seconds: float) -> None:
        """One final outcome: its status and its time from the trade request (the intent)."""
        with self._lock:
            self._entries.append((self._clock(), str(status), float(seconds)))
            self._total += 1

    def on_outcome(self, outcome: Any, seconds: float) -> None:
        """The executor's ``on_outcome`` hook (a ``TradeOutcome`` and its time since the request)."""
        self.record(outcome.status, seconds)

    def after(self, hook: Callable[[Any, float], None]) -> Callable[[Any, float], None]:
        """One executor ``on_outcome`` hook that calls ``hook`` (the metrics'), then records here."""

        def on_outcome(outcome: Any, seconds: float) -> None:
            hook(outcome, seconds)
            self.on_outcome(outcome, seconds)

        return on_outcome

    def snapshot(self) -> dict[str, Any]:
        """``window_s``, ``covered_s`` (the window, or the time since the start when shorter),
        ``outcomes`` by status, ``rate_per_s``, ``confirmed_p50_s`` and ``confirmed_p99_s``
        (intent to confirmed, null without a confirmed trade) in the window, and ``total`` since
        the start."""
        now = self._clock()
        with self._lock:
            while self._entries and self._entries[0][0] < now - self.window_s:
                self._entries.popleft()
            entries = list(self._entries)
            total = self._total
        outcomes: dict[str, int] = {}
        for _, status, _ in entries:
            outcomes[status] = outcomes.get(status, 0) + 1
        confirmed = sorted(s for _, status, s in entries if status == _CONFIRMED)
        covered = min(self.window_s, max(now - self._started, 1e-3))
        p50, p99 = _percentile(confirmed, 0.50), _percentile(confirmed, 0.99)
        return {
            "window_s": self.window_s,
            "covered_s": round(covered, 3),
            "outcomes": outcomes,
            "rate_per_s": round(len(entries) / covered, 3),
            "confirmed_p50_s": None if p50 is None else round(p50, 4),
            "confirmed_p99_s": None if p99 is None else round(p99, 4),
            "total": total,
        }
