"""Liquidation after extended downtime: the pure rule (the kill switch acts on it, ``_liquidating``).

How long was the engine down? ``now`` (the wall clock at start) minus ``last_alive``: the time of
the audit chain's last kill-switch entry before this start, or of its last ``alive`` entry after
that (actor ``kill_switch_alive``: written every ``alive_every_s``, so a running engine's chain is
never older than that; ``xorj_actors.audit.read_halt_history`` reads both). That record
is hash-chained and MACed: an edited entry fails its HMAC, the history is not trusted and the
kill switch starts TRIGGERED (a halt wins: nothing is flattened); a forged, newer entry needs the
audit key. State files and heartbeats are not used: a file that can be edited must not be able to
trigger or suppress a liquidation. A FLATTEN verdict rests on one wall-clock reading: the kill
switch halts at once, but sells nothing until the chain's clock confirms the downtime too
(``_liquidating``). See docs/RISK.md ("Liquidation after extended downtime").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from xorj_actors.kill_switch._state import KillSwitchState
from xorj_actors.kill_switch.settings import DowntimeLiquidationSettings

__all__ = ["DOWNTIME_OPERATOR", "KILL_SWITCH_ALIVE", "DowntimeAction", "DowntimeVerdict", "judge_downtime"]

#: ``what`` of the kill switch's periodic liveness entry (``alive_every_s``), read back at start.
KILL_SWITCH_ALIVE = "alive"

#: ``operator`` of the policy's flatten (its audit entries and ``ctl status`` name it).
DOWNTIME_OPERATOR = "downtime-liquidation"


class DowntimeAction(enum.StrEnum):
    OFF = "off"  #: the policy is disabled
    NO_RECORD = "no_record"  #: no start that wrote ``alive`` entries yet (a first start, an upgrade): not downtime
    WITHIN = "within"  #: down no longer than the limit (or the wall clock behind the log: audited)
    FLATTEN = "flatten"  #: halt (MAINTENANCE) and flatten the chosen vaults
    SKIPPED = "skipped"  #: down too long, but a halt is in force or starting: the halt wins


@dataclass(frozen=True, slots=True)
class DowntimeVerdict:
    action: DowntimeAction
    why: str
    down_s: float | None = None
    limit_s: float = 0.0
    vaults: tuple[str, ...] = ()  #: the chosen vaults; empty: every vault running here

    @property
    def audited(self) -> bool:
        """Whether the verdict is worth an audit entry: down too long, whatever was done, or a
        wall clock behind the log's last entry (a clock set back, or a forged entry from the future)."""
        behind = self.down_s is not None and self.down_s < 0
        return behind or self.action in (DowntimeAction.FLATTEN, DowntimeAction.SKIPPED)

    def details(self) -> dict[str, Any]:
        """The decision's audit entry."""
        return {
            "what": "downtime liquidation " + ("decided" if self.action is DowntimeAction.FLATTEN else "skipped"),
            "down_s": None if self.down_s is None else round(self.down_s, 3),
            "max_downtime_s": self.limit_s,
            "vaults": list(self.vaults) or "all",
            "why": self.why,
        }


def judge_downtime(
    settings: DowntimeLiquidationSettings,
    *,
    last_alive: float | None,
    seen_alive: bool,
    now: float,
    state: KillSwitchState,
    halt: str | None,
) -> DowntimeVerdict:
    """What the policy does at this start.

    Args:
        settings: ``[kill_switch.downtime_liquidation]``.
        last_alive: the wall-clock time (epoch seconds) of the chain's last kill-switch entry
            before this start; None: none (an empty log).
        seen_alive: a previous start said it writes ``alive`` entries (its "kill switch started"
            entry names ``alive_every_s``).
        now: the wall clock now.
        state: the kill switch's state as it starts.
        halt: why a halt is in force or starting (the state file's halt, ``KILL_SWITCH_ACTIVE``, a
            cluster halt), or None.
    """
    limit = settings.max_downtime_s
    vaults = () if isinstance(settings.vaults, str) else tuple(settings.vaults)
    if not settings.enabled:
        return DowntimeVerdict(DowntimeAction.OFF, "the policy is off", limit_s=limit, vaults=vaults)
    if last_alive is None or not seen_alive:
        # Without an ``alive`` record the chain cannot say the engine was down rather than idle.
        return DowntimeVerdict(DowntimeAction.NO_RECORD, "no liveness record in the audit log", limit_s=limit, vaults=vaults)
    down = now - last_alive
    if down <= limit:
        why = f"down {down:.1f} s, not over {limit:g} s" if down >= 0 else f"the wall clock is {-down:.1f} s behind the last entry"
        return DowntimeVerdict(DowntimeAction.WITHIN, why, down, limit, vaults)
    over = f"down {down:.1f} s > {limit:g} s"
    if halt is not None:
        return DowntimeVerdict(DowntimeAction.SKIPPED, f"{over}, but halted: {halt}"[:500], down, limit, vaults)
    if state not in (KillSwitchState.ARMED, KillSwitchState.RECOVERY_PENDING):  # halted states carry a halt
        return DowntimeVerdict(DowntimeAction.SKIPPED, f"{over}, but the kill switch is {state.value}", down, limit, vaults)
    return DowntimeVerdict(DowntimeAction.FLATTEN, over, down, limit, vaults)
