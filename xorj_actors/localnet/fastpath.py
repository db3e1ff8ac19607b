"""A lean HTTP/1.1 path in front of aiohttp on the same port, for the requests every trade makes.

On the reference 2-core machine aiohttp spends ~130 us of CPU per request and this path ~35 us,
against ~150-200 us for LiteSVM's whole swap. The plain case (HTTP/1.1, a Content-Length or no
body, a request ``route`` answers, no fault active) is answered inline: JSON-RPC ``POST /`` on
the RPC port, Jupiter's paths on the quote port. Anything else (WebSocket upgrade, ``/admin``,
chunked bodies, HTTP/1.0, an active fault, a key or rate limit to enforce) hands the connection,
with the bytes read so far, to aiohttp's own protocol for good.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from http import HTTPStatus

from aiohttp import web

__all__ = ["FAST_ROUTE", "FastHttpProtocol", "Responder", "Route"]

#: ``(request target, body) -> (status, JSON reply body)``.
Responder = Callable[[bytes, bytes], tuple[int, bytes]]
#: ``(method, path) -> the responder``, or ``None``: aiohttp answers that request and the rest.
Route = Callable[[bytes, bytes], Responder | None]

#: An application's :data:`Route` for the lean path, if it has one (the quote service's).
FAST_ROUTE = web.AppKey("fast_route", object)

_MAX_HEAD = 16 * 1024
_REPLY_HEAD = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n"
#: Headers whose presence means the request is not the plain case.
_HAND_OFF_HEADERS = (b"transfer-encoding", b"upgrade", b"expect")
_PHRASES = {s.value: s.phrase.encode() for s in HTTPStatus}


class FastHttpProtocol(asyncio.Protocol):
    """Answers the requests ``route`` takes itself and hands every other connection to ``fallback()``."""

    def __init__(
        self,
        route: Route,
        fallback: Callable[[], asyncio.Protocol],
        connections: set[asyncio.Transport],
        max_body: int,
        content_type: bytes = b"application/json",
    ) -> None:
        self._route = route
        self._fallback = fallback
        self._connections = connections
        self._max_body = max_body
        self._content_type = content_type
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._connections.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._connections.discard(self._transport)

    def pause_writing(self) -> None:
        # A client that does not read its replies stops being read.
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None:
            self._transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while self._transport is not None and self._buffer:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > _MAX_HEAD:
                    self._hand_off()
                return
            responder, target, length, close = self._plain_request(bytes(self._buffer[:end]))
            if responder is None:
                self._hand_off()
                return
            start = end + 4
            if len(self._buffer) < start + length:
                return
            body = bytes(self._buffer[start : start + length])
            del self._buffer[: start + length]
            status, reply = responder(target, body)
            head = _REPLY_HEAD % (
                status, _PHRASES.get(status, b""), self._content_type, len(reply), b"Connection: close\r\n" if close else b""
            )
            self._transport.write(head + reply)
            if close:
                self._transport.close()
                return

    def _plain_request(self, head: bytes) -> tuple[Responder | None, bytes, int, bool]:
        """``(responder, target, Content-Length, Connection: close)`` of a plain request;
        ``(None, ...)`` otherwise."""
        lines = head.split(b"\r\n")
        request_line = lines[0].split(b" ")
        if len(request_line) != 3 or request_line[2] != b"HTTP/1.1":
            return None, b"", 0, False
        method, target = request_line[0], request_line[1]
        responder = self._route(method, target.partition(b"?")[0])
        if responder is None:
            return None, b"", 0, False
        length, close = None, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                if length is not None or not value.strip().isdigit():
                    return None, b"", 0, False
                length = int(value)
            elif name == b"connection":
                close = value.strip().lower() == b"close"
            elif name in _HAND_OFF_HEADERS:
                return None, b"", 0, False
        if length is None:
            if method == b"POST":
                return None, b"", 0, False
            length = 0
        if length > self._max_body:
            return None, b"", 0, False
        return responder, target, length, close

    def _hand_off(self) -> None:
        transport = self._transport
        assert transport is not None
        self._transport = None
        self._connections.discard(transport)
        protocol = self._fallback()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        pending, self._buffer = bytes(self._buffer), bytearray()
        if pending:
            protocol.data_received(pending)
