"""A solana-py call within its JSON-RPC class's budget (docs/QUOTAS.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from solana.exceptions import SolanaRpcException

from xorj_actors.quotas import Endpoint, Quotas, turn

__all__ = ["solana_call"]

T = TypeVar("T")

_TOO_MANY_REQUESTS = 429


async def solana_call(
    quotas: Quotas | None,
    endpoint: Endpoint,
    call: Callable[[], Awaitable[T]],
    *,
    owner: str = "",
    kind: str | None = None,
) -> T:
    """``call()`` (a solana-py ``AsyncClient`` method) in ``endpoint``'s turn (``owner``, ``kind``:
    see :func:`~xorj_actors.quotas.turn`); a 429 slows the bucket. Raises what ``call`` raises,
    or a quota error if it never got its turn."""
    async with turn(quotas, endpoint, owner=owner or None, kind=kind) as t:
        try:
            return await call()
        except SolanaRpcException as exc:
            response = getattr(exc.__cause__, "response", None)
            if getattr(response, "status_code", None) == _TOO_MANY_REQUESTS:
                t.answered(_TOO_MANY_REQUESTS, response.headers.get("retry-after"))  # type: ignore[union-attr]
            raise
