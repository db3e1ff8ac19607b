"""The Confirmation actor's loop side: the watches, wired to the link, the poller and the book.

Everything here runs on the actor's asyncio loop thread. The actor only forwards requests
(``watch_threadsafe``, ``unwatch_threadsafe``) and reads plain attributes for its answers
(``vitals``, ``subscriptions``, ``watch_of``: each read is atomic);
outcomes are told from here straight to each watch's ``reply_to``. What decides an outcome is
:mod:`~xorj_actors.chain._book` (pure); the socket is :class:`Link`, the status polls
:class:`Poller`, the telling and auditing :class:`Outbox`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from loguru import logger

from xorj_actors import breakers
from xorj_actors.audit import EventType, Severity
from xorj_actors.breakers import BreakerName
from xorj_actors.chain import _book as book
from xorj_actors.chain._book import Commitment, OutcomeStatus, Verdict
from xorj_actors.chain._delivery import Outbox
from xorj_actors.chain._frames import SignatureNote
from xorj_actors.chain._link import Link
from xorj_actors.chain._messages import SignatureOutcome, WatchRefused, WatchSignature
from xorj_actors.chain._poller import Poller
from xorj_actors.chain._rpc import RpcHttp, SignatureStatus
from xorj_actors.chain._state import Vitals, Waiter, Watch
from xorj_actors.chain.settings import ConfirmationSettings
from xorj_actors.quotas import Quotas

__all__ = ["Session"]


class Session:
    """The watches of one Confirmation actor, and the link, poller and outbox that serve them."""

    def __init__(
        self,
        settings: ConfirmationSettings,
        ws_url: str,
        rpc_url: str,
        *,
        runtime: Any,
        name: str,
        on_outcome: Callable[[str, float], None] | None = None,
        trace: Callable[[str, float], None] | None = None,
        on_reconnect: Callable[[], None] | None = None,
        on_slot: Callable[[], None] | None = None,
        quotas: Quotas | None = None,
    ) -> None:
        self.settings = settings
        #: Called on each new connection after the first (metrics: ``xorj_ws_reconnects_total``).
        self._on_reconnect = on_reconnect
        #: Called on each slot notification, on the loop (metrics: ``xorj_confirmation_slot_age_seconds``).
        self._on_slot = on_slot
        self.name = name
        self._runtime = runtime
        self._on_outcome = on_outcome
        self._trace = trace
        self._rpc = RpcHttp(rpc_url, settings.http_timeout_s, quotas, owner=name)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.vitals = Vitals()
        self._link = Link(settings, ws_url, self.vitals, self, name, quotas)
        self._poller = Poller(settings, self._rpc, self.vitals, self, name)
        self._outbox = Outbox(runtime, name)
        self._watches: dict[str, Watch] = {}
        self._subs_index: dict[int, tuple[Watch, Commitment]] = {}  # subscription id -> whose
        self._seq = itertools.count()
        self._depth_heap: list[tuple[int, int, Watch, Waiter]] = []
        self._expiry_heap: list[tuple[int, int, Watch]] = []

    # -- lifecycle (on the loop) ------------------------------------------------------------

    async def start(self) -> None:
        """Open the HTTP session and start the connection, poller and watchdog tasks."""
        self._loop = self._outbox.loop = asyncio.get_running_loop()
        await self._rpc.open()
        self._tasks = [
            asyncio.create_task(self._link.run(), name=f"{self.name}-ws"),
            asyncio.create_task(self._poller.run(), name=f"{self.name}-poll"),
            asyncio.create_task(self._link.watchdog(), name=f"{self.name}-watchdog"),
        ]

    async def close(self) -> None:
        """Close the socket (with a close frame if it answers within a second) and stop."""
        self._outbox.closing = True
        await self._link.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for watch in self._watches.values():
            for waiter in watch.waiters:
                if waiter.timer is not None:
                    waiter.timer.cancel()
        await self._rpc.close()
        if self._watches:
            logger.warning(
                "{}: stopped with {} signatures in flight; their senders must watch them again",
                self.name,
                len(self._watches),
            )

    # -- entry points (any thread; the reads are atomic, the loop thread runs on) -------------

    def watch_threadsafe(self, message: WatchSignature, received: float) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._watch, message, received)

    def refuse_threadsafe(self, message: WatchSignature, reason: str) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._refuse, message, reason)

    def unwatch_threadsafe(self, signature: str) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._unwatch, signature)

    @property
    def in_flight(self) -> int:
        return len(self._watches)

    @property
    def subscriptions(self) -> int:
        """signatureSubscribe subscriptions open on the node."""
        return len(self._subs_index)

    def watch_of(self, signature: str) -> Watch | None:
        return self._watches.get(signature)

    # -- watches ----------------------------------------------------------------------------

    def _watch(self, message: WatchSignature, received: float) -> None:
        try:
            self._add_watch(message, received)
        except Exception as exc:  # a bug here must reach the sender, not asyncio's log only
            logger.exception("{}: watch of {} failed", self.name, message.signature)
            self._refuse(message, f"internal error: {type(exc).__name__}: {exc}")

    def _add_watch(self, message: WatchSignature, received: float) -> None:
        assert self._loop is not None
        signature = message.signature
        tier = self.settings.tier_for(message.value_usd)
        if not (message.value_usd >= 0 and math.isfinite(message.value_usd)):
            logger.warning(
                "{}: trade {} has value_usd {!r}; watching {} under the strictest tier",
                self.name, message.trade_id, message.value_usd, signature,
            )
        watch = self._watches.get(signature)
        if watch is None:
            if len(self._watches) >= self.settings.max_in_flight:
                self._refuse(message, f"max_in_flight reached ({self.settings.max_in_flight} signatures in flight)")
                return
            watch = self._watches[signature] = Watch(signature, message.last_valid_block_height)
            heapq.heappush(self._expiry_heap, (watch.last_valid, next(self._seq), watch))
        else:
            if message.last_valid_block_height > watch.last_valid:
                # One signature, one blockhash; if the sender disagrees, the later expiry is the safe one.
                watch.last_valid = message.last_valid_block_height
                heapq.heappush(self._expiry_heap, (watch.last_valid, next(self._seq), watch))
            urn = message.reply_to.actor_urn
            for old in [w for w in watch.waiters if w.trade_id == message.trade_id and w.reply_to.actor_urn == urn]:
                self._retire(watch, old)  # the same request again replaces the earlier one
        waiter = Waiter(message.trade_id, message.reply_to, tier, received)
        waiter.timer = self._loop.call_at(book.deadline(received, tier), self._on_deadline, watch, waiter)
        watch.waiters.append(waiter)
        self._evaluate(watch, via_poll=False)
        if not watch.removed:
            self.resubscribe(watch)

    def _unwatch(self, signature: str) -> None:
        watch = self._watches.get(signature)
        if watch is None:
            return
        for waiter in list(watch.waiters):
            self._retire(watch, waiter)
        self._drop(watch)
        logger.debug("{}: unwatched {}", self.name, signature)

    def _retire(self, watch: Watch, waiter: Waiter) -> None:
        waiter.done = True
        if waiter.timer is not None:
            waiter.timer.cancel()
        watch.waiters.remove(waiter)

    def _drop(self, watch: Watch) -> None:
        """Forget a watch with no waiters left; unsubscribe what is still subscribed."""
        watch.removed = True
        if self._watches.get(watch.signature) is watch:
            del self._watches[watch.signature]
        self._poller.settled(watch.signature)
        for sub_id in watch.subs.values():
            self._subs_index.pop(sub_id, None)
            self._link.unsubscribe(sub_id)
        watch.subs.clear()
        # Pending subscriptions are unsubscribed when their reply arrives (see on_subscribe_reply).

    def _refuse(self, message: WatchSignature, reason: str) -> None:
        self.vitals.refused += 1
        logger.warning("{}: refused to watch {} (trade {}): {}", self.name, message.signature, message.trade_id, reason)
        refusal = WatchRefused(trade_id=message.trade_id, signature=message.signature, reason=reason)
        self._outbox.tell(message.reply_to, refusal)
        self._outbox.audit(
            EventType.ERROR_EVENT,
            {"event": "watch_refused", "signature": message.signature, "reason": reason},
            correlation_id=message.trade_id,
            severity=Severity.WARNING,
        )

    def _needs(self, watch: Watch) -> set[Commitment]:
        return book.subscriptions_needed((w.tier for w in watch.waiters), watch.landing)

    def resubscribe(self, watch: Watch) -> None:
        """Subscribe ``watch`` at every commitment it still needs and has not asked for."""
        if not self._link.is_open:
            return
        for commitment in self._needs(watch):
            if commitment not in watch.subs and commitment not in watch.pending:
                watch.pending[commitment] = self._link.subscribe(watch, commitment)

    # -- deciding ---------------------------------------------------------------------------

    def _sighted(self, watch: Watch, slot: int, err: str | None, commitment: Commitment, *, via_poll: bool) -> None:
        """The node showed the transaction at ``commitment`` in ``slot``."""
        landing = book.land(watch.landing, slot, err, commitment)
        if landing is watch.landing:
            return  # processed: proves nothing
        watch.landing = landing
        self._poller.settled(watch.signature)
        self._evaluate(watch, via_poll=via_poll)
        if not watch.removed and watch.subs:
            needed = self._needs(watch)
            for commitment_, sub_id in list(watch.subs.items()):
                if commitment_ not in needed:
                    # Met another way (a poll, a finalized note): the subscription is not needed.
                    del watch.subs[commitment_]
                    self._subs_index.pop(sub_id, None)
                    self._link.unsubscribe(sub_id)

    def _evaluate(self, watch: Watch, *, via_poll: bool) -> None:
        """Deliver to every waiter whose tier is met; queue the others on the depth heap."""
        landing = watch.landing
        if landing is None:
            return
        for waiter in list(watch.waiters):
            verdict = book.judge(landing, waiter.tier, self.vitals.tip)
            if verdict is not None:
                self._finish(watch, waiter, verdict, via_poll=via_poll)
            elif not waiter.queued and (at := book.depth_slot(landing, waiter.tier)) is not None:
                waiter.queued = True
                heapq.heappush(self._depth_heap, (at, next(self._seq), watch, waiter))

    def _on_deadline(self, watch: Watch, waiter: Waiter) -> None:
        if waiter.done:
            return
        # One last look before giving up: a poll may still find the outcome (or its expiry).
        self._poller.last_look(watch, waiter)

    def time_out(self, watch: Watch, waiter: Waiter, poll_error: str | None) -> None:
        """The poller's last look found nothing final: ``timed_out``."""
        self._finish(watch, waiter, book.time_out(watch.landing, waiter.tier, self.vitals.tip, poll_error), via_poll=False)

    def _finish(self, watch: Watch, waiter: Waiter, verdict: Verdict, *, via_poll: bool) -> None:
        self._retire(watch, waiter)
        status = verdict.status
        elapsed = time.monotonic() - waiter.received
        outcome = SignatureOutcome(
            trade_id=waiter.trade_id,
            signature=watch.signature,
            status=status,
            slot=verdict.slot,
            confirmations=verdict.confirmations,
            error=verdict.error,
            elapsed_s=elapsed,
        )
        # The books first, so that a recipient asking for health sees the outcome counted.
        if via_poll:
            self.vitals.poll_outcomes += 1
        if not watch.waiters:
            self._drop(watch)
        self._outbox.tell(waiter.reply_to, outcome)
        # Hand the GIL over now: the recipient's thread is waiting for it, and this loop, in a
        # burst of notifications, would otherwise hold it until the interpreter's forced switch
        # (5 ms). Measured in bench/bench_confirmation.py: p50 ~5.7 ms -> ~0.02 ms.
        time.sleep(0)
        if self._on_outcome is not None:
            try:
                self._on_outcome(status, elapsed)
            except Exception:  # noqa: BLE001 - a metrics callback must not cost an outcome
                logger.exception("{}: on_outcome callback failed", self.name)
        # TRADE_CONFIRMATION is the executor's final settlement (the ledger reads it): what the
        # chain showed is an execution step, and timed_out or expired are not final for a trade.
        timed_out = status is OutcomeStatus.TIMED_OUT
        self._outbox.audit(
            EventType.TRADE_EXECUTION,
            {
                "phase": "chain_outcome",
                "signature": watch.signature,
                "status": status,
                "slot": outcome.slot,
                "confirmations": verdict.confirmations,
                "error": verdict.error,
                "elapsed_s": round(elapsed, 6),
                "tier": waiter.tier.describe(),
                "decided_by": "poll" if via_poll else ("timeout" if timed_out else "notification"),
            },
            correlation_id=waiter.trade_id,
            severity=Severity.INFO if status is OutcomeStatus.CONFIRMED else Severity.WARNING,
        )

    def _advance_tip(self, slot: int) -> None:
        if slot <= self.vitals.tip:
            return
        self.vitals.tip = slot
        heap = self._depth_heap
        while heap and heap[0][0] <= slot:
            _, _, watch, waiter = heapq.heappop(heap)
            waiter.queued = False
            if not waiter.done and not watch.removed:
                self._evaluate(watch, via_poll=False)
        # Those whose blockhash may have expired are polled (height first) until decided.
        expiring = []
        expiry_heap = self._expiry_heap
        while expiry_heap and book.may_have_expired(expiry_heap[0][0], slot):
            _, _, watch = heapq.heappop(expiry_heap)
            if not watch.removed and watch.landing is None:
                expiring.append(watch)
        self._poller.expiring(expiring)

    # -- from the poller --------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._link.connected

    def watches(self) -> Iterable[Watch]:
        return self._watches.values()

    def apply_statuses(
        self, chunk: list[Watch], context_slot: int, statuses: list[SignatureStatus | None], height: int
    ) -> None:
        self._advance_tip(context_slot)
        for watch, status in zip(chunk, statuses):
            if watch.removed:
                continue
            if status is not None:
                self._sighted(watch, status.slot, status.err_json, status.commitment, via_poll=True)
            elif (verdict := book.expiry(watch.landing, False, height, watch.last_valid)) is not None:
                for waiter in list(watch.waiters):
                    self._finish(watch, waiter, verdict, via_poll=True)

    # -- from the link ----------------------------------------------------------------------

    def on_connect(self) -> None:
        for watch in list(self._watches.values()):
            self.resubscribe(watch)
        # Whatever happened while no subscription was open is found by polling everything.
        self._poller.poll_everything()

    def on_disconnect(self) -> None:
        self._subs_index.clear()
        for watch in self._watches.values():
            watch.subs.clear()
            watch.pending.clear()

    def on_subscribe_reply(self, watch: Watch, commitment: Commitment, sub_id: int | None, problem: str) -> None:
        watch.pending.pop(commitment, None)
        if sub_id is None:
            self.vitals.subscribe_errors += 1
            self.vitals.last_error = f"signatureSubscribe {watch.signature} refused: {problem}"
            logger.warning("{}: {}; polling it and subscribing again at the next poll", self.name, self.vitals.last_error)
            if not watch.removed:
                self._poller.subscribe_failed(watch)
            return
        if watch.removed or commitment not in self._needs(watch):
            self._link.unsubscribe(sub_id)
            return
        watch.subs[commitment] = sub_id
        self._subs_index[sub_id] = (watch, commitment)

    def on_signature_note(self, note: SignatureNote, frame: str | bytes, arrived: float) -> None:
        sub_id = note.subscription
        entry = self._subs_index.get(sub_id) if type(sub_id) is int else None
        if entry is None:
            logger.debug("{}: signatureNotification for no subscription of ours ({!r:.40})", self.name, sub_id)
            return
        watch, commitment = entry
        if not note.well_formed:
            self._link.malformed("signatureNotification of an unknown shape", frame)
            self._poller.poll_soon(watch)  # its one-shot subscription may be spent
            return
        del self._subs_index[sub_id]  # signature subscriptions are one-shot
        watch.subs.pop(commitment, None)
        if watch.removed:
            return
        if self._trace is not None:
            self._trace(watch.signature, arrived)
        self._sighted(watch, note.slot, note.err, commitment, via_poll=False)

    def on_slot(self, slot: int) -> None:
        if self._on_slot is not None:
            self._on_slot()
        self._advance_tip(slot)

    def on_slots_flowing(self, slot: int, detail: str, reconnected: bool) -> None:
        self._report_network(ok=True, detail=detail)
        if reconnected:
            details = {"event": "reconnected", "slot": slot, "in_flight": len(self._watches)}
            self._outbox.audit(EventType.SYSTEM_EVENT, details)
            if self._on_reconnect is not None:
                self._on_reconnect()

    def on_fault(self, detail: str) -> None:
        self.vitals.last_error = detail
        logger.warning("{}: network fault: {}", self.name, detail)
        self._report_network(ok=False, detail=detail)
        self._outbox.audit(EventType.ERROR_EVENT, {"event": "network_fault", "detail": detail}, severity=Severity.WARNING)

    def _report_network(self, *, ok: bool, detail: str) -> None:
        breakers.report(self._runtime, BreakerName.NETWORK_CONNECTIVITY, ok=ok, detail=detail)

    def on_frame_failed(self, problem: str) -> None:
        self.vitals.last_error = problem
        self._poller.poll_everything()  # whatever that frame meant, a poll recovers it
