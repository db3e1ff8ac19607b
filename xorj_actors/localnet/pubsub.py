"""Solana PubSub over WebSocket: slot, signature and account subscriptions.

The hub is a :class:`~xorj_actors.localnet.chain.ChainListener`; it runs on the chain's thread
and hands each connection's frames to that connection's writer task, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from solders.pubkey import Pubkey
from solders.signature import Signature

from xorj_actors.localnet.chain import Chain, Commitment, Landed
from xorj_actors.localnet.encoding import account_json, is_writable, json_text
from xorj_actors.localnet.rpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    RpcError,
    commitment_of,
    config_at,
    error_reply,
    param_at,
    parse_pubkey,
    parse_signature,
)

__all__ = ["PubSub"]

#: Frames queued for a client that does not read before it is disconnected.
_MAX_QUEUED = 10_000
#: The lean path's bound of the same: bytes written and not yet taken by the client.
_MAX_BUFFERED = 4 << 20
_TEXT = 0x81  # FIN, opcode 1: a whole text frame


def _text_frame(payload: bytes) -> bytes:
    """A server's (unmasked, uncompressed) WebSocket text frame of ``payload`` (RFC 6455 5.2)."""
    n = len(payload)
    if n < 126:
        return bytes((_TEXT, n)) + payload
    if n < 1 << 16:
        return bytes((_TEXT, 126)) + n.to_bytes(2, "big") + payload
    return bytes((_TEXT, 127)) + n.to_bytes(8, "big") + payload


@dataclass(eq=False, slots=True)
class _Connection:
    ws: web.WebSocketResponse
    transport: asyncio.BaseTransport | None
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    subscriptions: set[int] = field(default_factory=set)
    overflowed: bool = False
    #: The lean path (a connection without compression): the frames of this turn of the loop,
    #: written together in one ``write`` by :meth:`_flush` (a subscription's reply and its
    #: notification, a slot's notifications), not one task wake-up and one send each.
    #: ``None``: compressed, every frame goes through ``queue`` and aiohttp's writer.
    pending: list[bytes] | None = None

    def send(self, frame: dict[str, Any]) -> None:
        if self.overflowed:
            return
        pending = self.pending
        if pending is not None:
            if not pending:
                self.loop.call_soon(self._flush)
            pending.append(_text_frame(json_text(frame).encode()))
            return
        if self.queue.qsize() >= _MAX_QUEUED:
            # A client that stopped reading is closed rather than grow memory forever.
            self._overflow()
            return
        self.queue.put_nowait(json_text(frame))

    def _flush(self) -> None:
        frames, self.pending = self.pending, []
        transport = self.transport
        if not frames or self.overflowed or self.ws.closed or not isinstance(transport, asyncio.Transport) or transport.is_closing():
            return  # closing: the reader side cleans up
        transport.write(b"".join(frames))
        if transport.get_write_buffer_size() > _MAX_BUFFERED:
            self._overflow()

    def _overflow(self) -> None:
        self.overflowed = True
        self.queue.put_nowait(None)  # the writer task closes the connection


@dataclass(slots=True)
class _Subscription:
    sub_id: int
    kind: str
    conn: _Connection
    commitment: Commitment = "finalized"
    signature: Signature | None = None
    pubkey: Pubkey | None = None
    encoding: str = "base64"
    received: bool = False


