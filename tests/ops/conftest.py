"""Fixtures of the ops tests: an engine with its HTTP API, signed requests, its audit trail; an
engine whose vaults trade on the localnet."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.execution.conftest import BASE, merged_config
from tests.plugins.engine import RECOVERY_KEYS, wait_until
from xorj_actors.audit import AuditStoreError, open_store, select_entries
from xorj_actors.engine import Engine
from xorj_actors.ops import signed_headers

HTTP_KEY_ENV = "XORJ_HTTP_HMAC_KEY"
HTTP_KEY = "http-key-" + "9f" * 20
ENGINE_ENV = {**RECOVERY_KEYS, HTTP_KEY_ENV: HTTP_KEY}
#: Unauthenticated refusals are written once their window closes: a short one in tests.
HTTP_FAST = "[http]\nrefusal_window_s = 0.2\n"
REFUSALS = "http unauthenticated refusals"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(url: str, *, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None) -> Reply:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return Reply(r.status, dict(r.headers), r.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, dict(exc.headers), exc.read())


class Api:
    """A client of one engine's HTTP API."""

    def __init__(self, engine: Engine, key: str = HTTP_KEY) -> None:
        self.engine = engine
        self.url = engine.endpoints()["http"]
        self.key = key.encode()

    def get(self, path: str) -> Reply:
        return request(self.url + path)

    def post(self, path: str, payload: Any, **sign: Any) -> Reply:
        """A correctly signed POST (``sign`` overrides timestamp or nonce)."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.post_raw(path, body, signed_headers(self.key, path, body, **sign))

    def post_raw(self, path: str, body: bytes, headers: dict[str, str]) -> Reply:
        return request(self.url + path, method="POST", body=body, headers=headers)


# The executor's test engine with vaults that trade: rounds only on command (the first timer
# round is minutes away at this interval).
TRADING_EXTRA = """
[vaults]
count = 2
round_interval_s = 600
"""


@pytest.fixture
def trading_engine(tmp_path: Path) -> Iterator[Engine]:
    """The localnet and execution on, two vaults that trade when told (``round``)."""
    engine = Engine(merged_config(BASE, TRADING_EXTRA), tmp_path / "trading", environ=dict(RECOVERY_KEYS))
    engine.start()
    try:
        yield engine
    finally:
        assert not engine.stop(timeout=15), "actors did not stop"


@pytest.fixture
def http_engine(engine_factory: Callable[..., Engine]) -> Engine:
    return engine_factory(vaults=4, environ=dict(ENGINE_ENV), extra=HTTP_FAST)


@pytest.fixture
def api(http_engine: Engine) -> Api:
    return Api(http_engine)


def _http_entries(engine: Engine) -> list[tuple[str, dict[str, Any]]]:
    try:  # the Audit actor creates the table once its store opens
        store = open_store(engine.config.audit, engine.data_dir, create=False)
    except AuditStoreError:
        return []
    try:
        return [(e.event_type, json.loads(e.details)) for e in select_entries(store) if e.actor == "http_api"]
    finally:
        store.close()


def http_audit(engine: Engine, count: int) -> list[tuple[str, dict[str, Any]]]:
    """The HTTP API's entries for authenticated calls, once at least ``count`` are committed."""

    def entries() -> list[tuple[str, dict[str, Any]]]:
        return [(k, d) for k, d in _http_entries(engine) if d.get("what") != REFUSALS]

    wait_until(lambda: len(entries()) >= count, what=f"{count} audit entries from the HTTP API")
    return entries()


def refusal_audit(engine: Engine, count: int, *, timeout: float = 10.0) -> list[tuple[str, dict[str, Any]]]:
    """The HTTP API's tallies of unauthenticated refusals, once they count ``count`` refusals in all."""

    def entries() -> list[tuple[str, dict[str, Any]]]:
        return [(k, d) for k, d in _http_entries(engine) if d.get("what") == REFUSALS]

    wait_until(
        lambda: sum(d["count"] for _, d in entries()) >= count, timeout=timeout, what=f"{count} refusals tallied"
    )
    return entries()
