"""Several engine processes sharing the vaults through NATS JetStream (docs/CLUSTER.md).

Pure rules: :func:`place` (rendezvous hashing), :class:`LeaseClock` (the fence's arithmetic),
:func:`renewals` and :func:`placement` (what the lease loop does next), :func:`liveness`,
:func:`nats_lost`, :func:`halt_report`. The fence the signing path reads: :class:`Fence`
(thread-safe). NATS plumbing (nats-py, asyncio): :class:`ClusterStore` (the connection and the
buckets), :class:`Leases`, :class:`Ownership` (the lease loop), :class:`Membership`,
:class:`HaltBoard`, :class:`VaultSetBoard` (the cluster's vault set). The node runtime, :class:`ClusterNode`: membership, the cluster halt, NATS
lost; it reaches the engine only through the kill switch (:class:`LocalKillSwitch`) and callables
the engine gives it.
This package knows nothing of the engine: the engine drives it.
"""

from xorj_actors.cluster._errors import (
    ClusterDataError,
    ClusterError,
    ClusterUnavailable,
    FenceRefusal,
    Fenced,
    HaltMoved,
    LeaseConflict,
)
from xorj_actors.cluster._fence import Fence, LeaseToken
from xorj_actors.cluster._fencing import LeaseClock, LeaseGrant, nats_lost
from xorj_actors.cluster._halt import HaltBoard, HaltChange
from xorj_actors.cluster._halt_report import ClusterHaltReport, NodeHalt, NodeHaltStatus, halt_report
from xorj_actors.cluster._leases import VAULT_KEY, Leases, NodeIdentity
from xorj_actors.cluster._local import LocalKillSwitch, NodeHaltSource, opens_cluster_halt
from xorj_actors.cluster._members import DuplicateNode, Membership
from xorj_actors.cluster._membership import Liveness, live_nodes, liveness
from xorj_actors.cluster._node import ClusterNode
from xorj_actors.cluster._ownership import ACTIVATE_BATCH, Activate, Ownership, Passivate, RenewalRound, one_by_one
from xorj_actors.cluster._ownership_rules import LeaseLoss, Placement, Renewals, placed_here, placement, renewals
from xorj_actors.cluster._placement import assign, place, weight
from xorj_actors.cluster._records import (
    NO_HALT,
    HaltAck,
    HaltRecord,
    HaltState,
    LeaseHolder,
    LeaseInfo,
    MemberRecord,
    VaultSet,
    decode,
    encode,
)
from xorj_actors.cluster._removed import DRAIN_WITHIN_S, RemovedVaults
from xorj_actors.cluster._store import ClusterStore
from xorj_actors.cluster._vault_set import VaultSetBoard, VaultSetChange, VaultSetFollower
from xorj_actors.cluster._views import ClusterViews, render_cluster, render_cluster_halt
from xorj_actors.cluster.settings import ClusterSettings

__all__ = [
    "DRAIN_WITHIN_S",
    "NO_HALT",
    "VAULT_KEY",
    "ACTIVATE_BATCH",
    "Activate",
    "ClusterDataError",
    "ClusterError",
    "ClusterHaltReport",
    "ClusterNode",
    "ClusterViews",
    "ClusterSettings",
    "ClusterStore",
    "ClusterUnavailable",
    "DuplicateNode",
    "Fence",
    "FenceRefusal",
    "Fenced",
    "HaltAck",
    "HaltBoard",
    "HaltChange",
    "HaltMoved",
    "HaltRecord",
    "HaltState",
    "LeaseClock",
    "LeaseConflict",
    "LeaseGrant",
    "LeaseHolder",
    "LeaseInfo",
    "LeaseLoss",
    "LeaseToken",
    "Leases",
    "LocalKillSwitch",
    "Liveness",
    "MemberRecord",
    "Membership",
    "NodeHalt",
    "NodeHaltSource",
    "NodeHaltStatus",
    "NodeIdentity",
    "Ownership",
    "Passivate",
    "Placement",
    "RemovedVaults",
    "RenewalRound",
    "Renewals",
    "VaultSet",
    "VaultSetBoard",
    "VaultSetChange",
    "VaultSetFollower",
    "assign",
    "decode",
    "encode",
    "halt_report",
    "live_nodes",
    "liveness",
    "nats_lost",
    "one_by_one",
    "opens_cluster_halt",
    "place",
    "placed_here",
    "placement",
    "renewals",
    "render_cluster",
    "render_cluster_halt",
    "weight",
]
