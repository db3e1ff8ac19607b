"""A vault's flatten: the kill switch's REDUCING mode sells its volatile holdings (see :mod:`._vault`).

The steps are a mixin of the :class:`~xorj_actors.vaults.Vault` actor, like the round's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from loguru import logger

from supervisors import ControlMessage
from xorj_actors.audit import EventType, Severity, audit_event, record
from xorj_actors.chain import VaultSnapshot
from xorj_actors.execution import FINAL_STATUSES, TradeOutcome, TradeRequest
from xorj_actors.kill_switch import FlattenDone, FlattenVault
from xorj_actors.strategy import RiskProfile
from xorj_actors.vaults._messages import FlattenPhase, VaultPhase
from xorj_actors.vaults._reconcile import SkipReason, plan_trades
from xorj_actors.vaults._request import request_for
from xorj_actors.vaults.settings import VaultSettings

if TYPE_CHECKING:
    from pykka import ActorRef

    from supervisors import Runtime
    from xorj_actors.kill_switch import HaltBoard
    from xorj_actors.vaults._vault import Stats

__all__ = ["FLATTEN_PASSES", "Flatten", "FlattenSteps"]

#: Read-plan-sell passes of one flatten: a second or third one sells what the first left
#: (pieces beyond ``max_split``, a trade rejected once); one more read reports what remains.
FLATTEN_PASSES = 3


class FlattenOverdue(ControlMessage):
    """Internal: the flatten's snapshot or outcomes of this step are late."""

    flatten_id: str
    step: int


class Flatten:
    """One flatten under way in this vault: what it asked for and what came back."""

    __slots__ = ("epoch", "failed", "flatten_id", "pending", "passes", "phase", "sold", "step")

    def __init__(self, request: FlattenVault) -> None:
        self.flatten_id = request.flatten_id
        self.epoch = request.epoch
        self.phase = FlattenPhase.WAITING
        self.step = 0  # bumped per snapshot request and hand-over: tells overdue timers apart
        self.passes = 0
        self.pending: dict[str, TradeRequest] = {}
        self.sold = 0
        self.failed = 0

    def snapshot_id(self) -> str:
        """The request id of this step's snapshot (a late answer to an earlier one is ignored)."""
        return f"f:{self.flatten_id}:{self.step}"


class FlattenSteps:
    """The flatten's steps, on the vault's state below."""

    # The vault's (set in Vault.__init__).
    vault_id: str
    profile: RiskProfile
    settings: VaultSettings
    decimals: Mapping[str, int]
    stable_mint: str
    board: HaltBoard
    runtime: Runtime
    actor_ref: ActorRef[Any]
    stats: Stats
    phase: VaultPhase
    #: The flatten under way, and one asked for meanwhile (run after it).
    flatten: Flatten | None
    flatten_next: FlattenVault | None

    if TYPE_CHECKING:  # defined by the vault; a stub here would shadow it

        def _ask_snapshot(self, mints: set[str], request_id: str) -> str | None: ...
        def _hand_to_executor(self, requests: Iterable[TradeRequest]) -> None: ...
        def _to_kill_switch(self, message: Any) -> None: ...

    def _reducing(self, epoch: int) -> bool:
        status = self.board.status  # the kill switch's: it owns the halt state
        return status.reducing and status.halted and status.epoch == epoch

    def _not_reducing(self, f: Flatten) -> None:
        self._flatten_end(f"the kill switch is {self.board.status.state}, not reducing for epoch {f.epoch}")

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
        self.flatten = Flatten(request)
        logger.warning("{}: flatten {} asked", self.vault_id, request.flatten_id)
        if self.phase is VaultPhase.IDLE:
            self._flatten_pass()
        # else: the round ends soon (halted: it starts nothing new), then _end_round starts it

    def _flatten_pass(self) -> None:
        f = self.flatten
        assert f is not None
        if not self._reducing(f.epoch):
            self._not_reducing(f)
            return
        f.passes += 1
        f.phase = FlattenPhase.READING
        f.step += 1
        failed = self._ask_snapshot({self.stable_mint}, f.snapshot_id())
        if failed is not None:
            self._flatten_end(failed)
            return
        self._flatten_overdue_later(f)

    def _flatten_overdue_later(self, f: Flatten) -> None:
        self.runtime.send_after(
            self.settings.outcome_overdue_s, self.actor_ref, FlattenOverdue(flatten_id=f.flatten_id, step=f.step)
        )

    def _flatten_snapshot(self, f: Flatten, snap: VaultSnapshot) -> None:
        if snap.error is not None:
            self._flatten_end(f"snapshot failed: {snap.error}"[:500])
            return
        if not self._reducing(f.epoch):
            self._not_reducing(f)
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
        f.phase = FlattenPhase.SELLING
        f.step += 1
        for t in sells:  # every one reduces exposure (filtered above): the reducing mode lets it through
            f.pending[t.trade_id] = request_for(t, self.profile, self.actor_ref)
        logger.warning("{}: flatten {} pass {}: {} sell(s) handed over", self.vault_id, f.flatten_id, f.passes, len(sells))
        self._hand_to_executor(f.pending.values())
        self._flatten_overdue_later(f)

    def _flatten_outcome(self, f: Flatten, outcome: TradeOutcome) -> None:
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

    def _on_flatten_overdue(self, overdue: FlattenOverdue) -> None:
        f = self.flatten
        if f is None or overdue.flatten_id != f.flatten_id or overdue.step != f.step:
            return
        if f.phase is FlattenPhase.READING:
            self._flatten_end(f"no snapshot within {self.settings.outcome_overdue_s:g} s")
        elif f.pending:
            logger.warning("{}: flatten {}: {} outcomes overdue; asking again", self.vault_id, f.flatten_id, len(f.pending))
            self._hand_to_executor(f.pending.values())  # same ids: never executed twice
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

    def _flatten_audit(self, f: Flatten, phase: str, details: dict[str, Any], severity: Severity) -> None:
        record(
            self.runtime,
            audit_event(
                EventType.TRADE_EXECUTION, self.vault_id, {"phase": phase, "flatten_id": f.flatten_id, **details},
                correlation_id=f.flatten_id, severity=severity,
            ),
        )
