"""Plans and the money check against the real localnet: its chain balances, Price v3
(/price/v3), Swap API quotes (/swap/v1/quote) and routes (/swap/v1/swap-instructions)."""

from __future__ import annotations

import math
from typing import Any

import aiohttp
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.models import TxOpts

import pytest

from tests.localnet.jupiter_routes import signed_route
from xorj_actors.execution import TradeRequest
from xorj_actors.execution._errors import ErrorClass, TradeError
from xorj_actors.execution._money import MoneyCheck, MoneyLimits, check_money
from xorj_actors.jupiter import TradeApi, parse_quote
from xorj_actors.localnet import Localnet, dev_vault_authority
from xorj_actors.vaults._reconcile import PlannedTrade, plan_trades
from xorj_actors.vaults._slippage import executed_deviation_bps, realised_slippage
from xorj_actors.vaults.settings import VaultSettings

VAULT = "vault-0001"
AUTHORITY = dev_vault_authority(VAULT)  # the vault's own key


class Market:
    """The localnet's tokens as the engine sees them: mints, decimals, reference prices."""

    def __init__(self, net: Localnet) -> None:
        self.net = net
        self.mint = {t.symbol: str(t.mint) for t in net.genesis.tokens}
        self.decimals = {str(t.mint): t.decimals for t in net.genesis.tokens}
        self.stable = str(net.genesis.stable.mint)

    async def prices(self, http: aiohttp.ClientSession) -> dict[str, float]:
        ids = ",".join(self.decimals)
        async with http.get(self.net.urls["quote"] + "/price/v3", params={"ids": ids}) as resp:
            body = await resp.json()
            assert resp.status == 200, body
        return {mint: entry["usdPrice"] for mint, entry in body.items()}

    async def quote(self, http: aiohttp.ClientSession, trade: PlannedTrade, slippage_bps: int) -> dict[str, Any]:
        params = {
            "inputMint": trade.input_mint,
            "outputMint": trade.output_mint,
            "amount": str(trade.amount_in),
            "slippageBps": str(slippage_bps),
        }
        async with http.get(self.net.urls["quote"] + "/swap/v1/quote", params=params) as resp:
            body = await resp.json()
            assert resp.status == 200, body
        return body

    async def holdings(self, rpc: AsyncClient, vault_id: str) -> dict[str, int]:
        accounts = self.net.genesis.vault(vault_id).token_accounts
        return {
            self.mint[symbol]: int((await rpc.get_token_account_balance(account, Confirmed)).value.amount)
            for symbol, account in accounts.items()
        }

    async def advance_prices(self, http: aiohttp.ClientSession, steps: int) -> None:
        async with http.post(self.net.urls["quote"] + "/admin/advance", json={"steps": steps}) as resp:
            assert resp.status == 200, await resp.text()

    async def spike(self, http: aiohttp.ClientSession) -> None:
        async with http.post(self.net.urls["quote"] + "/admin/volatility-spike", json={"on": True}) as resp:
            assert resp.status == 200, await resp.text()


def by_hand(input_mint: str, output_mint: str, amount_in: int) -> PlannedTrade:
    return PlannedTrade(
        trade_id=f"{VAULT}:manual:0",
        vault_id=VAULT,
        round_key="manual",
        input_mint=input_mint,
        output_mint=output_mint,
        amount_in=amount_in,
        value_usd=0.0,
        reduces_exposure=False,
        index=0,
    )


def money(
    quote: dict[str, Any], trade: PlannedTrade, prices: dict[str, float], decimals: dict[str, int], limit: int
) -> MoneyCheck:
    """The executor's money check of a Swap API ``quote`` for ``trade`` at ``limit`` bps."""
    req = TradeRequest(
        trade_id=trade.trade_id, vault_id=trade.vault_id, round_key=trade.round_key, index=trade.index,
        input_mint=trade.input_mint, output_mint=trade.output_mint, amount_in=trade.amount_in,
        slippage_bps=limit, value_usd=trade.value_usd,
    )
    return check_money(parse_quote(quote), TradeApi.SWAP, req, MoneyLimits(decimals=decimals), prices)


def refused(
    quote: dict[str, Any], trade: PlannedTrade, prices: dict[str, float], decimals: dict[str, int], limit: int
) -> TradeError:
    with pytest.raises(TradeError) as caught:
        money(quote, trade, prices, decimals, limit)
    return caught.value


