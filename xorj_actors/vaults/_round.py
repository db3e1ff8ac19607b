"""A vault's rebalancing round: read, plan, sell, read, buy, read, record (see :mod:`._vault`).

The steps are a mixin of the :class:`~xorj_actors.vaults.Vault` actor: they run on its thread
and keep their state on it (an idle vault, most of 10,000, must cost no object of its own).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from fractions import Fraction
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from loguru import logger

from supervisors import ControlMessage
from xorj_actors.audit import EventType, Severity, audit_event, record
from xorj_actors.chain import VaultSnapshot
from xorj_actors.correlation import Buy, ClusterLimits, ExposureBoard, usd_by_mint
from xorj_actors.execution import FINAL_STATUSES, TradeOutcome, TradeRequest
from xorj_actors.risk import report_valuation
from xorj_actors.strategy import RiskProfile, StrategyBoard, Target
from xorj_actors.vaults._messages import READING_PHASES, FlattenPhase, Round, VaultPhase
from xorj_actors.vaults._reconcile import PlannedTrade, Skipped, SkipReason, TradePlan, plan_trades
from xorj_actors.vaults._request import request_for
from xorj_actors.vaults._slippage import realised_slippage
from xorj_actors.vaults.settings import VaultSettings

if TYPE_CHECKING:
    from pykka import ActorRef

    from supervisors import Runtime
    from xorj_actors.kill_switch import HaltBoard
    from xorj_actors.vaults._flatten import Flatten
    from xorj_actors.vaults._vault import Stats

__all__ = ["CORRELATED", "EMPTY", "NO_OUTCOMES", "RoundSteps"]

#: The plan's skips that a correlated-exposure limit made (audited).
CORRELATED = frozenset({SkipReason.CORRELATED_EXPOSURE, SkipReason.CORRELATED_EXPOSURE_GLOBAL})

#: Shared, read-only: never written (a round replaces it with its own dict first).
EMPTY: Mapping[str, Any] = MappingProxyType({})
#: ``done`` of a vault between rounds, shared (a round starts its own list; an outcome is only
#: appended for a trade in ``pending``, which is EMPTY between rounds).
NO_OUTCOMES: tuple[()] = ()


class Overdue(ControlMessage):
    """Internal: outcomes of this phase are late; ask again."""

    phase_id: int


class ReadOverdue(ControlMessage):
    """Internal: the snapshot of this phase has not come."""

    phase_id: int


class RoundSteps:
    """The round's steps, on the vault's state below."""

    # The vault's (set in Vault.__init__).
    vault_id: str
    profile: RiskProfile
    settings: VaultSettings
    strategy: StrategyBoard
    decimals: Mapping[str, int]
    stable_mint: str
    on_round: Callable[[str], None] | None
    on_slippage: Callable[[float], None] | None
    board: HaltBoard
    runtime: Runtime
    actor_ref: ActorRef[Any]
    stats: Stats
    flatten: Flatten | None
    exposure: ExposureBoard | None
    # The round's record: what this round asked for and what came back. The executor owns the
    # trades themselves (in flight, settled); ``pending`` only says whose outcome the round awaits.
    phase: VaultPhase
    phase_id: int
    round_key: str
    target: Mapping[str, float]
    pending: dict[str, TradeRequest]
    done: list[TradeOutcome]
    before: Mapping[str, int]

    if TYPE_CHECKING:  # defined by the vault and FlattenSteps; stubs here would shadow them

        def _ask_snapshot(self, mints: set[str], request_id: str) -> str | None: ...
        def _hand_to_executor(self, requests: Iterable[TradeRequest]) -> None: ...
        def _flatten_pass(self) -> None: ...

    def _schedule_next(self) -> None:
        self.runtime.send_after(self.settings.round_interval_s, self.actor_ref, Round())

    def _skip(self, reason: str) -> None:
        self.stats.rounds_skipped += 1
        if reason != self.stats.last_skip:
            logger.info("{}: round skipped: {}", self.vault_id, reason)
        self.stats.last_skip = reason
        if self.on_round is not None:
            self.on_round("skipped")

    def _round(self) -> str:
        if self.phase is not VaultPhase.IDLE:
            return "round in flight"  # the running round schedules the next one when it ends
        target = self.strategy.target_for(self.profile)  # one read: the round copies what it checked
        reason = self._why_not(target)
        if reason is not None:
            self._publish_holdings()  # the engine-wide limit counts this vault's holdings all the same
            self._skip(reason)
            self._schedule_next()
            return reason
        trader = target.trader
        assert trader is not None
        self.stats.rounds += 1
        # Unique across restarts (the incarnation is this actor's start, in ms): ids from an
        # earlier life name other trades, and the executor refuses a reused id (reused_id).
        self.round_key = f"{target.round}-{self.stats.incarnation}-{self.stats.rounds}"
        self.target = {a.mint: a.weight for a in trader.allocation}
        self.pending, self.done = {}, []
        self._read(VaultPhase.READING)
        return "started"

    def _why_not(self, target: Target) -> str | None:
        # The kill switch owns the halt state: its board, never a copy (docs/RECONCILIATION.md).
        if self.board.status.halted:
            return "halted"
        if self.flatten is not None:
            return f"flatten {self.flatten.flatten_id} in flight"
        if not target.fresh:
            return "strategy feed stale: no new trades until a fresh one arrives"
        if target.trader is None:
            return f"no trader above trust score {self.profile.min_trust_score} for profile {self.profile.name}"
        return None

    def _publish_holdings(self) -> None:
        """Ask for the balances only to publish them (once, when the engine-wide limit is on): a
        vault that skips its rounds still holds what it holds. The answer: :meth:`_on_published`."""
        board = self.exposure
        if board is None or not board.wants_holdings or board.published(self.vault_id) or self.phase is not VaultPhase.IDLE:
            return
        self._ask_snapshot(set(), f"p:{board.tick()}")  # not asked: asked again at the next round

    def _on_published(self, snap: VaultSnapshot) -> None:
        if snap.error is not None or self.exposure is None:
            logger.warning("{}: holdings not published: {}", self.vault_id, snap.error)
            return
        self._hold(dict(snap.balances), dict(snap.prices), int(snap.request_id[2:]))

    def _read(self, phase: VaultPhase) -> None:
        self.phase = phase
        self.phase_id += 1
        if self.exposure is not None:
            self.stats.asked_at = self.exposure.tick()  # buys confirmed before now are in the answer
        failed = self._ask_snapshot(set(self.target), f"r:{self.phase_id}")
        if failed is not None:
            self._end_round(failed)
            return
        # A lost answer (the gateway restarted) must not leave the vault reading forever.
        self.runtime.send_after(self.settings.read_timeout_s, self.actor_ref, ReadOverdue(phase_id=self.phase_id))

    def _on_read_overdue(self, overdue: ReadOverdue) -> None:
        if overdue.phase_id == self.phase_id and self.phase in READING_PHASES:
            self._end_round(f"no snapshot within {self.settings.read_timeout_s:g} s")

    def _on_snapshot(self, snap: VaultSnapshot) -> None:
        if self.phase not in READING_PHASES:
            return  # a late answer for a round that ended
        if snap.error is not None:
            self._end_round(f"snapshot failed: {snap.error}")
            return
        holdings, prices = dict(snap.balances), dict(snap.prices)
        limits = self._limits(holdings, prices)  # every read: the round's trades are all final now
        if self.phase is VaultPhase.CLOSING:
            self._record_slippage(holdings)
            self._end_round(None)
            return
        buys_only = self.phase is VaultPhase.SELLING_DONE
        if not buys_only:
            self.before = holdings
        halt = self.board.status  # one read: the halt and the factor of one decision
        if halt.halted:
            self._end_round("halted")
            return
        plan = plan_trades(
            holdings, prices, self.decimals, self.stable_mint, self.target, self.settings,
            halt.factor, self.vault_id,
            self.round_key + ("b" if buys_only else "s"),
            limits,
        )
        self.stats.value_usd = plan.value_usd
        self._value(plan)
        if plan.refused:
            self._end_round("plan refused: " + "; ".join(s.detail or s.reason.value for s in plan.skipped)[:300])
            return
        sells = [t for t in plan.trades if t.output_mint == self.stable_mint]
        buys = [t for t in plan.trades if t.output_mint != self.stable_mint]
        if buys_only or not sells:
            self._audit_correlated(plan.round_key, plan.skipped)  # this plan's buys are the round's (else re-planned after the sells)
        if not buys_only and sells:
            self._hand_over(VaultPhase.SELLING, sells)
        elif buys:
            taken = self._reserve(buys, prices, limits)
            if taken is not None:
                self._end_round(taken)
                return
            self._hand_over(VaultPhase.BUYING, buys)
        elif self.done:
            self._read(VaultPhase.CLOSING)
        else:
            self._end_round(None)

    def _limits(self, holdings: Mapping[str, int], prices: Mapping[str, float]) -> ClusterLimits | None:
        """Publish what the vault holds per cluster (nothing of its own is in flight now), then
        read the limits its plan applies."""
        board = self.exposure
        if board is None or not board.settings.enabled:
            return None
        self._hold(holdings, prices, self.stats.asked_at)
        return board.limits()

    def _hold(self, holdings: Mapping[str, int], prices: Mapping[str, float], asked_at: int) -> None:
        assert self.exposure is not None
        held = usd_by_mint(((m, m, u) for m, u in holdings.items()), prices, self.decimals)
        self.exposure.hold(self.vault_id, held, sum(held.values(), Fraction(0)), asked_at)

    def _reserve(self, buys: list[PlannedTrade], prices: Mapping[str, float], limits: ClusterLimits | None) -> str | None:
        """Reserve the buys' value engine-wide against the clusters of now; why not (audited), or None."""
        if self.exposure is None or limits is None:
            return None
        wanted = [
            Buy(t.trade_id, t.output_mint, usd_by_mint([(t.output_mint, t.input_mint, t.amount_in)], prices, self.decimals).get(t.output_mint, Fraction(0)))
            for t in buys
        ]
        refused = self.exposure.reserve(self.vault_id, wanted)
        if refused is None:
            return None
        skipped = [
            Skipped(reason=SkipReason.CORRELATED_EXPOSURE_GLOBAL, mint=b.mint, value_usd=float(b.usd), detail=refused.detail)
            for b in wanted if b.mint in refused.cluster
        ]
        self._audit_correlated(self.round_key + "b", skipped, "reserve_refused")
        return "correlated exposure: " + refused.detail

    def _audit_correlated(self, round_key: str, skipped: Iterable[Skipped], phase: str = "plan_limited") -> None:
        """A buy cut or refused by a correlated-exposure limit is audited with its reason."""
        cut = [s for s in skipped if s.reason in CORRELATED]
        if not cut:
            return
        record(
            self.runtime,
            audit_event(
                EventType.TRADE_EXECUTION, self.vault_id,
                {"phase": phase, "round": round_key,
                 "skipped": [{"reason": s.reason.value, "mint": s.mint, "value_usd": round(s.value_usd, 2),
                              "detail": s.detail} for s in cut]},
                correlation_id=f"{self.vault_id}:{self.round_key}",
                severity=Severity.WARNING,
            ),
        )

    def _value(self, plan: TradePlan) -> None:
        if plan.refused:
            return
        report_valuation(self.runtime, self.vault_id, plan.value_usd)

    def _hand_over(self, phase: VaultPhase, trades: list[PlannedTrade]) -> None:
        self.phase = phase
        self.phase_id += 1
        for t in trades:
            self.pending[t.trade_id] = request_for(t, self.profile, self.actor_ref)
        self._send_pending()
        self.runtime.send_after(self.settings.outcome_overdue_s, self.actor_ref, Overdue(phase_id=self.phase_id))

    def _send_pending(self) -> None:
        self._hand_to_executor(self.pending.values())

    def _on_overdue(self, overdue: Overdue) -> None:
        if overdue.phase_id != self.phase_id or not self.pending:
            return
        logger.warning("{}: {} outcomes overdue; asking again", self.vault_id, len(self.pending))
        self._send_pending()  # same ids: answered from the executor's record, never executed twice
        self.runtime.send_after(self.settings.outcome_overdue_s, self.actor_ref, Overdue(phase_id=self.phase_id))

    def _on_outcome(self, outcome: TradeOutcome) -> None:
        if outcome.trade_id not in self.pending:
            return
        if outcome.status not in FINAL_STATUSES:
            logger.warning("{}: trade {} {}: still watched", self.vault_id, outcome.trade_id, outcome.status)
            return
        del self.pending[outcome.trade_id]
        self.done.append(outcome)
        if outcome.status == "confirmed":
            self.stats.confirmed += 1
        else:
            self.stats.other += 1
        if self.pending:
            return
        if self.phase is VaultPhase.SELLING:
            self._read(VaultPhase.SELLING_DONE)
        else:
            self._read(VaultPhase.CLOSING)

    def _record_slippage(self, after: Mapping[str, int]) -> None:
        """Realised slippage per output mint: what arrived on chain against what was quoted."""
        confirmed = [o for o in self.done if o.status == "confirmed"]
        quoted: dict[str, int] = {}
        for o in confirmed:
            quoted[o.output_mint] = quoted.get(o.output_mint, 0) + o.out_amount
        figures = {}
        for mint, expected in quoted.items():
            actual = after.get(mint, 0) - self.before.get(mint, 0)
            if mint == self.stable_mint:
                actual += sum(o.in_amount for o in confirmed if o.input_mint == mint)  # spent on buys meanwhile
            if expected > 0:
                bps = realised_slippage(expected, actual)
                figures[mint] = {"quoted_out": expected, "actual_out": actual, "slippage_bps": round(bps, 2)}
                if self.on_slippage is not None:
                    self.on_slippage(bps)
        if figures:
            record(
                self.runtime,
                audit_event(
                    EventType.TRADE_EXECUTION, self.vault_id,
                    {"phase": "realised_slippage", "round": self.round_key, "by_mint": figures},
                    correlation_id=f"{self.vault_id}:{self.round_key}",
                    severity=Severity.INFO,
                ),
            )

    def _end_round(self, skip: str | None) -> None:
        if skip is not None:
            self._skip(skip)
        elif self.on_round is not None:
            self.on_round("done")
        if self.pending:
            # Handed-over trades keep being settled by the executor; the round waits for them.
            return
        self.phase = VaultPhase.IDLE
        self.done = NO_OUTCOMES  # type: ignore[assignment]
        self.pending, self.before = EMPTY, EMPTY  # type: ignore[assignment]
        self._schedule_next()
        if self.flatten is not None and self.flatten.phase is FlattenPhase.WAITING:
            self._flatten_pass()
