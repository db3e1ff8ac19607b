"""The breaker table for operators (``ctl breakers``): rows from the board, and their rendering."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from xorj_actors.breakers._board import BreakerBoard
from xorj_actors.breakers._circuit import CircuitState
from xorj_actors.breakers.settings import BreakerSettings

__all__ = ["breaker_table", "render_breakers"]


def breaker_table(
    board: BreakerBoard, settings: BreakerSettings | None = None, *, clock: Callable[[], float] = time.monotonic
) -> list[dict[str, Any]]:
    """One JSON-ready row per breaker, in priority order, read from the board without a message.

    ``clock`` must be the breakers' clock (``opened_at`` is on it).
    """
    settings = BreakerSettings() if settings is None else settings
    snap = board.snapshot
    now = clock()
    rows = []
    for name in board.names:
        status = snap.statuses.get(name)
        limits = settings.limits(name)
        rows.append(
            {
                "breaker": name,
                "state": status.state if status is not None else "UNKNOWN",
                "running": name in snap.running,
                "blocking": name in snap.blocking,
                "generation": status.generation if status is not None else 0,
                "failures_in_window": status.failures_in_window if status is not None else 0,
                "max_failures": limits.max_failures,
                "window_s": limits.window_s,
                "consecutive": status.consecutive if status is not None else 0,
                "max_consecutive": limits.max_consecutive,
                "probes_allowed": status.probes_allowed if status is not None else 0,
                "open_for_s": (
                    round(now - status.opened_at, 1)
                    if status is not None and status.state != CircuitState.CLOSED and status.opened_at is not None
                    else None
                ),
                "reason": status.reason if status is not None else "",
            }
        )
    return rows


def render_breakers(rows: Sequence[dict[str, Any]]) -> str:
    """The rows of :func:`breaker_table` as a text table."""
    header = ["BREAKER", "STATE", "FAILURES", "CONSEC", "PROBES", "OPEN FOR", "GEN", "REASON"]
    body = []
    for r in rows:
        state = r["state"] if r["running"] else f"{r['state']} (not running)"
        consec = f"{r['consecutive']}/{r['max_consecutive']}" if r["max_consecutive"] else str(r["consecutive"])
        body.append(
            [
                r["breaker"],
                state,
                f"{r['failures_in_window']}/{r['max_failures']} in {r['window_s']:g}s",
                consec,
                str(r["probes_allowed"]) if r["state"] == CircuitState.HALF_OPEN else "-",
                f"{r['open_for_s']:g}s" if r["open_for_s"] is not None else "-",
                str(r["generation"]),
                r["reason"] or "-",
            ]
        )
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *body])
