"""The DrawdownMonitor's pure parts: one figure's trigger episode, and its state file's format.

No actor, no clock, no I/O: the monitor reads and writes the file (``xorj_actors.durable_file.atomic_write``),
this module says what is in it and refuses anything it would not have written.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_VAULT_ID", "CorruptState", "DrawdownState", "Episode", "decode_state", "encode_state"]

#: Longest vault id the monitor accepts (and a state file may name).
MAX_VAULT_ID = 128
_STATE_VERSION = 1


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


class CorruptState(ValueError):
    """The state file holds something the monitor would never have written."""


@dataclass(frozen=True, slots=True)
class DrawdownState:
    """What survives a restart: the unit value, its peak, the day start, episodes, every vault.

    ``drawdown`` and ``daily_loss`` are each episode's (latched, level); ``vaults`` maps a vault
    id to its last (value in USD, time of that value).
    """

    index: float
    peak: float
    day: int | None
    day_index: float
    peak_usd_at_zero: float
    day_usd_at_zero: float
    drawdown: tuple[bool, float]
    daily_loss: tuple[bool, float]
    vaults: dict[str, tuple[float, float]]


def encode_state(state: DrawdownState, saved_at: float) -> str:
    """The state file's text (compact JSON; ValueError for a non-finite number)."""
    return json.dumps(
        {
            "version": _STATE_VERSION,
            "saved_at": saved_at,
            "index": state.index,
            "peak": state.peak,
            "day": state.day,
            "day_index": state.day_index,
            "peak_usd_at_zero": state.peak_usd_at_zero,
            "day_usd_at_zero": state.day_usd_at_zero,
            "drawdown": list(state.drawdown),
            "daily_loss": list(state.daily_loss),
            "vaults": {vid: list(entry) for vid, entry in state.vaults.items()},
        },
        allow_nan=False,
        separators=(",", ":"),
    )


def decode_state(text: str) -> DrawdownState:
    """Parse and check a state file's text.

    Raises:
        ValueError: not JSON, or :class:`CorruptState` naming what is wrong.
        KeyError, TypeError: a field missing or of another shape.
    """
    data: Any = json.loads(text)

    def number(value: Any, what: str, low: float = 0.0) -> float:
        if type(value) not in (int, float) or not math.isfinite(value) or value < low:
            raise CorruptState(f"{what}: {value!r}")
        return float(value)

    def episode(value: Any, what: str) -> tuple[bool, float]:
        if not (isinstance(value, list) and len(value) == 2 and type(value[0]) is bool):
            raise CorruptState(f"{what}: {value!r}")
        return value[0], number(value[1], what)

    if not isinstance(data, dict) or data.get("version") != _STATE_VERSION:
        raise CorruptState(f"not a version {_STATE_VERSION} state")
    index = number(data["index"], "index")
    peak = number(data["peak"], "peak")
    day_index = number(data["day_index"], "day_index")
    day = data["day"]
    if day is not None and type(day) is not int:
        raise CorruptState(f"day: {day!r}")
    if peak <= 0 or index > peak * (1 + 1e-9):
        raise CorruptState(f"index {index!r} above peak {peak!r}")
    drawdown, daily_loss = episode(data["drawdown"], "drawdown"), episode(data["daily_loss"], "daily_loss")
    raw_vaults = data["vaults"]
    if not isinstance(raw_vaults, dict):
        raise CorruptState("vaults: not an object")
    vaults = {}
    for vid, entry in raw_vaults.items():
        if not isinstance(entry, list) or len(entry) != 2 or not 0 < len(vid) <= MAX_VAULT_ID:
            raise CorruptState(f"vault {vid!r}: {entry!r}")
        vaults[vid] = (number(entry[0], f"vault {vid} value"), number(entry[1], f"vault {vid} at", low=-math.inf))
    return DrawdownState(
        index=index,
        peak=peak,
        day=day,
        day_index=day_index,
        peak_usd_at_zero=number(data["peak_usd_at_zero"], "peak_usd_at_zero"),
        day_usd_at_zero=number(data["day_usd_at_zero"], "day_usd_at_zero"),
        drawdown=drawdown,
        daily_loss=daily_loss,
        vaults=vaults,
    )
