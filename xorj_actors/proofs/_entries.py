"""Audit entries as a proof carries them: every stored column but the HMAC's key, so anyone can
recompute each entry's hash from its contents and its ``prev_hash`` (docs/AUDIT.md, "Hash")."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from xorj_actors.audit import AuditEntry, chain_hash, entry_bytes

__all__ = ["ProofMismatch", "anchor_head", "entry_details", "entry_label", "entry_record", "recomputed_hash"]

_FIELDS = ("chain", "sequence", "id", "timestamp", "event_type", "severity", "actor", "correlation_id",
           "details", "prev_hash", "hash", "hmac")


class ProofMismatch(ValueError):
    """A proof that does not hold: ``where`` names the first field found wrong."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


def entry_record(chain: str, entry: AuditEntry) -> dict[str, Any]:
    """``entry`` of ``chain`` for a proof; ``details`` is the stored canonical text, verbatim."""
    return {
        "chain": chain, "sequence": entry.sequence, "id": entry.id, "timestamp": entry.timestamp,
        "event_type": entry.event_type, "severity": entry.severity, "actor": entry.actor,
        "correlation_id": entry.correlation_id, "details": entry.details, "prev_hash": entry.prev_hash,
        "hash": entry.hash, "hmac": entry.hmac,
    }


def entry_label(record: Mapping[str, Any]) -> str:
    """``chain#sequence`` for messages."""
    return f"{record.get('chain')}#{record.get('sequence')}"


def recomputed_hash(record: Mapping[str, Any], where: str) -> str:
    """The entry's hash recomputed from its contents and ``prev_hash``; ProofMismatch when it is
    not shaped as an entry."""
    missing = [f for f in _FIELDS if f not in record]
    if missing:
        raise ProofMismatch(where, f"not an audit entry: no {missing[0]!r}")
    try:
        canonical = entry_bytes(
            str(record["id"]), int(record["sequence"]), str(record["timestamp"]), str(record["event_type"]),
            str(record["severity"]), str(record["actor"]), record["correlation_id"], str(record["details"]),
        )
        return chain_hash(str(record["prev_hash"]), canonical)
    except (TypeError, ValueError) as exc:
        raise ProofMismatch(where, f"not an audit entry: {exc}") from None


def entry_details(record: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The decoded ``details`` of an entry record (an object)."""
    try:
        details = json.loads(str(record["details"]))
    except (KeyError, ValueError):
        raise ProofMismatch(where, "details are not JSON") from None
    if not isinstance(details, dict):
        raise ProofMismatch(where, "details are not an object")
    return details


def anchor_head(chain: str, head: Any) -> dict[str, Any]:
    """``head``, a proof's anchored head of ``chain``: an object with an integer ``sequence`` and
    a string ``hash``; ProofMismatch otherwise."""
    if not (isinstance(head, dict) and type(head.get("sequence")) is int and isinstance(head.get("hash"), str)):
        raise ProofMismatch(f"audit.anchors.heads.{chain}", f"malformed: {head!r} is not null nor a head with an integer sequence and a hash")
    return head
