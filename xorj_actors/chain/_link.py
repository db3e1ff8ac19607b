"""The Confirmation actor's WebSocket: connect with backoff, windowed requests, the slot
subscription, frame dispatch, and the watchdog that replaces a silent connection.

Runs on the actor's loop thread. What the frames mean for the watches is the session's
(:class:`LinkEvents`); this module only knows JSON-RPC over one socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import time
from collections import deque
from typing import Any, Protocol

from loguru import logger
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from xorj_actors.chain._book import Commitment
from xorj_actors.chain._frames import Ignored, Malformed, Reply, SignatureNote, SlotNote, parse_frame
from xorj_actors.chain._rpc import compact_json
from xorj_actors.chain._state import Vitals, Watch
from xorj_actors.chain.settings import ConfirmationSettings
from xorj_actors.quotas import Endpoint, QuotaError, Quotas, turn
from xorj_actors.redaction import Redactor, redact_url, url_secrets

__all__ = ["Link", "LinkEvents"]

#: Requests sent and not yet answered. Bounds what the node must queue for us: the localnet, like
#: Agave, closes a connection whose outgoing queue grows too long (10,000 frames).
_WINDOW = 512
#: Frames beyond ``max_frame_bytes`` times this are refused by the WebSocket library itself.
_HARD_FRAME_FACTOR = 16
#: One log line per this many malformed frames after the first few (a hostile node must not
#: flood the log).
_LOG_EVERY = 1_000


class LinkEvents(Protocol):
    """What the link tells the session (all on the loop thread)."""

    def on_connect(self) -> None:
        """A new connection, slotSubscribe sent: subscribe what is in flight, poll everything."""

    def on_disconnect(self) -> None:
        """The connection is gone, and every subscription with it."""

    def on_subscribe_reply(self, watch: Watch, commitment: Commitment, sub_id: int | None, problem: str) -> None:
        """A signatureSubscribe answered: ``sub_id``, or None and the node's ``problem``."""

    def on_signature_note(self, note: SignatureNote, frame: str | bytes, arrived: float) -> None: ...

    def on_slot(self, slot: int) -> None: ...

    def on_slots_flowing(self, slot: int, detail: str, reconnected: bool) -> None:
        """The first slot on a connection (``reconnected``: not the first connection)."""

    def on_fault(self, detail: str) -> None:
        """A network fault (the link reconnects by itself)."""

    def on_frame_failed(self, problem: str) -> None:
        """Handling a frame raised: whatever it meant must be recovered by a poll."""


