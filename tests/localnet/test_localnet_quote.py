"""The quote service's market, through Jupiter's paths: quotes priced from the seeded walk, Jupiter's
refusals, Price v3 prices, the walk's admin actions, quotes kept and expired, and a route that
settles at the quoted amounts whatever the price did after the quote."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import math
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from spl.token.instructions import transfer_checked
from spl.token.models import TransferCheckedParams

from tests.conftest import free_port
from tests.localnet.jupiter_routes import api_get, api_post, balances, compile_route, get_quote, sign
from tests.plugins.localnet import TEST_SETTINGS, start_localnet
from xorj_actors._settings import ConfigError, build_section
from xorj_actors.localnet import Localnet, dev_vault_authority
from xorj_actors.localnet.chain import Chain
from xorj_actors.localnet.genesis import TOKEN_PROGRAM_ID, build_genesis
from xorj_actors.localnet.jupiter_desk import transfer_ix
from xorj_actors.localnet.market_settings import QuoteSettings
from xorj_actors.localnet.pricing import PriceWalk
from xorj_actors.localnet.quote import QUOTE_SERVICE, create_quote_app

GENESIS = build_genesis(TEST_SETTINGS)  # the localnet fixture's
USDC, JUP, BONK = (str(GENESIS.token(s).mint) for s in ("USDC", "JUP", "BONK"))
MANUAL = TEST_SETTINGS.quote


async def _prices(ln: Localnet, mints: list[str]) -> dict[str, float]:
    status, body = await api_get(ln, "/price/v3", {"ids": ",".join(mints)})
    assert status == 200, body
    return {m: p["usdPrice"] for m, p in body.items()}


# -- GET /swap/v1/quote -------------------------------------------------------------------------


async def test_a_quote_is_priced_from_the_walk_with_the_slippage_asked(localnet: Localnet) -> None:
    localnet.advance(42)
    q = await get_quote(localnet, USDC, JUP, 10**8, slippageBps="100")
    assert (q["inputMint"], q["outputMint"], q["swapMode"], q["slippageBps"]) == (USDC, JUP, "ExactIn", 100)
    assert q["inAmount"] == "100000000"
    assert int(q["otherAmountThreshold"]) == int(q["outAmount"]) * 9_900 // 10_000
    assert q["contextSlot"] == 42
    [hop] = q["routePlan"]
    assert (hop["percent"], hop["swapInfo"]["inAmount"], hop["swapInfo"]["outAmount"]) == (100, q["inAmount"], q["outAmount"])
    # 100 USDC at JUP's 0.85 mid, minus a small impact.
    assert 117_000_000 < int(q["outAmount"]) < 117_647_059
    default = await get_quote(localnet, USDC, JUP, 10**8)
    assert default["slippageBps"] == MANUAL.default_slippage_bps


async def test_a_quote_between_volatile_tokens_routes_through_the_stablecoin(localnet: Localnet) -> None:
    q = await get_quote(localnet, JUP, BONK, 50_000_000)
    first, second = (h["swapInfo"] for h in q["routePlan"])
    assert (first["inputMint"], first["outputMint"]) == (JUP, USDC)
    assert (second["inputMint"], second["outputMint"]) == (USDC, BONK)
    assert first["outAmount"] == second["inAmount"]
    assert second["outAmount"] == q["outAmount"]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"inputMint": str(Pubkey.new_unique())}, "TOKEN_NOT_TRADABLE"),
        ({"outputMint": "not-a-key"}, "INVALID_REQUEST"),
        ({"outputMint": USDC}, "CIRCULAR_ARBITRAGE_IS_DISABLED"),
        ({"amount": "0"}, "INVALID_REQUEST"),
        ({"amount": "-5"}, "INVALID_REQUEST"),
        ({"amount": "1.5"}, "INVALID_REQUEST"),
        ({"amount": "1e6"}, "INVALID_REQUEST"),
        ({"amount": str(2**64)}, "INVALID_REQUEST"),
        ({"slippageBps": "10001"}, "INVALID_REQUEST"),
        ({"slippageBps": "-1"}, "INVALID_REQUEST"),
        ({"slippageBps": "abc"}, "INVALID_REQUEST"),
        ({"swapMode": "ExactOut"}, "NOT_SUPPORTED"),
        ({"swapMode": "Both"}, "NOT_SUPPORTED"),
        ({"amount": "1", "inputMint": JUP, "outputMint": BONK}, "COULD_NOT_FIND_ANY_ROUTE"),
    ],
)
async def test_bad_quote_requests_get_jupiter_s_errors(localnet: Localnet, params: dict[str, str], code: str) -> None:
    query = {"inputMint": USDC, "outputMint": JUP, "amount": "1000000", **params}
    status, body = await api_get(localnet, "/swap/v1/quote", query)
    assert status == 400
    assert body["errorCode"] == code and body["error"]


async def test_price_impact_grows_with_trade_size(localnet: Localnet) -> None:
    impacts, rates = [], []
    for amount in (10**6, 10**8, 10**10, 10**11, 10**12):
        q = await get_quote(localnet, USDC, JUP, amount)
        impacts.append(float(q["priceImpactPct"]))
        rates.append(int(q["outAmount"]) / amount)
    assert impacts == sorted(impacts) and len(set(impacts)) == len(impacts)
    assert rates == sorted(rates, reverse=True)
    assert impacts[0] < 0.0001 and impacts[-1] > 0.2  # $1 barely moves a $2M pool, $1M moves it a lot


# -- GET /price/v3 ----------------------------------------------------------------------------


async def test_price_v3_serves_the_walk_s_mid_prices(localnet: Localnet) -> None:
    status, body = await api_get(localnet, "/price/v3", {"ids": f"{USDC},{JUP},{BONK}"})
    assert status == 200
    assert body[USDC]["usdPrice"] == 1.0 and body[USDC]["decimals"] == 6
    assert body[JUP]["usdPrice"] == pytest.approx(0.85)
    assert body[BONK]["usdPrice"] == pytest.approx(0.000025)
    assert {entry["blockId"] for entry in body.values()} == {localnet.slot()}
    for ids in ("", ",".join([USDC] * 51)):
        status, body = await api_get(localnet, "/price/v3", {"ids": ids})
        assert status == 400 and body["errorCode"] == "INVALID_REQUEST", body


# -- the walk -----------------------------------------------------------------------------------


async def _walked(seed: int, steps: int) -> dict[str, float]:
    ln = start_localnet(quote=dataclasses.replace(MANUAL, seed=seed))
    try:
        status, body = await api_post(ln, "/admin/advance", {"steps": steps})
        assert (status, body) == (200, {"step": steps})
        return await _prices(ln, [USDC, JUP, BONK])
    finally:
        ln.stop()


async def test_prices_are_deterministic_given_a_seed() -> None:
    a = await _walked(1, 500)
    b = await _walked(1, 500)
    c = await _walked(2, 500)
    assert a == b
    assert a[JUP] != c[JUP] and a[BONK] != c[BONK]
    assert a[USDC] == c[USDC] == 1.0  # the stablecoin does not walk
    assert a[JUP] != pytest.approx(0.85, rel=1e-6)  # and the others do


def test_prices_step_with_the_clock_unless_manual() -> None:
    now = [0.0]
    timed = PriceWalk(GENESIS.tokens, 1, 1.0, False, 20.0, clock=lambda: now[0])
    manual = PriceWalk(GENESIS.tokens, 1, 1.0, True, 20.0, clock=lambda: now[0])
    assert timed.step == manual.step == 0 and timed.price(JUP) == pytest.approx(0.85)
    now[0] = 2.5
    assert timed.step == 2 and timed.price(JUP) != pytest.approx(0.85, rel=1e-9)
    assert manual.step == 0 and manual.price(JUP) == pytest.approx(0.85)
    assert manual.advance(2) == 2 and manual.price(JUP) == timed.price(JUP)  # same seed, same steps


async def test_a_volatility_spike_widens_moves_and_a_bad_command_changes_nothing(localnet: Localnet) -> None:
    before = await _prices(localnet, [JUP, BONK])
    status, body = await api_post(localnet, "/admin/volatility-spike", {"on": True})
    assert (status, body) == (200, {"spike": True, "multiplier": MANUAL.spike_multiplier})
    await api_post(localnet, "/admin/advance", {"steps": 300})
    after = await _prices(localnet, [JUP, BONK])
    calm = await _walked(1, 300)  # a calm twin, same seed, same draws
    for mint in (JUP, BONK):
        # The spike scales each step by spike_multiplier (20).
        assert abs(math.log(after[mint] / before[mint])) > 10 * abs(math.log(calm[mint] / before[mint])) > 0
    for path, body in (("/admin/volatility-spike", {"on": "yes"}), ("/admin/advance", {"steps": -1}), ("/admin/advance", {"steps": True})):
        status, answer = await api_post(localnet, path, body)
        assert status == 400 and answer["errorCode"] == "INVALID_REQUEST", (path, body)
    assert await _prices(localnet, [JUP, BONK]) == after
    status, body = await api_post(localnet, "/admin/volatility-spike", {"on": False})
    assert (status, body["spike"]) == (200, False)


# -- the route ----------------------------------------------------------------------------------


async def test_a_route_settles_at_the_quoted_amounts_after_the_price_moved(localnet: Localnet) -> None:
    key, mm = dev_vault_authority(1), localnet.genesis.market_maker.pubkey()
    mints = [Pubkey.from_string(USDC), Pubkey.from_string(JUP)]
    q = await get_quote(localnet, USDC, JUP, 250_000_000)
    await api_post(localnet, "/admin/advance", {"steps": 5_000})
    assert (await get_quote(localnet, USDC, JUP, 250_000_000))["outAmount"] != q["outAmount"], "the walk moved"
    localnet.advance(1)
    wallet_before, mm_before = balances(localnet, key.pubkey(), mints), balances(localnet, mm, mints)
    status, answer = await api_post(localnet, "/swap/v1/swap-instructions", {"userPublicKey": str(key.pubkey()), "quoteResponse": q})
    assert status == 200, answer
    localnet.call(localnet.server.chain.submit, sign(key, compile_route(localnet, key.pubkey(), answer)), preflight=True)
    wallet_after, mm_after = balances(localnet, key.pubkey(), mints), balances(localnet, mm, mints)
    paid, got = int(q["inAmount"]), int(q["outAmount"])
    assert (wallet_after[USDC] - wallet_before[USDC], wallet_after[JUP] - wallet_before[JUP]) == (-paid, got)
    assert (mm_after[USDC] - mm_before[USDC], mm_after[JUP] - mm_before[JUP]) == (paid, -got)


async def test_swap_instructions_refuse_a_doctored_quote_or_bad_body_and_change_nothing(localnet: Localnet) -> None:
    q = await get_quote(localnet, USDC, JUP, 10**8)
    user = str(dev_vault_authority(0).pubkey())
    cases: list[tuple[Any, str]] = [
        ({"userPublicKey": user, "quoteResponse": {**q, "outAmount": str(int(q["outAmount"]) * 2)}}, "not a quote this service gave"),
        ({"userPublicKey": user, "quoteResponse": {**q, "otherAmountThreshold": "1"}}, "not a quote this service gave"),
        ({"userPublicKey": user, "quoteResponse": {**q, "slippageBps": 10_000}}, "not a quote this service gave"),
        ({"userPublicKey": user, "quoteResponse": "q"}, "quoteResponse: expected the object"),
        ({"userPublicKey": user, "quoteResponse": q, "wrapAndUnwrapSol": "yes"}, "wrapAndUnwrapSol"),
        ({"userPublicKey": "not-a-key", "quoteResponse": q}, "userPublicKey"),
        ({"quoteResponse": q}, "userPublicKey"),
        ([q], "body: expected a JSON object"),
    ]
    landed = localnet.call(lambda: len(localnet.server.chain.landed))
    for body, reason in cases:
        status, answer = await api_post(localnet, "/swap/v1/swap-instructions", body)
        assert status == 400 and answer["errorCode"] == "INVALID_REQUEST" and reason in answer["error"], (body, answer)
    async with aiohttp.ClientSession() as http, http.post(localnet.urls["quote"] + "/swap/v1/swap-instructions", data=b"{not json") as resp:
        assert resp.status == 400 and (await resp.json())["error"] == "body: not valid JSON"
    # Nothing was funded for a refused request: the market maker landed no transaction.
    assert localnet.call(lambda: len(localnet.server.chain.landed)) == landed
    status, answer = await api_post(localnet, "/swap/v1/swap-instructions", {"userPublicKey": user, "quoteResponse": q})
    assert status == 200, answer


# -- quotes and orders kept, and expired ---------------------------------------------------------


async def test_the_oldest_quotes_and_orders_are_forgotten_beyond_max_open_quotes() -> None:
    ln = start_localnet(quote=dataclasses.replace(MANUAL, max_open_quotes=2))
    try:
        user = str(dev_vault_authority(0).pubkey())
        quotes = [await get_quote(ln, USDC, JUP, amount) for amount in (10**6, 2 * 10**6, 3 * 10**6)]
        status, answer = await api_post(ln, "/swap/v1/swap-instructions", {"userPublicKey": user, "quoteResponse": quotes[0]})
        assert status == 400 and "not a quote this service gave" in answer["error"]
        status, answer = await api_post(ln, "/swap/v1/swap-instructions", {"userPublicKey": user, "quoteResponse": quotes[2]})
        assert status == 200, answer
        orders = [
            (await api_get(ln, "/ultra/v1/order", {"inputMint": USDC, "outputMint": JUP, "amount": str(a), "taker": user}))[1]
            for a in (10**6, 2 * 10**6, 3 * 10**6)
        ]
        # Not a transaction: a kept order says so (-2), a forgotten one is not found (-1).
        codes = [(await api_post(ln, "/ultra/v1/execute", {"signedTransaction": "AA==", "requestId": o["requestId"]}))[1]["code"] for o in orders]
        assert codes == [-1, -2, -2]
    finally:
        ln.stop()


@contextlib.asynccontextmanager
async def _quote_app() -> AsyncIterator[tuple[str, web.Application, Chain]]:
    """The quote app in hand, on this test's loop, over its own chain."""
    chain = Chain(TEST_SETTINGS, GENESIS)
    app = create_quote_app(GENESIS, chain, MANUAL)
    async with TestServer(app, host="127.0.0.1", port=free_port()) as server:
        yield str(server.make_url("")), app, chain


