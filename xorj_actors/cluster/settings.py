"""``[cluster]``: several engine processes sharing the vaults through NATS JetStream (docs/CLUSTER.md).

Without the section the engine runs alone, as it always has. With it, every timing below is one
of the lease and liveness rules: the renewal must land well inside the bucket TTL, and the local
deadline a node signs against must expire well inside it too.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Final

__all__ = ["NODE_ID", "ClusterSettings"]

#: A node id: it is a KV key and part of a key, so letters, digits, ``-`` and ``_`` only.
NODE_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: A bucket prefix: bucket names allow letters, digits, ``-`` and ``_``.
_BUCKET_PREFIX: Final = re.compile(r"[A-Za-z0-9_-]{1,32}")


def _finite_in(name: str, value: float, low: float, high: float, why: str = "") -> None:
    if not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"{name}: must be between {low:g} and {high:g} seconds{why}, got {value!r}")


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """``[cluster]``: where NATS is, who this node is, and the lease and liveness timings."""

    #: The NATS server (JetStream enabled); several may be listed, comma-separated.
    nats_url: str = "nats://127.0.0.1:4222"
    #: This node's id, unique in the cluster. Empty: ``xorj-actors run --node-id`` must give it.
    node_id: str = ""
    #: Buckets are ``<prefix>_members``, ``_leases``, ``_halt``, ``_acks`` and ``_config``: two
    #: clusters (or two test runs) may share one NATS server under different prefixes.
    bucket_prefix: str = "xorj"
    #: JetStream replicas of every bucket (1 for a single NATS server, 3 for a NATS cluster).
    replicas: int = 1
    #: The leases bucket's TTL (max age): a lease not renewed this long disappears.
    lease_ttl_s: float = 10.0
    #: A held lease is renewed this often; at most a third of the TTL, so two renewals may fail
    #: before the lease is in danger.
    renew_every_s: float = 2.0
    #: A lease is usable for signing until ``sent + lease_ttl_s - fence_margin_s`` on the local
    #: monotonic clock (``sent``: when the request that created or renewed it was sent). The
    #: margin covers the server's clock running ahead of ours and a signature already in hand.
    fence_margin_s: float = 3.0
    #: A node writes its heartbeat this often.
    heartbeat_s: float = 1.0
    #: A node whose last heartbeat is older than this is dead to placement.
    dead_after_s: float = 5.0
    #: The members bucket's TTL: a dead node's record stays visible (``ctl cluster``) this long.
    member_ttl_s: float = 86_400.0
    #: A node that has not completed a NATS operation for this long halts itself (fail closed):
    #: it can no longer know whether a cluster halt was called or whether its leases stand.
    nats_lost_halt_s: float = 10.0
    #: Timeout of one NATS request (a JetStream publish or read).
    op_timeout_s: float = 1.0
    #: A node that has not published its ack of a cluster halt this long after it opened is
    #: reported as not answering.
    halt_ack_deadline_s: float = 10.0

    @property
    def buckets(self) -> dict[str, str]:
        """The bucket names by role: ``members``, ``leases``, ``halt``, ``acks``, ``config``."""
        return {role: f"{self.bucket_prefix}_{role}" for role in ("members", "leases", "halt", "acks", "config")}

    @property
    def lease_usable_s(self) -> float:
        """How long after its request was sent a lease may be signed with."""
        return self.lease_ttl_s - self.fence_margin_s

    def with_node_id(self, node_id: str | None) -> ClusterSettings:
        """These settings with ``node_id`` (the ``--node-id`` flag) when given; one is required."""
        chosen = node_id if node_id else self.node_id
        if not chosen:
            raise ValueError("node_id: required: set [cluster] node_id or pass --node-id")
        resolved = dataclasses.replace(self, node_id=chosen)
        resolved.validate()
        return resolved

    def validate(self) -> None:
        if not self.nats_url.strip():
            raise ValueError("nats_url: required")
        if self.node_id and not NODE_ID.fullmatch(self.node_id):
            raise ValueError(f"node_id: must be 1 to 64 letters, digits, '-' or '_', got {self.node_id!r}")
        if not _BUCKET_PREFIX.fullmatch(self.bucket_prefix):
            raise ValueError(f"bucket_prefix: must be 1 to 32 letters, digits, '-' or '_', got {self.bucket_prefix!r}")
        if not 1 <= self.replicas <= 5:
            raise ValueError("replicas: must be between 1 and 5")
        _finite_in("lease_ttl_s", self.lease_ttl_s, 1.0, 600.0)
        _finite_in("op_timeout_s", self.op_timeout_s, 0.05, 60.0)
        _finite_in("renew_every_s", self.renew_every_s, 0.1, self.lease_ttl_s / 3, " (at most lease_ttl_s / 3)")
        _finite_in("fence_margin_s", self.fence_margin_s, self.lease_ttl_s / 10, self.lease_ttl_s, " (at least lease_ttl_s / 10)")
        if self.lease_usable_s <= self.renew_every_s + self.op_timeout_s:
            # A renewal sent on time and answered at the last moment must land before the
            # local deadline, or a healthy node would fence itself between renewals.
            raise ValueError(
                "fence_margin_s: lease_ttl_s - fence_margin_s must exceed renew_every_s + op_timeout_s "
                f"({self.lease_usable_s:g} <= {self.renew_every_s:g} + {self.op_timeout_s:g})"
            )
        if self.op_timeout_s > self.renew_every_s:
            raise ValueError("op_timeout_s: must be at most renew_every_s (a renewal must end before the next is due)")
        _finite_in("heartbeat_s", self.heartbeat_s, 0.1, 60.0)
        _finite_in("dead_after_s", self.dead_after_s, 3 * self.heartbeat_s, 3600.0, " (at least 3 heartbeats)")
        _finite_in("member_ttl_s", self.member_ttl_s, self.dead_after_s * 2, 30 * 86_400.0, " (at least 2 x dead_after_s)")
        _finite_in("nats_lost_halt_s", self.nats_lost_halt_s, 2 * self.heartbeat_s, 3600.0, " (at least 2 heartbeats)")
        if self.nats_lost_halt_s <= self.op_timeout_s:
            raise ValueError("nats_lost_halt_s: must exceed op_timeout_s (one slow request is not a lost server)")
        _finite_in("halt_ack_deadline_s", self.halt_ack_deadline_s, 0.1, 3600.0)
