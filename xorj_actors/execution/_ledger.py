"""The trade ledger: what the audit log says about each trade, read back after a restart.

The audit log is the only record: a trade's intent (TRADE_INTENT) is durable before it is signed,
each signed attempt (TRADE_EXECUTION, phase ``signed``: signature, signed bytes and
``lastValidBlockHeight``) is durable before it is sent, and its final outcome is a
TRADE_CONFIRMATION. An intent without a TRADE_CONFIRMATION is open: the executor settles it from
the chain before the vault trades again. Every entry read back is checked against its hash and
HMAC: a forged or edited row is refused, loudly, not acted on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pykka import ActorRef

from xorj_actors.audit import AuditEntry, Store, chain_hash, chain_hmac, entry_bytes
from xorj_actors.audit._store import COLUMNS, qualified_table
from xorj_actors.execution._messages import TradeOutcome, TradeRequest

__all__ = [
    "Attempt",
    "LedgerError",
    "TradeRecord",
    "load_open_trades",
    "lookup_trade",
    "outcome_details",
    "request_details",
    "same_trade",
]

INTENT, EXECUTION, CONFIRMATION = "TRADE_INTENT", "TRADE_EXECUTION", "TRADE_CONFIRMATION"


class LedgerError(RuntimeError):
    """The audit log's trade entries cannot be trusted or understood."""


@dataclass(slots=True)
class Attempt:
    """One signed transaction of a trade. Only the last attempt of a trade may be unsettled."""

    number: int
    signature: str
    transaction_b64: str
    last_valid_block_height: int
    in_amount: int = 0
    out_amount: int = 0


@dataclass(slots=True)
class TradeRecord:
    """A trade the executor is carrying (owned by the executor's event loop)."""

    request: TradeRequest
    attempts: list[Attempt] = field(default_factory=list)
    waiters: list[ActorRef[Any]] = field(default_factory=list)
    #: "new", "quoting" (nothing signed yet: may be dropped on EMERGENCY), "signing", "sent",
    #: "finishing" (the outcome is decided and being recorded).
    phase: str = "new"
    #: The attempt being made (1-based); attempts are numbered in the log too.
    attempt_no: int = 0
    #: Attempts made, signed or not (``retry.max_attempts`` bounds it).
    tries: int = 0
    #: An emergency halt dropped it (a cancel that is not the executor stopping).
    dropped: bool = False
    started: float = 0.0
    #: The vault was told ``timed_out``; the trade is still watched until it is final.
    timed_out: bool = False

    @property
    def trade_id(self) -> str:
        return self.request.trade_id


def request_details(request: TradeRequest) -> dict[str, Any]:
    return {
        "trade_id": request.trade_id,
        "vault_id": request.vault_id,
        "round_key": request.round_key,
        "index": request.index,
        "input_mint": request.input_mint,
        "output_mint": request.output_mint,
        "amount_in": request.amount_in,
        "slippage_bps": request.slippage_bps,
        "value_usd": request.value_usd,
        "reduces_exposure": request.reduces_exposure,
    }


def outcome_details(outcome: TradeOutcome) -> dict[str, Any]:
    return {
        "vault_id": outcome.vault_id,
        "status": outcome.status,
        "signature": outcome.signature,
        "slot": outcome.slot,
        "confirmations": outcome.confirmations,
        "error": outcome.error,
        "error_class": outcome.error_class,
        "in_amount": outcome.in_amount,
        "out_amount": outcome.out_amount,
        "attempts": outcome.attempts,
    }


def _verified(row: tuple, key: bytes) -> AuditEntry:
    entry = AuditEntry(*row)
    canonical = entry_bytes(*row[:8])
    if chain_hash(entry.prev_hash, canonical) != entry.hash or chain_hmac(key, entry.hash) != entry.hmac:
        raise LedgerError(
            f"audit entry {entry.sequence} ({entry.event_type} {entry.correlation_id}) does not verify:"
            " the log was edited; run `xorj-actors audit verify`"
        )
    return entry


def _details(entry: AuditEntry) -> dict[str, Any]:
    try:
        details = json.loads(entry.details)
    except ValueError:
        raise LedgerError(f"audit entry {entry.sequence}: details are not JSON") from None
    if not isinstance(details, dict):
        raise LedgerError(f"audit entry {entry.sequence}: details are not an object")
    return details


