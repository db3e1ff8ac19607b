"""Liquidation after extended downtime, on chain: a real engine trades, stops, stays down, restarts.

The localnet outlives the engines (its own ports, its own process-lifetime state), so the second
engine finds the vaults as the first one left them. The downtime is real: the test waits longer
than ``max_downtime_s`` (set small) between the first engine's stop and the second's start; the
previous run's ``alive`` entries in the audit chain say when it was last up. No fake clock.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from solana.rpc.async_api import AsyncClient

from tests.execution.conftest import BASE, merged_config
from tests.plugins.engine import RECOVERY_KEYS, ks_status, wait_until
from tests.plugins.localnet import start_localnet
from xorj_actors.config import parse_config
from xorj_actors.engine import Engine
from xorj_actors.execution import EXECUTOR_NAME, GetExecutorStatus
from xorj_actors.kill_switch import KILL_SWITCH_NAME, DOWNTIME_OPERATOR
from xorj_actors.localnet import Localnet
from xorj_actors.messages import HaltMode, Trigger

VAULTS = 3
LIMIT_S = 1.5
#: Laid over tests/execution/conftest.py's BASE: this engine trades against the test's localnet.
CONFIG = """
[vaults]
count = {vaults}
round_interval_s = 0.3
[kill_switch]
alive_every_s = 0.2
[kill_switch.downtime_liquidation]
enabled = {enabled}
max_downtime_s = {limit}
vaults = ["vault-0000"]
start_grace_s = 10
[http]
enabled = false
[localnet]
enabled = false
[execution]
rpc_url = "{rpc}"
ws_url = "{ws}"
quote_url = "{quote}"
[strategy]
url = "{quant}"
"""


@pytest.fixture
def chain() -> Iterator[Localnet]:
    net = start_localnet(manual_clock=False, slot_ms=20, vaults=VAULTS)
    try:
        yield net
    finally:
        net.stop()


class Runs:
    """Engines one after another on one data directory and one chain."""

    def __init__(self, chain: Localnet, data_dir: Path) -> None:
        self.chain = chain
        self.data_dir = data_dir
        self.engine: Engine | None = None

    def start(self, *, enabled: bool) -> Engine:
        urls = self.chain.urls
        text = CONFIG.format(vaults=VAULTS, enabled=str(enabled).lower(), limit=LIMIT_S, **urls)
        self.engine = Engine(merged_config(BASE, text), self.data_dir, environ=dict(RECOVERY_KEYS))
        self.engine.start()
        return self.engine

    def stop(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None:
            hung = engine.stop(timeout=15)
            assert not hung, f"actors did not stop: {hung}"

    def balances(self, vault: int) -> dict[str, int]:
        genesis = self.chain.genesis

        async def read() -> dict[str, int]:
            async with AsyncClient(self.chain.urls["rpc"]) as client:
                out = {}
                for t in genesis.tokens:
                    account = genesis.vaults[vault].token_accounts[t.symbol]
                    out[t.symbol] = int((await client.get_token_account_balance(account)).value.amount)
                return out

        return asyncio.run(read())

    def volatile_usd(self, vault: int) -> float:
        held = self.balances(vault)
        return sum(held[t.symbol] / 10**t.decimals * t.price_usd for t in self.chain.genesis.tokens if not t.stable)

    def audit(self) -> list[tuple[str, dict[str, Any]]]:
        db = sqlite3.connect(self.data_dir / "audit.db")
        try:
            rows = db.execute("SELECT actor, details FROM audit_entries ORDER BY sequence").fetchall()
        finally:
            db.close()
        return [(a, json.loads(d)) for a, d in rows]

    def what(self, what: str) -> list[dict[str, Any]]:
        return [d for a, d in self.audit() if a.startswith("kill_switch") and d.get("what") == what]


@pytest.fixture
def runs(chain: Localnet, tmp_path: Path) -> Iterator[Runs]:
    r = Runs(chain, tmp_path / "var")
    try:
        yield r
    finally:
        r.stop()


def trade_then_go_down(runs: Runs, *, enabled: bool, halt: bool = False) -> dict[int, dict[str, int]]:
    """A first run that buys volatile tokens in every vault, stops, and stays down past the limit."""
    engine = runs.start(enabled=enabled)
    wait_until(lambda: all(runs.volatile_usd(v) > 100 for v in range(VAULTS)), 60, "every vault holding volatile tokens")
    assert runs.what("alive"), "the running engine records its liveness"
    assert {a for a, d in runs.audit() if d.get("what") == "alive"} == {"kill_switch_alive"}  # outside the start-up read
    if halt:
        engine.runtime.whereis(KILL_SWITCH_NAME).tell(Trigger(mode=HaltMode.GRACEFUL, reason="operator halt", source="test"))
        wait_until(lambda: ks_status(engine).state == "TRIGGERED" and ks_status(engine).complete, 10, "halted")
    runs.stop()
    # The downtime: real, and longer than max_downtime_s by the wall clock and by the chain's
    # (whole seconds: getBlockTime rounds down).
    time.sleep(LIMIT_S + 2.0)
    return {v: runs.balances(v) for v in range(VAULTS)}


def settled(engine: Engine) -> bool:
    executor = engine.runtime.whereis(EXECUTOR_NAME)
    return executor is not None and executor.ask(GetExecutorStatus(), timeout=5).in_flight == 0


def test_a_restart_after_a_long_downtime_flattens_the_chosen_vault_and_stays_halted(runs: Runs) -> None:
    before = trade_then_go_down(runs, enabled=True)
    engine = runs.start(enabled=True)
    # Halted from the start (no ordinary round), then the flatten of vault-0000 only.
    wait_until(lambda: ks_status(engine).flatten_id is not None, 20, "the policy's flatten started")
    status = ks_status(engine)
    assert status.reason.startswith("downtime liquidation: down "), status.reason
    wait_until(lambda: ks_status(engine).state == "MAINTENANCE" and not ks_status(engine).flatten_pending, 60, "flatten over")
    status = ks_status(engine)
    ((vault, sold, failed, detail),) = status.flatten_results
    assert vault == "vault-0000" and sold >= 1 and failed == 0 and detail.startswith("nothing left to sell"), status
    assert engine.board.status.halted  # trading resumes only by the operators' recovery
    wait_until(lambda: settled(engine), 10, "executor idle")

    # On chain: the chosen vault holds only the stablecoin (dust aside); the others are untouched.
    genesis = runs.chain.genesis
    after = runs.balances(0)
    for t in genesis.tokens:
        usd = before[0][t.symbol] / 10**t.decimals * t.price_usd
        if not t.stable and usd >= engine.config.vaults.min_trade_usd:
            assert after[t.symbol] == 0, (t.symbol, before[0], after)
    assert after["USDC"] > before[0]["USDC"]
    for v in (1, 2):
        assert runs.balances(v) == before[v], v

    # The trail: the decision with its figures, then ctl flatten's own entries.
    (decided,) = runs.what("downtime liquidation decided")
    assert decided["down_s"] > LIMIT_S and decided["max_downtime_s"] == LIMIT_S and decided["vaults"] == ["vault-0000"]
    (confirmed,) = runs.what("downtime confirmed by the chain")  # the localnet's getBlockTime, read as risk reads it
    assert confirmed["chain_down_s"] > LIMIT_S and confirmed["block_time"] <= time.time(), confirmed
    (started,) = runs.what("flatten started")
    assert started["operator"] == DOWNTIME_OPERATOR and started["vaults"] == ["vault-0000"], started
    wait_until(lambda: len(runs.what("flatten ended")) == 1, 10, "flatten ended audited")
    done = [d for a, d in runs.audit() if a == "vault-0000" and d.get("phase") == "flatten_done"]
    assert len(done) == 1 and done[0]["flatten_id"] == started["flatten_id"], done
    runs.stop()

    # A restart soon after: halted, so nothing is flattened twice (the skip is audited).
    time.sleep(LIMIT_S + 0.5)
    engine = runs.start(enabled=True)
    wait_until(lambda: len(runs.what("downtime liquidation skipped")) == 1, 10, "the second start skips")
    (skipped,) = runs.what("downtime liquidation skipped")
    assert skipped["down_s"] > LIMIT_S and "halted: MAINTENANCE" in skipped["why"], skipped
    time.sleep(1.0)  # past the first start's poll: nothing more happens
    status = ks_status(engine)
    assert status.state == "MAINTENANCE" and engine.board.status.halted and status.flatten_id is None
    assert len(runs.what("flatten started")) == 1 and len(runs.what("downtime liquidation decided")) == 1
    assert len(runs.what("downtime confirmed by the chain")) == 1


def test_a_restart_after_a_long_downtime_does_nothing_when_the_policy_is_off(runs: Runs) -> None:
    trade_then_go_down(runs, enabled=False)
    engine = runs.start(enabled=False)
    wait_until(lambda: ks_status(engine).state == "ARMED" and len(runs.what("kill switch started")) == 2, 10, "started")
    time.sleep(1.0)  # what the policy would have done at start has been done by now
    assert not engine.board.status.halted
    assert not [d for _, d in runs.audit() if str(d.get("what", "")).startswith(("downtime", "flatten"))]


def test_a_halted_engine_is_not_flattened_after_a_long_downtime(runs: Runs) -> None:
    before = trade_then_go_down(runs, enabled=True, halt=True)
    engine = runs.start(enabled=True)
    wait_until(lambda: len(runs.what("downtime liquidation skipped")) == 1, 10, "the policy skipped")
    (skipped,) = runs.what("downtime liquidation skipped")
    assert skipped["down_s"] > LIMIT_S and "halted: TRIGGERED" in skipped["why"], skipped
    time.sleep(1.0)
    assert ks_status(engine).state == "TRIGGERED" and not runs.what("flatten started")
    assert {v: runs.balances(v) for v in range(VAULTS)} == before


def test_all_vaults_after_the_grace_and_a_failed_flatten_stays_halted(tmp_path: Path, fast_localnet: Localnet) -> None:
    """The light engine (no execution, tests/plugins/engine.py; the chain's clock is a running
    localnet's): ``vaults = "all"`` waits out ``start_grace_s``, then flattens every vault
    running; none can trade, so each reports a failure, and the switch stays halted: no vault
    trades until a recovery."""
    from tests.plugins.engine import FAST

    text = FAST.format(vaults=3, environment="development", max_restarts=10, cooldown=0, step=0.05)
    text = text.replace("[kill_switch]\n", "[kill_switch]\nalive_every_s = 0.2\nflatten_timeout_s = 5\n")
    text = text.replace("[execution]\n", f'[execution]\nrpc_url = "{fast_localnet.urls["rpc"]}"\n')
    text += f"[kill_switch.downtime_liquidation]\nenabled = true\nmax_downtime_s = {LIMIT_S}\nstart_grace_s = 1\n"
    data_dir = tmp_path / "var"
    runs = Runs(None, data_dir)  # type: ignore[arg-type]

    def start() -> Engine:
        runs.engine = Engine(parse_config(text), data_dir, environ=dict(RECOVERY_KEYS))
        runs.engine.start()
        return runs.engine

    try:
        start()
        wait_until(lambda: len(runs.what("alive")) >= 2, 10, "alive entries")
        runs.stop()
        time.sleep(LIMIT_S + 2.0)
        engine = start()
        wait_until(lambda: runs.what("flatten ended"), 30, "the flatten over")
        (started,) = runs.what("flatten started")
        assert started["vaults"] == ["vault-0000", "vault-0001", "vault-0002"], started
        (decided,) = runs.what("downtime liquidation decided")
        assert decided["vaults"] == "all" and decided["down_s"] > LIMIT_S
        status = ks_status(engine)
        assert status.state == "MAINTENANCE" and engine.board.status.halted
        assert [r[0] for r in status.flatten_results] == ["vault-0000", "vault-0001", "vault-0002"]
        assert all(sold == 0 for _, sold, _, _ in status.flatten_results), status.flatten_results
    finally:
        runs.stop()
