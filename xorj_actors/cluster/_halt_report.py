"""Which nodes have completed a cluster halt (what ``ctl status`` shows across the cluster)."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from xorj_actors.cluster._records import HaltAck, HaltRecord

__all__ = ["ClusterHaltReport", "NodeHalt", "NodeHaltStatus", "halt_report"]


class NodeHaltStatus(enum.StrEnum):
    #: Every actor on the node acked.
    COMPLETE = "complete"
    #: The node answered, with actors missing.
    INCOMPLETE = "incomplete"
    #: No answer yet, still inside the deadline.
    WAITING = "waiting"
    #: No answer past the deadline: its leases are not renewed, its vaults fence themselves.
    NOT_ANSWERING = "not_answering"


@dataclass(frozen=True, slots=True)
class NodeHalt:
    node_id: str
    status: NodeHaltStatus
    ack: HaltAck | None


@dataclass(frozen=True, slots=True)
class ClusterHaltReport:
    record: HaltRecord
    nodes: tuple[NodeHalt, ...]

    @property
    def complete(self) -> bool:
        """Every node answered with every actor acked."""
        return all(n.status is NodeHaltStatus.COMPLETE for n in self.nodes)


def halt_report(
    record: HaltRecord, acks: Mapping[str, HaltAck], nodes: Iterable[str], now: float, deadline_s: float
) -> ClusterHaltReport:
    """The state of halt ``record`` on each of ``nodes`` (plus any node that acked) at wall time ``now``.

    An ack for another epoch counts as no answer.
    """
    rows = []
    for node in sorted(set(nodes) | set(acks)):
        ack = acks.get(node)
        if ack is not None and ack.epoch == record.epoch:
            status = NodeHaltStatus.COMPLETE if ack.complete else NodeHaltStatus.INCOMPLETE
        else:
            ack = None
            late = now - record.at >= deadline_s
            status = NodeHaltStatus.NOT_ANSWERING if late else NodeHaltStatus.WAITING
        rows.append(NodeHalt(node, status, ack))
    return ClusterHaltReport(record, tuple(rows))
