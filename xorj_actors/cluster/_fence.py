"""The fence as the signing path reads it: which leases this process holds, and until when.

The lease loop (:class:`xorj_actors.cluster.Ownership`, on its event loop) writes a grant here once
a lease is acquired or renewed, and revokes it before it passivates or releases the vault. The
executor asks :meth:`Fence.fence` from its own loop thread, synchronously, before it signs and
again before it sends: a lock and a dict lookup, never a NATS round trip.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from xorj_actors.cluster._errors import FenceRefusal
from xorj_actors.cluster._fencing import LeaseClock, LeaseGrant

__all__ = ["Fence", "LeaseToken"]


@dataclass(frozen=True, slots=True)
class LeaseToken:
    """The fence's yes: the vault's lease is held at ``revision`` (the fencing token a signed
    attempt records) and may be signed with until monotonic ``usable_until``. ``tenure`` numbers
    this process's holdings of the vault: it changes only when the lease is acquired anew (after
    a loss), never on a renewal, so a trade begun under one holding can tell a later one apart."""

    vault_id: str
    revision: int
    usable_until: float
    tenure: int = 0


class Fence:
    """The grants this process holds, read by any thread.

    Args:
        clock: the lease timings (the deadline of each grant).
        now: the local monotonic clock (tests pass their own).
    """

    def __init__(self, clock: LeaseClock, now: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._now = now
        self._lock = threading.Lock()
        self._grants: dict[str, LeaseGrant] = {}
        self._tenures: dict[str, int] = {}
        self._tenure = itertools.count(1)

    def fence(self, vault_id: str) -> LeaseToken | FenceRefusal:
        """Whether this process may sign for ``vault_id`` now: the lease is held and its local
        deadline (counted from the renewal's send) has not passed."""
        with self._lock:
            grant = self._grants.get(vault_id)
            tenure = self._tenures.get(vault_id, 0)
        if grant is None:
            return FenceRefusal.NOT_HELD
        until = self.clock.usable_until(grant)
        if self._now() >= until:
            return FenceRefusal.EXPIRED
        return LeaseToken(vault_id, grant.revision, until, tenure)

    def grant(self, grant: LeaseGrant) -> None:
        """A lease acquired or renewed: its new revision and deadline replace the old ones."""
        with self._lock:
            if grant.vault_id not in self._grants:  # acquired (again), not renewed: a new holding
                self._tenures[grant.vault_id] = next(self._tenure)
            self._grants[grant.vault_id] = grant

    def revoke(self, vault_id: str) -> LeaseGrant | None:
        """Stop signing for ``vault_id`` from now on; the grant it held, if any."""
        with self._lock:
            return self._grants.pop(vault_id, None)

    def held(self) -> tuple[str, ...]:
        """The vaults with a grant (usable or not yet noticed expired), sorted."""
        with self._lock:
            return tuple(sorted(self._grants))

    def usable(self) -> tuple[str, ...]:
        """The vaults this process may sign for now, sorted."""
        now = self._now()
        with self._lock:
            grants = list(self._grants.values())
        return tuple(sorted(g.vault_id for g in grants if self.clock.usable(g, now)))
