"""check_quote, realised_slippage, executed_deviation_bps: the edges of every rule."""

from __future__ import annotations

import math
from typing import Any

import pytest

from xorj_actors.vaults._reconcile import PlannedTrade
from xorj_actors.vaults._slippage import QUOTE_REFUSALS, QuoteCheck, check_quote, executed_deviation_bps, realised_slippage

USDC, JUP = "USDC", "JUP"
# Prices exact in binary and in decimal, so "exactly at the limit" is exact.
PRICES = {USDC: 1.0, JUP: 0.5}
DECIMALS = {USDC: 6, JUP: 6}
LIMIT = 50  # bps

BUY = PlannedTrade(
    trade_id="vault-0001:1:0",
    vault_id="vault-0001",
    round_key="1",
    input_mint=USDC,
    output_mint=JUP,
    amount_in=1_000_000,  # $1 of USDC: 2 JUP at the reference price
    value_usd=1.0,
    reduces_exposure=False,
    index=0,
)
FAIR_OUT = 2_000_000


def quote(out: int = FAIR_OUT, impact: str = "0", threshold: int | None = None, **changes: Any) -> dict[str, Any]:
    """A /swap/v1/quote answer in Jupiter's shape (see test_slippage_localnet.py for the service's own)."""
    answer: dict[str, Any] = {
        "inputMint": USDC,
        "inAmount": str(BUY.amount_in),
        "outputMint": JUP,
        "outAmount": str(out),
        "otherAmountThreshold": str(out * (10_000 - LIMIT) // 10_000 if threshold is None else threshold),
        "swapMode": "ExactIn",
        "slippageBps": LIMIT,
        "platformFee": None,
        "priceImpactPct": impact,
        "routePlan": [
            {
                "swapInfo": {
                    "ammKey": "mm",
                    "inputMint": USDC,
                    "outputMint": JUP,
                    "inAmount": str(BUY.amount_in),
                    "outAmount": str(out),
                },
                "percent": 100,
            }
        ],
        "contextSlot": 10,
    }
    answer.update(changes)
    return answer


def check(q: Any, trade: PlannedTrade = BUY, prices: dict[str, float] = PRICES, limit: Any = LIMIT) -> QuoteCheck:
    return check_quote(q, trade, prices, DECIMALS, limit)


def test_a_fair_quote_passes_with_its_figures() -> None:
    result = check(quote())
    assert (result.ok, result.reason) == (True, "ok")
    assert (result.impact_bps, result.deviation_bps, result.expected_out) == (0.0, 0.0, FAIR_OUT)


# -- the limit's edges ----------------------------------------------------------------------


@pytest.mark.parametrize(("impact", "ok"), [("0.005", True), ("0.0050", True), ("0.0051", False), ("0.00500001", False)])
def test_price_impact_exactly_at_the_limit_passes_and_above_refuses(impact: str, ok: bool) -> None:
    result = check(quote(impact=impact))
    assert result.ok is ok
    assert result.reason == ("ok" if ok else "price_impact")
    assert result.impact_bps == pytest.approx(float(impact) * 10_000)


@pytest.mark.parametrize(
    ("out", "ok", "deviation"),
    [
        (1_990_000, True, 50.0),  # exactly 50 bps below the reference
        (1_989_999, False, 50.005),  # one base unit more
        (1_989_800, False, 51.0),  # 1 bp over
        (2_100_000, True, -500.0),  # better than the reference
    ],
)
def test_price_deviation_exactly_at_the_limit_passes_and_above_refuses(out: int, ok: bool, deviation: float) -> None:
    result = check(quote(out=out))
    assert result.ok is ok, result
    assert result.reason == ("ok" if ok else "price_deviation")
    assert result.deviation_bps == pytest.approx(deviation)
    assert result.expected_out == FAIR_OUT


def test_the_edge_is_exact_for_prices_written_in_decimal() -> None:
    # 0.1 is a little above 1/10 in binary: planning on the binary value would put a quote
    # exactly 50 bps below the reference a hair over the limit.
    sell = PlannedTrade(
        trade_id="vault-0001:1:0",
        vault_id="vault-0001",
        round_key="1",
        input_mint=JUP,
        output_mint=USDC,
        amount_in=10_000_000,  # $1.00 at 0.1
        value_usd=1.0,
        reduces_exposure=True,
        index=0,
    )
    route = [{"swapInfo": {"inputMint": JUP, "outputMint": USDC}, "percent": 100}]
    q = quote(out=995_000, inputMint=JUP, outputMint=USDC, inAmount="10000000", routePlan=route)
    result = check(q, trade=sell, prices={USDC: 1.0, JUP: 0.1})
    assert result.ok, result
    assert result.deviation_bps == 50.0


def test_a_limit_of_zero_accepts_only_the_reference_price() -> None:
    assert check(quote(threshold=FAIR_OUT), limit=0).ok
    assert check(quote(out=FAIR_OUT - 1, threshold=FAIR_OUT - 1), limit=0).reason == "price_deviation"


@pytest.mark.parametrize(
    ("threshold", "ok"),
    [
        (FAIR_OUT * 9_950 // 10_000, True),  # outAmount less exactly the limit
        (FAIR_OUT * 9_950 // 10_000 - 1, False),  # lets the swap settle one unit lower
        (FAIR_OUT, True),  # no slippage allowed at all
        (FAIR_OUT + 1, False),  # above outAmount: the swap could never settle
        (0, False),
    ],
)
def test_other_amount_threshold_must_be_consistent_with_the_limit(threshold: int, ok: bool) -> None:
    result = check(quote(threshold=threshold))
    assert result.ok is ok
    assert result.reason == ("ok" if ok else "threshold_inconsistent")


def test_the_first_failing_rule_is_reported_with_every_figure_computed() -> None:
    result = check(quote(out=1_900_000, impact="0.05", threshold=0))
    assert (result.ok, result.reason) == (False, "price_impact")
    assert result.impact_bps == pytest.approx(500.0)
    assert result.deviation_bps == pytest.approx(500.0)
    assert result.expected_out == FAIR_OUT


# -- quotes that do not match the trade -----------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"inputMint": "SOL"}, "mint_mismatch"),
        ({"outputMint": "BONK"}, "mint_mismatch"),
        ({"inputMint": JUP, "outputMint": USDC}, "mint_mismatch"),
        ({"swapMode": "ExactOut"}, "mode_mismatch"),
        ({"swapMode": None}, "mode_mismatch"),
        ({"inAmount": "999999"}, "amount_mismatch"),
        ({"inAmount": "1000001"}, "amount_mismatch"),
        ({"outAmount": "0", "otherAmountThreshold": "0"}, "no_output"),
        ({"routePlan": [{"swapInfo": {"inputMint": USDC, "outputMint": "SOL"}}]}, "mint_mismatch"),
        ({"routePlan": []}, "malformed_quote"),
        ({"routePlan": [{"percent": 100}]}, "malformed_quote"),
        ({"inAmount": 1_000_000}, "malformed_quote"),  # a number, not Jupiter's string
        ({"outAmount": "-5"}, "malformed_quote"),
        ({"outAmount": "1e6"}, "malformed_quote"),
        ({"outAmount": str(2**64)}, "malformed_quote"),
        ({"otherAmountThreshold": None}, "malformed_quote"),
        ({"priceImpactPct": "NaN"}, "malformed_quote"),
        ({"priceImpactPct": "one percent"}, "malformed_quote"),
        ({"priceImpactPct": 0.001}, "malformed_quote"),
    ],
)
def test_a_quote_that_does_not_match_the_trade_is_refused(changes: dict[str, Any], reason: str) -> None:
    result = check(quote(**changes))
    assert (result.ok, result.reason) == (False, reason), result.detail
    assert reason in QUOTE_REFUSALS


def test_missing_keys_and_non_objects_are_malformed() -> None:
    q = quote()
    del q["priceImpactPct"]
    assert check(q).reason == "malformed_quote"
    assert check(["not", "a", "quote"]).reason == "malformed_quote"


@pytest.mark.parametrize("prices", [{USDC: 1.0}, {USDC: 1.0, JUP: 0.0}, {USDC: float("nan"), JUP: 0.5}])
def test_a_missing_reference_price_refuses(prices: dict[str, float]) -> None:
    result = check(quote(), prices=prices)
    assert (result.ok, result.reason) == (False, "missing_price")
    assert result.deviation_bps is None and result.expected_out is None


def test_the_reference_moving_against_the_quote_refuses_it() -> None:
    # Quoted at 0.5 USD per JUP; the second source now says JUP is worth 0.52: the quote's 2 JUP
    # per dollar is the same, but selling JUP at that price would be 3.8 % worse.
    sell = PlannedTrade(
        trade_id="vault-0001:1:0",
        vault_id="vault-0001",
        round_key="1",
        input_mint=JUP,
        output_mint=USDC,
        amount_in=2_000_000,
        value_usd=1.0,
        reduces_exposure=True,
        index=0,
    )
    q = quote(
        out=1_000_000,
        inputMint=JUP,
        outputMint=USDC,
        inAmount="2000000",
        routePlan=[{"swapInfo": {"inputMint": JUP, "outputMint": USDC}, "percent": 100}],
    )
    assert check(q, trade=sell).ok
    moved = check(q, trade=sell, prices={USDC: 1.0, JUP: 0.52})
    assert moved.reason == "price_deviation" and moved.deviation_bps == pytest.approx(384.615, abs=1e-3)


@pytest.mark.parametrize("limit", [-1, 10_001, float("nan"), "50", True])
def test_a_bad_limit_is_a_configuration_bug(limit: Any) -> None:
    with pytest.raises(ValueError, match="limit_bps"):
        check(quote(), limit=limit)


# -- after execution ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quoted", "actual", "bps"),
    [(1_000_000, 990_000, 100.0), (1_000_000, 1_010_000, -100.0), (1_000_000, 1_000_000, 0.0), (3, 2, 3333.33)],
)
def test_realised_slippage_is_positive_when_worse(quoted: int, actual: int, bps: float) -> None:
    assert realised_slippage(quoted, actual) == pytest.approx(bps, abs=0.01)


@pytest.mark.parametrize(("quoted", "actual"), [(0, 1), (-1, 1), (1.5, 1), (10, 9.5)])
def test_realised_slippage_refuses_meaningless_amounts(quoted: Any, actual: Any) -> None:
    with pytest.raises(ValueError):
        realised_slippage(quoted, actual)


def test_executed_price_against_the_reference() -> None:
    assert executed_deviation_bps(BUY, FAIR_OUT, PRICES, DECIMALS) == 0.0
    assert executed_deviation_bps(BUY, 1_980_000, PRICES, DECIMALS) == pytest.approx(100.0)
    assert executed_deviation_bps(BUY, 2_020_000, PRICES, DECIMALS) == pytest.approx(-100.0)
    assert math.isclose(executed_deviation_bps(BUY, 0, PRICES, DECIMALS), 10_000.0)
    with pytest.raises(ValueError, match="JUP"):
        executed_deviation_bps(BUY, FAIR_OUT, {USDC: 1.0}, DECIMALS)