class PubSub:
    """All WebSocket connections and subscriptions of one chain."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self._ids = itertools.count(1)
        self.connections: set[_Connection] = set()
        self._subs: dict[int, _Subscription] = {}
        self._slot_subs: dict[int, _Subscription] = {}
        self._sig_subs: dict[Signature, dict[int, _Subscription]] = {}
        self._account_subs: dict[Pubkey, dict[int, _Subscription]] = {}
        #: Account changes waiting for their slot to reach a subscription's commitment.
        self._account_changes: set[tuple[int, int]] = set()
        chain.listeners.append(self)

    # -- connection lifecycle ---------------------------------------------------------------

    async def serve(self, request: web.Request) -> web.WebSocketResponse:
        """Serve one WebSocket connection until it closes."""
        ws = web.WebSocketResponse(max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = _Connection(ws, request.transport, asyncio.get_running_loop())
        if not ws.compress:
            conn.pending = []
        self.connections.add(conn)
        writer = asyncio.create_task(self._write(conn))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._handle_text(conn, msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self._forget(conn)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return ws

    async def _write(self, conn: _Connection) -> None:
        try:
            while (frame := await conn.queue.get()) is not None:
                await conn.ws.send_str(frame)
            await conn.ws.close()
        except ConnectionError:
            pass  # the reader side sees the same loss and cleans up

    def _forget(self, conn: _Connection) -> None:
        self.connections.discard(conn)
        for sub_id in list(conn.subscriptions):
            self._remove(sub_id)

    def drop_all(self) -> int:
        """Cut every connection without a closing handshake, as a network failure would."""
        dropped = list(self.connections)
        for conn in dropped:
            if isinstance(conn.transport, asyncio.Transport):
                conn.transport.abort()
            self._forget(conn)
        return len(dropped)

    # -- requests ---------------------------------------------------------------------------

    def _handle_text(self, conn: _Connection, text: str) -> None:
        try:
            request = json.loads(text)
        except ValueError:
            conn.send(error_reply(PARSE_ERROR, "Parse error"))
            return
        if not isinstance(request, dict) or request.get("jsonrpc") != "2.0":
            conn.send(error_reply(INVALID_REQUEST, "Invalid request", _id_of(request)))
            return
        request_id = request.get("id")
        method = request.get("method")
        params = request.get("params", [])
        handler = getattr(self, f"_m_{method}", None) if isinstance(method, str) else None
        if handler is None:
            conn.send(error_reply(METHOD_NOT_FOUND, "Method not found", request_id))
            return
        if not isinstance(params, list):
            conn.send(error_reply(INVALID_PARAMS, "Invalid params: expected an array", request_id))
            return
        try:
            result, after = handler(conn, params)
        except RpcError as exc:
            conn.send({"jsonrpc": "2.0", "error": exc.to_json(), "id": request_id})
            return
        conn.send({"jsonrpc": "2.0", "result": result, "id": request_id})
        if after is not None:
            after()

    def _add(self, conn: _Connection, kind: str, **kwargs: Any) -> _Subscription:
        sub = _Subscription(next(self._ids), kind, conn, **kwargs)
        self._subs[sub.sub_id] = sub
        conn.subscriptions.add(sub.sub_id)
        return sub

    def _remove(self, sub_id: int) -> _Subscription | None:
        sub = self._subs.pop(sub_id, None)
        if sub is None:
            return None
        sub.conn.subscriptions.discard(sub_id)
        self._slot_subs.pop(sub_id, None)
        for index, key in ((self._sig_subs, sub.signature), (self._account_subs, sub.pubkey)):
            subs = index.get(key) if key is not None else None
            if subs is not None:
                subs.pop(sub_id, None)
                if not subs:
                    del index[key]
        return sub

    def _unsubscribe(self, conn: _Connection, params: list[Any], kind: str) -> tuple[bool, None]:
        sub_id = param_at(params, 0)
        sub = self._subs.get(sub_id) if isinstance(sub_id, int) else None
        if sub is None or sub.kind != kind or sub.conn is not conn:
            raise RpcError(INVALID_PARAMS, "Invalid subscription id.")
        self._remove(sub_id)
        return True, None

    def _m_slotSubscribe(self, conn: _Connection, params: list[Any]) -> tuple[int, None]:
        sub = self._add(conn, "slot")
        self._slot_subs[sub.sub_id] = sub
        return sub.sub_id, None

    def _m_slotUnsubscribe(self, conn: _Connection, params: list[Any]) -> tuple[bool, None]:
        return self._unsubscribe(conn, params, "slot")

    def _m_signatureSubscribe(self, conn: _Connection, params: list[Any]) -> tuple[int, Any]:
        signature = parse_signature(param_at(params, 0))
        config = config_at(params, 1)
        sub = self._add(
            conn,
            "signature",
            commitment=commitment_of(config),
            signature=signature,
            received=bool(config.get("enableReceivedNotification", False)),
        )
        self._sig_subs.setdefault(signature, {})[sub.sub_id] = sub
        # Already at the wanted commitment: notify right after the subscription reply.
        return sub.sub_id, lambda: self._check_signature(signature)

    def _m_signatureUnsubscribe(self, conn: _Connection, params: list[Any]) -> tuple[bool, None]:
        return self._unsubscribe(conn, params, "signature")

    def _m_accountSubscribe(self, conn: _Connection, params: list[Any]) -> tuple[int, None]:
        pubkey = parse_pubkey(param_at(params, 0))
        config = config_at(params, 1)
        encoding = config.get("encoding", "base64")
        if encoding not in ("base64", "base58", "jsonParsed"):
            raise RpcError(INVALID_PARAMS, f"Invalid params: unsupported encoding {encoding!r}")
        sub = self._add(conn, "account", commitment=commitment_of(config), pubkey=pubkey, encoding=encoding)
        self._account_subs.setdefault(pubkey, {})[sub.sub_id] = sub
        return sub.sub_id, None

    def _m_accountUnsubscribe(self, conn: _Connection, params: list[Any]) -> tuple[bool, None]:
        return self._unsubscribe(conn, params, "account")

    # -- chain events -----------------------------------------------------------------------

    def on_slot(self, slot: int) -> None:
        root = self.chain.commitment_slot("finalized")
        for sub in self._slot_subs.values():
            self._notify(sub, "slotNotification", {"parent": slot - 1, "root": root, "slot": slot})
        for signature in [s for s in self._sig_subs if s in self.chain.landed]:
            self._check_signature(signature)
        if self._account_changes:
            self._flush_accounts()

    def on_received(self, signature: Signature) -> None:
        for sub in self._sig_subs.get(signature, {}).values():
            if sub.received:
                self._notify(sub, "signatureNotification", self._context("receivedSignature"))

    def on_landed(self, landed: Landed) -> None:
        self._check_signature(landed.signature)
        if not self._account_subs:
            return
        message = landed.tx.message
        written = [key for i, key in enumerate(message.account_keys) if is_writable(message, i)]
        for key in (*written, *landed.loaded.writable):  # loaded through lookup tables too
            for sub in self._account_subs.get(key, {}).values():
                self._account_changes.add((landed.slot, sub.sub_id))
        self._flush_accounts()

    def _check_signature(self, signature: Signature) -> None:
        landed = self.chain.landed.get(signature)
        subs = self._sig_subs.get(signature)
        if landed is None or not subs:
            return
        for sub in [s for s in subs.values() if self.chain.slot_reached(landed.slot, s.commitment)]:
            self._remove(sub.sub_id)  # signature subscriptions are one-shot
            self._notify(sub, "signatureNotification", self._context({"err": landed.err_json}, landed.slot))

    def _flush_accounts(self) -> None:
        # The localnet keeps no account history: a notification carries the current state.
        due = []
        for slot, sub_id in self._account_changes:
            sub = self._subs.get(sub_id)
            if sub is None or self.chain.slot_reached(slot, sub.commitment):
                due.append((slot, sub_id))
        for slot, sub_id in sorted(due):
            self._account_changes.discard((slot, sub_id))
            sub = self._subs.get(sub_id)
            if sub is not None and sub.pubkey is not None:
                account = account_json(self.chain.svm.get_account(sub.pubkey), sub.encoding, self.chain.decimals_of)
                self._notify(sub, "accountNotification", self._context(account, slot))

    def _context(self, value: Any, slot: int | None = None) -> dict[str, Any]:
        return {"context": {"slot": self.chain.slot() if slot is None else slot}, "value": value}

    def _notify(self, sub: _Subscription, method: str, result: Any) -> None:
        sub.conn.send(
            {"jsonrpc": "2.0", "method": method, "params": {"result": result, "subscription": sub.sub_id}}
        )


def _id_of(request: Any) -> Any:
    return request.get("id") if isinstance(request, dict) else None
