"""``xorj-actors ctl quotas``: a snapshot as a text table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["render_quotas"]

#: The used ratio an operator should look at (docs/QUOTAS.md: the 80 % alert).
WARN_RATIO = 0.8


def render_quotas(rows: Mapping[str, Mapping[str, Any]]) -> str:
    """The rows of :meth:`Quotas.snapshot` as a table; a shared endpoint points at its bucket."""
    header = ["ENDPOINT", "BUDGET", "USED", "RATE", "PAUSED", "WAITING", "GRANTED", "429 THEIRS", "429 OURS", "NOT SERVED"]
    body = []
    for endpoint, r in rows.items():
        if r["bucket"] != endpoint:
            budget = f"shares {r['bucket']}"
        else:
            budget = f"{r['requests']}/{r['window_s']:g}s burst {r['burst']}"
        used = f"{r['used_ratio'] * 100:.0f}%" + (" !" if r["used_ratio"] >= WARN_RATIO else "")
        not_served = f"full {r['queue_full']} expired {r['expired']} dropped {r['dropped']}"
        body.append([
            endpoint, budget, used, f"x{r['rate_factor']:g}",
            f"{r['paused_for_s']:g}s" if r["paused_for_s"] else "-",
            f"{r['waiting']} ({r['waiting_owners']} owners)" if r["waiting"] else "0",
            str(r["granted"]), str(r["throttled"]), str(r["self_inflicted"]), not_served,
        ])
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *body])
