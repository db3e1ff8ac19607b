"""The quote service's open quotes: each valid for a while and signed for at most one message."""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from xorj_actors.localnet.genesis import TokenSpec

__all__ = ["OpenQuote", "QuoteBook", "QuoteRefused"]


class QuoteRefused(Exception):
    """A request the service refuses; ``code`` is the ``errorCode`` the client sees."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(slots=True)
class OpenQuote:
    """A quote the service gave and may still sign for."""

    id: str
    input: TokenSpec
    output: TokenSpec
    in_amount: int
    out_amount: int
    expires_at: float
    response: dict[str, Any]
    #: The one message the market maker signed for this quote.
    signed: bytes | None = field(default=None)


class QuoteBook:
    """Open quotes by id, each valid for ``ttl_s`` and signed for at most one message."""

    def __init__(self, ttl_s: float, capacity: int, clock: Callable[[], float] = time.time) -> None:
        self._ttl_s = ttl_s
        self._capacity = capacity
        self._clock = clock
        self._quotes: OrderedDict[str, OpenQuote] = OrderedDict()

    def open(self, input: TokenSpec, output: TokenSpec, in_amount: int, out_amount: int) -> OpenQuote:
        """Record a new quote and return it (its ``response`` is filled in by the caller)."""
        now = self._clock()
        while self._quotes:
            oldest = next(iter(self._quotes.values()))
            if oldest.expires_at > now and len(self._quotes) < self._capacity:
                break
            self._quotes.popitem(last=False)
        quote = OpenQuote(uuid.uuid4().hex, input, output, in_amount, out_amount, now + self._ttl_s, {})
        self._quotes[quote.id] = quote
        return quote

    def get(self, quote_id: Any) -> OpenQuote:
        """The open quote ``quote_id``; refused when unknown or expired."""
        quote = self._quotes.get(quote_id) if isinstance(quote_id, str) else None
        if quote is None:
            raise QuoteRefused("QUOTE_NOT_FOUND", f"unknown or forgotten quote {quote_id!r}")
        if self._clock() >= quote.expires_at:
            raise QuoteRefused("QUOTE_EXPIRED", f"quote {quote_id} expired")
        return quote

    def claim(self, quote: OpenQuote, message: bytes) -> None:
        """Bind ``quote`` to ``message``; the same message again is allowed (a retried request)."""
        if quote.signed is not None and quote.signed != message:
            raise QuoteRefused("QUOTE_ALREADY_USED", f"quote {quote.id} was signed for another message")
        quote.signed = message
