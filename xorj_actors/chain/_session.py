"""The Confirmation actor's loop side: one WebSocket, its subscriptions, polls and outcomes.

Everything here runs on the actor's asyncio loop thread. The actor only forwards requests
(``watch_threadsafe``, ``unwatch_threadsafe``) and reads plain attributes for its health answer;
outcomes are told from here straight to each watch's ``reply_to``.

Confirmation rule (docs/CONFIRMATION.md): a tier of N confirmations is met when the transaction
is at ``confirmed`` (a ``confirmed`` signature notification, or a poll saying so) and the newest
slot seen is at least N slots past its landing slot; a ``finalized`` tier is met by a
``finalized`` notification or poll, and reports N.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from pykka import ActorDeadError, ActorRef
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from supervisors import MailboxFull, Message
from xorj_actors.audit import EventType, Severity, audit_event, record
from xorj_actors.chain._messages import ConfirmationHealth, SignatureOutcome, WatchRefused, WatchSignature
from xorj_actors.chain._rpc import MAX_SIGNATURES_PER_CALL, RpcCallError, RpcHttp, SignatureStatus, compact_json
from xorj_actors.chain.settings import ConfirmationSettings, Tier

__all__ = ["NETWORK_BREAKER", "Session"]

#: Registered name of the network connectivity breaker, told of every network fault.
NETWORK_BREAKER = "breaker:network_connectivity"
#: Requests sent and not yet answered. Bounds what the node must queue for us: the localnet, like
#: Agave, closes a connection whose outgoing queue grows too long (10,000 frames).
_WINDOW = 512
#: Frames beyond ``max_frame_bytes`` times this are refused by the WebSocket library itself.
_HARD_FRAME_FACTOR = 16
#: getSignatureStatuses requests of one poll round in flight at once.
_POLL_CONCURRENCY = 4
#: A reply_to whose mailbox is full is retried this often, this far apart (5 s in all).
_DELIVERY_RETRIES = 100
_DELIVERY_RETRY_S = 0.05
#: One log line per this many malformed frames after the first few (a hostile node must not
#: flood the log).
_LOG_EVERY = 1_000


@dataclass(eq=False, slots=True)
class _Waiter:
    """One WatchSignature: who to tell, under which tier."""

    trade_id: str
    reply_to: ActorRef[Any]
    tier: Tier
    received: float  # time.monotonic() when the actor received the request
    timer: asyncio.TimerHandle | None = None
    queued: bool = False  # in the depth heap
    done: bool = False


@dataclass(eq=False, slots=True)
class _Watch:
    """One signature in flight, however many waiters it has."""

    signature: str
    last_valid: int
    waiters: list[_Waiter] = field(default_factory=list)
    slot: int | None = None  # landing slot, once seen at confirmed or finalized
    err: str | None = None  # compact JSON of the on-chain error
    confirmed: bool = False
    finalized: bool = False
    subs: dict[str, int] = field(default_factory=dict)  # commitment -> subscription id
    pending: dict[str, int] = field(default_factory=dict)  # commitment -> request id
    removed: bool = False

    def needs(self) -> set[str]:
        """The commitments still worth a subscription."""
        wanted = set()
        for w in self.waiters:
            if w.tier.finalized:
                if not self.finalized:
                    wanted.add("finalized")
            elif not self.confirmed:
                wanted.add("confirmed")
        return wanted


class Session:
    """The WebSocket client, the poller and the watchdog of one Confirmation actor."""

    def __init__(
        self,
        settings: ConfirmationSettings,
        ws_url: str,
        rpc_url: str,
        *,
        runtime: Any,
        name: str = "confirmation",
        on_outcome: Callable[[str, float], None] | None = None,
        trace: Callable[[str, float], None] | None = None,
    ) -> None:
        self.settings = settings
        self.ws_url = ws_url
        self.name = name
        self._runtime = runtime
        self._on_outcome = on_outcome
        self._trace = trace
        self._rpc = RpcHttp(rpc_url, settings.http_timeout_s)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        # connection
        self._ws: ClientConnection | None = None
        self._connections = 0
        self._connected_at = 0.0
        self._slot_sub: int | None = None
        self._slots_flowing = False
        self._conn_fault: str | None = None
        self._ids = itertools.count(1)
        self._requests: dict[int, tuple[str, _Watch | None, str]] = {}
        self._subs_index: dict[int, tuple[_Watch, str]] = {}
        self._out: deque[str] = deque()
        self._out_wake = asyncio.Event()
        self._unanswered = 0
        self._waiting_since = 0.0
        # watches
        self._watches: dict[str, _Watch] = {}
        self._seq = itertools.count()
        self._depth_heap: list[tuple[int, int, _Watch, _Waiter]] = []
        self._expiry_heap: list[tuple[int, int, _Watch]] = []
        self._expiring: dict[str, _Watch] = {}
        # polling
        self._poll_wake = asyncio.Event()
        self._poll_all = False
        self._poll_soon: dict[str, _Watch] = {}
        self._sub_failed: dict[str, _Watch] = {}
        self._due: list[tuple[_Watch, _Waiter]] = []
        # health (plain attributes: the actor reads them from its own thread)
        self.tip = 0
        self.last_slot_at = 0.0
        self.reconnects = 0
        self.polls = 0
        self.poll_outcomes = 0
        self.subscribe_errors = 0
        self.malformed_frames = 0
        self.refused = 0
        self.last_error: str | None = None
        self._warned_breaker = False

    # -- lifecycle (on the loop) ------------------------------------------------------------

    async def start(self) -> None:
        """Open the HTTP session and start the connection, poller and watchdog tasks."""
        self._loop = asyncio.get_running_loop()
        await self._rpc.open()
        self._tasks = [
            asyncio.create_task(self._connection_loop(), name=f"{self.name}-ws"),
            asyncio.create_task(self._poller(), name=f"{self.name}-poll"),
            asyncio.create_task(self._watchdog(), name=f"{self.name}-watchdog"),
        ]

    async def close(self) -> None:
        """Close the socket (with a close frame if it answers within a second) and stop."""
        self._closing = True
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 1.0)
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

    # -- entry points (any thread) ----------------------------------------------------------

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

    def health(self) -> ConfirmationHealth:
        """A snapshot, read from the actor's thread (each attribute read is atomic)."""
        last = self.last_slot_at
        return ConfirmationHealth(
            connected=self._slot_sub is not None,
            slot=self.tip,
            seconds_since_slot=round(time.monotonic() - last, 3) if last else None,
            in_flight=len(self._watches),
            reconnects=self.reconnects,
            polls=self.polls,
            last_error=self.last_error,
            poll_outcomes=self.poll_outcomes,
            subscribe_errors=self.subscribe_errors,
            malformed_frames=self.malformed_frames,
            refused=self.refused,
        )

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
            watch = self._watches[signature] = _Watch(signature, message.last_valid_block_height)
            heapq.heappush(self._expiry_heap, (watch.last_valid, next(self._seq), watch))
        else:
            if message.last_valid_block_height > watch.last_valid:
                # One signature, one blockhash; if the sender disagrees, the later expiry is the safe one.
                watch.last_valid = message.last_valid_block_height
                heapq.heappush(self._expiry_heap, (watch.last_valid, next(self._seq), watch))
            urn = message.reply_to.actor_urn
            for old in [w for w in watch.waiters if w.trade_id == message.trade_id and w.reply_to.actor_urn == urn]:
                self._retire(watch, old)  # the same request again replaces the earlier one
        waiter = _Waiter(message.trade_id, message.reply_to, tier, received)
        waiter.timer = self._loop.call_at(received + tier.timeout_s, self._on_deadline, watch, waiter)
        watch.waiters.append(waiter)
        self._evaluate(watch, via_poll=False)
        if not watch.removed:
            self._subscribe(watch)

    def _unwatch(self, signature: str) -> None:
        watch = self._watches.get(signature)
        if watch is None:
            return
        for waiter in list(watch.waiters):
            self._retire(watch, waiter)
        self._drop(watch)
        logger.debug("{}: unwatched {}", self.name, signature)

    def _retire(self, watch: _Watch, waiter: _Waiter) -> None:
        waiter.done = True
        if waiter.timer is not None:
            waiter.timer.cancel()
        watch.waiters.remove(waiter)

    def _drop(self, watch: _Watch) -> None:
        """Forget a watch with no waiters left; unsubscribe what is still subscribed."""
        watch.removed = True
        if self._watches.get(watch.signature) is watch:
            del self._watches[watch.signature]
        self._expiring.pop(watch.signature, None)
        for sub_id in watch.subs.values():
            self._subs_index.pop(sub_id, None)
            if self._ws is not None:
                self._request("unsub", None, "", "signatureUnsubscribe", [sub_id])
        watch.subs.clear()
        # Pending subscriptions are unsubscribed when their reply arrives (see _on_reply).

    def _refuse(self, message: WatchSignature, reason: str) -> None:
        self.refused += 1
        logger.warning("{}: refused to watch {} (trade {}): {}", self.name, message.signature, message.trade_id, reason)
        refusal = WatchRefused(trade_id=message.trade_id, signature=message.signature, reason=reason)
        self._tell(message.reply_to, refusal)
        self._audit(
            EventType.ERROR_EVENT,
            {"event": "watch_refused", "signature": message.signature, "reason": reason},
            correlation_id=message.trade_id,
            severity=Severity.WARNING,
        )

    # -- deciding ---------------------------------------------------------------------------

    def _landed(self, watch: _Watch, slot: int, err_json: str | None, commitment: str, *, via_poll: bool) -> None:
        """The transaction is at ``commitment`` (confirmed or finalized) in ``slot``."""
        if commitment == "finalized":
            watch.finalized = True
        watch.confirmed = True
        watch.slot, watch.err = slot, err_json
        self._expiring.pop(watch.signature, None)
        self._evaluate(watch, via_poll=via_poll)
        if not watch.removed and watch.subs:
            for commitment_, sub_id in list(watch.subs.items()):
                if commitment_ not in watch.needs():
                    # Met another way (a poll, a finalized note): the subscription is not needed.
                    del watch.subs[commitment_]
                    self._subs_index.pop(sub_id, None)
                    if self._ws is not None:
                        self._request("unsub", None, "", "signatureUnsubscribe", [sub_id])

    def _evaluate(self, watch: _Watch, *, via_poll: bool) -> None:
        """Deliver to every waiter whose tier is met; queue the others on the depth heap."""
        if not watch.confirmed:
            return
        assert watch.slot is not None
        status = "confirmed" if watch.err is None else "failed"
        for waiter in list(watch.waiters):
            tier = waiter.tier
            if watch.finalized:
                self._finish(watch, waiter, status, tier.confirmations, watch.err, via_poll=via_poll)
            elif tier.finalized:
                continue
            elif (depth := self.tip - watch.slot) >= tier.confirmations:
                self._finish(watch, waiter, status, depth, watch.err, via_poll=via_poll)
            elif not waiter.queued:
                waiter.queued = True
                heapq.heappush(self._depth_heap, (watch.slot + tier.confirmations, next(self._seq), watch, waiter))

    def _expire(self, watch: _Watch, height: int) -> None:
        error = (
            f"blockhash expired: block height {height} at confirmed is past last valid block height "
            f"{watch.last_valid} and the node does not know the signature (searchTransactionHistory): "
            "it can never land; safe to re-sign"
        )
        for waiter in list(watch.waiters):
            self._finish(watch, waiter, "expired", 0, error, via_poll=True)

    def _on_deadline(self, watch: _Watch, waiter: _Waiter) -> None:
        if waiter.done:
            return
        # One last look before giving up: a poll may still find the outcome (or its expiry).
        self._due.append((watch, waiter))
        self._poll_wake.set()

    def _time_out(self, watch: _Watch, waiter: _Waiter, poll_error: str | None) -> None:
        tier = waiter.tier
        error = f"no outcome within {tier.timeout_s:g} s (tier {tier.describe()})"
        if watch.confirmed and watch.slot is not None:
            wanted = "finalized" if tier.finalized else f"{tier.confirmations} confirmations deep"
            error += f"; landed in slot {watch.slot} at confirmed, not yet {wanted}"
        error += "; the transaction may still land: do not re-sign before it expires"
        if poll_error is not None:
            error += f" (final status check failed: {poll_error})"
        depth = max(self.tip - watch.slot, 0) if watch.confirmed and watch.slot is not None else 0
        self._finish(watch, waiter, "timed_out", depth, error, via_poll=False)

    def _finish(
        self, watch: _Watch, waiter: _Waiter, status: str, confirmations: int, error: str | None, *, via_poll: bool
    ) -> None:
        self._retire(watch, waiter)
        landed = status in ("confirmed", "failed") or (status == "timed_out" and watch.confirmed)
        elapsed = time.monotonic() - waiter.received
        outcome = SignatureOutcome(
            trade_id=waiter.trade_id,
            signature=watch.signature,
            status=status,
            slot=watch.slot if landed else None,
            confirmations=confirmations,
            error=error,
            elapsed_s=elapsed,
        )
        # The books first, so that a recipient asking for health sees the outcome counted.
        if via_poll:
            self.poll_outcomes += 1
        if not watch.waiters:
            self._drop(watch)
        self._tell(waiter.reply_to, outcome)
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
        self._audit(
            EventType.TRADE_EXECUTION,
            {
                "phase": "chain_outcome",
                "signature": watch.signature,
                "status": status,
                "slot": outcome.slot,
                "confirmations": confirmations,
                "error": error,
                "elapsed_s": round(elapsed, 6),
                "tier": waiter.tier.describe(),
                "decided_by": "poll" if via_poll else ("timeout" if status == "timed_out" else "notification"),
            },
            correlation_id=waiter.trade_id,
            severity=Severity.INFO if status == "confirmed" else Severity.WARNING,
        )

    def _tell(self, ref: ActorRef[Any], message: Message, attempt: int = 0) -> None:
        """Tell ``message``; a full mailbox is retried for 5 s, then logged and audited."""
        try:
            ref.tell(message)
            return
        except ActorDeadError:
            problem = "the recipient is dead"
        except MailboxFull:
            if attempt < _DELIVERY_RETRIES and not self._closing and self._loop is not None:
                if attempt == 0:
                    logger.warning("{}: mailbox of {} full; retrying {}", self.name, ref, type(message).__name__)
                self._loop.call_later(_DELIVERY_RETRY_S, self._tell, ref, message, attempt + 1)
                return
            problem = f"the recipient's mailbox stayed full for {_DELIVERY_RETRIES * _DELIVERY_RETRY_S:g} s"
        logger.error("{}: {} not delivered ({}): {!r}", self.name, type(message).__name__, problem, message)
        self._audit(
            EventType.ERROR_EVENT,
            {"event": "delivery_failed", "message": repr(message), "problem": problem},
            correlation_id=getattr(message, "trade_id", None),
            severity=Severity.ERROR,
        )

    # -- the connection ---------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.settings.reconnect_max_s, self.settings.reconnect_initial_s * 2 ** min(attempt, 30))
        return random.uniform(ceiling / 2, ceiling)

    async def _connection_loop(self) -> None:
        attempt = 0
        while not self._closing:
            try:
                ws = await connect(
                    self.ws_url,
                    open_timeout=self.settings.connect_timeout_s,
                    close_timeout=1.0,
                    max_size=self.settings.max_frame_bytes * _HARD_FRAME_FACTOR,
                    max_queue=1024,
                    compression=None,
                    proxy=None,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure to connect is a network fault
                self._fault(f"cannot connect to {self.ws_url}: {type(exc).__name__}: {exc}")
                await asyncio.sleep(self._backoff(attempt))
                attempt += 1
                continue
            healthy = await self._serve(ws)
            if self._closing:
                return
            attempt = 0 if healthy else attempt + 1
            await asyncio.sleep(self._backoff(attempt))

    async def _serve(self, ws: ClientConnection) -> bool:
        """Subscribe, read frames until the connection ends; True if slots flowed on it."""
        self._connections += 1
        if self._connections > 1:
            self.reconnects += 1
        self._ws, self._conn_fault, self._slots_flowing = ws, None, False
        self._connected_at = time.monotonic()
        writer = asyncio.create_task(self._writer(ws), name=f"{self.name}-writer")
        self._request("slot", None, "", "slotSubscribe", [])
        for watch in list(self._watches.values()):
            self._subscribe(watch)
        # Whatever happened while no subscription was open is found by polling everything.
        self._poll_all = True
        self._poll_wake.set()
        reason = "closed by the node"
        try:
            async for frame in ws:
                self._on_frame(frame, time.perf_counter())
        except ConnectionClosed as exc:
            reason = f"connection lost: {exc}"
        except Exception as exc:  # noqa: BLE001 - whatever broke the connection, reconnect
            logger.exception("{}: reading the WebSocket failed", self.name)
            reason = f"reading failed: {type(exc).__name__}: {exc}"
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
            if ws.transport is not None and not ws.transport.is_closing():
                ws.transport.abort()
            self._disconnected()
        if not self._closing and self._conn_fault is None:
            self._fault(f"{reason} ({self.ws_url})")
        return self._slots_flowing

    def _disconnected(self) -> None:
        self._ws = None
        self._slot_sub = None
        self._requests.clear()
        self._subs_index.clear()
        self._out.clear()
        self._unanswered = 0
        for watch in self._watches.values():
            watch.subs.clear()
            watch.pending.clear()

    async def _writer(self, ws: ClientConnection) -> None:
        out = self._out
        while True:
            while not out or self._unanswered >= _WINDOW:
                self._out_wake.clear()
                await self._out_wake.wait()
            frame = out.popleft()
            if self._unanswered == 0:
                self._waiting_since = time.monotonic()
            self._unanswered += 1
            await ws.send(frame)

    def _request(self, kind: str, watch: _Watch | None, commitment: str, method: str, params: list[Any]) -> int:
        request_id = next(self._ids)
        self._requests[request_id] = (kind, watch, commitment)
        self._out.append(json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}))
        self._out_wake.set()
        return request_id

    def _subscribe(self, watch: _Watch) -> None:
        if self._ws is None:
            return
        for commitment in watch.needs():
            if commitment not in watch.subs and commitment not in watch.pending:
                params = [watch.signature, {"commitment": commitment}]
                watch.pending[commitment] = self._request("sub", watch, commitment, "signatureSubscribe", params)

    def _close_faulty(self, ws: ClientConnection, detail: str) -> None:
        """A network fault on a connection that is still open: report it and cut it."""
        self._conn_fault = detail
        self._fault(detail)
        if ws.transport is not None:
            ws.transport.abort()

    def _fault(self, detail: str) -> None:
        self.last_error = detail
        logger.warning("{}: network fault: {}", self.name, detail)
        self._report_network(False, detail)
        self._audit(EventType.ERROR_EVENT, {"event": "network_fault", "detail": detail}, severity=Severity.WARNING)

    def _report_network(self, ok: bool, detail: str) -> None:
        try:
            from xorj_actors.breakers import BreakerEvent  # type: ignore[attr-defined]
        except ImportError as exc:
            if not self._warned_breaker:
                self._warned_breaker = True
                logger.warning("{}: cannot report to the network breaker (no BreakerEvent): {}", self.name, exc)
            return
        ref = self._runtime.whereis(NETWORK_BREAKER)
        if ref is None:
            logger.warning("{}: network breaker not running; not told ok={} ({})", self.name, ok, detail)
            return
        try:
            ref.tell(BreakerEvent(breaker="network_connectivity", ok=ok, detail=detail))
        except (ActorDeadError, MailboxFull) as exc:
            logger.warning("{}: could not tell the network breaker ok={}: {!r}", self.name, ok, exc)

    # -- frames -----------------------------------------------------------------------------

    def _malformed(self, what: str, frame: Any) -> None:
        self.malformed_frames += 1
        if self.malformed_frames <= 10 or self.malformed_frames % _LOG_EVERY == 0:
            logger.warning(
                "{}: dropped a frame ({}; {} so far): {!r:.200}", self.name, what, self.malformed_frames, frame
            )

    def _on_frame(self, frame: str | bytes, arrived: float) -> None:
        """Handle one frame; never raises (no frame may take the connection down)."""
        if len(frame) > self.settings.max_frame_bytes:
            self._malformed(f"{len(frame)} bytes, over max_frame_bytes", frame[:200])
            return
        try:
            msg = json.loads(frame)
        except ValueError:
            self._malformed("not JSON", frame)
            return
        if type(msg) is not dict:
            self._malformed("not a JSON object", frame)
            return
        try:
            method = msg.get("method")
            if method is None:
                if "id" in msg:
                    self._on_reply(msg)
                else:
                    self._malformed("neither a notification nor a reply", frame)
                return
            params = msg.get("params")
            if type(params) is not dict:
                self._malformed("notification without params", frame)
            elif method == "signatureNotification":
                self._on_signature_note(params, frame, arrived)
            elif method == "slotNotification":
                self._on_slot_note(params, frame)
            else:
                logger.debug("{}: ignored a {!r:.40} notification", self.name, method)
        except Exception as exc:  # noqa: BLE001 - a bug in a handler must not cost the connection
            logger.exception("{}: handling a frame failed: {!r:.200}", self.name, frame)
            self.last_error = f"handling a frame failed: {type(exc).__name__}: {exc}"
            self._poll_all = True  # whatever that frame meant, a poll recovers it
            self._poll_wake.set()

    def _on_reply(self, msg: dict[str, Any]) -> None:
        request_id = msg.get("id")
        request = self._requests.pop(request_id, None) if type(request_id) is int else None
        if request is None:
            self._malformed("reply to no request of ours", msg)
            return
        self._unanswered = max(self._unanswered - 1, 0)
        self._waiting_since = time.monotonic()
        if self._unanswered < _WINDOW:
            self._out_wake.set()
        kind, watch, commitment = request
        result, error = msg.get("result"), msg.get("error")
        ok = error is None and type(result) is int
        if kind == "slot":
            if ok:
                self._slot_sub = result
            elif self._ws is not None:
                self._close_faulty(self._ws, f"slotSubscribe refused: {compact_json(error or result)[:300]}")
            return
        if kind != "sub" or watch is None:
            return  # an unsubscribe's answer: nothing depends on it
        watch.pending.pop(commitment, None)
        if not ok:
            self.subscribe_errors += 1
            self.last_error = f"signatureSubscribe {watch.signature} refused: {compact_json(error or result)[:300]}"
            logger.warning("{}: {}; polling it and subscribing again at the next poll", self.name, self.last_error)
            if not watch.removed:
                self._sub_failed[watch.signature] = watch
                self._poll_soon[watch.signature] = watch
            return
        if watch.removed or commitment not in watch.needs():
            self._request("unsub", None, "", "signatureUnsubscribe", [result])
            return
        watch.subs[commitment] = result
        self._subs_index[result] = (watch, commitment)

    def _on_signature_note(self, params: dict[str, Any], frame: Any, arrived: float) -> None:
        result = params.get("result")
        if type(result) is not dict:
            self._malformed("signatureNotification without a result object", frame)
            return
        value = result.get("value")
        if value == "receivedSignature":
            return  # the leader has it; nothing is decided by that
        sub_id = params.get("subscription")
        entry = self._subs_index.get(sub_id) if type(sub_id) is int else None
        if entry is None:
            logger.debug("{}: signatureNotification for no subscription of ours ({!r:.40})", self.name, sub_id)
            return
        watch, commitment = entry
        context = result.get("context")
        slot = context.get("slot") if type(context) is dict else None
        if type(value) is not dict or "err" not in value or type(slot) is not int or slot < 0:
            self._malformed("signatureNotification of an unknown shape", frame)
            self._poll_soon[watch.signature] = watch  # its one-shot subscription may be spent
            self._poll_wake.set()
            return
        del self._subs_index[sub_id]  # signature subscriptions are one-shot
        watch.subs.pop(commitment, None)
        if watch.removed:
            return
        if self._trace is not None:
            self._trace(watch.signature, arrived)
        err = value["err"]
        self._landed(watch, slot, None if err is None else compact_json(err), commitment, via_poll=False)

    def _on_slot_note(self, params: dict[str, Any], frame: Any) -> None:
        result = params.get("result")
        slot = result.get("slot") if type(result) is dict else None
        if type(slot) is not int or slot < 0:
            self._malformed("slotNotification without a slot", frame)
            return
        if self._slot_sub is None or params.get("subscription") != self._slot_sub:
            return
        self.last_slot_at = time.monotonic()
        if not self._slots_flowing:
            self._slots_flowing = True
            detail = f"slots flow from {self.ws_url} (slot {slot})"
            logger.info("{}: {}", self.name, detail)
            self._report_network(True, detail)
            if self._connections > 1:
                details = {"event": "reconnected", "slot": slot, "in_flight": len(self._watches)}
                self._audit(EventType.SYSTEM_EVENT, details)
        self._advance_tip(slot)

    def _advance_tip(self, slot: int) -> None:
        if slot <= self.tip:
            return
        self.tip = slot
        heap = self._depth_heap
        while heap and heap[0][0] <= slot:
            _, _, watch, waiter = heapq.heappop(heap)
            waiter.queued = False
            if not waiter.done and not watch.removed:
                self._evaluate(watch, via_poll=False)
        # Block height never exceeds the slot: only a watch whose last valid height is below the
        # tip can have expired. Those are polled (height first) until decided.
        expiry = self._expiry_heap
        while expiry and expiry[0][0] < slot:
            _, _, watch = heapq.heappop(expiry)
            if not watch.removed and not watch.confirmed:
                self._expiring[watch.signature] = watch
        if self._expiring:
            self._poll_wake.set()

    # -- polling ----------------------------------------------------------------------------

    async def _poller(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poll_wake.wait(), self.settings.poll_interval_s)
            self._poll_wake.clear()
            try:
                await self._poll_round()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the poller must outlive a bug in one round
                logger.exception("{}: poll round failed", self.name)
                self.last_error = f"poll round failed: {type(exc).__name__}: {exc}"

    async def _poll_round(self) -> None:
        connected = self._slot_sub is not None
        if connected and self._sub_failed:
            for watch in self._sub_failed.values():
                if not watch.removed:
                    self._subscribe(watch)
            self._sub_failed.clear()
        full = self._poll_all or not connected
        self._poll_all = False
        due, self._due = self._due, []
        if full:
            targets = list(self._watches.values())
        else:
            chosen = {**self._poll_soon, **self._expiring}
            for watch, _ in due:
                chosen[watch.signature] = watch
            targets = [w for w in chosen.values() if not w.removed]
        self._poll_soon.clear()
        poll_error = None
        if targets:
            try:
                await self._poll(targets)
            except RpcCallError as exc:
                poll_error = str(exc)
                self.last_error = f"poll failed: {poll_error}"
                logger.warning("{}: {}", self.name, self.last_error)
                if full:
                    self._poll_all = True
                else:
                    self._poll_soon.update((w.signature, w) for w in targets if not w.removed)
        for watch, waiter in due:
            if not waiter.done:
                self._time_out(watch, waiter, poll_error)

    async def _poll(self, watches: list[_Watch]) -> None:
        """getSignatureStatuses for ``watches``; decides what the answers allow, expiry included."""
        # Height first: once the confirmed height is past a transaction's last valid height, no
        # later block can include it, so a status lookup made after this moment that finds
        # nothing is final. The other order could miss a landing between the two calls.
        height = await self._rpc.block_height("confirmed")
        chunks = [watches[i : i + MAX_SIGNATURES_PER_CALL] for i in range(0, len(watches), MAX_SIGNATURES_PER_CALL)]
        gate = asyncio.Semaphore(_POLL_CONCURRENCY)

        async def one(chunk: list[_Watch]) -> None:
            async with gate:
                context_slot, statuses = await self._rpc.signature_statuses([w.signature for w in chunk])
            self.polls += 1
            self._apply_statuses(chunk, context_slot, statuses, height)

        results = await asyncio.gather(*(one(c) for c in chunks), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def _apply_statuses(
        self, chunk: list[_Watch], context_slot: int, statuses: list[SignatureStatus | None], height: int
    ) -> None:
        self._advance_tip(context_slot)
        for watch, status in zip(chunk, statuses):
            if watch.removed:
                continue
            if status is None:
                if not watch.confirmed and height > watch.last_valid:
                    self._expire(watch, height)
            elif status.commitment != "processed":
                self._landed(watch, status.slot, status.err_json, status.commitment, via_poll=True)

    # -- watchdog ---------------------------------------------------------------------------

    async def _watchdog(self) -> None:
        stall = self.settings.slot_stall_s
        period = min(1.0, stall / 4)
        while True:
            await asyncio.sleep(period)
            ws = self._ws
            if ws is None or self._conn_fault is not None:
                continue
            now = time.monotonic()
            quiet = now - max(self.last_slot_at, self._connected_at)
            if quiet > stall:
                self._close_faulty(ws, f"no slot from {self.ws_url} for {quiet:.1f} s (slot_stall_s {stall:g})")
            elif self._unanswered and now - self._waiting_since > stall:
                self._close_faulty(ws, f"{self.ws_url} answered none of {self._unanswered} requests for {stall:g} s")

    # -- audit ------------------------------------------------------------------------------

    def _audit(
        self,
        event_type: EventType,
        details: dict[str, Any],
        *,
        correlation_id: str | None = None,
        severity: Severity = Severity.INFO,
    ) -> None:
        try:
            event = audit_event(event_type, self.name, details, correlation_id=correlation_id, severity=severity)
            record(self._runtime, event)
        except Exception:  # noqa: BLE001 - auditing must not break confirming; record logs the cause
            logger.exception("{}: audit record failed", self.name)
