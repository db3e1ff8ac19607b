"""The Breaker actor: counts failure events, opens, cools off, probes, closes, escalates."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from loguru import logger
from pykka import ActorDeadError

from supervisors import ControlMessage, MailboxFull, Message
from xorj_actors.audit import EventType, Severity, audit_event, record
from xorj_actors.breakers._board import BreakerBoard, BreakerStatus, Memory, StaleClaim
from xorj_actors.breakers._circuit import Circuit, CircuitState, Transition
from xorj_actors.breakers.settings import BREAKERS, BreakerName, BreakerSettings
from xorj_actors.kill_switch import KILL_SWITCH_NAME, HaltBoard, Participant
from xorj_actors.limits import REASON_LIMIT
from xorj_actors.messages import HaltMode, Trigger

__all__ = [
    "Breaker",
    "BreakerEvent",
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
    """One circuit breaker: CLOSED -> OPEN -> HALF_OPEN -> CLOSED (the rule: :class:`Circuit`).

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
        limits = settings.limits(breaker)  # KeyError naming the known breakers
        self.breaker = BreakerName(breaker)
        self.escalation = settings.escalation
        self.breakers = BreakerBoard(BREAKERS) if breakers is None else breakers
        self.clock = clock
        self.on_change = on_change
        self._claim, last, memory = self.breakers.claim(self.breaker)
        self.resumed = last is not None
        retrip_window_s = self.escalation.retrip_window_s
        if last is None:
            self.circuit = Circuit(limits, retrip_window_s)
        else:  # resume from the predecessor's last publication
            self.circuit = Circuit(
                limits,
                retrip_window_s,
                state=last.state,
                generation=last.generation,
                opened_at=last.opened_at,
                reason=last.reason,
                consecutive=last.consecutive,
                failures=memory.failures,
                closed_at=memory.closed_at,
                half_open_at=memory.half_open_at,
                probe_successes=memory.probe_successes,
            )
        self._escalation_seq = 0
        self._pending: Trigger | None = None
        self._retries = 0
        self._publish()
        self.runtime.register_name(breaker_name(self.breaker), self.actor_ref)

    # -- start and end ---------------------------------------------------------------------------

    def on_start(self) -> None:
        super().on_start()
        if not self.resumed:
            return
        circuit, now = self.circuit, self.clock()
        if circuit.state == CircuitState.OPEN:
            self.runtime.send_after(circuit.cool_off_left(now), self.actor_ref, _CoolOff(circuit.generation))
        elif circuit.state == CircuitState.HALF_OPEN:
            self.runtime.send_after(circuit.probe_time_left(now), self.actor_ref, _ProbeDeadline(circuit.generation))
        logger.warning(
            "breaker {}: restarted, resuming {} (generation {})", self.breaker, circuit.state, circuit.generation
        )
        self._audit(
            {"what": "breaker restarted", "state": circuit.state, "generation": circuit.generation}, Severity.WARNING
        )

    def on_terminate(self) -> None:
        # Until a successor claims the slot the gate treats this breaker as not running: blocks.
        self.breakers.release(self._claim)

    # -- messages --------------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        kind = type(message)
        if kind is BreakerEvent:
            return self._on_event(message)
        if kind is _CoolOff:
            transition = self.circuit.cool_off_over(message.generation, self.clock())
            if transition is not None:
                self._entered(transition)
            return None
        if kind is _ProbeDeadline:
            transition = self.circuit.probe_deadline(message.generation, self.clock())
            if transition is not None:
                self._entered(transition)
            return None
        if kind is _RetryEscalation:
            if message.seq == self._escalation_seq and self._pending is not None:
                self._send_trigger()
            return None
        if kind is GetBreakerStatus:
            return self._status()
        return super().on_receive(message)

    def _on_event(self, event: BreakerEvent) -> None:
        if event.breaker != self.breaker:
            logger.error("breaker {}: event for {} ignored: {!r}", self.breaker, event.breaker, event)
            return
        recorded = self.circuit.record(event.ok, self.clock(), event.detail)
        if recorded.transition is not None:
            self._entered(recorded.transition)
        elif recorded.counted:
            self._publish()

    # -- state changes ---------------------------------------------------------------------------

    def _entered(self, transition: Transition) -> None:
        """Publish, arm the new state's timer, log, audit and maybe escalate a state change."""
        circuit = self.circuit
        self._publish()
        state = transition.state
        if state == CircuitState.OPEN:
            self.runtime.send_after(circuit.limits.cool_off_s, self.actor_ref, _CoolOff(circuit.generation))
            logger.warning("breaker {} OPEN (generation {}): {}", self.breaker, circuit.generation, circuit.reason)
            self._changed(transition.previous, Severity.WARNING)
            if transition.escalate:
                self._escalate(transition.since_closed_s)
        elif state == CircuitState.HALF_OPEN:
            self.runtime.send_after(circuit.limits.probe_timeout_s, self.actor_ref, _ProbeDeadline(circuit.generation))
            logger.info("breaker {} HALF_OPEN: {} probe trade(s) allowed", self.breaker, circuit.limits.probe_trades)
            self._changed(transition.previous, Severity.INFO)
        else:
            logger.info("breaker {} CLOSED after {} successful probe(s)", self.breaker, circuit.limits.probe_trades)
            self._changed(transition.previous, Severity.INFO)

    def _status(self) -> BreakerStatus:
        circuit = self.circuit
        return BreakerStatus(
            breaker=self.breaker,
            state=circuit.state,
            generation=circuit.generation,
            probes_allowed=circuit.probes_allowed,
            failures_in_window=len(circuit.failures),
            consecutive=circuit.consecutive,
            opened_at=circuit.opened_at,
            reason=circuit.reason,
        )

    def _publish(self) -> None:
        circuit = self.circuit
        memory = Memory(
            failures=tuple(circuit.failures),
            closed_at=circuit.closed_at,
            half_open_at=circuit.half_open_at,
            probe_successes=circuit.probe_successes,
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

    def _changed(self, previous: CircuitState, severity: Severity) -> None:
        circuit = self.circuit
        self._audit(
            {
                "what": "breaker state change",
                "breaker": self.breaker,
                "from": previous,
                "to": circuit.state,
                "generation": circuit.generation,
                "reason": circuit.reason,
                "failures_in_window": len(circuit.failures),
                "consecutive": circuit.consecutive,
            },
            severity,
        )
        if self.on_change is not None:
            try:
                self.on_change(self.breaker, circuit.state)
            except Exception:  # noqa: BLE001 - a metrics hook must not stop the breaker
                logger.exception("breaker {}: on_change hook failed", self.breaker)

    def _audit(self, details: dict[str, Any], severity: Severity) -> None:
        record(
            self.runtime,
            audit_event(
                EventType.SYSTEM_EVENT,
                breaker_name(self.breaker),
                details,
                correlation_id=f"{breaker_name(self.breaker)}:{self.circuit.generation}",
                severity=severity,
            ),
        )

    # -- escalation to the kill switch -----------------------------------------------------------

    def _escalate(self, since_closed_s: float | None) -> None:
        """``since_closed_s``: not None when this opening is a re-trip (:class:`Transition`)."""
        esc = self.escalation
        rules: list[tuple[str, str]] = []
        if self.breaker in esc.on_trip:
            rules.append((esc.on_trip_mode, "every trip of this breaker escalates"))
        if esc.on_retrip and since_closed_s is not None:
            rules.append((esc.retrip_mode, f"tripped again {since_closed_s:.0f} s after closing"))
        if esc.on_concurrent:
            statuses = self.breakers.snapshot.statuses
            not_closed = [
                n for n in self.breakers.names if n in statuses and statuses[n].state != CircuitState.CLOSED
            ]
            if len(not_closed) >= esc.concurrent_open:
                rules.append((esc.concurrent_mode, f"{len(not_closed)} breakers not closed: {', '.join(not_closed)}"))
        if not rules:
            return
        mode = HaltMode.EMERGENCY if any(m == HaltMode.EMERGENCY.value for m, _ in rules) else HaltMode.GRACEFUL
        reason = f"breaker {self.breaker} OPEN ({self.circuit.reason}); " + "; ".join(why for _, why in rules)
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
