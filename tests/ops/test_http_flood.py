"""The HTTP API under floods, with real sockets against a real engine (issue 11, items 10 and 11).

Slow headers are closed after ``header_timeout_s`` while the kill switch still answers; the
connection limits evict idle connections and refuse only when every one is busy; unauthenticated
floods make one audit entry per source and window; a signed pathological body gets a 400 and an
entry, and a handler that raises a 500 and an entry. Timeouts are configured short and every
effect is awaited with a generous bound: nothing here times the server.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
from collections.abc import Callable
from typing import Any

import pytest

from tests.ops.conftest import ENGINE_ENV, REFUSALS, Api, http_audit, refusal_audit
from tests.plugins.engine import ks_status, wait_until
from xorj_actors.engine import Engine
from xorj_actors.ops import Commands, signed_headers

ACTIVATE = "/kill-switch/activate"
RECOVER = "/kill-switch/recover"
#: A second loopback address: the flood's source, apart from the operator's 127.0.0.1.
FLOOD = "127.0.0.2"
SLOW_HEAD = b"POST /kill-switch/activate HTTP/1.1\r\nHost: engine\r\nX-Slow: "


def _engine(engine_factory: Callable[..., Engine], **http: Any) -> Engine:
    settings = "".join(f"{k} = {json.dumps(v)}\n" for k, v in http.items())
    return engine_factory(vaults=1, environ=dict(ENGINE_ENV), extra=f"[http]\n{settings}")


def _port(engine: Engine) -> int:
    return int(engine.endpoints()["http"].rsplit(":", 1)[1])


def _connect(engine: Engine, source: str, head: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", _port(engine)), timeout=10, source_address=(source, 0))
    sock.sendall(head)
    return sock


def _closed(sock: socket.socket) -> bool:
    """True once the server has closed ``sock`` (without blocking; an answer is read and dropped)."""
    while select.select([sock], [], [], 0)[0]:
        try:
            if not sock.recv(65_536):
                return True
        except OSError:  # reset: the server aborted it
            return True
    return False


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes ``sock``."""
    data = b""
    while chunk := sock.recv(65_536):
        data += chunk
    return data


def _tallied(engine: Engine, count: int, source: str) -> dict[str, int]:
    """The refusals counted for ``source``, over every window, once ``count`` are written."""
    totals: dict[str, int] = {}

    def enough() -> bool:
        totals.clear()
        for _, details in refusal_audit(engine, 0):
            if details["remote"] == source:
                for kind, n in details["refusals"].items():
                    totals[kind] = totals.get(kind, 0) + n
        return sum(totals.values()) >= count

    wait_until(enough, timeout=20, what=f"{count} refusals from {source} in the audit trail")
    return totals


# -- item 10: slow headers, connection limits ----------------------------------------------------


def test_slow_headers_are_closed_after_the_timeout_while_the_kill_switch_answers(engine_factory) -> None:
    n = 100
    engine = _engine(
        engine_factory, header_timeout_s=1.0, max_connections=n, max_connections_per_ip=n, refusal_window_s=0.2
    )
    api = Api(engine)
    flood = [_connect(engine, FLOOD, SLOW_HEAD) for _ in range(n)]
    # Every slot is taken by a slow head: the operator's connection evicts the one idle the longest and is served.
    assert api.get("/health/live").status == 200
    assert api.post(ACTIVATE, {"mode": "emergency", "reason": "flood"}).status == 202
    wait_until(lambda: ks_status(engine).complete, what="halt acked")
    assert ks_status(engine).state == "TRIGGERED"

    def all_closed() -> bool:
        open_ = [s for s in flood if not _closed(s)]
        for sock in open_:  # keep trickling: bytes must not extend the deadline
            try:
                sock.send(b"a")
            except OSError:  # closed since it was looked at
                pass
        return not open_

    wait_until(all_closed, timeout=30, what="every slow-header connection closed by the server")
    for sock in flood:
        sock.close()
    tally = _tallied(engine, n, FLOOD)
    assert tally.get("header timeout", 0) + tally.get("connection evicted", 0) == n, tally
    assert tally.get("header timeout", 0) >= n - 2, tally  # the operator's two connections evicted at most two
    assert all(k == "SECURITY_VIOLATION" for k, _ in refusal_audit(engine, 0))


