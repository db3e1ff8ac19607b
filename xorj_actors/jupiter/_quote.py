"""``GET /swap/v1/quote``: the Swap API's quote, typed.

Fields as in the official clients (jup-ag/jupiter-swap-api-client ``quote.rs``,
jup-ag/jupiter-quote-api-node ``swagger.yaml``) and jup-ag/docs ``openapi-spec/swap/v1``.
Strict: ``inputMint``, ``outputMint``, ``inAmount``, ``outAmount``, ``otherAmountThreshold``,
``swapMode``, ``slippageBps``, ``priceImpactPct``, ``platformFee``, and each route step's mints
and amounts. Tolerated: ``contextSlot`` and ``timeTaken`` missing, ``routePlan[].bps`` and
``percent`` null, ``label``, the removed ``feeAmount``/``feeMint``, and any new field.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from solders.pubkey import Pubkey

from xorj_actors.jupiter import _fields as f
from xorj_actors.jupiter._errors import MalformedAnswer

__all__ = ["PlatformFee", "Quote", "RoutePlanStep", "SwapInfo", "SwapMode", "Terms", "parse_quote", "parse_terms"]


class SwapMode(enum.StrEnum):
    """Which side is fixed: ``ExactIn`` (slippage on the output) or ``ExactOut``."""

    EXACT_IN = "ExactIn"
    EXACT_OUT = "ExactOut"


@dataclass(frozen=True, slots=True)
class PlatformFee:
    """The integrator fee taken by the route: ``fee_bps``, and its amount when the API gives it."""

    fee_bps: int
    amount: int | None


@dataclass(frozen=True, slots=True)
class SwapInfo:
    """One hop's market: estimates of what goes in and out of it."""

    amm_key: Pubkey
    input_mint: Pubkey
    output_mint: Pubkey
    in_amount: int
    out_amount: int
    label: str | None


@dataclass(frozen=True, slots=True)
class RoutePlanStep:
    """A step of the route; ``percent``/``bps`` (its share of the input) may be null (2026 drift)."""

    swap_info: SwapInfo
    percent: int | None
    bps: int | None


@dataclass(frozen=True, slots=True)
class Terms:
    """What a Swap API quote and an Ultra order both promise: one check serves both APIs."""

    input_mint: Pubkey
    output_mint: Pubkey
    in_amount: int
    out_amount: int
    #: ExactIn: the least output accepted; ExactOut: the most input paid.
    other_amount_threshold: int
    swap_mode: SwapMode
    slippage_bps: int
    #: A fraction (``"0.0001"`` is 0.01 %), negative when the route beats the reference price.
    price_impact_pct: Decimal
    platform_fee: PlatformFee | None
    route_plan: tuple[RoutePlanStep, ...]


@dataclass(frozen=True, slots=True)
class Quote(Terms):
    """A Swap API quote. ``answer`` is the body as received: ``/swap-instructions`` gets it back."""

    context_slot: int | None
    time_taken: float | None
    #: ``V1``/``V2`` (which aggregator instructions the swap will use), when the API says.
    instruction_version: str | None
    answer: str = field(repr=False, compare=False, default="{}")

    def answer_json(self) -> dict[str, Any]:
        """The quote as received, for the ``quoteResponse`` field of ``/swap-instructions``."""
        return json.loads(self.answer)


def parse_platform_fee(value: Any, prefix: str) -> PlatformFee | None:
    """``platformFee``: null, or ``{amount, feeBps}`` with ``feeBps`` required (strict)."""
    if value is None:
        return None
    obj = f.mapping(value, prefix)
    return PlatformFee(fee_bps=f.bps(obj, "feeBps", prefix), amount=f.opt_amount(obj, "amount", prefix))


