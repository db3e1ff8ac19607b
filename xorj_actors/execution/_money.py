"""The money check (SR-2): one rule for what a Swap API quote or an Ultra order promises.

Pure. Every attempt passes it before anything is built or signed, whichever API answered. It
reads only the typed :class:`~xorj_actors.jupiter.Terms` (the parsers were strict about every
field that decides money), the trade, and the reference prices when the engine supplies them.
A refusal is a :class:`TradeError` value with its reason; nothing is resized.

The two APIs sign price impact oppositely: the Swap API's ``priceImpactPct`` is positive for a
loss, Ultra's is negative for a loss (tests/data/jupiter/ultra-order-*.json: ``outUsdValue`` is
below ``inUsdValue`` and the impact is negative). The check compares losses, so it reads each in
its own sign.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from xorj_actors.execution._errors import ErrorClass, TradeError
from xorj_actors.execution._messages import TradeRequest
from xorj_actors.jupiter import SwapMode, Terms, TradeApi

__all__ = ["MoneyCheck", "MoneyLimits", "check_money"]

_BPS = 10_000


@dataclass(frozen=True, slots=True)
class MoneyLimits:
    """What a route may cost beyond the trade's own slippage limit."""

    #: The highest ``platformFee.feeBps`` a Swap API quote may carry (we charge none).
    max_platform_fee_bps: int = 0
    #: The highest fee an Ultra order may carry (Ultra's own ``feeBps``, taken from the output).
    max_ultra_fee_bps: int = 10
    #: Decimals by mint, for the reference-price check; empty: no reference-price check.
    decimals: Mapping[str, int] | None = None


@dataclass(frozen=True, slots=True)
class MoneyCheck:
    """The figures behind a passed check, for the audit trail."""

    in_amount: int
    out_amount: int
    min_out: int
    #: The loss the API reports, in bps (negative: better than its reference).
    impact_bps: float
    #: How much worse than our reference prices the route's price is, in bps (None: no prices).
    deviation_bps: float | None


def _refuse(cls: ErrorClass, why: str) -> TradeError:
    return TradeError(cls, why)


def _loss_bps(terms: Terms, api: TradeApi) -> Fraction:
    impact = Fraction(terms.price_impact_pct) * _BPS
    return -impact if api is TradeApi.ULTRA else impact


def _fee_bps(terms: Terms, api: TradeApi) -> int:
    platform = terms.platform_fee.fee_bps if terms.platform_fee is not None else 0
    own = getattr(terms, "fee_bps", 0) if api is TradeApi.ULTRA else 0
    return max(platform, own)


def _deviation_bps(
    terms: Terms, prices: Mapping[str, float], decimals: Mapping[str, int]
) -> Fraction:
    """How much less the output is worth than the input at the reference prices, in bps."""
    values = []
    for mint, amount in ((terms.input_mint, terms.in_amount), (terms.output_mint, terms.out_amount)):
        key = str(mint)
        price, places = prices.get(key), decimals.get(key)
        if not isinstance(price, int | float) or isinstance(price, bool) or not math.isfinite(price) or price <= 0:
            raise _refuse(ErrorClass.SLIPPAGE, f"no usable reference price for {key}: {price!r}")
        if type(places) is not int or not 0 <= places <= 18:
            raise _refuse(ErrorClass.SLIPPAGE, f"no decimals for {key}: {places!r}")
        # The decimal the price was written as, not the binary double nearest it.
        values.append(amount * Fraction(repr(float(price))) / 10**places)
    value_in, value_out = values
    return (1 - value_out / value_in) * _BPS


def check_money(
    terms: Terms,
    api: TradeApi,
    req: TradeRequest,
    limits: MoneyLimits,
    prices: Mapping[str, float] | None = None,
) -> MoneyCheck:
    """Check what ``terms`` promise against the trade ``req`` and its limit.

    Refused when: the mints, the mode (ExactIn) or ``inAmount`` are not the trade's; it gives
    nothing (NO_ROUTE); the reported loss exceeds ``req.slippage_bps``; ``otherAmountThreshold``
    lets the swap settle more than ``req.slippage_bps`` below ``outAmount``; the API's slippage
    is above ours; the fee is above its limit; with ``prices``, the route's price is worse than
    the reference prices by more than ``req.slippage_bps`` (SLIPPAGE). Exactly at a limit passes.

    Raises:
        TradeError: the refusal, with its class and reason.
    """
    limit = req.slippage_bps
    if (str(terms.input_mint), str(terms.output_mint)) != (req.input_mint, req.output_mint):
        raise _refuse(ErrorClass.UNKNOWN, f"{api.value} answered {terms.input_mint} -> {terms.output_mint}, "
                                          f"the trade is {req.input_mint} -> {req.output_mint}")
    if terms.swap_mode is not SwapMode.EXACT_IN:
        raise _refuse(ErrorClass.UNKNOWN, f"{api.value} answered swapMode {terms.swap_mode.value}: trades are ExactIn")
    if terms.in_amount != req.amount_in:
        raise _refuse(ErrorClass.UNKNOWN, f"{api.value} answered for {terms.in_amount}, the trade sells {req.amount_in}")
    if terms.out_amount == 0:
        raise _refuse(ErrorClass.NO_ROUTE, f"{api.value} route buys nothing")
    loss = _loss_bps(terms, api)
    if loss > limit:
        raise _refuse(ErrorClass.SLIPPAGE, f"price impact {float(loss):.1f} bps exceeds the limit of {limit} bps")
    if terms.slippage_bps > limit:
        raise _refuse(ErrorClass.SLIPPAGE, f"{api.value} slippage {terms.slippage_bps} bps exceeds the limit of {limit} bps")
    floor = terms.out_amount * (_BPS - limit) // _BPS
    if not floor <= terms.other_amount_threshold <= terms.out_amount:
        raise _refuse(
            ErrorClass.SLIPPAGE,
            f"otherAmountThreshold {terms.other_amount_threshold} outside [{floor}, {terms.out_amount}] for {limit} bps",
        )
    fee, max_fee = _fee_bps(terms, api), (limits.max_ultra_fee_bps if api is TradeApi.ULTRA else limits.max_platform_fee_bps)
    if fee > max_fee:
        raise _refuse(ErrorClass.SLIPPAGE, f"{api.value} fee {fee} bps exceeds the limit of {max_fee} bps")
    deviation: float | None = None
    if prices is not None and limits.decimals:
        worse = _deviation_bps(terms, prices, limits.decimals)
        deviation = float(worse)
        if worse > limit:
            raise _refuse(
                ErrorClass.SLIPPAGE, f"route is {deviation:.2f} bps worse than the reference prices, limit {limit} bps"
            )
    return MoneyCheck(terms.in_amount, terms.out_amount, terms.other_amount_threshold, float(loss), deviation)
