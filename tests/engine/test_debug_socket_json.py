"""JSON edge cases on the debug socket (issue 11, item 9), over a real socket.

Each gets a ``bad_json`` error reply that is itself strict JSON, with ``id`` null; nothing is
logged as an exception, nothing changes, and the connection answers the next line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger

from tests.engine.sockets import FakeCommands, connect, exchange, serving
from tests.plugins.engine import ks_status
from xorj_actors.engine import Engine

EDGE_CASES = {
    "30000-deep array": b"[" * 30_000 + b"\n",
    "30000-deep array in args": b'{"cmd": "help", "args": {"x": ' + b"[" * 30_000 + b"]" * 30_000 + b"}}\n",
    "5000-digit integer": b'{"id": 1, "cmd": "help", "args": {"n": ' + b"9" * 5_000 + b"}}\n",
    "5000-digit id": b'{"id": ' + b"7" * 5_000 + b', "cmd": "help"}\n',
    "NaN id": b'{"id": NaN, "cmd": "help"}\n',
    "Infinity id": b'{"id": -Infinity, "cmd": "help"}\n',
    "overflowing float id": b'{"id": 1e999, "cmd": "help"}\n',
    "duplicate cmd": b'{"cmd": "help", "cmd": "halt"}\n',
    "duplicate id": b'{"id": 1, "id": 2, "cmd": "help"}\n',
    "duplicate argument": b'{"cmd": "halt", "args": {"mode": "graceful", "mode": "emergency"}}\n',
}


@pytest.fixture
def problems(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """What the socket logged meanwhile at WARNING or above, any traceback, and asyncio's errors.

    Other actors' warnings (the strategy feed has no quant engine here) are not the socket's.
    """
    lines: list[str] = []
    sink = logger.add(
        lambda m: lines.append(str(m)), level="WARNING", format="{level} {name} {message}",
        filter=lambda r: r["name"].startswith("xorj_actors.ops") or r["exception"] is not None,
    )
    caplog.set_level(logging.WARNING, logger="asyncio")
    try:
        yield lines
    finally:
        logger.remove(sink)
        lines += [f"{r.levelname} {r.name} {r.getMessage()}" for r in caplog.records if r.name == "asyncio"]


@pytest.mark.parametrize("raw", EDGE_CASES.values(), ids=EDGE_CASES.keys())
def test_json_edge_cases_get_a_json_error_reply(engine: Engine, problems: list[str], raw: bytes) -> None:
    assert len(raw) < 65_536  # under the line limit: the parser, not the framing, must refuse it
    before = ks_status(engine)
    s = connect(engine.socket_path)
    try:
        reply = exchange(s, raw)  # strict JSON or the test fails
        assert reply is not None, "the connection was dropped"
        assert reply["id"] is None and reply["ok"] is False and reply["error"]["code"] == "bad_json", reply
        assert exchange(s, b'{"id": 2, "cmd": "help"}\n')["ok"]
    finally:
        s.close()
    assert ks_status(engine) == before, "a refused request changed the engine"
    assert ks_status(engine).state == "ARMED"
    assert problems == []


def test_the_refusal_names_the_problem(engine: Engine) -> None:
    s = connect(engine.socket_path)
    try:
        assert "duplicate key 'cmd'" in exchange(s, EDGE_CASES["duplicate cmd"])["error"]["message"]
        assert "NaN" in exchange(s, EDGE_CASES["NaN id"])["error"]["message"]
        assert "nested deeper" in exchange(s, EDGE_CASES["30000-deep array"])["error"]["message"]
        assert "5000 digits" in exchange(s, EDGE_CASES["5000-digit integer"])["error"]["message"]
    finally:
        s.close()


def test_a_reply_that_is_not_json_becomes_an_internal_error(tmp_path: Path) -> None:
    commands = FakeCommands({"nan": lambda args: {"factor": float("nan")}, "help": lambda args: "help"})
    with serving(tmp_path / "debug.sock", commands) as server:
        s = connect(server.path)
        try:
            reply = exchange(s, b'{"id": "a", "cmd": "nan"}\n')  # strict JSON or the test fails
            assert reply == {"id": "a", "ok": False, "error": {"code": "internal", "message": reply["error"]["message"]}}
            assert "not be encoded as JSON" in reply["error"]["message"]
            assert exchange(s, b'{"id": "b", "cmd": "help"}\n') == {"id": "b", "ok": True, "result": "help"}
        finally:
            s.close()
