"""The KillSwitch actor: halt epochs, acknowledgements, replacement of silent actors, recovery.

The actor is the one place that moves the state machine: ``_tighten`` (a halt: published at once,
written after the broadcast) and ``_loosen`` (trading becomes possible: durable in the audit log,
then in the state file, then published). Beside it: the start-up decision (``_start_decision``, pure),
the state file and the halt marker (``_persistence``), the ack bookkeeping (``_acks``), the kill
file (``_kill_file``), its messages (``_messages``), its ref and participant lane (``_lane``), and,
mixed into the actor, its roll of participants (``_roll``), its recovery side (``_recovering``)
and its flatten side (``_reducing``; the flatten's rules are in ``_flatten``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from loguru import logger

from supervisors import Actor, ControlMessage, Terminated
from xorj_actors.kill_switch._lane import KillSwitchRef, LaneWaiting, ParticipantLane
from xorj_actors.kill_switch._roll import ParticipantRoll, _AckDeadline
from xorj_actors.kill_switch._acks import HaltAcks
from xorj_actors.kill_switch._board import HaltBoard, HaltStatus
from xorj_actors.kill_switch._flatten import Flatten, FlattenDone, Flattening
from xorj_actors.kill_switch._kill_file import KillFile
from xorj_actors.kill_switch._liquidating import ChainClock, DowntimePending, Liquidating, _Alive, _ChainAnswer, _DowntimeStep
from xorj_actors.kill_switch._messages import (
    ClusterProof,
    EnterMaintenance,
    FollowRecovery,
    GetStatus,
    KillSwitchStatus,
    Recover,
    RecoveryOutcome,
    RekeyStateFile,
)
from xorj_actors.kill_switch._participant import KILL_SWITCH_NAME, Participant
from xorj_actors.kill_switch._durable import DurableState, _RetryPersist, redact_deep
from xorj_actors.kill_switch._persistence import STANDALONE_STATE_KEY, HaltMarker, StateFile
from xorj_actors.kill_switch._recovering import ClusterHalt, RecoveringMode, _RestartStep
from xorj_actors.kill_switch._recovery_keys import RecoveryVerifier, load_recovery_keys
from xorj_actors.kill_switch._reducing import ReducingMode, _FlattenDeadline
from xorj_actors.kill_switch._starting import StartingUp, first_start_failed
from xorj_actors.kill_switch._start_decision import HaltHistory, env_halt_request
from xorj_actors.kill_switch._state import InvalidTransition, KillSwitchState, PersistedState, check_transition
from xorj_actors.kill_switch.settings import KillSwitchSettings
from xorj_actors.limits import REASON_LIMIT
from xorj_actors.messages import HaltAck, HaltMode, Register, Trigger
from xorj_actors.redaction import Redactor

__all__ = ["ClusterHalt", "ClusterProof", "KillSwitch"]

_S = KillSwitchState


class _PollKillFile(ControlMessage):  # a timer the halt depends on: never refused
    pass


class KillSwitch(ParticipantRoll, StartingUp, DurableState, ReducingMode, RecoveringMode, Liquidating, Actor):
    """Owns the halt state of the engine.

    It runs on a thread of its own: a halt must not wait for the shared pool, whatever the
    pool's actors are doing.

    Args:
        settings: the ``[kill_switch]`` section.
        data_dir: where the state file and the kill file live.
        board: the halt board shared with every participant.
        environ: the environment (recovery keys, ``KILL_SWITCH_ACTIVE``); default ``os.environ``.
        clock: wall clock, for cooldowns, recovery timestamps and the downtime policy's judgement.
        monotonic: the monotonic clock of the downtime policy's grace (``time.monotonic``).
        chain_time: the chain's time now (blocking; read on a thread of its own): a downtime must be
            confirmed by it before the policy flattens anything. None (no engine): never confirmed.
        on_event: called with (event, details) on every transition, for the audit trail.
        on_event_durable: like ``on_event``, but returns only once the entry is durable and
            raises if it cannot be: a resume is recorded with it before it happens. None (no
            engine: tests, benchmarks): ``on_event``.
        history: reads the audit log's kill-switch history at every start (``_start_decision``). None
            (no engine): the authenticated state file alone decides.
        state_key: the state file's HMAC key (the engine derives it from the audit key). None (no
            engine): a fixed key that authenticates nothing.
        retired_state_keys: the state keys of the retired audit keys: a file written before a
            rotation is accepted under one and rewritten under ``state_key`` at start.
        redact: masks secrets in every free-text field the kill switch writes or reports; default
            a :class:`Redactor` of ``environ``.
        start_trigger: read at every start: a halt to start in when the switch is not halted
            already (a node starting during a cluster halt, docs/CLUSTER.md). None: none.
    """

    dedicated_thread: ClassVar[bool] = True

    def __init__(
        self,
        settings: KillSwitchSettings,
        data_dir: Path,
        board: HaltBoard,
        *,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        chain_time: ChainClock | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        on_event_durable: Callable[[str, dict[str, Any]], None] | None = None,
        history: Callable[[], HaltHistory] | None = None,
        state_key: bytes | None = None,
        retired_state_keys: tuple[bytes, ...] = (),
        redact: Callable[[str], str] | None = None,
        start_trigger: Callable[[], Trigger | None] | None = None,
        cluster: ClusterHalt | None = None,
    ) -> None:
        super().__init__()
        settings.validate()  # the config loader checks too; a directly built one must not hang a recovery
        self.start_trigger = start_trigger
        self.cluster = cluster
        self.settings = settings
        self.board = board
        self.clock = clock
        self.monotonic = monotonic
        self.chain_time = chain_time
        self.on_event = on_event
        self.on_event_durable = on_event_durable
        self.history = history
        # The engine's own mapping, not a copy: ``ctl reload-secrets`` rotates recovery keys in it.
        self.environ: Mapping[str, str] = dict(os.environ) if environ is None else environ
        self.redact: Callable[[str], str] = redact or Redactor.from_environ(self.environ)
        self.state_file = StateFile(data_dir / settings.state_file, state_key or STANDALONE_STATE_KEY, retired_state_keys)
        self.marker = HaltMarker(data_dir / f"{settings.state_file}.halt")
        #: The marker holds a halt (set by this instance, or found set at start).
        self.marker_set = False
        #: Set while the current halt is not durable: what failed, and the retry timer.
        self.not_durable: str | None = None
        self.retry_timer: Any = None
        self.retry_attempt = 0
        self.kill_file = KillFile(data_dir / settings.kill_file)
        self.persisted = PersistedState()
        self.persist_error: str | None = None
        # urn -> (ref, role) of every live participant; the signers and the others, urn -> ref
        self.participants: dict[str, tuple[Any, str]] = {}
        self.signers: dict[str, Any] = {}
        self.others: dict[str, Any] = {}
        self.acks = HaltAcks()
        #: The board's trips this kill switch has handled (read at start and with every Trigger).
        self.trips_seen = board.trips
        self.lane = ParticipantLane()
        self._actor_ref = KillSwitchRef(self, board, self.lane, KILL_SWITCH_NAME)
        self.step_timer: Any = None
        #: The flatten under way (state REDUCING), and the last one, for status.
        self.flattening: Flattening | None = None
        self.last_flatten: Flattening | None = None
        self.start_history: HaltHistory | None = None
        #: The downtime policy's flatten, waiting for the chain's clock and its vaults (_liquidating).
        self.downtime: DowntimePending | None = None
        # Named at once: what participants tell before on_start has run waits in the mailbox.
        self.runtime.register_name(KILL_SWITCH_NAME, self.actor_ref)

    # -- start ---------------------------------------------------------------------------------

    @property
    def verifier(self) -> RecoveryVerifier:  # type: ignore[override]
        """The recovery keys as the environment holds them now (a rotation takes effect at once)."""
        keys = load_recovery_keys(self.settings.recovery_key_envs, self.environ)
        return RecoveryVerifier(keys, self.settings.recovery_threshold)

    def on_start(self) -> None:
        decision = self._decide_start()
        self.persisted = decision.state
        for actor in self.runtime.actors():  # after a restart: find everyone again
            if issubclass(actor.actor_class, Participant) and actor.ref is not None:
                self._add_participant(actor.ref, actor.actor_class.role)
        if decision.first_start and (failure := self._record_first_start()) is not None:
            decision = first_start_failed(failure)
            self.persisted = decision.state
        self._publish()
        p = self.persisted
        if decision.halt is not None:
            self._stamp_trigger()
            logger.critical("kill switch: starting TRIGGERED (epoch {}): {}", p.epoch, decision.halt)
            self._persist()
            self._event("HALT", self._marked({"what": "triggered", "mode": p.mode, "source": p.source, "reason": p.reason}))
        elif decision.interrupted_flatten:
            logger.critical("kill switch: state file says REDUCING (a flatten was interrupted): starting TRIGGERED")
            self._persist()  # the file must not say REDUCING any longer
            self._event("HALT", self._marked({"what": "flatten interrupted by a restart", "state": p.state.value}))
        # alive_every_s: this start writes ``alive`` entries (the downtime policy's evidence, _downtime).
        started = {"what": "kill switch started", "state": self.persisted.state.value, "alive_every_s": self.settings.alive_every_s}
        self._event("SYSTEM_EVENT", started)
        active = self.environ.get("KILL_SWITCH_ACTIVE")
        halt, warning = env_halt_request(active)
        if warning is not None:
            logger.warning("kill switch: {}", warning)
        outside = self.start_trigger() if self.start_trigger is not None else None
        p = self.persisted
        why_halted = (
            f"KILL_SWITCH_ACTIVE={active}" if halt
            else f"cluster halt: {outside.reason}" if outside is not None and not p.halted
            else f"{p.state.value}: {p.reason or '-'}" if p.halted else None
        )
        if halt:
            self._trigger(HaltMode.EMERGENCY, warning or f"KILL_SWITCH_ACTIVE={active} at start", "environment")
        elif outside is not None and not self.persisted.halted:
            self._trigger(outside.mode, outside.reason, outside.source)
        elif self.persisted.halted:
            logger.warning(
                "kill switch: starting {} (epoch {}): {}",
                self.persisted.state.value,
                self.persisted.epoch,
                self.persisted.reason,
            )
            self._broadcast_halt()
        if not self._downtime_at_start(why_halted) and not self.persisted.halted:  # the policy may halt here
            self._broadcast_resume()
            if self.persisted.state is _S.RECOVERY_PENDING:
                self._schedule_step(self._factor_index() + 1)
        self._poll_kill_file()
        self._on_alive()
        self._publish_progress()

    def on_stop(self) -> None:
        for timer in (self.step_timer, self.retry_timer):
            if timer is not None:
                timer.cancel()

    def on_terminate(self) -> None:
        self.marker.close()

    # -- messages ------------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        try:
            return self._dispatch(message)
        finally:  # whatever the message changed, the metrics see it at the next scrape
            self._publish_progress()

    def _publish_progress(self) -> None:
        p = self.persisted
        self.publish_status(self.acks.progress(p.halted, self.settings.ack_deadline_s, p.epoch))

    def _dispatch(self, message: Any) -> Any:
        kind = type(message)
        if kind is LaneWaiting:
            return self._on_lane()
        if kind is Register or kind is HaltAck:  # told past the lane (a plain ref): same handling
            self.lane.push(message)
            return self._on_lane()
        if kind is Terminated:
            return self._on_terminated(message)
        if kind is Trigger:
            self.trips_seen = self.board.trips  # this one's trip, and any whose Trigger is queued
            # Only a trip through KillSwitchRef sets the epoch: never past what the board showed.
            return self._trigger(message.mode, message.reason, message.source, min(message.epoch, self.board.tripped))
        if kind is _PollKillFile:
            return self._poll_kill_file()
        if kind is _AckDeadline:
            return self._on_ack_deadline(message)
        if kind is GetStatus:
            return self.status()
        if kind is RekeyStateFile:
            self.state_file.rekey(message.key, message.retired)
            if message.rotation is not None:
                self.persisted = replace(self.persisted, audit_rotation=message.rotation)
            return self._persist()  # the current state, under the new key at once
        if kind is Recover:
            return self._recover(message)
        if kind is FollowRecovery:
            return self._follow_recovery(message)
        if kind is _RestartStep:
            return self._on_restart_step(message)
        if kind is _RetryPersist:
            return self._on_retry_persist()
        if kind is EnterMaintenance:
            return self._enter_maintenance(message)
        if kind is FlattenDone:
            return self._on_flatten_done(message)
        if kind is Flatten:
            return self._flatten(message)
        if kind is _FlattenDeadline:
            return self._on_flatten_deadline(message)
        if kind is _DowntimeStep:
            return self._on_downtime_step()
        if kind is _ChainAnswer:
            return self._on_chain_answer(message)
        if kind is _Alive:
            return self._on_alive()
        return super().on_receive(message)

    # -- triggering ----------------------------------------------------------------------------

    def _trigger(self, mode: HaltMode, reason: str, source: str, tripped: int = 0) -> None:
        reason, source = self._clean(reason, REASON_LIMIT), self._clean(source, REASON_LIMIT)
        if self.step_timer is not None:
            self.step_timer.cancel()
            self.step_timer = None
        self.acks.triggered()
        self._tighten(
            replace(
                self.persisted,
                state=_S.TRIGGERED,
                # Its trip showed this epoch on the board already.
                epoch=max(self.persisted.epoch + 1, tripped),
                mode=mode.value,
                reason=reason,
                source=source,
                triggered_at=None,
                factor=self.persisted.factor,
            )
        )
        self._stamp_trigger()
        logger.critical("kill switch TRIGGERED (epoch {}, {}, from {}): {}", self.persisted.epoch, mode.value, source, reason)
        # Told before the broadcast: a cluster node opens the cluster's halt from this event, and
        # the other nodes should not wait for this node's actors and disk (docs/CLUSTER.md).
        details = {"what": "triggered", "mode": mode.value, "source": source, "reason": reason}
        self._event("HALT", self._marked(details))
        self._broadcast_halt()
        self._persist()  # a halt happens even if the disk refuses; the write is retried
        if self.flattening is not None:  # the halt wins: already TRIGGERED, the board no longer reducing
            self._end_flatten(f"interrupted by a trigger from {source}", transition=False)

    def _poll_kill_file(self) -> None:
        reason = self.kill_file.poll()
        if reason is not None:
            self._trigger(HaltMode.GRACEFUL, reason, "kill_file")
        self.runtime.send_after(self.settings.kill_file_poll_s, self.actor_ref, _PollKillFile())

    def _enter_maintenance(self, message: EnterMaintenance) -> RecoveryOutcome:
        if self.persisted.state is _S.REDUCING:
            return self._outcome(False, "a flatten is under way (REDUCING): maintenance is entered only from ARMED")
        try:
            check_transition(self.persisted.state, _S.MAINTENANCE)
        except InvalidTransition as exc:
            return self._outcome(False, str(exc))
        self.acks.triggered()
        source = self._clean(message.source, REASON_LIMIT)
        self._tighten(
            replace(
                self.persisted,
                state=_S.MAINTENANCE,
                epoch=self.persisted.epoch + 1,
                mode=HaltMode.GRACEFUL.value,
                reason=self._clean(message.reason, REASON_LIMIT),
                source=source,
                triggered_at=None,
            )
        )
        self._stamp_trigger()
        self._broadcast_halt()
        self._persist()
        self._event("HALT", self._marked({"what": "maintenance", "source": source, "reason": self.persisted.reason}))
        return self._outcome(True, "maintenance: trading halted")

    # -- state ---------------------------------------------------------------------------------

    def _tighten(self, new: PersistedState) -> None:
        """A halt (or back to one): published at once; the caller broadcasts, then persists
        (:meth:`_persist`) and records it: the disk must not delay a halt."""
        check_transition(self.persisted.state, new.state)
        self._set(new)

    def _set(self, new: PersistedState) -> None:
        old = self.persisted
        self.persisted = new
        logger.info("kill switch: {} -> {} (epoch {})", old.state.value, new.state.value, new.epoch)
        self._publish()

    def _stamp_trigger(self) -> None:
        """The halt's time, read only once the board shows it: a signer that saw epoch E
        unhalted at time t saw it before ``triggered_at`` of epoch E + 1."""
        self.persisted = replace(self.persisted, triggered_at=self.clock())

    def _publish(self) -> None:
        p = self.persisted
        reducing = p.state is _S.REDUCING and self.flattening is not None
        shown = self.board.publish(
            HaltStatus(
                state=p.state.value,
                epoch=p.epoch,
                halted=p.halted,
                factor=0.0 if p.halted else p.factor,
                reducing=reducing,
                reducing_vaults=frozenset(self.flattening.vaults) if self.flattening is not None and reducing else frozenset(),
            ),
            trips_seen=self.trips_seen,
        )
        if not shown:  # a trip overtook this decision: its Trigger, queued, halts again
            logger.warning("kill switch: {} (epoch {}) not shown: the board was tripped since", p.state.value, p.epoch)

    def _outcome(self, accepted: bool, reason: str) -> RecoveryOutcome:
        return RecoveryOutcome(
            accepted=accepted, reason=reason, state=self.persisted.state.value, factor=self.persisted.factor
        )

    def _clean(self, text: str, limit: int) -> str:
        """A free-text field as the kill switch keeps it: secrets masked, then cut."""
        return self.redact(text)[:limit]

    def _event(self, kind: str, details: dict[str, Any]) -> None:
        if self.on_event is not None:
            try:
                self.on_event(kind, redact_deep(self.redact, details))
            except Exception:  # noqa: BLE001 - the halt must not depend on its record
                logger.exception("kill switch: could not record {}", kind)

    def status(self) -> KillSwitchStatus:
        p = self.persisted
        names = self._names()
        flatten = self.flattening or self.last_flatten
        return KillSwitchStatus(
            state=p.state.value,
            epoch=p.epoch,
            mode=p.mode,
            reason=p.reason,
            source=p.source,
            triggered_at=p.triggered_at,
            factor=p.factor,
            registered=len(self.participants),
            **self.acks.status(names, p.halted),
            persist_error=self.not_durable or self.persist_error,
            durable=self.not_durable is None,
            **(flatten.status() if flatten is not None else {}),
        )

