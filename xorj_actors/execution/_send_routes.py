"""The same signed bytes by several routes: the extra send endpoints beside the RPC.

The RPC stays the first route: its preflight decides whether an attempt was refused (and may be
signed anew), so no other route gets the bytes before it has answered. After that every
rebroadcast goes to every route. A route that fails, or is over its budget, is skipped for that
send and the skip is counted; confirmation stays with the Confirmation actor's watch, so a route
that lies about a send changes nothing. The block engine joins as a route of its own (docs/EXECUTION.md,
"Landing").
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import aiohttp
from loguru import logger
from solders.rpc.config import RpcSendTransactionConfig
from solders.rpc.requests import SendVersionedTransaction
from solders.rpc.responses import SendTransactionResp
from solders.transaction import VersionedTransaction

from xorj_actors.quotas import Endpoint, Quotas, turn

__all__ = ["SendRoutes", "route_name"]

#: Called with a route's name each time a send to it was skipped (metrics).
RouteSkipped = Callable[[str], None]


def route_name(url: str, n: int) -> str:
    """A route's name for logs and metrics: its host only (providers put keys in paths and queries)."""
    host = urlsplit(url).hostname or "?"
    return f"extra-{n}:{host}"


class SendRoutes:
    """The extra JSON-RPC send endpoints (``[execution] send_urls``), on the executor's loop."""

    def __init__(
        self, urls: Sequence[str], timeout_s: float, on_skip: RouteSkipped | None = None, quotas: Quotas | None = None
    ) -> None:
        self.routes = [(route_name(url, n), url) for n, url in enumerate(urls, start=1)]
        self.timeout_s = timeout_s
        self.on_skip = on_skip
        #: The ``send_routes`` budget: a send finding no token now is a skip, never a wait.
        self.quotas = quotas
        #: Skipped sends by route name.
        self.skips: Counter[str] = Counter()
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)

    def skipped(self, name: str) -> None:
        """Count a skipped send on route ``name`` (the block engine reports its own here too)."""
        self.skips[name] += 1
        if self.on_skip is not None:
            self.on_skip(name)

    async def open(self) -> None:
        if self.routes and self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, tx: VersionedTransaction) -> None:
        """The bytes to every extra route at once (skipPreflight, no node retries); never raises."""
        if len(self.routes) == 1:
            await self._one(*self.routes[0], tx)  # no task for a single route
        elif self.routes:
            await asyncio.gather(*(self._one(name, url, tx) for name, url in self.routes))

    async def _one(self, name: str, url: str, tx: VersionedTransaction) -> None:
        assert self._session is not None, "SendRoutes.open() first"
        config = RpcSendTransactionConfig(skip_preflight=True, max_retries=0)
        body = SendVersionedTransaction(tx, config, id=next(self._ids)).to_json()
        try:
            deadline = asyncio.get_running_loop().time()
            async with turn(self.quotas, Endpoint.SEND_ROUTES, kind="signed", deadline=deadline) as t:
                async with self._session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
                    t.answered(resp.status, resp.headers.get("Retry-After"))
                    resp.raise_for_status()
                    answer = SendTransactionResp.from_json(await resp.text())
            if not isinstance(answer, SendTransactionResp) or answer.value != tx.signatures[0]:
                raise ValueError(f"answered {answer}")
        except Exception as exc:  # noqa: BLE001 - one route's failure is a skip, never the trade's
            self.skipped(name)
            logger.debug("send route {} skipped for {}: {!r}", name, tx.signatures[0], exc)
