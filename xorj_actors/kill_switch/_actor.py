"""The KillSwitch actor: halt epochs, acknowledgements, replacement of silent actors, recovery."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from loguru import logger

from pykka import ActorDeadError

from supervisors import Actor, ControlMessage, MailboxFull, Message, Terminated
from xorj_actors.kill_switch._board import HaltBoard, HaltStatus
from xorj_actors.kill_switch._flatten import (
    OPERATOR_LIMIT,
    VAULT_ROLE,
    Flatten,
    FlattenDone,
    FlattenOutcome,
    FlattenVault,
    Flattening,
    new_flatten_id,
)
from xorj_actors.kill_switch._participant import KILL_SWITCH_NAME, Participant
from xorj_actors.kill_switch._recovery import RecoveryRefused, RecoveryVerifier, load_recovery_keys
from xorj_actors.kill_switch.settings import KillSwitchSettings
from xorj_actors.kill_switch._state import (
    InvalidTransition,
    KillSwitchState,
    PersistedState,
    StateFile,
    check_transition,
)
from xorj_actors.limits import REASON_LIMIT
from xorj_actors.messages import Halt, HaltAck, HaltMode, Register, Resume, Trigger

__all__ = [
    "EnterMaintenance",
    "GetStatus",
    "KillSwitch",
    "KillSwitchStatus",
    "Recover",
    "RecoveryOutcome",
]

_S = KillSwitchState
_MAX_NONCES = 1000


class Recover(Message):
    """An operator's recovery request with K-of-M HMAC authorisations ((key id, hex), ...)."""

    epoch: int
    nonce: str
    timestamp: int
    authorisations: tuple[tuple[str, str], ...]
    operator: str


class RecoveryOutcome(Message):
    accepted: bool
    reason: str
    state: str
    factor: float


class EnterMaintenance(Message):
    reason: str
    source: str


class GetStatus(Message):
    """Ask for a :class:`KillSwitchStatus`."""


class KillSwitchStatus(Message):
    state: str
    epoch: int
    mode: str | None
    reason: str | None
    source: str | None
    triggered_at: float | None
    factor: float
    registered: int
    acked: tuple[str, ...]  # names of actors that acked the current epoch
    missing: tuple[str, ...]  # names of live actors that have not
    complete: bool
    halt_latency_s: float | None  # trigger to every live actor acked
    replaced: tuple[str, ...]  # actors replaced for not acking (this epoch)
    persist_error: str | None
    #: The flatten under way, or the last one: its id, the vaults yet to report, and
    #: (vault, sold, failed, detail) of those that did (or were given up on).
    flatten_id: str | None = None
    flatten_pending: tuple[str, ...] = ()
    flatten_results: tuple[tuple[str, int, int, str], ...] = ()


class _AckDeadline(ControlMessage):  # a timer the halt depends on: never refused
    epoch: int


class _PollKillFile(ControlMessage):  # a timer the halt depends on: never refused
    pass


class _RestartStep(ControlMessage):  # a timer the halt depends on: never refused
    epoch: int
    index: int


class _FlattenDeadline(ControlMessage):  # the return to halted depends on it: never refused
    flatten_id: str


