"""``GET /price/v3?ids=``: USD prices, the reference for the slippage check.

Shape (jup-ag/docs ``openapi-spec/price/v3/price.yaml``, ``price/index.mdx``): an object keyed by
mint, each ``{usdPrice, blockId, decimals, priceChange24h, liquidity, createdAt}``; no ``data``
wrapper (that was v2). A token without a reliable price is left out of the answer. Strict:
``usdPrice`` (finite, positive) of every requested mint that is present. Tolerated: the rest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from solders.pubkey import Pubkey

from xorj_actors.jupiter import _fields as f
from xorj_actors.jupiter._errors import MalformedAnswer

__all__ = ["MAX_IDS", "UsdPrice", "parse_prices"]

#: The most ``ids`` one request may carry (price/index.mdx, "Limitations").
MAX_IDS = 50


@dataclass(frozen=True, slots=True)
class UsdPrice:
    """One token's price."""

    usd_price: float
    #: The block the price was computed at, when given (its recency).
    block_id: int | None
    decimals: int | None
    price_change_24h: float | None
    liquidity: float | None


def parse_prices(answer: Any, mints: Iterable[Pubkey]) -> dict[Pubkey, UsdPrice]:
    """Prices of ``mints`` from a parsed ``/price/v3`` body; a mint the answer omits (or gives
    null) is left out. A present price that is not a finite positive number is refused."""
    obj = f.mapping(answer, "price")
    prices: dict[Pubkey, UsdPrice] = {}
    for mint in mints:
        item = obj.get(str(mint))
        if item is None:
            continue
        name = f"{mint}"
        entry = f.mapping(item, name)
        value = entry.get("usdPrice")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise MalformedAnswer(f"{name}.usdPrice", f"expected a positive price, got {value!r:.40}")
        prices[mint] = UsdPrice(
            usd_price=float(value),
            block_id=f.opt_int(entry, "blockId"),
            decimals=f.opt_int(entry, "decimals"),
            price_change_24h=f.opt_float(entry, "priceChange24h"),
            liquidity=f.opt_float(entry, "liquidity"),
        )
    return prices

