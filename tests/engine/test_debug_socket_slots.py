"""Operators cannot be locked out of the debug socket (issue 11, item 8).

Real Unix-socket connections against a real engine's socket (or, for commands that run long,
an in-process server with a fake command table).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.engine.sockets import FakeCommands, closed, connect, exchange, read_reply, serving
from xorj_actors.engine import Engine
from xorj_actors.ops import DebugSocketServer, DebugSocketSettings
from xorj_actors.ops.ctl import request

#: Clients that sent a request stay for up to 300 s between requests, as in config/local.toml.
LONG_IDLE = "[debug_socket]\nidle_timeout_s = 300.0\n"


def served(path: Path, n: int) -> list:
    """``n`` connections that each sent one request and got its reply: idle between requests."""
    clients = []
    for i in range(n):
        s = connect(path)
        reply = exchange(s, b'{"id": %d, "cmd": "help"}\n' % i)
        assert reply is not None and reply["ok"], reply
        clients.append(s)
    return clients


def test_a_full_socket_still_answers_ctl_status_at_once(engine_factory) -> None:
    engine = engine_factory(extra=LONG_IDLE)
    silent = [connect(engine.socket_path) for _ in range(20)]  # 16 slots: more than full, nothing sent
    waiting: list = []
    try:
        done = subprocess.run(
            [sys.executable, "-m", "xorj_actors.cli", "ctl", "--socket", str(engine.socket_path), "status", "--json"],
            capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert '"ARMED"' in done.stdout
        # Clients idle between requests (up to 300 s each) fill it just as well.
        waiting = served(engine.socket_path, 16)
        assert request(engine.socket_path, "status")["kill_switch"]["state"] == "ARMED"
    finally:
        for s in silent + waiting:
            s.close()


def test_the_client_idle_the_longest_is_evicted_and_told_why(engine_factory) -> None:
    engine = engine_factory(extra=LONG_IDLE + "max_clients = 3\n")
    trickler, b, c = served(engine.socket_path, 3)  # the trickler sent one line, then fell silent
    newcomer = connect(engine.socket_path)
    try:
        reply = read_reply(trickler)
        assert reply is not None and reply["id"] is None and reply["ok"] is False
        assert reply["error"]["code"] == "evicted", reply
        assert closed(trickler)
        assert exchange(newcomer, b'{"id": 1, "cmd": "status"}\n')["ok"]
        # Least recently active goes first: b trickles another line, so c goes next, not b.
        assert exchange(b, b'{"id": 2, "cmd": "help"}\n')["ok"]
        third = connect(engine.socket_path)
        assert read_reply(c)["error"]["code"] == "evicted"
        assert exchange(third, b'{"id": 3, "cmd": "help"}\n')["ok"]
        assert exchange(b, b'{"id": 4, "cmd": "help"}\n')["ok"]
        third.close()
    finally:
        for s in (trickler, b, c, newcomer):
            s.close()


def assert_cut_for_idling(s, why: str) -> None:
    """The next thing ``s`` reads is an ``idle_timeout`` reply saying ``why``, then the end."""
    reply = read_reply(s)
    assert reply is not None and reply["error"]["code"] == "idle_timeout", reply
    assert why in reply["error"]["message"]
    assert closed(s)


def test_a_client_that_sends_nothing_is_cut_after_the_short_timeout(engine_factory) -> None:
    engine = engine_factory(extra=LONG_IDLE + "first_request_timeout_s = 0.2\n")
    with connect(engine.socket_path, timeout=30) as s:  # far less than the 300 s idle timeout
        assert_cut_for_idling(s, "no first request within 0.2 s")


def test_a_client_is_cut_when_idle_after_a_reply(engine_factory) -> None:
    engine = engine_factory(extra="[debug_socket]\nidle_timeout_s = 0.3\nfirst_request_timeout_s = 300.0\n")
    with connect(engine.socket_path, timeout=30) as s:
        assert exchange(s, b'{"id": 1, "cmd": "help"}\n')["ok"]
        assert_cut_for_idling(s, "no request within 0.3 s of the last reply")


def test_blank_lines_do_not_put_off_the_first_request_deadline(engine_factory) -> None:
    engine = engine_factory(extra=LONG_IDLE + "first_request_timeout_s = 0.2\n")
    s = connect(engine.socket_path, timeout=30)
    stop = threading.Event()

    def blank_lines() -> None:  # one every 50 ms: each wait for a line is shorter than 0.2 s
        while not stop.wait(0.05):
            try:
                s.sendall(b"\n")
            except OSError:
                return

    sender = threading.Thread(target=blank_lines)
    sender.start()
    try:
        assert_cut_for_idling(s, "no first request")
    finally:
        stop.set()
        sender.join()
        s.close()


class Blocking:
    """``block`` runs until the test releases it (real commands return within their 2 s asks)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.running = threading.Semaphore(0)
        self.commands = FakeCommands({"status": lambda args: {"state": "ARMED"}, "block": self._block})

    def _block(self, args: Mapping[str, Any]) -> str:
        self.running.release()
        self.release.wait(60)
        return "released"


@pytest.fixture
def busy_server(tmp_path: Path) -> Iterator[tuple[DebugSocketServer, Blocking]]:
    blocking = Blocking()
    with serving(tmp_path / "debug.sock", blocking.commands, DebugSocketSettings(max_clients=16)) as server:
        try:
            yield server, blocking
        finally:
            blocking.release.set()


def test_the_reserved_slot_answers_while_every_client_runs_a_command(busy_server) -> None:
    server, commands = busy_server
    busy = [connect(server.path) for _ in range(16)]
    hog = operator = refused = None
    try:
        for s in busy:
            s.sendall(b'{"cmd": "block"}\n')
        for _ in busy:
            assert commands.running.acquire(timeout=30), "a command did not start: they queue"
        operator = connect(server.path)
        assert exchange(operator, b'{"id": 1, "cmd": "status"}\n') == {"id": 1, "ok": True, "result": {"state": "ARMED"}}
        assert closed(operator), "the reserved slot serves one request"
        # The reserved slot itself busy too: now, and only now, a client is refused.
        hog = connect(server.path)
        hog.sendall(b'{"cmd": "block"}\n')
        assert commands.running.acquire(timeout=30)
        refused = connect(server.path)
        assert read_reply(refused)["error"]["code"] == "busy"
        assert closed(refused)
        commands.release.set()
        for s in [*busy, hog]:
            assert read_reply(s)["result"] == "released"
    finally:
        for s in [*busy, hog, operator, refused]:
            if s is not None:
                s.close()
