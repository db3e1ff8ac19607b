"""An engine with the in-process localnet on fast slots, and an actor that collects trade outcomes."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from solana.rpc.async_api import AsyncClient

from supervisors import Actor
from tests.helpers import wait_until
from tests.plugins.engine import RECOVERY_KEYS
import tomllib

from xorj_actors._settings import build_section
from xorj_actors.audit import open_store, select_entries
from xorj_actors.config import Config
from xorj_actors.engine import Engine
from xorj_actors.execution import EXECUTOR_NAME, TradeOutcome, TradeRequest

BASE = """
[vaults]
count = 0
[supervision]
shutdown_timeout_s = 2.0
[kill_switch]
cooldown_s = 0
ack_deadline_s = 1.0
restart_step_s = 0.05
[localnet]
slot_ms = 20
confirmed_lag = 1
finalized_lag = 4
vaults = 4
[localnet.quote]
quote_ttl_s = 30
[execution]
rebroadcast_interval_s = 0.2
[jupiter]
# The Swap API: these tests read its framing (our compute budget, memo); tests/execution/test_ultra.py trades through Ultra.
api = "swap"
[execution.retry]
network_initial_s = 0.05
network_max_s = 0.5
program_step_s = 0.05
"""


class Outcomes(Actor):
    """Collects the TradeOutcomes told to it."""

    def __init__(self, inbox: Inbox) -> None:
        super().__init__()
        self.inbox = inbox

    def on_receive(self, message: Any) -> None:
        if isinstance(message, TradeOutcome):
            self.inbox.add(message)


class Inbox:
    """What the Outcomes actor received, readable from the test's thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[TradeOutcome] = []

    def add(self, outcome: TradeOutcome) -> None:
        with self.lock:
            self.items.append(outcome)

    def of(self, trade_id: str) -> list[TradeOutcome]:
        with self.lock:
            return [o for o in self.items if o.trade_id == trade_id]


class Harness:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.localnet = engine.localnet
        self.genesis = engine.localnet.genesis
        self.outcomes = Inbox()
        self.outcomes_ref = Outcomes.start(self.outcomes)  # in the engine's runtime, the current one

    @property
    def executor(self) -> Any:
        ref = self.engine.runtime.whereis(EXECUTOR_NAME)
        assert ref is not None, "executor not running"
        return ref

    def reconciled(self) -> bool:
        ref = self.engine.runtime.whereis(EXECUTOR_NAME)
        return ref is not None and ref.ask(_status(), timeout=5).reconciled

    def request(self, trade_id: str, *, vault: int = 0, sell: str = "USDC", buy: str = "JUP",
                amount: int = 10_000_000, slippage_bps: int = 100, value_usd: float = 10.0) -> TradeRequest:
        return TradeRequest(
            trade_id=trade_id,
            vault_id=self.genesis.vaults[vault].vault_id,
            # Test ids are written "vault:round:index"; the request carries the parts as fields.
            round_key=trade_id.split(":")[1],
            index=int(trade_id.split(":")[2]),
            input_mint=str(self.genesis.token(sell).mint),
            output_mint=str(self.genesis.token(buy).mint),
            amount_in=amount,
            slippage_bps=slippage_bps,
            value_usd=value_usd,
            reply_to=self.outcomes_ref,
        )

    def execute(self, request: TradeRequest, timeout: float = 20.0, count: int = 1) -> TradeOutcome:
        self.executor.tell(request)
        return self.wait(request.trade_id, timeout, count)

    def wait(self, trade_id: str, timeout: float = 20.0, count: int = 1) -> TradeOutcome:
        wait_until(lambda: len(self.outcomes.of(trade_id)) >= count, timeout, f"{count} outcome(s) of {trade_id}")
        return self.outcomes.of(trade_id)[count - 1]

    def entries(self, trade_id: str | None, *event_types: str) -> list[tuple[str, dict[str, Any]]]:
        """(event type, details) of every audit entry of ``trade_id`` (None: any) of
        ``event_types`` (none: any), in log order."""
        store = open_store(self.engine.config.audit, self.engine.data_dir, create=False)
        try:
            found = select_entries(store, correlation_id=trade_id, event_types=event_types)
            return [(e.event_type, json.loads(e.details)) for e in found]
        finally:
            store.close()

    def balance(self, vault: int, symbol: str) -> int:
        """The vault's token balance, read over JSON-RPC like any client."""
        account = self.genesis.vaults[vault].token_accounts[symbol]

        async def read() -> int:
            async with AsyncClient(self.localnet.urls["rpc"]) as client:
                return int((await client.get_token_account_balance(account)).value.amount)

        return asyncio.run(read())


def serve_route_fault(h: Harness, mode: Any, count: int = 1) -> None:
    """Make the localnet's quote service serve the next ``count`` routes or orders bad in
    ``mode``'s way (``None`` clears it)."""
    post_admin(f"{h.localnet.urls['quote']}/admin/route-fault", {"mode": None if mode is None else mode.value, "count": count})


def post_admin(url: str, body: dict[str, Any]) -> None:
    """POST a localnet admin command (JSON); it must be accepted."""
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def merged_config(base: str, extra: str) -> Config:
    """``extra``'s tables laid over ``base``'s, key by key (TOML forbids declaring a table twice)."""
    return build_section(Config, _merge(tomllib.loads(base), tomllib.loads(extra)))


@pytest.fixture
def exec_engine_factory(tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    engines: list[Engine] = []

    def make(extra: str = "", data_dir: Path | None = None, environ: dict[str, str] | None = None) -> Harness:
        env = {**RECOVERY_KEYS, **(environ or {})}
        engine = Engine(merged_config(BASE, extra), data_dir or tmp_path / "var", environ=env)
        engine.start()
        engines.append(engine)
        h = Harness(engine)
        wait_until(lambda: h.reconciled(), 10, "executor reconciled")
        return h

    yield make
    for engine in engines:
        hung = engine.stop(timeout=15)
        assert not hung, f"actors did not stop: {hung}"


def _status() -> Any:
    from xorj_actors.execution import GetExecutorStatus

    return GetExecutorStatus()


@pytest.fixture
def harness(exec_engine_factory: Callable[..., Harness]) -> Harness:
    return exec_engine_factory()