def parse_route_plan(obj: Mapping[str, Any], input_mint: Pubkey, output_mint: Pubkey) -> tuple[RoutePlanStep, ...]:
    """``routePlan``: non-empty; it must start at ``input_mint`` and end at ``output_mint``."""
    steps = []
    for i, raw in enumerate(f.seq(obj, "routePlan")):
        prefix = f"routePlan[{i}]"
        step = f.mapping(raw, prefix)
        info_prefix = f"{prefix}.swapInfo"
        info = f.mapping(step.get("swapInfo"), info_prefix)
        steps.append(
            RoutePlanStep(
                swap_info=SwapInfo(
                    amm_key=f.pubkey(info, "ammKey", info_prefix),
                    input_mint=f.pubkey(info, "inputMint", info_prefix),
                    output_mint=f.pubkey(info, "outputMint", info_prefix),
                    in_amount=f.amount(info, "inAmount", info_prefix),
                    out_amount=f.amount(info, "outAmount", info_prefix),
                    label=f.opt_str(info, "label"),
                ),
                percent=f.opt_int(step, "percent"),
                bps=f.opt_int(step, "bps"),
            )
        )
    if not steps:
        raise MalformedAnswer("routePlan", "empty")
    if not any(s.swap_info.input_mint == input_mint for s in steps):
        raise MalformedAnswer("routePlan", "no step starts at inputMint")
    if not any(s.swap_info.output_mint == output_mint for s in steps):
        raise MalformedAnswer("routePlan", "no step ends at outputMint")
    return tuple(steps)


def _check_amounts(terms: dict[str, Any]) -> None:
    """What any quote must satisfy: two mints, positive amounts, a threshold on the right side."""
    in_amount, out_amount, threshold = terms["in_amount"], terms["out_amount"], terms["other_amount_threshold"]
    if terms["input_mint"] == terms["output_mint"]:
        raise MalformedAnswer("outputMint", "equals inputMint")
    if in_amount == 0:
        raise MalformedAnswer("inAmount", "is zero")
    if out_amount == 0:
        raise MalformedAnswer("outAmount", "is zero")
    if terms["swap_mode"] is SwapMode.EXACT_IN and threshold > out_amount:
        raise MalformedAnswer("otherAmountThreshold", f"minimum output {threshold} exceeds outAmount {out_amount}")
    if terms["swap_mode"] is SwapMode.EXACT_OUT and threshold < in_amount:
        raise MalformedAnswer("otherAmountThreshold", f"maximum input {threshold} is below inAmount {in_amount}")


def parse_terms(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`Terms` fields of a quote or an order (constructor arguments), strictly, and
    checked for consistency."""
    mode = obj.get("swapMode")
    try:
        swap_mode = SwapMode(mode)
    except ValueError:
        raise MalformedAnswer("swapMode", f"expected ExactIn or ExactOut, got {mode!r:.40}") from None
    input_mint, output_mint = f.pubkey(obj, "inputMint"), f.pubkey(obj, "outputMint")
    terms: dict[str, Any] = dict(
        input_mint=input_mint,
        output_mint=output_mint,
        in_amount=f.amount(obj, "inAmount"),
        out_amount=f.amount(obj, "outAmount"),
        other_amount_threshold=f.amount(obj, "otherAmountThreshold"),
        swap_mode=swap_mode,
        slippage_bps=f.bps(obj, "slippageBps"),
        price_impact_pct=f.decimal_string(obj, "priceImpactPct"),
        platform_fee=parse_platform_fee(obj.get("platformFee"), "platformFee"),
        route_plan=(),
    )
    _check_amounts(terms)  # before the route: a route between equal mints says nothing more
    terms["route_plan"] = parse_route_plan(obj, input_mint, output_mint)
    return terms


def parse_quote(answer: Any, text: str | None = None) -> Quote:
    """A quote from a parsed ``/swap/v1/quote`` body; :class:`MalformedAnswer` names a bad field.

    ``text``: the body as received, when ``answer`` was parsed from it strictly (no duplicate
    key: the two say the same); kept as it is instead of written out again.
    """
    obj = f.mapping(answer, "quote")
    version = obj.get("instructionVersion")
    return Quote(
        **parse_terms(obj),
        context_slot=f.opt_int(obj, "contextSlot"),
        time_taken=f.opt_float(obj, "timeTaken"),
        instruction_version=version if isinstance(version, str) else None,
        answer=text if text is not None else json.dumps(obj, separators=(",", ":")),
    )
