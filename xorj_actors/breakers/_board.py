"""The breaker board: every breaker's latest status, readable by the executor per trade.

Like the kill switch's halt board: each breaker publishes an immutable :class:`BreakerStatus`
into its own slot, and readers take one immutable :class:`BoardSnapshot` with a single
attribute read. Only the breaker holding a slot's current claim can write it, so a replaced
(abandoned) breaker that still runs cannot overwrite its successor. The board outlives the
actors: a restarted breaker resumes from what its predecessor last published.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from supervisors import Message
from xorj_actors.breakers._circuit import CircuitState
from xorj_actors.breakers.settings import BreakerName

__all__ = ["BoardSnapshot", "BreakerBoard", "BreakerStatus", "StaleClaim"]


class BreakerStatus(Message):
    """One breaker's published state.

    ``generation`` grows by one at every opening, so a gate counts probes per HALF_OPEN period.
    ``opened_at`` is on the breaker's clock (monotonic by default), None while never opened.
    ``failures_in_window`` and ``consecutive`` are as of the breaker's last event.
    """

    breaker: BreakerName
    state: CircuitState
    generation: int
    probes_allowed: int  # trades a gate may let through in HALF_OPEN; 0 otherwise
    failures_in_window: int
    consecutive: int
    opened_at: float | None
    reason: str


@dataclass(frozen=True, slots=True)
class Memory:
    """What a restarted breaker needs beyond its status (private to the breakers)."""

    failures: tuple[float, ...] = ()  # failure times still in the window, oldest first
    closed_at: float | None = None  # last HALF_OPEN -> CLOSED, for the re-trip rule
    half_open_at: float | None = None
    probe_successes: int = 0


@dataclass(frozen=True, slots=True)
class BoardSnapshot:
    """All slots at one instant.

    Attributes:
        statuses: last published status per breaker (a dead breaker's last word stays).
        running: breakers whose actor holds its slot now.
        blocking: breakers, in priority order, that are not CLOSED or not running (or never
            published): the only ones a gate has to look at. Empty: every trade may go.
    """

    statuses: Mapping[BreakerName, BreakerStatus]
    running: frozenset[BreakerName]
    blocking: tuple[BreakerName, ...]


class StaleClaim(RuntimeError):
    """A breaker wrote a slot it no longer holds (it was replaced)."""


class _Claim:
    __slots__ = ("breaker",)

    def __init__(self, breaker: BreakerName) -> None:
        self.breaker = breaker


class BreakerBoard:
    """Holds the breakers' statuses. ``names`` fixes the slots and their priority order.

    Names are :class:`BreakerName` values (plain strings are converted; an unknown one raises
    ValueError); lookups take either, a ``StrEnum`` member being equal to its value.
    """

    __slots__ = ("_names", "_lock", "_claims", "_statuses", "_memory", "_snapshot")

    def __init__(self, names: Iterable[str]) -> None:
        self._names: tuple[BreakerName, ...] = tuple(BreakerName(n) for n in names)
        if len(set(self._names)) != len(self._names) or not self._names:
            raise ValueError("names: must be distinct and not empty")
        self._lock = threading.Lock()  # writers only; breakers may run on different workers
        self._claims: dict[BreakerName, _Claim] = {}
        self._statuses: dict[BreakerName, BreakerStatus] = {}
        self._memory: dict[BreakerName, Memory] = {}
        self._snapshot = self._build()

    @property
    def names(self) -> tuple[BreakerName, ...]:
        return self._names

    @property
    def snapshot(self) -> BoardSnapshot:
        """The current snapshot (one atomic attribute read; never changes afterwards)."""
        return self._snapshot

    def status(self, breaker: str) -> BreakerStatus | None:
        return self._snapshot.statuses.get(breaker)

    # -- the owning breaker's side ---------------------------------------------------------------

    def claim(self, breaker: str) -> tuple[_Claim, BreakerStatus | None, Memory]:
        """Take ``breaker``'s slot (from a predecessor too); returns the claim and what it left."""
        if breaker not in self._names:
            raise KeyError(f"no slot {breaker!r} on this board (slots: {', '.join(self._names)})")
        claim = _Claim(BreakerName(breaker))
        with self._lock:
            self._claims[claim.breaker] = claim
            self._snapshot = self._build()
            return claim, self._statuses.get(claim.breaker), self._memory.get(claim.breaker, Memory())

    def publish(self, claim: _Claim, status: BreakerStatus, memory: Memory) -> None:
        """Replace the claim holder's slot. StaleClaim if the slot was claimed by a successor."""
        if status.breaker != claim.breaker:
            raise ValueError(f"a {claim.breaker} claim cannot publish {status.breaker}")
        with self._lock:
            if self._claims.get(claim.breaker) is not claim:
                raise StaleClaim(f"{claim.breaker}: slot claimed by a newer breaker")
            self._statuses[claim.breaker] = status
            self._memory[claim.breaker] = memory
            self._snapshot = self._build()

    def release(self, claim: _Claim) -> None:
        """The breaker has ended: its status stays, but it blocks until a successor claims."""
        with self._lock:
            if self._claims.get(claim.breaker) is claim:
                del self._claims[claim.breaker]
                self._snapshot = self._build()

    def _build(self) -> BoardSnapshot:
        statuses = dict(self._statuses)
        running = frozenset(self._claims)
        blocking = tuple(
            n for n in self._names if n not in running or n not in statuses or statuses[n].state != CircuitState.CLOSED
        )
        return BoardSnapshot(statuses=MappingProxyType(statuses), running=running, blocking=blocking)
