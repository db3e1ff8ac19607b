"""The engine copy-trades end to end on the localnet, and its volatility breaker stops it."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable

import pytest

from tests.execution.conftest import Harness
from tests.helpers import wait_until
from xorj_actors.breakers import CircuitState
from xorj_actors.strategy import DEFAULT_PROFILES
from xorj_actors.vaults import GetVaultStatus, Round

VAULTS = 6
FIXED_MARKET = f"""
[vaults]
count = {VAULTS}
round_interval_s = 0.3
max_trade_usd = 2500.0
[localnet]
vaults = {VAULTS}
[localnet.quote]
manual_clock = true
[localnet.quant]
manual_clock = true
"""


def _shares(h: Harness, vault: int, prices: dict[str, float]) -> dict[str, float]:
    values = {}
    for token in h.genesis.tokens:
        amount = h.balance(vault, token.symbol)
        values[str(token.mint)] = amount / 10**token.decimals * prices[str(token.mint)]
    total = sum(values.values())
    return {m: v / total for m, v in values.items()}


def _prices(h: Harness) -> dict[str, float]:
    mints = ",".join(str(t.mint) for t in h.genesis.tokens)
    with urllib.request.urlopen(f"{h.localnet.urls['quote']}/price/v3?ids={mints}", timeout=5) as resp:
        data = json.load(resp)
    return {m: v["usdPrice"] for m, v in data.items()}


def _capped(target: dict[str, float], stable: str, cap: float) -> dict[str, float]:
    """The target as the vault pursues it: no volatile token above the concentration cap."""
    out = {m: (min(w, cap) if m != stable else w) for m, w in target.items()}
    out[stable] = out.get(stable, 0.0) + 1.0 - sum(out.values())
    return out


@pytest.mark.parametrize("api", ["swap", "ultra"])
def test_vault_holdings_converge_to_their_traders_targets(exec_engine_factory: Callable[..., Harness], api: str) -> None:
    h = exec_engine_factory(FIXED_MARKET + f'[jupiter]\napi = "{api}"\n')
    engine = h.engine
    wait_until(lambda: engine.strategy_board.latest is not None, 10, "a strategy snapshot")

    def rounds_done() -> int:
        return int(engine.metrics.registry.get_sample_value("xorj_vault_rounds_total", {"result": "done"}) or 0)

    # Buying takes a round or two (splits of max_trade_usd); later rounds find nothing left to do.
    wait_until(lambda: rounds_done() >= VAULTS * 4, 60, "four rounds per vault")
    snapshot = engine.strategy_board.latest
    stable = str(h.genesis.stable.mint)
    prices = _prices(h)
    cap = engine.config.vaults.max_concentration
    for i in range(VAULTS):
        profile = DEFAULT_PROFILES[i % len(DEFAULT_PROFILES)]
        trader = snapshot.trader_for(profile)
        assert trader is not None
        target = _capped({a.mint: a.weight for a in trader.allocation}, stable, cap)
        shares = _shares(h, i, prices)
        for mint, weight in target.items():
            # Within the profile's slippage limit plus the proceeds haircut of the sizing (1 %).
            tolerance = profile.slippage_bps / 10_000 + 0.011
            assert abs(shares.get(mint, 0.0) - weight) <= tolerance, (i, profile.name, mint, shares.get(mint), weight)
        assert sum(shares.get(m, 0.0) for m in shares if m not in target) < 0.001
    trades = {s: int(engine.metrics.registry.get_sample_value("xorj_trades_total", {"status": s}) or 0)
              for s in ("confirmed", "failed", "rejected", "expired")}
    assert trades["confirmed"] >= VAULTS and trades["failed"] == trades["expired"] == 0, trades
    by_api = engine.metrics.registry.get_sample_value("xorj_trades_by_api_total", {"api": api, "status": "confirmed"})
    assert by_api == trades["confirmed"], (by_api, trades)  # every trade went through the configured API


VOLATILE_MARKET = f"""
[vaults]
count = 2
round_interval_s = 0.3
[localnet.quote]
manual_clock = true
[localnet.quant]
manual_clock = true
[gateway]
price_poll_s = 0.05
[breakers.market_volatility]
max_failures = 2
window_s = 60.0
cool_off_s = 600.0
[breakers.volatility]
move_threshold = 0.2
move_window_s = 60.0
[breakers.escalation]
on_concurrent = false
on_retrip = false
# The spike walks prices 20x as fast: the vaults' value can fall past the daily-loss limit, and
# the drawdown monitor would rightly halt the engine. This test is about the breaker alone.
[risk]
drawdown_enabled = false
"""


def test_a_volatility_spike_trips_the_breaker_and_trades_are_refused(exec_engine_factory) -> None:
    h = exec_engine_factory(VOLATILE_MARKET)
    engine = h.engine
    board = engine.breaker_board
    assert board.status("market_volatility").state == CircuitState.CLOSED
    quote = h.localnet.urls["quote"]
    _post(f"{quote}/admin/volatility-spike", {"on": True})

    def open_() -> bool:
        _post(f"{quote}/admin/advance", {"steps": 200})  # the walk, at 20x volatility, moves for real
        return board.status("market_volatility").state == "OPEN"

    wait_until(open_, 30, "the market-volatility breaker to open")
    assert engine.board.status.state == "ARMED"  # a breaker blocks trading; it does not halt by itself here
    # A localnet vault the engine runs no actor for: an engine vault's own round in flight would
    # refuse this trade first (one round per vault), before the breaker is asked.
    outcome = h.execute(h.request("vault-0002:spike:0", vault=2, amount=1_000_000))
    assert outcome.status == "rejected" and outcome.error_class == "breaker_open", outcome
    assert "market_volatility" in (outcome.error or "")
    vault = engine.runtime.whereis("vault-0000") or next(
        a.ref for a in engine.runtime.actors() if a.name == "vault-0000"
    )
    assert vault.ask(Round(), timeout=5).reason in ("started", "round in flight")
    assert vault.ask(GetVaultStatus(), timeout=5).vault_id == "vault-0000"


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.load(resp)