class KillSwitch(Actor):
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
        self.kill_file = data_dir / settings.kill_file
        self.verifier = RecoveryVerifier(
            load_recovery_keys(settings.recovery_key_envs, self.environ), settings.recovery_threshold
        )
        self.persisted = PersistedState()
        self.persist_error: str | None = None
        # urn -> (ref, name, role) of every live participant
        self.participants: dict[str, tuple[Any, str, str]] = {}
        self.acked: set[str] = set()
        self.pending: set[str] = set()
        self.replaced: list[str] = []
        #: names of actors replaced for silence whose replacement has not acked yet
        self.awaiting_replacement: set[str] = set()
        self.trigger_mono: float | None = None
        self.halt_latency: float | None = None
        self.kill_file_seen = False
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
        if self.persisted.halted and message.urn not in self.acked:
            # Its own start-up ack may be for an older epoch: make sure it hears this one.
            self.pending.add(message.urn)
            self.runtime.broadcast([ref], self._current_halt())
        elif not self.persisted.halted:
            self.runtime.broadcast([ref], Resume(epoch=self.persisted.epoch, factor=self.persisted.factor))

    def _on_ack(self, ack: HaltAck) -> None:
        if ack.epoch != self.persisted.epoch or not self.persisted.halted or ack.actor not in self.participants:
            return  # stale, or from an actor already gone (its Terminated overtook the ack)
        self.acked.add(ack.actor)
        self.pending.discard(ack.actor)
        entry = self.participants.get(ack.actor)
        if entry is not None:
            self.awaiting_replacement.discard(entry[1])
        self._check_complete()

    def _on_terminated(self, note: Terminated) -> None:
        entry = self.participants.pop(note.urn, None)
        if entry is None:
            return
        self.acked.discard(note.urn)
        self.pending.discard(note.urn)
        self._check_complete()
        f = self.flattening
        if f is not None and entry[1] in f.pending:
            # Its flatten ended with it (a replacement knows nothing of it); its trades already
            # handed over are still settled by the executor.
            f.report(entry[1], 0, 0, f"the vault actor ended during the flatten ({note.reason})")
            self._flatten_progress()

    def _check_complete(self) -> None:
        if self.pending or self.awaiting_replacement or self.trigger_mono is None or self.halt_latency is not None:
            return
        self.halt_latency = time.monotonic() - self.trigger_mono
        logger.info(
            "kill switch: halt epoch {} complete: {} actors acked in {:.1f} ms",
            self.persisted.epoch,
            len(self.acked),
            self.halt_latency * 1e3,
        )
        self._event(
            "HALT",
            {"what": "halt complete", "epoch": self.persisted.epoch, "acked": len(self.acked), "latency_s": self.halt_latency},
        )

    # -- triggering ----------------------------------------------------------------------------

    def _trigger(self, mode: HaltMode, reason: str, source: str) -> None:
        reason = reason[:REASON_LIMIT]
        if self.step_timer is not None:
            self.step_timer.cancel()
            self.step_timer = None
        self.trigger_mono = time.monotonic()
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
        if self.trigger_mono is None:
            self.trigger_mono = time.monotonic()
        self.halt_latency = None
        self.acked = set()
        self.replaced = []
        self.awaiting_replacement = set()
        self.pending = set(self.participants)
        signers = [r for r, _, role in self.participants.values() if role == "signer"]
        others = [r for r, _, role in self.participants.values() if role != "signer"]
        for dead in self.runtime.broadcast(signers, halt) + self.runtime.broadcast(others, halt):
            self.pending.discard(dead.actor_urn)
        self.runtime.send_after(self.settings.ack_deadline_s, self.actor_ref, _AckDeadline(epoch=halt.epoch))
        self._check_complete()

    def _broadcast_resume(self) -> None:
        resume = Resume(epoch=self.persisted.epoch, factor=self.persisted.factor)
        self.runtime.broadcast([r for r, _, _ in self.participants.values()], resume)

    def _on_ack_deadline(self, message: _AckDeadline) -> None:
        if message.epoch != self.persisted.epoch or not self.persisted.halted or not self.pending:
            return
        for urn in sorted(self.pending):
            ref, name, _ = self.participants.get(urn, (None, urn, ""))
            logger.error(
                "kill switch: {} did not ack halt epoch {} within {} s: replacing it",
                name,
                message.epoch,
                self.settings.ack_deadline_s,
            )
            self.replaced.append(name)
            self.awaiting_replacement.add(name)
            self._event("ERROR_EVENT", {"what": "halt not acknowledged", "actor": name, "epoch": message.epoch})
            # Out of the protocol at once: the halt completes when its replacement acks.
            self.participants.pop(urn, None)
            self.pending.discard(urn)
            if ref is None:
                continue
            self.unwatch(ref)
            if not self.runtime.restart_child(ref, f"did not ack halt epoch {message.epoch}"):
                ref.stop(block=False)
        self._check_complete()
        # Replacements ack on start; whoever is still silent after another deadline goes too.
        self.runtime.send_after(self.settings.ack_deadline_s, self.actor_ref, _AckDeadline(epoch=message.epoch))

    def _poll_kill_file(self) -> None:
        exists = self.kill_file.exists()
        if exists and not self.kill_file_seen:
            try:
                note = self.kill_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()
            except OSError:
                note = []
            reason = f"kill file {self.kill_file}" + (f": {note[0][:200]}" if note else "")
            self._trigger(HaltMode.GRACEFUL, reason, "kill_file")
        self.kill_file_seen = exists
        self.runtime.send_after(self.settings.kill_file_poll_s, self.actor_ref, _PollKillFile())

    def _enter_maintenance(self, message: EnterMaintenance) -> RecoveryOutcome:
        if self.persisted.state is _S.REDUCING:
            return self._outcome(False, "a flatten is under way (REDUCING): maintenance is entered only from ARMED")
        try:
            check_transition(self.persisted.state, _S.MAINTENANCE)
        except InvalidTransition as exc:
            return self._outcome(False, str(exc))
        self.trigger_mono = time.monotonic()
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
        details = {"operator": request.operator[:100], "epoch": request.epoch, "nonce": request.nonce[:128]}
        try:
            if p.state is _S.REDUCING:
                raise RecoveryRefused("a flatten is under way (REDUCING): recover once it has ended")
            if p.state not in (_S.TRIGGERED, _S.MAINTENANCE):
                raise RecoveryRefused(f"nothing to recover: the kill switch is {p.state.value}")
            if self.kill_file.exists():
                raise RecoveryRefused(f"the kill file {self.kill_file} still exists: remove it first")
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
        self.trigger_mono = None
        self.pending = set()
        self.awaiting_replacement = set()
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

    # -- flatten (reducing mode) ---------------------------------------------------------------

    def _flatten(self, request: Flatten) -> FlattenOutcome:
        """Enter REDUCING and tell the chosen vaults to sell; refused with a reason otherwise."""
        p = self.persisted
        operator, reason = request.operator.strip()[:OPERATOR_LIMIT], request.reason.strip()[:REASON_LIMIT]
        asked = tuple(dict.fromkeys(v.strip() for v in request.vaults))
        details: dict[str, Any] = {"operator": operator, "reason": reason, "vaults": list(asked) or "all", "epoch": p.epoch}
        vaults = {name: ref for ref, name, role in self.participants.values() if role == VAULT_ROLE}
        refusal = None
        if p.state is _S.REDUCING:
            refusal = f"a flatten is already under way ({self.flattening.flatten_id if self.flattening else '?'})"
        elif p.state not in (_S.TRIGGERED, _S.MAINTENANCE):
            refusal = f"flatten only while halted: the kill switch is {p.state.value} (halt first)"
        elif not operator or not reason:
            refusal = "operator and reason must not be empty"
        elif unknown := [v for v in asked if v not in vaults]:
            refusal = f"unknown vault(s), or not running: {', '.join(v[:40] for v in unknown[:10])}"
        elif not vaults:
            refusal = "no vault is running"
        if refusal is not None:
            logger.warning("kill switch: flatten refused: {}", refusal)
            self._event("SYSTEM_EVENT", {**details, "what": "flatten refused", "refusal": refusal})
            return FlattenOutcome(accepted=False, reason=refusal, state=p.state.value)
        chosen = asked or tuple(sorted(vaults))
        flatten_id = new_flatten_id(p.epoch)
        f = Flattening(
            flatten_id=flatten_id, epoch=p.epoch, back_to=p.state.value, operator=operator, reason=reason,
            vaults=chosen, pending=set(chosen),
        )
        self.flattening = f  # before the transition: the board names the vaults being flattened
        # Trades become possible: durable first, as a recovery is (a restart reads it TRIGGERED).
        if not self._transition(replace(p, state=_S.REDUCING), must_persist=True):
            self.flattening = None
            refusal = f"REDUCING not recorded durably: {self.persist_error}"
            self._event("SYSTEM_EVENT", {**details, "what": "flatten refused", "refusal": refusal})
            return FlattenOutcome(accepted=False, reason=refusal, state=self.persisted.state.value)
        self.last_flatten = f
        logger.warning("kill switch: REDUCING: flatten {} of {} by {}: {}", flatten_id, ", ".join(chosen), operator, reason)
        self._event("HALT", {**details, "what": "flatten started", "flatten_id": flatten_id, "vaults": list(chosen),
                             "from": p.state.value})
        message = FlattenVault(epoch=p.epoch, flatten_id=flatten_id)
        for name in chosen:
            try:
                vaults[name].tell(message)
            except (ActorDeadError, MailboxFull) as exc:
                f.report(name, 0, 0, f"not reached: {exc!r}")
        timeout = self.settings.flatten_timeout_s
        f.timer = self.runtime.send_after(timeout, self.actor_ref, _FlattenDeadline(flatten_id=flatten_id))
        outcome = FlattenOutcome(
            accepted=True, reason=f"REDUCING: flattening {len(chosen)} vault(s)", state=_S.REDUCING.value,
            flatten_id=flatten_id, vaults=chosen,
        )
        self._flatten_progress()
        return outcome

    def _on_flatten_done(self, done: FlattenDone) -> None:
        f = self.flattening
        if f is None or done.flatten_id != f.flatten_id or done.vault_id not in f.pending:
            logger.info("kill switch: late or unknown flatten report from {} ({})", done.vault_id, done.flatten_id)
            return
        f.report(done.vault_id, done.sold, done.failed, done.detail)
        self._flatten_progress()

    def _on_flatten_deadline(self, deadline: _FlattenDeadline) -> None:
        f = self.flattening
        if f is None or deadline.flatten_id != f.flatten_id:
            return
        for name in sorted(f.pending):
            f.report(name, 0, 0, "no report within flatten_timeout_s")
        self._end_flatten("timed out", transition=True)

    def _flatten_progress(self) -> None:
        f = self.flattening
        if f is not None and not f.pending:
            self._end_flatten("every vault reported", transition=True)

    def _end_flatten(self, why: str, *, transition: bool) -> None:
        """Leave REDUCING for the state the flatten started from (unless a trigger already did)."""
        f, self.flattening = self.flattening, None
        if f is None:
            return
        if f.timer is not None:
            f.timer.cancel()
        for name in sorted(f.pending):
            f.report(name, 0, 0, f"unfinished: {why}")
        if transition and self.persisted.state is _S.REDUCING:
            # Tighter again: published at once, written after (as a halt is).
            self._transition(replace(self.persisted, state=_S(f.back_to)), must_persist=False)
            self._persist()
        logger.warning("kill switch: flatten {} ended ({}): back to {}", f.flatten_id, why, self.persisted.state.value)
        self._event(
            "HALT",
            {
                "what": "flatten ended", "flatten_id": f.flatten_id, "why": why, "state": self.persisted.state.value,
                "operator": f.operator, "seconds": round(time.monotonic() - f.started, 3), **f.summary(),
            },
        )

    def _flatten_status(self) -> dict[str, Any]:
        f = self.flattening or self.last_flatten
        if f is None:
            return {}
        return {
            "flatten_id": f.flatten_id,
            "flatten_pending": tuple(sorted(f.pending)),
            "flatten_results": tuple(
                (v, int(r["sold"]), int(r["failed"]), str(r["detail"])) for v, r in sorted(f.results.items())
            ),
        }

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
        return KillSwitchStatus(
            state=p.state.value,
            epoch=p.epoch,
            mode=p.mode,
            reason=p.reason,
            source=p.source,
            triggered_at=p.triggered_at,
            factor=p.factor,
            registered=len(self.participants),
            acked=tuple(sorted(names.get(u, u) for u in self.acked)),
            missing=tuple(sorted({names.get(u, u) for u in self.pending} | self.awaiting_replacement)),
            complete=p.halted and not self.pending and not self.awaiting_replacement,
            halt_latency_s=self.halt_latency,
            replaced=tuple(self.replaced),
            persist_error=self.persist_error,
            **self._flatten_status(),
        )
