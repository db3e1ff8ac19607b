"""One breaker's rule, pure: the sliding window, the consecutive run, cool-off, probes, re-trips.

No runtime, no clock, no I/O: every method takes ``now`` (the breaker's clock, seconds) and
says what changed; the :class:`~xorj_actors.breakers.Breaker` actor publishes, arms its
timers, audits and escalates accordingly. That keeps the rule testable in microseconds.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from xorj_actors.breakers.settings import BreakerLimits
from xorj_actors.limits import REASON_LIMIT

__all__ = ["Circuit", "CircuitState", "Recorded", "Transition"]


class CircuitState(enum.StrEnum):
    """A breaker's state. A ``StrEnum``: statuses, audit details and metrics carry the value."""

    CLOSED = "CLOSED"
    HALF_OPEN = "HALF_OPEN"
    OPEN = "OPEN"


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of state.

    Attributes:
        previous: the state left.
        state: the state entered.
        escalate: an opening the escalation rules should look at (not a reopening for want of
            a probe verdict: silence alone is no new failure).
        since_closed_s: for an opening from CLOSED within the re-trip window, the seconds since
            the breaker last closed (the re-trip rule); None otherwise.
    """

    previous: CircuitState
    state: CircuitState
    escalate: bool = False
    since_closed_s: float | None = None


@dataclass(frozen=True, slots=True)
class Recorded:
    """What one event did: ``counted`` (the published counts changed), or a ``transition``."""

    counted: bool
    transition: Transition | None = None


_NOTHING = Recorded(counted=False)
_COUNTED = Recorded(counted=True)


class Circuit:
    """CLOSED -> OPEN -> HALF_OPEN -> CLOSED, as a plain object one breaker actor owns.

    CLOSED counts failures in a sliding window (a failure exactly ``window_s`` old still counts)
    and in a consecutive run (a success ends it), and opens at either limit. OPEN lasts
    ``cool_off_s`` (:meth:`cool_off_over`), HALF_OPEN lets ``probe_trades`` trades through and
    closes after that many successes; a failure, or :meth:`probe_deadline` without a verdict,
    reopens it. Every opening increments ``generation``; timers carry the generation they were
    armed in, so a stale one does nothing.

    Args:
        limits: the breaker's ``[breakers.<name>]`` limits.
        retrip_window_s: an opening from CLOSED within this long after the last close is a re-trip.
        The keyword arguments resume a predecessor's state (all default to a fresh CLOSED breaker).
    """

    __slots__ = (
        "limits", "retrip_window_s", "state", "generation", "opened_at", "reason", "consecutive",
        "failures", "closed_at", "half_open_at", "probe_successes",
    )  # fmt: skip

    def __init__(
        self,
        limits: BreakerLimits,
        retrip_window_s: float,
        *,
        state: CircuitState = CircuitState.CLOSED,
        generation: int = 0,
        opened_at: float | None = None,
        reason: str = "",
        consecutive: int = 0,
        failures: Iterable[float] = (),
        closed_at: float | None = None,
        half_open_at: float | None = None,
        probe_successes: int = 0,
    ) -> None:
        self.limits = limits
        self.retrip_window_s = retrip_window_s
        self.state = state
        self.generation = generation
        self.opened_at = opened_at
        self.reason = reason
        self.consecutive = consecutive
        # Only the newest max_failures matter for tripping; the bound caps memory under a storm.
        self.failures: deque[float] = deque(failures, maxlen=limits.max_failures)
        self.closed_at = closed_at  # last HALF_OPEN -> CLOSED, for the re-trip rule
        self.half_open_at = half_open_at
        self.probe_successes = probe_successes

    @property
    def probes_allowed(self) -> int:
        """Trades a gate may let through now: ``probe_trades`` in HALF_OPEN, else 0."""
        return self.limits.probe_trades if self.state == CircuitState.HALF_OPEN else 0

    # -- events ----------------------------------------------------------------------------------

    def record(self, ok: bool, now: float, detail: str = "") -> Recorded:
        """One outcome at ``now``: a failure (``ok=False``) or a success."""
        pruned = self._prune(now)
        if not ok:
            self.failures.append(now)
            self.consecutive += 1
            if self.state == CircuitState.CLOSED:
                reason = self._trip_reason()
                if reason is not None:
                    reason = f"{reason} (last: {detail})" if detail else reason
                    return Recorded(True, self._open(reason, now))
            elif self.state == CircuitState.HALF_OPEN:
                reason = f"probe failed: {detail}" if detail else "probe failed"
                return Recorded(True, self._open(reason, now))
            return _COUNTED  # OPEN keeps counting, but only a cool-off leaves it
        counted = pruned or self.consecutive != 0
        self.consecutive = 0
        if self.state == CircuitState.HALF_OPEN:
            self.probe_successes += 1
            if self.probe_successes >= self.limits.probe_trades:
                return Recorded(True, self._close(now))
            return _COUNTED
        return _COUNTED if counted else _NOTHING

    def cool_off_over(self, generation: int, now: float) -> Transition | None:
        """The cool-off timer armed at opening ``generation`` fired: HALF_OPEN, if still current."""
        if self.state != CircuitState.OPEN or generation != self.generation:
            return None
        self.state = CircuitState.HALF_OPEN
        self.half_open_at = now
        self.probe_successes = 0
        return Transition(CircuitState.OPEN, CircuitState.HALF_OPEN)

    def probe_deadline(self, generation: int, now: float) -> Transition | None:
        """The probe timer of ``generation`` fired: reopen (fail closed) if still HALF_OPEN then."""
        if self.state != CircuitState.HALF_OPEN or generation != self.generation:
            return None
        transition = self._open(f"probes gave no verdict within {self.limits.probe_timeout_s:g} s", now)
        return Transition(transition.previous, transition.state)  # silence alone does not escalate

    # -- timers of a resumed breaker -------------------------------------------------------------

    def cool_off_left(self, now: float) -> float:
        """Seconds of cool-off left at ``now`` (for an OPEN breaker that resumes)."""
        elapsed = now - (self.opened_at if self.opened_at is not None else now)
        return max(0.0, self.limits.cool_off_s - elapsed)

    def probe_time_left(self, now: float) -> float:
        """Seconds until the probe deadline at ``now`` (for a HALF_OPEN breaker that resumes)."""
        elapsed = now - (self.half_open_at if self.half_open_at is not None else now)
        return max(0.0, self.limits.probe_timeout_s - elapsed)

    # -- the rule --------------------------------------------------------------------------------

    def _prune(self, now: float) -> bool:
        """Forget failures older than the window (one exactly ``window_s`` old still counts)."""
        horizon = now - self.limits.window_s
        failures = self.failures
        pruned = False
        while failures and failures[0] < horizon:
            failures.popleft()
            pruned = True
        return pruned

    def _trip_reason(self) -> str | None:
        limits = self.limits
        if len(self.failures) >= limits.max_failures:
            return f"{len(self.failures)} failures in {limits.window_s:g} s"
        if limits.max_consecutive and self.consecutive >= limits.max_consecutive:
            return f"{self.consecutive} consecutive failures"
        return None

    def _open(self, reason: str, now: float) -> Transition:
        previous = self.state
        since_closed = None if self.closed_at is None else now - self.closed_at
        retrip = previous == CircuitState.CLOSED and since_closed is not None and since_closed <= self.retrip_window_s
        self.generation += 1
        self.state = CircuitState.OPEN
        self.opened_at = now
        self.half_open_at = None
        self.probe_successes = 0
        self.reason = reason[:REASON_LIMIT]
        return Transition(previous, CircuitState.OPEN, escalate=True, since_closed_s=since_closed if retrip else None)

    def _close(self, now: float) -> Transition:
        self.state = CircuitState.CLOSED
        self.closed_at = now
        self.half_open_at = None
        self.probe_successes = 0
        self.failures.clear()
        self.consecutive = 0
        self.reason = ""
        return Transition(CircuitState.HALF_OPEN, CircuitState.CLOSED)
