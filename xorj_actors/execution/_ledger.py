"""The trade ledger: what the audit log says about each trade, read back after a restart.

The audit log is the only record: a trade's intent (TRADE_INTENT) is durable before it is signed,
each signed attempt (TRADE_EXECUTION, phase ``signed``: signature, signed bytes and
``lastValidBlockHeight``) is durable before it is sent, and its final outcome is a
TRADE_CONFIRMATION. An intent without a TRADE_CONFIRMATION is open: the executor settles it from
the chain before the vault trades again. Every entry read back is checked against its hash and
HMAC: a forged or edited row is refused, loudly, not acted on.

In a cluster every node writes its own chain (docs/AUDIT.md, "Chains"), and a trade may span
chains: its intent in the chain of the node that opened it, the attempts of a node that took its
vault over in that node's, its outcome in whichever chain settled it. A trade with an outcome in
any chain is final; otherwise its entries from every chain make one record.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pykka import ActorRef
from solders.transaction import VersionedTransaction

from xorj_actors.audit import (
    AuditEntry,
    OpenedIn,
    Store,
    UnverifiedEntry,
    entries_by_chain,
    open_entries_by_chain,
)
from xorj_actors.execution._messages import TradeOutcome, TradePhase, TradeRequest, TradeStatus
from xorj_actors.jupiter import TradeApi

__all__ = [
    "Attempt",
    "LedgerError",
    "TradeRecord",
    "load_adoptable_trades",
    "load_open_trades",
    "load_vault_trades",
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
    #: The API that built it (``swap`` or ``ultra``): Ultra's bytes are sent by ``/execute``.
    api: TradeApi = TradeApi.SWAP
    #: Ultra's ``requestId`` (``/execute`` takes it back with the signed transaction).
    request_id: str | None = None
    #: Ultra with the market maker paying the fee: the transaction's id is the maker's
    #: signature, known once ``/execute`` answers (then ``signature`` holds it). Ours, to match.
    our_signature: str | None = None
    #: The vault's accounts as the effect check read them before signing (address ->
    #: ``[lamports, token amount or None]``): an Ultra order whose id never became known is
    #: settled as not landed only if they are unchanged once its blockhash has expired.
    pre_state: dict[str, list[int | None]] | None = None
    #: The vault's lease revision it was signed under (cluster; None: no cluster).
    lease_revision: int | None = None
    #: Fenced before its first send (a ``fenced`` entry): never sent, so it can never land.
    fenced: bool = False

    def transaction(self) -> VersionedTransaction:
        """The signed bytes as recorded (Ultra: with the maker's slot still empty)."""
        return VersionedTransaction.from_bytes(base64.b64decode(self.transaction_b64))

    @property
    def id_known(self) -> bool:
        """Whether the transaction's id (its first signature) is known, so it can be watched."""
        return bool(self.signature)


@dataclass(slots=True)
class TradeRecord:
    """A trade the executor is carrying (owned by the executor's event loop)."""

    request: TradeRequest
    attempts: list[Attempt] = field(default_factory=list)
    waiters: list[ActorRef[Any]] = field(default_factory=list)
    #: Where it is (``quoting``: nothing signed yet, may be dropped on EMERGENCY; ``finishing``:
    #: the outcome is decided and being recorded).
    phase: TradePhase = TradePhase.NEW
    #: The attempt being made (1-based); attempts are numbered in the log too.
    attempt_no: int = 0
    #: Attempts made, signed or not (``retry.max_attempts`` bounds it).
    tries: int = 0
    #: An emergency halt dropped it (a cancel that is not the executor stopping).
    dropped: bool = False
    started: float = 0.0
    #: The vault was told ``timed_out``; the trade is still watched until it is final.
    timed_out: bool = False
    #: Its signed attempts that expired for certain (each raises the next one's priority fee).
    expiries: int = 0
    #: Digests of the messages it built (:class:`MessageClaims`): no other trade may sign one.
    claims: list[bytes] = field(default_factory=list)
    #: Read back from the log: the audit chain holding its intent (the node that opened it).
    intent_chain: str = ""
    #: Cluster: the holding of the vault's lease (:attr:`LeaseToken.tenure`) it first passed the
    #: fence under; every later check and its outcome need that same holding (0: not yet).
    tenure: int = 0

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
        "status": outcome.status.value,
        "signature": outcome.signature,
        "slot": outcome.slot,
        "confirmations": outcome.confirmations,
        "error": outcome.error,
        "error_class": outcome.error_class,
        "in_amount": outcome.in_amount,
        "out_amount": outcome.out_amount,
        "attempts": outcome.attempts,
        "api": outcome.api.value if outcome.api is not None else None,
    }


