"""Risk profiles, trader selection at the thresholds' edges, the strategy board, the settings."""

from __future__ import annotations

import dataclasses
import tomllib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from supervisors import Message
from xorj_actors._settings import ConfigError, build_section
from xorj_actors.strategy import (
    DEFAULT_PROFILES,
    RankedTrader,
    RiskProfile,
    StrategyBoard,
    StrategySettings,
    StrategySnapshot,
    Target,
    TargetAllocation,
    select_trader,
)

CONSERVATIVE, MODERATE, AGGRESSIVE = DEFAULT_PROFILES
USDC = "3qJRCR3nQi62BnTJBbn4pkdwREp2jeFhB9zNDP6icqtU"


def trader(rank: int, trust: float) -> RankedTrader:
    return RankedTrader(
        rank=rank, wallet=f"wallet-{rank}", trust_score=trust, allocation=(TargetAllocation(mint=USDC, weight=1.0),),
        roi=0.1, sharpe_ratio=1.0, max_drawdown=0.1, win_rate=0.5, trade_count=10, period_days=90,
    )


def snapshot(*trusts: float, fetched_at: float = 1000.0, round_: int = 4) -> StrategySnapshot:
    return StrategySnapshot(
        round=round_, scenario="rotation", generated_at="2026-11-21T20:43:27Z", fetched_at=fetched_at,
        traders=tuple(trader(i, t) for i, t in enumerate(trusts, 1)),
    )


def test_the_default_profiles_are_the_issues() -> None:
    assert [(p.name, p.min_trust_score, p.slippage_bps) for p in DEFAULT_PROFILES] == [
        ("conservative", 95.0, 50), ("moderate", 90.0, 100), ("aggressive", 85.0, 200)]


@pytest.mark.parametrize(
    ("trust", "expected"),
    [
        (95.01, ("conservative", "moderate", "aggressive")),
        (95.0, ("moderate", "aggressive")),  # strictly above: 95 is not above 95
        (90.01, ("moderate", "aggressive")),
        (90.0, ("aggressive",)),
        (85.01, ("aggressive",)),
        (85.0, ()),
        (0.0, ()),
        (100.0, ("conservative", "moderate", "aggressive")),
    ],
)
def test_a_trader_qualifies_only_strictly_above_a_profiles_minimum(trust: float, expected: tuple[str, ...]) -> None:
    snap = snapshot(trust)
    assert tuple(p.name for p in DEFAULT_PROFILES if snap.trader_for(p) is not None) == expected


def test_each_profile_takes_the_best_ranked_qualifying_trader_not_the_most_trusted() -> None:
    snap = snapshot(88.0, 92.5, 99.0, 96.0)
    assert snap.trader_for(AGGRESSIVE).rank == 1
    assert snap.trader_for(MODERATE).rank == 2
    assert snap.trader_for(CONSERVATIVE).rank == 3


@settings(max_examples=300, deadline=None)
@given(
    trusts=st.lists(st.floats(0, 100, allow_nan=False), max_size=12),
    threshold=st.floats(0, 100, allow_nan=False),
)
def test_selection_is_the_first_trader_strictly_above(trusts: list[float], threshold: float) -> None:
    traders = tuple(trader(i, t) for i, t in enumerate(trusts, 1))
    chosen = select_trader(traders, RiskProfile("p", threshold, 50))
    above = [t for t in traders if t.trust_score > threshold]
    assert chosen == (above[0] if above else None)
    if chosen is not None:
        assert all(t.trust_score <= threshold for t in traders[: chosen.rank - 1])


# -- the board ---------------------------------------------------------------------------------


def test_an_empty_board_is_not_fresh_and_every_profile_holds() -> None:
    board = StrategyBoard(900.0, clock=lambda: 1000.0)
    assert board.latest is None and not board.fresh() and board.age() is None
    target = board.target_for(CONSERVATIVE)
    assert target.trader is None and target.round is None and target.reason.startswith("no strategy yet")


def test_freshness_ends_exactly_at_stale_after_s() -> None:
    now = [1000.0]
    board = StrategyBoard(900.0, clock=lambda: now[0])
    board.publish(snapshot(96.0, fetched_at=1000.0))
    assert board.fresh() and board.fresh(1899.999) and board.age() == 0.0
    assert not board.fresh(1900.0) and not board.fresh(5000.0)
    now[0] = 1899.5
    assert board.target_for(CONSERVATIVE).trader.rank == 1
    now[0] = 1900.0
    target = board.target_for(CONSERVATIVE)
    assert target.trader is None and target.round == 4
    assert target.reason == "strategy stale: last good response 900 s ago (limit 900 s)"
    assert board.latest is not None  # kept


def test_a_profile_without_a_trader_holds_and_says_why() -> None:
    board = StrategyBoard(900.0, clock=lambda: 1000.0)
    board.publish(snapshot(93.0, 91.0))
    target = board.target_for(CONSERVATIVE)
    assert target.trader is None
    assert target.reason == "no trader with trust score above 95 for profile conservative in round 4"
    assert board.target_for(MODERATE).trader.rank == 1


def test_the_target_is_the_snapshots_trader_for_the_profile_of_one_read() -> None:
    board = StrategyBoard(900.0, clock=lambda: 1000.0)
    latest = snapshot(89.0, 94.0, 96.0, round_=7)  # each profile finds another trader first
    board.publish(latest)
    for profile in DEFAULT_PROFILES:
        assert board.target_for(profile) == Target(trader=latest.trader_for(profile), reason="", round=7, fresh=True)
    ranks = [board.target_for(p).trader.rank for p in (CONSERVATIVE, MODERATE, AGGRESSIVE)]
    assert ranks == [3, 2, 1]


