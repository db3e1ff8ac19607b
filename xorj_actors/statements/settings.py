"""``[reconciliation]``: the engine's scheduled statement reconciliation."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["ReconciliationSettings"]


@dataclass(frozen=True, slots=True)
class ReconciliationSettings:
    """``[reconciliation]`` (docs/AUDIT.md, "Statement reconciliation")."""

    #: Run inside the engine: record each vault's opening balances at start, then reconcile on schedule.
    enabled: bool = True
    #: Seconds between scheduled runs (daily by default).
    interval_s: float = 86_400.0
    #: Seconds after the engine starts before the first scheduled run.
    first_run_s: float = 600.0
    #: A mismatch also trips the kill switch (a halt), beside the audit entry and the metric.
    halt_on_mismatch: bool = False
    #: Timeout of each JSON-RPC read.
    rpc_timeout_s: float = 30.0
    #: A vault whose trade has been in flight longer than this is reported unreadable, not
    #: deferred: the trade is stuck (an engine that died mid-trade and was not restarted), and a
    #: run must not read clean while a vault goes unreconciled for good.
    defer_max_s: float = 3600.0

    def validate(self) -> None:
        if not math.isfinite(self.interval_s) or not 60 <= self.interval_s <= 30 * 86_400:
            raise ValueError("interval_s: must be between 60 and 2592000 seconds (30 days)")
        if not math.isfinite(self.first_run_s) or not 0 <= self.first_run_s <= 86_400:
            raise ValueError("first_run_s: must be between 0 and 86400 seconds")
        if not math.isfinite(self.rpc_timeout_s) or not 1 <= self.rpc_timeout_s <= 300:
            raise ValueError("rpc_timeout_s: must be between 1 and 300 seconds")
        if not math.isfinite(self.defer_max_s) or not 60 <= self.defer_max_s <= 7 * 86_400:
            raise ValueError("defer_max_s: must be between 60 and 604800 seconds (7 days)")
