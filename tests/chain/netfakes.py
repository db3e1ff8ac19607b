"""Network helpers for the Confirmation tests, each on its own loop thread.

- :class:`FakeNode`: a FAKE PubSub server, only for frames the localnet never sends (malformed,
  oversized, unknown methods, subscribe errors, mainnet-shaped failures); the test scripts it.
- :class:`TcpProxy`: a plain TCP forwarder in front of the real localnet, so a test can keep the
  WebSocket down (refuse new connections) while the chain moves on.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from supervisors import LoopThread


class FakeNode:
    """A scripted PubSub endpoint: answers subscriptions, sends whatever frames the test says."""

    def __init__(self) -> None:
        self._thread = LoopThread("fake-node")
        self._server: Server | None = None
        self._ids = itertools.count(100)
        self.lock = threading.Lock()
        self.connections: list[ServerConnection] = []
        #: Every request received: (connection index, method, params).
        self.requests: list[tuple[int, str, Any]] = []
        #: signature -> subscription id, on the latest connection.
        self.subs: dict[str, int] = {}
        self.slot_sub: int | None = None
        #: Signatures whose next signatureSubscribe is answered with an error.
        self.refuse_once: set[str] = set()
        self.url = ""

    def start(self) -> FakeNode:
        self._thread.start(self._serve(), 5)
        return self

    async def _serve(self) -> None:
        self._server = await serve(self._handle, "127.0.0.1", 0, max_size=None, compression=None)
        port = self._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"ws://127.0.0.1:{port}"

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._server.wait_closed(), 2)

        self._thread.stop(close, 5)

    async def _handle(self, ws: ServerConnection) -> None:
        with self.lock:
            self.connections.append(ws)
            index = len(self.connections) - 1
            self.subs.clear()
        with contextlib.suppress(ConnectionClosed):
            await self._answer(ws, index)

    async def _answer(self, ws: ServerConnection, index: int) -> None:
        async for text in ws:
            request = json.loads(text)
            method, params, rid = request["method"], request.get("params", []), request["id"]
            with self.lock:
                self.requests.append((index, method, params))
            if method == "slotSubscribe":
                self.slot_sub = next(self._ids)
                await ws.send(json.dumps({"jsonrpc": "2.0", "result": self.slot_sub, "id": rid}))
            elif method == "signatureSubscribe":
                signature = params[0]
                if signature in self.refuse_once:
                    self.refuse_once.discard(signature)
                    error = {"code": -32602, "message": "Invalid params: too many subscriptions"}
                    await ws.send(json.dumps({"jsonrpc": "2.0", "error": error, "id": rid}))
                    continue
                sub = next(self._ids)
                with self.lock:
                    self.subs[signature] = sub
                await ws.send(json.dumps({"jsonrpc": "2.0", "result": sub, "id": rid}))
            else:
                await ws.send(json.dumps({"jsonrpc": "2.0", "result": True, "id": rid}))

    def subscribe_count(self, signature: str) -> int:
        with self.lock:
            return sum(1 for _, m, p in self.requests if m == "signatureSubscribe" and p[0] == signature)

    def send(self, *frames: str | bytes) -> None:
        """Send raw frames, in order, on the latest connection."""

        async def go() -> None:
            ws = self.connections[-1]
            for frame in frames:
                await ws.send(frame)

        asyncio.run_coroutine_threadsafe(go(), self._thread.loop).result(5)

    def slot(self, slot: int) -> str:
        return _note("slotNotification", {"parent": slot - 1, "root": max(slot - 32, 0), "slot": slot}, self.slot_sub)

    def signature(self, signature: str, value: Any, slot: int) -> str:
        with self.lock:
            sub = self.subs[signature]
        return _note("signatureNotification", {"context": {"slot": slot}, "value": value}, sub)


def _note(method: str, result: Any, sub: int | None) -> str:
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": {"result": result, "subscription": sub}})


class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``target``; ``refuse = True`` closes new connections at once."""

    def __init__(self, target_url: str) -> None:
        host_port = target_url.split("://", 1)[1].rstrip("/")
        self._target_host, port = host_port.rsplit(":", 1)
        self._target_port = int(port)
        self._thread = LoopThread("tcp-proxy")
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.refuse = False
        self.accepted = 0
        self.url = ""

    def start(self) -> TcpProxy:
        self._thread.start(self._serve(), 5)
        return self

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}"

    def stop(self) -> None:
        async def close() -> None:
            for writer in list(self._writers):
                writer.transport.abort()
            if self._server is not None:
                self._server.close()

        self._thread.stop(close, 5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refuse:
            writer.transport.abort()
            return
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(self._target_host, self._target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()  # a cut on one side is a cut on both, as on a network

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.difference_update((writer, up_writer))