async def test_an_expired_quote_or_order_is_refused() -> None:
    now = [1_000.0]
    async with _quote_app() as (url, app, chain), aiohttp.ClientSession(url) as http:
        app[QUOTE_SERVICE].swap.clock = lambda: now[0]
        key = dev_vault_authority(0)
        params = {"inputMint": USDC, "outputMint": JUP, "amount": "1000000"}
        async with http.get("/swap/v1/quote", params=params) as resp:
            q = await resp.json()
            assert resp.status == 200, q
        async with http.get("/ultra/v1/order", params={**params, "taker": str(key.pubkey())}) as resp:
            order = await resp.json()
            assert resp.status == 200, order
        landed = len(chain.landed)
        now[0] += MANUAL.quote_ttl_s + 1
        async with http.post("/swap/v1/swap-instructions", json={"userPublicKey": str(key.pubkey()), "quoteResponse": q}) as resp:
            assert resp.status == 400 and "expired" in (await resp.json())["error"]
        tx = sign(key, VersionedTransaction.from_bytes(base64.b64decode(order["transaction"])).message)
        body = {"signedTransaction": base64.b64encode(bytes(tx)).decode(), "requestId": order["requestId"]}
        async with http.post("/ultra/v1/execute", json=body) as resp:
            assert resp.status == 400 and (await resp.json())["code"] == -2003
        assert len(chain.landed) == landed  # nothing funded, nothing landed


