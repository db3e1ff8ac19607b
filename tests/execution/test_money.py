"""check_money: the one money check, on the recorded Swap API quotes and Ultra orders.

Pure: every case starts from a recorded answer (tests/data/jupiter) parsed by the production
parser, and changes one figure with ``dataclasses.replace`` when the recorded one sits inside
every limit. Malformed answers are the parsers' business (tests/jupiter/test_drift.py).
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from tests.jupiter.recorded import JUP, SOL, USDC, load
from xorj_actors.execution import TradeRequest
from xorj_actors.execution._errors import ErrorClass, TradeError
from xorj_actors.execution._money import MoneyCheck, MoneyLimits, check_money
from xorj_actors.jupiter import PlatformFee, SwapMode, Terms, TradeApi, parse_order, parse_quote

SWAP, ULTRA = TradeApi.SWAP, TradeApi.ULTRA
#: 0.1 SOL -> 16.198753 USDC, impact 0, slippage 50 bps, threshold 16117760.
METEORA = parse_quote(load("quote-docs-meteora.json"))
#: 1 SOL -> 72.886151 USDC, impact +0.83 bps (a loss, Swap API sign), slippage 50 bps.
HUMIDIFI = parse_quote(load("quote-humidifi-bps-null.json"))
#: 100 USDC -> 0.461208958 SOL, impact -1.31 bps (a loss, Ultra sign), slippage 26, fee 2 bps.
METIS = parse_order(load("ultra-order-metis.json"))
#: 100 USDC -> 0.460250418 SOL, RFQ: impact -1.89 bps (a loss), slippage 0, threshold = out.
RFQ = parse_order(load("ultra-order-jupiterz-rfq.json"))
DECIMALS = {str(SOL): 9, str(USDC): 6}
LIMITS = MoneyLimits()
PRICED = MoneyLimits(decimals=DECIMALS)


def request(terms: Terms, slippage_bps: int, **changes: Any) -> TradeRequest:
    """The trade ``terms`` answer, with the profile's limit ``slippage_bps``."""
    fields: dict[str, Any] = dict(
        trade_id="vault-0001:1:0", vault_id="vault-0001", round_key="1", index=0,
        input_mint=str(terms.input_mint), output_mint=str(terms.output_mint), amount_in=terms.in_amount,
        slippage_bps=slippage_bps, value_usd=100.0,
    )
    return TradeRequest(**(fields | changes))


def check(
    terms: Terms, api: TradeApi, limit: int, limits: MoneyLimits = LIMITS, prices: dict[str, float] | None = None
) -> MoneyCheck:
    return check_money(terms, api, request(terms, limit), limits, prices)


def refusal(
    terms: Terms, api: TradeApi, limit: int, limits: MoneyLimits = LIMITS, prices: dict[str, float] | None = None
) -> TradeError:
    with pytest.raises(TradeError) as caught:
        check(terms, api, limit, limits, prices)
    return caught.value


def test_the_recorded_answers_pass_at_their_own_slippage_with_their_figures() -> None:
    assert check(METEORA, SWAP, 50) == MoneyCheck(100_000_000, 16_198_753, 16_117_760, 0.0, None)
    assert check(HUMIDIFI, SWAP, 50).impact_bps == pytest.approx(0.830250516874543)
    metis = check(METIS, ULTRA, 26)
    assert (metis.min_out, metis.impact_bps) == (460_024_271, pytest.approx(1.311599520149334))
    assert check(RFQ, ULTRA, 2).impact_bps == pytest.approx(1.8881197024002837)


# -- the sign of priceImpactPct -------------------------------------------------------------


def test_ultras_negative_impact_is_a_loss() -> None:
    # The RFQ order loses 1.89 bps (outUsdValue < inUsdValue): a 1 bps limit refuses it.
    error = refusal(RFQ, ULTRA, 1)
    assert error.error_class is ErrorClass.SLIPPAGE and "price impact 1.9 bps" in str(error)
    assert refusal(METIS, ULTRA, 1).error_class is ErrorClass.SLIPPAGE


def test_ultras_positive_impact_is_a_gain() -> None:
    better = replace(RFQ, price_impact_pct=Decimal("0.05"))
    assert check(better, ULTRA, 2).impact_bps == pytest.approx(-500.0)


def test_the_swap_apis_positive_impact_is_a_loss_and_negative_a_gain() -> None:
    assert refusal(replace(METEORA, price_impact_pct=Decimal("0.0051")), SWAP, 50).error_class is ErrorClass.SLIPPAGE
    assert check(replace(METEORA, price_impact_pct=Decimal("-0.0051")), SWAP, 50).impact_bps == pytest.approx(-51.0)


