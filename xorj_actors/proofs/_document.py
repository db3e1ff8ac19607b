"""Building an execution proof's body from the trade's audit entries and the chain's record of
its transaction. Pure: the caller reads the store and the RPC (:mod:`._io`); the verifier
(:mod:`._check`) derives every part again with these same rules and compares."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from solders.signature import Signature
from solders.transaction import VersionedTransaction

from xorj_actors.audit import AnchorHead, AuditEntry
from xorj_actors.programs import swap_change
from xorj_actors.proofs._entries import ProofMismatch, entry_details, entry_label, entry_record

__all__ = [
    "PROOF_FORMAT",
    "authority_of",
    "build_body",
    "chain_part",
    "effects_part",
    "outcome_part",
    "quote_part",
    "realised_part",
    "roles",
    "transaction_part",
]

#: The ``proof`` field of every document this version writes.
PROOF_FORMAT = "xorj-execution-proof/1"
INTENT, EXECUTION, CONFIRMATION = "TRADE_INTENT", "TRADE_EXECUTION", "TRADE_CONFIRMATION"
#: The parts of the confirmation entry a proof repeats.
_OUTCOME_FIELDS = ("status", "signature", "slot", "confirmations", "in_amount", "out_amount", "attempts", "api", "error")
#: The parts of the signed entry that are the quote the money check accepted.
_QUOTE_FIELDS = ("api", "in_amount", "out_amount", "min_out", "price_impact_bps", "deviation_bps", "request_id")
_BPS = Decimal("0.01")


def roles(records: Sequence[Mapping[str, Any]], trade_id: str) -> dict[str, Mapping[str, Any]]:
    """The entries a proof rests on, by role: ``intent``, ``outcome`` and, when a transaction was
    signed, ``signed`` (the attempt the outcome names) and, when its id was unknown at signing
    (an Ultra order the maker pays for), ``sent`` (where ``/execute`` revealed it). ProofMismatch when the intent or the outcome is missing."""
    found: dict[str, Mapping[str, Any]] = {}
    details = [(r, entry_details(r, f"audit.entries[{i}] ({entry_label(r)})")) for i, r in enumerate(records)]
    for record, d in details:
        if record.get("correlation_id") != trade_id:
            raise ProofMismatch(f"audit.entries ({entry_label(record)})", f"an entry of another trade ({record.get('correlation_id')})")
        kind = {INTENT: "intent", CONFIRMATION: "outcome"}.get(str(record.get("event_type")))
        if kind is not None:
            found.setdefault(kind, record)
    for kind, event in (("intent", INTENT), ("outcome", CONFIRMATION)):
        if kind not in found:
            raise ProofMismatch("audit.entries", f"the trade's {event} entry is missing")
    signature = entry_details(found["outcome"], "audit.entries (outcome)").get("signature")
    attempt = None
    for record, d in details:
        if (record.get("event_type") == EXECUTION and signature and d.get("signature") == signature
                and d.get("phase") in ("signed", "sent") and type(d.get("attempt")) is int):
            attempt = d["attempt"]
            if d.get("phase") == "sent" and not found.get("sent"):
                found["sent"] = record
    for record, d in details:
        if record.get("event_type") == EXECUTION and d.get("phase") == "signed" and attempt is not None and d.get("attempt") == attempt:
            found["signed"] = record
    if signature and "signed" not in found:
        raise ProofMismatch("audit.entries", f"the signed entry of transaction {signature} is missing")
    if "signed" in found and entry_details(found["signed"], "signed").get("signature") == signature:
        found.pop("sent", None)  # the id was known when signed: the send adds nothing
    return found


def quote_part(intent: Mapping[str, Any], signed: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The quote the money check accepted for the attempt that settled the trade."""
    if signed is None:
        return None
    return {**{f: signed.get(f) for f in _QUOTE_FIELDS}, "slippage_bps": intent.get("slippage_bps")}


