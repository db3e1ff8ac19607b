"""A proof's I/O: the trade's verified audit entries, the chain's ``getTransaction`` (stdlib
JSON-RPC: the ``proof`` command runs no event loop), the anchored heads, and the audit store's
word on a proof's entries."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from xorj_actors.audit import (
    AnchorHead,
    AuditEntry,
    KeyRing,
    Store,
    UnverifiedEntry,
    as_ring,
    chain_hmac,
    chain_store,
    entries_by_chain,
    list_chains,
    read_epochs,
    select_entries,
)
from xorj_actors.proofs._document import build_body
from xorj_actors.proofs._entries import ProofMismatch, anchor_head, entry_label
from xorj_actors.proofs._sign import ProofSigner, sign_body

__all__ = [
    "ProofReadError",
    "Rpc",
    "anchor_heads",
    "check_with_anchors",
    "check_with_store",
    "final_trade_ids",
    "get_transaction",
    "make_proof",
    "trade_entries",
]

_TRADE_EVENTS = ("TRADE_INTENT", "TRADE_EXECUTION", "TRADE_CONFIRMATION")


class ProofReadError(RuntimeError):
    """What a proof needs cannot be read (store, chain): nothing is proved or disproved."""


class Rpc:
    """Solana JSON-RPC over HTTP POST (:class:`xorj_actors.signers.JsonRpc`), failing as ProofReadError."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        from xorj_actors.signers import JsonRpc

        if not url.startswith(("http://", "https://")):
            raise ValueError(f"--rpc: not an http:// or https:// URL: {url!r}")
        self.url = url
        self._rpc = JsonRpc(url, timeout_s)

    def call(self, method: str, params: list[Any]) -> Any:
        """The ``result`` of one call; ProofReadError for anything else."""
        from xorj_actors.signers import MoveError

        try:
            return self._rpc.call(method, params)
        except MoveError as exc:
            raise ProofReadError(str(exc)) from None


def get_transaction(rpc: Rpc, signature: str, commitment: str) -> dict[str, Any] | None:
    """``getTransaction`` of ``signature`` at ``commitment``, base64 (None: not there)."""
    found = rpc.call("getTransaction", [signature, {
        "encoding": "base64", "commitment": commitment, "maxSupportedTransactionVersion": 0,
    }])
    if found is not None and not isinstance(found, dict):
        raise ProofReadError("getTransaction: the answer is not a transaction")
    return found


def trade_entries(store: Store, key: bytes, trade_id: str) -> list[tuple[str, AuditEntry]]:
    """The trade's entries from every chain, each verified (hash and HMAC)."""
    try:
        by_chain = entries_by_chain(store, key, correlation_id=trade_id, event_types=_TRADE_EVENTS)
    except UnverifiedEntry as exc:
        raise ProofReadError(f"the audit log does not verify: {exc}") from None
    return [(chain, e) for chain, entries in by_chain.items() for e in entries]


def final_trade_ids(store: Store, since: str | None, until: str | None) -> list[str]:
    """The trades with a final outcome recorded in ``[since, until)`` (log timestamps), every
    chain, in outcome order."""
    found: list[tuple[str, str]] = []
    for chain in list_chains(store):
        for e in select_entries(chain_store(store, chain), event_types=("TRADE_CONFIRMATION",), since=since, until=until):
            if e.correlation_id is not None:
                found.append((e.timestamp, e.correlation_id))
    return list(dict.fromkeys(trade for _, trade in sorted(found)))


def _row(store: Store, chain: str, sequence: int) -> AuditEntry | None:
    if chain not in list_chains(store):
        return None
    return next(select_entries(chain_store(store, chain), sequence=sequence), None)


def _under_its_epoch(store: Store, chain: str, key: bytes | KeyRing, stored: AuditEntry) -> bool:
    """Whether ``stored``'s HMAC verifies under its own epoch's key (a retired key only up to its rotation)."""
    try:
        epoch_key = read_epochs(chain_store(store, chain), as_ring(key)).key_at(stored.sequence)
    except ValueError:  # a rotation of the chain breaks a rule: nothing in it is trusted
        return False
    return epoch_key is not None and chain_hmac(epoch_key, stored.hash) == stored.hmac


