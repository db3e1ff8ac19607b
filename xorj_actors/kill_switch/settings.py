"""``[kill_switch]``: halt triggers, acknowledgement deadline and recovery (see docs/KILL_SWITCH.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["DowntimeLiquidationSettings", "KillSwitchSettings"]


@dataclass(frozen=True, slots=True)
class DowntimeLiquidationSettings:
    """``[kill_switch.downtime_liquidation]``: flatten chosen vaults after a long downtime (docs/RISK.md).

    Off by default: flattening users' funds is a decision with a price.
    """

    enabled: bool = False
    #: Down longer than this (now minus the audit chain's last kill-switch or ``alive`` entry, confirmed by the chain's clock) and the policy acts.
    max_downtime_s: float = 3600.0
    #: ``"all"`` (every vault running on this node) or a list of vault ids.
    vaults: str | tuple[str, ...] = "all"
    #: How long the start waits for the chosen vaults to register (``"all"``: waits it in full).
    start_grace_s: float = 30.0

    def describe(self) -> str:
        """One line for ``check``: on or off, the limit and the vaults."""
        if not self.enabled:
            return "off (the default): a restart after any downtime flattens nothing"
        vaults = "every vault running on this node" if isinstance(self.vaults, str) else ", ".join(self.vaults)
        return f"ON: a start after more than {self.max_downtime_s:g} s down halts and flattens {vaults}"

    def validate(self) -> None:
        if not math.isfinite(self.max_downtime_s) or not 1 <= self.max_downtime_s <= 31_536_000:
            raise ValueError("max_downtime_s: must be between 1 and 31536000 seconds (a year)")
        if isinstance(self.vaults, str):
            if self.vaults != "all":
                raise ValueError(f'vaults: must be "all" or a list of vault ids, got {self.vaults[:40]!r}')
        else:
            if not self.vaults:
                raise ValueError('vaults: an empty list chooses nothing (use "all", or enabled = false)')
            bad = [v for v in self.vaults if not v.strip() or v != v.strip() or ":" in v or len(v) > 64]
            if bad:
                raise ValueError(f"vaults: not a vault id: {bad[0][:40]!r}")
            if len(set(self.vaults)) != len(self.vaults):
                raise ValueError("vaults: listed twice: " + next(v for v in self.vaults if self.vaults.count(v) > 1))
        if not math.isfinite(self.start_grace_s) or not 1 <= self.start_grace_s <= 600:
            raise ValueError("start_grace_s: must be between 1 and 600 seconds")


@dataclass(frozen=True, slots=True)
class KillSwitchSettings:
    """``[kill_switch]``: halt triggers, acknowledgement deadline and recovery."""

    #: State file, relative to the data directory.
    state_file: str = "kill_switch.json"
    #: Kill file: its existence triggers a graceful halt. Relative to the data directory.
    kill_file: str = "KILL"
    kill_file_poll_s: float = 0.25
    #: Every live actor must acknowledge a halt within this deadline, or it is replaced.
    ack_deadline_s: float = 1.0
    #: Recovery needs HMAC authorisations from `recovery_threshold` of these key holders.
    recovery_threshold: int = 2
    #: Names of the environment variables holding the recovery keys (one per key holder).
    recovery_key_envs: tuple[str, ...] = (
        "XORJ_RECOVERY_KEY_1",
        "XORJ_RECOVERY_KEY_2",
        "XORJ_RECOVERY_KEY_3",
    )
    #: Seconds after the trigger before recovery is accepted.
    cooldown_s: float = 300.0
    #: Position-limit factors of the gradual restart, the last one must be 1.0.
    restart_factors: tuple[float, ...] = (0.5, 0.75, 1.0)
    restart_step_s: float = 60.0
    #: A flatten (REDUCING) ends after this long even if some vaults have not reported.
    flatten_timeout_s: float = 300.0
    #: The kill switch writes an ``alive`` audit entry this often: the downtime policy's record of
    #: the last time the engine was up (docs/RISK.md, "Liquidation after extended downtime").
    alive_every_s: float = 60.0
    downtime_liquidation: DowntimeLiquidationSettings = field(default_factory=DowntimeLiquidationSettings)

    def validate(self) -> None:
        if not 0.05 <= self.kill_file_poll_s <= 0.5:
            raise ValueError("kill_file_poll_s: must be between 0.05 and 0.5 seconds")
        if self.ack_deadline_s <= 0:
            raise ValueError("ack_deadline_s: must be > 0")
        if not 1 <= self.recovery_threshold <= len(self.recovery_key_envs):
            raise ValueError("recovery_threshold: must be between 1 and the number of recovery keys")
        if len(set(self.recovery_key_envs)) != len(self.recovery_key_envs):
            raise ValueError("recovery_key_envs: names must be distinct")
        if self.cooldown_s < 0:
            raise ValueError("cooldown_s: must be >= 0")
        factors = self.restart_factors
        if not factors or factors[-1] != 1.0 or any(not 0 < f <= 1 for f in factors):
            raise ValueError("restart_factors: must be in (0, 1] and end with 1.0")
        if len(factors) < 2:  # recovery enters RECOVERY_PENDING at the first; only a later step arms
            raise ValueError("restart_factors: needs at least two steps (e.g. [1.0, 1.0] with restart_step_s = 0 to arm at once)")
        if list(factors) != sorted(factors):
            raise ValueError("restart_factors: must not decrease")
        if self.restart_step_s < 0:
            raise ValueError("restart_step_s: must be >= 0")
        if not 1 <= self.flatten_timeout_s <= 86_400:
            raise ValueError("flatten_timeout_s: must be between 1 and 86400 seconds")
        if not math.isfinite(self.alive_every_s) or not 0.05 <= self.alive_every_s <= 3600:
            raise ValueError("alive_every_s: must be between 0.05 and 3600 seconds")
        dl = self.downtime_liquidation
        try:
            dl.validate()
        except ValueError as exc:
            raise ValueError(f"downtime_liquidation.{exc}") from None
        if dl.enabled and dl.max_downtime_s < 2 * self.alive_every_s:
            # A crash and a quick restart must never look like downtime.
            raise ValueError("downtime_liquidation.max_downtime_s: must be at least twice alive_every_s")
