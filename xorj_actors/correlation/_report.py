"""``ctl risk``'s ``correlation`` part: the clusters, their correlations and exposure against the limits."""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from xorj_actors.correlation._board import ExposureBoard

__all__ = ["correlation_report", "exposure_usd", "render_correlation"]

#: Vaults listed per cluster (the largest shares first); the rest are counted.
_TOP_VAULTS = 10


def _usd(value: Fraction) -> float:
    return round(float(value), 2)


def correlation_report(board: ExposureBoard) -> dict[str, Any]:
    """JSON-able: settings, the snapshot, and per cluster the held, reserved and per-vault exposure."""
    s, snap = board.settings, board.snapshot
    limit = s.global_max_usd or None
    waiting = board.unpublished()
    clusters = []
    for members, (held, reserved, per_vault) in board.exposure().items():
        shares = sorted(
            ((v, h, h / value if value > 0 else Fraction(0)) for v, (h, value) in per_vault.items()),
            key=lambda item: (-item[2], item[0]),
        )
        clusters.append({
            "members": list(members),
            "held_usd": _usd(held),
            "reserved_usd": _usd(reserved),
            "room_usd": None if limit is None else 0.0 if waiting else _usd(max(Fraction(repr(limit)) - held - reserved, Fraction(0))),
            "vaults": len(per_vault),
            "top_vaults": [{"vault_id": v, "held_usd": _usd(h), "share": round(float(sh), 4)} for v, h, sh in shares[:_TOP_VAULTS]],
        })
    return {
        "enabled": s.enabled,
        "threshold": s.threshold,
        "window_s": s.window_s,
        "min_samples": s.min_samples,
        "unknown_correlated": s.unknown_correlated,
        "per_vault_max_share": s.per_vault_max_share,
        "global_max_usd": limit,
        "unpublished": waiting if limit is not None else 0,
        "as_of": snap.as_of or None,
        "ticks": snap.ticks,
        "pairs": [{"a": p.a, "b": p.b, "correlation": p.value, "samples": p.samples} for p in snap.pairs],
        "clusters": clusters,
    }


def exposure_usd(board: ExposureBoard) -> dict[str, tuple[float, float]]:
    """For the metrics: ``"mintA+mintB"`` -> (held, reserved) USD across vaults, per current cluster."""
    return {"+".join(c): (float(held), float(reserved)) for c, (held, reserved) in board.totals().items()}


def render_correlation(r: Mapping[str, Any] | None) -> list[str]:
    """``ctl risk``'s lines for the correlation part (none when the engine has none)."""
    if r is None:
        return []
    if not r["enabled"]:
        return ["correlation   off ([correlation] enabled = false)"]
    limit = "none" if r["global_max_usd"] is None else f"${r['global_max_usd']:,.2f}"
    known = sum(1 for p in r["pairs"] if p["correlation"] is not None)
    lines = [
        f"correlation   {len(r['clusters'])} cluster(s) at >= {r['threshold']:g} from {r['ticks']} ticks"
        f"  ({known}/{len(r['pairs'])} pairs known)  per vault <= {r['per_vault_max_share']:.0%}  all vaults <= {limit}",
    ]
    if r.get("unpublished"):
        lines.append(f"  engine-wide room 0: {r['unpublished']} vault(s) have not published their holdings since start")
    corr = {(p["a"], p["b"]): p["correlation"] for p in r["pairs"]}
    for c in r["clusters"]:
        m = c["members"]
        links = ", ".join(
            f"{a[:6]}~{b[:6]} {corr[(a, b)]:+.2f}" for i, a in enumerate(m) for b in m[i + 1 :] if corr.get((a, b)) is not None
        )
        room = "-" if c["room_usd"] is None else f"${c['room_usd']:,.2f}"
        top = c["top_vaults"][0] if c["top_vaults"] else None
        lines.append(
            f"  {' + '.join(x[:6] for x in m)}: held ${c['held_usd']:,.2f}  reserved ${c['reserved_usd']:,.2f}"
            f"  room {room}  {c['vaults']} vault(s)"
            + (f", largest {top['vault_id']} {top['share']:.1%}" if top else "")
        )
        if links:
            lines.append(f"    {links}")
    return lines
