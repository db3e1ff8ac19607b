"""The KillSwitch actor: halt epochs, acknowledgements, replacement of silent actors, recovery.

The actor is the one place that moves the state machine (``_transition``). Beside it: the ack
bookkeeping (``_acks``), the kill file (``_kill_file``), its messages (``_messages``), and its
flatten side (``_reducing``, mixed into the actor; the flatten's rules are in ``_flatten``).
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
from xorj_actors.kill_switch._acks import HaltAcks
from xorj_actors.kill_switch._board import HaltBoard, HaltStatus
from xorj_actors.kill_switch._flatten import Flatten, FlattenDone, Flattening
from xorj_actors.kill_switch._kill_file import KillFile
from xorj_actors.kill_switch._messages import (
    EnterMaintenance,
    GetStatus,
    KillSwitchStatus,
    Recover,
    RecoveryOutcome,
)
from xorj_actors.kill_switch._participant import KILL_SWITCH_NAME, Participant
from xorj_actors.kill_switch._recovery import RecoveryRefused, RecoveryVerifier, load_recovery_keys
from xorj_actors.kill_switch._reducing import ReducingMode, _FlattenDeadline
from xorj_actors.kill_switch._state import (
    InvalidTransition,
    KillSwitchState,
    PersistedState,
    StateFile,
    check_transition,
)
from xorj_actors.kill_switch.settings import KillSwitchSettings
from xorj_actors.limits import OPERATOR_LIMIT, REASON_LIMIT
from xorj_actors.messages import Halt, HaltAck, HaltMode, Register, Resume, Trigger

__all__ = ["KillSwitch"]

_S = KillSwitchState
_MAX_NONCES = 1000


class _AckDeadline(ControlMessage):  # a timer the halt depends on: never refused
    epoch: int


class _PollKillFile(ControlMessage):  # a timer the halt depends on: never refused
    pass


class _RestartStep(ControlMessage):  # a timer the halt depends on: never refused
    epoch: int
    index: int


class KillSwitch(ReducingMode, Actor):
    """Owns the halt state of the engine.

    It runs on a thread of its own: a halt must not wait for the shared pool, whatever the
    pool's actors are doing.

    Args:
        settings: the ``[kill_switch]`` section.
        data_dir: where the state file and the kill file live.
        board: the halt board shared with every participant.
        environ: the environment (recovery keys, ``KILL_SWITCH_ACTIVE``); default ``os.environ``.
        clock: wall clock, for cooldowns and recovery timestamps.
        on_event: called with (event, details) on every transition, for the audit trail.
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
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.board = board
        self.clock = clock
        self.on_event = on_event
        self.environ = dict(os.environ if environ is None else environ)
        self.state_file = StateFile(data_dir / settings.state_file)
        self.kill_file = KillFile(data_dir / settings.kill_file)
        self.verifier = RecoveryVerifier(
            load_recovery_keys(settings.recovery_key_envs, self.environ), settings.recovery_threshold
        )
        self.persisted = PersistedState()
        self.persist_error: str | None = None
        # urn -> (ref, name, role) of every live participant
        self.participants: dict[str, tuple[Any, str, str]] = {}
        self.acks = HaltAcks()
        self.step_timer: Any = None
        #: The flatten under way (state REDUCING), and the last one, for status.
        self.flattening: Flattening | None = None
        self.last_flatten: Flattening | None = None
        # Named at once: what participants tell before on_start has run waits in the mailbox.
        self.runtime.register_name(KILL_SWITCH_NAME, self.actor_ref)

    # -- start ---------------------------------------------------------------------------------

    def on_start(self) -> None:
        self.persisted = self.state_file.load()
        if self.state_file.interrupted_flatten:
            self._persist()  # the file must not say REDUCING any longer
            self._event(
                "HALT",
                {"what": "flatten interrupted by a restart", "epoch": self.persisted.epoch, "state": self.persisted.state.value},
            )
        for actor in self.runtime.actors():  # after a restart: find everyone again
            if issubclass(actor.actor_class, Participant) and actor.ref is not None:
                self._add_participant(actor.ref, actor.name, actor.actor_class.role)
        self._publish()
        self._event("SYSTEM_EVENT", {"what": "kill switch started", "state": self.persisted.state.value})
        if self.environ.get("KILL_SWITCH_ACTIVE", "").strip().lower() == "true":
            self._trigger(HaltMode.EMERGENCY, "KILL_SWITCH_ACTIVE=true at start", "environment")
        elif self.persisted.halted:
            logger.warning(
                "kill switch: starting {} (epoch {}): {}",
                self.persisted.state.value,
                self.persisted.epoch,
                self.persisted.reason,
            )
            self._broadcast_halt()
        else:
            self._broadcast_resume()
            if self.persisted.state is _S.RECOVERY_PENDING:
                self._schedule_step(self._factor_index() + 1)
        self._poll_kill_file()

    def on_stop(self) -> None:
        if self.step_timer is not None:
            self.step_timer.cancel()

    # -- messages ------------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        kind = type(message)
        if kind is HaltAck:
            return self._on_ack(message)
        if kind is Register:
            return self._on_register(message)
        if kind is Terminated:
            return self._on_terminated(message)
        if kind is Trigger:
            return self._trigger(message.mode, message.reason, message.source)
        if kind is _PollKillFile:
            return self._poll_kill_file()
        if kind is _AckDeadline:
            return self._on_ack_deadline(message)
        if kind is GetStatus:
            return self.status()
        if kind is Recover:
            return self._recover(message)
        if kind is _RestartStep:
            return self._on_restart_step(message)
        if kind is EnterMaintenance:
            return self._enter_maintenance(message)
        if kind is FlattenDone:
            return self._on_flatten_done(message)
        if kind is Flatten:
            return self._flatten(message)
        if kind is _FlattenDeadline:
            return self._on_flatten_deadline(message)
        return super().on_receive(message)

    def _add_participant(self, ref: Any, name: str, role: str) -> bool:
        if ref.actor_urn in self.participants:
            return False
        self.participants[ref.actor_urn] = (ref, name, role)
        self.watch(ref)
        return True

    def _on_register(self, message: Register) -> None:
        ref = self.runtime.lookup(message.urn)
        if ref is None:
            return
        if not self._add_participant(ref, message.name, message.role):
            return
        if self.persisted.halted and self.acks.expect(message.urn):
            # Its own start-up ack may be for an older epoch: make sure it hears this one.
            self.runtime.broadcast([ref], self._current_halt())
        elif not self.persisted.halted:
            self.runtime.broadcast([ref], Resume(epoch=self.persisted.epoch, factor=self.persisted.factor))

    def _on_ack(self, ack: HaltAck) -> None:
        if ack.epoch != self.persisted.epoch or not self.persisted.halted or ack.actor not in self.participants:
            return  # stale, or from an actor already gone (its Terminated overtook the ack)
        self.acks.ack(ack.actor, self.participants[ack.actor][1])
        self._check_complete()

    def _on_terminated(self, note: Terminated) -> None:
        entry = self.participants.pop(note.urn, None)
        if entry is None:
            return
        self.acks.forget(note.urn)
        self._check_complete()
        f = self.flattening
        if f is not None and entry[1] in f.pending:
            # Its flatten ended with it (a replacement knows nothing of it); its trades already
            # handed over are still settled by the executor.
            f.report(entry[1], 0, 0, f"the vault actor ended during the flatten ({note.reason})")
            self._flatten_progress()

    def _check_complete(self) -> None:
        acks = self.acks
        if not acks.completed():
            return
        logger.info(
            "kill switch: halt epoch {} complete: {} actors acked in {:.1f} ms",
            self.persisted.epoch,
            len(acks.acked),
            acks.halt_latency * 1e3,
        )
        self._event(
            "HALT",
            {"what": "halt complete", "epoch": self.persisted.epoch, "acked": len(acks.acked), "latency_s": acks.halt_latency},
        )

    # -- triggering ----------------------------------------------------------------------------

    def _trigger(self, mode: HaltMode, reason: str, source: str) -> None:
        reason = reason[:REASON_LIMIT]
        if self.step_timer is not None:
            self.step_timer.cancel()
            self.step_timer = None
        self.acks.triggered()
        self._transition(
            replace(
                self.persisted,
                state=_S.TRIGGERED,
                epoch=self.persisted.epoch + 1,
                mode=mode.value,
                reason=reason,
                source=source,
                triggered_at=self.clock(),
                factor=self.persisted.factor,
            ),
            must_persist=False,  # a halt happens even if the disk refuses; it is only safer
        )
        logger.critical("kill switch TRIGGERED (epoch {}, {}, from {}): {}", self.persisted.epoch, mode.value, source, reason)
        self._broadcast_halt()
        self._persist()
        self._event("HALT", {"what": "triggered", "epoch": self.persisted.epoch, "mode": mode.value, "source": source, "reason": reason})
        if self.flattening is not None:  # the halt wins: already TRIGGERED, the board no longer reducing
            self._end_flatten(f"interrupted by a trigger from {source}", transition=False)

    def _current_halt(self) -> Halt:
        p = self.persisted
        return Halt(
            epoch=p.epoch,
            mode=HaltMode(p.mode or HaltMode.EMERGENCY.value),
            reason=p.reason or "",
            source=p.source or "unknown",
        )

    def _broadcast_halt(self) -> None:
        """Signers first (they guard the funds), then everyone else; start the ack deadline."""
        halt = self._current_halt()
        self.acks.start_epoch(self.participants)
        signers = [r for r, _, role in self.participants.values() if role == "signer"]
        others = [r for r, _, role in self.participants.values() if role != "signer"]
        for dead in self.runtime.broadcast(signers, halt) + self.runtime.broadcast(others, halt):
            self.acks.forget(dead.actor_urn)
        self.runtime.send_after(self.settings.ack_deadline_s, self.actor_ref, _AckDeadline(epoch=halt.epoch))
        self._check_complete()

    def _broadcast_resume(self) -> None:
        resume = Resume(epoch=self.persisted.epoch, factor=self.persisted.factor)
        self.runtime.broadcast([r for r, _, _ in self.participants.values()], resume)

    def _on_ack_deadline(self, message: _AckDeadline) -> None:
        if message.epoch != self.persisted.epoch or not self.persisted.halted or not self.acks.pending:
            return
        for urn in sorted(self.acks.pending):
            ref, name, _ = self.participants.get(urn, (None, urn, ""))
            logger.error(
                "kill switch: {} did not ack halt epoch {} within {} s: replacing it",
                name,
                message.epoch,
                self.settings.ack_deadline_s,
            )
            self.acks.give_up(urn, name)
            self._event("ERROR_EVENT", {"what": "halt not acknowledged", "actor": name, "epoch": message.epoch})
            # Out of the protocol at once: the halt completes when its replacement acks.
            self.participants.pop(urn, None)
            if ref is None:
                continue
            self.unwatch(ref)
            if not self.runtime.restart_child(ref, f"did not ack halt epoch {message.epoch}"):
                ref.stop(block=False)
        self._check_complete()
        # Replacements ack on start; whoever is still silent after another deadline goes too.
        self.runtime.send_after(self.settings.ack_deadline_s, self.actor_ref, _AckDeadline(epoch=message.epoch))

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
        ok = self._transition(
            replace(
                self.persisted,
                state=_S.MAINTENANCE,
                epoch=self.persisted.epoch + 1,
                mode=HaltMode.GRACEFUL.value,
                reason=message.reason[:REASON_LIMIT],
                source=message.source,
                triggered_at=self.clock(),
            ),
            must_persist=False,
        )
        self._broadcast_halt()
        self._persist()
        self._event("HALT", {"what": "maintenance", "epoch": self.persisted.epoch, "source": message.source})
        return self._outcome(ok, "maintenance: trading halted")

    # -- recovery ------------------------------------------------------------------------------

    def _recover(self, request: Recover) -> RecoveryOutcome:
        p = self.persisted
        details = {"operator": request.operator[:OPERATOR_LIMIT], "epoch": request.epoch, "nonce": request.nonce[:128]}
        try:
            if p.state is _S.REDUCING:
                raise RecoveryRefused("a flatten is under way (REDUCING): recover once it has ended")
            if p.state not in (_S.TRIGGERED, _S.MAINTENANCE):
                raise RecoveryRefused(f"nothing to recover: the kill switch is {p.state.value}")
            if self.kill_file.exists():
                raise RecoveryRefused(f"the kill file {self.kill_file.path} still exists: remove it first")
            if p.state is _S.TRIGGERED and p.triggered_at is not None:
                remaining = self.settings.cooldown_s - (self.clock() - p.triggered_at)
                if remaining > 0:
                    raise RecoveryRefused(f"cooldown: {remaining:.0f} s left before recovery is allowed")
            signers = self.verifier.verify(
                epoch=request.epoch,
                nonce=request.nonce,
                timestamp=request.timestamp,
                authorisations=request.authorisations,
                current_epoch=p.epoch,
                used_nonces=p.used_nonces,
                now=self.clock(),
            )
        except RecoveryRefused as exc:
            logger.warning("kill switch: recovery refused: {}", exc)
            self._event("SECURITY_VIOLATION", {**details, "what": "recovery refused", "reason": str(exc)})
            return self._outcome(False, str(exc))
        factors = self.settings.restart_factors
        final = len(factors) == 1
        ok = self._transition(
            replace(
                p,
                state=_S.ARMED if final else _S.RECOVERY_PENDING,
                factor=factors[0],
                used_nonces=(*p.used_nonces, request.nonce)[-_MAX_NONCES:],
            ),
            must_persist=True,
        )
        if not ok:
            return self._outcome(False, f"recovery not recorded durably: {self.persist_error}")
        logger.warning("kill switch: recovery accepted (authorised by {}), factor {}", ", ".join(signers), factors[0])
        self._event("RECOVERY", {**details, "what": "recovery accepted", "authorised_by": list(signers), "factor": factors[0]})
        self.acks.clear()
        self._broadcast_resume()
        if not final:
            self._schedule_step(1)
        return self._outcome(True, f"recovering at {factors[0]:g} of position limits")

    def _factor_index(self) -> int:
        factors = self.settings.restart_factors
        return max((i for i, f in enumerate(factors) if f <= self.persisted.factor), default=0)

    def _schedule_step(self, index: int) -> None:
        if index < len(self.settings.restart_factors):
            self.step_timer = self.runtime.send_after(
                self.settings.restart_step_s, self.actor_ref, _RestartStep(epoch=self.persisted.epoch, index=index)
            )

    def _on_restart_step(self, step: _RestartStep) -> None:
        if self.persisted.state is not _S.RECOVERY_PENDING or step.epoch != self.persisted.epoch:
            return
        factors = self.settings.restart_factors
        factor = factors[step.index]
        last = step.index == len(factors) - 1
        self._transition(replace(self.persisted, state=_S.ARMED if last else _S.RECOVERY_PENDING, factor=factor), must_persist=False)
        logger.info("kill switch: gradual restart at {} of position limits", factor)
        self._broadcast_resume()
        self._persist()
        self._event("RECOVERY", {"what": "restart step", "factor": factor, "armed": last})
        if not last:
            self._schedule_step(step.index + 1)

    # -- state ---------------------------------------------------------------------------------

    def _transition(self, new: PersistedState, *, must_persist: bool) -> bool:
        """Validate and publish a new state.

        With ``must_persist`` (a recovery: trading resumes) the state is made durable first and
        nothing changes if that fails (returns False). Otherwise (a halt, a restart step) it is
        published at once and the caller persists it with :meth:`_persist` after the broadcast:
        the disk must not delay a halt, and a crash before the fsync ends as it would before.
        """
        check_transition(self.persisted.state, new.state)
        old = self.persisted
        if must_persist and not self._persist(new):
            return False
        self.persisted = new
        logger.info("kill switch: {} -> {} (epoch {})", old.state.value, new.state.value, new.epoch)
        self._publish()
        return True

    def _persist(self, state: PersistedState | None = None) -> bool:
        state = self.persisted if state is None else state
        try:
            self.state_file.save(state)
        except OSError as exc:
            self.persist_error = f"{type(exc).__name__}: {exc}"
            logger.critical("kill switch: cannot persist state {}: {}", state.state.value, self.persist_error)
            return False
        self.persist_error = None
        return True

    def _publish(self) -> None:
        p = self.persisted
        reducing = p.state is _S.REDUCING and self.flattening is not None
        self.board.publish(
            HaltStatus(
                state=p.state.value,
                epoch=p.epoch,
                halted=p.halted,
                factor=0.0 if p.halted else p.factor,
                reducing=reducing,
                reducing_vaults=frozenset(self.flattening.vaults) if self.flattening is not None and reducing else frozenset(),
            )
        )

    def _outcome(self, accepted: bool, reason: str) -> RecoveryOutcome:
        return RecoveryOutcome(
            accepted=accepted, reason=reason, state=self.persisted.state.value, factor=self.persisted.factor
        )

    def _event(self, kind: str, details: dict[str, Any]) -> None:
        if self.on_event is not None:
            try:
                self.on_event(kind, details)
            except Exception:  # noqa: BLE001 - the halt must not depend on its record
                logger.exception("kill switch: could not record {}", kind)

    def status(self) -> KillSwitchStatus:
        p = self.persisted
        names = {urn: name for urn, (_, name, _) in self.participants.items()}
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
            persist_error=self.persist_error,
            **(flatten.status() if flatten is not None else {}),
        )