_RANK = {INTENT: 0, EXECUTION: 1, CONFIRMATION: 2}


def _merged(by_chain: Mapping[str, list[AuditEntry]]) -> list[tuple[str, AuditEntry]]:
    """Entries of several chains in the order :func:`_records` needs: every intent, then every
    attempt's entries by attempt number (each attempt was made by one node, in its own chain, in
    order), then the outcomes. One chain: its own order, for each trade."""

    def order(item: tuple[str, AuditEntry]) -> tuple[int, int]:
        entry = item[1]
        attempt = _details(entry).get("attempt") if entry.event_type == EXECUTION else 0
        return _RANK.get(entry.event_type, 1), attempt if type(attempt) is int else 0

    return sorted(((c, e) for c, entries in by_chain.items() for e in entries), key=order)


def _read(read: Callable[..., Mapping[str, list[AuditEntry]]], **filters: Any) -> list[tuple[str, AuditEntry]]:
    try:
        return _merged(read(**filters))
    except UnverifiedEntry as exc:
        raise LedgerError(str(exc)) from None


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
            status=TradeStatus(str(d["status"])),
            signature=d.get("signature"),
            slot=d.get("slot"),
            confirmations=int(d.get("confirmations", 0)),
            error=d.get("error"),
            error_class=d.get("error_class"),
            in_amount=int(d.get("in_amount", 0)),
            out_amount=int(d.get("out_amount", 0)),
            attempts=int(d.get("attempts", 0)),
            api=TradeApi(d["api"]) if d.get("api") is not None else None,
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
        pre_state = d.get("pre_state")
        return Attempt(
            number=int(d["attempt"]),
            signature=str(d["signature"] or ""),
            transaction_b64=str(d["transaction"]),
            last_valid_block_height=int(d["last_valid_block_height"]),
            in_amount=int(d.get("in_amount", 0)),
            out_amount=int(d.get("out_amount", 0)),
            api=TradeApi(d.get("api", TradeApi.SWAP.value)),
            request_id=str(d["request_id"]) if d.get("request_id") is not None else None,
            our_signature=str(d["our_signature"]) if d.get("our_signature") is not None else None,
            pre_state=dict(pre_state) if isinstance(pre_state, dict) else None,
            lease_revision=int(d["lease_revision"]) if d.get("lease_revision") is not None else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise LedgerError(f"unreadable signed attempt: {exc!r}") from None


def _records(entries: Iterable[tuple[str, AuditEntry]]) -> tuple[dict[str, TradeRecord], dict[str, TradeOutcome]]:
    open_: dict[str, TradeRecord] = {}
    final: dict[str, TradeOutcome] = {}
    intents: dict[str, TradeRequest] = {}
    for chain, entry in entries:
        trade_id = entry.correlation_id
        if trade_id is None:
            continue
        d = _details(entry)
        if entry.event_type == INTENT:
            if trade_id not in open_ and trade_id not in final:
                intents[trade_id] = _request(d)
                open_[trade_id] = TradeRecord(request=intents[trade_id], intent_chain=chain)
        elif entry.event_type == EXECUTION:
            if d.get("phase") == "signed" and trade_id in open_:
                open_[trade_id].attempts.append(_attempt(d))
            elif d.get("phase") == "sent" and d.get("signature") and trade_id in open_:
                _learn_signature(open_[trade_id], d)
            elif d.get("phase") == "fenced" and trade_id in open_:
                _fenced(open_[trade_id], d)
        elif entry.event_type == CONFIRMATION:
            open_.pop(trade_id, None)
            intent = intents.get(trade_id)
            if intent is None:  # the executor makes the intent durable first: the log is not ours
                raise LedgerError(f"audit entry {entry.sequence}: outcome of trade {trade_id} without its intent")
            final[trade_id] = _outcome(intent, d)
    return open_, final


def _learn_signature(rec: TradeRecord, d: dict[str, Any]) -> None:
    """An Ultra attempt's id, learnt from ``/execute`` after it was durable as signed."""
    for attempt in rec.attempts:
        if attempt.number == d.get("attempt") and not attempt.signature:
            attempt.signature = str(d["signature"])


def _fenced(rec: TradeRecord, d: dict[str, Any]) -> None:
    """A signed attempt fenced before its first send: written only on the path that then never
    sends it (docs/CLUSTER.md), so it is known never sent."""
    for attempt in rec.attempts:
        if attempt.number == d.get("attempt"):
            attempt.fenced = True


def _open_trades(store: Store, key: bytes, opened_in: OpenedIn) -> list[TradeRecord]:
    entries = _read(
        functools.partial(open_entries_by_chain, store, key),
        event_types=(INTENT, EXECUTION), opened_by=INTENT, unless_closed_by=CONFIRMATION, opened_in=opened_in,
    )
    open_, _ = _records(entries)
    return list(open_.values())


def load_open_trades(store: Store, key: bytes) -> list[TradeRecord]:
    """Every trade with an intent in ``store``'s own chain and a final outcome in no chain, with
    its signed attempts (from every chain), in log order."""
    return _open_trades(store, key, OpenedIn.OWN_CHAIN)


def load_adoptable_trades(store: Store, key: bytes, vault_ids: Collection[str]) -> list[TradeRecord]:
    """Fail-over: the trades of ``vault_ids`` that another chain opened (another node, or this
    store's pre-cluster ``default`` chain) and no chain closed, with their signed attempts from
    every chain, for the executor to settle exactly as it settles its own after a crash.

    Call it once for every batch of vaults whose leases were just taken, after the lease and
    before the vaults trade: it reads every chain's open intents (one scan of each chain).
    """
    wanted = set(vault_ids)
    if not wanted:
        return []
    return [r for r in _open_trades(store, key, OpenedIn.OTHER_CHAINS) if r.request.vault_id in wanted]


def load_vault_trades(store: Store, key: bytes, vault_ids: Collection[str]) -> list[TradeRecord]:
    """A cluster node's share of the open trades: those of ``vault_ids`` (the vaults whose leases
    it holds) that any chain opened, its own first, then the others' (:func:`load_adoptable_trades`).

    What a node settles: the trades of the vaults it holds, whoever opened them; never those of
    a vault another node holds (that node settles them, writing the outcome in its own chain).
    """
    wanted = set(vault_ids)
    if not wanted:
        return []
    own = [r for r in _open_trades(store, key, OpenedIn.OWN_CHAIN) if r.request.vault_id in wanted]
    return own + load_adoptable_trades(store, key, wanted)


def lookup_trade(
    store: Store, key: bytes, trade_id: str
) -> tuple[TradeRequest | None, TradeOutcome | TradeRecord | None]:
    """What the log holds for ``trade_id`` in every chain: its intent (None if it has none) and
    its final outcome, or its open record, or None."""
    entries = _read(
        functools.partial(entries_by_chain, store, key),
        correlation_id=trade_id, event_types=(INTENT, EXECUTION, CONFIRMATION),
    )
    intent = next((_request(_details(e)) for _, e in entries if e.event_type == INTENT), None)
    open_, final = _records(entries)
    return intent, final.get(trade_id) or open_.get(trade_id)


def same_trade(a: TradeRequest, b: TradeRequest) -> bool:
    """Whether two requests under one id are the same trade (a reused id is not)."""
    return (a.vault_id, a.input_mint, a.output_mint, a.amount_in) == (b.vault_id, b.input_mint, b.output_mint, b.amount_in)