# -- settings and instructions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"step_s": 0}, "step_s"),
        ({"quote_ttl_s": 0}, "quote_ttl_s"),
        ({"default_slippage_bps": 10_001}, "default_slippage_bps"),
        ({"spike_multiplier": 0.5}, "spike_multiplier"),
        ({"compute_unit_limit": 0}, "compute_unit_limit"),
        ({"max_open_quotes": 0}, "max_open_quotes"),
        ({"port": 70_000}, "port"),
        ({"seed": "x"}, "seed"),
    ],
)
def test_bad_quote_settings_name_the_key(table: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=f"localnet.quote.{key}"):
        build_section(QuoteSettings, table, "localnet.quote")


@pytest.mark.parametrize("signers", [[], [Pubkey.new_unique(), Pubkey.new_unique()]])
def test_hand_built_transfer_checked_equals_spl(signers: list[Pubkey]) -> None:
    jup = GENESIS.token("JUP")
    source, dest, owner = Pubkey.new_unique(), Pubkey.new_unique(), Pubkey.new_unique()
    params = TransferCheckedParams(
        program_id=TOKEN_PROGRAM_ID, source=source, mint=jup.mint, dest=dest, owner=owner, amount=2**63 + 5, decimals=6, signers=signers
    )
    assert transfer_ix(source, jup.mint, dest, owner, 2**63 + 5, 6, signers) == transfer_checked(params)
