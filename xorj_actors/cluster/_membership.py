"""Liveness from heartbeats: which nodes placement may give vaults to.

Liveness is advice, never safety: two nodes that disagree about who is alive place some vaults
differently for a moment, but a vault is only ever acted on under its lease. So wall clocks (the
heartbeat is the writer's wall time, judged by the reader's) need only roughly agree (NTP).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from xorj_actors.cluster._records import MemberRecord

__all__ = ["Liveness", "live_nodes", "liveness"]


class Liveness(enum.StrEnum):
    ALIVE = "alive"
    #: No heartbeat for ``dead_after_s``: its vaults are placed elsewhere once its leases expire.
    DEAD = "dead"


def liveness(record: MemberRecord, now: float, dead_after_s: float) -> Liveness:
    """Whether the node that wrote ``record`` is alive at wall time ``now``.

    A heartbeat from the future (a writer's clock ahead of ours) counts as fresh.
    """
    return Liveness.ALIVE if now - record.heartbeat_at < dead_after_s else Liveness.DEAD


def live_nodes(records: Iterable[MemberRecord], now: float, dead_after_s: float) -> tuple[str, ...]:
    """The ids of the live nodes, sorted."""
    return tuple(sorted({r.node_id for r in records if liveness(r, now, dead_after_s) is Liveness.ALIVE}))
