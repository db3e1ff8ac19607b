"""Settings of the audit trail."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AuditSettings:
    """``[audit]``: where the hash-chained log lives."""

    backend: str = "sqlite"
