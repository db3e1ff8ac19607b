"""The debug socket: newline-delimited JSON over a Unix domain socket (mode 0600).

Each request is one line: ``{"id": <any>, "cmd": "<command>", "args": {...}}``; each reply is one
line: ``{"id": <same>, "ok": true, "result": ...}`` or ``{"id": ..., "ok": false, "error":
{"code": ..., "message": ...}}``. Bad input gets an error reply and changes nothing; an oversized
line, an idle or a slow client gets a reply where possible and the connection is closed. The
server runs on its own thread and event loop, so a stuck actor cannot make it unresponsive.

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
from pathlib import Path
from typing import Any, ClassVar

from loguru import logger

from supervisors import LoopThread
from xorj_actors.kill_switch import HaltBoard, Participant
from xorj_actors.ops._args import RequestError
from xorj_actors.ops._commands import Commands

from xorj_actors.ops.settings import DebugSocketSettings
from xorj_actors.redaction import Redactor

__all__ = ["DebugSocket", "DebugSocketServer"]

#: How long a reply may take to drain to a slow client before it is dropped.
WRITE_TIMEOUT_S = 5.0


class DebugSocketServer:
    """Serves :class:`Commands` on a Unix socket from a thread of its own."""

    def __init__(self, path: Path, settings: DebugSocketSettings, commands: Commands) -> None:
        self.path = path
        self.settings = settings
        self.commands = commands
        self._table = commands.table()
        self._server: asyncio.base_events.Server | None = None
        self._loop_thread: LoopThread | None = None
        self._clients = 0
        self._path_lock: int | None = None

    def start(self, timeout: float = 5.0) -> None:
        self._lock_path(timeout)
        try:
            _claim_socket_path(self.path)
            self._loop_thread = LoopThread("debug-socket")
            try:
                self._loop_thread.start(self._serve(), timeout)
            except Exception as exc:
                raise RuntimeError(f"debug socket failed to start: {exc!r}") from exc
        except BaseException:
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
        try:
            self.path.unlink()  # ours: we hold the path lock
        except FileNotFoundError:
            pass
        self._unlock_path()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients += 1
        try:
            if self._clients > self.settings.max_clients:
                await self._send(writer, _error(None, "busy", f"too many clients (max {self.settings.max_clients})"))
                return
            while True:
                try:
                    line = await asyncio.wait_for(reader.readline(), self.settings.idle_timeout_s)
                except asyncio.TimeoutError:
                    await self._send(writer, _error(None, "idle_timeout", "no request within the idle timeout"))
                    return
                except (ValueError, asyncio.LimitOverrunError):
                    await self._send(
                        writer, _error(None, "line_too_long", f"request longer than {self.settings.max_line_bytes} bytes")
                    )
                    return
                if not line:
                    return
                if len(line) > self.settings.max_line_bytes:
                    await self._send(
                        writer, _error(None, "line_too_long", f"request longer than {self.settings.max_line_bytes} bytes")
                    )
                    return
                if not line.strip():
                    continue
                reply = await self._handle(line)
                if not await self._send(writer, reply):
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self._clients -= 1
            writer.close()

    async def _handle(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return _error(None, "bad_json", f"not valid JSON: {exc}")
        if not isinstance(request, dict):
            return _error(None, "bad_request", "a request is a JSON object")
        req_id = request.get("id")
        unknown = set(request) - {"id", "cmd", "args"}
        if unknown:
            return _error(req_id, "bad_request", f"unknown field(s): {', '.join(sorted(unknown))}")
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
            result = await loop.run_in_executor(None, handler, args)
        except RequestError as exc:
            return _error(req_id, exc.code, exc.message)
        except Exception as exc:  # noqa: BLE001 - reported to the client, the engine goes on
            logger.exception("debug socket: command {} failed", cmd)
            return _error(req_id, "internal", f"{type(exc).__name__}: {exc}")
        return {"id": req_id, "ok": True, "result": result}

    async def _send(self, writer: asyncio.StreamWriter, reply: dict[str, Any]) -> bool:
        writer.write(json.dumps(reply, default=str).encode() + b"\n")
        try:
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)
        except (asyncio.TimeoutError, ConnectionError):
            return False
        return True


def _error(req_id: Any, code: str, message: str) -> dict[str, Any]:
    return {"id": req_id, "ok": False, "error": {"code": code, "message": message}}


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
    ) -> None:
        super().__init__(board)
        commands = Commands(self.runtime, endpoints, data_dir, views, redactor=redactor)
        self.server = DebugSocketServer(path, settings, commands)

    def on_start(self) -> None:
        self.server.start()
        logger.info("debug socket listening on {}", self.server.path)
        super().on_start()

    def on_terminate(self) -> None:
        self.server.stop()
