"""The Vault actor: one user vault, its rounds, and nothing in flight twice.

A round (FR-2, FR-3):

1. skip it if the engine is halted, the strategy is stale, the profile selects no trader, or
   the previous round is still running (a vault never has two rounds in flight);
2. read the vault's balances and prices (the RPC gateway), value the vault (the drawdown
   monitor hears it), plan the trades that close the gap to the trader's allocation;
3. hand the sells to the Executor and wait for every outcome;
4. read the balances again (the sells' proceeds are now real), plan again, hand over the buys
   only, wait for every outcome;
5. read the balances a last time and record the realised slippage of what was bought and sold
   against the quotes.

Outcomes that do not arrive (an executor restarted meanwhile) are asked for again with the same
trade ids: the executor answers from its record, it never executes an id twice.

A flatten (the kill switch's REDUCING mode, docs/HALT_PROTOCOL.md) runs beside the halted
rounds: on :class:`FlattenVault` the vault waits for its round to be idle, reads its balances,
plans a sell of every volatile holding into the stablecoin (dust below ``min_trade_usd`` left),
hands the sells over as ``reduces_exposure`` trades, reads again once every outcome is final,
and repeats (at most :data:`FLATTEN_PASSES` passes) while something is left; then it tells the
kill switch :class:`FlattenDone`. No round starts while a flatten runs.
"""

from __future__ import annotations

import time
import zlib
from types import MappingProxyType
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from loguru import logger
from pykka import ActorDeadError

from supervisors import ControlMessage, MailboxFull, Message
from xorj_actors.audit import EventType, Severity, audit_event, record
from xorj_actors.chain import GATEWAY_NAME, GetVaultSnapshot, VaultSnapshot
from xorj_actors.execution import EXECUTOR_NAME, FINAL_STATUSES, TradeOutcome, TradeRequest
from xorj_actors.kill_switch import VAULT_ROLE, FlattenDone, FlattenVault, HaltBoard, Participant
from xorj_actors.messages import Halt, HaltMode, Resume
from xorj_actors.risk import report_valuation
from xorj_actors.strategy import DEFAULT_PROFILES, RiskProfile, StrategyBoard
from xorj_actors.vaults._reconcile import PlannedTrade, SkipReason, TradePlan, plan_trades
from xorj_actors.vaults._slippage import realised_slippage
from xorj_actors.vaults.settings import VaultSettings

__all__ = ["FLATTEN_PASSES", "GetVaultStatus", "Round", "RoundResult", "Vault", "VaultStatus"]

#: Read-plan-sell passes of one flatten: a second or third one sells what the first left
#: (pieces beyond ``max_split``, a trade rejected once); one more read reports what remains.
FLATTEN_PASSES = 3

class Round(ControlMessage):
    """Run one rebalancing round now (timers send it; so may an operator or a test).

    A control message: a vault busy with outcomes still hears its timer. The answer to an ask
    is a :class:`RoundResult` saying whether the round started.
    """

    round: int = 0


class RoundResult(Message):
    vault_id: str
    round: int
    ran: bool
    reason: str  # "started", or why not ("halted", "strategy feed stale ...", "round in flight")


class _Overdue(ControlMessage):
    """Internal: outcomes of this phase are late; ask again."""

    phase_id: int


class _FlattenOverdue(ControlMessage):
    """Internal: the flatten's snapshot or outcomes of this step are late."""

    flatten_id: str
    step: int


class _Flatten:
    """One flatten under way in this vault."""

    __slots__ = ("epoch", "failed", "flatten_id", "pending", "passes", "phase", "sold", "step")

    def __init__(self, request: FlattenVault) -> None:
        self.flatten_id = request.flatten_id
        self.epoch = request.epoch
        self.phase = "waiting"  # waiting (for the round to end), reading, selling
        self.step = 0  # bumped per snapshot request and hand-over: tells overdue timers apart
        self.passes = 0
        self.pending: dict[str, TradeRequest] = {}
        self.sold = 0
        self.failed = 0


class _ReadOverdue(ControlMessage):
    """Internal: the snapshot of this phase has not come."""

    phase_id: int


class GetVaultStatus(Message):
    pass


class VaultStatus(Message):
    vault_id: str
    profile: str
    phase: str  # idle, reading, selling, buying, closing
    rounds: int
    rounds_skipped: int
    trades_confirmed: int
    trades_other: int
    last_skip: str
    value_usd: float
    pending: tuple[str, ...]
    #: The flatten under way (its id), or "".
    flatten: str = ""


