"""Recovery: the kill switch's side of an authorised resume and the gradual restart after it.

A mixin of :class:`~xorj_actors.kill_switch._actor.KillSwitch` (as ``_reducing`` is): it checks a
:class:`Recover` (``_recovery_keys.RecoveryVerifier``), then loosens the state through the actor's
``_loosen``: the RECOVERY entry is durable in the audit log before the state file says
RECOVERY_PENDING or ARMED, so the log never lags a resume. Each restart step loosens the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from loguru import logger

from supervisors import ControlMessage
from xorj_actors.kill_switch._acks import HaltAcks
from xorj_actors.kill_switch._kill_file import KillFile
from xorj_actors.kill_switch._messages import FollowRecovery, Recover, RecoveryOutcome
from xorj_actors.kill_switch._recovery_keys import RecoveryRefused, RecoveryVerifier, nonce_digest
from xorj_actors.kill_switch._state import MAX_NONCES, KillSwitchState, PersistedState
from xorj_actors.kill_switch.settings import KillSwitchSettings
from xorj_actors.limits import OPERATOR_LIMIT, REASON_LIMIT

__all__ = ["RecoveringMode"]

_S = KillSwitchState


class _RestartStep(ControlMessage):  # a timer the halt depends on: never refused
    epoch: int
    index: int


class RecoveringMode:
    """The recovery half of the kill switch actor (a mixin over the attributes below)."""

    settings: KillSwitchSettings
    persisted: PersistedState
    acks: HaltAcks
    clock: Callable[[], float]
    redact: Callable[[str], str]
    kill_file: KillFile
    verifier: RecoveryVerifier
    step_timer: Any
    runtime: Any
    actor_ref: Any

    def _recover(self, request: Recover) -> RecoveryOutcome:
        p = self.persisted
        digest = nonce_digest(request.nonce)
        details: dict[str, Any] = {
            "operator": self.redact(request.operator[:OPERATOR_LIMIT]),
            "epoch": request.epoch,
            "nonce_sha256": digest,
        }
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
                used_nonce_digests=p.nonce_digests,
                now=self.clock(),
            )
        except RecoveryRefused as exc:
            logger.warning("kill switch: recovery refused: {}", exc)
            self._event("SECURITY_VIOLATION", {**details, "what": "recovery refused", "reason": str(exc)})
            return self._outcome(False, str(exc))
        factors = self.settings.restart_factors
        final = len(factors) == 1
        new = replace(
            p,
            state=_S.ARMED if final else _S.RECOVERY_PENDING,
            factor=factors[0],
            nonce_digests=(*p.nonce_digests, digest)[-MAX_NONCES:],
        )
        entry = {**details, "what": "recovery accepted", "authorised_by": list(signers), "factor": factors[0]}
        failure = self._loosen(new, "RECOVERY", entry)
        if failure is not None:
            return self._outcome(False, f"recovery not recorded durably: {failure}")
        logger.warning("kill switch: recovery accepted (authorised by {}), factor {}", ", ".join(signers), factors[0])
        self.acks.clear()
        self._broadcast_resume()
        if not final:
            self._schedule_step(1)
        return self._outcome(True, f"recovering at {factors[0]:g} of position limits")

    def _follow_recovery(self, request: FollowRecovery) -> RecoveryOutcome:
        """Resume as the cluster did: another node's authorised recovery cleared the cluster halt
        this switch halted for. No authorisations here (they were checked where they were given);
        the same restart factors and steps, and the kill file still wins."""
        p = self.persisted
        details: dict[str, Any] = {
            "cluster_epoch": request.cluster_epoch,
            "cleared_by": self.redact(request.cleared_by[:OPERATOR_LIMIT]),
            "cluster_reason": self.redact(request.reason[:REASON_LIMIT]),
        }
        refusal = None
        if p.state not in (_S.TRIGGERED, _S.MAINTENANCE) or p.epoch != request.epoch:
            refusal = f"not in the cluster's halt any more ({p.state.value}, epoch {p.epoch}, followed {request.epoch})"
        elif self.kill_file.exists():
            refusal = f"the kill file {self.kill_file.path} still exists: remove it first"
        if refusal is not None:
            logger.warning("kill switch: cluster recovery not followed: {}", refusal)
            self._event("ERROR_EVENT", {**details, "what": "cluster recovery not followed", "reason": refusal})
            return self._outcome(False, refusal)
        factors = self.settings.restart_factors
        final = len(factors) == 1
        new = replace(p, state=_S.ARMED if final else _S.RECOVERY_PENDING, factor=factors[0])
        failure = self._loosen(new, "RECOVERY", {**details, "what": "cluster recovery followed", "factor": factors[0]})
        if failure is not None:
            return self._outcome(False, f"recovery not recorded durably: {failure}")
        logger.warning("kill switch: following the cluster's recovery (cleared by {}), factor {}", request.cleared_by, factors[0])
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
        new = replace(self.persisted, state=_S.ARMED if last else _S.RECOVERY_PENDING, factor=factor)
        failure = self._loosen(new, "RECOVERY", {"what": "restart step", "factor": factor, "armed": last})
        if failure is not None:  # stays at the factor it has; the step is tried again
            logger.error("kill switch: restart step to {} not recorded durably: {}", factor, failure)
            self._schedule_step(step.index)
            return
        logger.info("kill switch: gradual restart at {} of position limits", factor)
        self._broadcast_resume()
        if not last:
            self._schedule_step(step.index + 1)
