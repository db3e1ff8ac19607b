"""Faults on command: 429s, refused and delayed HTTP, a stalled clock, dropped and late transactions."""

from __future__ import annotations

import asyncio
import dataclasses

import aiohttp
import pytest
from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Processed
from solana.rpc.models import TxOpts

from xorj_actors.localnet import Faults, Localnet

GET_SLOT = {"jsonrpc": "2.0", "id": 1, "method": "getSlot", "params": [{"commitment": "processed"}]}
CONFIRMED_PREFLIGHT = TxOpts(preflight_commitment="confirmed")


async def post(url: str, payload: object = GET_SLOT, timeout: float = 5.0) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        async with session.post(url, json=payload) as resp:
            return resp.status, dict(resp.headers), await resp.text()


async def status_of(localnet: Localnet, sig):
    async with AsyncClient(localnet.urls["rpc"]) as c:
        return (await c.get_signature_statuses([sig], search_transaction_history=True)).value[0]


async def send(localnet: Localnet, tx) -> None:
    async with AsyncClient(localnet.urls["rpc"]) as c:
        assert (await c.send_raw_transaction(bytes(tx), CONFIRMED_PREFLIGHT)).value == tx.signatures[0]


async def latest(localnet: Localnet):
    async with AsyncClient(localnet.urls["rpc"]) as c:
        return (await c.get_latest_blockhash(Processed)).value.blockhash


async def test_rate_limit_answers_429_with_retry_after(localnet: Localnet) -> None:
    localnet.set_faults(rate_limit=0.5, retry_after_s=3)
    statuses = []
    for _ in range(10):
        status, headers, _ = await post(localnet.urls["rpc"])
        statuses.append(status)
        if status == 429:
            assert headers["Retry-After"] == "3"
    assert statuses.count(429) == 5 and statuses.count(200) == 5
    async with AsyncClient(localnet.urls["rpc"]) as c:
        localnet.set_faults(rate_limit=1.0)
        with pytest.raises(SolanaRpcException):
            await c.get_slot()
        localnet.reset_faults()
        assert (await c.get_slot()).value == 0


async def test_refused_http_then_recovery(localnet: Localnet) -> None:
    localnet.set_faults(refuse_http=True)
    with pytest.raises(aiohttp.ClientError):
        await post(localnet.urls["rpc"])
    localnet.set_faults(refuse_http=False)
    assert (await post(localnet.urls["rpc"]))[0] == 200


async def test_delayed_http_outlasts_a_short_client_timeout(localnet: Localnet) -> None:
    localnet.set_faults(http_delay_s=5.0)
    with pytest.raises(TimeoutError):
        await post(localnet.urls["rpc"], timeout=0.2)
    localnet.reset_faults()
    assert (await post(localnet.urls["rpc"], timeout=5.0))[0] == 200


async def test_stalled_clock_stops_slots(fast_localnet: Localnet) -> None:
    ln = fast_localnet
    ln.set_faults(clock_stalled=True)
    stalled_at = ln.slot()
    await asyncio.sleep(0.2)  # ten slot periods
    assert ln.slot() == stalled_at
    ln.set_faults(clock_stalled=False)
    for _ in range(250):
        if ln.slot() > stalled_at:
            break
        await asyncio.sleep(0.02)
    assert ln.slot() > stalled_at


async def test_dropped_transaction_never_lands(localnet: Localnet, make_swap) -> None:
    localnet.drop_transactions(1)
    dropped = make_swap(await latest(localnet), amount_in=1)
    await send(localnet, dropped)  # the node answers with the signature as usual
    localnet.advance(10)
    assert await status_of(localnet, dropped.signatures[0]) is None
    kept = make_swap(await latest(localnet), amount_in=2)
    await send(localnet, kept)
    assert await status_of(localnet, kept.signatures[0]) is not None


async def test_late_transaction_lands_after_the_set_slots(localnet: Localnet, make_swap) -> None:
    localnet.delay_transactions(1, slots=3)
    tx = make_swap(await latest(localnet))
    await send(localnet, tx)
    localnet.advance(2)
    assert await status_of(localnet, tx.signatures[0]) is None
    localnet.advance()
    landed = await status_of(localnet, tx.signatures[0])
    assert landed is not None and landed.slot == 3


async def test_bad_fault_input_changes_nothing(localnet: Localnet) -> None:
    localnet.set_faults(rate_limit=0.25)
    for bad in ({"rate_limit": 2.0}, {"refuse_http": "yes"}, {"retry_after_s": 1.5}, {"chaos": True}):
        with pytest.raises(ValueError):
            localnet.set_faults(**bad)
    assert localnet.server.faults == dataclasses.replace(Faults(), rate_limit=0.25)
    with pytest.raises(ValueError):
        localnet.advance(0)
    with pytest.raises(ValueError):
        localnet.delay_transactions(1, slots=0)


async def test_admin_endpoint(localnet: Localnet) -> None:
    rpc = localnet.urls["rpc"]
    status, _, body = await post(f"{rpc}/admin/advance", {"slots": 2})
    assert status == 200 and '"slot": 2' in body
    assert (await post(f"{rpc}/admin/faults", {"rate_limit": 1.0}))[0] == 200
    assert (await post(rpc))[0] == 429
    assert (await post(f"{rpc}/admin/faults", {"rate_limit": 7}))[0] == 400
    assert localnet.server.faults.rate_limit == 1.0
    assert (await post(f"{rpc}/admin/reset", {}))[0] == 200
    assert (await post(rpc))[0] == 200
    assert (await post(f"{rpc}/admin/explode", {}))[0] == 404
    assert (await post(f"{rpc}/admin/drop-transactions", {"count": -1}))[0] == 400
