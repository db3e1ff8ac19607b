"""Reducing mode: the kill switch's side of an operator's flatten.

The kill switch (:class:`~xorj_actors.kill_switch._actor.KillSwitch`) holds the state machine;
this part of it admits a :class:`Flatten`, enters REDUCING, tells the chosen vaults, collects
their :class:`FlattenDone` reports, and goes back to the state the flatten started from when every
vault has reported or at ``kill_switch.flatten_timeout_s`` (a trigger meanwhile wins: it stays
TRIGGERED). See docs/HALT_PROTOCOL.md ("Reducing mode and flatten").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from loguru import logger
from pykka import ActorDeadError

from supervisors import ControlMessage, MailboxFull
from xorj_actors.kill_switch._flatten import (
    VAULT_ROLE,
    Flatten,
    FlattenDone,
    FlattenOutcome,
    FlattenVault,
    Flattening,
    flatten_refusal,
    new_flatten_id,
)
from xorj_actors.kill_switch._state import KillSwitchState, PersistedState
from xorj_actors.kill_switch.settings import KillSwitchSettings
from xorj_actors.limits import OPERATOR_LIMIT, REASON_LIMIT

__all__ = ["ReducingMode"]

_S = KillSwitchState


class _FlattenDeadline(ControlMessage):  # the return to halted depends on it: never refused
    flatten_id: str


class ReducingMode:
    """The flatten half of the kill switch actor (a mixin: it drives the actor's own transitions).

    It reads and writes the attributes below, which :class:`KillSwitch` owns, and moves the
    state machine only through the actor's ``_transition`` and ``_persist``.
    """

    settings: KillSwitchSettings
    persisted: PersistedState
    persist_error: str | None
    #: urn -> (ref, role) of every live participant
    participants: dict[str, tuple[Any, str]]
    #: The flatten under way (state REDUCING), and the last one, for status.
    flattening: Flattening | None
    last_flatten: Flattening | None
    redact: Callable[[str], str]
    runtime: Any
    actor_ref: Any

    def _flatten(self, request: Flatten) -> FlattenOutcome:
        """Enter REDUCING and tell the chosen vaults to sell; refused with a reason otherwise."""
        p = self.persisted
        operator = self.redact(request.operator.strip())[:OPERATOR_LIMIT]
        reason = self.redact(request.reason.strip())[:REASON_LIMIT]
        asked = tuple(dict.fromkeys(v.strip() for v in request.vaults))
        details: dict[str, Any] = {"operator": operator, "reason": reason, "vaults": list(asked) or "all", "epoch": p.epoch}
        vaults = {ref.actor_inbox.name: ref for ref, role in self.participants.values() if role == VAULT_ROLE}
        refusal = flatten_refusal(p.state, self.flattening, operator, reason, asked, vaults)
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
        started = {**details, "what": "flatten started", "flatten_id": flatten_id, "vaults": list(chosen), "from": p.state.value}
        failure = self._loosen(replace(p, state=_S.REDUCING), "HALT", started)
        if failure is not None:
            self.flattening = None
            refusal = f"REDUCING not recorded durably: {failure}"
            self._event("SYSTEM_EVENT", {**details, "what": "flatten refused", "refusal": refusal})
            return FlattenOutcome(accepted=False, reason=refusal, state=self.persisted.state.value)
        self.last_flatten = f
        logger.warning("kill switch: REDUCING: flatten {} of {} by {}: {}", flatten_id, ", ".join(chosen), operator, reason)
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
        f.give_up("no report within flatten_timeout_s")
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
        f.give_up(f"unfinished: {why}")
        transition = transition and self.persisted.state is _S.REDUCING
        if transition:
            # Tighter again: published at once, written after (as a halt is).
            self._tighten(replace(self.persisted, state=_S(f.back_to)))
            self._persist()
        logger.warning("kill switch: flatten {} ended ({}): back to {}", f.flatten_id, why, self.persisted.state.value)
        ended = {
            "what": "flatten ended", "flatten_id": f.flatten_id, "why": why, "state": self.persisted.state.value,
            "operator": f.operator, "seconds": round(time.monotonic() - f.started, 3), **f.summary(),
        }
        self._event("HALT", self._marked(ended) if transition else ended)
