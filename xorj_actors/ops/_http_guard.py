"""Connection limits and the request-head deadline of the HTTP API, enforced per transport.

aiohttp 3.14 has neither. Its ``keepalive_timeout`` is armed when a connection opens and does
close one still waiting for a request, but it is the keep-alive idle time too (default 3630 s:
400 slow-header connections stayed open past a minute), and it has no connection limit at all.
So the server's protocol factory is wrapped (:meth:`ConnectionGuard.protocol_factory`) and the
guard decides, before aiohttp sees a byte:

- a connection must complete a request head within ``header_timeout_s`` of opening or of its
  previous answer; trickled bytes do not extend the deadline, and it is closed when it passes
  (counted as a refusal, unless it is a keep-alive connection that simply sent nothing more);
- at ``max_connections_per_ip`` from one address, or ``max_connections`` in all, a new
  connection evicts the connection of that scope idle the longest (no request in progress: slow
  headers, idle keep-alive), the debug socket's rule; only when every one of them is serving a
  request is the new one refused with a 503. So a flood of slow headers cannot lock an operator out even from the same
  address, and descriptors stay bounded.

"In progress" is marked by the application (:meth:`ConnectionGuard.serving`, from a middleware):
from a parsed head until the handler returns. The body of a request is bounded by the handler's
own ``body_timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from xorj_actors.ops.settings import HttpSettings

__all__ = ["ConnectionEvent", "ConnectionGuard"]

#: ``on_event(source, kind)``: a connection the guard refused, evicted or timed out.
ConnectionEvent = Callable[[str, str], None]

_BUSY = json.dumps({"error": {"code": "busy", "message": "too many connections in progress; retry later"}}).encode()
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
    + f"Content-Length: {len(_BUSY)}\r\n\r\n".encode()
    + _BUSY
)


@dataclass(eq=False)
class _Conn:
    transport: asyncio.Transport
    source: str
    #: Requests being served on it (more than one only when pipelined).
    busy: int = 0
    #: Requests answered on it, and whether bytes came since the last one: an idle keep-alive
    #: connection that expires is no refusal, a started head that never completes is.
    served: int = 0
    started: bool = False
    deadline: asyncio.TimerHandle | None = field(default=None, repr=False)


class ConnectionGuard:
    """Admits, evicts and times out the connections of one server; runs on the server's loop."""

    def __init__(self, settings: HttpSettings, on_event: ConnectionEvent) -> None:
        self._max_total = settings.max_connections
        self._max_per_source = settings.max_connections_per_ip
        self._header_timeout_s = settings.header_timeout_s
        self._on_event = on_event
        #: Ordered by the start of their idleness (admission, or the end of their last request):
        #: the first one not busy is the one idle the longest, as on the debug socket.
        self._conns: dict[asyncio.BaseTransport, _Conn] = {}
        self._per_source: Counter[str] = Counter()

    def protocol_factory(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """Wrap aiohttp's protocol factory: its protocol is made only for admitted connections."""
        return lambda: _Guarded(self, factory)

    def admit(self, transport: asyncio.Transport) -> bool:
        """Track a new connection, evicting an idle one if a limit is reached; False: refused."""
        source = _source(transport)
        for full, scope in (
            (self._per_source[source] >= self._max_per_source, source),
            (len(self._conns) >= self._max_total, None),
        ):
            if not full:
                continue
            victim = next((c for c in self._conns.values() if not c.busy and scope in (None, c.source)), None)
            if victim is None:
                self._on_event(source, "503 connection refused: all busy")
                transport.write(_REFUSAL)
                transport.close()
                return False
            self._drop(victim, "connection evicted")
        conn = _Conn(transport, source)
        self._conns[transport] = conn
        self._per_source[source] += 1
        self._arm(conn)
        return True

    def closed(self, transport: asyncio.BaseTransport) -> None:
        """Forget a connection (idempotent: an evicted one was forgotten already)."""
        conn = self._conns.pop(transport, None)
        if conn is None:
            return
        if conn.deadline is not None:
            conn.deadline.cancel()
        self._per_source[conn.source] -= 1
        if not self._per_source[conn.source]:
            del self._per_source[conn.source]

    @contextlib.contextmanager
    def serving(self, transport: asyncio.BaseTransport | None) -> Iterator[None]:
        """A request is in progress on ``transport``: no head deadline, not evictable."""
        conn = self._conns.get(transport) if transport is not None else None
        if conn is None:
            yield
            return
        conn.busy += 1
        conn.started = False
        if conn.deadline is not None:
            conn.deadline.cancel()
            conn.deadline = None
        try:
            yield
        finally:
            conn.busy -= 1
            conn.served += 1
            if not conn.busy and conn.transport in self._conns:
                self._conns[conn.transport] = self._conns.pop(conn.transport)  # idle from now: last in line
                self._arm(conn)  # the next request's head is due within the same timeout

    def _arm(self, conn: _Conn) -> None:
        if conn.deadline is not None:
            conn.deadline.cancel()
        loop = asyncio.get_running_loop()
        conn.deadline = loop.call_later(self._header_timeout_s, self._expire, conn)

    def received(self, transport: asyncio.BaseTransport | None) -> None:
        """Bytes arrived: between requests, they start the next head."""
        conn = self._conns.get(transport) if transport is not None else None
        if conn is not None and not conn.busy:
            conn.started = True

    def _expire(self, conn: _Conn) -> None:
        conn.deadline = None
        if conn.busy or conn.transport not in self._conns:
            return
        if conn.served and not conn.started:  # keep-alive idle: closed, not counted
            self.closed(conn.transport)
            conn.transport.close()
            return
        self._drop(conn, "header timeout")

    def _drop(self, conn: _Conn, kind: str) -> None:
        self.closed(conn.transport)
        conn.transport.abort()  # nothing owed to it: free the descriptor now
        self._on_event(conn.source, kind)


def _source(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol behind the guard: made on admission, told everything after it."""

    def __init__(self, guard: ConnectionGuard, factory: Callable[[], asyncio.Protocol]) -> None:
        self._guard = guard
        self._factory = factory
        self._transport: asyncio.Transport | None = None
        self._inner: asyncio.Protocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if self._guard.admit(transport):
            self._inner = self._factory()
            self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._guard.received(self._transport)
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._guard.closed(self._transport)
        if self._inner is not None:
            self._inner.connection_lost(exc)