def _outcome(intent: TradeRequest, d: dict[str, Any]) -> TradeOutcome:
    trade_id = intent.trade_id
    try:
        return TradeOutcome(
            trade_id=trade_id,
            vault_id=str(d["vault_id"]),
            input_mint=intent.input_mint,
            output_mint=intent.output_mint,
            status=str(d["status"]),
            signature=d.get("signature"),
            slot=d.get("slot"),
            confirmations=int(d.get("confirmations", 0)),
            error=d.get("error"),
            error_class=d.get("error_class"),
            in_amount=int(d.get("in_amount", 0)),
            out_amount=int(d.get("out_amount", 0)),
            attempts=int(d.get("attempts", 0)),
            replayed=True,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LedgerError(f"trade {trade_id}: unreadable outcome: {exc!r}") from None


def _request(d: dict[str, Any]) -> TradeRequest:
    try:
        return TradeRequest(
            trade_id=str(d["trade_id"]),
            vault_id=str(d["vault_id"]),
            round_key=str(d["round_key"]),
            index=int(d["index"]),
            input_mint=str(d["input_mint"]),
            output_mint=str(d["output_mint"]),
            amount_in=int(d["amount_in"]),
            slippage_bps=int(d["slippage_bps"]),
            value_usd=float(d["value_usd"]),
            reduces_exposure=bool(d.get("reduces_exposure", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LedgerError(f"unreadable trade intent: {exc!r}") from None


def _attempt(d: dict[str, Any]) -> Attempt:
    try:
        return Attempt(
            number=int(d["attempt"]),
            signature=str(d["signature"]),
            transaction_b64=str(d["transaction"]),
            last_valid_block_height=int(d["last_valid_block_height"]),
            in_amount=int(d.get("in_amount", 0)),
            out_amount=int(d.get("out_amount", 0)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LedgerError(f"unreadable signed attempt: {exc!r}") from None


def _records(entries: Iterable[AuditEntry]) -> tuple[dict[str, TradeRecord], dict[str, TradeOutcome]]:
    open_: dict[str, TradeRecord] = {}
    final: dict[str, TradeOutcome] = {}
    intents: dict[str, TradeRequest] = {}
    for entry in entries:
        trade_id = entry.correlation_id
        if trade_id is None:
            continue
        d = _details(entry)
        if entry.event_type == INTENT:
            if trade_id not in open_ and trade_id not in final:
                intents[trade_id] = _request(d)
                open_[trade_id] = TradeRecord(request=intents[trade_id])
        elif entry.event_type == EXECUTION:
            if d.get("phase") == "signed" and trade_id in open_:
                open_[trade_id].attempts.append(_attempt(d))
        elif entry.event_type == CONFIRMATION:
            open_.pop(trade_id, None)
            intent = intents.get(trade_id)
            if intent is None:  # the executor makes the intent durable first: the log is not ours
                raise LedgerError(f"audit entry {entry.sequence}: outcome of trade {trade_id} without its intent")
            final[trade_id] = _outcome(intent, d)
    return open_, final


def _select(store: Store, where: str, params: list[Any]) -> list[tuple]:
    cols = ", ".join(f'"{c}"' for c in COLUMNS)
    sql = f'SELECT {cols} FROM {qualified_table(store)} WHERE {where} ORDER BY "sequence"'
    return store.db.execute_sql(sql, params).fetchall()


def load_open_trades(store: Store, key: bytes) -> list[TradeRecord]:
    """Every trade with an intent and no final outcome, with its signed attempts, in log order."""
    p = store.db.param
    t = qualified_table(store)
    where = (
        f'"event_type" IN ({p}, {p}) AND "correlation_id" IN ('
        f'SELECT "correlation_id" FROM {t} WHERE "event_type" = {p} AND "correlation_id" IS NOT NULL '
        f'AND "correlation_id" NOT IN (SELECT "correlation_id" FROM {t} WHERE "event_type" = {p} '
        f'AND "correlation_id" IS NOT NULL))'
    )
    rows = _select(store, where, [INTENT, EXECUTION, INTENT, CONFIRMATION])
    open_, _ = _records(_verified(r, key) for r in rows)
    return list(open_.values())


def lookup_trade(
    store: Store, key: bytes, trade_id: str
) -> tuple[TradeRequest | None, TradeOutcome | TradeRecord | None]:
    """What the log holds for ``trade_id``: its intent (None if it has none) and its final
    outcome, or its open record, or None."""
    p = store.db.param
    rows = _select(
        store, f'"correlation_id" = {p} AND "event_type" IN ({p}, {p}, {p})', [trade_id, INTENT, EXECUTION, CONFIRMATION]
    )
    entries = [_verified(r, key) for r in rows]
    intent = next((_request(_details(e)) for e in entries if e.event_type == INTENT), None)
    open_, final = _records(entries)
    return intent, final.get(trade_id) or open_.get(trade_id)


def same_trade(a: TradeRequest, b: TradeRequest) -> bool:
    """Whether two requests under one id are the same trade (a reused id is not)."""
    return (a.vault_id, a.input_mint, a.output_mint, a.amount_in) == (b.vault_id, b.input_mint, b.output_mint, b.amount_in)
