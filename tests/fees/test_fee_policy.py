"""The fee policy, pure: percentiles, value tiers, escalation to the cap, and its config."""

from __future__ import annotations

import math

import pytest

from xorj_actors._settings import ConfigError, build_section
from xorj_actors.fees import FeePolicy, FeeProvider, FeeSample, FeeSettings, FeeTier, PriorityLevel, percentile

TIERS = (
    FeeTier(min_value_usd=0.0, percentile=50, level=PriorityLevel.MEDIUM),
    FeeTier(min_value_usd=1_000.0, percentile=75, level=PriorityLevel.HIGH),
    FeeTier(min_value_usd=10_000.0, percentile=95, level=PriorityLevel.VERY_HIGH),
)


def policy(**changes: object) -> FeePolicy:
    return FeePolicy(FeeSettings(**{"tiers": TIERS, **changes}))  # type: ignore[arg-type]


def test_percentile_is_the_nearest_rank_of_fees_actually_paid() -> None:
    fees = [0, 0, 0, 5_000, 1_000, 20_000, 0, 3_000, 0, 10_000]  # ten slots, unsorted
    assert percentile(fees, 0) == 0
    assert percentile(fees, 50) == 0  # rank 5 of 0,0,0,0,0,1000,...
    assert percentile(fees, 60) == 1_000
    assert percentile(fees, 75) == 5_000  # rank ceil(7.5) = 8
    assert percentile(fees, 95) == 20_000
    assert percentile(fees, 100) == 20_000
    assert percentile([], 90) == 0
    assert percentile([7], 0) == percentile([7], 100) == 7


@pytest.mark.parametrize("bad", [-1, 101])
def test_percentile_outside_0_to_100_is_refused(bad: int) -> None:
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile([1, 2], bad)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.0, 0.0), (999.99, 0.0), (1_000.0, 1_000.0), (9_999.0, 1_000.0), (10_000.0, 10_000.0), (1e9, 10_000.0)],
)
def test_a_trade_gets_the_tier_of_its_value(value: float, expected: float) -> None:
    assert policy().tier_for(value).min_value_usd == expected


@pytest.mark.parametrize("bad", [math.nan, -1.0, math.inf])
def test_a_bad_value_gets_the_highest_tier(bad: float) -> None:
    assert policy().tier_for(bad) is TIERS[-1]


def test_the_base_is_the_tiers_percentile_or_level() -> None:
    fees = tuple(range(0, 100_000, 1_000))  # 100 slots: 0, 1000, ..., 99000
    rpc = policy()
    assert [rpc.base_for(t, FeeSample(slot_fees=fees)) for t in TIERS] == [49_000, 74_000, 94_000]
    levels = {level: (i + 1) * 10 for i, level in enumerate(PriorityLevel)}
    estimate = policy(provider=FeeProvider.ESTIMATE)
    assert [estimate.base_for(t, FeeSample(levels=levels)) for t in TIERS] == [30, 40, 50]
    with pytest.raises(ValueError, match="no VeryHigh level"):
        estimate.base_for(TIERS[2], FeeSample(levels={PriorityLevel.MEDIUM: 1}))


def test_each_attempt_after_an_expiry_pays_the_factor_more_until_the_cap() -> None:
    p = policy(escalation=1.5, cap_micro_lamports=50_000, escalation_floor_micro_lamports=1_000)
    prices = [p.escalate(10_000, n) for n in range(1, 8)]
    assert prices == [10_000, 15_000, 22_500, 33_750, 50_000, 50_000, 50_000]
    # The first attempt never pays more than the cap either.
    assert p.escalate(80_000, 1) == 50_000
    # A huge attempt number stops at the cap without computing 1.5 ** 10**6.
    assert p.escalate(10_000, 10**6) == 50_000


def test_a_zero_base_still_rises_on_retry_from_the_floor() -> None:
    p = policy(escalation=2.0, escalation_floor_micro_lamports=1_000)
    assert [p.escalate(0, n) for n in (1, 2, 3)] == [0, 2_000, 4_000]


def test_escalation_rounds_up_in_whole_micro_lamports() -> None:
    p = policy(escalation=1.1, escalation_floor_micro_lamports=0)
    # 1001 * 1.1 = 1101.1 -> 1102; 1102 * 1.1 = 1212.2 -> 1213 (never a float like 1101.1000000000001)
    assert [p.escalate(1_001, n) for n in (2, 3)] == [1_102, 1_213]
    assert all(isinstance(p.escalate(1_001, n), int) for n in range(1, 5))


def test_price_for_combines_tier_attempt_and_sample() -> None:
    p = policy(escalation=2.0, cap_micro_lamports=100_000)
    sample = FeeSample(slot_fees=(1_000, 2_000, 3_000, 4_000))
    assert p.price_for(TIERS[0], 1, sample) == 2_000
    assert p.price_for(TIERS[2], 1, sample) == 4_000
    assert p.price_for(TIERS[2], 3, sample) == 16_000


@pytest.mark.parametrize(("base", "attempt"), [(-1, 1), (1, 0), (1, True), (1.5, 1)])
def test_bad_attempts_and_bases_are_refused(base: object, attempt: object) -> None:
    with pytest.raises(ValueError):
        policy().escalate(base, attempt)  # type: ignore[arg-type]


def test_config_section_parses_enums_and_tiers() -> None:
    settings = build_section(
        FeeSettings,
        {
            "provider": "estimate",
            "estimate_url": "https://mainnet.helius-rpc.com/",
            "cap_micro_lamports": 200_000,
            "escalation": 2,
            "tiers": [
                {"min_value_usd": 0, "percentile": 50, "level": "Medium"},
                {"min_value_usd": 5_000, "percentile": 90, "level": "VeryHigh"},
            ],
        },
        "execution.fees",
    )
    assert settings.provider is FeeProvider.ESTIMATE
    assert settings.tiers[1].level is PriorityLevel.VERY_HIGH
    assert settings.escalation == 2.0


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"provider": "helius"}, "provider: must be one of 'rpc', 'estimate'"),
        ({"tiers": [{"min_value_usd": 0, "percentile": 50, "level": "Urgent"}]}, "level: must be one of"),
        ({"tiers": [{"min_value_usd": 10, "percentile": 50}]}, "must start at min_value_usd = 0"),
        ({"tiers": [{"min_value_usd": 0, "percentile": 101}]}, "tiers\\[0\\].percentile"),
        (
            {"tiers": [{"min_value_usd": 0, "percentile": 90}, {"min_value_usd": 10, "percentile": 50}]},
            "must not decrease",
        ),
        ({"escalation": 0.9}, "escalation: must be between 1 and 10"),
        ({"cap_micro_lamports": 0}, "cap_micro_lamports"),
        ({"escalation_floor_micro_lamports": 2_000_000}, "escalation_floor_micro_lamports"),
        ({"estimate_url": "mainnet.helius-rpc.com"}, "estimate_url: must be an http"),
        ({"cache_s": 120}, "cache_s"),
    ],
)
def test_bad_config_is_refused_with_the_key_named(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_section(FeeSettings, table, "execution.fees")
