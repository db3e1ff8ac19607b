"""The kill switch's roll of participants: registrations, acks, deaths, and the broadcasts.

A mixin of :class:`~xorj_actors.kill_switch._actor.KillSwitch`. Registrations and acks arrive
through the participant lane (``_lane``), drained in order by :meth:`ParticipantRoll._on_lane`;
a batch answers with at most one halt broadcast and one resume broadcast. An actor is named as
the runtime names it *now* (its supervisor's child id), never by what it called itself on start.
"""

from __future__ import annotations

import time
from typing import Any

from loguru import logger

from supervisors import ControlMessage, Terminated
from xorj_actors.kill_switch._acks import HaltAcks
from xorj_actors.kill_switch._board import HaltBoard
from xorj_actors.kill_switch._flatten import Flattening
from xorj_actors.kill_switch._lane import ParticipantLane
from xorj_actors.kill_switch._state import PersistedState
from xorj_actors.kill_switch.settings import KillSwitchSettings
from xorj_actors.messages import Halt, HaltAck, HaltMode, Register, Resume

__all__ = ["ParticipantRoll"]


class _AckDeadline(ControlMessage):  # a timer the halt depends on: never refused
    epoch: int


class ParticipantRoll:
    """Who takes part in the halt protocol, and what they acked (a mixin over the attributes below)."""

    settings: KillSwitchSettings
    persisted: PersistedState
    board: HaltBoard
    lane: ParticipantLane
    acks: HaltAcks
    #: urn -> (ref, role) of every live participant; signers and the others, urn -> ref
    participants: dict[str, tuple[Any, str]]
    signers: dict[str, Any]
    others: dict[str, Any]
    flattening: Flattening | None
    runtime: Any
    actor_ref: Any

    def _name(self, urn: str) -> str:
        """The participant's name as the runtime shows it now (its urn once it is gone)."""
        entry = self.participants.get(urn)
        return entry[0].actor_inbox.name if entry is not None else urn

    def _names(self) -> dict[str, str]:
        return {urn: ref.actor_inbox.name for urn, (ref, _) in self.participants.items()}

    def _add_participant(self, ref: Any, role: str) -> bool:
        urn = ref.actor_urn
        if urn in self.participants:
            return False
        self.participants[urn] = (ref, role)
        (self.signers if role == "signer" else self.others)[urn] = ref
        self.watch(ref)  # type: ignore[attr-defined]
        return True

    def _drop_participant(self, urn: str) -> tuple[Any, str] | None:
        entry = self.participants.pop(urn, None)
        if entry is not None:
            self.signers.pop(urn, None)
            self.others.pop(urn, None)
        return entry

    # -- the lane ------------------------------------------------------------------------------

    def _on_lane(self) -> None:
        """Drain the participant lane in order: register, count acks; then answer the batch."""
        p = self.persisted
        epoch = p.epoch
        participants, acks = self.participants, self.acks
        to_halt: list[Any] = []
        to_resume: list[Any] = []
        acked: list[str] = []
        for message in self.lane.drain():
            kind = type(message)
            if kind is tuple:  # KillSwitchRef.ack: (urn, epoch, in_flight)
                urn, ack_epoch, _ = message  # type: ignore[misc]
            elif kind is HaltAck:
                urn, ack_epoch = message.actor, message.epoch  # type: ignore[union-attr]
            else:
                self._on_register(message, to_halt, to_resume)  # type: ignore[arg-type]
                continue
            if ack_epoch == epoch and urn in participants:
                acked.append(urn)
        if acked and p.halted:  # stale acks, or from actors already gone, count for nothing
            acks.ack_all(acked)
        if to_halt:
            for dead in self.runtime.broadcast(to_halt, self._current_halt()):
                acks.forget(dead.actor_urn)
        if to_resume:
            self.runtime.broadcast(to_resume, self._current_resume())
        self._check_complete()

    def _on_register(self, message: Register, to_halt: list[Any], to_resume: list[Any]) -> None:
        ref = self.runtime.lookup(message.urn)
        if ref is None or not self._add_participant(ref, message.role):
            return  # gone already, or known (a restarted kill switch found it first)
        p = self.persisted
        current = message.epoch == p.epoch
        if p.halted:
            # It must ack this epoch: its own start-up ack follows if it started halted on it.
            if self.acks.expect(message.urn) and not (current and message.halted):
                to_halt.append(ref)
        elif not (current and not message.halted and message.factor == p.factor):
            to_resume.append(ref)

    def _on_terminated(self, note: Terminated) -> None:
        entry = self._drop_participant(note.urn)
        if entry is None:
            return
        self.acks.forget(note.urn)
        self._check_complete()
        f = self.flattening
        name = note.name
        if f is not None and name in f.pending:
            # Its flatten ended with it (a replacement knows nothing of it); its trades already
            # handed over are still settled by the executor.
            f.report(name, 0, 0, f"the vault actor ended during the flatten ({note.reason})")
            self._flatten_progress()  # type: ignore[attr-defined]

    def _check_complete(self) -> None:
        acks = self.acks
        if acks.awaiting_replacement:  # a replacement may have acked before it was named
            acks.settle(self._names())
        if not acks.completed():
            return
        epoch, latency = self.persisted.epoch, acks.halt_latency or 0.0
        logger.info("kill switch: halt epoch {} complete: {} actors acked in {:.1f} ms", epoch, len(acks.acked), latency * 1e3)
        self._event("HALT", {  # type: ignore[attr-defined]
            "what": "halt complete", "epoch": epoch, "acked": len(acks.acked), "latency_s": latency,
            "deadline_s": self.settings.ack_deadline_s,  # the halt SLO's line (docs/SLO.md)
        })

    # -- broadcasts ----------------------------------------------------------------------------

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
        acks = self.acks
        acks.start_epoch(self.participants)
        dead = self.runtime.broadcast(self.signers.values(), halt)
        time.sleep(0)  # let the GIL go: the signers take the Halt before the long broadcast
        dead += self.runtime.broadcast(self.others.values(), halt)
        for ref in dead:
            acks.forget(ref.actor_urn)
        self.runtime.send_after(self.settings.ack_deadline_s, self.actor_ref, _AckDeadline(epoch=halt.epoch))
        self._check_complete()

    def _current_resume(self) -> Resume:
        p = self.persisted
        return Resume(epoch=p.epoch, factor=p.factor)

    def _broadcast_resume(self) -> None:
        self.runtime.broadcast([*self.signers.values(), *self.others.values()], self._current_resume())

    def _on_ack_deadline(self, message: _AckDeadline) -> None:
        if message.epoch != self.persisted.epoch or not self.persisted.halted:
            return
        if not self.acks.pending:
            if self.acks.awaiting_replacement:
                # A replacement can ack before its supervisor renames it (settle() matches by the
                # name): look again now that it has a name, and after another deadline if not.
                self._check_complete()
                if self.acks.awaiting_replacement:
                    self.runtime.send_after(self.settings.ack_deadline_s, self.actor_ref, _AckDeadline(epoch=message.epoch))
            return
        for urn in sorted(self.acks.pending):
            name = self._name(urn)
            logger.error(
                "kill switch: {} did not ack halt epoch {} within {} s: replacing it",
                name,
                message.epoch,
                self.settings.ack_deadline_s,
            )
            self.acks.give_up(urn, name)
            self._event("ERROR_EVENT", {"what": "halt not acknowledged", "actor": name, "epoch": message.epoch})  # type: ignore[attr-defined]
            # Out of the protocol at once: the halt completes when its replacement acks.
            entry = self._drop_participant(urn)
            if entry is None:
                continue
            ref = entry[0]
            self.unwatch(ref)  # type: ignore[attr-defined]
            if not self.runtime.restart_child(ref, f"did not ack halt epoch {message.epoch}"):
                ref.stop(block=False)
        self._check_complete()
        # Replacements ack on start; whoever is still silent after another deadline goes too.
        self.runtime.send_after(self.settings.ack_deadline_s, self.actor_ref, _AckDeadline(epoch=message.epoch))
