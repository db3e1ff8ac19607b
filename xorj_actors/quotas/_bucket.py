"""The token bucket, pure: a state and a clock reading in, a new state and a decision out.

Rules (docs/QUOTAS.md):

- Capacity is the budget's burst ``B``; the full rate is ``(requests - B + 1) / window_s``, so
  no half-open window of ``window_s`` ever holds more than ``requests`` grants.
- A 429 is AIMD's multiplicative decrease: the rate factor is multiplied by ``decrease`` (not
  below ``min_rate_fraction``), the bucket is emptied and paused for ``Retry-After`` (else
  ``pause_s``). Each success after that adds ``increase`` back, up to the full rate.
"""

from __future__ import annotations

import email.utils
import math
from dataclasses import dataclass, replace

from xorj_actors.quotas.settings import EndpointBudget

__all__ = [
    "MAX_RETRY_AFTER_S",
    "BucketState",
    "full_rate",
    "give_back",
    "new_state",
    "on_success",
    "on_throttled",
    "retry_after_seconds",
    "take",
]

#: Longest pause a ``Retry-After`` may impose; a longer one is clamped (a provider's typo must
#: not stall trading for a day: the bucket then probes again at the reduced rate).
MAX_RETRY_AFTER_S = 300.0


@dataclass(frozen=True, slots=True)
class BucketState:
    """Tokens held at clock reading ``at``, the AIMD rate factor, and any pause."""

    tokens: float
    at: float
    rate_factor: float = 1.0
    paused_until: float = 0.0


def full_rate(budget: EndpointBudget) -> float:
    """Tokens per second at a rate factor of 1."""
    return (budget.requests - budget.effective_burst + 1) / budget.window_s


def new_state(budget: EndpointBudget, now: float) -> BucketState:
    """A full bucket at ``now``."""
    return BucketState(tokens=float(budget.effective_burst), at=now)


def _refill(budget: EndpointBudget, state: BucketState, now: float) -> BucketState:
    # A clock that went backwards refills nothing (and is not taken as the new reading).
    start = max(state.at, state.paused_until)
    if now <= start:
        return state
    tokens = min(float(budget.effective_burst), state.tokens + (now - start) * full_rate(budget) * state.rate_factor)
    # The constructor, not dataclasses.replace (several times its cost, on every grant).
    return BucketState(tokens, now, state.rate_factor, state.paused_until)


def take(budget: EndpointBudget, state: BucketState, now: float) -> tuple[BucketState, float]:
    """Try to take one token at ``now``: (new state, 0.0) if taken, else (state, seconds until
    one may be there)."""
    if now < state.paused_until:
        return state, state.paused_until - now
    state = _refill(budget, state, now)
    if state.tokens >= 1.0:
        return BucketState(state.tokens - 1.0, state.at, state.rate_factor, state.paused_until), 0.0
    # max(): a wait that rounds to 0 would make the caller spin.
    return state, max((1.0 - state.tokens) / (full_rate(budget) * state.rate_factor), 1e-6)


def give_back(budget: EndpointBudget, state: BucketState) -> BucketState:
    """Return a token taken but not used (its caller was cancelled before the call)."""
    return replace(state, tokens=min(float(budget.effective_burst), state.tokens + 1.0))


def on_throttled(budget: EndpointBudget, state: BucketState, now: float, retry_after_s: float | None) -> BucketState:
    """A 429: decrease the rate, empty the bucket, pause it (``Retry-After`` or ``pause_s``)."""
    pause = budget.pause_s if retry_after_s is None else min(max(retry_after_s, 0.0), MAX_RETRY_AFTER_S)
    factor = max(budget.min_rate_fraction, state.rate_factor * budget.decrease)
    until = max(state.paused_until, now + pause)
    return BucketState(tokens=0.0, at=max(state.at, now), rate_factor=factor, paused_until=until)


def on_success(budget: EndpointBudget, state: BucketState) -> BucketState:
    """A call that was not throttled: additive increase towards the full rate."""
    if state.rate_factor >= 1.0:
        return state
    return replace(state, rate_factor=min(1.0, state.rate_factor + budget.increase))


def retry_after_seconds(value: str | None, wall_now: float) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP date (RFC 9110 10.2.3); None when
    absent or unreadable (the bucket then pauses for its ``pause_s``)."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT; a zoneless one is read as such
        return None
    seconds = when.timestamp() - wall_now
    return max(0.0, seconds) if math.isfinite(seconds) else None
