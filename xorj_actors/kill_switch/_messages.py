"""The kill switch's own messages: recovery, maintenance and status (halts are in ``messages``)."""

from __future__ import annotations

from supervisors import Message

__all__ = [
    "ClusterProof",
    "EnterMaintenance",
    "FollowRecovery",
    "GetStatus",
    "KillSwitchStatus",
    "Recover",
    "RecoveryOutcome",
]


class Recover(Message):
    """An operator's recovery request with K-of-M HMAC authorisations ((key id, hex), ...).

    ``epoch`` is this engine's halt epoch. On a cluster node while the cluster is halted, the
    authorisations are for ``cluster_epoch`` instead (``cluster_recovery_payload``), and the
    recovery becomes the cluster's (docs/CLUSTER.md, "Recovery").
    """

    epoch: int
    nonce: str
    timestamp: int
    authorisations: tuple[tuple[str, str], ...]
    operator: str
    cluster_epoch: int | None = None


class ClusterProof(Message):
    """What a node that accepted a cluster recovery publishes with the clear of the cluster halt,
    for every other node to verify with its own recovery keys (``RecoveryVerifier.verify_cluster``).

    The HMACs are over ``cluster_recovery_payload(cluster_epoch, nonce_sha256, timestamp)``;
    ``operator`` and ``local_epoch`` (the recovering node's own halt epoch) are as that node
    recorded them, not signed.
    """

    cluster_epoch: int
    nonce_sha256: str
    timestamp: int
    authorisations: tuple[tuple[str, str], ...]
    operator: str
    local_epoch: int


class FollowRecovery(Message):
    """A cluster node follows the cluster's recovery (docs/CLUSTER.md): the cluster halt
    ``cluster_epoch`` this node halted for, at local halt ``epoch``, was cleared with ``proof``.

    Sent only by the node runtime, in-process (no operator command sends it). Refused unless
    the kill switch is still in that very halt (``epoch``, TRIGGERED or MAINTENANCE): a halt
    triggered here since needs its own authorised recovery. Refused as a security violation
    unless ``proof`` verifies here, with this node's keys and used nonces: the halt bucket is
    not trusted to resume anything. ``proof_problem``: why the record's proof did not parse.
    """

    epoch: int
    cluster_epoch: int
    cleared_by: str
    reason: str
    proof: ClusterProof | None = None
    proof_problem: str = ""


class RecoveryOutcome(Message):
    accepted: bool
    reason: str
    state: str
    factor: float
    #: Set on a follow put off for this node's cooldown: ask again after this many seconds.
    retry_after_s: float | None = None


class EnterMaintenance(Message):
    reason: str
    source: str


class RekeyStateFile(Message):
    """The audit key rotated: write the state file under ``key`` from now on (rewritten at once),
    still reading it under a ``retired`` one. The reply: whether the rewrite was durable."""

    key: bytes
    retired: tuple[bytes, ...] = ()
    #: ``(sequence, new key fingerprint)`` of the rotation: the file records it (a rollback past it is caught).
    rotation: tuple[int, str] | None = None

    def __repr__(self) -> str:  # never the keys
        return f"RekeyStateFile({len(self.retired)} retired)"


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
    #: Why the state cannot be written; while a halt is not durable it says so, and is retried.
    persist_error: str | None
    #: The flatten under way, or the last one: its id, the vaults yet to report, and
    #: (vault, sold, failed, detail) of those that did (or were given up on).
    flatten_id: str | None = None
    flatten_pending: tuple[str, ...] = ()
    flatten_results: tuple[tuple[str, int, int, str], ...] = ()
    #: False while the current halt is held in memory only (the state file refused it).
    durable: bool = True


class HaltProgress(Message):
    """How far the current halt's acknowledgements are, published for the metrics (no message asked).

    ``live`` and ``acked`` are 0 while no halt awaits acknowledgements (none, or it completed).
    """

    live: int  # live actors the halt must hear from (replacements awaited count too)
    acked: int  # of those, the ones that acked
    triggered_mono: float | None  # time.monotonic() of the trigger of a halt still awaiting acks
    ack_deadline_s: float  # [kill_switch] ack_deadline_s
    #: The kill switch's epoch when it published this: behind the board's while it has not
    #: handled a trip (wedged, or not yet run), which the metrics count as a pending halt.
    epoch: int
