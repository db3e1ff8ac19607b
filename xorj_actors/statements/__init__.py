"""Statement reconciliation: every vault's on-chain balances against its audited opening
balances plus the chain's record of every transaction its ledger holds (docs/AUDIT.md,
"Statement reconciliation")."""

from __future__ import annotations

from xorj_actors.statements._actor import (
    RECONCILER_NAME,
    GetReconciliation,
    Reconciler,
    ReconciliationStatus,
    RunReconciliation,
)
from xorj_actors.statements._compare import (
    LAMPORTS,
    Cause,
    ChainTx,
    LedgerTrade,
    Mismatch,
    Opening,
    VaultStatement,
    compare_vault,
)
from xorj_actors.statements._io import OPENING, ChainError, RpcReader, VaultAccounts, read_ledger, tx_effect
from xorj_actors.statements._render import render, status_reply
from xorj_actors.statements._run import ACTOR, Append, Report, RunResult, reconcile, record_findings, record_openings
from xorj_actors.statements.settings import ReconciliationSettings

__all__ = [
    "ACTOR",
    "RECONCILER_NAME",
    "GetReconciliation",
    "Reconciler",
    "ReconciliationStatus",
    "RunReconciliation",
    "LAMPORTS",
    "OPENING",
    "Append",
    "Cause",
    "ChainError",
    "ChainTx",
    "LedgerTrade",
    "Mismatch",
    "Opening",
    "ReconciliationSettings",
    "Report",
    "RpcReader",
    "RunResult",
    "VaultAccounts",
    "VaultStatement",
    "compare_vault",
    "read_ledger",
    "reconcile",
    "record_findings",
    "render",
    "status_reply",
    "record_openings",
    "tx_effect",
]
