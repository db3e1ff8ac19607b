"""Slippage after a trade (SR-2): how the execution compared with its quote and the reference.

Pure. The check before a trade is the executor's money check (``execution._money.check_money``,
one rule for Swap API quotes and Ultra orders); these functions measure what a swap gave.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction
from typing import Protocol

from xorj_actors.vaults._reconcile import exact

__all__ = ["SwapLeg", "executed_deviation_bps", "realised_slippage"]

_BPS = 10_000


class SwapLeg(Protocol):
    """What the measures need of a trade: a :class:`PlannedTrade` and a ``TradeRequest`` both are one."""

    @property
    def input_mint(self) -> str: ...
    @property
    def output_mint(self) -> str: ...
    @property
    def amount_in(self) -> int: ...


def _reference(mint: str, prices: Mapping[str, float], decimals: Mapping[str, int]) -> tuple[Fraction, int]:
    """The reference price of ``mint`` (as written in decimal) and its base units per token."""
    price = prices.get(mint)
    places = decimals.get(mint)
    if not isinstance(price, int | float) or isinstance(price, bool) or not math.isfinite(price) or price <= 0:
        raise ValueError(f"no usable reference price for {mint}: {price!r}")
    if type(places) is not int or not 0 <= places <= 18:
        raise ValueError(f"no decimals for {mint}: {places!r}")
    return exact(price), 10**places


def realised_slippage(quoted_out: int, actual_out: int) -> float:
    """Slippage of an executed swap in bps: positive when it gave less than quoted.

    Args:
        quoted_out: the quote's ``outAmount`` (base units, > 0).
        actual_out: what the vault received: its output token balance after minus before.

    Raises:
        ValueError: ``quoted_out`` is not a positive integer, or ``actual_out`` not an integer.
    """
    if type(quoted_out) is not int or quoted_out <= 0:
        raise ValueError(f"quoted_out: must be an integer > 0, got {quoted_out!r}")
    if type(actual_out) is not int:
        raise ValueError(f"actual_out: must be an integer, got {actual_out!r}")
    return float(Fraction(quoted_out - actual_out, quoted_out) * _BPS)


def executed_deviation_bps(
    trade: SwapLeg, actual_out: int, prices: Mapping[str, float], decimals: Mapping[str, int]
) -> float:
    """How much worse than the reference prices a swap executed, in bps (negative: better).

    Args:
        trade: the executed trade (``amount_in`` went in).
        actual_out: what the vault received, from its balances before and after.
        prices: reference USD prices (usually those the quote was checked against).
        decimals: decimals per mint.

    Raises:
        ValueError: a reference price or decimals is missing, or ``actual_out`` not an integer.
    """
    if type(actual_out) is not int:
        raise ValueError(f"actual_out: must be an integer, got {actual_out!r}")
    price_in, scale_in = _reference(trade.input_mint, prices, decimals)
    price_out, scale_out = _reference(trade.output_mint, prices, decimals)
    value_in = trade.amount_in * price_in / scale_in
    value_out = actual_out * price_out / scale_out
    return float((1 - value_out / value_in) * _BPS)
