"""Which API trades (pure): the ``[jupiter] api`` policy, and the choice recorded with a trade."""

from __future__ import annotations

import enum

from xorj_actors.jupiter._errors import JupiterApi, Refusal, RefusalReason
from xorj_actors.jupiter.settings import ApiPolicy

__all__ = ["TradeApi", "first_api", "fallback_api"]


class TradeApi(enum.StrEnum):
    """The API a trade went through (recorded with each trade)."""

    ULTRA = "ultra"
    SWAP = "swap"


def first_api(policy: ApiPolicy) -> TradeApi:
    """The API a trade tries first."""
    return TradeApi.SWAP if policy is ApiPolicy.SWAP else TradeApi.ULTRA


def fallback_api(policy: ApiPolicy, refusal: Refusal) -> TradeApi | None:
    """The API to try after ``refusal``, or ``None``: only "Ultra, then the Swap API" falls back,
    and only when Ultra's ``/order`` found no route. Any other refusal (funds, key, rate limit,
    a server error) would meet the Swap API just the same, or must not be papered over."""
    if (
        policy is ApiPolicy.ULTRA_THEN_SWAP
        and refusal.api is JupiterApi.ORDER
        and refusal.reason in (RefusalReason.NO_ROUTE, RefusalReason.NOT_TRADABLE)
    ):
        return TradeApi.SWAP
    return None
