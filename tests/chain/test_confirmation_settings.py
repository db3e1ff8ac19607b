"""``[confirmation]``: the tiers, their selection, and validation naming the key."""

from __future__ import annotations

import math

import pytest

from xorj_actors._settings import ConfigError, build_section
from xorj_actors.chain import DEFAULT_TIERS, ConfirmationSettings, Tier, tier_for


def test_default_tiers_follow_the_policy() -> None:
    settings = ConfirmationSettings()
    settings.validate()
    cases = {
        0.0: (1, 60.0, False),
        99.99: (1, 60.0, False),
        100.0: (1, 120.0, False),
        999.99: (1, 120.0, False),
        1_000.0: (2, 180.0, False),
        9_999.99: (2, 180.0, False),
        10_000.0: (3, 300.0, True),
        5e9: (3, 300.0, True),
    }
    for value, expected in cases.items():
        tier = settings.tier_for(value)
        assert (tier.confirmations, tier.timeout_s, tier.finalized) == expected, value
        assert tier_for(value) == tier


@pytest.mark.parametrize("value", [math.nan, -1.0, math.inf, -math.inf])
def test_a_value_that_is_not_a_real_amount_gets_the_strictest_tier(value: float) -> None:
    assert tier_for(value) == DEFAULT_TIERS[-1]
    assert tier_for(value).finalized


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ((), "tiers: at least one tier"),
        ((Tier(10.0, 1, 60.0),), "tiers: the first tier must start at min_value_usd = 0"),
        ((Tier(0.0, 1, 60.0), Tier(0.0, 2, 60.0)), "tiers: duplicate min_value_usd 0"),
        ((Tier(0.0, 1, 60.0), Tier(500.0, 2, 60.0), Tier(100.0, 3, 60.0)), "tiers: must be sorted"),
        ((Tier(0.0, 2, 60.0), Tier(100.0, 1, 60.0)), "tiers: requirements must not decrease"),
        ((Tier(0.0, 1, 60.0, True), Tier(100.0, 1, 60.0)), "tiers: requirements must not decrease"),
        ((Tier(0.0, 0, 60.0),), "tiers[0].confirmations: must be between 1"),
        ((Tier(0.0, 1, 0.0),), "tiers[0].timeout_s: must be in (0, 3600]"),
        ((Tier(0.0, 1, 60.0), Tier(math.nan, 2, 60.0)), "tiers[1].min_value_usd: must be a finite number"),
    ],
)
def test_bad_tiers_are_refused_naming_the_problem(tiers: tuple[Tier, ...], message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        ConfirmationSettings(tiers=tiers).validate()
    assert str(excinfo.value).startswith(message)


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"reconnect_initial_s": 0.0}, "reconnect_initial_s"),
        ({"reconnect_initial_s": 6.0}, "reconnect_initial_s"),  # above reconnect_max_s
        ({"slot_stall_s": 0.0}, "slot_stall_s"),
        ({"poll_interval_s": 0.0}, "poll_interval_s"),
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"max_frame_bytes": 100}, "max_frame_bytes"),
        ({"http_timeout_s": 0.0}, "http_timeout_s"),
        ({"connect_timeout_s": 100.0}, "connect_timeout_s"),
    ],
)
def test_bad_values_are_refused_naming_the_key(changes: dict[str, float], key: str) -> None:
    with pytest.raises(ValueError, match=f"^{key}:"):
        ConfirmationSettings(**changes).validate()  # type: ignore[arg-type]


def test_the_section_loads_from_toml_tables() -> None:
    table = {
        "slot_stall_s": 5,
        "tiers": [
            {"min_value_usd": 0, "confirmations": 1, "timeout_s": 30},
            {"min_value_usd": 50_000, "confirmations": 4, "timeout_s": 600, "finalized": True},
        ],
    }
    settings = build_section(ConfirmationSettings, table, "confirmation")
    assert settings.slot_stall_s == 5.0
    assert settings.tier_for(49_999.0) == Tier(0.0, 1, 30.0)
    assert settings.tier_for(50_000.0) == Tier(50_000.0, 4, 600.0, True)
    with pytest.raises(ConfigError, match=r"^confirmation\.tiers: duplicate"):
        build_section(ConfirmationSettings, {"tiers": [table["tiers"][0], table["tiers"][0]]}, "confirmation")
    with pytest.raises(ConfigError, match=r"confirmation\.tiers\[0\]\.confirmations: expected an integer"):
        bad = {"tiers": [{"min_value_usd": 0, "confirmations": "1", "timeout_s": 1}]}
        build_section(ConfirmationSettings, bad, "confirmation")
