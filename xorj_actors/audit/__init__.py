"""The hash-chained audit trail: a single group-committing writer per chain, verification and anchoring.

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
    anchor_prefix,
    ensure_bucket,
    list_anchors,
    list_chain_anchors,
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
    genesis_hash,
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
from xorj_actors.audit._reader import (
    OpenedIn,
    UnverifiedEntry,
    entries_by_chain,
    open_entries_by_chain,
    verified_entries,
)
from xorj_actors.audit._store import AuditStoreError, Store, chain_store, list_chains, open_store, select_entries
from xorj_actors.audit._verify import AnchorHead, VerifyResult, verify_chains, verify_rows, verify_store
from xorj_actors.audit.settings import (
    DEFAULT_CHAIN,
    AnchorSettings,
    AuditSettings,
    PostgresSettings,
    chain_name_problem,
)

__all__ = [
    "AUDIT_NAME",
    "AppendDurable",
    "DEFAULT_CHAIN",
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
    "OpenedIn",
    "PostgresSettings",
    "Severity",
    "Store",
    "UnverifiedEntry",
    "VerifyResult",
    "anchor_prefix",
    "canonical_json",
    "chain_hash",
    "chain_hmac",
    "chain_name_problem",
    "chain_store",
    "ensure_bucket",
    "entries_by_chain",
    "entry_bytes",
    "genesis_hash",
    "halt_history",
    "kill_switch_state_key",
    "list_anchors",
    "list_chain_anchors",
    "list_chains",
    "load_hmac_key",
    "open_entries_by_chain",
    "open_store",
    "read_halt_history",
    "read_segment",
    "recover_from_anchors",
    "s3_client",
    "select_entries",
    "utc_timestamp",
    "verified_entries",
    "verify_chains",
    "verify_rows",
    "verify_store",
]
