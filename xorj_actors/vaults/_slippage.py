"""Slippage control (SR-2): check a quote before a trade, measure the execution after it.

Pure: the caller fetches the quote (``GET /swap/v1/quote``) and the reference prices
(``GET /price/v3``, a second source) and passes them in. A quote that fails a check is refused,
never resized: the caller audits the :class:`QuoteCheck` and skips the trade (see
docs/RECONCILIATION.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, Protocol

from supervisors import Message
from xorj_actors.vaults._reconcile import exact

__all__ = [
    "QUOTE_REFUSALS",
    "QuoteCheck",
    "SwapLeg",
    "check_quote",
    "executed_deviation_bps",
    "realised_slippage",
]

_U64_MAX = 2**64 - 1
_BPS = 10_000

#: ``QuoteCheck.reason`` of a refused quote (a bounded set: fit for a metric label).
QUOTE_REFUSALS: frozenset[str] = frozenset(
    {
        "malformed_quote",
        "mint_mismatch",
        "mode_mismatch",
        "amount_mismatch",
        "no_output",
        "missing_price",
        "price_impact",
        "price_deviation",
        "threshold_inconsistent",
    }
)


class SwapLeg(Protocol):
    """What the checks need of a trade: a :class:`PlannedTrade` and a ``TradeRequest`` both are one."""

    @property
    def input_mint(self) -> str: ...
    @property
    def output_mint(self) -> str: ...
    @property
    def amount_in(self) -> int: ...


class QuoteCheck(Message):
    """The verdict on a quote, with the figures behind it for the audit trail.

    Attributes:
        ok: the quote may be executed.
        reason: ``"ok"`` or one of :data:`QUOTE_REFUSALS`.
        impact_bps: the quote's ``priceImpactPct`` in bps (None when unreadable).
        deviation_bps: how much worse than the reference prices the quote's own price is, in bps
            (negative: better); None when it cannot be computed.
        expected_out: the output at the reference prices, base units rounded down (None when
            it cannot be computed).
        detail: a sentence for people.
    """

    ok: bool
    reason: str
    impact_bps: float | None
    deviation_bps: float | None
    expected_out: int | None
    detail: str = ""


class _Refused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _amount(quote: Mapping[str, Any], key: str) -> int:
    value = quote.get(key)
    # Jupiter writes amounts as decimal strings; anything else is not a quote we understand.
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        raise _Refused("malformed_quote", f"{key}: expected a string of digits, got {value!r}")
    number = int(value)
    if number > _U64_MAX:
        raise _Refused("malformed_quote", f"{key}: {number} does not fit a u64")
    return number


def _impact(quote: Mapping[str, Any]) -> Fraction:
    value = quote.get("priceImpactPct")
    if not isinstance(value, str):
        raise _Refused("malformed_quote", f"priceImpactPct: expected a decimal string, got {value!r}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise _Refused("malformed_quote", f"priceImpactPct: not a decimal: {value!r}") from None
    if not number.is_finite():
        raise _Refused("malformed_quote", f"priceImpactPct: not finite: {value!r}")
    return Fraction(number)


def _route_ends(quote: Mapping[str, Any]) -> tuple[object, object]:
    plan = quote.get("routePlan")
    if not isinstance(plan, list) or not plan:
        raise _Refused("malformed_quote", "routePlan: expected a non-empty list")
    hops = [step.get("swapInfo") if isinstance(step, dict) else None for step in plan]
    if not all(isinstance(hop, dict) for hop in hops):
        raise _Refused("malformed_quote", "routePlan: every step needs a swapInfo object")
    return hops[0].get("inputMint"), hops[-1].get("outputMint")  # type: ignore[union-attr]


def _reference(mint: str, prices: Mapping[str, float], decimals: Mapping[str, int]) -> tuple[Fraction, int]:
    price = prices.get(mint)
    places = decimals.get(mint)
    if not isinstance(price, int | float) or isinstance(price, bool) or not math.isfinite(price) or price <= 0:
        raise _Refused("missing_price", f"no usable reference price for {mint}: {price!r}")
    if type(places) is not int or not 0 <= places <= 18:
        raise _Refused("missing_price", f"no decimals for {mint}: {places!r}")
    return exact(price), 10**places


def _bps(fraction: Fraction) -> float:
    return float(fraction * _BPS)


def check_quote(
    quote: Mapping[str, Any],
    trade: SwapLeg,
    prices: Mapping[str, float],
    decimals: Mapping[str, int],
    limit_bps: float,
) -> QuoteCheck:
    """Check a ``/swap/v1/quote`` answer against the trade, the reference prices and the limit.

    Refused (``ok`` false) when: the quote is malformed; its mints, mode (ExactIn) or
    ``inAmount`` differ from the trade, or its route does not lead from input to output; it
    gives nothing; a reference price is missing; ``priceImpactPct`` exceeds ``limit_bps``; its
    price (``outAmount`` against ``inAmount`` at the reference prices) is worse than the
    reference by more than ``limit_bps``; ``otherAmountThreshold`` is above ``outAmount`` or
    lets the swap settle more than ``limit_bps`` below it. Exactly at the limit passes.

    Args:
        quote: the JSON object ``GET /swap/v1/quote`` returned.
        trade: the trade the quote is for (planned, or the executor's request).
        prices: reference USD prices (``GET /price/v3``), at least for both mints.
        decimals: decimals per mint.
        limit_bps: the risk profile's slippage limit, in basis points (0..10000).

    Raises:
        ValueError: ``limit_bps`` is not a number in [0, 10000] (a configuration bug).
    """
    if not isinstance(limit_bps, int | float) or isinstance(limit_bps, bool) or not 0 <= limit_bps <= _BPS:
        raise ValueError(f"limit_bps: must be a number in [0, 10000], got {limit_bps!r}")
    limit = exact(limit_bps)
    figures: dict[str, Any] = {"impact_bps": None, "deviation_bps": None, "expected_out": None}
    try:
        if not isinstance(quote, Mapping):
            raise _Refused("malformed_quote", f"expected a JSON object, got {type(quote).__name__}")
        if quote.get("inputMint") != trade.input_mint or quote.get("outputMint") != trade.output_mint:
            raise _Refused(
                "mint_mismatch",
                f"quote is {quote.get('inputMint')!r} -> {quote.get('outputMint')!r}, "
                f"trade is {trade.input_mint} -> {trade.output_mint}",
            )
        if quote.get("swapMode") != "ExactIn":
            raise _Refused("mode_mismatch", f"swapMode {quote.get('swapMode')!r}: trades are ExactIn")
        in_amount = _amount(quote, "inAmount")
        out_amount = _amount(quote, "outAmount")
        threshold = _amount(quote, "otherAmountThreshold")
        impact = _impact(quote)
        first, last = _route_ends(quote)
        if in_amount == 0 or in_amount != trade.amount_in:
            raise _Refused("amount_mismatch", f"inAmount {in_amount} but the trade sells {trade.amount_in}")
        if (first, last) != (trade.input_mint, trade.output_mint):
            raise _Refused("mint_mismatch", f"routePlan leads {first!r} -> {last!r}")
        figures["impact_bps"] = _bps(impact)
        if out_amount == 0:
            raise _Refused("no_output", "outAmount is 0")
        price_in, scale_in = _reference(trade.input_mint, prices, decimals)
        price_out, scale_out = _reference(trade.output_mint, prices, decimals)
        value_in = in_amount * price_in / scale_in
        value_out = out_amount * price_out / scale_out
        deviation = (1 - value_out / value_in) * _BPS
        figures["deviation_bps"] = float(deviation)
        figures["expected_out"] = math.floor(value_in * scale_out / price_out)
        if impact * _BPS > limit:
            raise _Refused("price_impact", f"price impact {_bps(impact):.2f} bps exceeds the limit {limit_bps:g} bps")
        if deviation > limit:
            raise _Refused(
                "price_deviation",
                f"quote is {float(deviation):.2f} bps worse than the reference prices, limit {limit_bps:g} bps",
            )
        if threshold > out_amount:
            raise _Refused("threshold_inconsistent", f"otherAmountThreshold {threshold} is above outAmount {out_amount}")
        floor_out = math.floor(out_amount * (_BPS - limit) / _BPS)
        if threshold < floor_out:
            raise _Refused(
                "threshold_inconsistent",
                f"otherAmountThreshold {threshold} allows settling below {floor_out} "
                f"(outAmount less {limit_bps:g} bps)",
            )
    except _Refused as refused:
        return QuoteCheck(ok=False, reason=refused.reason, detail=refused.detail, **figures)
    return QuoteCheck(ok=True, reason="ok", detail="within limits", **figures)


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
    try:
        price_in, scale_in = _reference(trade.input_mint, prices, decimals)
        price_out, scale_out = _reference(trade.output_mint, prices, decimals)
    except _Refused as exc:
        raise ValueError(exc.detail) from None
    value_in = trade.amount_in * price_in / scale_in
    value_out = actual_out * price_out / scale_out
    return float((1 - value_out / value_in) * _BPS)