class Link:
    """One WebSocket to the node, replaced whenever it faults."""

    def __init__(
        self, settings: ConfirmationSettings, ws_url: str, vitals: Vitals, events: LinkEvents, name: str,
        quotas: Quotas | None = None,
    ) -> None:
        self.settings = settings
        #: Subscriptions take their turns in the ``ws_subscriptions`` budget (None: unbudgeted).
        self.quotas = quotas
        self.ws_url = ws_url
        # What faults and logs name: a provider's key in the URL stays out of them.
        self._shown_url, self._masked = redact_url(ws_url), Redactor(url_secrets(ws_url))
        self.name = name
        self._vitals = vitals
        self._events = events
        self.closing = False
        self._ws: ClientConnection | None = None
        self._connections = 0
        self._connected_at = 0.0
        self._slot_sub: int | None = None
        self._slots_flowing = False
        self._conn_fault: str | None = None
        self._ids = itertools.count(1)
        # request id -> (kind, watch, commitment); kind: "slot", "sub" or "unsub"
        self._requests: dict[int, tuple[str, Watch | None, Commitment | None]] = {}
        self._out: deque[tuple[str, str]] = deque()  # (method, frame)
        self._out_wake = asyncio.Event()
        self._unanswered = 0
        self._waiting_since = 0.0

    @property
    def is_open(self) -> bool:
        """A connection is up (requests sent now go out on it)."""
        return self._ws is not None

    @property
    def connected(self) -> bool:
        """The connection is up and slotSubscribe was accepted."""
        return self._slot_sub is not None

    # -- requests ---------------------------------------------------------------------------

    def subscribe(self, watch: Watch, commitment: Commitment) -> int:
        """signatureSubscribe ``watch`` at ``commitment``; the request id."""
        params = [watch.signature, {"commitment": commitment}]
        return self._request("sub", watch, commitment, "signatureSubscribe", params)

    def unsubscribe(self, sub_id: int) -> None:
        if self._ws is not None:
            self._request("unsub", None, None, "signatureUnsubscribe", [sub_id])

    def _request(
        self, kind: str, watch: Watch | None, commitment: Commitment | None, method: str, params: list[Any]
    ) -> int:
        request_id = next(self._ids)
        self._requests[request_id] = (kind, watch, commitment)
        self._out.append((method, json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})))
        self._out_wake.set()
        return request_id

    async def _writer(self, ws: ClientConnection) -> None:
        out = self._out
        while True:
            while not out or self._unanswered >= _WINDOW:
                self._out_wake.clear()
                await self._out_wake.wait()
            method, frame = out.popleft()
            if method.endswith("Subscribe"):
                try:  # one writer: the frames keep their order while the budget binds
                    async with turn(self.quotas, Endpoint.WS_SUBSCRIPTIONS, owner=self.name):
                        pass
                except QuotaError as exc:
                    logger.warning("{}: {} waits for the ws_subscriptions budget: {}", self.name, method, exc)
                    out.appendleft((method, frame))
                    await asyncio.sleep(1.0)
                    continue
            if self._unanswered == 0:
                self._waiting_since = time.monotonic()
            self._unanswered += 1
            await ws.send(frame)

    # -- the connection ---------------------------------------------------------------------

    async def close(self) -> None:
        """Stop reconnecting; close the socket with a close frame if it answers within a second."""
        self.closing = True
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 1.0)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.settings.reconnect_max_s, self.settings.reconnect_initial_s * 2 ** min(attempt, 30))
        return random.uniform(ceiling / 2, ceiling)

    async def run(self) -> None:
        """Connect, serve, reconnect with backoff, until :meth:`close`."""
        attempt = 0
        while not self.closing:
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
                self._events.on_fault(f"cannot connect to {self._shown_url}: {type(exc).__name__}: {self._masked(str(exc))}")
                await asyncio.sleep(self._backoff(attempt))
                attempt += 1
                continue
            healthy = await self._serve(ws)
            if self.closing:
                return
            attempt = 0 if healthy else attempt + 1
            await asyncio.sleep(self._backoff(attempt))

    async def _serve(self, ws: ClientConnection) -> bool:
        """Subscribe, read frames until the connection ends; True if slots flowed on it."""
        self._connections += 1
        if self._connections > 1:
            self._vitals.reconnects += 1
        self._ws, self._conn_fault, self._slots_flowing = ws, None, False
        self._connected_at = time.monotonic()
        writer = asyncio.create_task(self._writer(ws), name=f"{self.name}-writer")
        self._request("slot", None, None, "slotSubscribe", [])
        self._events.on_connect()
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
        if not self.closing and self._conn_fault is None:
            self._events.on_fault(f"{reason} ({self._shown_url})")
        return self._slots_flowing

    def _disconnected(self) -> None:
        self._ws = None
        self._slot_sub = None
        self._requests.clear()
        self._out.clear()
        self._unanswered = 0
        self._events.on_disconnect()

    def _close_faulty(self, ws: ClientConnection, detail: str) -> None:
        """A network fault on a connection that is still open: report it and cut it."""
        self._conn_fault = detail
        self._events.on_fault(detail)
        if ws.transport is not None:
            ws.transport.abort()

    async def watchdog(self) -> None:
        """Cut a connection on which no slot arrives, or no request is answered, for slot_stall_s."""
        stall = self.settings.slot_stall_s
        period = min(1.0, stall / 4)
        while True:
            await asyncio.sleep(period)
            ws = self._ws
            if ws is None or self._conn_fault is not None:
                continue
            now = time.monotonic()
            quiet = now - max(self._vitals.last_slot_at, self._connected_at)
            if quiet > stall:
                self._close_faulty(ws, f"no slot from {self._shown_url} for {quiet:.1f} s (slot_stall_s {stall:g})")
            elif self._unanswered and now - self._waiting_since > stall:
                self._close_faulty(ws, f"{self._shown_url} answered none of {self._unanswered} requests for {stall:g} s")

    # -- frames -----------------------------------------------------------------------------

    def malformed(self, what: str, sample: Any) -> None:
        """Count and (sparingly) log a dropped frame."""
        count = self._vitals.malformed_frames = self._vitals.malformed_frames + 1
        if count <= 10 or count % _LOG_EVERY == 0:
            logger.warning("{}: dropped a frame ({}; {} so far): {!r:.200}", self.name, what, count, sample)

    def _on_frame(self, frame: str | bytes, arrived: float) -> None:
        """Handle one frame; never raises (no frame may take the connection down)."""
        parsed = parse_frame(frame, self.settings.max_frame_bytes)
        try:
            if type(parsed) is SignatureNote:
                self._events.on_signature_note(parsed, frame, arrived)
            elif type(parsed) is SlotNote:
                self._on_slot_note(parsed)
            elif type(parsed) is Reply:
                self._on_reply(parsed)
            elif type(parsed) is Malformed:
                self.malformed(parsed.what, parsed.sample)
            elif type(parsed) is Ignored:
                logger.debug("{}: ignored {}", self.name, parsed.what)
        except Exception as exc:  # noqa: BLE001 - a bug in a handler must not cost the connection
            logger.exception("{}: handling a frame failed: {!r:.200}", self.name, frame)
            self._events.on_frame_failed(f"handling a frame failed: {type(exc).__name__}: {exc}")

    def _on_reply(self, reply: Reply) -> None:
        request_id = reply.request_id
        request = self._requests.pop(request_id, None) if type(request_id) is int else None
        if request is None:
            self.malformed("reply to no request of ours", reply.message)
            return
        self._unanswered = max(self._unanswered - 1, 0)
        self._waiting_since = time.monotonic()
        if self._unanswered < _WINDOW:
            self._out_wake.set()
        kind, watch, commitment = request
        result, error = reply.result, reply.error
        ok = error is None and type(result) is int
        if kind == "slot":
            if ok:
                self._slot_sub = result
            elif self._ws is not None:
                self._close_faulty(self._ws, f"slotSubscribe refused: {compact_json(error or result)[:300]}")
            return
        if kind != "sub" or watch is None or commitment is None:
            return  # an unsubscribe's answer: nothing depends on it
        if ok:
            self._events.on_subscribe_reply(watch, commitment, result, "")
        else:
            self._events.on_subscribe_reply(watch, commitment, None, compact_json(error or result)[:300])

    def _on_slot_note(self, note: SlotNote) -> None:
        if self._slot_sub is None or note.subscription != self._slot_sub:
            return
        self._vitals.last_slot_at = time.monotonic()
        if not self._slots_flowing:
            self._slots_flowing = True
            detail = f"slots flow from {self._shown_url} (slot {note.slot})"
            logger.info("{}: {}", self.name, detail)
            self._events.on_slots_flowing(note.slot, detail, reconnected=self._connections > 1)
        self._events.on_slot(note.slot)
