"""[breakers] settings: the SR-4 thresholds by default, strict loading, validation errors."""

from __future__ import annotations

from dataclasses import replace

import pytest

from xorj_actors._settings import ConfigError, build_section
from xorj_actors.breakers import BREAKERS, BreakerSettings, EscalationSettings, VolatilitySettings

#: SR-4: (window, max failures, max consecutive or 0).
SPEC = {
    "hsm_failure_rate": (600.0, 3, 0),
    "trade_failure_rate": (600.0, 5, 3),
    "network_connectivity": (300.0, 3, 2),
    "market_volatility": (1800.0, 10, 0),
    "slippage_rejections": (900.0, 8, 4),
    "system_errors": (1200.0, 10, 5),
    "confirmation_timeouts": (1800.0, 5, 3),
}


def test_the_seven_breakers_in_priority_order() -> None:
    assert BREAKERS == tuple(SPEC)
    assert BREAKERS[0] == "hsm_failure_rate"


@pytest.mark.parametrize("name", BREAKERS)
def test_defaults_are_the_sr4_thresholds(name: str) -> None:
    limits = BreakerSettings().limits(name)
    assert (limits.window_s, limits.max_failures, limits.max_consecutive) == SPEC[name]


def test_defaults_validate_and_escalate_hsm() -> None:
    s = BreakerSettings()
    s.validate()
    assert s.escalation.on_trip == ("hsm_failure_rate",) and s.escalation.on_trip_mode == "emergency"
    assert s.volatility.move_threshold == 0.5
    assert {n for n in BREAKERS if s.limits(n).blocks_reducing} == {"hsm_failure_rate", "system_errors"}


def test_a_partial_sub_table_keeps_that_breakers_own_defaults() -> None:
    s = build_section(BreakerSettings, {"trade_failure_rate": {"cool_off_s": 30}, "escalation": {"on_trip": []}}, "breakers")
    t = s.limits("trade_failure_rate")
    assert (t.window_s, t.max_failures, t.max_consecutive, t.cool_off_s) == (600.0, 5, 3, 30.0)
    assert s.escalation.on_trip == ()
    assert s.limits("hsm_failure_rate") == BreakerSettings().hsm_failure_rate


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"trade_failure_rate": {"window_s": 0}}, "breakers.trade_failure_rate.window_s: must be in (0, 86400]"),
        ({"system_errors": {"max_failures": 0}}, "breakers.system_errors.max_failures: must be between 1 and 10000"),
        ({"network_connectivity": {"max_consecutive": 4}}, "breakers.network_connectivity.max_consecutive: must be between 0 (none) and max_failures"),
        ({"hsm_failure_rate": {"max_consecutive": -1}}, "breakers.hsm_failure_rate.max_consecutive: must be between 0 (none) and max_failures"),
        ({"market_volatility": {"cool_off_s": -5}}, "breakers.market_volatility.cool_off_s: must be in (0, 86400]"),
        ({"slippage_rejections": {"probe_trades": 0}}, "breakers.slippage_rejections.probe_trades: must be between 1 and 100"),
        ({"confirmation_timeouts": {"probe_timeout_s": 0}}, "breakers.confirmation_timeouts.probe_timeout_s: must be in (0, 86400]"),
        ({"escalation": {"on_trip": ["hsm"]}}, "breakers.escalation.on_trip: unknown breaker(s) hsm"),
        ({"escalation": {"on_trip": ["system_errors", "system_errors"]}}, "breakers.escalation.on_trip: breakers must be distinct"),
        ({"escalation": {"concurrent_open": 1}}, "breakers.escalation.concurrent_open: must be between 2 and 7"),
        ({"escalation": {"retrip_window_s": 0}}, "breakers.escalation.retrip_window_s: must be in (0, 604800]"),
        ({"escalation": {"retrip_mode": "loud"}}, "breakers.escalation.retrip_mode: must be one of 'graceful', 'emergency'"),
        ({"volatility": {"move_threshold": 0}}, "breakers.volatility.move_threshold: must be in (0, 10]"),
        ({"hsm_failure_rate": {"window": 60}}, "breakers.hsm_failure_rate.window: unknown key (did you mean 'window_s'?)"),
        ({"hsm_failure_rates": {}}, "breakers.hsm_failure_rates: unknown key"),
        ({"trade_failure_rate": {"max_failures": "5"}}, "breakers.trade_failure_rate.max_failures: expected an integer"),
    ],
)
def test_bad_settings_name_the_key(table: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_section(BreakerSettings, table, "breakers")
    assert str(err.value).startswith(message)


def test_validate_covers_settings_built_in_code() -> None:
    base = BreakerSettings()
    bad = replace(base, slippage_rejections=replace(base.slippage_rejections, window_s=-1))
    with pytest.raises(ValueError, match=r"^slippage_rejections\.window_s: "):
        bad.validate()
    with pytest.raises(ValueError, match=r"^escalation\.concurrent_open: "):
        replace(base, escalation=EscalationSettings(concurrent_open=8)).validate()
    with pytest.raises(ValueError, match=r"^volatility\.move_window_s: "):
        replace(base, volatility=VolatilitySettings(move_window_s=0.5)).validate()
    with pytest.raises(KeyError, match="no breaker 'nope'"):
        base.limits("nope")
