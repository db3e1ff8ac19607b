"""The Breaker actor: counts failure events, opens, cools off, probes, closes, escalates."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from loguru import logger
from pykka import ActorDeadError

from supervisors import ControlMessage, MailboxFull, Message
from xorj_actors.audit import EventType, Severity, audit_event, record
from xorj_actors.breakers._board import CLOSED, HALF_OPEN, OPEN, BreakerBoard, BreakerStatus, Memory, StaleClaim
from xorj_actors.breakers.settings import BREAKERS, BreakerSettings
from xorj_actors.kill_switch import KILL_SWITCH_NAME, HaltBoard, Participant
from xorj_actors.limits import REASON_LIMIT
from xorj_actors.messages import HaltMode, Trigger

__all__ = [
    "Breaker",
    "BreakerEvent",
    "BreakerState",
    "GetBreakerState",
    "GetBreakerStatus",
    "breaker_name",
    "report",
]

_DETAIL_LIMIT = 300


def breaker_name(breaker: str) -> str:
    """The runtime name a breaker registers under: ``breaker:<name>``."""
    return f"breaker:{breaker}"


class BreakerEvent(Message):
    """One outcome for a breaker, told to the actor registered as ``breaker:<name>``.

    ``ok=False``: a failure, counted in the window and the consecutive run. ``ok=True``: a
    success; it ends the consecutive run and, in HALF_OPEN, counts as a successful probe.
    """

    breaker: str
    ok: bool
    detail: str


class GetBreakerState(Message):
    """Ask for a :class:`BreakerState`."""


class BreakerState(Message):
    breaker: str
    state: str  # CLOSED, OPEN, HALF_OPEN


class GetBreakerStatus(Message):
    """Ask for the breaker's current :class:`BreakerStatus` (the board has it without asking)."""


class _CoolOff(ControlMessage):  # the breaker's own timer: never refused by a full mailbox
    generation: int


class _ProbeDeadline(ControlMessage):
    generation: int


class _RetryEscalation(ControlMessage):
    seq: int


def report(runtime: Any, breaker: str, ok: bool, detail: str = "") -> None:
    """Tell breaker ``breaker`` an outcome. Never raises: an event that cannot be delivered is logged."""
    breaker = str(breaker)  # a BreakerName travels as its plain value
    try:
        ref = runtime.whereis(breaker_name(breaker))
        if ref is None:
            raise ActorDeadError(f"no breaker {breaker!r} running" + ("" if breaker in BREAKERS else " (unknown name)"))
        ref.tell(BreakerEvent(breaker=breaker, ok=ok, detail=detail[:_DETAIL_LIMIT]))
    except (ActorDeadError, MailboxFull) as exc:
        logger.error("breaker event lost ({}, ok={}, {!r}): {!r}", breaker, ok, detail[:_DETAIL_LIMIT], exc)
    except Exception:  # noqa: BLE001 - a reporter's bug must not break the trade path that reports
        logger.exception("breaker event not sent ({}, ok={!r})", breaker, ok)