def effects_part(signed: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The effect check's verdict as the signed entry recorded it (None: none recorded)."""
    if signed is None or not isinstance(signed.get("effects"), dict):
        return None
    return dict(signed["effects"])


def outcome_part(outcome: Mapping[str, Any]) -> dict[str, Any]:
    return {f: outcome.get(f) for f in _OUTCOME_FIELDS}


def transaction_part(signed: Mapping[str, Any] | None, outcome: Mapping[str, Any]) -> dict[str, Any] | None:
    if signed is None:
        return None
    return {
        "attempt": signed.get("attempt"), "signature": outcome.get("signature"),
        "our_signature": signed.get("our_signature") or signed.get("signature"), "bytes": signed.get("transaction"),
    }


def authority_of(transaction: Mapping[str, Any]) -> str:
    """The vault's authority: the required signer whose slot holds our signature."""
    where = "transaction.bytes"
    try:
        tx = VersionedTransaction.from_bytes(base64.b64decode(str(transaction["bytes"]), validate=True))
        ours = Signature.from_string(str(transaction["our_signature"]))
    except (KeyError, ValueError) as exc:
        raise ProofMismatch(where, f"not a signed transaction: {exc}") from None
    keys = tx.message.account_keys[: tx.message.header.num_required_signatures]
    for key, signature in zip(keys, tx.signatures):
        if signature == ours:
            return str(key)
    raise ProofMismatch(where, f"signature {ours} is in none of its signer slots")


def _token_rows(rows: Any, keys: Sequence[str], owner: str) -> list[dict[str, Any]]:
    out = []
    for row in rows or ():
        if row.get("owner") != owner:
            continue
        out.append({"account": keys[int(row["accountIndex"])], "mint": str(row["mint"]),
                    "amount": int(row["uiTokenAmount"]["amount"])})
    return sorted(out, key=lambda r: r["account"])


def chain_part(tx: Mapping[str, Any] | None, commitment: str, authority: str) -> dict[str, Any] | None:
    """What ``getTransaction`` (base64) says of the transaction: slot, fee, error and the vault's
    token balances before and after (``meta.pre/postTokenBalances`` of accounts it owns)."""
    if tx is None:
        return None
    meta = tx.get("meta") or {}
    raw = tx["transaction"][0] if isinstance(tx.get("transaction"), list) else ""
    message = VersionedTransaction.from_bytes(base64.b64decode(raw)).message
    loaded = meta.get("loadedAddresses") or {}
    keys = [str(k) for k in message.account_keys] + list(loaded.get("writable", [])) + list(loaded.get("readonly", []))
    index = keys.index(authority) if authority in keys else None
    lamports = None
    if index is not None and index < min(len(meta.get("preBalances") or ()), len(meta.get("postBalances") or ())):
        lamports = {"pre": meta["preBalances"][index], "post": meta["postBalances"][index], "fee_payer": index == 0}
    return {
        "commitment": commitment, "slot": tx.get("slot"), "block_time": tx.get("blockTime"),
        "fee": meta.get("fee"), "err": meta.get("err"), "vault_lamports": lamports,
        "vault_token_balances": {
            "pre": _token_rows(meta.get("preTokenBalances"), keys, authority),
            "post": _token_rows(meta.get("postTokenBalances"), keys, authority),
        },
    }


def _held(rows: Sequence[Mapping[str, Any]], mint: str) -> int | None:
    found = [int(r["amount"]) for r in rows if r.get("mint") == mint]
    return sum(found) if found else None


def _change(chain: Mapping[str, Any], mint: str) -> int:
    """How much of ``mint`` the vault gained (negative: spent): :func:`xorj_actors.programs.swap_change`."""
    pre, post = chain["vault_token_balances"]["pre"], chain["vault_token_balances"]["post"]
    lamports = chain.get("vault_lamports")
    change = int(lamports["post"]) - int(lamports["pre"]) if lamports else None
    fee = int(chain.get("fee") or 0) if lamports and lamports["fee_payer"] else 0
    return swap_change(mint, _held(pre, mint), _held(post, mint), change, fee)


def realised_part(intent: Mapping[str, Any], quote: Mapping[str, Any] | None, chain: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What the vault really paid and got (its balances' changes) and the slippage against the
    quote's output, in basis points (positive: less than quoted), as a decimal string."""
    if chain is None or quote is None:
        return None
    spent, got = -_change(chain, str(intent["input_mint"])), _change(chain, str(intent["output_mint"]))
    quoted = int(quote.get("out_amount") or 0)
    slippage = None
    if quoted > 0:
        slippage = str((Decimal(quoted - got) * 10_000 / quoted).quantize(_BPS, ROUND_HALF_EVEN))
    return {"in_amount": spent, "out_amount": got, "slippage_bps": slippage}


def anchors_part(records: Sequence[Mapping[str, Any]], anchors: Mapping[str, Sequence[AnchorHead]] | None) -> dict[str, Any]:
    """The newest anchored head of each chain the entries are in, if it covers them (None: not
    anchored yet). ``anchors`` None: anchoring is not configured."""
    if anchors is None:
        return {"configured": False, "heads": {}}
    heads: dict[str, Any] = {}
    for chain in sorted({str(r["chain"]) for r in records}):
        newest = max(anchors.get(chain, ()), key=lambda h: h.sequence, default=None)
        last = max(int(r["sequence"]) for r in records if r["chain"] == chain)
        heads[chain] = (
            {"sequence": newest.sequence, "hash": newest.hash, "source": newest.source}
            if newest is not None and newest.sequence >= last else None
        )
    return {"configured": True, "heads": heads}


def build_body(
    trade_id: str,
    entries: Sequence[tuple[str, AuditEntry]],
    tx: Mapping[str, Any] | None,
    commitment: str,
    anchors: Mapping[str, Sequence[AnchorHead]] | None,
) -> dict[str, Any]:
    """The unsigned proof of ``trade_id`` from its audit entries (every chain) and ``tx``, the
    ``getTransaction`` answer for its signature (None: it signed nothing, or nothing landed)."""
    records = [entry_record(chain, e) for chain, e in entries]
    found = roles(records, trade_id)
    rested = sorted(found.values(), key=lambda r: (str(r["chain"]), int(r["sequence"])))
    intent = entry_details(found["intent"], "intent")
    outcome = entry_details(found["outcome"], "outcome")
    signed = entry_details(found["signed"], "signed") if "signed" in found else None
    quote = quote_part(intent, signed)
    transaction = transaction_part(signed, outcome)
    chain = chain_part(tx, commitment, authority_of(transaction)) if transaction is not None else None
    return {
        "proof": PROOF_FORMAT,
        "trade_id": trade_id,
        "intent": intent,
        "quote": quote,
        "effects": effects_part(signed),
        "transaction": transaction,
        "outcome": outcome_part(outcome),
        "chain": chain,
        "realised": realised_part(intent, quote, chain),
        "audit": {"entries": rested, "anchors": anchors_part(rested, anchors)},
    }
