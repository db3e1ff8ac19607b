"""The fence: when a held lease may still be signed with, on the local monotonic clock.

NATS 2.9 expires a lease ``lease_ttl_s`` after the server stored its last write, and nobody is
told. The server stores a write only after the request carrying it was sent, so a lease created or
renewed by a request sent at local monotonic ``t`` exists at least until ``t + ttl`` (as far as
the two clocks agree). The node signs only until ``t + ttl - margin``: the margin absorbs the
server's clock running ahead and the time between the check and the signature leaving the node.
The deadline is measured from the send, never from the answer: a slow answer shortens nothing
the server granted, but a deadline counted from the answer could outlive the lease.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from xorj_actors.cluster._errors import FenceRefusal, Fenced
from xorj_actors.cluster.settings import ClusterSettings

__all__ = ["LeaseClock", "LeaseGrant", "nats_lost"]


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    """A lease this node holds: the vault, the KV revision that holds it, and when it was sent.

    ``revision`` is what a signed attempt records (the fencing token in the audit log) and what
    the next renewal compares against.
    """

    vault_id: str
    revision: int
    #: Local monotonic time at which the request that created or renewed the lease was sent.
    sent_at: float
    #: The process (node incarnation) the lease was granted to; only it may renew or release it.
    incarnation: str = ""


@dataclass(frozen=True, slots=True)
class LeaseClock:
    """The lease timings (from :class:`ClusterSettings`) as rules over :class:`LeaseGrant`."""

    ttl_s: float
    margin_s: float
    renew_every_s: float

    def __post_init__(self) -> None:
        values = (self.ttl_s, self.margin_s, self.renew_every_s)
        if not all(math.isfinite(v) and v > 0 for v in values):
            raise ValueError("LeaseClock: ttl_s, margin_s and renew_every_s must be finite and > 0")
        if self.margin_s >= self.ttl_s or self.renew_every_s >= self.ttl_s - self.margin_s:
            raise ValueError("LeaseClock: need renew_every_s < ttl_s - margin_s")

    @classmethod
    def from_settings(cls, settings: ClusterSettings) -> LeaseClock:
        return cls(settings.lease_ttl_s, settings.fence_margin_s, settings.renew_every_s)

    def usable_until(self, grant: LeaseGrant) -> float:
        """The last monotonic instant (exclusive) at which ``grant`` may be signed with."""
        return grant.sent_at + self.ttl_s - self.margin_s

    def usable(self, grant: LeaseGrant, now: float) -> bool:
        """Whether ``grant`` may be signed with at monotonic ``now``."""
        return now < self.usable_until(grant)

    def renew_due(self, grant: LeaseGrant, now: float) -> bool:
        """Whether ``grant`` should be renewed at ``now``."""
        return now >= grant.sent_at + self.renew_every_s

    def check(self, vault_id: str, grant: LeaseGrant | None, now: float) -> int:
        """The revision to record with a signature for ``vault_id`` at ``now``; raises :class:`Fenced`
        when there is no grant for the vault or its deadline has passed."""
        if grant is None or grant.vault_id != vault_id:
            raise Fenced(vault_id, FenceRefusal.NOT_HELD)
        late = now - self.usable_until(grant)
        if late >= 0:
            raise Fenced(vault_id, FenceRefusal.EXPIRED, f"revision {grant.revision}, {late:.3f} s past its deadline")
        return grant.revision


def nats_lost(last_contact: float | None, now: float, limit_s: float) -> bool:
    """Whether a node whose last completed NATS operation was at monotonic ``last_contact`` (None:
    never) must halt itself at ``now``: after ``limit_s`` without contact it cannot know whether a
    cluster halt was called or whether its leases still stand."""
    if last_contact is None:
        return True
    return now - last_contact >= limit_s