async def test_a_plan_runs_through_the_localnet_within_its_limits(localnet: Localnet) -> None:
    market = Market(localnet)
    jup, sol, usdc = market.mint["JUP"], market.mint["SOL"], market.stable
    limit = 100
    async with aiohttp.ClientSession() as http, AsyncClient(localnet.urls["rpc"]) as rpc:
        holdings = await market.holdings(rpc, VAULT)
        assert holdings[usdc] == 10_000 * 10**6 and holdings[jup] == 0
        prices = await market.prices(http)
        target = {jup: 0.5, sol: 0.3, usdc: 0.2}
        plan = plan_trades(holdings, prices, market.decimals, usdc, target, VaultSettings(), 1.0, VAULT, 1)
        assert [(t.output_mint, t.amount_in) for t in plan.trades] == [(jup, 5_000 * 10**6), (sol, 3_000 * 10**6)]

        for trade in plan.trades:
            quote = await market.quote(http, trade, limit)
            verdict = money(quote, trade, prices, market.decimals, limit)
            # The quote service prices at the same mid as /price/v3: its price impact is the
            # whole of its deviation from the reference.
            assert 0 < verdict.impact_bps < limit
            assert verdict.deviation_bps is not None
            assert math.isclose(verdict.deviation_bps, verdict.impact_bps, abs_tol=1e-6)

            _, signed = await signed_route(localnet, rpc, AUTHORITY, quote)
            before = await market.holdings(rpc, VAULT)
            await rpc.send_raw_transaction(bytes(signed), TxOpts(preflight_commitment=Confirmed))
            localnet.advance(localnet.settings.confirmed_lag + 1)
            after = await market.holdings(rpc, VAULT)
            assert before[trade.input_mint] - after[trade.input_mint] == trade.amount_in
            actual_out = after[trade.output_mint] - before[trade.output_mint]
            # The market maker settles at the quoted amounts: no slippage after the quote.
            assert realised_slippage(int(quote["outAmount"]), actual_out) == 0.0
            executed = executed_deviation_bps(trade, actual_out, prices, market.decimals)
            assert math.isclose(executed, verdict.deviation_bps, abs_tol=1e-6)

        # Re-planning on the chain's new balances: only the price impact paid is left to close.
        holdings = await market.holdings(rpc, VAULT)
        again = plan_trades(holdings, prices, market.decimals, usdc, target, VaultSettings(), 1.0, VAULT, 2)
        assert not again.refused
        assert sum(t.value_usd for t in again.trades) < 0.01 * again.value_usd


async def test_real_quotes_at_the_edges_of_the_limit(localnet: Localnet) -> None:
    market = Market(localnet)
    bonk = market.mint["BONK"]
    trade = by_hand(market.stable, bonk, 10_000 * 10**6)  # 1 % of BONK's pool depth
    async with aiohttp.ClientSession() as http:
        prices = await market.prices(http)
        quote = await market.quote(http, trade, 300)
    assert int(quote["otherAmountThreshold"]) == int(quote["outAmount"]) * 9_700 // 10_000
    impact = money(quote, trade, prices, market.decimals, 300).impact_bps
    assert 90 < impact < 110
    # Just under the quote's price impact: refused for it.
    assert "price impact" in str(refused(quote, trade, prices, market.decimals, math.floor(impact)))
    # Impact and price fit a 200 bps limit, but the quote was asked with 300 bps of slippage:
    # its otherAmountThreshold would let the swap settle 3 % below outAmount.
    loose = refused(quote, trade, prices, market.decimals, 200)
    assert loose.error_class is ErrorClass.SLIPPAGE and "slippage 300 bps" in str(loose)
    # A quote for a different amount than the trade is refused whatever the limit.
    other = by_hand(market.stable, bonk, trade.amount_in + 1)
    assert refused(quote, other, prices, market.decimals, 10_000).error_class is ErrorClass.UNKNOWN


async def test_a_market_move_after_the_quote_is_caught_by_the_second_source(localnet: Localnet) -> None:
    market = Market(localnet)
    jup, usdc = market.mint["JUP"], market.stable
    limit = 100
    async with aiohttp.ClientSession() as http:
        prices = await market.prices(http)
        buy = by_hand(usdc, jup, 1_000 * 10**6)
        sell = by_hand(jup, usdc, math.floor(1_000 / prices[jup] * 10**6))
        quotes = {buy: await market.quote(http, buy, limit), sell: await market.quote(http, sell, limit)}
        for trade, quote in quotes.items():
            assert money(quote, trade, prices, market.decimals, limit).deviation_bps is not None
        await market.spike(http)
        moved = prices
        for _ in range(50):  # bounded: the seeded walk moves ~3 % per 100 spiked steps
            if abs(moved[jup] / prices[jup] - 1) >= 0.03:
                break
            await market.advance_prices(http, 100)
            moved = await market.prices(http)
        assert abs(moved[jup] / prices[jup] - 1) >= 0.03, "the walk did not move"
    # Whichever way JUP went, one of the two quotes is now > 3 % worse than the reference.
    worse = sell if moved[jup] > prices[jup] else buy
    for trade, quote in quotes.items():
        if trade is worse:
            error = refused(quote, trade, moved, market.decimals, limit)
            assert error.error_class is ErrorClass.SLIPPAGE and "worse than the reference prices" in str(error)
            # Passed at the widest limit, the route reports how far it is off.
            deviation = money(quote, trade, moved, market.decimals, 10_000).deviation_bps
            assert deviation is not None and deviation > 250
        else:
            verdict = money(quote, trade, moved, market.decimals, limit)
            assert verdict.deviation_bps is not None and verdict.deviation_bps < -250
