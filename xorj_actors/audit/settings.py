"""Settings of the audit trail."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Final, Literal

__all__ = ["ARCHIVE_STORAGE_CLASSES", "DEFAULT_CHAIN", "AnchorSettings", "AuditSettings", "PostgresSettings", "chain_name_problem"]

#: The chain of a process that runs alone: today's table, today's genesis, today's anchors.
DEFAULT_CHAIN: Final = "default"
#: A chain's name becomes part of a table name (``audit_entries_<chain>``) and of an S3 key:
#: lower case (SQLite's names ignore case), no ``_`` (a chain's indexes are named
#: ``<table>_id``, ``<table>_correlation_id``, ...: a chain ``a_id`` would collide with chain
#: ``a``'s), at most 32 characters (PostgreSQL cuts names past 63 bytes).
_CHAIN: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
#: Names whose table would be one of the default table's own indexes (PostgreSQL's primary key).
_RESERVED_CHAINS: Final = frozenset({"pkey"})

#: S3 storage classes a lifecycle rule may archive anchors into (all keep Object Lock: retention
#: follows an object version through every transition). Only ``GLACIER_IR`` can be read as it is:
#: a ``GLACIER`` or ``DEEP_ARCHIVE`` anchor refuses GetObject (``InvalidObjectState``) until it is
#: restored, so restore, verify against the anchors and proof checks stop at it.
ARCHIVE_STORAGE_CLASSES: Final = ("GLACIER_IR", "GLACIER", "DEEP_ARCHIVE")
#: S3 refuses a transition to STANDARD_IA before an object is 30 days old, and a later transition
#: (to any Glacier class) less than 30 days after the STANDARD_IA one.
_IA_MIN_DAYS: Final = 30

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def chain_name_problem(name: object) -> str | None:
    """Why ``name`` cannot name an audit chain, or None if it can."""
    if not isinstance(name, str) or not _CHAIN.fullmatch(name):
        return (f"{name!r} is not a chain name: 1 to 32 lower-case letters, digits or '-', starting with a"
                " letter or digit")
    if name in _RESERVED_CHAINS:
        return f"{name!r} is reserved (it would name one of the audit table's indexes)"
    return None


@dataclass(frozen=True, slots=True)
class PostgresSettings:
    """``[audit.postgres]``: the production store. The password comes from ``password_env``."""

    host: str = "127.0.0.1"
    port: int = 5432
    database: str = "xorj"
    user: str = "xorj"
    #: Environment variable holding the password; unset or empty means no password (trust/peer).
    password_env: str = "XORJ_AUDIT_DB_PASSWORD"
    #: Schema holding the audit table (created if missing).
    schema: str = "public"
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "prefer"
    connect_timeout_s: int = 5
    #: A statement that runs longer (a locked table, a hung server) fails, so the writer reports
    #: the store unavailable instead of blocking silently.
    statement_timeout_s: float = 5.0
    #: Shown in ``pg_stat_activity``.
    application_name: str = "xorj-audit"

    def validate(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ValueError("port: must be between 1 and 65535")
        if not _IDENTIFIER.match(self.schema):
            raise ValueError("schema: must be a plain SQL identifier")
        if not _ENV_NAME.match(self.password_env):
            raise ValueError("password_env: must be an environment variable name")
        if not 1 <= self.connect_timeout_s <= 300:
            raise ValueError("connect_timeout_s: must be between 1 and 300")
        if not 0 < self.statement_timeout_s <= 3600:
            raise ValueError("statement_timeout_s: must be in (0, 3600]")


@dataclass(frozen=True, slots=True)
class AnchorSettings:
    """``[audit.anchor]``: chain heads and segments archived to S3 with Object Lock.

    Credentials come from the standard AWS environment variables (or the instance role).
    """

    enabled: bool = False
    #: Empty: the AWS default endpoint; set it for ministack (``http://127.0.0.1:4566``).
    endpoint_url: str = ""
    bucket: str = "xorj-audit-anchors"
    prefix: str = "audit/"
    region: str = "us-east-1"
    interval_s: float = 60.0
    #: COMPLIANCE-mode retention of every anchor object.
    retention_days: int = 2555
    #: Lifecycle (``audit bucket --apply``): anchors move to STANDARD_IA after this many days
    #: (0: never), then to ``archive_storage_class`` after ``lifecycle_archive_days`` (0: never).
    #: Transitions only: no rule ever expires (deletes) an anchor. ``GLACIER_IR`` (the default)
    #: reads in milliseconds; ``GLACIER``/``DEEP_ARCHIVE`` need a restore before any read
    #: (docs/AUDIT.md, "Archived anchors").
    lifecycle_ia_days: int = 30
    lifecycle_archive_days: int = 90
    archive_storage_class: Literal["GLACIER_IR", "GLACIER", "DEEP_ARCHIVE"] = "GLACIER_IR"

    def validate(self) -> None:
        if self.interval_s <= 0:
            raise ValueError("interval_s: must be > 0")
        if self.retention_days < 1:
            raise ValueError("retention_days: must be >= 1")
        if self.lifecycle_ia_days and self.lifecycle_ia_days < _IA_MIN_DAYS:
            raise ValueError(f"lifecycle_ia_days: must be 0 (never) or >= {_IA_MIN_DAYS} (S3's minimum for STANDARD_IA)")
        if self.lifecycle_ia_days < 0 or self.lifecycle_archive_days < 0:
            raise ValueError("lifecycle_ia_days, lifecycle_archive_days: must be >= 0 (0: no such transition)")
        if self.lifecycle_archive_days and self.lifecycle_ia_days and (
            self.lifecycle_archive_days < self.lifecycle_ia_days + _IA_MIN_DAYS
        ):
            raise ValueError(
                f"lifecycle_archive_days: must be 0 (never) or >= lifecycle_ia_days + {_IA_MIN_DAYS}"
                " (S3 refuses an archive transition sooner after the STANDARD_IA one)"
            )
        if self.archive_storage_class not in ARCHIVE_STORAGE_CLASSES:
            raise ValueError(f"archive_storage_class: must be one of {', '.join(ARCHIVE_STORAGE_CLASSES)}")
        if self.enabled and not self.bucket:
            raise ValueError("bucket: required when anchoring is enabled")
        if self.prefix and not self.prefix.endswith("/"):
            raise ValueError("prefix: must be empty or end with '/'")


@dataclass(frozen=True, slots=True)
class AuditSettings:
    """``[audit]``: where the hash-chained log lives and how it is written."""

    backend: Literal["sqlite", "postgres"] = "sqlite"
    #: SQLite database file, relative to the data directory.
    sqlite_path: str = "audit.db"
    #: A writer that finds the SQLite file locked for this long reports the store unavailable.
    sqlite_busy_timeout_s: float = 1.0
    postgres: PostgresSettings = field(default_factory=PostgresSettings)
    #: Environment variable holding the HMAC key (at least 32 bytes). Only development may run
    #: without it, on a loudly logged development key.
    hmac_key_env: str = "XORJ_AUDIT_HMAC_KEY"
    #: Credential holding the retired audit keys, comma-separated (each at least 32 bytes, none
    #: containing a comma): the keys of earlier key epochs, which ``audit verify`` and the
    #: readers need and a live rotation requires (docs/AUDIT.md, "Key epochs"). Optional.
    retired_hmac_keys_env: str = "XORJ_AUDIT_RETIRED_HMAC_KEYS"
    #: Group commit: at most this many entries per transaction (one INSERT statement; SQLite
    #: allows 32766 parameters, 11 per entry).
    max_batch: int = 512
    #: Group commit: extra time the writer waits for more entries before committing a batch that
    #: is not full (0: commit what is queued; concurrency alone fills the batches).
    max_wait_s: float = 0.0
    #: Entries held in memory while the store is unavailable; past it appends are refused.
    max_pending: int = 100_000
    #: Reconnect backoff while the store is unavailable.
    retry_initial_s: float = 0.05
    retry_max_s: float = 2.0
    #: Default time an ``append`` caller waits for its commit.
    append_timeout_s: float = 5.0
    anchor: AnchorSettings = field(default_factory=AnchorSettings)
    #: The hash chain this process writes (docs/AUDIT.md, "Chains"). Empty: the node id when
    #: ``[cluster]`` is set (:meth:`for_node`), else ``default`` (the one chain of a process that
    #: runs alone, today's table).
    chain: str = ""

    @property
    def chain_name(self) -> str:
        """The chain this process writes and reads as its own."""
        return self.chain or DEFAULT_CHAIN

    def for_node(self, node_id: str | None) -> AuditSettings:
        """These settings with the chain resolved for node ``node_id`` (None: not clustered).

        ``[audit] chain`` wins when set; else the node id names the chain; else ``default``.

        Raises:
            ValueError: the resulting name is not a valid chain name (``chain: ...``).
        """
        if self.chain or not node_id:
            return dataclasses.replace(self, chain=self.chain_name)
        problem = chain_name_problem(node_id)
        if problem is not None:
            raise ValueError(f"chain: the node id {problem}; set [audit] chain to a valid name for this node")
        return dataclasses.replace(self, chain=node_id)

    def validate(self) -> None:
        if self.chain:
            problem = chain_name_problem(self.chain)
            if problem is not None:
                raise ValueError(f"chain: {problem}")
        if not self.sqlite_path or self.sqlite_path.startswith("/") or ".." in self.sqlite_path.split("/"):
            raise ValueError("sqlite_path: must be a relative path inside the data directory")
        if not 0 < self.sqlite_busy_timeout_s <= 60:
            raise ValueError("sqlite_busy_timeout_s: must be in (0, 60]")
        if not _ENV_NAME.match(self.hmac_key_env):
            raise ValueError("hmac_key_env: must be an environment variable name")
        if not _ENV_NAME.match(self.retired_hmac_keys_env):
            raise ValueError("retired_hmac_keys_env: must be an environment variable name")
        if self.retired_hmac_keys_env == self.hmac_key_env:
            raise ValueError("retired_hmac_keys_env: must differ from hmac_key_env")
        if not 1 <= self.max_batch <= 2000:
            raise ValueError("max_batch: must be between 1 and 2000")
        if not 0 <= self.max_wait_s <= 1:
            raise ValueError("max_wait_s: must be between 0 and 1 second")
        if self.max_pending < self.max_batch:
            raise ValueError("max_pending: must be >= max_batch")
        if not 0 < self.retry_initial_s <= self.retry_max_s:
            raise ValueError("retry_initial_s: must be > 0 and <= retry_max_s")
        if self.append_timeout_s <= 0:
            raise ValueError("append_timeout_s: must be > 0")
