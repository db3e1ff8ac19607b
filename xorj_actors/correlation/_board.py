"""The exposure board: the latest correlation snapshot and every vault's stake in each cluster.

One object shared by the estimator (writes the snapshot), the vaults (publish what they hold,
reserve what they buy) and ``ctl risk`` (reads). A lock makes each call atomic, so vaults
planning at the same time cannot together overshoot ``global_max_usd``: a vault reserves its
buys' value after planning, and a reservation that no longer fits is refused whole.

A vault's reservation lasts until it publishes fresh holdings (its next balance read, once its
trades are final): the confirmed buys are then in what it holds, and the failed ones are gone.
Until then a reservation counts in full (conservative: never under-counted).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from fractions import Fraction

from xorj_actors.correlation._estimate import EMPTY_SNAPSHOT, Cluster, CorrelationSnapshot
from xorj_actors.correlation._limits import ClusterLimits
from xorj_actors.correlation.settings import CorrelationSettings

__all__ = ["ExposureBoard"]


def _exact(value: float) -> Fraction:
    return Fraction(repr(float(value)))


class ExposureBoard:
    """Thread-safe; every method is short and does no I/O."""

    def __init__(self, settings: CorrelationSettings | None = None) -> None:
        self.settings = CorrelationSettings() if settings is None else settings
        self._lock = threading.Lock()
        self._snapshot = EMPTY_SNAPSHOT
        self._held: dict[str, dict[Cluster, Fraction]] = {}
        self._reserved: dict[str, dict[Cluster, Fraction]] = {}
        #: Each vault's whole value at its last :meth:`hold` (its per-vault share's denominator).
        self._value: dict[str, Fraction] = {}

    @property
    def snapshot(self) -> CorrelationSnapshot:
        return self._snapshot

    def publish(self, snapshot: CorrelationSnapshot) -> None:
        """A new estimate (the estimator's). Stakes in clusters that no longer exist are dropped
        at each vault's next :meth:`hold`."""
        self._snapshot = snapshot

    def hold(self, vault_id: str, held_usd: Mapping[Cluster, Fraction], value_usd: Fraction) -> None:
        """What ``vault_id`` holds now per cluster, of ``value_usd`` in all (from a fresh balance
        read, nothing of its own in flight); ends its reservation."""
        with self._lock:
            self._held[vault_id] = {c: v for c, v in held_usd.items() if v > 0}
            self._value[vault_id] = value_usd
            self._reserved.pop(vault_id, None)

    def forget(self, vault_id: str) -> None:
        """The vault stopped (removed, or moved to another node): its stake is no longer here."""
        with self._lock:
            self._held.pop(vault_id, None)
            self._reserved.pop(vault_id, None)
            self._value.pop(vault_id, None)

    def limits(self) -> ClusterLimits | None:
        """The limits a plan applies now; None when the limits are off."""
        s = self.settings
        if not s.enabled:
            return None
        snap = self._snapshot
        room: dict[Cluster, Fraction] = {}
        if s.global_max_usd > 0:
            with self._lock:
                for c in snap.clusters:
                    room[c] = _exact(s.global_max_usd) - self._used(c)
        return ClusterLimits(clusters=snap.clusters, max_share=_exact(s.per_vault_max_share), global_room=room)

    def reserve(self, vault_id: str, buys_usd: Mapping[Cluster, Fraction]) -> Cluster | None:
        """Reserve the plan's buys per cluster, all or nothing; the cluster that no longer fits, or None."""
        s = self.settings
        wanted = {c: v for c, v in buys_usd.items() if v > 0}
        with self._lock:
            if s.enabled and s.global_max_usd > 0:
                cap = _exact(s.global_max_usd)
                for c in sorted(wanted):
                    if self._used(c) + wanted[c] > cap:
                        return c
            mine = self._reserved.setdefault(vault_id, {})
            for c, v in wanted.items():
                mine[c] = mine.get(c, Fraction(0)) + v
        return None

    def _used(self, cluster: Cluster) -> Fraction:
        return sum((by.get(cluster, Fraction(0)) for by in (*self._held.values(), *self._reserved.values())), Fraction(0))

    def exposure(self) -> dict[Cluster, tuple[Fraction, Fraction, dict[str, tuple[Fraction, Fraction]]]]:
        """Per current cluster: (held, reserved, {vault: (held, vault's value)}) in USD, for ``ctl risk``."""
        with self._lock:
            out = {}
            for c in self._snapshot.clusters:
                per_vault = {v: (by[c], self._value.get(v, Fraction(0))) for v, by in sorted(self._held.items()) if by.get(c)}
                held = sum((h for h, _ in per_vault.values()), Fraction(0))
                reserved = sum((by.get(c, Fraction(0)) for by in self._reserved.values()), Fraction(0))
                out[c] = (held, reserved, per_vault)
            return out