@pytest.mark.parametrize(("impact", "ok"), [("0.005", True), ("0.0050", True), ("0.0051", False), ("0.00500001", False)])
def test_price_impact_exactly_at_the_limit_passes_and_above_refuses(impact: str, ok: bool) -> None:
    swap = replace(HUMIDIFI, price_impact_pct=Decimal(impact))
    ultra = replace(METIS, price_impact_pct=-Decimal(impact), slippage_bps=0, other_amount_threshold=METIS.out_amount)
    for terms, api in ((swap, SWAP), (ultra, ULTRA)):
        if ok:
            assert check(terms, api, 50).impact_bps == pytest.approx(float(impact) * 10_000)
        else:
            assert "price impact" in str(refusal(terms, api, 50))


# -- slippage and otherAmountThreshold ------------------------------------------------------


def test_the_apis_slippage_above_ours_refuses() -> None:
    assert check(METIS, ULTRA, 26).out_amount == METIS.out_amount
    error = refusal(METIS, ULTRA, 25)
    assert error.error_class is ErrorClass.SLIPPAGE and "slippage 26 bps" in str(error)
    assert "slippage 50 bps" in str(refusal(METEORA, SWAP, 49))


@pytest.mark.parametrize(
    ("threshold", "ok"),
    [
        (16_198_753 * 9_950 // 10_000, True),  # outAmount less exactly the limit
        (16_198_753 * 9_950 // 10_000 - 1, False),  # lets the swap settle one unit lower
        (16_198_753, True),  # no slippage allowed at all
        (16_198_754, False),  # above outAmount: the swap could never settle
        (0, False),
    ],
)
def test_other_amount_threshold_must_be_consistent_with_the_limit(threshold: int, ok: bool) -> None:
    terms = replace(METEORA, other_amount_threshold=threshold)
    if ok:
        assert check(terms, SWAP, 50).min_out == threshold
    else:
        error = refusal(terms, SWAP, 50)
        assert error.error_class is ErrorClass.SLIPPAGE and "otherAmountThreshold" in str(error)


def test_a_limit_of_zero_accepts_only_an_exact_route() -> None:
    exact = replace(METEORA, slippage_bps=0, other_amount_threshold=METEORA.out_amount)
    assert check(exact, SWAP, 0).min_out == METEORA.out_amount
    assert refusal(replace(exact, price_impact_pct=Decimal("0.000001")), SWAP, 0).error_class is ErrorClass.SLIPPAGE
    assert refusal(replace(exact, other_amount_threshold=METEORA.out_amount - 1), SWAP, 0).error_class is ErrorClass.SLIPPAGE


# -- fees -----------------------------------------------------------------------------------


def test_a_swap_api_platform_fee_above_its_limit_refuses() -> None:
    charged = replace(METEORA, platform_fee=PlatformFee(fee_bps=1, amount=None))
    assert "fee 1 bps" in str(refusal(charged, SWAP, 50))
    assert check(charged, SWAP, 50, MoneyLimits(max_platform_fee_bps=1)).out_amount == METEORA.out_amount


@pytest.mark.parametrize("order", [METIS, RFQ], ids=["metis", "rfq"])
def test_an_ultra_fee_above_its_limit_refuses(order: Terms) -> None:
    # Both orders carry feeBps 2 (the RFQ order also a platformFee of 2 bps).
    assert check(order, ULTRA, 26, MoneyLimits(max_ultra_fee_bps=2)).out_amount == order.out_amount
    error = refusal(order, ULTRA, 26, MoneyLimits(max_ultra_fee_bps=1))
    assert error.error_class is ErrorClass.SLIPPAGE and "fee 2 bps" in str(error)


def test_ultras_own_fee_is_not_held_to_the_platform_fee_limit() -> None:
    assert check(METIS, ULTRA, 26, MoneyLimits(max_platform_fee_bps=0, max_ultra_fee_bps=2)).out_amount == METIS.out_amount


# -- the trade itself -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("terms", "api", "changes"),
    [
        (METEORA, SWAP, {"input_mint": str(JUP)}),
        (METEORA, SWAP, {"output_mint": str(JUP)}),
        (METEORA, SWAP, {"input_mint": str(USDC), "output_mint": str(SOL)}),
        (METEORA, SWAP, {"amount_in": METEORA.in_amount - 1}),
        (METEORA, SWAP, {"amount_in": METEORA.in_amount + 1}),
        (METIS, ULTRA, {"output_mint": str(JUP)}),
        (RFQ, ULTRA, {"amount_in": RFQ.in_amount * 2}),
    ],
)
def test_an_answer_for_another_trade_is_refused(terms: Terms, api: TradeApi, changes: dict[str, Any]) -> None:
    with pytest.raises(TradeError) as caught:
        check_money(terms, api, request(terms, 10_000, **changes), LIMITS)
    assert caught.value.error_class is ErrorClass.UNKNOWN


def test_an_exact_out_answer_is_refused() -> None:
    assert refusal(replace(METEORA, swap_mode=SwapMode.EXACT_OUT), SWAP, 50).error_class is ErrorClass.UNKNOWN


@pytest.mark.parametrize(("terms", "api"), [(METEORA, SWAP), (RFQ, ULTRA)])
def test_a_route_that_buys_nothing_is_no_route(terms: Terms, api: TradeApi) -> None:
    nothing = replace(terms, out_amount=0, other_amount_threshold=0)
    assert refusal(nothing, api, 10_000).error_class is ErrorClass.NO_ROUTE


# -- reference prices -----------------------------------------------------------------------

#: 0.1 SOL is worth exactly 16 USDC: 15.92 USDC out is exactly 50 bps worse.
FAIR = {str(SOL): 160.0, str(USDC): 1.0}


@pytest.mark.parametrize(
    ("out", "ok", "deviation"),
    [
        (15_920_000, True, 50.0),  # exactly 50 bps below the reference
        (15_919_999, False, 50.0000625),  # one base unit more
        (15_918_400, False, 51.0),  # 1 bp over
        (16_800_000, True, -500.0),  # better than the reference
    ],
)
def test_price_deviation_exactly_at_the_limit_passes_and_above_refuses(out: int, ok: bool, deviation: float) -> None:
    terms = replace(METEORA, out_amount=out, other_amount_threshold=out)
    if ok:
        assert check(terms, SWAP, 50, PRICED, FAIR).deviation_bps == pytest.approx(deviation)
    else:
        error = refusal(terms, SWAP, 50, PRICED, FAIR)
        assert error.error_class is ErrorClass.SLIPPAGE and f"{deviation:.2f} bps worse" in str(error)


def test_the_edge_is_exact_for_prices_written_in_decimal() -> None:
    # 160.3 is a little above itself in binary: checking on the binary value would put a route
    # exactly 50 bps below the reference (16.03 USDC less 50 bps) a hair over the limit.
    terms = replace(METEORA, out_amount=15_949_850, other_amount_threshold=15_949_850)
    assert check(terms, SWAP, 50, PRICED, {str(SOL): 160.3, str(USDC): 1.0}).deviation_bps == 50.0


def test_the_recorded_routes_against_reference_prices() -> None:
    prices = {str(SOL): 162.0, str(USDC): 1.0}
    assert check(METEORA, SWAP, 50, PRICED, prices).deviation_bps == pytest.approx(0.7698, abs=1e-4)
    # Ultra: 100 USDC for 0.461208958 SOL at 216.0 USD/SOL is 99.621 USD: 37.9 bps worse.
    worse = refusal(METIS, ULTRA, 26, PRICED, {str(SOL): 216.0, str(USDC): 1.0})
    assert worse.error_class is ErrorClass.SLIPPAGE and "37.89 bps worse" in str(worse)


def test_the_reference_moving_against_a_route_refuses_it() -> None:
    assert check(METEORA, SWAP, 50, PRICED, {str(SOL): 161.98753, str(USDC): 1.0}).deviation_bps == 0.0
    moved = refusal(METEORA, SWAP, 50, PRICED, {str(SOL): 168.0, str(USDC): 1.0})
    assert moved.error_class is ErrorClass.SLIPPAGE and "357.89 bps worse" in str(moved)


@pytest.mark.parametrize(
    "prices",
    [{str(SOL): 160.0}, {str(SOL): 160.0, str(USDC): 0.0}, {str(SOL): float("nan"), str(USDC): 1.0}, {}],
)
def test_a_missing_reference_price_refuses(prices: dict[str, float]) -> None:
    error = refusal(METEORA, SWAP, 50, PRICED, prices)
    assert error.error_class is ErrorClass.SLIPPAGE and "no usable reference price" in str(error)


def test_missing_decimals_refuse() -> None:
    error = refusal(METEORA, SWAP, 50, MoneyLimits(decimals={str(SOL): 9}), FAIR)
    assert error.error_class is ErrorClass.SLIPPAGE and "no decimals" in str(error)


def test_without_prices_or_decimals_there_is_no_reference_check() -> None:
    far = {str(SOL): 1_000.0, str(USDC): 1.0}
    assert check(METEORA, SWAP, 50, PRICED, None).deviation_bps is None
    assert check(METEORA, SWAP, 50, LIMITS, far).deviation_bps is None
