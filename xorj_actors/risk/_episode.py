"""A risk figure's trigger episode: fire on a breach, again on each escalation step, re-arm below.

Pure and without a clock: the DrawdownMonitor keeps one per figure (drawdown, daily loss) and
persists ``latched`` and ``level`` so that a restart does not fire twice for the same loss.
See docs/RISK.md ("Episodes").
"""

from __future__ import annotations

__all__ = ["Episode"]


class Episode:
    """One figure's trigger state: fires on breach, again on each escalation step, re-arms below."""

    __slots__ = ("latched", "level", "threshold")

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.latched = False
        self.level = 0.0  # the figure when it last fired

    def update(self, value: float, margin: float, step: float) -> str | None:
        """``"breach"`` or ``"escalation"`` when the figure must fire now, else None."""
        if not self.latched:
            if value >= self.threshold:
                self.latched, self.level = True, value
                return "breach"
            return None
        if value < self.threshold - margin:
            self.latched = False
            return None
        if value >= self.level + step:
            self.level = value
            return "escalation"
        return None
