"""From a quote to a versioned transaction: compute budget, the route's legs, a memo (compiled with
the route's lookup tables by :mod:`._route`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
from solders.instruction import Instruction
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from spl.memo.constants import MEMO_PROGRAM_ID

from xorj_actors.execution._errors import ErrorClass, TradeError

__all__ = [
    "check_quote_basics",
    "framed",
    "message_bytes",
    "priority_fee",
    "signed_transaction",
    "unsigned_transaction",
]

def _bad(why: str) -> TradeError:
    # An answer that makes no sense is not retried: something upstream is wrong.
    return TradeError(ErrorClass.UNKNOWN, f"quote service answer makes no sense: {why}")


def _amount(quote: Mapping[str, Any], key: str) -> int:
    try:
        value = int(quote[key])
    except (KeyError, TypeError, ValueError):
        raise _bad(f"{key} is missing or not an integer") from None
    if value < 0:
        raise _bad(f"{key} is negative")
    return value


def check_quote_basics(
    quote: Any, *, input_mint: str, output_mint: str, amount_in: int, slippage_bps: int
) -> tuple[int, int, float]:
    """The quote is for this trade, and within ``slippage_bps``; returns (in, out, impact_bps).

    The aggregator does not enforce ``otherAmountThreshold`` for us: it is checked here against
    our own limit, as is the reported price impact.
    """
    if not isinstance(quote, Mapping):
        raise _bad("quote is not an object")
    if quote.get("inputMint") != input_mint or quote.get("outputMint") != output_mint:
        raise _bad("quote is for other mints")
    if quote.get("swapMode", "ExactIn") != "ExactIn":
        raise _bad("quote is not ExactIn")
    in_amount, out_amount = _amount(quote, "inAmount"), _amount(quote, "outAmount")
    min_out = _amount(quote, "otherAmountThreshold")
    if in_amount != amount_in:
        raise _bad(f"quote is for {in_amount}, the trade is for {amount_in}")
    if out_amount == 0:
        raise TradeError(ErrorClass.NO_ROUTE, "quote buys nothing")
    try:
        impact = float(quote.get("priceImpactPct", "0"))
    except (TypeError, ValueError):
        raise _bad("priceImpactPct is not a number") from None
    if not math.isfinite(impact) or impact < 0:
        raise _bad(f"priceImpactPct {impact!r}")
    impact_bps = impact * 10_000
    if impact_bps > slippage_bps:
        raise TradeError(
            ErrorClass.SLIPPAGE, f"price impact {impact_bps:.1f} bps exceeds the limit of {slippage_bps} bps"
        )
    floor = out_amount * (10_000 - slippage_bps) // 10_000
    if min_out > out_amount or min_out < floor:
        raise TradeError(
            ErrorClass.SLIPPAGE,
            f"otherAmountThreshold {min_out} outside [{floor}, {out_amount}] for {slippage_bps} bps",
        )
    return in_amount, out_amount, impact_bps


def priority_fee(fees: Sequence[int], percentile: float, cap: int) -> int:
    """Micro-lamports per compute unit: ``percentile`` of recent fees, at most ``cap``."""
    if not fees:
        return 0
    ordered = sorted(max(0, int(f)) for f in fees)
    index = min(len(ordered) - 1, int(math.ceil(percentile * len(ordered))) - 1) if percentile > 0 else 0
    return min(cap, ordered[max(0, index)])


def framed(legs: Sequence[Instruction], *, compute_units: int, micro_lamports: int, memo: str) -> list[Instruction]:
    """Our compute budget, the route's legs (setup, swap, cleanup, other), a memo with the trade id."""
    return [
        set_compute_unit_limit(compute_units),
        set_compute_unit_price(micro_lamports),
        *legs,
        Instruction(MEMO_PROGRAM_ID, memo.encode("utf-8"), []),
    ]


def message_bytes(message: MessageV0) -> bytes:
    """What every signer signs."""
    return bytes(to_bytes_versioned(message))


def signed_transaction(message: MessageV0, signatures: Mapping[Pubkey, Signature]) -> VersionedTransaction:
    """The transaction with each required signer's signature in the message's order."""
    required = message.account_keys[: message.header.num_required_signatures]
    missing = [str(k) for k in required if k not in signatures]
    if missing:
        raise TradeError(ErrorClass.UNKNOWN, f"missing signatures of {', '.join(missing)}")
    return VersionedTransaction.populate(message, [signatures[k] for k in required])


def unsigned_transaction(message: MessageV0) -> VersionedTransaction:
    """For a simulation without signature verification."""
    return VersionedTransaction.populate(message, [Signature.default()] * message.header.num_required_signatures)
