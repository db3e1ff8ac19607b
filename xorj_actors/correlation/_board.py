"""The exposure board: the latest correlation snapshot and every vault's stake, per mint.

One object shared by the estimator (writes the snapshot), the vaults (publish what they hold,
reserve what they buy), the executor (reports each trade's final outcome) and ``ctl risk``
(reads). A lock makes each call atomic, so vaults planning at the same time cannot together
overshoot ``global_max_usd``: a vault reserves its buys' value after planning, and a
reservation that no longer fits the clusters of *now* is refused whole.

Stakes are kept per vault and per mint, never per cluster: clusters change at every estimate
and a stake filed under an old cluster would drop out of the new one's total. Each cluster's
total is summed from running per-mint totals at the time of asking (O(clusters x members)).

A reservation is one buy, by its trade id. It counts in full until the executor reports the
trade final: a failed buy is released at once; a confirmed one stays until its vault publishes
holdings read after the outcome (they include what it bought). Never under-counted.

The engine-wide room is 0 until every registered vault has published its holdings once (a
vault not yet heard from may hold anything): see :meth:`expect`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from xorj_actors.correlation._estimate import EMPTY_SNAPSHOT, Cluster, CorrelationSnapshot
from xorj_actors.correlation._limits import ClusterLimits
from xorj_actors.correlation.settings import CorrelationSettings

__all__ = ["Buy", "ExposureBoard", "NoRoom"]

_ZERO = Fraction(0)


def _exact(value: float) -> Fraction:
    return Fraction(repr(float(value)))


@dataclass(frozen=True, slots=True)
class Buy:
    """One planned buy to reserve: ``usd`` of ``mint``, trade ``trade_id``."""

    trade_id: str
    mint: str
    usd: Fraction


@dataclass(frozen=True, slots=True)
class NoRoom:
    """A reservation refused: ``cluster`` cannot take ``wanted_usd`` more (``room_usd`` left)."""

    cluster: Cluster
    wanted_usd: Fraction
    room_usd: Fraction
    #: Registered vaults that have not published their holdings yet (the room is 0 until none).
    unpublished: int = 0

    @property
    def detail(self) -> str:
        why = (
            f"{self.unpublished} vault(s) have not published their holdings yet"
            if self.unpublished
            else f"room {float(max(self.room_usd, _ZERO)):.2f} USD under global_max_usd across all vaults"
        )
        return f"buys of {float(self.wanted_usd):.2f} USD into cluster {'+'.join(self.cluster)} refused: {why}"


class _Reservation:
    __slots__ = ("final_at", "gone", "mint", "usd", "vault")

    def __init__(self, vault: str, mint: str, usd: Fraction) -> None:
        self.vault, self.mint, self.usd = vault, mint, usd
        #: The board's tick when the trade confirmed (None: not final yet).
        self.final_at: int | None = None
        #: Its vault stopped here for good: nobody will read the buy back.
        self.gone = False


class ExposureBoard:
    """Thread-safe; every method is short and does no I/O."""

    def __init__(self, settings: CorrelationSettings | None = None) -> None:
        self.settings = CorrelationSettings() if settings is None else settings
        self._lock = threading.Lock()
        self._snapshot = EMPTY_SNAPSHOT
        self._held: dict[str, dict[str, Fraction]] = {}  # vault -> mint -> USD
        self._held_total: dict[str, Fraction] = {}  # mint -> USD, all vaults
        self._reserved: dict[str, _Reservation] = {}  # trade id -> its buy
        self._trades: dict[str, set[str]] = {}  # vault -> its reserved trade ids
        self._reserved_total: dict[str, Fraction] = {}  # mint -> USD, all reservations
        #: Each vault's whole value at its last :meth:`hold` (its per-vault share's denominator).
        self._value: dict[str, Fraction] = {}
        #: Registered vaults that have not published yet.
        self._unpublished: set[str] = set()
        self._tick = 0

    @property
    def snapshot(self) -> CorrelationSnapshot:
        return self._snapshot

    @property
    def wants_holdings(self) -> bool:
        """Whether a vault must publish its holdings even when it skips its round (an engine-wide limit)."""
        return self.settings.enabled and self.settings.global_max_usd > 0

    def publish(self, snapshot: CorrelationSnapshot) -> None:
        """A new estimate (the estimator's); stakes are per mint, so every total follows it at once."""
        self._snapshot = snapshot

    def expect(self, vault_ids: Iterable[str]) -> None:
        """Register vaults this engine runs: until each has published, the engine-wide room is 0."""
        with self._lock:
            self._unpublished.update(v for v in vault_ids if v not in self._held)

    def published(self, vault_id: str) -> bool:
        return vault_id in self._held

    def unpublished(self) -> int:
        """Registered vaults not heard from yet (the engine-wide room is 0 while any)."""
        return len(self._unpublished)

    def tick(self) -> int:
        """Now, in the board's order of events: a vault takes one before it asks for balances."""
        with self._lock:
            self._tick += 1
            return self._tick

    def hold(self, vault_id: str, held_usd: Mapping[str, Fraction], value_usd: Fraction, asked_at: int) -> None:
        """What ``vault_id`` holds now per mint in USD, of ``value_usd`` in all, from balances asked
        for at :meth:`tick` ``asked_at``. Its buys confirmed before then are in them: released."""
        with self._lock:
            self._add(self._held_total, self._held.get(vault_id, {}), -1)
            mine = {m: v for m, v in held_usd.items() if v > 0}
            self._held[vault_id] = mine
            self._add(self._held_total, mine, +1)
            self._value[vault_id] = value_usd
            self._unpublished.discard(vault_id)
            for trade_id in [t for t in self._trades.get(vault_id, ()) if (self._reserved[t].final_at or asked_at) < asked_at]:
                self._release(trade_id)

    def forget(self, vault_id: str) -> None:
        """The vault stopped for good here (removed, or moved to another node): its stake goes.
        Its buys still in flight count until the executor reports them final."""
        with self._lock:
            self._add(self._held_total, self._held.pop(vault_id, {}), -1)
            self._value.pop(vault_id, None)
            self._unpublished.discard(vault_id)
            for trade_id in list(self._trades.get(vault_id, ())):
                if self._reserved[trade_id].final_at is None:
                    self._reserved[trade_id].gone = True
                else:
                    self._release(trade_id)

    def settle(self, trade_id: str, confirmed: bool) -> None:
        """The executor's word that a trade is final. A failed buy is released; a confirmed one
        at its vault's next :meth:`hold` of balances asked after now (or at once if it is gone)."""
        with self._lock:
            r = self._reserved.get(trade_id)
            if r is None:
                return
            if not confirmed or r.gone:
                self._release(trade_id)
                return
            self._tick += 1
            r.final_at = self._tick

    def after(self, hook: Callable[[Any, float], None]) -> Callable[[Any, float], None]:
        """An executor ``on_outcome`` hook: ``hook``, then :meth:`settle` for each final outcome
        (the executor is who knows: a vault restarted meanwhile is no longer told)."""
        from xorj_actors.execution import FINAL_STATUSES, TradeStatus  # loaded on use: execution imports chain, chain this

        def on_outcome(outcome: Any, seconds: float) -> None:
            hook(outcome, seconds)
            if outcome.status in FINAL_STATUSES:
                self.settle(outcome.trade_id, outcome.status == TradeStatus.CONFIRMED)

        return on_outcome

    def limits(self) -> ClusterLimits | None:
        """The limits a plan applies now; None when the limits are off."""
        s = self.settings
        if not s.enabled:
            return None
        snap = self._snapshot
        room: dict[Cluster, Fraction] = {}
        note = ""
        if s.global_max_usd > 0:
            cap = _exact(s.global_max_usd)
            with self._lock:
                waiting = len(self._unpublished)
                for c in snap.clusters:
                    room[c] = _ZERO if waiting else cap - self._used(c)
            if waiting:
                note = f"; {waiting} vault(s) have not published their holdings yet"
        return ClusterLimits(clusters=snap.clusters, max_share=_exact(s.per_vault_max_share), global_room=room, global_note=note)

    def reserve(self, vault_id: str, buys: Iterable[Buy]) -> NoRoom | None:
        """Reserve the buys, all or nothing, checked against the clusters of now; why not, or None."""
        s = self.settings
        wanted = [b for b in buys if b.usd > 0]
        with self._lock:
            if s.enabled and s.global_max_usd > 0:
                cap = _exact(s.global_max_usd)
                by_mint: dict[str, Fraction] = {}
                for b in wanted:
                    by_mint[b.mint] = by_mint.get(b.mint, _ZERO) + b.usd
                for c in self._snapshot.clusters:
                    more = sum((by_mint.get(m, _ZERO) for m in c), _ZERO)
                    if more <= 0:
                        continue
                    room = _ZERO if self._unpublished else cap - self._used(c)
                    if more > room:
                        return NoRoom(c, more, room, len(self._unpublished))
            for b in wanted:
                if b.trade_id in self._reserved:
                    continue  # the same buy asked again: counted once
                self._reserved[b.trade_id] = _Reservation(vault_id, b.mint, b.usd)
                self._trades.setdefault(vault_id, set()).add(b.trade_id)
                self._reserved_total[b.mint] = self._reserved_total.get(b.mint, _ZERO) + b.usd
        return None

    def _release(self, trade_id: str) -> None:
        r = self._reserved.pop(trade_id)
        mine = self._trades[r.vault]
        mine.discard(trade_id)
        if not mine:
            del self._trades[r.vault]
        self._add(self._reserved_total, {r.mint: r.usd}, -1)

    @staticmethod
    def _add(total: dict[str, Fraction], amounts: Mapping[str, Fraction], sign: int) -> None:
        for m, v in amounts.items():
            left = total.get(m, _ZERO) + sign * v
            if left:
                total[m] = left
            else:
                total.pop(m, None)

    def _used(self, cluster: Cluster) -> Fraction:
        held, reserved = self._held_total, self._reserved_total
        return sum((held.get(m, _ZERO) + reserved.get(m, _ZERO) for m in cluster), _ZERO)

    def totals(self) -> dict[Cluster, tuple[Fraction, Fraction]]:
        """Per current cluster: (held, reserved) USD across vaults, from the running totals (the metrics' scrape)."""
        with self._lock:
            return self._totals()

    def _totals(self) -> dict[Cluster, tuple[Fraction, Fraction]]:
        held, reserved = self._held_total, self._reserved_total
        return {
            c: (sum((held.get(m, _ZERO) for m in c), _ZERO), sum((reserved.get(m, _ZERO) for m in c), _ZERO))
            for c in self._snapshot.clusters
        }

    def exposure(self) -> dict[Cluster, tuple[Fraction, Fraction, dict[str, tuple[Fraction, Fraction]]]]:
        """Per current cluster: (held, reserved, {vault: (held, vault's value)}) in USD, for ``ctl risk``.
        The lock is held only to copy the references (every vault's holdings are replaced, never changed)."""
        with self._lock:
            totals, held_by, value = self._totals(), dict(self._held), dict(self._value)
        out = {}
        for c, (held, reserved) in totals.items():
            per_vault = {}
            for v, by in sorted(held_by.items()):
                mine = sum((by.get(m, _ZERO) for m in c), _ZERO)
                if mine:
                    per_vault[v] = (mine, value.get(v, _ZERO))
            out[c] = (held, reserved, per_vault)
        return out
