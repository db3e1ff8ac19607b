"""Vault ownership, the pure rules: which held leases to renew or give up, which vaults to take.

Times and sets in, decisions out: the lease loop (:mod:`._ownership`) does the NATS I/O and
calls the engine's hooks. Placement says where a vault *should* be, the lease where it *is*:
a vault placed here is taken only once its lease is free (or already this very process's), and a
vault placed elsewhere is given up (passivated, then released) for the other node to take.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from xorj_actors.cluster._fencing import LeaseClock, LeaseGrant
from xorj_actors.cluster._leases import NodeIdentity
from xorj_actors.cluster._placement import place
from xorj_actors.cluster._records import LeaseInfo

__all__ = ["LeaseLoss", "Placement", "Renewals", "placement", "renewals"]


class LeaseLoss(enum.StrEnum):
    """Why a vault is passivated."""

    #: Its local deadline passed without a renewal (NATS slow or lost, or the node was paused).
    EXPIRED = "expired"
    #: A renewal was refused: the lease expired, was released or is another node's now.
    LOST = "lost"
    #: Placement moved it to another live node: given up on purpose, then released.
    PLACED_ELSEWHERE = "placed_elsewhere"
    #: This node is stopping: every lease is given up.
    STOPPING = "stopping"
    #: The engine could not start the vault's actor: the lease is handed back.
    NOT_ACTIVATED = "not_activated"
    #: The vault left the cluster's vault set (``ctl vault-remove``): given up, then released, and
    #: no node takes it. No next owner would settle its trades, so it was drained first
    #: (:class:`RemovedVaults`): nothing is left to hand over.
    REMOVED = "removed"


@dataclass(frozen=True, slots=True)
class Renewals:
    """The held leases' step: the ones past their deadline, and the ones due for renewal."""

    expired: tuple[str, ...]
    due: tuple[str, ...]


def renewals(held: Mapping[str, LeaseGrant], clock: LeaseClock, now: float, busy: Collection[str] = ()) -> Renewals:
    """Sort the held grants at monotonic ``now``; vaults in ``busy`` (being released) are left alone.

    A grant past its deadline is lost even if the lease still stands in the bucket: the fence
    already refuses it, and the vault is passivated (placement takes it again, by adoption, if
    it is still this process's).
    """
    expired, due = [], []
    for vault, grant in held.items():
        if vault in busy:
            continue
        if not clock.usable(grant, now):
            expired.append(vault)
        elif clock.renew_due(grant, now):
            due.append(vault)
    return Renewals(tuple(sorted(expired)), tuple(sorted(due)))


@dataclass(frozen=True, slots=True)
class Placement:
    """What placement asks of this node now.

    ``acquire``: placed here, not held, its lease free or this process's; ``waiting``: placed
    here but leased by another (a dead node's lease before its TTL, or a node releasing it);
    ``release``: held here but placed on another live node.
    """

    acquire: tuple[str, ...]
    waiting: tuple[str, ...]
    release: tuple[str, ...]


def placed_here(vaults: Iterable[str], live: Iterable[str], me: NodeIdentity) -> tuple[str, ...]:
    """The vaults rendezvous hashing gives this node, over ``live`` and this node itself (a node
    always counts itself alive: its own heartbeat may not be read back yet)."""
    nodes = sorted({*live, me.node_id})
    return tuple(sorted(v for v in vaults if place(v, nodes) == me.node_id))


def placement(
    vaults: Iterable[str],
    live: Iterable[str],
    me: NodeIdentity,
    held: Collection[str],
    leases: Mapping[str, LeaseInfo | None],
    busy: Collection[str] = (),
) -> Placement:
    """What to take and what to give up.

    Args:
        vaults: every configured vault.
        live: the live nodes (membership).
        me: this process.
        held: the vaults this process holds a lease on.
        leases: the bucket's lease of each vault placed here and not held (absent or None: free).
        busy: vaults being acquired, renewed or released right now: left for the next step.
    """
    mine = set(placed_here(vaults, live, me))
    acquire, waiting = [], []
    for vault in sorted(mine - set(held) - set(busy)):
        info = leases.get(vault)
        if info is None or me.holds(info.holder):
            acquire.append(vault)
        else:
            waiting.append(vault)
    release = tuple(sorted(v for v in held if v not in mine and v not in busy))
    return Placement(tuple(acquire), tuple(waiting), release)
