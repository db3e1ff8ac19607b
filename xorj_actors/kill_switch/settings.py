"""``[kill_switch]``: halt triggers, acknowledgement deadline and recovery (see docs/KILL_SWITCH.md)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KillSwitchSettings"]


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
