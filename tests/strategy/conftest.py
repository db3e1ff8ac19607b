"""Fixtures of the strategy tests: a runtime, the real audit trail, captured logs, a StrategyFeed
polling the localnet's quant engine, and a manual wall clock."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from supervisors import Ref, Runtime
from tests.helpers import wait_until
from xorj_actors.audit import Audit, AuditSettings, AuditStoreError, open_store, select_entries
from xorj_actors.kill_switch import HaltBoard
from xorj_actors.localnet import Localnet
from xorj_actors.localnet.genesis import build_genesis
from xorj_actors.localnet.settings import LocalnetSettings
from xorj_actors.strategy import (
    GetStrategyStatus,
    RefreshStrategy,
    StrategyBoard,
    StrategyFeed,
    StrategySettings,
    StrategyStatus,
)

#: The quant engine's key in these tests (the localnet reads it from the environment at start).
QUANT_KEY_ENV = "XORJ_QUANT_API_KEY"
QUANT_KEY = "strategy-test-quant-key-7d1c9e"
#: The default genesis: the mints of every localnet in these tests.
GENESIS = build_genesis(LocalnetSettings())
MINTS = {str(t.mint): t.decimals for t in GENESIS.tokens}
#: Polls happen only when a test asks: the interval timers never fire during a test.
MANUAL = StrategySettings(
    poll_interval_s=3600.0, retry_interval_s=3600.0, stale_after_s=7200.0, request_timeout_s=2.0
)


@pytest.fixture(autouse=True)
def _quant_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Set before the localnet fixture starts (autouse fixtures come first)."""
    monkeypatch.setenv(QUANT_KEY_ENV, QUANT_KEY)


class FakeClock:
    """Wall-clock seconds that move only on :meth:`advance` (read from any thread)."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))  # whole seconds: ages below are exact

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@dataclass
class AuditTrail:
    """The real Audit actor on SQLite in the test's data directory."""

    settings: AuditSettings
    data_dir: Path

    def entries(self, actor: str = "strategy_feed") -> list[dict[str, Any]]:
        try:
            store = open_store(self.settings, self.data_dir, create=False)
        except AuditStoreError:
            return []
        try:
            return [
                {"event_type": e.event_type, "severity": e.severity, "correlation_id": e.correlation_id,
                 "details": json.loads(e.details)}
                for e in select_entries(store) if e.actor == actor
            ]
        finally:
            store.close()

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], count: int = 1, what: str = "audit entries") -> list[dict[str, Any]]:
        """Entries matching ``predicate``, once at least ``count`` are committed."""
        wait_until(lambda: len([e for e in self.entries() if predicate(e)]) >= count, 10, what)
        return [e for e in self.entries() if predicate(e)]

    def events(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.entries() if e["details"].get("event") == event]


@pytest.fixture
def audit(runtime: Runtime, data_dir: Path, audit_key: bytes) -> AuditTrail:
    settings = AuditSettings()
    Audit.start(HaltBoard(), settings, data_dir, "development", data_dir / "KILL")
    return AuditTrail(settings, data_dir)


@pytest.fixture
def logs() -> Iterator[list[str]]:
    """Every log line (DEBUG and up) emitted during the test."""
    lines: list[str] = []
    lock = threading.Lock()

    def sink(message: Any) -> None:
        with lock:
            lines.append(str(message))

    handler = logger.add(sink, level="DEBUG", format="{level} {message}")
    try:
        yield lines
    finally:
        logger.remove(handler)


def mints_of(ln: Localnet) -> dict[str, int]:
    return {str(t.mint): t.decimals for t in ln.genesis.tokens}


def quant_admin(ln: Localnet, path: str, body: Any, method: str = "POST") -> Any:
    """Drive the localnet's quant engine over its admin routes (they need the key too)."""
    req = urllib.request.Request(
        f"{ln.urls['quant']}{path}", data=json.dumps(body).encode(), method=method,
        headers={"X-API-Key": QUANT_KEY, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def quant_ranked(ln: Localnet) -> dict[str, Any]:
    req = urllib.request.Request(f"{ln.urls['quant']}/internal/ranked-traders", headers={"X-API-Key": QUANT_KEY})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


@dataclass
class Feed:
    """A started StrategyFeed and what it publishes to."""

    ref: Ref
    board: StrategyBoard
    clock: Callable[[], float]

    def status(self) -> StrategyStatus:
        return self.ref.ask(GetStrategyStatus(), timeout=5)

    def settled(self, polls: int) -> StrategyStatus:
        """The status once ``polls`` requests have been made and none is in flight."""
        result: list[StrategyStatus] = []

        def done() -> bool:
            s = self.status()
            result[:] = [s]
            return s.polls >= polls and not s.polling

        wait_until(done, 15, f"{polls} polls to complete")
        return result[0]

    def refresh(self) -> StrategyStatus:
        """Poll once more and wait for the outcome."""
        before = self.status()
        assert not before.polling
        self.ref.tell(RefreshStrategy(reason="test"))
        return self.settled(before.polls + 1)


@pytest.fixture
def start_feed(runtime: Runtime, clock: FakeClock) -> Callable[..., Feed]:
    """``start_feed(localnet_or_url, settings=MANUAL, environ=..., environment=..., real_clock=False, on_poll=None)``;
    returns once the first poll has completed."""

    def start(
        target: Localnet | str,
        settings: StrategySettings = MANUAL,
        *,
        environ: dict[str, str] | None = None,
        environment: str = "development",
        mints: dict[str, int] | None = None,
        real_clock: bool = False,
        on_poll: Callable[[str], None] | None = None,
    ) -> Feed:
        url = target if isinstance(target, str) else target.urls["quant"]
        if mints is None:
            assert not isinstance(target, str), "give mints= with a URL"
            mints = mints_of(target)
        use_clock: Callable[[], float] = time.time if real_clock else clock
        board = StrategyBoard(settings.stale_after_s, clock=use_clock)
        ref = StrategyFeed.start(
            HaltBoard(), settings, board, url, mints,
            {QUANT_KEY_ENV: QUANT_KEY} if environ is None else environ, environment, clock=use_clock, on_poll=on_poll,
        )
        feed = Feed(ref, board, use_clock)
        feed.settled(1)
        return feed

    return start


def http_status(url: str, headers: dict[str, str]) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
