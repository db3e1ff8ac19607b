"""The localnet's fee market: getRecentPrioritizationFees honours its accounts in Agave's shape,
and getPriorityFeeEstimate answers in Helius' shape from the prices that landed."""

from __future__ import annotations

from typing import Any

import pytest
from solders.keypair import Keypair

from tests.fees.market import POOL_PRICES, Market, market, rpc, send_priced  # noqa: F401 (the fixture)


async def recent(market: Market, *accounts: Any) -> list[dict[str, int]]:
    params = [[str(a) for a in accounts]] if accounts else []
    return await rpc(market.session, market.url, "getRecentPrioritizationFees", params)  # type: ignore[return-value]


async def estimate(market: Market, request: Any) -> dict[str, Any]:
    return await rpc(market.session, market.url, "getPriorityFeeEstimate", [request])  # type: ignore[return-value]


async def error_of(market: Market, method: str, params: list[Any]) -> dict[str, Any]:
    payload = {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}
    async with market.session.post(market.url, json=payload) as resp:
        return (await resp.json())["error"]


async def test_recent_fees_keep_agaves_shape_and_honour_the_accounts(market: Market) -> None:
    first = market.localnet.slot() - len(POOL_PRICES)  # the pool's first priced slot
    slot = market.localnet.advance(149 - len(POOL_PRICES))  # that slot is now the oldest of 150
    rows = await recent(market, market.pool)
    assert [r["slot"] for r in rows] == list(range(slot - 149, slot + 1))
    assert rows[0]["slot"] == first
    assert all(set(r) == {"slot", "prioritizationFee"} for r in rows)
    assert [r["prioritizationFee"] for r in rows] == [*POOL_PRICES, *[0] * (150 - len(POOL_PRICES))]
    # The idle account and no accounts at all see each slot's block minimum: 0 here.
    assert {r["prioritizationFee"] for r in await recent(market, market.idle)} == {0}
    assert {r["prioritizationFee"] for r in await recent(market)} == {0}
    # Several accounts: per slot the highest of their minima, as Agave answers.
    assert await recent(market, market.pool, market.idle) == rows


async def test_a_slot_with_only_priced_transactions_floors_every_account(market: Market) -> None:
    trader = Keypair()
    await rpc(market.session, market.url, "requestAirdrop", [str(trader.pubkey()), 10**12])
    market.localnet.advance()  # the airdrop (price 0) stays in the slot before
    await send_priced(market.session, market.url, trader, market.pool, 50_000)
    idle = await recent(market, market.idle)
    assert idle[-1] == {"slot": market.localnet.slot(), "prioritizationFee": 50_000}


async def test_fees_older_than_150_slots_are_forgotten(market: Market) -> None:
    market.localnet.advance(150)
    assert {r["prioritizationFee"] for r in await recent(market, market.pool)} == {0}
    assert (await estimate(market, {"accountKeys": [str(market.pool)]}))["priorityFeeEstimate"] == 0.0


async def test_estimate_answers_helius_shapes_from_the_accounts_prices(market: Market) -> None:
    pool = str(market.pool)
    assert await estimate(market, {"accountKeys": [pool]}) == {"priorityFeeEstimate": 20_000.0}
    assert await estimate(market, {"accountKeys": [pool], "options": {"priorityLevel": "VeryHigh"}}) == {
        "priorityFeeEstimate": 40_000.0
    }
    assert await estimate(market, {"accountKeys": [pool], "options": {"recommended": True}}) == {
        "priorityFeeEstimate": 20_000.0
    }
    both = await estimate(market, {"accountKeys": [pool], "options": {"includeAllPriorityFeeLevels": True, "priorityLevel": "Low"}})
    assert both == {
        "priorityFeeLevels": {
            "min": 10_000.0,
            "low": 10_000.0,
            "medium": 20_000.0,
            "high": 30_000.0,
            "veryHigh": 40_000.0,
            "unsafeMax": 40_000.0,
        },
        "priorityFeeEstimate": 10_000.0,
    }
    # The busiest account sets the levels; an idle one alone answers 0.
    assert (await estimate(market, {"accountKeys": [str(market.idle), pool]}))["priorityFeeEstimate"] == 20_000.0
    assert (await estimate(market, {"accountKeys": [str(market.idle)]}))["priorityFeeEstimate"] == 0.0
    # lookbackSlots counts back from the current slot: the last two slots hold only 40,000.
    recent_only = await estimate(market, {"accountKeys": [pool], "options": {"lookbackSlots": 2, "priorityLevel": "Min"}})
    assert recent_only == {"priorityFeeEstimate": 40_000.0}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ([], "missing parameter 0"),
        ([{}], "accountKeys must be a non-empty array"),
        ([{"accountKeys": []}], "accountKeys must be a non-empty array"),
        ([{"accountKeys": ["not-a-key"]}], "not a valid public key"),
        ([{"transaction": "AQAB"}], "accountKeys only"),
        ([{"accountKeys": ["11111111111111111111111111111111"], "options": {"priority": "High"}}], "unknown option 'priority'"),
        ([{"accountKeys": ["11111111111111111111111111111111"], "options": {"priorityLevel": "high"}}], "priorityLevel must be one of"),
        ([{"accountKeys": ["11111111111111111111111111111111"], "options": {"lookbackSlots": 0}}], "lookbackSlots"),
        ([{"accountKeys": ["11111111111111111111111111111111"], "options": {"lookbackSlots": 151}}], "lookbackSlots"),
        (
            [{"accountKeys": ["11111111111111111111111111111111"], "options": {"recommended": True, "priorityLevel": "Low"}}],
            "recommended cannot be used",
        ),
    ],
)
async def test_bad_estimate_requests_are_invalid_params(market: Market, params: list[Any], message: str) -> None:
    error = await error_of(market, "getPriorityFeeEstimate", params)
    assert error["code"] == -32602
    assert message in error["message"]


async def test_more_than_128_accounts_are_refused(market: Market) -> None:
    keys = [str(Keypair().pubkey()) for _ in range(129)]
    error = await error_of(market, "getRecentPrioritizationFees", [keys])
    assert error == {"code": -32602, "message": "Invalid params: Too many inputs provided; max 128"}
