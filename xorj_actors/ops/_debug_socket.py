"""The debug socket: newline-delimited JSON over a Unix domain socket (mode 0600).

Each request is one line: ``{"id": <any>, "cmd": "<command>", "args": {...}}``; each reply is one
line: ``{"id": <same>, "ok": true, "result": ...}`` or ``{"id": ..., "ok": false, "error":
{"code": ..., "message": ...}}``. A request line is parsed as strict JSON
(:mod:`xorj_actors.strict_json`); bad input gets an error reply and changes nothing, and every
reply is strict JSON. An oversized line, an idle or a slow client gets a reply where possible and
the connection is closed; who gets a slot when all are taken is :mod:`~xorj_actors.ops._slots`.
The server runs on its own thread and event loop, and each client's command on a thread of its
own, so neither a stuck actor nor other clients' commands can keep an operator waiting.

Transport only: framing, the path lock, connections and dispatch. The commands themselves are
:class:`~xorj_actors.ops._commands.Commands`, which the HTTP API calls too.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from loguru import logger

from supervisors import LoopThread
from xorj_actors.kill_switch import HaltBoard, Participant
from xorj_actors.ops._args import RequestError
from xorj_actors.ops._commands import Commands
from xorj_actors.ops._slots import Slot, Slots
from xorj_actors.ops.settings import DebugSocketSettings
from xorj_actors.redaction import Redactor
from xorj_actors.strict_json import JSONRefused, loads

__all__ = ["DebugSocket", "DebugSocketServer"]

#: How long a reply may take to drain to a slow client before it is dropped.
WRITE_TIMEOUT_S = 5.0


@dataclass(eq=False, slots=True)
class _Client:
    """One connection, for :class:`Slots` (hashed by identity)."""

    writer: asyncio.StreamWriter
    task: asyncio.Task[None] | None = field(default=None)


class DebugSocketServer:
    """Serves :class:`Commands` on a Unix socket from a thread of its own."""

    def __init__(self, path: Path, settings: DebugSocketSettings, commands: Commands) -> None:
        self.path = path
        self.settings = settings
        self.commands = commands
        self._table = commands.table()
        self._server: asyncio.base_events.Server | None = None
        self._loop_thread: LoopThread | None = None
        self._slots: Slots[_Client] = Slots(settings.max_clients)
        # One thread for each client that can run a command at once: none ever waits for a thread.
        self._executor: ThreadPoolExecutor | None = None
        self._path_lock: int | None = None

    def start(self, timeout: float = 5.0) -> None:
        self._lock_path(timeout)
        try:
            _claim_socket_path(self.path)
            self._executor = ThreadPoolExecutor(self.settings.max_clients + 1, thread_name_prefix="debug-socket-cmd")
            self._loop_thread = LoopThread("debug-socket")
            try:
                self._loop_thread.start(self._serve(), timeout)
            except Exception as exc:
                raise RuntimeError(f"debug socket failed to start: {exc!r}") from exc
        except BaseException:
            self._shutdown_executor()
            self._unlock_path()
            raise

    def _lock_path(self, timeout: float) -> None:
        """Own the socket path: a server still shutting down (or another process) holds it.

        The kernel releases the lock when a process dies, so a crash leaves no stale owner.
        """
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._path_lock = fd
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise RuntimeError(f"debug socket {self.path} is held by another server") from None
                time.sleep(0.01)

    def _unlock_path(self) -> None:
        fd, self._path_lock = self._path_lock, None
        if fd is not None:
            os.close(fd)

    def _shutdown_executor(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)  # a stuck command must not hold up the stop

    async def _serve(self) -> None:
        self._server = await asyncio.start_unix_server(
            self._client, path=str(self.path), limit=self.settings.max_line_bytes + 1
        )
        os.chmod(self.path, 0o600)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in asyncio.all_tasks():  # the clients' connections
            if task is not asyncio.current_task():
                task.cancel()

    def stop(self, timeout: float = 5.0) -> None:
        loop_thread, self._loop_thread = self._loop_thread, None
        if loop_thread is None:
            self._unlock_path()
            return
        loop_thread.stop(self._close, timeout)
        self._shutdown_executor()
        try:
            self.path.unlink()  # ours: we hold the path lock
        except FileNotFoundError:
            pass
        self._unlock_path()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = _Client(writer, asyncio.current_task())
        admission = self._slots.admit(client)
        if admission.evicted is not None:
            self._evict(admission.evicted)
        try:
            if admission.slot is None:
                await self._send(writer, _error(None, "busy", (
                    f"all {self.settings.max_clients} client slots are running commands and the reserved one is "
                    "taken; try again")))
                return
            await self._converse(client, reader, admission.slot)
        except (ConnectionError, asyncio.CancelledError):
            return
        except Exception:  # noqa: BLE001 - a bug here must not end the server
            logger.exception("debug socket: connection failed")
        finally:
            self._slots.release(client)
            _hang_up(writer)

    async def _converse(self, client: _Client, reader: asyncio.StreamReader, slot: Slot) -> None:
        """Requests and replies until the client leaves, idles too long or its slot is done."""
        s = self.settings
        # Blank lines are no request: they move neither the deadline nor the client's place in line.
        deadline = time.monotonic() + s.first_request_timeout_s
        waiting_for = (f"no first request within {s.first_request_timeout_s:g} s of connecting "
                       "(debug_socket.first_request_timeout_s)")
        while True:
            line: bytes | None
            try:
                line = await asyncio.wait_for(reader.readline(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                await self._send(client.writer, _error(None, "idle_timeout", waiting_for))
                return
            except (ValueError, asyncio.LimitOverrunError):  # the reader's limit: max_line_bytes + 1
                line = None
            if line == b"":
                return
            if line is None or len(line) > s.max_line_bytes:
                await self._send(
                    client.writer, _error(None, "line_too_long", f"request longer than {s.max_line_bytes} bytes")
                )
                return
            if not line.strip():
                continue
            self._slots.busy(client)
            reply = await self._handle(line)
            # Idle from the reply on: marked before the client can read it, so its place in line
            # is the order of the replies.
            self._slots.idle(client)
            deadline = time.monotonic() + s.idle_timeout_s
            waiting_for = f"no request within {s.idle_timeout_s:g} s of the last reply (debug_socket.idle_timeout_s)"
            if not await self._send(client.writer, reply) or slot is Slot.RESERVED:
                return

    def _evict(self, client: _Client) -> None:
        """Make room for a newcomer: tell ``client`` why, close it, end its task."""
        client.writer.write(_encode(_error(None, "evicted", (
            f"closed to make room for a new client: all {self.settings.max_clients} slots were taken and this "
            "connection had waited the longest for a request; reconnect to go on"))))
        _hang_up(client.writer)
        if client.task is not None:
            client.task.cancel()

    async def _handle(self, line: bytes) -> dict[str, Any]:
        try:
            request = loads(line)
        except JSONRefused as exc:  # not UTF-8, not JSON, NaN, a duplicate key, too deep, a huge integer
            return _error(None, "bad_json", str(exc))
        if not isinstance(request, dict):
            return _error(None, "bad_request", "a request is a JSON object")
        req_id = request.get("id")
        unknown = set(request) - {"id", "cmd", "args"}
        if unknown:
            return _error(req_id, "bad_request", f"unknown field(s): {', '.join(sorted(unknown))[:200]}")
        cmd = request.get("cmd")
        args = request.get("args", {})
        if not isinstance(cmd, str):
            return _error(req_id, "bad_request", "cmd must be a string")
        if not isinstance(args, dict):
            return _error(req_id, "bad_request", "args must be an object")
        handler = self._table.get(cmd)
        if handler is None:
            return _error(req_id, "unknown_command", f"unknown command {cmd[:50]!r}; try help")
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._executor, handler, args)
        except RequestError as exc:
            return _error(req_id, exc.code, exc.message)
        except Exception as exc:  # noqa: BLE001 - reported to the client, the engine goes on
            logger.exception("debug socket: command {} failed", cmd)
            return _error(req_id, "internal", f"{type(exc).__name__}: {exc}")
        return {"id": req_id, "ok": True, "result": result}

    async def _send(self, writer: asyncio.StreamWriter, reply: dict[str, Any]) -> bool:
        writer.write(_encode(reply))
        try:
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)
        except (asyncio.TimeoutError, ConnectionError):
            return False
        return True


def _error(req_id: Any, code: str, message: str) -> dict[str, Any]:
    return {"id": req_id, "ok": False, "error": {"code": code, "message": message}}


def _encode(reply: dict[str, Any]) -> bytes:
    """``reply`` as one line of strict JSON; if it is not JSON-able, an ``internal`` error that is."""
    try:
        return json.dumps(reply, default=str, allow_nan=False).encode() + b"\n"
    except (ValueError, TypeError, RecursionError) as exc:
        logger.error("debug socket: a reply is not JSON ({}); the client gets an internal error", exc)
    message = "the reply could not be encoded as JSON (a non-finite number?); see the engine log"
    try:
        return json.dumps(_error(reply.get("id"), "internal", message), allow_nan=False).encode() + b"\n"
    except (ValueError, TypeError, RecursionError):
        return json.dumps(_error(None, "internal", message)).encode() + b"\n"


def _hang_up(writer: asyncio.StreamWriter) -> None:
    """Close after what is queued is sent, but within the write timeout even if the peer never reads."""
    writer.close()
    asyncio.get_running_loop().call_later(WRITE_TIMEOUT_S, writer.transport.abort)


def _claim_socket_path(path: Path) -> None:
    """Remove a stale socket file, but never one a live process still serves."""
    if not path.exists():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(0.5)
        probe.connect(str(path))
    except OSError:
        path.unlink()  # nobody listens: stale
        return
    finally:
        probe.close()
    raise RuntimeError(f"debug socket {path} is served by another process (same data directory?)")


class DebugSocket(Participant):
    """The debug socket in the tree: it halts and acks like every actor, and keeps serving."""

    dedicated_thread: ClassVar[bool] = True

    def __init__(
        self,
        board: HaltBoard,
        path: Path,
        settings: DebugSocketSettings,
        endpoints: Callable[[], Mapping[str, str]],
        data_dir: Path,
        views: Mapping[str, Callable[..., Any]] | None = None,
        redactor: Redactor | None = None,
        kill_file: Path | None = None,
    ) -> None:
        super().__init__(board)
        commands = Commands(self.runtime, endpoints, data_dir, views, redactor=redactor, board=board, kill_file=kill_file)
        self.server = DebugSocketServer(path, settings, commands)

    def on_start(self) -> None:
        self.server.start()
        logger.info("debug socket listening on {}", self.server.path)
        super().on_start()

    def on_terminate(self) -> None:
        self.server.stop()
