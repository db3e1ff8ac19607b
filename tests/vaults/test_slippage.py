"""realised_slippage, executed_deviation_bps: the edges of every rule.

The check before a trade is tests/execution/test_money.py.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from xorj_actors.vaults._reconcile import PlannedTrade
from xorj_actors.vaults._slippage import executed_deviation_bps, realised_slippage

USDC, JUP = "USDC", "JUP"
# Prices exact in binary and in decimal, so the figures are exact.
PRICES = {USDC: 1.0, JUP: 0.5}
DECIMALS = {USDC: 6, JUP: 6}

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