class Breaker(Participant):
    """One circuit breaker: CLOSED -> OPEN -> HALF_OPEN -> CLOSED.

    CLOSED counts failures (a sliding window and a consecutive run) and opens at the limits.
    OPEN blocks trades (through the :class:`TradeGate`) for ``cool_off_s``, then HALF_OPEN lets
    ``probe_trades`` trades through and closes after that many successes; a failure, or no
    verdict within ``probe_timeout_s``, reopens it. Every opening increments the generation.

    It publishes on the breaker board after every change, audits every state change and
    reports it to ``on_change(name, state)``. Its state survives halts; a restarted breaker
    resumes from its predecessor's last publication (the board outlives it), timers re-armed.

    Args:
        board: the halt board.
        breaker: one of :data:`BREAKERS`.
        settings: the ``[breakers]`` section (default: the defaults).
        breakers: the breaker board shared with the executor's gate (default: a private one,
            for a breaker used alone).
        clock: monotonic seconds, injectable for tests.
        on_change: called with (breaker, new state) after each state change.
    """

    def __init__(
        self,
        board: HaltBoard,
        breaker: str,
        settings: BreakerSettings | None = None,
        *,
        breakers: BreakerBoard | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, str], None] | None = None,
    ) -> None:
        super().__init__(board)
        settings = BreakerSettings() if settings is None else settings
        self.breaker = breaker
        self.limits = settings.limits(breaker)
        self.escalation = settings.escalation
        self.breakers = BreakerBoard(BREAKERS) if breakers is None else breakers
        self.clock = clock
        self.on_change = on_change
        self._claim, last, memory = self.breakers.claim(breaker)
        self.resumed = last is not None
        self.state: str = CLOSED if last is None else last.state
        self.generation = 0 if last is None else last.generation
        self.opened_at: float | None = None if last is None else last.opened_at
        self.reason = "" if last is None else last.reason
        self.consecutive = 0 if last is None else last.consecutive
        # Only the newest max_failures matter for tripping; the bound caps memory under a storm.
        self.failures: deque[float] = deque(memory.failures, maxlen=self.limits.max_failures)
        self.closed_at = memory.closed_at
        self.half_open_at = memory.half_open_at
        self.probe_successes = memory.probe_successes
        self._escalation_seq = 0
        self._pending: Trigger | None = None
        self._retries = 0
        self._publish()
        self.runtime.register_name(breaker_name(breaker), self.actor_ref)

    # -- start and end ---------------------------------------------------------------------------

    def on_start(self) -> None:
        super().on_start()
        if not self.resumed:
            return
        now = self.clock()
        if self.state == OPEN:
            elapsed = now - (self.opened_at if self.opened_at is not None else now)
            self.runtime.send_after(
                max(0.0, self.limits.cool_off_s - elapsed), self.actor_ref, _CoolOff(self.generation)
            )
        elif self.state == HALF_OPEN:
            elapsed = now - (self.half_open_at if self.half_open_at is not None else now)
            self.runtime.send_after(
                max(0.0, self.limits.probe_timeout_s - elapsed), self.actor_ref, _ProbeDeadline(self.generation)
            )
        logger.warning("breaker {}: restarted, resuming {} (generation {})", self.breaker, self.state, self.generation)
        self._audit({"what": "breaker restarted", "state": self.state, "generation": self.generation}, Severity.WARNING)

    def on_terminate(self) -> None:
        # Until a successor claims the slot the gate treats this breaker as not running: blocks.
        self.breakers.release(self._claim)

    # -- messages --------------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        kind = type(message)
        if kind is BreakerEvent:
            return self._on_event(message)
        if kind is _CoolOff:
            if self.state == OPEN and message.generation == self.generation:
                self._half_open()
            return None
        if kind is _ProbeDeadline:
            if self.state == HALF_OPEN and message.generation == self.generation:
                timeout = self.limits.probe_timeout_s
                # No new failure: reopen (fail closed) but do not escalate on silence alone.
                self._open(f"probes gave no verdict within {timeout:g} s", HALF_OPEN, escalate=False)
            return None
        if kind is _RetryEscalation:
            if message.seq == self._escalation_seq and self._pending is not None:
                self._send_trigger()
            return None
        if kind is GetBreakerState:
            return BreakerState(breaker=self.breaker, state=self.state)
        if kind is GetBreakerStatus:
            return self._status()
        return super().on_receive(message)

    def _on_event(self, event: BreakerEvent) -> None:
        if event.breaker != self.breaker:
            logger.error("breaker {}: event for {} ignored: {!r}", self.breaker, event.breaker, event)
            return
        now = self.clock()
        pruned = self._prune(now)
        if not event.ok:
            self.failures.append(now)
            self.consecutive += 1
            if self.state == CLOSED:
                reason = self._trip_reason()
                if reason is not None:
                    self._open(f"{reason} (last: {event.detail})" if event.detail else reason, CLOSED)
                    return
            elif self.state == HALF_OPEN:
                self._open(f"probe failed: {event.detail}" if event.detail else "probe failed", HALF_OPEN)
                return
            self._publish()
            return
        changed = pruned or self.consecutive != 0
        self.consecutive = 0
        if self.state == HALF_OPEN:
            self.probe_successes += 1
            if self.probe_successes >= self.limits.probe_trades:
                self._close()
                return
            changed = True
        if changed:
            self._publish()

    # -- the state machine -----------------------------------------------------------------------

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

    def _open(self, reason: str, previous: str, *, escalate: bool = True) -> None:
        now = self.clock()
        retrip = (
            previous == CLOSED
            and self.closed_at is not None
            and now - self.closed_at <= self.escalation.retrip_window_s
        )
        self.generation += 1
        self.state = OPEN
        self.opened_at = now
        self.half_open_at = None
        self.probe_successes = 0
        self.reason = reason[:REASON_LIMIT]
        self._publish()
        self.runtime.send_after(self.limits.cool_off_s, self.actor_ref, _CoolOff(self.generation))
        logger.warning("breaker {} OPEN (generation {}): {}", self.breaker, self.generation, self.reason)
        self._changed(previous, Severity.WARNING)
        if escalate:
            self._escalate(retrip, now)

    def _half_open(self) -> None:
        self.state = HALF_OPEN
        self.half_open_at = self.clock()
        self.probe_successes = 0
        self._publish()
        self.runtime.send_after(self.limits.probe_timeout_s, self.actor_ref, _ProbeDeadline(self.generation))
        logger.info("breaker {} HALF_OPEN: {} probe trade(s) allowed", self.breaker, self.limits.probe_trades)
        self._changed(OPEN, Severity.INFO)

    def _close(self) -> None:
        self.state = CLOSED
        self.closed_at = self.clock()
        self.half_open_at = None
        self.probe_successes = 0
        self.failures.clear()
        self.consecutive = 0
        self.reason = ""
        self._publish()
        logger.info("breaker {} CLOSED after {} successful probe(s)", self.breaker, self.limits.probe_trades)
        self._changed(HALF_OPEN, Severity.INFO)

    def _status(self) -> BreakerStatus:
        return BreakerStatus(
            breaker=self.breaker,
            state=self.state,
            generation=self.generation,
            probes_allowed=self.limits.probe_trades if self.state == HALF_OPEN else 0,
            failures_in_window=len(self.failures),
            consecutive=self.consecutive,
            opened_at=self.opened_at,
            reason=self.reason,
        )

    def _publish(self) -> None:
        memory = Memory(
            failures=tuple(self.failures),
            closed_at=self.closed_at,
            half_open_at=self.half_open_at,
            probe_successes=self.probe_successes,
        )
        status = self._status()
        try:
            self.breakers.publish(self._claim, status, memory)
        except StaleClaim:
            # A successor owns the slot: this actor was replaced and must not act any more.
            logger.error("breaker {}: replaced by a newer breaker; stopping", self.breaker)
            self.actor_ref.stop(block=False)
            raise
        self.publish_status(status)  # what the metrics and the HTTP API read, without a message

    def _changed(self, previous: str, severity: Severity) -> None:
        self._audit(
            {
                "what": "breaker state change",
                "breaker": self.breaker,
                "from": previous,
                "to": self.state,
                "generation": self.generation,
                "reason": self.reason,
                "failures_in_window": len(self.failures),
                "consecutive": self.consecutive,
            },
            severity,
        )
        if self.on_change is not None:
            try:
                self.on_change(self.breaker, self.state)
            except Exception:  # noqa: BLE001 - a metrics hook must not stop the breaker
                logger.exception("breaker {}: on_change hook failed", self.breaker)

    def _audit(self, details: dict[str, Any], severity: Severity) -> None:
        record(
            self.runtime,
            audit_event(
                EventType.SYSTEM_EVENT,
                breaker_name(self.breaker),
                details,
                correlation_id=f"{breaker_name(self.breaker)}:{self.generation}",
                severity=severity,
            ),
        )

    # -- escalation to the kill switch -----------------------------------------------------------

    def _escalate(self, retrip: bool, now: float) -> None:
        esc = self.escalation
        rules: list[tuple[str, str]] = []
        if self.breaker in esc.on_trip:
            rules.append((esc.on_trip_mode, "every trip of this breaker escalates"))
        if esc.on_retrip and retrip and self.closed_at is not None:
            rules.append((esc.retrip_mode, f"tripped again {now - self.closed_at:.0f} s after closing"))
        if esc.on_concurrent:
            statuses = self.breakers.snapshot.statuses
            not_closed = [n for n in self.breakers.names if n in statuses and statuses[n].state != CLOSED]
            if len(not_closed) >= esc.concurrent_open:
                rules.append((esc.concurrent_mode, f"{len(not_closed)} breakers not closed: {', '.join(not_closed)}"))
        if not rules:
            return
        mode = HaltMode.EMERGENCY if any(m == HaltMode.EMERGENCY.value for m, _ in rules) else HaltMode.GRACEFUL
        reason = f"breaker {self.breaker} OPEN ({self.reason}); " + "; ".join(why for _, why in rules)
        halt = self.board.status
        if halt.halted:
            # Another trigger would open a new epoch: reset the recovery cooldown and void the
            # operators' authorisations for the current one. The breaker itself still blocks.
            logger.warning("breaker {}: escalation not sent, trading already halted: {}", self.breaker, reason)
            self._audit(
                {"what": "escalation not sent: already halted", "epoch": halt.epoch, "reason": reason}, Severity.WARNING
            )
            return
        self._escalation_seq += 1
        self._pending = Trigger(mode=mode, reason=reason[:REASON_LIMIT], source=breaker_name(self.breaker))
        self._send_trigger()

    def _send_trigger(self) -> None:
        trigger = self._pending
        assert trigger is not None
        if self.board.status.halted:
            self._pending = None  # halted meanwhile (another trigger): the goal is reached
            return
        ks = self.runtime.whereis(KILL_SWITCH_NAME)
        try:
            if ks is None:
                raise ActorDeadError("kill switch not running")
            ks.tell(trigger)
        except (ActorDeadError, MailboxFull) as exc:
            if self._retries % 40 == 0:  # every ~10 s at the default retry_s, not 4 lines a second
                logger.error("breaker {}: cannot reach the kill switch ({!r}); retrying", self.breaker, exc)
            self._retries += 1
            self.runtime.send_after(self.escalation.retry_s, self.actor_ref, _RetryEscalation(self._escalation_seq))
            return
        self._pending = None
        self._retries = 0
        mode = trigger.mode.value
        logger.critical("breaker {}: escalated to the kill switch ({}): {}", self.breaker, mode, trigger.reason)
        self._audit({"what": "escalated to the kill switch", "mode": mode, "reason": trigger.reason}, Severity.CRITICAL)
