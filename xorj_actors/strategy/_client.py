"""The strategy feed's HTTP side: one validated ``GET /internal/ranked-traders`` per poll.

:class:`QuantClient` runs on the feed's own asyncio loop (see ``_feed``) and holds only values
fixed at start, so it shares no state with the actor; a refused answer is a
:class:`PollRejected` saying why. The start-up checks of the endpoint and the mints are here too.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable, Mapping

import aiohttp
from solders.pubkey import Pubkey
from yarl import URL

from xorj_actors.strategy._model import StrategySnapshot
from xorj_actors.strategy._validate import InvalidStrategyData, parse_ranked_traders
from xorj_actors.strategy.settings import StrategySettings

__all__ = [
    "API_KEY_HEADER",
    "RANKED_TRADERS_PATH",
    "PollRejected",
    "QuantClient",
    "StrategyFeedError",
    "checked_mints",
    "ranked_traders_url",
]

RANKED_TRADERS_PATH = "/internal/ranked-traders"
API_KEY_HEADER = "X-API-Key"
_ERROR_SNIPPET = 200


class StrategyFeedError(RuntimeError):
    """The feed cannot start (missing API key in production, bad URL or mints)."""


class PollRejected(Exception):
    """A poll's answer refused whole; ``kind`` is one of ``StrategyFeed.REJECTION_KINDS``."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


def _snippet(body: bytes) -> str:
    text = body[: _ERROR_SNIPPET * 4].decode("utf-8", errors="replace")
    text = "".join(c if c.isprintable() else " " for c in text).strip()
    return text[:_ERROR_SNIPPET] or "(empty body)"


class QuantClient:
    """The HTTP side, on the loop thread. Holds only values fixed at start, and the API key's
    reader (no actor state)."""

    def __init__(
        self,
        url: str,
        api_key: str | Callable[[], str],
        settings: StrategySettings,
        tradable_mints: Mapping[str, int],
        clock: Callable[[], float],
    ) -> None:
        self.url = url
        # A callable: read on every request (``ctl reload-secrets`` rotates it).
        self._api_key = api_key if callable(api_key) else (lambda: api_key)
        self._timeout_s = settings.request_timeout_s
        self._max_bytes = settings.max_response_bytes
        self._tolerance = settings.weight_tolerance
        self._mints = tradable_mints
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            connector=aiohttp.TCPConnector(limit=2),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def fetch(self) -> StrategySnapshot:
        """One request, validated; raises :class:`PollRejected` saying why it is refused."""
        if self._session is None:
            raise PollRejected("internal", "HTTP session not open")
        try:
            async with asyncio.timeout(self._timeout_s):
                body = await self._get(self._session)
        except TimeoutError:
            raise PollRejected("timeout", f"no complete answer within {self._timeout_s:g} s") from None
        except aiohttp.ClientError as exc:
            raise PollRejected("transport", f"HTTP request failed: {type(exc).__name__}: {exc}") from None
        try:
            return parse_ranked_traders(
                body, tradable_mints=self._mints, weight_tolerance=self._tolerance, fetched_at=self._clock()
            )
        except InvalidStrategyData as exc:
            raise PollRejected("invalid_data", str(exc)) from None

    async def _get(self, session: aiohttp.ClientSession) -> bytes:
        # No redirects: one would carry the API key to wherever it points.
        headers = {API_KEY_HEADER: self._api_key(), "Accept": "application/json"}
        async with session.get(self.url, headers=headers, allow_redirects=False) as resp:
            if resp.status != 200:
                hint = " (API key refused)" if resp.status in (401, 403) else ""
                raise PollRejected("http_status", f"HTTP {resp.status}{hint}: {_snippet(await self._read(resp, 1024, False))}")
            if resp.content_type != "application/json":
                raise PollRejected("invalid_data", f"content type {resp.content_type!r}, expected application/json")
            if resp.content_length is not None and resp.content_length > self._max_bytes:
                raise PollRejected("invalid_data", f"body of {resp.content_length} bytes exceeds {self._max_bytes}")
            return await self._read(resp, self._max_bytes, True)

    @staticmethod
    async def _read(resp: aiohttp.ClientResponse, limit: int, strict: bool) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(65_536):
            size += len(chunk)
            if size > limit:
                if strict:
                    raise PollRejected("invalid_data", f"body exceeds {limit} bytes")
                chunks.append(chunk)
                break
            chunks.append(chunk)
        return b"".join(chunks)


def ranked_traders_url(url: str) -> str:
    """The ranked-traders URL under the quant engine's base ``url``; refused unless plain http(s)."""
    if not url:
        raise StrategyFeedError("strategy: no quant engine URL: set [strategy] url (empty means the localnet's)")
    if not url.startswith(("http://", "https://")):
        raise StrategyFeedError(f"strategy: the quant engine URL must be http:// or https://, got {url!r}")
    parsed = URL(url)
    if parsed.user is not None or parsed.password is not None:
        raise StrategyFeedError("strategy: no credentials in the quant engine URL; the key comes from api_key_env")
    if not parsed.host:
        raise StrategyFeedError(f"strategy: the quant engine URL has no host: {url!r}")
    return url.rstrip("/") + RANKED_TRADERS_PATH


def checked_mints(tradable_mints: Mapping[str, int]) -> Mapping[str, int]:
    """A read-only copy of mint -> decimals, each mint a valid public key."""
    if not tradable_mints:
        raise StrategyFeedError("strategy: no tradable mints: every allocation would be refused")
    for mint, decimals in tradable_mints.items():
        try:
            Pubkey.from_string(mint)
        except (TypeError, ValueError):
            raise StrategyFeedError(f"strategy: tradable mint {mint!r} is not a base58 public key") from None
        if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 255:
            raise StrategyFeedError(f"strategy: decimals of {mint} must be an integer in 0..255, got {decimals!r}")
    return types.MappingProxyType(dict(tradable_mints))
