"""Jupiter's APIs, spoken exactly: the Swap API, Ultra and the Price API (docs/EXECUTION.md,
"Jupiter's APIs").

Typed, immutable answers; strict about what decides money, tolerant of the rest; an API's no as
a :class:`Refusal` value. No localnet here: the localnet serves the same paths and shapes.

Names load on first use (:mod:`xorj_actors._lazy`): ``xorj_actors.config`` imports
``jupiter.settings``, and loading a config must not import aiohttp and solders.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xorj_actors._lazy import lazy_exports

if TYPE_CHECKING:
    from xorj_actors.jupiter._client import JupiterClient, MissingApiKey, api_headers
    from xorj_actors.jupiter._errors import JupiterApi, JupiterRefused, MalformedAnswer, Refusal, RefusalReason, refusal_from_answer
    from xorj_actors.jupiter._instructions import SimulationError, SwapInstructions, parse_instruction, parse_swap_instructions
    from xorj_actors.jupiter._policy import TradeApi, fallback_api, first_api
    from xorj_actors.jupiter._price import MAX_IDS, UsdPrice, parse_prices
    from xorj_actors.jupiter._quote import PlatformFee, Quote, RoutePlanStep, SwapInfo, SwapMode, Terms, parse_quote
    from xorj_actors.jupiter._ultra import (
        ExecuteOutcome,
        ExecuteStatus,
        SwapEvent,
        UltraExecution,
        UltraOrder,
        execute_outcome,
        parse_execution,
        parse_order,
    )
    from xorj_actors.jupiter.settings import ApiPolicy, JupiterSettings, PriorityLevel

_HOMES = {
    "JupiterClient": "_client",
    "MissingApiKey": "_client",
    "api_headers": "_client",
    "JupiterApi": "_errors",
    "JupiterRefused": "_errors",
    "MalformedAnswer": "_errors",
    "Refusal": "_errors",
    "RefusalReason": "_errors",
    "refusal_from_answer": "_errors",
    "SimulationError": "_instructions",
    "SwapInstructions": "_instructions",
    "parse_instruction": "_instructions",
    "parse_swap_instructions": "_instructions",
    "TradeApi": "_policy",
    "fallback_api": "_policy",
    "first_api": "_policy",
    "MAX_IDS": "_price",
    "UsdPrice": "_price",
    "parse_prices": "_price",
    "PlatformFee": "_quote",
    "Quote": "_quote",
    "RoutePlanStep": "_quote",
    "SwapInfo": "_quote",
    "SwapMode": "_quote",
    "Terms": "_quote",
    "parse_quote": "_quote",
    "ExecuteOutcome": "_ultra",
    "ExecuteStatus": "_ultra",
    "SwapEvent": "_ultra",
    "UltraExecution": "_ultra",
    "UltraOrder": "_ultra",
    "execute_outcome": "_ultra",
    "parse_execution": "_ultra",
    "parse_order": "_ultra",
    "ApiPolicy": "settings",
    "JupiterSettings": "settings",
    "PriorityLevel": "settings",
}

#: Jupiter's aggregator program (v6): the program of every Swap API ``swapInstruction``.
AGGREGATOR_V6 = "JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4"

__all__ = [
    "AGGREGATOR_V6",
    "ApiPolicy",
    "ExecuteOutcome",
    "ExecuteStatus",
    "JupiterApi",
    "JupiterClient",
    "JupiterRefused",
    "JupiterSettings",
    "MAX_IDS",
    "MalformedAnswer",
    "MissingApiKey",
    "api_headers",
    "PlatformFee",
    "PriorityLevel",
    "Quote",
    "Refusal",
    "RefusalReason",
    "RoutePlanStep",
    "SimulationError",
    "SwapEvent",
    "SwapInfo",
    "SwapInstructions",
    "SwapMode",
    "Terms",
    "TradeApi",
    "UltraExecution",
    "UltraOrder",
    "UsdPrice",
    "execute_outcome",
    "fallback_api",
    "first_api",
    "parse_execution",
    "parse_instruction",
    "parse_order",
    "parse_prices",
    "parse_quote",
    "parse_swap_instructions",
    "refusal_from_answer",
]

__getattr__ = lazy_exports(__name__, _HOMES)
