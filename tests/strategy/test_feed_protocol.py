"""HTTP edge cases the localnet's quant engine never produces, served by a small aiohttp app:
redirects, content types, oversized bodies, a round that goes backwards."""

from __future__ import annotations

import dataclasses
import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiohttp import web

from tests.strategy.conftest import GENESIS, MANUAL, MINTS, QUANT_KEY, AuditTrail
from xorj_actors.localnet.market_settings import QuantSettings
from xorj_actors.localnet.quant import QuantEngine
from supervisors import LoopThread


def ranked(round_: int = 0, scenario: str = "rotation") -> dict[str, Any]:
    """A good body from the localnet's own generator, at ``round_``."""
    engine = QuantEngine(GENESIS, QuantSettings(manual_clock=True, scenario=scenario))
    engine.advance(round_)
    return engine.ranked_traders()


class Stub:
    """Answers ``GET /internal/ranked-traders`` with ``self.answer()``; records every request."""

    def __init__(self) -> None:
        self.answer: Callable[[], web.StreamResponse] = lambda: web.json_response(ranked())
        self.requests: list[tuple[str, str | None]] = []  # (path, X-API-Key)
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.path, request.headers.get("X-API-Key")))
        if request.path != "/internal/ranked-traders":
            return web.json_response(ranked())
        return self.answer()


@pytest.fixture
def stub() -> Iterator[Stub]:
    s = Stub()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", s.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    s.url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def setup() -> None:
        await runner.setup()
        await web.SockSite(runner, sock).start()

    loop = LoopThread("strategy-test-stub")
    loop.start(setup(), 5)
    try:
        yield s
    finally:
        loop.stop(runner.cleanup, 5)


def test_a_redirect_is_refused_and_never_followed_with_the_key(stub: Stub, start_feed, audit: AuditTrail) -> None:
    stub.answer = lambda: web.Response(status=302, headers={"Location": "/elsewhere"})
    feed = start_feed(stub.url, mints=MINTS)
    status = feed.status()
    assert feed.board.latest is None and status.last_error.startswith("http_status: HTTP 302")
    assert stub.requests == [("/internal/ranked-traders", QUANT_KEY)]
    audit.wait_for(lambda e: e["event_type"] == "ERROR_EVENT" and "HTTP 302" in e["details"]["reason"])


def test_a_body_that_is_not_json_typed_is_refused(stub: Stub, start_feed) -> None:
    stub.answer = lambda: web.Response(text=json.dumps(ranked()), content_type="text/html")
    feed = start_feed(stub.url, mints=MINTS)
    assert feed.board.latest is None
    assert feed.status().last_error == "invalid_data: content type 'text/html', expected application/json"


@pytest.mark.parametrize("chunked", [False, True])
def test_an_oversized_body_is_refused(stub: Stub, start_feed, chunked: bool) -> None:
    body = json.dumps({**ranked(), "padding": "x" * 5000}).encode()

    def answer() -> web.StreamResponse:
        resp = web.Response(body=body, content_type="application/json")
        if chunked:
            resp.enable_chunked_encoding()
        return resp

    stub.answer = answer
    feed = start_feed(stub.url, dataclasses.replace(MANUAL, max_response_bytes=4096), mints=MINTS)
    assert feed.board.latest is None
    error = feed.status().last_error
    assert error in (f"invalid_data: body of {len(body)} bytes exceeds 4096", "invalid_data: body exceeds 4096 bytes")
    assert ("of" in error) is not chunked  # a declared length is refused unread


def test_the_same_body_just_under_the_limit_is_accepted(stub: Stub, start_feed) -> None:
    body = json.dumps(ranked()).encode()
    stub.answer = lambda: web.Response(body=body, content_type="application/json")
    feed = start_feed(stub.url, dataclasses.replace(MANUAL, max_response_bytes=len(body)), mints=MINTS)
    assert feed.board.latest is not None and feed.status().rejections == 0


def test_a_round_going_backwards_is_refused_unless_generated_later(stub: Stub, start_feed, audit: AuditTrail) -> None:
    stub.answer = lambda: web.json_response({**ranked(5), "generatedAt": "2026-11-21T20:00:00Z"})
    feed = start_feed(stub.url, mints=MINTS)
    good = feed.board.latest
    assert good.round == 5
    for generated in ("2026-11-21T19:59:59Z", "2026-11-21T20:00:00+00:00"):  # a replay, a cache
        stub.answer = lambda g=generated: web.json_response({**ranked(3), "generatedAt": g})
        status = feed.refresh()
        assert feed.board.latest is good
        assert status.last_error == (
            "stale_round: round 3 is older than the accepted round 5 (rotation) and was not generated later")
    audit.wait_for(lambda e: e["event_type"] == "ERROR_EVENT" and e["details"]["kind"] == "stale_round", 2)

    # The engine restarted: its rounds start again, generated after the last accepted one.
    stub.answer = lambda: web.json_response({**ranked(2), "generatedAt": "2026-11-21T20:00:01Z"})
    feed.refresh()
    assert feed.board.latest.round == 2
    stub.answer = lambda: web.json_response({**ranked(1, scenario="risk_off"), "generatedAt": "2026-11-21T10:00:00Z"})
    feed.refresh()  # another data set: its rounds are its own
    assert (feed.board.latest.scenario, feed.board.latest.round) == ("risk_off", 1)
    assert feed.status().rejections == 2


def test_an_unsupported_major_version_is_refused(stub: Stub, start_feed) -> None:
    stub.answer = lambda: web.json_response({**ranked(), "version": "2.0"})
    feed = start_feed(stub.url, mints=MINTS)
    assert feed.board.latest is None
    assert feed.status().last_error == "invalid_data: version: major version 2 is not supported (this client knows 1)"
