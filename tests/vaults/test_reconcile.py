"""plan_trades: the reconciliation rules, case by case (properties in test_reconcile_properties.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest

from xorj_actors.vaults._reconcile import PLAN_REFUSALS, PlannedTrade, SkipReason, TradePlan, plan_trades
from xorj_actors.vaults.settings import VaultSettings

USDC, JUP, BONK, SOL = "USDC", "JUP", "BONK", "SOL"
PRICES = {USDC: 1.0, JUP: 0.85, BONK: 0.000025, SOL: 150.0}
DECIMALS = {USDC: 6, JUP: 6, BONK: 5, SOL: 9}
SETTINGS = VaultSettings()
UNCAPPED = dataclasses.replace(SETTINGS, max_concentration=1.0)


def usdc(dollars: float) -> int:
    return round(dollars * 10**6)


def plan(
    holdings: Mapping[str, int],
    target: Mapping[str, float],
    settings: VaultSettings = SETTINGS,
    factor: float = 1.0,
    prices: Mapping[str, float] = PRICES,
    decimals: Mapping[str, int] = DECIMALS,
    **ids: Any,
) -> TradePlan:
    result = plan_trades(
        holdings,
        prices,
        decimals,
        USDC,
        target,
        settings,
        factor,
        ids.get("vault_id", "vault-0001"),
        ids.get("round_key", 7),
    )
    assert [t.index for t in result.trades] == list(range(len(result.trades)))
    return result


def reasons(result: TradePlan) -> list[tuple[SkipReason, str]]:
    return [(s.reason, s.mint) for s in result.skipped]


def legs(result: TradePlan) -> list[tuple[str, str, int]]:
    return [(t.input_mint, t.output_mint, t.amount_in) for t in result.trades]


# -- the example of the specification --------------------------------------------------------


def test_all_usdc_to_all_jup_swaps_all_usdc_when_uncapped() -> None:
    result = plan({USDC: usdc(10_000)}, {JUP: 1.0}, UNCAPPED)
    assert legs(result) == [(USDC, JUP, usdc(10_000))]
    assert result.trades[0] == PlannedTrade(
        trade_id="vault-0001:7:0",
        vault_id="vault-0001",
        round_key="7",
        input_mint=USDC,
        output_mint=JUP,
        amount_in=usdc(10_000),
        value_usd=10_000.0,
        reduces_exposure=False,
        index=0,
    )
    assert result.skipped == () and not result.refused
    assert result.stable_for_buys == result.stable_available == usdc(10_000)


def test_all_usdc_to_all_jup_is_capped_by_concentration() -> None:
    result = plan({USDC: usdc(10_000)}, {JUP: 1.0})
    assert legs(result) == [(USDC, JUP, usdc(6_000))]  # 60 %: the rest stays in USDC
    (cap,) = result.skipped
    assert (cap.reason, cap.mint, cap.value_usd) == (SkipReason.CONCENTRATION_CAP, JUP, 4_000.0)


# -- odd holdings ---------------------------------------------------------------------------


@pytest.mark.parametrize("holdings", [{}, {USDC: 0, JUP: 0, SOL: 0}])
def test_empty_vault_makes_no_trades(holdings: dict[str, int]) -> None:
    result = plan(holdings, {JUP: 0.5, USDC: 0.5}, prices={})  # no price needed for nothing
    assert result.trades == () and result.skipped == () and not result.refused
    assert result.value_usd == 0.0


def test_target_identical_to_holdings_makes_no_trades() -> None:
    holdings = {USDC: usdc(1_900), JUP: 6_000 * 10**6, SOL: 20 * 10**9}  # $1,900 + $5,100 + $3,000
    result = plan(holdings, {USDC: 0.19, JUP: 0.51, SOL: 0.30})
    assert result.trades == () and result.skipped == ()
    assert result.value_usd == 10_000.0


def test_token_the_target_no_longer_holds_is_sold_entirely() -> None:
    odd = 1_234_567_891  # 1,234.567891 JUP: any rounding of a value would leave some behind
    result = plan({USDC: usdc(50), JUP: odd, BONK: 0}, {USDC: 1.0})
    assert legs(result) == [(JUP, USDC, odd)]
    assert result.trades[0].reduces_exposure


def test_exit_bigger_than_max_trade_is_split_and_still_sells_every_unit() -> None:
    odd = 30_000 * 10**6 + 1  # $25,500.00000085 of JUP: three pieces
    result = plan({JUP: odd}, {USDC: 1.0})
    amounts = [t.amount_in for t in result.trades]
    assert sum(amounts) == odd and len(amounts) == 3
    assert max(amounts) - min(amounts) <= 1
    assert all(t.value_usd <= SETTINGS.max_trade_usd for t in result.trades)


def test_dust_is_ignored_and_reported() -> None:
    holdings = {USDC: usdc(1_000), JUP: 0}
    result = plan(holdings, {USDC: 0.9995, JUP: 0.0005})  # a $0.50 buy
    assert result.trades == ()
    ((reason, mint),) = reasons(result)
    assert (reason, mint) == (SkipReason.DUST, JUP)
    assert result.skipped[0].value_usd == pytest.approx(0.5)


def test_an_exit_worth_less_than_min_trade_is_dust_too() -> None:
    result = plan({USDC: usdc(1_000), BONK: 10_000 * 10**5}, {USDC: 1.0})  # 10,000 BONK = $0.25
    assert result.trades == ()
    assert reasons(result) == [(SkipReason.DUST, BONK)]


def test_all_in_one_volatile_token_rebalances_through_the_stablecoin() -> None:
    result = plan({SOL: 20 * 10**9}, {SOL: 0.5, JUP: 0.5})  # $3,000 of SOL
    assert [(t.input_mint, t.output_mint) for t in result.trades] == [(SOL, USDC), (USDC, JUP)]
    sell, buy = result.trades
    assert sell.amount_in == 10 * 10**9 and sell.value_usd == 1_500.0
    # The buy spends what the sell will bring, less the proceeds haircut (1 %), never more.
    assert buy.amount_in == result.stable_available == usdc(1_485)
    assert reasons(result) == [(SkipReason.INSUFFICIENT_STABLE, JUP)]


def test_all_in_one_volatile_token_above_the_cap_is_reduced_to_the_cap() -> None:
    result = plan({SOL: 20 * 10**9}, {SOL: 1.0})
    assert legs(result) == [(SOL, USDC, 8 * 10**9)]  # keep 60 %, sell 40 %
    assert reasons(result) == [(SkipReason.CONCENTRATION_CAP, SOL)]


# -- ordering and sizing --------------------------------------------------------------------


def test_sells_come_before_buys_largest_first() -> None:
    holdings = {USDC: usdc(1_000), JUP: 4_000 * 10**6, SOL: 20 * 10**9, BONK: 0}  # $1,000 / $3,400 / $3,000
    result = plan(holdings, {USDC: 0.1, BONK: 0.5, JUP: 0.3, SOL: 0.1})
    sides = [t.reduces_exposure for t in result.trades]
    assert sides == sorted(sides, reverse=True) and True in sides and False in sides
    sells = [t for t in result.trades if t.reduces_exposure]
    assert [t.input_mint for t in sells] == [SOL, JUP]  # $2,260 then $1,180
    assert [t.output_mint for t in result.trades if not t.reduces_exposure] == [BONK]


def test_buys_never_spend_more_stablecoin_than_the_sells_leave() -> None:
    holdings = {USDC: 0, JUP: 10_000 * 10**6, SOL: 0, BONK: 0}  # $8,500 of JUP
    result = plan(holdings, {SOL: 0.5, BONK: 0.5})
    sells = [t for t in result.trades if t.reduces_exposure]
    buys = [t for t in result.trades if not t.reduces_exposure]
    assert sum(t.amount_in for t in sells) == 10_000 * 10**6
    assert sum(t.amount_in for t in buys) == result.stable_for_buys <= result.stable_available
    assert result.stable_available == usdc(8_500) * 9_900 // 10_000
    assert {m for r, m in reasons(result) if r is SkipReason.INSUFFICIENT_STABLE} == {SOL, BONK}


def test_haircut_zero_lets_buys_spend_every_expected_unit() -> None:
    settings = dataclasses.replace(SETTINGS, proceeds_haircut_bps=0)
    result = plan({JUP: 10_000 * 10**6}, {SOL: 0.5, BONK: 0.5}, settings)
    assert result.stable_for_buys == usdc(8_500)


@pytest.mark.parametrize(
    ("units", "pieces"),
    [(usdc(10_000), [usdc(10_000)]), (usdc(10_000) + 1, [usdc(5_000) + 1, usdc(5_000)])],
)
def test_split_at_the_edge_of_max_trade(units: int, pieces: list[int]) -> None:
    result = plan({USDC: units}, {JUP: 1.0}, UNCAPPED)
    assert [t.amount_in for t in result.trades] == pieces
    assert [t.trade_id for t in result.trades] == [f"vault-0001:7:{i}" for i in range(len(pieces))]


@pytest.mark.parametrize(("units", "traded"), [(usdc(10_000), True), (usdc(10_000) + 1, False)])
def test_refuse_at_the_edge_of_max_trade(units: int, traded: bool) -> None:
    settings = dataclasses.replace(UNCAPPED, oversize="refuse")
    result = plan({USDC: units}, {JUP: 1.0}, settings)
    assert bool(result.trades) is traded
    assert reasons(result) == ([] if traded else [(SkipReason.OVERSIZE, JUP)])


def test_split_limit_trades_the_allowed_pieces_and_leaves_the_rest() -> None:
    settings = dataclasses.replace(UNCAPPED, max_split=2)
    result = plan({USDC: usdc(25_000)}, {JUP: 1.0}, settings)
    assert [t.amount_in for t in result.trades] == [usdc(10_000), usdc(10_000)]
    (left,) = result.skipped
    assert (left.reason, left.mint, left.value_usd) == (SkipReason.SPLIT_LIMIT, JUP, 5_000.0)


def test_a_base_unit_worth_more_than_max_trade_is_refused_not_split() -> None:
    prices = {**PRICES, "GOLD": 20_000.0}
    decimals = {**DECIMALS, "GOLD": 0}
    result = plan({"GOLD": 3}, {USDC: 1.0}, prices=prices, decimals=decimals)
    assert result.trades == ()
    assert reasons(result) == [(SkipReason.OVERSIZE, "GOLD")]


# -- concentration --------------------------------------------------------------------------


def test_holdings_above_the_cap_are_sold_down_and_targets_capped() -> None:
    holdings = {USDC: usdc(500), JUP: 10_000 * 10**6, SOL: 0}  # $500 + $8,500: JUP is 94 %
    result = plan(holdings, {JUP: 0.8, SOL: 0.2})
    by_mint = {(t.input_mint, t.output_mint): t for t in result.trades}
    assert by_mint[(JUP, USDC)].value_usd == pytest.approx(8_500 - 0.6 * 9_000, abs=1e-6)
    assert by_mint[(USDC, SOL)].value_usd == pytest.approx(0.2 * 9_000, abs=1e-6)
    assert (SkipReason.CONCENTRATION_CAP, JUP) in reasons(result)


def test_the_stablecoin_is_never_capped() -> None:
    result = plan({JUP: 10_000 * 10**6}, {USDC: 1.0}, dataclasses.replace(SETTINGS, max_concentration=0.1))
    assert legs(result) == [(JUP, USDC, 10_000 * 10**6)]


# -- the position factor --------------------------------------------------------------------


def test_position_factor_scales_every_trade() -> None:
    holdings = {USDC: usdc(2_000), JUP: 4_000 * 10**6, SOL: 20 * 10**9, BONK: 10**11}  # + $25 BONK
    target = {USDC: 0.4, JUP: 0.1, BONK: 0.5}
    settings = dataclasses.replace(SETTINGS, proceeds_haircut_bps=0)
    full = plan(holdings, target, settings)
    half = plan(holdings, target, settings, factor=0.5)
    assert len(full.trades) == len(half.trades) == 3
    for f, h in zip(full.trades, half.trades):
        assert (h.input_mint, h.output_mint) == (f.input_mint, f.output_mint)
        assert h.amount_in == f.amount_in // 2
    # The exit of SOL at half the factor sells half: the rest goes in a later round.
    assert half.trades[0].input_mint == SOL and half.trades[0].amount_in == 10 * 10**9


def test_position_factor_can_turn_a_trade_into_dust() -> None:
    result = plan({USDC: usdc(1_000), JUP: 0}, {USDC: 0.9985, JUP: 0.0015}, factor=0.5)  # $1.50 -> $0.75
    assert result.trades == ()
    assert reasons(result) == [(SkipReason.DUST, JUP)]


def test_position_factor_zero_refuses_the_plan() -> None:
    result = plan({USDC: usdc(1_000)}, {JUP: 1.0}, factor=0.0)
    assert result.refused and result.trades == ()
    assert reasons(result) == [(SkipReason.POSITION_FACTOR_ZERO, "")]


@pytest.mark.parametrize("factor", [-0.1, 1.01, float("nan"), float("inf")])
def test_position_factor_out_of_range_refuses_the_plan(factor: float) -> None:
    result = plan({USDC: usdc(1_000)}, {JUP: 1.0}, factor=factor)
    assert result.refused and reasons(result) == [(SkipReason.BAD_POSITION_FACTOR, "")]


# -- determinism and ids --------------------------------------------------------------------


def test_plans_and_trade_ids_are_deterministic() -> None:
    holdings = {USDC: usdc(3_000), JUP: 4_000 * 10**6, SOL: 20 * 10**9}
    target = {USDC: 0.2, BONK: 0.3, JUP: 0.25, SOL: 0.25}
    first = plan(holdings, target, vault_id="vault-0042", round_key="r19")
    shuffled = dict(reversed(list(holdings.items()))), dict(reversed(list(target.items())))
    again = plan(*shuffled, vault_id="vault-0042", round_key="r19")
    assert first == again
    assert [t.trade_id for t in first.trades] == [f"vault-0042:r19:{i}" for i in range(len(first.trades))]
    other = plan(holdings, target, vault_id="vault-0042", round_key="r20")
    assert {t.trade_id for t in other.trades}.isdisjoint(t.trade_id for t in first.trades)


@pytest.mark.parametrize(("vault_id", "round_key"), [("", 1), ("vault:1", 1), ("vault-0001", ""), ("vault-0001", "a:b")])
def test_ids_that_could_collide_are_a_caller_bug(vault_id: str, round_key: str | int) -> None:
    with pytest.raises(ValueError, match="must be non-empty and contain no ':'"):
        plan({USDC: 1}, {USDC: 1.0}, vault_id=vault_id, round_key=round_key)


# -- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("holdings", "target", "missing"),
    [
        ({USDC: usdc(100), JUP: 10**6}, {USDC: 1.0}, JUP),  # held
        ({USDC: usdc(100)}, {JUP: 1.0}, JUP),  # targeted only
        ({JUP: 10**6}, {JUP: 1.0}, USDC),  # the stablecoin
    ],
)
def test_a_missing_price_refuses_the_whole_plan(holdings: dict[str, int], target: dict[str, float], missing: str) -> None:
    prices = {m: p for m, p in PRICES.items() if m != missing}
    result = plan(holdings, target, prices=prices)
    assert result.refused and result.trades == ()
    assert reasons(result) == [(SkipReason.MISSING_PRICE, missing)]


def test_every_missing_price_is_named() -> None:
    result = plan({USDC: usdc(100), JUP: 10**6}, {SOL: 0.5, BONK: 0.5}, prices={USDC: 1.0})
    assert reasons(result) == [(SkipReason.MISSING_PRICE, m) for m in sorted([JUP, SOL, BONK])]


def test_a_price_for_a_mint_neither_held_nor_targeted_is_not_needed() -> None:
    prices = {m: p for m, p in PRICES.items() if m != SOL}
    result = plan({USDC: usdc(100), SOL: 0}, {USDC: 0.5, JUP: 0.5}, prices=prices)
    assert not result.refused and legs(result) == [(USDC, JUP, usdc(50))]


@pytest.mark.parametrize("price", [0.0, -1.0, float("nan"), float("inf"), "0.85", True])
def test_a_bad_price_refuses_the_whole_plan(price: object) -> None:
    result = plan({USDC: usdc(100)}, {JUP: 1.0}, prices={**PRICES, JUP: price})  # type: ignore[dict-item]
    assert result.refused and reasons(result) == [(SkipReason.BAD_PRICE, JUP)]


@pytest.mark.parametrize("places", [None, -1, 19, 6.0])
def test_unknown_decimals_refuse_the_whole_plan(places: object) -> None:
    decimals: dict[str, Any] = {**DECIMALS, JUP: places}
    if places is None:
        del decimals[JUP]
    result = plan({USDC: usdc(100)}, {JUP: 1.0}, decimals=decimals)
    assert result.refused and reasons(result) == [(SkipReason.MISSING_DECIMALS, JUP)]


@pytest.mark.parametrize(
    "target",
    [{}, {JUP: 0.9}, {JUP: 0.5, USDC: 0.500002}, {JUP: 1.25, USDC: -0.25}, {JUP: float("nan")}, {JUP: "1"}],
)
def test_a_target_that_is_not_a_distribution_refuses_the_plan(target: dict[str, Any]) -> None:
    result = plan({USDC: usdc(100)}, target)
    assert result.refused and {r for r, _ in reasons(result)} == {SkipReason.BAD_TARGET}


def test_weights_summing_to_one_within_a_millionth_are_accepted() -> None:
    result = plan({USDC: usdc(100)}, {JUP: 0.333333, SOL: 0.333333, USDC: 0.333333})
    assert not result.refused


@pytest.mark.parametrize("balance", [-1, 2**64, 1.0, True])
def test_a_bad_balance_refuses_the_plan(balance: object) -> None:
    result = plan({USDC: usdc(100), JUP: balance}, {USDC: 1.0})  # type: ignore[dict-item]
    assert result.refused and reasons(result) == [(SkipReason.BAD_HOLDING, JUP)]


def test_refusal_reasons_are_the_documented_set() -> None:
    assert PLAN_REFUSALS == {
        SkipReason.MISSING_PRICE,
        SkipReason.BAD_PRICE,
        SkipReason.MISSING_DECIMALS,
        SkipReason.BAD_HOLDING,
        SkipReason.BAD_TARGET,
        SkipReason.BAD_POSITION_FACTOR,
        SkipReason.POSITION_FACTOR_ZERO,
    }


def test_plans_are_messages_an_actor_may_send() -> None:
    result = plan({USDC: usdc(10_000)}, {JUP: 1.0})
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.trades[0].amount_in = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        dataclasses.replace(result, trades=list(result.trades))  # a list is mutable: refused