def test_an_explicit_now_overrides_the_boards_clock() -> None:
    board = StrategyBoard(900.0, clock=lambda: 1000.0)
    board.publish(snapshot(96.0, fetched_at=1000.0))
    assert board.target_for(CONSERVATIVE, now=1899.0).trader.rank == 1
    assert board.target_for(CONSERVATIVE, now=2000.0).reason == (
        "strategy stale: last good response 1000 s ago (limit 900 s)"
    )
    assert board.target_for(CONSERVATIVE, now=500.0).trader.rank == 1, "a response from our future is fresh"
    assert board.fresh(500.0)


def test_the_board_refuses_a_nonsense_limit() -> None:
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="stale_after_s"):
            StrategyBoard(bad)


def test_snapshots_and_profiles_are_immutable_messages() -> None:
    snap = snapshot(96.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.round = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        StrategySnapshot(round=1, scenario="s", generated_at="t", fetched_at=1.0, traders=[trader(1, 96.0)])  # type: ignore[arg-type]

    class UsesProfile(Message):  # a vault's message may carry its profile
        profile: RiskProfile

    assert UsesProfile(profile=CONSERVATIVE).profile is CONSERVATIVE


# -- settings ----------------------------------------------------------------------------------


def build(toml: str) -> StrategySettings:
    return build_section(StrategySettings, tomllib.loads(toml).get("strategy", {}), "strategy")


def test_settings_defaults_are_valid() -> None:
    s = build("")
    assert s == StrategySettings()
    assert (s.url, s.api_key_env, s.poll_interval_s, s.stale_after_s, s.weight_tolerance) == (
        "", "XORJ_QUANT_API_KEY", 300.0, 900.0, 1e-6)
    assert s.profiles == DEFAULT_PROFILES


def test_profiles_come_from_toml_tables() -> None:
    s = build(
        '[strategy]\nurl = "https://quant.internal:8443"\n'
        '[[strategy.profiles]]\nname = "careful"\nmin_trust_score = 97.5\nslippage_bps = 25\n'
        '[[strategy.profiles]]\nname = "bold"\nmin_trust_score = 80\nslippage_bps = 300\n'
    )
    assert s.profiles == (RiskProfile("careful", 97.5, 25), RiskProfile("bold", 80.0, 300))
    assert s.profile("bold").slippage_bps == 300
    with pytest.raises(KeyError, match="configured: careful, bold"):
        s.profile("conservative")


def profile_toml(name: str = "p", trust: Any = 90, slippage: Any = 100) -> str:
    return f'[[strategy.profiles]]\nname = "{name}"\nmin_trust_score = {trust}\nslippage_bps = {slippage}\n'


@pytest.mark.parametrize(
    ("toml", "match"),
    [
        (profile_toml() + profile_toml(), "strategy.profiles: profile names must be distinct"),
        (profile_toml(trust=100.5), "strategy.profiles[0].min_trust_score: must be a number in [0, 100]"),
        (profile_toml(trust=-1), "strategy.profiles[0].min_trust_score"),
        (profile_toml(slippage=0), "strategy.profiles[0].slippage_bps: must be between 1 and 10000"),
        (profile_toml(slippage=10001), "strategy.profiles[0].slippage_bps"),
        (profile_toml(slippage=1.5), "strategy.profiles[0].slippage_bps: expected an integer"),
        (profile_toml(name="Conservative!"), "strategy.profiles[0].name"),
        ('[[strategy.profiles]]\nname = "p"\nmin_trust_score = 90\n', "strategy.profiles[0].slippage_bps: required key is missing"),
        ("[strategy]\nprofiles = []\n", "strategy.profiles: at least one profile is required"),
        ('[strategy]\nurl = "ftp://x"\n', "strategy.url: must be empty or an http"),
        ('[strategy]\napi_key_env = "1BAD"\n', "strategy.api_key_env"),
        ("[strategy]\npoll_interval_s = 0\n", "strategy.poll_interval_s: must be > 0"),
        ("[strategy]\nrequest_timeout_s = -1\n", "strategy.request_timeout_s"),
        ("[strategy]\nstale_after_s = 300\n", "strategy.stale_after_s: must be > poll_interval_s"),
        ("[strategy]\nretry_interval_s = 600\n", "strategy.retry_interval_s: must be <= poll_interval_s"),
        ("[strategy]\nweight_tolerance = 0\n", "strategy.weight_tolerance"),
        ("[strategy]\nweight_tolerance = 0.1\n", "strategy.weight_tolerance"),
        ("[strategy]\nmax_response_bytes = 10\n", "strategy.max_response_bytes"),
        ("[strategy]\npoll_intervall_s = 5\n", "did you mean 'poll_interval_s'"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(toml: str, match: str) -> None:
    with pytest.raises(ConfigError) as info:
        build(toml)
    assert match in str(info.value), str(info.value)


def test_profiles_built_in_code_are_validated_too() -> None:
    with pytest.raises(ValueError, match=r"profiles\[1\]\.min_trust_score"):
        StrategySettings(profiles=(CONSERVATIVE, RiskProfile("x", float("nan"), 50))).validate()
