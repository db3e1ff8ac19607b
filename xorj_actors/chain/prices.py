"""The quote service's ``/price`` answer, read one way by every client (the RPC gateway, the executor)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["parse_prices"]


def parse_prices(answer: Any, mints: Sequence[str]) -> dict[str, float]:
    """USD prices of ``mints`` from a ``/price`` answer (Jupiter's price API shape); a mint the
    answer leaves out is left out. A malformed answer or a price that is not finite and positive
    raises ValueError: no decision is made on it."""
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, dict):
        raise ValueError("/price: answer has no data")
    prices: dict[str, float] = {}
    for mint in mints:
        item = data.get(mint)
        if item is None:
            continue
        try:
            price = float(item["price"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"/price: malformed price for {mint}") from None
        if not math.isfinite(price) or price <= 0:
            raise ValueError(f"/price: price {price!r} for {mint}")
        prices[mint] = price
    return prices
