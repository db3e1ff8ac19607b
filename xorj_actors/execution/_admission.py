"""Admission: whether a request runs, in order (pure: the book and the request in, a decision out).

1. idempotency: an id with a recorded outcome is answered from the record (a reused id, naming
   another trade, is refused); the same trade while it runs joins that execution;
2. the executor has read its open trades back from the audit log;
3. fewer than ``max_in_flight`` trades in flight;
4. the vault has no unsettled trade (read back, or timed out);
5. one round per vault: no trade of another round of the same vault in flight.

The gate (:func:`gate_refusal`) runs later, before the intent is durable and again before signing.
Nothing here does I/O, reads a clock or touches an actor: the executor's loop owns the book.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from xorj_actors.execution._errors import ErrorClass, TradeError
from xorj_actors.execution._ledger import TradeRecord, same_trade
from xorj_actors.execution._messages import TradeOutcome, TradeRequest
from xorj_actors.execution._options import Gate
from xorj_actors.execution._outcomes import rejected, replayed, reused
from xorj_actors.kill_switch import HaltStatus

__all__ = ["Admission", "Admit", "Answer", "Join", "Refusal", "TradeBook", "admit", "gate_refusal"]


@dataclass(slots=True)
class TradeBook:
    """The trades in flight and the recent outcomes: the one record of both."""

    #: How many final outcomes are kept for replays (``[execution] outcome_cache``).
    outcome_cache: int
    records: dict[str, TradeRecord] = field(default_factory=dict)
    #: trade id -> (its request, its final outcome), the newest ``outcome_cache``.
    outcomes: OrderedDict[str, tuple[TradeRequest, TradeOutcome]] = field(default_factory=OrderedDict)
    #: vault -> its trades not yet settled (read back from the log, or timed out).
    unsettled: dict[str, set[str]] = field(default_factory=dict)
    #: vault -> its trades in flight (any phase).
    by_vault: dict[str, set[str]] = field(default_factory=dict)

    def adopt(self, rec: TradeRecord, *, unsettled: bool) -> None:
        self.records[rec.trade_id] = rec
        self.by_vault.setdefault(rec.request.vault_id, set()).add(rec.trade_id)
        if unsettled:
            self.unsettle(rec)

    def unsettle(self, rec: TradeRecord) -> None:
        """The vault trades again only once this trade is settled (read back, or timed out)."""
        self.unsettled.setdefault(rec.request.vault_id, set()).add(rec.trade_id)

    def settle(self, req: TradeRequest) -> None:
        """The trade is final: out of flight, its vault settled of it."""
        self.records.pop(req.trade_id, None)
        for by in (self.by_vault, self.unsettled):
            ids = by.get(req.vault_id)
            if ids is not None:
                ids.discard(req.trade_id)
                if not ids:
                    del by[req.vault_id]

    def remember(self, request: TradeRequest, outcome: TradeOutcome) -> None:
        if self.outcome_cache == 0:
            return
        self.outcomes[outcome.trade_id] = (request, outcome)
        while len(self.outcomes) > self.outcome_cache:
            self.outcomes.popitem(last=False)

    def unsettled_vaults(self) -> tuple[str, ...]:
        return tuple(sorted(v for v, ids in self.unsettled.items() if ids))

    def in_flight_vaults(self) -> tuple[str, ...]:
        return tuple(sorted(self.by_vault))


@dataclass(frozen=True, slots=True)
class Admit:
    """A new trade: run it."""


@dataclass(frozen=True, slots=True)
class Answer:
    """Answered at once, nothing runs and nothing is counted: a recorded outcome, or a reused id."""

    outcome: TradeOutcome


@dataclass(frozen=True, slots=True)
class Join:
    """The same trade is running: one execution, this requester answered by it too."""

    record: TradeRecord


@dataclass(frozen=True, slots=True)
class Refusal:
    """Refused (``unsettled``): counted and observed like any outcome."""

    outcome: TradeOutcome

    @property
    def reason(self) -> str:
        return self.outcome.error or ""


Admission = Admit | Answer | Join | Refusal


def admit(book: TradeBook, req: TradeRequest, *, reconciled: bool, max_in_flight: int) -> Admission:
    """Whether ``req`` runs (see the module docstring for the order)."""
    done = book.outcomes.get(req.trade_id)
    if done is not None:
        first, outcome = done
        return Answer(replayed(outcome) if same_trade(first, req) else reused(req))
    rec = book.records.get(req.trade_id)
    if rec is not None:
        return Join(rec) if same_trade(rec.request, req) else Answer(reused(req))
    reason = _refusal(book, req, reconciled=reconciled, max_in_flight=max_in_flight)
    if reason is not None:
        return Refusal(rejected(req, ErrorClass.UNSETTLED, reason))
    return Admit()


def _refusal(book: TradeBook, req: TradeRequest, *, reconciled: bool, max_in_flight: int) -> str | None:
    if not reconciled:
        return "the executor is still reading open trades from the audit log"
    if len(book.records) >= max_in_flight:
        return f"{len(book.records)} trades in flight, the limit is {max_in_flight}"
    if book.unsettled.get(req.vault_id):
        return f"vault {req.vault_id} has unsettled trades: {sorted(book.unsettled[req.vault_id])[:3]}"
    other = [t for t in book.by_vault.get(req.vault_id, ()) if book.records[t].request.round_key != req.round_key]
    if other:
        # A vault never has two rounds in flight; a restarted vault that planned from balances
        # these trades have not changed yet would trade the same gap twice.
        return f"vault {req.vault_id} has trades of another round in flight: {sorted(other)[:3]}"
    return None


def gate_refusal(status: HaltStatus, req: TradeRequest, *, stable_mint: str | None, breakers: Gate | None) -> TradeError | None:
    """The gate, in order: the kill switch, then the breakers. None lets the trade through."""
    reducing = (
        status.reducing
        and req.reduces_exposure
        and req.vault_id in status.reducing_vaults
        # A flatten sells into the stablecoin and nothing else: a "reducing" buy is refused.
        and (stable_mint is None or req.output_mint == stable_mint)
    )
    if status.halted and not reducing:
        # REDUCING (an operator's flatten) lets through only exposure-reducing trades of the
        # vaults being flattened; the Signer checks the reducing rule again at the last moment.
        only = ""
        if status.reducing:
            only = ": only trades that reduce exposure" if not req.reduces_exposure else f": {req.vault_id} is not being flattened"
        return TradeError(ErrorClass.HALTED, f"kill switch {status.state} (epoch {status.epoch}){only}")
    if breakers is not None:
        reason = breakers(req.reduces_exposure)
        if reason is not None:
            return TradeError(ErrorClass.BREAKER_OPEN, reason)
    return None
