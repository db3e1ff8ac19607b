"""The kill switch's own messages: recovery, maintenance and status (halts are in ``messages``)."""

from __future__ import annotations

from supervisors import Message

__all__ = ["EnterMaintenance", "FollowRecovery", "GetStatus", "KillSwitchStatus", "Recover", "RecoveryOutcome"]


class Recover(Message):
    """An operator's recovery request with K-of-M HMAC authorisations ((key id, hex), ...)."""

    epoch: int
    nonce: str
    timestamp: int
    authorisations: tuple[tuple[str, str], ...]
    operator: str


class FollowRecovery(Message):
    """A cluster node follows the cluster's recovery (docs/CLUSTER.md): another node's authorised
    recovery cleared the cluster halt this node halted for, at local halt ``epoch``.

    Sent only by the node runtime, in-process (no operator command sends it). Refused unless
    the kill switch is still in that very halt (``epoch``, TRIGGERED or MAINTENANCE): a halt
    triggered here since needs its own authorised recovery.
    """

    epoch: int
    cluster_epoch: int
    cleared_by: str
    reason: str


class RecoveryOutcome(Message):
    accepted: bool
    reason: str
    state: str
    factor: float


class EnterMaintenance(Message):
    reason: str
    source: str


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
