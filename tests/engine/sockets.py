"""A raw debug-socket client for the tests: whole lines in, whole lines out, nothing hidden."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from xorj_actors.ops import DebugSocketServer, DebugSocketSettings
from xorj_actors.strict_json import loads

__all__ = ["FakeCommands", "closed", "connect", "exchange", "read_reply", "serving"]


def connect(path: Path, timeout: float = 10.0) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(str(path))
    return s


def read_reply(s: socket.socket) -> dict[str, Any] | None:
    """The next reply line, parsed as strict JSON (a reply holding NaN fails here); None at EOF."""
    buf = b""
    while not buf.endswith(b"\n"):
        try:
            chunk = s.recv(1)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            return loads(buf) if buf else None
        buf += chunk
    return loads(buf)


def exchange(s: socket.socket, raw: bytes) -> dict[str, Any] | None:
    s.sendall(raw)
    return read_reply(s)


def closed(s: socket.socket) -> bool:
    """The server closed the connection (after any replies already read)."""
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


class FakeCommands:
    """A fake of :class:`~xorj_actors.ops.Commands` (not the engine's): the given command table.

    For what no real command does on purpose: run until released, return a non-finite number.
    """

    def __init__(self, table: Mapping[str, Callable[[Mapping[str, Any]], Any]]) -> None:
        self._table = dict(table)

    def table(self) -> dict[str, Callable[[Mapping[str, Any]], Any]]:
        return self._table


@contextlib.contextmanager
def serving(path: Path, commands: FakeCommands, settings: DebugSocketSettings | None = None) -> Iterator[DebugSocketServer]:
    """A real :class:`DebugSocketServer` on ``path``, in-process, serving ``commands``."""
    server = DebugSocketServer(path, settings or DebugSocketSettings(), commands)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.stop()
