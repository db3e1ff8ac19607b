"""The local kill switch as a cluster node reaches it, and the halts a node causes itself.

The node never moves the kill switch's state itself: it tells it a :class:`Trigger`, exactly as a
signal, ``ctl halt`` or a breaker does, so the existing halt protocol (signers first, acks,
replacement of silent actors) runs unchanged. The sources below mark the halts the node causes;
:func:`opens_cluster_halt` says which local halts open a cluster halt epoch.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any, TypeVar

from loguru import logger
from pykka import ActorDeadError, Timeout

from supervisors import MailboxFull, Runtime
from xorj_actors.kill_switch import (
    DOWNTIME_SOURCE,
    KILL_SWITCH_NAME,
    FollowRecovery,
    GetStatus,
    HaltBoard,
    KillSwitchState,
    KillSwitchStatus,
    RecoveryOutcome,
)
from xorj_actors.cluster._records import HaltRecord
from xorj_actors.messages import HaltMode, Trigger

__all__ = ["LocalKillSwitch", "LocalTrigger", "NodeHaltSource", "follow_reason", "opens_cluster_halt"]

_A = TypeVar("_A")


class NodeHaltSource(enum.StrEnum):
    """The ``source`` of the local halts a cluster node causes."""

    #: Following the cluster's halt record (a halt opened on another node, or one open at start).
    CLUSTER = "cluster"
    #: No NATS answer for ``nats_lost_halt_s``: the node can know neither whether a cluster halt was
    #: called nor whether its leases stand.
    NATS_LOST = "nats_lost"
    #: Another live process writes under this node id.
    DUPLICATE_NODE = "cluster_duplicate_node"
    #: The cluster's halt record does not parse: whether the cluster is halted cannot be known.
    CLUSTER_DATA = "cluster_data_error"
    #: NATS lost the cluster's records (its store wiped: the halt record went back): the node
    #: opens a cluster halt above every epoch it saw itself (:meth:`ClusterNode._records_lost`).
    RECORDS_LOST = "cluster_records_lost"


#: Local halts that open no cluster epoch: one that came from the cluster (opening another would
#: loop), faults of this process alone, and the downtime policy's halt (this node was down, not
#: the cluster: its vaults are flattened and it stays halted alone; docs/RISK.md). NATS lost does
#: open one, once NATS answers again: the node cannot tell what happened meanwhile, and one
#: authorised recovery then resumes all.
_NOT_OPENING: frozenset[str] = frozenset({
    NodeHaltSource.CLUSTER, NodeHaltSource.DUPLICATE_NODE, NodeHaltSource.CLUSTER_DATA, NodeHaltSource.RECORDS_LOST,
    DOWNTIME_SOURCE,
})


def opens_cluster_halt(source: object) -> bool:
    """Whether a local halt triggered by ``source`` opens a cluster halt epoch."""
    return isinstance(source, str) and source not in _NOT_OPENING


@dataclass(frozen=True, slots=True)
class LocalTrigger:
    """A local trigger waiting to open a cluster halt epoch."""

    mode: HaltMode
    reason: str
    #: The local kill switch's epoch of that trigger: the ack waits for this halt or a later one.
    local_epoch: int


def follow_reason(record: HaltRecord) -> str:
    """The reason a node's kill switch is told when it follows the cluster's halt ``record``."""
    return f"cluster halt epoch {record.epoch} (opened by node {record.node_id}): {record.reason}"


class LocalKillSwitch:
    """The engine's kill switch, found by name in its runtime (across the switch's restarts).

    Args:
        runtime: the engine's runtime, or None before the tree exists or after it stopped.
        board: the local halt board (read without a message).
    """

    def __init__(self, runtime: Callable[[], Runtime | None], board: HaltBoard) -> None:
        self._runtime = runtime
        self.board = board

    def _ref(self) -> Any:
        runtime = self._runtime()
        return None if runtime is None else runtime.whereis(KILL_SWITCH_NAME)

    def trigger(self, mode: HaltMode, reason: str, source: NodeHaltSource) -> bool:
        """Tell the kill switch to halt; False if it cannot take it now (restarting): try again."""
        ref = self._ref()
        try:
            if ref is None:
                raise ActorDeadError("the kill switch is not running")
            ref.tell(Trigger(mode=mode, reason=reason, source=source.value))
        except (ActorDeadError, MailboxFull) as exc:
            logger.error("cluster: cannot tell the kill switch to halt ({}): {!r}; trying again", source.value, exc)
            return False
        return True

    def status(self, timeout: float = 2.0) -> KillSwitchStatus | None:
        """The kill switch's status, or None if it does not answer (blocking: not on a loop)."""
        return self._ask(GetStatus(), KillSwitchStatus, timeout)

    def follow_recovery(self, message: FollowRecovery, timeout: float = 10.0) -> RecoveryOutcome | None:
        """Ask the kill switch to resume as the cluster did; None if it did not answer (blocking).

        The resume is durable in the audit log before it happens, hence the longer timeout.
        """
        return self._ask(message, RecoveryOutcome, timeout)

    def _ask(self, message: Any, kind: type[_A], timeout: float) -> _A | None:
        ref = self._ref()
        if ref is None:
            return None
        try:
            answer = ref.ask(message, timeout=timeout)
        except (ActorDeadError, MailboxFull, Timeout):
            return None
        return answer if isinstance(answer, kind) else None

    @property
    def epoch(self) -> int:
        """The local halt epoch as published."""
        return self.board.status.epoch

    @property
    def halted(self) -> bool:
        return self.board.status.halted

    @property
    def state(self) -> KillSwitchState | None:
        """The published state; None before the kill switch has published one."""
        try:
            return KillSwitchState(self.board.status.state)
        except ValueError:
            return None
