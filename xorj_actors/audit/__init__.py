"""The hash-chained audit trail: a single group-committing writer, verification and anchoring.

See docs/AUDIT.md for the entry format, the hash and HMAC definitions and the durability contract.
"""

from __future__ import annotations

from xorj_actors.audit._actor import (
    AUDIT_NAME,
    AppendDurable,
    Audit,
    AuditEvent,
    AuditHealth,
    GetAuditHealth,
    audit_event,
    record,
)
from xorj_actors.audit._anchor import (
    AnchorError,
    Anchorer,
    ensure_bucket,
    list_anchors,
    read_segment,
    recover_from_anchors,
    s3_client,
)
from xorj_actors.audit._chain import (
    GENESIS_HASH,
    AuditEntry,
    CanonicalJSONError,
    EventType,
    Severity,
    canonical_json,
    chain_hash,
    chain_hmac,
    entry_bytes,
    load_hmac_key,
    utc_timestamp,
)
from xorj_actors.audit._halt_history import (
    KILL_SWITCH_ACTOR,
    KILL_SWITCH_STARTING,
    append_durable,
    halt_history,
    kill_switch_state_key,
    read_halt_history,
)
from xorj_actors.audit._log import AuditLog, AuditTimeout, AuditUnavailable
from xorj_actors.audit._reader import UnverifiedEntry, verified_entries
from xorj_actors.audit._store import AuditStoreError, Store, open_store, select_entries
from xorj_actors.audit._verify import AnchorHead, VerifyResult, verify_rows, verify_store
from xorj_actors.audit.settings import AnchorSettings, AuditSettings, PostgresSettings

__all__ = [
    "AUDIT_NAME",
    "AppendDurable",
    "GENESIS_HASH",
    "KILL_SWITCH_ACTOR",
    "KILL_SWITCH_STARTING",
    "Audit",
    "AuditEvent",
    "AuditHealth",
    "GetAuditHealth",
    "append_durable",
    "audit_event",
    "record",
    "AnchorError",
    "AnchorHead",
    "AnchorSettings",
    "Anchorer",
    "AuditEntry",
    "AuditLog",
    "AuditSettings",
    "AuditStoreError",
    "AuditTimeout",
    "AuditUnavailable",
    "CanonicalJSONError",
    "EventType",
    "PostgresSettings",
    "Severity",
    "Store",
    "UnverifiedEntry",
    "VerifyResult",
    "canonical_json",
    "chain_hash",
    "chain_hmac",
    "ensure_bucket",
    "entry_bytes",
    "halt_history",
    "kill_switch_state_key",
    "list_anchors",
    "load_hmac_key",
    "open_store",
    "read_halt_history",
    "read_segment",
    "recover_from_anchors",
    "s3_client",
    "select_entries",
    "utc_timestamp",
    "verified_entries",
    "verify_rows",
    "verify_store",
]
