"""``xorj-actors check``'s ``correlation`` line: an engine-wide limit a cluster cannot keep fails.

The exposure board is per process. In a cluster each node counts only the vaults it holds the
leases of, so ``global_max_usd`` would be kept per node: N nodes together could hold N times it.
Dividing the cap by the node count would be wrong as soon as a node joins, leaves or holds more
vaults than another; so the check refuses the combination and says why (docs/RISK.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xorj_actors.check import CheckContext, CheckResult

__all__ = ["check_correlation"]


def check_correlation(ctx: CheckContext) -> CheckResult:
    """FAIL: ``[cluster]`` on with ``[correlation] global_max_usd > 0``; else the limits in force."""
    from xorj_actors.check import CheckResult, Status  # loaded on use: check.py lists this check

    s = ctx.config.correlation
    if not s.enabled:
        return CheckResult("correlation", Status.OK, "correlated-exposure limits off")
    if ctx.config.cluster is not None and s.global_max_usd > 0:
        return CheckResult(
            "correlation", Status.FAIL,
            f"[correlation] global_max_usd = {s.global_max_usd:g} with [cluster]: each node keeps its own exposure board, "
            "so the nodes together could hold their count times the cap; set global_max_usd = 0 in a cluster "
            "(per_vault_max_share still applies) or run one engine (docs/RISK.md, \"Correlated exposure\")",
        )
    cap = f"global_max_usd {s.global_max_usd:g} USD" if s.global_max_usd > 0 else "no engine-wide cap"
    return CheckResult("correlation", Status.OK, f"per_vault_max_share {s.per_vault_max_share:g}, {cap}")
