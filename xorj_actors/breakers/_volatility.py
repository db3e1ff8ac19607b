"""What a ``market_volatility`` event is, as a detector a price monitor feeds."""

from __future__ import annotations

import math
from collections import deque

from xorj_actors.breakers.settings import VolatilitySettings

__all__ = ["VolatilityDetector"]


class _Track:
    __slots__ = ("lows", "highs")

    def __init__(self) -> None:
        # Monotonic deques of (time, price): the window's lowest and highest price at the front.
        self.lows: deque[tuple[float, float]] = deque()
        self.highs: deque[tuple[float, float]] = deque()


class VolatilityDetector:
    """Turns price samples into ``market_volatility`` events (not an actor: the monitor owns it).

    An event is a price of one token more than ``move_threshold`` above the lowest, or more than
    ``move_threshold`` below the highest (as a fraction of that earlier price), of the prices of
    that token seen in the last ``move_window_s`` seconds. It is a move within that window, not
    an annualised figure. After an event the token's window starts again from the current
    price, so one move is one event and a move that goes on another 50 % is another one.

    The monitor reports each event as ``report(runtime, BreakerName.MARKET_VOLATILITY, False,
    detail)`` and, when :meth:`calm` says so (a whole window of samples without an event), one
    success ``report(runtime, BreakerName.MARKET_VOLATILITY, True, "calm")``; successes close a
    HALF_OPEN breaker.
    Amortised O(1) per sample.
    """

    def __init__(self, settings: VolatilitySettings | None = None) -> None:
        self.settings = VolatilitySettings() if settings is None else settings
        self._tracks: dict[str, _Track] = {}
        self._quiet_since: float | None = None  # last event, last calm report, or first sample
        self._last_sample: float | None = None

    def observe(self, token: str, price: float, now: float) -> str | None:
        """Feed one sample (``now``: monotonic seconds); the event's detail, or None."""
        if not (math.isfinite(price) and price > 0):
            raise ValueError(f"price: must be a finite positive number, got {price!r}")
        window, threshold = self.settings.move_window_s, self.settings.move_threshold
        track = self._tracks.get(token)
        if track is None:
            track = self._tracks[token] = _Track()
        horizon = now - window
        lows, highs = track.lows, track.highs
        while lows and lows[0][0] < horizon:
            lows.popleft()
        while highs and highs[0][0] < horizon:
            highs.popleft()
        self._last_sample = now
        if self._quiet_since is None:
            self._quiet_since = now
        detail = None
        if lows and price > lows[0][1] * (1 + threshold):
            t0, p0 = lows[0]
            detail = f"{token} rose {price / p0 - 1:+.1%} in {now - t0:.0f} s ({p0:g} -> {price:g})"
        elif highs and price < highs[0][1] * (1 - threshold):
            t0, p0 = highs[0]
            detail = f"{token} fell {price / p0 - 1:+.1%} in {now - t0:.0f} s ({p0:g} -> {price:g})"
        if detail is not None:
            lows.clear()
            highs.clear()
            self._quiet_since = now
        while lows and lows[-1][1] >= price:
            lows.pop()
        lows.append((now, price))
        while highs and highs[-1][1] <= price:
            highs.pop()
        highs.append((now, price))
        return detail

    def calm(self, now: float) -> bool:
        """True (once per window) when a whole window has passed with samples and no event."""
        if self._quiet_since is None or self._last_sample is None:
            return False
        window = self.settings.move_window_s
        if now - self._quiet_since < window or now - self._last_sample > window:
            return False
        self._quiet_since = now
        return True
