"""Recovery: the kill switch's side of an authorised resume and the gradual restart after it.

A mixin of :class:`~xorj_actors.kill_switch._actor.KillSwitch` (as ``_reducing`` is): it checks a
:class:`Recover` (``_recovery_keys.RecoveryVerifier``), then loosens the state through the actor's
``_loosen``: the RECOVERY entry is durable in the audit log before the state file says
RECOVERY_PENDING or ARMED, so the log never lags a resume. Each restart step loosens the same way.

On a cluster node (``cluster``, a :class:`ClusterHalt`) a recovery given while the cluster is
halted is the cluster's: authorised for the cluster epoch, handed to the node as a
:class:`ClusterProof` to publish with the clear; a :class:`FollowRecovery` resumes only once that
proof verifies here too (docs/CLUSTER.md, "Recovery").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from loguru import logger

from supervisors import ControlMessage
from xorj_actors.kill_switch._acks import HaltAcks
from xorj_actors.kill_switch._kill_file import KillFile
from xorj_actors.kill_switch._messages import ClusterProof, FollowRecovery, Recover, RecoveryOutcome
from xorj_actors.kill_switch._recovery_keys import RecoveryRefused, RecoveryVerifier, nonce_digest
from xorj_actors.kill_switch._state import MAX_NONCES, KillSwitchState, PersistedState
from xorj_actors.kill_switch.settings import KillSwitchSettings
from xorj_actors.limits import OPERATOR_LIMIT, REASON_LIMIT

__all__ = ["ClusterHalt", "RecoveringMode"]

_S = KillSwitchState


class _RestartStep(ControlMessage):  # a timer the halt depends on: never refused
    epoch: int
    index: int


class ClusterHalt(Protocol):
    """The cluster halt as the kill switch of a cluster node sees it (the node runtime)."""

    def open_epoch(self) -> int | None:
        """The cluster halt epoch open now, as this node last read it; None: the cluster is clear."""

    def recovered(self, proof: ClusterProof) -> None:
        """An authorised recovery of the cluster halt was accepted here: publish it with the clear
        (called from the kill switch's thread; must not block)."""


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
    cluster: ClusterHalt | None

    def _recover(self, request: Recover) -> RecoveryOutcome:
        p = self.persisted
        digest = nonce_digest(request.nonce)
        details: dict[str, Any] = {
            "operator": self.redact(request.operator[:OPERATOR_LIMIT]),
            "epoch": request.epoch,
            "nonce_sha256": digest,
        }
        cluster_epoch = self.cluster.open_epoch() if self.cluster is not None else None
        if cluster_epoch is not None:
            details["cluster_epoch"] = cluster_epoch
        try:
            if p.state is _S.REDUCING:
                raise RecoveryRefused("a flatten is under way (REDUCING): recover once it has ended")
            if p.state not in (_S.TRIGGERED, _S.MAINTENANCE):
                raise RecoveryRefused(f"nothing to recover: the kill switch is {p.state.value}")
            if self.kill_file.exists():
                raise RecoveryRefused(f"the kill file {self.kill_file.path} still exists: remove it first")
            if (remaining := self._cooldown_left()) > 0:
                raise RecoveryRefused(f"cooldown: {remaining:.0f} s left before recovery is allowed")
            signers = self._verify(request, cluster_epoch)
        except RecoveryRefused as exc:
            logger.warning("kill switch: recovery refused: {}", exc)
            self._event("SECURITY_VIOLATION", {**details, "what": "recovery refused", "reason": str(exc)})
            return self._outcome(False, str(exc))
        factors = self.settings.restart_factors
        new = replace(
            p,
            state=_S.RECOVERY_PENDING,
            factor=factors[0],
            nonce_digests=(*p.nonce_digests, digest)[-MAX_NONCES:],
        )
        entry = {**details, "what": "recovery accepted", "authorised_by": list(signers), "factor": factors[0]}
        failure = self._loosen(new, "RECOVERY", entry)
        if failure is not None:
            return self._outcome(False, f"recovery not recorded durably: {failure}")
        logger.warning("kill switch: recovery accepted (authorised by {}), factor {}", ", ".join(signers), factors[0])
        if self.cluster is not None and cluster_epoch is not None:
            self.cluster.recovered(
                ClusterProof(
                    cluster_epoch=cluster_epoch,
                    nonce_sha256=digest,
                    timestamp=request.timestamp,
                    authorisations=request.authorisations,
                    operator=details["operator"],
                    local_epoch=p.epoch,
                )
            )
        self.acks.clear()
        self._broadcast_resume()
        self._schedule_step(1)
        return self._outcome(True, f"recovering at {factors[0]:g} of position limits")

    def _verify(self, request: Recover, cluster_epoch: int | None) -> tuple[str, ...]:
        """The signers of ``request``: of this engine's halt, or, while the cluster is halted at
        ``cluster_epoch``, of the cluster's (the authorisations name the cluster epoch)."""
        p = self.persisted
        if cluster_epoch is None:
            if request.cluster_epoch is not None:
                raise RecoveryRefused("the cluster is not halted: authorise this node's own halt epoch")
            return self.verifier.verify(
                epoch=request.epoch,
                nonce=request.nonce,
                timestamp=request.timestamp,
                authorisations=request.authorisations,
                current_epoch=p.epoch,
                used_nonce_digests=p.nonce_digests,
                now=self.clock(),
            )
        if request.cluster_epoch != cluster_epoch:
            raise RecoveryRefused(
                f"the cluster is halted (epoch {cluster_epoch}): its recovery is authorised for the cluster epoch "
                f"(sign-recovery --cluster-epoch {cluster_epoch}, recover --cluster-epoch {cluster_epoch})"
            )
        if request.epoch != p.epoch:  # the halt the operator looked at is still this one
            raise RecoveryRefused(f"the request is for epoch {request.epoch}, this node's halt is epoch {p.epoch}")
        if not request.nonce or len(request.nonce) > 128:
            raise RecoveryRefused("nonce must be 1 to 128 characters")
        return self.verifier.verify_cluster(
            cluster_epoch=cluster_epoch,
            nonce_sha256=nonce_digest(request.nonce),
            timestamp=request.timestamp,
            authorisations=request.authorisations,
            halted_epoch=cluster_epoch,
            used_nonce_digests=p.nonce_digests,
            now=self.clock(),
        )

    def _follow_recovery(self, request: FollowRecovery) -> RecoveryOutcome:
        """Resume as the cluster did: another node's authorised recovery cleared the cluster halt
        this switch halted for. Its proof is verified here, with this node's own keys and used
        nonces (the halt bucket is not trusted); then the same cooldown (waited out, not
        refused), restart factors and steps, and the kill file still wins."""
        p = self.persisted
        proof = request.proof
        details: dict[str, Any] = {
            "cluster_epoch": request.cluster_epoch,
            "cleared_by": self.redact(request.cleared_by[:OPERATOR_LIMIT]),
            "cluster_reason": self.redact(request.reason[:REASON_LIMIT]),
        }
        if proof is not None:
            details.update(
                nonce_sha256=self.redact(proof.nonce_sha256[:64]),
                operator=self.redact(proof.operator[:OPERATOR_LIMIT]),
                recovered_local_epoch=proof.local_epoch,
            )
        refusal = None
        if p.state not in (_S.TRIGGERED, _S.MAINTENANCE) or p.epoch != request.epoch:
            refusal = f"not in the cluster's halt any more ({p.state.value}, epoch {p.epoch}, followed {request.epoch})"
        elif self.kill_file.exists():
            refusal = f"the kill file {self.kill_file.path} still exists: remove it first"
        if refusal is not None:
            logger.warning("kill switch: cluster recovery not followed: {}", refusal)
            self._event("ERROR_EVENT", {**details, "what": "cluster recovery not followed", "reason": refusal})
            return self._outcome(False, refusal)
        try:
            proof, signers = self._verify_proof(request)
        except RecoveryRefused as exc:
            refusal = f"the cluster's recovery proof does not verify: {exc}"
            logger.critical("kill switch: cluster recovery of epoch {} REFUSED: {}", request.cluster_epoch, refusal)
            self._event("SECURITY_VIOLATION", {**details, "what": "cluster recovery refused", "reason": refusal})
            return self._outcome(False, refusal)
        wait = self._cooldown_left()
        if wait > 0:  # nothing changes; the node asks again
            logger.info("kill switch: following the cluster's recovery in {:.0f} s (cooldown)", wait)
            return RecoveryOutcome(
                accepted=False, reason=f"cooldown: {wait:.0f} s left", state=p.state.value, factor=p.factor, retry_after_s=wait
            )
        factors = self.settings.restart_factors
        new = replace(
            p,
            state=_S.RECOVERY_PENDING,
            factor=factors[0],
            nonce_digests=(*p.nonce_digests, proof.nonce_sha256)[-MAX_NONCES:],
        )
        entry = {**details, "what": "cluster recovery followed", "authorised_by": list(signers), "factor": factors[0]}
        failure = self._loosen(new, "RECOVERY", entry)
        if failure is not None:
            return self._outcome(False, f"recovery not recorded durably: {failure}")
        logger.warning("kill switch: following the cluster's recovery (cleared by {}), factor {}", request.cleared_by, factors[0])
        self.acks.clear()
        self._broadcast_resume()
        self._schedule_step(1)
        return self._outcome(True, f"recovering at {factors[0]:g} of position limits")

    def _verify_proof(self, request: FollowRecovery) -> tuple[ClusterProof, tuple[str, ...]]:
        """The proof and the keys that authorised it, verified here, or RecoveryRefused."""
        proof = request.proof
        if proof is None:
            raise RecoveryRefused(f"malformed proof: {request.proof_problem}" if request.proof_problem else "the clear carries no proof")
        return proof, self.verifier.verify_cluster(
            cluster_epoch=proof.cluster_epoch,
            nonce_sha256=proof.nonce_sha256,
            timestamp=proof.timestamp,
            authorisations=proof.authorisations,
            halted_epoch=request.cluster_epoch,
            used_nonce_digests=self.persisted.nonce_digests,
            now=self.clock(),
        )

    def _cooldown_left(self) -> float:
        p = self.persisted
        if p.state is not _S.TRIGGERED or p.triggered_at is None:
            return 0.0
        return self.settings.cooldown_s - (self.clock() - p.triggered_at)

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