def test_an_idle_keep_alive_connection_is_closed_but_not_counted(engine_factory) -> None:
    engine = _engine(engine_factory, header_timeout_s=0.5, refusal_window_s=0.2)
    conn = http.client.HTTPConnection("127.0.0.1", _port(engine), timeout=10, source_address=(FLOOD, 0))
    conn.request("GET", "/health/live")
    assert conn.getresponse().read() == b'{"status": "ok"}'
    assert conn.sock is not None
    idle = conn.sock
    wait_until(lambda: _closed(idle), what="the idle keep-alive connection closed")
    conn.close()
    slow = _connect(engine, FLOOD, SLOW_HEAD)  # a started head is counted
    wait_until(lambda: _closed(slow), what="the slow head closed")
    slow.close()
    assert _tallied(engine, 1, FLOOD) == {"header timeout": 1}


def test_the_per_ip_limit_evicts_a_slow_head_for_the_operators_connection(engine_factory) -> None:
    n = 8
    engine = _engine(engine_factory, header_timeout_s=300.0, max_connections_per_ip=n, refusal_window_s=0.2)
    flood = [_connect(engine, "127.0.0.1", SLOW_HEAD) for _ in range(n)]
    # The same address as the flood: the limit is reached, the slow head idle the longest makes room.
    assert Api(engine).post(ACTIVATE, {"mode": "graceful"}).status == 202
    wait_until(lambda: any(_closed(s) for s in flood), what="a slow head evicted")
    assert sum(_closed(s) for s in flood) == 1
    for sock in flood:
        sock.close()
    assert _tallied(engine, 1, "127.0.0.1") == {"connection evicted": 1}


def test_the_connection_evicted_is_the_one_idle_the_longest(engine_factory) -> None:
    engine = _engine(engine_factory, header_timeout_s=300.0, max_connections_per_ip=2, refusal_window_s=0.2)
    scraper = http.client.HTTPConnection("127.0.0.1", _port(engine), timeout=10, source_address=(FLOOD, 0))
    scraper.connect()  # first in, but about to be served
    slow = _connect(engine, FLOOD, SLOW_HEAD)
    scraper.request("GET", "/health/live")
    assert scraper.getresponse().read() == b'{"status": "ok"}'  # idle only from now
    newcomer = _connect(engine, FLOOD, b"")
    wait_until(lambda: _closed(slow), what="the slow head evicted")
    assert scraper.sock is not None and not _closed(scraper.sock) and not _closed(newcomer)
    scraper.request("GET", "/health/live")  # the scraper's keep-alive connection still serves
    assert scraper.getresponse().status == 200
    for sock in (slow, newcomer, scraper):
        sock.close()
    assert _tallied(engine, 1, FLOOD) == {"connection evicted": 1}


def test_the_per_ip_limit_refuses_the_next_connection_when_every_one_is_busy(engine_factory) -> None:
    n = 4
    engine = _engine(engine_factory, body_timeout_s=300.0, max_connections_per_ip=n, refusal_window_s=0.2)
    head = (
        b"POST /kill-switch/activate HTTP/1.1\r\nHost: engine\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\nExpect: 100-continue\r\n\r\n"
    )
    busy = [_connect(engine, FLOOD, head) for _ in range(n)]
    for sock in busy:  # answered from inside the handler: the request is in progress, not evictable
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 Continue")
    # Refused on accept, before it sends (a request already sent could turn the close into a reset).
    refused = _connect(engine, FLOOD, b"")
    answer = _answer(refused)
    assert answer.startswith(b"HTTP/1.1 503 "), answer
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "busy"
    assert not any(_closed(s) for s in busy)
    # Another address is not affected by this one's limit.
    assert Api(engine).post(ACTIVATE, {}).status == 202
    for sock in busy:
        sock.close()
    assert _tallied(engine, 1 + n, FLOOD) == {"503 connection refused: all busy": 1, "client disconnected": n}


