"""One statement reconciliation over every vault: read, compare, record.

The order of the reads makes it safe beside a trading engine: every vault's balances first (each
at one slot ``S``), then the ledger, then the chain's record of the ledger's transactions. A
signed attempt is durable in the ledger before it is sent, so any transaction of ours that landed
by ``S`` is in the ledger read after ``S``; transactions landing after ``S`` are not counted.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from xorj_actors.audit import Store
from xorj_actors.statements._compare import Cause, LedgerTrade, Mismatch, Opening, VaultStatement, compare_vault
from xorj_actors.statements._io import OPENING, ChainError, RpcReader, VaultAccounts, read_ledger

__all__ = ["ACTOR", "Append", "Report", "RunResult", "record_findings", "record_openings", "reconcile"]

#: The ``actor`` of every audit entry a reconciliation writes.
ACTOR = "reconciliation"
#: ``append(event_type, details, correlation_id, severity)``: write one audit entry, durably.
Append = Callable[[str, dict[str, Any], str | None, str], None]


class RunResult(enum.StrEnum):
    """How a run ended (``xorj_reconciliation_runs_total{result}``)."""

    CLEAN = "clean"
    MISMATCH = "mismatch"
    #: No mismatch, but some vault could not be read: nothing concluded for it.
    INCOMPLETE = "incomplete"


@dataclass(slots=True)
class Report:
    """What one run found: a statement per reconciled vault, the vaults opened now, and the
    vaults that could not be read (each with why)."""

    statements: list[VaultStatement] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)
    #: Whether the node serves ``getSignaturesForAddress`` (foreign transactions are named).
    lists_signatures: bool = False
    #: Vaults not reconciled this run because a trade of theirs is in flight (each with why).
    deferred: dict[str, str] = field(default_factory=dict)
    #: Why audit entries of the run could not be written (:func:`record_findings`).
    audit_errors: list[str] = field(default_factory=list)
    #: The audit entries to write, ``(event_type, details, correlation_id, severity)``: written
    #: after the report is complete, so a failing append loses no finding.
    pending: list[tuple[str, dict[str, Any], str | None, str]] = field(default_factory=list, repr=False)

    @property
    def mismatches(self) -> list[Mismatch]:
        return [m for s in self.statements for m in s.mismatches]

    @property
    def result(self) -> RunResult:
        if self.mismatches:
            return RunResult.MISMATCH
        return RunResult.INCOMPLETE if self.unreadable else RunResult.CLEAN

    def as_dict(self) -> dict[str, Any]:
        return {
            "result": self.result.value, "vaults": len(self.statements), "mismatches": len(self.mismatches),
            "transactions": sum(s.transactions for s in self.statements),
            "opened": sorted(self.opened), "unreadable": dict(sorted(self.unreadable.items())),
            "deferred": dict(sorted(self.deferred.items())),
            "lists_signatures": self.lists_signatures, "audit_errors": list(self.audit_errors),
            "statements": [s.as_dict() for s in self.statements],
        }


def _opening_details(vault: VaultAccounts, slot: int, balances: dict[str, int]) -> dict[str, Any]:
    return {"what": OPENING, "vault_id": vault.vault_id, "authority": vault.authority, "slot": slot,
            "balances": dict(sorted(balances.items()))}


def record_openings(
    store: Store, key: bytes, reader: RpcReader, vaults: Sequence[VaultAccounts], append: Append
) -> list[str]:
    """Audit the opening balances of every vault that has none yet (first seen); the vaults opened."""
    _, openings = read_ledger(store, key)
    opened = []
    for vault in vaults:
        if (vault.vault_id, vault.authority) in openings:
            continue
        slot, balances = reader.balances(vault)
        append("SYSTEM_EVENT", _opening_details(vault, slot, balances), f"opening:{vault.vault_id}", "INFO")
        opened.append(vault.vault_id)
    return opened


def reconcile(store: Store, key: bytes, reader: RpcReader, vaults: Sequence[VaultAccounts],
              *, defer_max_s: float, now: float | None = None) -> Report:
    """Reconcile ``vaults``. Writes nothing: the report's ``pending`` entries (each mismatch as a
    SECURITY_VIOLATION with its figures; the opening of a vault without one, its statement starting
    there) are written by :func:`record_findings` once the caller has acted on the report.

    A vault whose trade has been in flight for more than ``defer_max_s`` (before ``now``, Unix time)
    is not deferred but ``unreadable``: a trade that old is stuck, and the run must not read clean.
    """
    now = time.time() if now is None else now
    report = Report()
    read: dict[str, tuple[int, dict[str, int]]] = {}
    for vault in vaults:
        try:
            read[vault.vault_id] = reader.balances(vault)
        except ChainError as exc:
            report.unreadable[vault.vault_id] = str(exc)
    trades, openings = read_ledger(store, key)  # after the balances: see the module docstring
    for vault in vaults:
        if vault.vault_id not in read:
            continue
        theirs = trades.get(vault.vault_id, [])
        in_flight, since = _in_flight(theirs)
        if in_flight and since and now - since > defer_max_s:
            report.unreadable[vault.vault_id] = (f"{in_flight}, for {now - since:.0f} s (more than "
                                                 f"defer_max_s {defer_max_s:g}): settle it, then reconcile")
            continue
        if in_flight:  # its transaction may land between the reads: the next run reconciles it
            report.deferred[vault.vault_id] = in_flight
            continue
        slot, actual = read[vault.vault_id]
        opening = openings.get((vault.vault_id, vault.authority))
        if opening is None:
            report.pending.append(("SYSTEM_EVENT", _opening_details(vault, slot, actual), f"opening:{vault.vault_id}", "INFO"))
            report.opened.append(vault.vault_id)
            opening = Opening(slot, actual)
        try:
            chain = reader.transactions([s for t in theirs for s in (*t.signatures, t.signature) if s], vault)
            statement = compare_vault(vault.vault_id, opening, actual, slot, theirs, chain)
            if any(m.cause is Cause.UNLEDGERED for m in statement.mismatches):
                unledgered = _foreign(reader, vault, chain, opening.slot, slot, report)
                statement = compare_vault(vault.vault_id, opening, actual, slot, theirs, chain, unledgered)
        except ChainError as exc:
            report.unreadable[vault.vault_id] = str(exc)
            continue
        report.statements.append(statement)
        report.pending += [("SECURITY_VIOLATION", {"what": "reconciliation mismatch", **m.as_dict(), "slot": slot,
                                                   "opening_slot": opening.slot}, m.trade_id, "CRITICAL")
                           for m in statement.mismatches]
    return report


def _in_flight(trades: Sequence[LedgerTrade]) -> tuple[str, float]:
    """Why a vault's statement cannot be concluded now (empty: it can), and since when (the oldest
    such trade's intent; 0: unknown): a trade with an intent and no outcome yet, or an Ultra
    attempt whose transaction id is not recorded yet."""
    open_ = [t for t in trades if t.unknown_ids or not t.status]
    if not open_:
        return "", 0.0
    t = min(open_, key=lambda t: t.opened_at)
    if t.unknown_ids:
        return f"trade {t.trade_id}: an Ultra attempt whose transaction id is not recorded yet", t.opened_at
    return f"trade {t.trade_id}: open (an intent without an outcome)", t.opened_at


def record_findings(report: Report, append: Append) -> None:
    """Write the report's pending audit entries; an entry that cannot be written is named in
    ``report.audit_errors`` (its finding stays in the report) and the rest are still tried."""
    pending, report.pending = report.pending, []
    for kind, details, correlation, severity in pending:
        try:
            append(kind, details, correlation, severity)
        except Exception as exc:  # noqa: BLE001 - any store fault: recorded, the findings stand
            report.audit_errors.append(f"{kind} {details.get('vault_id')}: {type(exc).__name__}: {exc}")


def _foreign(reader: RpcReader, vault: VaultAccounts, ours: dict[str, Any], after: int, upto: int,
             report: Report) -> list[str]:
    """Signatures the node lists for the vault's accounts in ``(after, upto]`` that the ledger lacks."""
    found: set[str] = set()
    for address in (vault.authority, *vault.token_accounts.values()):
        listed = reader.signatures_for(address, after)
        if listed is None:
            return []
        report.lists_signatures = True
        found.update(sig for sig, slot in listed if slot <= upto and sig not in ours)
    return sorted(found)
