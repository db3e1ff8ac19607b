"""The human form of a reconciliation report (``xorj-actors reconcile``, ``ctl reconcile``)."""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["render", "status_reply"]


def render(report: dict[str, Any]) -> str:
    """The human report: one line per mismatch, then a summary."""
    lines = []
    for st in report["statements"]:
        for m in st["mismatches"]:
            trade = f" trade {m['trade_id']}" if m["trade_id"] else ""
            sig = f" signature {m['signature']}" if m["signature"] else ""
            lines.append(
                f"MISMATCH {m['vault_id']} {m['asset']}: expected {m['expected']}, actual {m['actual']} "
                f"(difference {m['difference']:+d}); cause: {m['cause']}{trade}{sig}: {m['detail']}"
            )
    for vault, why in report["unreadable"].items():
        lines.append(f"UNREADABLE {vault}: {why}")
    for vault, why in report.get("deferred", {}).items():
        lines.append(f"DEFERRED {vault}: {why}")
    for why in report.get("audit_errors", ()):
        lines.append(f"AUDIT NOT WRITTEN {why}")
    verdict = "OK" if not report["mismatches"] and not report["unreadable"] else "MISMATCH" if report["mismatches"] else "INCOMPLETE"
    lines.append(
        f"{verdict}: {report['vaults']} vaults, {report['transactions']} transactions, {report['mismatches']} mismatches"
        + (f", {len(report['opened'])} opened now" if report["opened"] else "")
        + (f", {len(report['unreadable'])} unreadable" if report["unreadable"] else "")
        + (f", {len(report['deferred'])} deferred" if report.get("deferred") else "")
    )
    return "\n".join(lines)


def status_reply(status: Any) -> dict[str, Any]:
    """``ctl reconcile``'s answer: a :class:`ReconciliationStatus` without the whole report, with
    the last run's findings as :func:`render` prints them."""
    out = {f.name: getattr(status, f.name) for f in dataclasses.fields(status) if f.name != "last"}
    return {**out, "findings": render(status.last) if status.last is not None else "(no run finished yet)"}
