"""Jito bundle tracking: the block engine's word on each bundle we sent, for the record.

When the block engine accepts an attempt's bytes it answers a bundle id (``sendTransaction``'s
``x-bundle-id`` header). The id is kept with the trade and the attempt, and one poller task per
executor asks for every open id in batches of five (Jito's limit): ``getInflightBundleStatuses``
until the engine says Landed, Failed or Invalid, then ``getBundleStatuses`` for a Landed or
Invalid one (the landed bundle's slot and commitment; an Invalid one may have landed and left
the five-minute window). Each change is a JITO_BUNDLE audit entry: Pending (accepted), then
Landed with its slot, Failed or Invalid, once per bundle.

A bundle's status is NOT a trade's outcome. The Confirmation actor's watch of the signature is the
only source of truth for that: a Failed or Invalid bundle changes nothing (the RPC and the other
routes keep rebroadcasting the same bytes until the watch settles the trade), and a Landed one
settles nothing either. A bundle is followed until the engine gives it a final status, whether or
not its trade has settled meanwhile (the RPC usually lands the bytes first, and the bundle's fate
comes after): at the latest when it leaves the five-minute window and reads Invalid.

Every call takes a token of the block engine's budget if there is one now; otherwise the poll is
skipped and the next tick asks again, never queued behind the trades' sends.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from loguru import logger

from xorj_actors.audit import EventType
from xorj_actors.execution._io import ExecutorIO
from xorj_actors.jito import MAX_IDS, BundleStatus, InflightBundle, InflightStatus
from xorj_actors.quotas import Endpoint

__all__ = ["BundleStatusHook", "BundleTracker"]

T = TypeVar("T")

#: Called with each status a bundle is recorded in (``pending``, ``landed``, ``failed``,
#: ``invalid``), for ``xorj_jito_bundles_total{status}``.
BundleStatusHook = Callable[[str], None]
#: The budget's owner of the status polls (they never wait, so they never take a vault's turn).
_OWNER = "jito-bundle-status"
#: ``getBundleStatuses`` answers from a landed table that may lag the inflight answer: a bundle
#: the inflight call saw land is asked this many times before its inflight slot is recorded alone.
_CONFIRM_TRIES = 3
#: Bundle ids with a final status remembered (at least; or ``max_tracked_bundles``), so the same
#: bytes rebroadcast are not tracked again.
_FINISHED_KEPT = 10_000


@dataclass(slots=True)
class _Bundle:
    """One bundle we sent: whose attempt it carries, and what the engine said last."""

    bundle_id: str
    trade_id: str
    attempt: int
    signature: str
    #: What the last inflight answer said beyond Pending (Landed or Invalid): then it is asked
    #: with ``getBundleStatuses``.
    verdict: InflightStatus | None = None
    landed_slot: int | None = None
    confirm_tries: int = 0


class BundleTracker:
    """The open bundles and their poller (one task), on the executor's loop."""

    def __init__(self, io: ExecutorIO, on_status: BundleStatusHook | None = None) -> None:
        self.io = io
        self.on_status = on_status
        #: Bundles to ask ``getInflightBundleStatuses`` about, least recently asked first.
        self.inflight: OrderedDict[str, _Bundle] = OrderedDict()
        #: Bundles to ask ``getBundleStatuses`` about (the inflight call said Landed or Invalid).
        self.confirming: OrderedDict[str, _Bundle] = OrderedDict()
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._task: asyncio.Task[None] | None = None

    @property
    def open(self) -> int:
        """Bundles accepted and without a final status yet."""
        return len(self.inflight) + len(self.confirming)

    # -- the loop's task ----------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None and self.io.jito.client is not None:
            self._task = self.io.spawn("jito-bundle-status", self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        interval = self.io.jito.settings.status_poll_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                await self.tick()
            except Exception:  # noqa: BLE001 - a bug, logged loudly; the tracking carries on
                logger.exception("jito bundle tracking: a poll failed")

    # -- bundles ------------------------------------------------------------------------------

    def accepted(self, bundle_id: str, trade_id: str, attempt: int, signature: str) -> None:
        """The block engine took an attempt's bytes as bundle ``bundle_id``: Pending, tracked.
        The same bytes again (a rebroadcast) are the same bundle: nothing new."""
        if bundle_id in self.inflight or bundle_id in self.confirming or bundle_id in self._finished:
            return
        limit = self.io.jito.settings.max_tracked_bundles
        while self.open >= limit:
            lane = self.inflight if self.inflight else self.confirming
            dropped_id, _ = lane.popitem(last=False)
            self._finish(dropped_id)  # not taken up again by the next rebroadcast
            logger.warning("jito: {} bundles tracked: no longer following {}", limit, dropped_id)
        bundle = _Bundle(bundle_id, trade_id, attempt, signature)
        self.inflight[bundle_id] = bundle
        self._record(bundle, InflightStatus.PENDING, None)

    async def tick(self) -> None:
        """One round of polls: at most one call of each method, five ids each."""
        client = self.io.jito.client
        if client is None:
            return
        if self.confirming:
            batch = list(itertools.islice(self.confirming.values(), MAX_IDS))
            answer = await self._call(client.bundle_statuses, [b.bundle_id for b in batch])
            if answer is not None:
                self._confirmed(batch, answer[1])
        if self.inflight:
            batch = list(itertools.islice(self.inflight.values(), MAX_IDS))
            answer = await self._call(client.inflight_statuses, [b.bundle_id for b in batch])
            if answer is not None:
                self._inflight(batch, answer[1])

    async def _call(self, method: Callable[[Sequence[str]], Awaitable[T]], ids: list[str]) -> T | None:
        """``method(ids)`` with a token of the block engine's budget taken now, or None: no token
        (the next tick asks again) or no answer (logged; a status is for the record only)."""
        io = self.io
        try:
            return await io.budgeted(Endpoint.BLOCK_ENGINE, _OWNER, lambda: method(ids), deadline=io.loop.time())
        except Exception as exc:  # noqa: BLE001 - never a trade's business: the next tick asks again
            logger.debug("jito bundle statuses of {} not read this tick: {!r}", ids, exc)
            return None

    def _inflight(self, batch: list[_Bundle], found: dict[str, InflightBundle]) -> None:
        for bundle in batch:
            if bundle.bundle_id not in self.inflight:
                continue  # no longer followed (the limit) while the answer came
            self.inflight.move_to_end(bundle.bundle_id)  # round robin over the open ids
            answer = found.get(bundle.bundle_id)
            if answer is None or answer.status is InflightStatus.PENDING:
                continue
            if answer.status is InflightStatus.FAILED:
                self._record(bundle, InflightStatus.FAILED, InflightStatus.PENDING)
                continue
            # Landed: its slot and commitment from getBundleStatuses. Invalid: not in the system,
            # but it may have landed and left the window: getBundleStatuses knows.
            del self.inflight[bundle.bundle_id]
            bundle.verdict, bundle.landed_slot = answer.status, answer.landed_slot
            self.confirming[bundle.bundle_id] = bundle

    def _confirmed(self, batch: list[_Bundle], found: dict[str, BundleStatus]) -> None:
        for bundle in batch:
            if bundle.bundle_id not in self.confirming:
                continue
            answer = found.get(bundle.bundle_id)
            if answer is not None and bundle.signature not in {str(s) for s in answer.signatures}:
                logger.warning("jito: bundle {} reported without our transaction {}", bundle.bundle_id, bundle.signature)
                answer = None
            if answer is not None:
                extra: dict[str, Any] = {"landed_slot": answer.slot, "confirmation": answer.confirmation}
                if answer.err is not None:
                    extra["err"] = answer.err
                self._record(bundle, InflightStatus.LANDED, InflightStatus.PENDING, extra)
            elif bundle.verdict is InflightStatus.INVALID:
                self._record(bundle, InflightStatus.INVALID, InflightStatus.PENDING)
            else:
                bundle.confirm_tries += 1
                self.confirming.move_to_end(bundle.bundle_id)
                if bundle.confirm_tries >= _CONFIRM_TRIES:
                    self._record(bundle, InflightStatus.LANDED, InflightStatus.PENDING, {"landed_slot": bundle.landed_slot})

    def _finish(self, bundle_id: str) -> None:
        self._finished[bundle_id] = None
        while len(self._finished) > max(_FINISHED_KEPT, self.io.jito.settings.max_tracked_bundles):
            self._finished.popitem(last=False)

    def _record(
        self, bundle: _Bundle, status: InflightStatus, previous: InflightStatus | None, extra: dict[str, Any] | None = None
    ) -> None:
        """Audit the change (for the record: the trade's outcome is the signature watch's alone)."""
        if status is not InflightStatus.PENDING:
            self.inflight.pop(bundle.bundle_id, None)
            self.confirming.pop(bundle.bundle_id, None)
            self._finish(bundle.bundle_id)
        details = {
            "bundle_id": bundle.bundle_id,
            "attempt": bundle.attempt,
            "signature": bundle.signature,
            "status": status.value,
            "previous": previous.value if previous is not None else None,
            **(extra or {}),
        }
        self.io.audit(EventType.JITO_BUNDLE, bundle.trade_id, details)
        if self.on_status is not None:
            try:
                self.on_status(status.value.lower())
            except Exception:  # noqa: BLE001 - metrics must not stop the tracking
                logger.exception("executor on_bundle_status callback failed")
