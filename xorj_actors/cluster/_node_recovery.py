"""A cluster node's part in the recovery of a cluster halt (docs/CLUSTER.md, "Recovery").

The kill switch verifies an operator's K-of-M recovery as it always has; a node whose kill switch
accepted one for the open cluster epoch clears the cluster's halt record with its proof, and every
other node follows the clear (its own kill switch verifies the proof again). Kept apart from
:mod:`._node` (a mixin of :class:`ClusterNode`): the same node state, one job.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from loguru import logger

from supervisors import LoopThread
from xorj_actors.cluster._errors import HaltMoved
from xorj_actors.cluster._halt import HaltBoard
from xorj_actors.cluster._leases import NodeIdentity
from xorj_actors.cluster._local import LocalKillSwitch
from xorj_actors.cluster._records import HaltRecord
from xorj_actors.kill_switch import ClusterProof, FollowRecovery

__all__ = ["NodeRecovery"]


class NodeRecovery:
    """The recovery half of :class:`~xorj_actors.cluster.ClusterNode` (its state is the node's)."""

    record: HaltRecord
    kill_switch: LocalKillSwitch
    _thread: LoopThread
    _board: HaltBoard | None
    _wake: asyncio.Event | None
    _halted_at: tuple[int, int] | None
    _proof: ClusterProof | None
    _overwritten: set[tuple[int, ClusterProof | None]]
    _no_proof_said: int
    _recovering: tuple[int, ClusterProof | None] | None
    spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]]

    identity: NodeIdentity

    @property
    def node_id(self) -> str:
        return self.identity.node_id

    def open_epoch(self) -> int | None:
        """The cluster halt epoch this node is in (the kill switch's ClusterHalt): the open one as
        last read, or the one it halted for whose clear it has not followed (a clear without a
        proof that verifies here is not the end of it). A recovery given here meanwhile is the
        cluster's, authorised for that epoch, and clears it with its proof."""
        record, at = self.record, self._halted_at
        if record.halted:
            return record.epoch
        if at is not None and at[0] == record.epoch and self.kill_switch.halted:
            return record.epoch
        return None

    def recovered(self, proof: ClusterProof) -> None:
        """The kill switch accepted an authorised recovery of cluster epoch ``proof.cluster_epoch``
        (its thread): the next beat clears the cluster halt with this proof."""
        self._proof = proof
        with contextlib.suppress(RuntimeError):  # the loop is closed: the node is stopping
            self._thread.loop.call_soon_threadsafe(self._wake_beat)

    def _wake_beat(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _recovered_here(self) -> ClusterProof | None:
        """The proof to clear the current cluster epoch with: this node's kill switch accepted an
        authorised recovery of that very epoch (nothing else makes a proof) and is not halted
        again since. None once the record carries it. A clear with another proof (or none:
        written by whoever could write the bucket) is written over, once."""
        proof, record, ks = self._proof, self.record, self.kill_switch
        if proof is None or proof.cluster_epoch != record.epoch or ks.halted or ks.state is None:
            return None
        if record.halted:
            return proof
        if record.proof == proof or (record.epoch, record.proof) in self._overwritten:
            return None
        return proof

    async def _clear_if_recovered_here(self) -> None:
        if self._board is None:
            return
        proof = self._recovered_here()
        if proof is None:
            self._say_if_unclearable()
            return
        before = self.record
        epoch = before.epoch
        reason = f"authorised recovery on node {self.node_id} (its local halt epoch {proof.local_epoch})"
        try:
            change = await self._board.clear(epoch, reason, proof)
        except HaltMoved as exc:
            logger.error("cluster: the recovery here does not clear the cluster halt: {}", exc)
            return
        if not before.halted:
            logger.warning("cluster: the clear of epoch {} did not carry this node's proof: written over", epoch)
            self._overwritten = {o for o in self._overwritten if o[0] == epoch} | {(epoch, before.proof)}
        self.record = change.record
        logger.warning("cluster: halt epoch {} cleared: {}", epoch, reason)

    def _say_if_unclearable(self) -> None:
        """A node that left the open cluster halt without a proof for it (a recovery of its own
        halt given before it saw the cluster's) cannot clear it: say so, once per epoch."""
        record, at, ks = self.record, self._halted_at, self.kill_switch
        if not record.halted or at is None or at[0] != record.epoch or self._no_proof_said == record.epoch:
            return
        if not ks.halted and ks.state is not None and ks.epoch >= at[1]:
            self._no_proof_said = record.epoch
            logger.error(
                "cluster: this node left cluster halt epoch {} without a recovery authorised for that epoch: "
                "the cluster stays halted (recover with --cluster-epoch {} on any halted node)", record.epoch, record.epoch,
            )

    async def _follow_recovery(self, record: HaltRecord, local_epoch: int) -> None:
        message = FollowRecovery(
            epoch=local_epoch, cluster_epoch=record.epoch, cleared_by=record.node_id, reason=record.reason,
            proof=record.proof, proof_problem=record.proof_problem,
        )
        outcome = await asyncio.to_thread(self.kill_switch.follow_recovery, message)
        if outcome is None:
            logger.error("cluster: the kill switch did not answer the cluster's recovery of epoch {}; trying again", record.epoch)
            self._recovering = None  # the next read of the clear record asks again
            return
        if outcome.retry_after_s is not None:  # put off (cooldown): asked again at a later beat
            self._recovering = None
            return
        log = logger.warning if outcome.accepted else logger.critical
        log("cluster: recovery of halt epoch {} (by node {}) {}: {}", record.epoch, record.node_id,
            "followed" if outcome.accepted else "NOT followed", outcome.reason)