def test_a_body_that_does_not_arrive_in_time_gets_408(engine_factory) -> None:
    engine = _engine(engine_factory, body_timeout_s=0.5, refusal_window_s=0.2)
    body = json.dumps({"mode": "emergency"}).encode()
    headers = signed_headers(Api(engine).key, ACTIVATE, body)
    head = f"POST {ACTIVATE} HTTP/1.1\r\nHost: engine\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sock = _connect(engine, FLOOD, head.encode() + body[:-1])  # one byte short, for ever
    answer = b""
    while b"\r\n" not in answer:  # the status line (the server may linger before it closes)
        answer += sock.recv(65_536)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert ks_status(engine).state == "ARMED"
    assert _tallied(engine, 1, FLOOD) == {"408 request_timeout": 1}


# -- item 11: audit gaps and floods ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (ACTIVATE, b"[" * 60_000),
        (ACTIVATE, b'{"mode": "emergency", "reason": ' + b"9" * 5_000 + b"}"),
        (RECOVER, b'{"epoch": ' + b"1" * 5_000 + b', "nonce": "n", "timestamp": 0, "authorisations": []}'),
        (ACTIVATE, b'{"mode": "graceful", "mode": "emergency"}'),
        (ACTIVATE, b'{"mode": "graceful", "reason": NaN}'),
    ],
    ids=["deep", "huge-int", "huge-epoch", "duplicate-key", "nan"],
)
def test_pathological_signed_bodies_get_400_and_an_audit_entry_each(api: Api, path: str, body: bytes) -> None:
    reply = api.post(path, body)
    assert reply.status == 400, reply.body
    assert reply.json()["error"]["code"] == "bad_json"
    assert ks_status(api.engine).state == "ARMED"
    kind = "HALT" if path == ACTIVATE else "RECOVERY"
    [(event, details)] = http_audit(api.engine, 1)
    assert (event, details["outcome"], details["status"]) == (kind, "refused", 400)
    assert details["reason"].startswith("body refused: ")


def test_a_handler_that_raises_answers_500_and_is_audited(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:  # a FAKE fault: a bug inside the command
        raise RuntimeError("injected")

    monkeypatch.setattr(Commands, "trigger", broken)
    reply = api.post(ACTIVATE, {"mode": "graceful", "reason": "test"})
    assert reply.status == 500 and reply.json()["error"]["code"] == "internal"
    [(event, details)] = http_audit(api.engine, 1)
    assert (event, details["outcome"], details["status"]) == ("HALT", "error", 500)
    assert details["reason"] == "internal error: RuntimeError"


def test_an_unauthenticated_flood_makes_one_entry_per_source_and_window(engine_factory) -> None:
    engine = _engine(engine_factory, refusal_window_s=3600.0)  # one window: written when the server stops
    port = _port(engine)
    for source in ("127.0.0.1", FLOOD):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
        for i in range(1_000):
            path = (ACTIVATE, RECOVER)[i % 2]
            # Half with a wrong content type and no signature (once stored as HALT/CRITICAL), half badly signed.
            headers = {"Content-Type": "text/plain"} if i < 500 else signed_headers(b"w" * 40, path, b"{}")
            conn.request("POST", path, body=b"{}", headers=headers)
            response = conn.getresponse()
            response.read()
            assert response.status == 401
        conn.close()
    assert ks_status(engine).state == "ARMED"
    assert engine.stop(timeout=10) == []  # closes the window: the tallies are written
    entries = refusal_audit(engine, 2_000)
    assert sorted((d["remote"], d["count"]) for _, d in entries) == [("127.0.0.1", 1_000), (FLOOD, 1_000)]
    for event, details in entries:
        assert event == "SECURITY_VIOLATION"
        assert details["refusals"] == {"401 unauthenticated": 500, "401 bad_signature": 500}
        assert details["paths"] == {ACTIVATE: 500, RECOVER: 500}
    assert http_audit(engine, 0) == []  # and nothing typed HALT or RECOVERY
    assert REFUSALS == entries[0][1]["what"]
