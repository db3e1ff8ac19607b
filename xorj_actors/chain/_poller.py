"""The Confirmation actor's poller: ``getSignatureStatuses`` (``searchTransactionHistory``) for
whatever the subscriptions may have missed, the expiry checks, and the last look before a
timeout. Runs on the actor's loop thread; what the answers mean is the session's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Protocol

from loguru import logger

from xorj_actors.chain._rpc import MAX_SIGNATURES_PER_CALL, RpcCallError, RpcHttp, SignatureStatus
from xorj_actors.chain._state import Vitals, Waiter, Watch
from xorj_actors.chain.settings import ConfirmationSettings

__all__ = ["PollClient", "Poller"]

#: getSignatureStatuses requests of one poll round in flight at once.
_POLL_CONCURRENCY = 4


class PollClient(Protocol):
    """The session, as the poller sees it."""

    @property
    def connected(self) -> bool: ...

    def watches(self) -> Iterable[Watch]:
        """Every watch in flight."""

    def resubscribe(self, watch: Watch) -> None: ...

    def apply_statuses(
        self, chunk: list[Watch], context_slot: int, statuses: list[SignatureStatus | None], height: int
    ) -> None:
        """The answers for ``chunk``, looked up after the block height at confirmed read ``height``."""

    def time_out(self, watch: Watch, waiter: Waiter, poll_error: str | None) -> None: ...


class Poller:
    """Polls, each round, what the session asked for (or everything, while disconnected)."""

    def __init__(
        self, settings: ConfirmationSettings, rpc: RpcHttp, vitals: Vitals, client: PollClient, name: str
    ) -> None:
        self.settings = settings
        self.name = name
        self._rpc = rpc
        self._vitals = vitals
        self._client = client
        self._wake = asyncio.Event()
        self._all = False
        self._soon: dict[str, Watch] = {}
        self._sub_failed: dict[str, Watch] = {}
        self._due: list[tuple[Watch, Waiter]] = []
        self._expiring: dict[str, Watch] = {}

    # -- what to poll (from the session) ----------------------------------------------------

    def poll_everything(self) -> None:
        """Poll every watch at the next round, now."""
        self._all = True
        self._wake.set()

    def poll_soon(self, watch: Watch) -> None:
        """Poll ``watch`` now (its one-shot subscription may be spent)."""
        self._soon[watch.signature] = watch
        self._wake.set()

    def subscribe_failed(self, watch: Watch) -> None:
        """Poll ``watch`` at the next tick, and subscribe it again then."""
        self._sub_failed[watch.signature] = watch
        self._soon[watch.signature] = watch

    def expiring(self, watches: Iterable[Watch]) -> None:
        """Check these for expiry at every round until they are decided (see :meth:`settled`)."""
        self._expiring.update((w.signature, w) for w in watches)
        if self._expiring:
            self._wake.set()

    def settled(self, signature: str) -> None:
        """``signature`` landed or was dropped: no more expiry checks."""
        self._expiring.pop(signature, None)

    def last_look(self, watch: Watch, waiter: Waiter) -> None:
        """The tier's time is up: one status check, then the session times ``waiter`` out."""
        self._due.append((watch, waiter))
        self._wake.set()

    # -- the rounds -------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval_s)
            self._wake.clear()
            try:
                await self._round()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the poller must outlive a bug in one round
                logger.exception("{}: poll round failed", self.name)
                self._vitals.last_error = f"poll round failed: {type(exc).__name__}: {exc}"

    async def _round(self) -> None:
        connected = self._client.connected
        if connected and self._sub_failed:
            for watch in self._sub_failed.values():
                if not watch.removed:
                    self._client.resubscribe(watch)
            self._sub_failed.clear()
        full = self._all or not connected
        self._all = False
        due, self._due = self._due, []
        if full:
            targets = list(self._client.watches())
        else:
            chosen = {**self._soon, **self._expiring}
            for watch, _ in due:
                chosen[watch.signature] = watch
            targets = [w for w in chosen.values() if not w.removed]
        self._soon.clear()
        poll_error = None
        if targets:
            try:
                await self._poll(targets)
            except RpcCallError as exc:
                poll_error = str(exc)
                self._vitals.last_error = f"poll failed: {poll_error}"
                logger.warning("{}: {}", self.name, self._vitals.last_error)
                if full:
                    self._all = True
                else:
                    self._soon.update((w.signature, w) for w in targets if not w.removed)
        for watch, waiter in due:
            if not waiter.done:
                self._client.time_out(watch, waiter, poll_error)

    async def _poll(self, watches: list[Watch]) -> None:
        """getSignatureStatuses for ``watches``, handed to the session chunk by chunk."""
        # Height first: once the confirmed height is past a transaction's last valid height, no
        # later block can include it, so a status lookup made after this moment that finds
        # nothing is final. The other order could miss a landing between the two calls.
        height = await self._rpc.block_height()
        chunks = [watches[i : i + MAX_SIGNATURES_PER_CALL] for i in range(0, len(watches), MAX_SIGNATURES_PER_CALL)]
        gate = asyncio.Semaphore(_POLL_CONCURRENCY)

        async def one(chunk: list[Watch]) -> None:
            async with gate:
                context_slot, statuses = await self._rpc.signature_statuses([w.signature for w in chunk])
            self._vitals.polls += 1
            self._client.apply_statuses(chunk, context_slot, statuses, height)

        results = await asyncio.gather(*(one(c) for c in chunks), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