def check_with_store(document: Mapping[str, Any], store: Store, key: bytes | KeyRing | None) -> None:
    """The proof's entries in the audit store: each at its chain and sequence with the same hash,
    linked to the entry before it and (``key``) with a valid HMAC; every entry the store holds of
    the trade's intent, signed attempt and outcome is in the proof; the anchored heads are the
    store's entries at those sequences. Raises ProofMismatch."""
    records: Sequence[Mapping[str, Any]] = document["audit"]["entries"]
    for i, record in enumerate(records):
        where = f"audit.entries[{i}] ({entry_label(record)})"
        chain, sequence = str(record["chain"]), int(record["sequence"])
        stored = _row(store, chain, sequence)
        if stored is None:
            raise ProofMismatch(where, "no such entry in the audit store")
        if stored.hash != record["hash"] or stored.id != record["id"]:
            raise ProofMismatch(f"{where}.hash", f"{record['hash']} in the proof, {stored.hash} in the audit store")
        before = _row(store, chain, sequence - 1) if sequence > 1 else None
        if before is not None and before.hash != stored.prev_hash:
            raise ProofMismatch(where, f"does not link to entry {sequence - 1} of chain {chain} in the audit store")
        if key is not None and not _under_its_epoch(store, chain, key, stored):
            raise ProofMismatch(where, "its HMAC in the audit store does not verify under its key epoch's key")
    present = {(str(r["chain"]), int(r["sequence"])) for r in records}
    for chain, entries in _intents_and_outcomes(store, str(document.get("trade_id"))).items():
        for e in entries:
            if e.event_type != "TRADE_EXECUTION" and (chain, e.sequence) not in present:
                raise ProofMismatch("audit.entries", f"entry {chain}#{e.sequence} ({e.event_type}) of the trade is missing")
    heads = document["audit"]["anchors"].get("heads", {})
    for chain, head in heads.items():
        if head is not None:
            head = anchor_head(chain, head)
            stored = _row(store, chain, head["sequence"])
            if stored is None or stored.hash != head["hash"]:
                raise ProofMismatch(f"audit.anchors.heads.{chain}", f"entry {head['sequence']} of the audit store is not that head")


def _intents_and_outcomes(store: Store, trade_id: str) -> dict[str, list[AuditEntry]]:
    """The trade's intent and outcome entries in every chain (their hashes are compared above)."""
    return {
        chain: list(select_entries(chain_store(store, chain), correlation_id=trade_id,
                                   event_types=("TRADE_INTENT", "TRADE_CONFIRMATION")))
        for chain in list_chains(store)
    }


def anchor_heads(settings: Any) -> dict[str, list[AnchorHead]] | None:
    """Every chain's anchored heads (None: anchoring is not configured)."""
    if not settings.enabled:
        return None
    from xorj_actors.audit import AnchorError, list_chain_anchors, s3_client

    try:
        return list_chain_anchors(s3_client(settings), settings)
    except AnchorError as exc:
        raise ProofReadError(str(exc)) from None


def check_with_anchors(document: Mapping[str, Any], settings: Any) -> list[str]:
    """The proof's entries against the anchor objects (S3 Object Lock): each anchored entry is
    the entry at its chain and sequence in the segment of the first anchor covering it, and each
    anchored head in the proof is an anchor. The entries no anchor covers yet (``chain#sequence``).
    Raises ProofMismatch; ProofReadError when the anchors cannot be read."""
    from xorj_actors.audit import AnchorError, read_segment, s3_client

    client = s3_client(settings)
    listed = anchor_heads(settings) or {}
    segments: dict[str, dict[int, str]] = {}
    unanchored = []
    try:
        for i, record in enumerate(document["audit"]["entries"]):
            chain, sequence = str(record["chain"]), int(record["sequence"])
            cover = next((h for h in listed.get(chain, ()) if h.sequence >= sequence), None)
            if cover is None:
                unanchored.append(entry_label(record))
                continue
            if cover.source not in segments:
                segments[cover.source] = {e.sequence: e.hash for e in read_segment(client, settings, cover)}
            anchored = segments[cover.source].get(sequence)
            if anchored != record["hash"]:
                raise ProofMismatch(f"audit.entries[{i}] ({entry_label(record)}).hash",
                                    f"{record['hash']} in the proof, {anchored} in the anchor {cover.source}")
    except ProofMismatch:
        raise
    except AnchorError as exc:  # an anchor unreadable, or archived: its message says what to do
        raise ProofReadError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - botocore and a malformed object raise many types: none is a verdict
        raise ProofReadError(f"cannot read the anchors: {exc!r}") from None
    for chain, head in document["audit"]["anchors"].get("heads", {}).items():
        if head is not None:
            head = anchor_head(chain, head)
            if not any(h.sequence == head["sequence"] and h.hash == head["hash"] for h in listed.get(chain, ())):
                raise ProofMismatch(f"audit.anchors.heads.{chain}", f"no anchor of chain {chain} is head {head['sequence']} {head['hash']}")
    return unanchored


def make_proof(
    store: Store, key: bytes, trade_id: str, *, rpc: Rpc | None, commitment: str,
    anchors: Mapping[str, Sequence[AnchorHead]] | None, signer: ProofSigner, issued_at: str,
) -> dict[str, Any]:
    """The signed proof of ``trade_id``. ProofReadError: no such trade, no final outcome yet, or
    its landed transaction cannot be read from the chain."""
    entries = trade_entries(store, key, trade_id)
    if not entries:
        raise ProofReadError(f"no trade {trade_id!r} in the audit log")
    outcome = next((e for _, e in entries if e.event_type == "TRADE_CONFIRMATION"), None)
    if outcome is None:
        raise ProofReadError(f"trade {trade_id!r} has no final outcome yet")
    details = json.loads(outcome.details)
    tx = None
    if details.get("signature") and details.get("slot") is not None:
        if rpc is None:
            raise ProofReadError(f"trade {trade_id!r} landed: its proof reads the chain (pass --rpc URL or set [execution] rpc_url)")
        tx = get_transaction(rpc, str(details["signature"]), commitment)
        if tx is None:
            raise ProofReadError(f"transaction {details['signature']} of trade {trade_id!r} is not on the chain at {commitment}")
    return sign_body(build_body(trade_id, entries, tx, commitment, anchors), signer, issued_at)