class Vault(Participant):
    """One vault (see the module docstring).

    Args:
        board: the halt board.
        vault_id: ``vault-0007``.
        profile: its owner's risk profile (slippage limit, trust-score threshold).
        settings: ``[vaults]``.
        strategy: the StrategyFeed's board.
        accounts: mint -> the vault's token account for it.
        decimals: mint -> decimals.
        stable_mint: the stablecoin.
        on_round: ``(result)`` per round for metrics: ``done``, ``skipped``.
    """

    role: ClassVar[str] = VAULT_ROLE  # the kill switch flattens vaults by this role

    def __init__(
        self,
        board: HaltBoard,
        vault_id: str,
        *,
        profile: RiskProfile = DEFAULT_PROFILES[0],
        settings: VaultSettings = VaultSettings(),
        strategy: StrategyBoard | None = None,
        accounts: Mapping[str, str] | None = None,
        decimals: Mapping[str, int] | None = None,
        stable_mint: str = "",
        on_round: Callable[[str], None] | None = None,
        on_slippage: Callable[[float], None] | None = None,
    ) -> None:
        super().__init__(board)
        self.vault_id = vault_id
        self.profile = profile
        self.settings = settings
        # Without a strategy board (a bare vault in a test or benchmark) it holds: never fresh.
        self.strategy = strategy if strategy is not None else _NO_STRATEGY
        self.accounts = tuple(sorted((accounts or {}).items()))
        self.decimals = decimals if decimals is not None else {}  # shared by every vault, read-only
        self.stable_mint = stable_mint
        self.on_round, self.on_slippage = on_round, on_slippage
        self.phase = "idle"
        self.phase_id = 0
        # Counters live in one slotted object: past 30 attributes an instance loses CPython's
        # shared-key dict, and 10,000 vaults would each pay a 1.6 KB dict.
        self.stats = _Stats()
        self.round_key = ""
        # A round's state is made when it starts: an idle vault (most of 10,000) shares empties.
        self.target: Mapping[str, float] = _EMPTY
        self.pending: dict[str, TradeRequest] = _EMPTY  # type: ignore[assignment]
        self.done: list[TradeOutcome] = []
        self.before: Mapping[str, int] = _EMPTY
        #: trade id -> (input mint, output mint) of this round's trades.
        self.sent: dict[str, tuple[str, str]] = _EMPTY  # type: ignore[assignment]
        #: The flatten under way, and one asked for meanwhile (run after it).
        self.flatten: _Flatten | None = None
        self.flatten_next: FlattenVault | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def on_start(self) -> None:
        super().on_start()
        # Spread the vaults' rounds over the interval instead of all at once.
        interval = self.settings.round_interval_s
        first = (zlib.crc32(self.vault_id.encode()) % 1000) / 1000 * interval
        self.runtime.send_after(min(first, interval), self.actor_ref, Round())

    def on_halt(self, halt: Halt) -> int:
        if halt.mode is HaltMode.EMERGENCY and self.phase in ("reading", "closing"):
            self._end_round("halted")  # nothing handed over yet: drop the round
        f = self.flatten
        if f is not None and halt.epoch > f.epoch and not f.pending:
            self._flatten_end(f"a new halt (epoch {halt.epoch}) ended the reducing mode")
        return self.in_flight()  # handed to the executor: it settles them through the halt

    def on_resume(self, resume: Resume) -> None:
        logger.info("{}: resumed at {:.2f} of position limits", self.vault_id, resume.factor)

    def in_flight(self) -> int:
        return len(self.pending) + (len(self.flatten.pending) if self.flatten is not None else 0)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Round):
            reason = self._round()
            return RoundResult(vault_id=self.vault_id, round=message.round, ran=reason == "started", reason=reason)
        f = self.flatten
        if isinstance(message, VaultSnapshot):
            # Answers are matched to the request they answer; a late one is ignored.
            if f is not None and f.phase == "reading" and message.request_id == f"f:{f.flatten_id}:{f.step}":
                self._flatten_snapshot(f, message)
            elif message.request_id == f"r:{self.phase_id}":
                self._on_snapshot(message)
        elif isinstance(message, TradeOutcome):
            if f is not None and message.trade_id in f.pending:
                self._flatten_outcome(f, message)
            else:
                self._on_outcome(message)
        elif isinstance(message, _Overdue):
            self._on_overdue(message)
        elif isinstance(message, _ReadOverdue):
            if message.phase_id == self.phase_id and self.phase in ("reading", "selling_done", "closing"):
                self._end_round(f"no snapshot within {self.settings.read_timeout_s:g} s")
        elif isinstance(message, FlattenVault):
            self._on_flatten(message)
        elif isinstance(message, _FlattenOverdue):
            self._on_flatten_overdue(message)
        elif isinstance(message, GetVaultStatus):
            return self.status()
        else:
            return super().on_receive(message)
        return None

    def status(self) -> VaultStatus:
        return VaultStatus(
            vault_id=self.vault_id,
            profile=self.profile.name,
            phase=self.phase,
            rounds=self.stats.rounds,
            rounds_skipped=self.stats.rounds_skipped,
            trades_confirmed=self.stats.confirmed,
            trades_other=self.stats.other,
            last_skip=self.stats.last_skip,
            value_usd=self.stats.value_usd,
            pending=tuple(sorted(self.pending)),
            flatten=self.flatten.flatten_id if self.flatten is not None else "",
        )

    # -- a round -------------------------------------------------------------------------------

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
        if self.phase != "idle":
            return "round in flight"  # the running round schedules the next one when it ends
        reason = self._why_not()
        if reason is not None:
            self._skip(reason)
            self._schedule_next()
            return reason
        snapshot = self.strategy.latest
        assert snapshot is not None
        trader = snapshot.trader_for(self.profile)
        assert trader is not None
        self.stats.rounds += 1
        # Unique across restarts (the incarnation is this actor's start, in ms): ids from an
        # earlier life name other trades, and the executor refuses a reused id (reused_id).
        self.round_key = f"{snapshot.round}-{self.stats.incarnation}-{self.stats.rounds}"
        self.target = {a.mint: a.weight for a in trader.allocation}
        self.pending, self.sent, self.done = {}, {}, []
        self._read("reading")
        return "started"

    def _why_not(self) -> str | None:
        if self.halted or self.board.status.halted:
            return "halted"
        if self.flatten is not None:
            return f"flatten {self.flatten.flatten_id} in flight"
        if not self.strategy.fresh():
            return "strategy feed stale: no new trades until a fresh one arrives"
        snapshot = self.strategy.latest
        if snapshot is None or snapshot.trader_for(self.profile) is None:
            return f"no trader above trust score {self.profile.min_trust_score} for profile {self.profile.name}"
        return None

    def _read(self, phase: str) -> None:
        self.phase = phase
        self.phase_id += 1
        failed = self._ask_snapshot(set(self.target), f"r:{self.phase_id}")
        if failed is not None:
            self._end_round(failed)
            return
        # A lost answer (the gateway restarted) must not leave the vault reading forever.
        self.runtime.send_after(self.settings.read_timeout_s, self.actor_ref, _ReadOverdue(phase_id=self.phase_id))

    def _ask_snapshot(self, mints: set[str], request_id: str) -> str | None:
        """Ask the RPC gateway for this vault's balances and the prices of its mints and
        ``mints``; the answer comes as a :class:`VaultSnapshot`. Why it could not be asked, or None."""
        gateway = self.runtime.whereis(GATEWAY_NAME)
        priced = tuple(sorted({m for m, _ in self.accounts} | mints))
        try:
            if gateway is None:
                raise ActorDeadError("rpc gateway not running")
            gateway.tell(
                GetVaultSnapshot(
                    vault_id=self.vault_id, accounts=self.accounts, mints=priced, reply_to=self.actor_ref,
                    request_id=request_id,
                )
            )
        except (ActorDeadError, MailboxFull) as exc:
            return f"cannot read the chain: {exc!r}"
        return None

    def _on_snapshot(self, snap: VaultSnapshot) -> None:
        if self.phase not in ("reading", "selling_done", "closing"):
            return  # a late answer for a round that ended
        if snap.error is not None:
            self._end_round(f"snapshot failed: {snap.error}")
            return
        holdings, prices = dict(snap.balances), dict(snap.prices)
        if self.phase == "closing":
            self._record_slippage(holdings)
            self._end_round(None)
            return
        buys_only = self.phase == "selling_done"
        if not buys_only:
            self.before = holdings
        if self.halted or self.board.status.halted:
            self._end_round("halted")
            return
        plan = plan_trades(
            holdings, prices, self.decimals, self.stable_mint, self.target, self.settings,
            self.position_factor or self.board.status.factor, self.vault_id,
            self.round_key + ("b" if buys_only else "s"),
        )
        self.stats.value_usd = plan.value_usd
        self._value(plan)
        if plan.refused:
            self._end_round("plan refused: " + "; ".join(s.detail or s.reason.value for s in plan.skipped)[:300])
            return
        sells = [t for t in plan.trades if t.output_mint == self.stable_mint]
        buys = [t for t in plan.trades if t.output_mint != self.stable_mint]
        if not buys_only and sells:
            self._hand_over("selling", sells)
        elif buys:
            self._hand_over("buying", buys)
        elif self.done:
            self._read("closing")
        else:
            self._end_round(None)

    def _value(self, plan: TradePlan) -> None:
        if plan.refused:
            return
        report_valuation(self.runtime, self.vault_id, plan.value_usd)

    def _hand_over(self, phase: str, trades: list[PlannedTrade]) -> None:
        self.phase = phase
        self.phase_id += 1
        for t in trades:
            request = TradeRequest(
                trade_id=t.trade_id,
                vault_id=self.vault_id,
                round_key=t.round_key,
                index=t.index,
                input_mint=t.input_mint,
                output_mint=t.output_mint,
                amount_in=t.amount_in,
                slippage_bps=self.profile.slippage_bps,
                value_usd=t.value_usd,
                reduces_exposure=t.reduces_exposure,
                reply_to=self.actor_ref,
            )
            self.pending[t.trade_id] = request
            self.sent[t.trade_id] = (t.input_mint, t.output_mint)
        self._send_pending()
        self.runtime.send_after(self.settings.outcome_overdue_s, self.actor_ref, _Overdue(phase_id=self.phase_id))

    def _send_pending(self) -> None:
        self._hand_to_executor(self.pending.values())

    def _hand_to_executor(self, requests: Iterable[TradeRequest]) -> None:
        """Tell the executor each request; one not handed over is asked again when overdue
        (the same id: never executed twice)."""
        executor = self.runtime.whereis(EXECUTOR_NAME)
        for request in list(requests):
            try:
                if executor is None:
                    raise ActorDeadError("executor not running")
                executor.tell(request)
            except (ActorDeadError, MailboxFull) as exc:
                logger.warning("{}: trade {} not handed over yet: {!r}", self.vault_id, request.trade_id, exc)

    def _on_overdue(self, overdue: _Overdue) -> None:
        if overdue.phase_id != self.phase_id or not self.pending:
            return
        logger.warning("{}: {} outcomes overdue; asking again", self.vault_id, len(self.pending))
        self._send_pending()  # same ids: answered from the executor's record, never executed twice
        self.runtime.send_after(self.settings.outcome_overdue_s, self.actor_ref, _Overdue(phase_id=self.phase_id))

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
        if self.phase == "selling":
            self.phase = "selling_done"
            self._read("selling_done")
        else:
            self._read("closing")

    def _record_slippage(self, after: Mapping[str, int]) -> None:
        """Realised slippage per output mint: what arrived on chain against what was quoted."""
        quoted: dict[str, int] = {}
        for o in self.done:
            if o.status == "confirmed":
                request_out = self._output_of(o)
                if request_out is not None:
                    quoted[request_out] = quoted.get(request_out, 0) + o.out_amount
        figures = {}
        for mint, expected in quoted.items():
            actual = after.get(mint, 0) - self.before.get(mint, 0)
            if mint == self.stable_mint:
                spent = sum(o.in_amount for o in self.done if o.status == "confirmed" and self._input_of(o) == mint)
                actual += spent  # stable spent on buys in the same round
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

    def _output_of(self, outcome: TradeOutcome) -> str | None:
        return self.sent.get(outcome.trade_id, (None, None))[1]

    def _input_of(self, outcome: TradeOutcome) -> str | None:
        return self.sent.get(outcome.trade_id, (None, None))[0]

    def _end_round(self, skip: str | None) -> None:
        if skip is not None:
            self._skip(skip)
        elif self.on_round is not None:
            self.on_round("done")
        if self.pending:
            # Handed-over trades keep being settled by the executor; the round waits for them.
            return
        self.phase = "idle"
        self.done = []
        self.pending, self.sent, self.before = _EMPTY, _EMPTY, _EMPTY  # type: ignore[assignment]
        self._schedule_next()
        if self.flatten is not None and self.flatten.phase == "waiting":
            self._flatten_pass()

    # -- flatten (the kill switch's reducing mode) ----------------------------------------------

    def _reducing(self, epoch: int) -> bool:
        status = self.board.status
        return status.reducing and status.halted and status.epoch == epoch

    def _on_flatten(self, request: FlattenVault) -> None:
        current = self.flatten
        if current is not None:
            queued = self.flatten_next
            if request.flatten_id != current.flatten_id and (queued is None or request.flatten_id != queued.flatten_id):
                superseded, self.flatten_next = self.flatten_next, request  # after this one
                if superseded is not None:
                    self._flatten_report(superseded.flatten_id, 0, 0, f"superseded by {request.flatten_id}")
            return
        if not request.flatten_id or ":" in request.flatten_id:  # it becomes part of trade ids
            self._flatten_report(request.flatten_id, 0, 0, "refused: malformed flatten id")
            return
        self.flatten = _Flatten(request)
        logger.warning("{}: flatten {} asked", self.vault_id, request.flatten_id)
        if self.phase == "idle":
            self._flatten_pass()
        # else: the round ends soon (halted: it starts nothing new), then _end_round starts it

    def _flatten_pass(self) -> None:
        f = self.flatten
        assert f is not None
        if not self._reducing(f.epoch):
            self._flatten_end(f"the kill switch is {self.board.status.state}, not reducing for epoch {f.epoch}")
            return
        f.passes += 1
        f.phase = "reading"
        f.step += 1
        failed = self._ask_snapshot({self.stable_mint}, f"f:{f.flatten_id}:{f.step}")
        if failed is not None:
            self._flatten_end(failed)
            return
        self.runtime.send_after(
            self.settings.outcome_overdue_s, self.actor_ref, _FlattenOverdue(flatten_id=f.flatten_id, step=f.step)
        )

    def _flatten_snapshot(self, f: _Flatten, snap: VaultSnapshot) -> None:
        if snap.error is not None:
            self._flatten_end(f"snapshot failed: {snap.error}"[:500])
            return
        if not self._reducing(f.epoch):
            self._flatten_end(f"the kill switch is {self.board.status.state}, not reducing for epoch {f.epoch}")
            return
        stable = self.stable_mint
        key = f"{f.flatten_id}p{f.passes}"
        try:
            plan = plan_trades(
                dict(snap.balances), dict(snap.prices), self.decimals, stable, {stable: 1.0}, self.settings, 1.0,
                self.vault_id, key,
            )
        except ValueError as exc:  # a malformed id: a bug, reported rather than raised
            self._flatten_end(f"cannot plan: {exc}")
            return
        self.stats.value_usd = plan.value_usd
        sells = [t for t in plan.trades if t.output_mint == stable and t.input_mint != stable and t.reduces_exposure]
        left = [s for s in plan.skipped if s.reason is not SkipReason.DUST]
        dust = sum(s.value_usd for s in plan.skipped if s.reason is SkipReason.DUST)
        last_read = f.passes > FLATTEN_PASSES  # this read only says what the last pass left
        self._flatten_audit(
            f, "flatten_plan",
            {
                "pass": f.passes, "slot": snap.slot, "value_usd": plan.value_usd, "refused": plan.refused,
                "handed_over": bool(sells) and not plan.refused and not last_read and len(sells) == len(plan.trades),
                "sells": [{"trade_id": t.trade_id, "mint": t.input_mint, "amount_in": t.amount_in,
                           "value_usd": round(t.value_usd, 2)} for t in sells],
                "dust_usd": round(dust, 2),
                "skipped": [{"reason": s.reason.value, "mint": s.mint, "value_usd": round(s.value_usd, 2),
                             "detail": s.detail} for s in left],
            },
            Severity.WARNING if plan.refused or left else Severity.INFO,
        )
        if plan.refused:
            self._flatten_end("plan refused: " + "; ".join(s.detail or s.reason.value for s in plan.skipped)[:300])
            return
        if len(sells) != len(plan.trades):  # target is all stablecoin: a buy here is a bug
            self._flatten_end(f"plan has {len(plan.trades) - len(sells)} trade(s) that are not sells: nothing handed over")
            return
        if not sells:
            what = "nothing to sell" if f.passes == 1 else "nothing left to sell"
            self._flatten_end(what + (f" (dust worth ${dust:,.2f} kept)" if dust else ""))
            return
        if last_read:
            left_usd = sum(t.value_usd for t in sells)
            self._flatten_end(f"${left_usd:,.2f} of volatile holdings left after {FLATTEN_PASSES} passes")
            return
        f.phase = "selling"
        f.step += 1
        for t in sells:
            f.pending[t.trade_id] = TradeRequest(
                trade_id=t.trade_id,
                vault_id=self.vault_id,
                round_key=t.round_key,
                index=t.index,
                input_mint=t.input_mint,
                output_mint=t.output_mint,
                amount_in=t.amount_in,
                slippage_bps=self.profile.slippage_bps,
                value_usd=t.value_usd,
                reduces_exposure=True,
                reply_to=self.actor_ref,
            )
        logger.warning("{}: flatten {} pass {}: {} sell(s) handed over", self.vault_id, f.flatten_id, f.passes, len(sells))
        self._flatten_send(f)
        self.runtime.send_after(
            self.settings.outcome_overdue_s, self.actor_ref, _FlattenOverdue(flatten_id=f.flatten_id, step=f.step)
        )

    def _flatten_send(self, f: _Flatten) -> None:
        self._hand_to_executor(f.pending.values())

    def _flatten_outcome(self, f: _Flatten, outcome: TradeOutcome) -> None:
        if outcome.status not in FINAL_STATUSES:
            logger.warning("{}: flatten trade {} {}: still watched", self.vault_id, outcome.trade_id, outcome.status)
            return
        del f.pending[outcome.trade_id]
        if outcome.status == "confirmed":
            f.sold += 1
        else:
            f.failed += 1
            logger.warning("{}: flatten trade {} {}: {}", self.vault_id, outcome.trade_id, outcome.status, outcome.error)
        if not f.pending:
            self._flatten_pass()  # read again: what is left, if anything, is sold by the next pass

    def _on_flatten_overdue(self, overdue: _FlattenOverdue) -> None:
        f = self.flatten
        if f is None or overdue.flatten_id != f.flatten_id or overdue.step != f.step:
            return
        if f.phase == "reading":
            self._flatten_end(f"no snapshot within {self.settings.outcome_overdue_s:g} s")
        elif f.pending:
            logger.warning("{}: flatten {}: {} outcomes overdue; asking again", self.vault_id, f.flatten_id, len(f.pending))
            self._flatten_send(f)
            self.runtime.send_after(self.settings.outcome_overdue_s, self.actor_ref, overdue)

    def _flatten_end(self, detail: str) -> None:
        """Report to the kill switch and the audit trail; the trades handed over are all final."""
        f, self.flatten = self.flatten, None
        if f is None:
            return
        if f.pending:  # never: callers end only with nothing in flight; kept honest if one does
            detail += f" ({len(f.pending)} trade(s) still with the executor)"
        logger.warning("{}: flatten {} done: {} sold, {} failed: {}", self.vault_id, f.flatten_id, f.sold, f.failed, detail)
        self._flatten_audit(
            f, "flatten_done", {"sold": f.sold, "failed": f.failed, "passes": f.passes, "detail": detail},
            Severity.WARNING if f.failed or f.pending else Severity.INFO,
        )
        self._flatten_report(f.flatten_id, f.sold, f.failed, detail)
        queued, self.flatten_next = self.flatten_next, None
        if queued is not None:
            self._on_flatten(queued)

    def _flatten_report(self, flatten_id: str, sold: int, failed: int, detail: str) -> None:
        self._to_kill_switch(
            FlattenDone(vault_id=self.vault_id, flatten_id=flatten_id, sold=sold, failed=failed, detail=detail[:500])
        )

    def _flatten_audit(self, f: _Flatten, phase: str, details: dict[str, Any], severity: Severity) -> None:
        record(
            self.runtime,
            audit_event(
                EventType.TRADE_EXECUTION, self.vault_id, {"phase": phase, "flatten_id": f.flatten_id, **details},
                correlation_id=f.flatten_id, severity=severity,
            ),
        )


class _Stats:
    """A vault's counters (see :class:`VaultStatus`)."""

    __slots__ = ("confirmed", "incarnation", "last_skip", "other", "rounds", "rounds_skipped", "value_usd")

    def __init__(self) -> None:
        self.rounds = self.rounds_skipped = self.confirmed = self.other = 0
        self.last_skip = ""
        self.value_usd = 0.0
        #: This actor's start in ms, base 36: part of every round key (ids never repeat across restarts).
        self.incarnation = _base36(time.time_ns() // 1_000_000)


#: Shared, read-only: never written (a round replaces it with its own dict first).
_EMPTY: Mapping[str, Any] = MappingProxyType({})
#: A board nobody publishes to: a vault without a strategy holds (tests, benchmarks).
_NO_STRATEGY = StrategyBoard()


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out or "0"
