"""RiskSettings: defaults, strict loading from TOML, and validation messages naming the key."""

from __future__ import annotations

import dataclasses
import tomllib

import pytest

from xorj_actors._settings import ConfigError, build_section
from xorj_actors.risk import DEFAULT_ESSENTIAL_ACTORS, RiskSettings


def test_defaults_are_valid_and_as_documented() -> None:
    s = RiskSettings()
    s.validate()
    assert (s.max_drawdown, s.max_daily_loss, s.rearm_margin, s.escalation_step) == (0.15, 0.10, 0.01, 0.05)
    assert (s.drawdown_mode, s.daily_loss_mode, s.heartbeat_mode, s.clock_skew_mode) == (
        "emergency", "emergency", "graceful", "graceful",
    )
    assert s.essential_actors == DEFAULT_ESSENTIAL_ACTORS == (
        "audit", "kill_switch", "signer:*", "confirmation", "executor", "strategy_feed",
    )
    assert (s.heartbeat_interval_s, s.heartbeat_timeout_s) == (2.0, 10.0)
    assert (s.clock_check_interval_s, s.max_clock_skew_s, s.clock_skew_consecutive) == (15.0, 30.0, 3)
    assert (s.drawdown_state_file, s.drawdown_persist_interval_s) == ("risk_drawdown.json", 5.0)


def test_a_toml_section_loads_strictly() -> None:
    table = tomllib.loads(
        """
        max_drawdown = 0.2
        heartbeat_mode = "emergency"
        essential_actors = ["audit", "signer:*"]
        clock_skew_consecutive = 5
        """
    )
    s = build_section(RiskSettings, table, "risk")
    assert s.max_drawdown == 0.2 and s.heartbeat_mode == "emergency" and s.essential_actors == ("audit", "signer:*")
    with pytest.raises(ConfigError, match=r"^risk\.max_drawdwn: unknown key \(did you mean 'max_drawdown'\?\)$"):
        build_section(RiskSettings, {"max_drawdwn": 0.2}, "risk")
    with pytest.raises(ConfigError, match=r"^risk\.heartbeat_mode: must be one of 'graceful', 'emergency'"):
        build_section(RiskSettings, {"heartbeat_mode": "hard"}, "risk")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_drawdown": 15.0}, "max_drawdown: must be a fraction in (0, 1), e.g. 0.15 for 15 %"),
        ({"max_daily_loss": 0.0}, "max_daily_loss: must be a fraction in (0, 1), e.g. 0.15 for 15 %"),
        ({"max_drawdown": float("nan")}, "max_drawdown: must be a finite number"),
        ({"rearm_margin": 0.2}, "rearm_margin: must be >= 0 and below both max_drawdown and max_daily_loss"),
        ({"escalation_step": 0.0}, "escalation_step: must be in (0, 1]"),
        ({"essential_actors": ()}, "essential_actors: name at least one actor (or set heartbeat_enabled = false)"),
        ({"essential_actors": ("audit", "audit")}, "essential_actors: names must be distinct"),
        ({"essential_actors": ("bad name",)}, "essential_actors: 'bad name' is not an actor name or pattern"),
        ({"heartbeat_timeout_s": 1.0, "heartbeat_interval_s": 2.0},
         "heartbeat_timeout_s: must be above heartbeat_interval_s and at most 3600 seconds"),
        ({"heartbeat_interval_s": 0.0}, "heartbeat_interval_s: must be between 0.01 and 60 seconds"),
        ({"max_clock_skew_s": 0.5}, "max_clock_skew_s: must be between 1 and 3600 seconds"),
        ({"clock_skew_consecutive": 0}, "clock_skew_consecutive: must be between 1 and 100"),
        ({"clock_rpc_timeout_s": 0.0}, "clock_rpc_timeout_s: must be in (0, 60] seconds"),
        ({"clock_check_interval_s": 0.0}, "clock_check_interval_s: must be between 0.01 and 3600 seconds"),
        ({"clock_lag_allowance_s": -0.1}, "clock_lag_allowance_s: must be between 0 and 10 seconds"),
        ({"clock_lag_allowance_s": float("nan")}, "clock_lag_allowance_s: must be a finite number"),
        ({"drawdown_mode": "hard"}, "drawdown_mode: must be 'graceful' or 'emergency'"),
        ({"clock_commitment": "processed"}, "clock_commitment: must be 'confirmed' or 'finalized'"),
        ({"trigger_retry_s": 0.0}, "trigger_retry_s: must be between 0.01 and 10 seconds"),
        ({"drawdown_state_file": "/var/risk.json"},
         "drawdown_state_file: must be a relative path inside the data directory (or empty)"),
        ({"drawdown_state_file": "../risk.json"},
         "drawdown_state_file: must be a relative path inside the data directory (or empty)"),
        ({"drawdown_persist_interval_s": 0.0}, "drawdown_persist_interval_s: must be between 0.1 and 300 seconds"),
    ],
)
def test_validation_names_the_key(changes: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        dataclasses.replace(RiskSettings(), **changes).validate()
    assert str(info.value) == message
