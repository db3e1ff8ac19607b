"""The cluster's errors: each says what the engine should do, not which NATS call failed."""

from __future__ import annotations

import enum

__all__ = ["ClusterDataError", "ClusterError", "ClusterUnavailable", "FenceRefusal", "Fenced", "HaltMoved", "LeaseConflict"]


class ClusterError(Exception):
    """Base of every cluster error."""


class ClusterUnavailable(ClusterError):
    """NATS did not answer (down, unreachable, timed out, JetStream unavailable).

    Nothing is known about the operation's outcome: a write may or may not have landed. The
    engine counts the time since its last successful operation against ``nats_lost_halt_s``.
    """


class ClusterDataError(ClusterError):
    """A record in a bucket that is not what this version writes (corrupt, or another program)."""


class LeaseConflict(ClusterError):
    """A lease operation refused by compare-and-swap: another holder, a stale revision, or gone.

    ``holder`` is who holds it now (None: nobody, the lease expired or was released).
    """

    def __init__(self, vault_id: str, message: str, holder: object | None = None) -> None:
        super().__init__(f"{vault_id}: {message}")
        self.vault_id = vault_id
        self.holder = holder


class HaltMoved(ClusterError):
    """A halt operation on an epoch that is no longer the current one."""


class FenceRefusal(enum.StrEnum):
    """Why a signature was refused by the fence."""

    #: This node holds no lease on the vault.
    NOT_HELD = "not_held"
    #: The lease's local deadline has passed: it may already belong to another node.
    EXPIRED = "expired"


class Fenced(ClusterError):
    """A signature refused: this node may no longer act for the vault."""

    def __init__(self, vault_id: str, refusal: FenceRefusal, detail: str = "") -> None:
        super().__init__(f"{vault_id}: fenced ({refusal.value}){': ' + detail if detail else ''}")
        self.vault_id = vault_id
        self.refusal = refusal
