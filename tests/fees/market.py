"""A localnet fee market for tests: one pool written at known prices, one account left idle.

Import the ``market`` fixture into a test module (it needs the ``localnet`` fixture).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import aiohttp
import pytest
from solders.compute_budget import set_compute_unit_price
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from xorj_actors.localnet import Localnet

__all__ = ["POOL_PRICES", "Market", "market", "rpc", "send_priced"]

POOL_PRICES = (10_000, 20_000, 30_000, 40_000)


async def rpc(session: aiohttp.ClientSession, url: str, method: str, params: list[object]) -> object:
    async with session.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}) as resp:
        body = await resp.json()
    assert "error" not in body, body
    return body["result"]


async def send_priced(session: aiohttp.ClientSession, url: str, payer: Keypair, to: Pubkey, price: int) -> None:
    """Land a transfer from ``payer`` to ``to`` bidding ``price`` micro-lamports per unit."""
    latest = await rpc(session, url, "getLatestBlockhash", [{"commitment": "processed"}])
    blockhash = latest["value"]["blockhash"]  # type: ignore[index]

    ixs = [
        set_compute_unit_price(price),
        transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=to, lamports=1_000_000_000)),
    ]
    tx = VersionedTransaction(MessageV0.try_compile(payer.pubkey(), ixs, [], Hash.from_string(blockhash)), [payer])
    await rpc(session, url, "sendTransaction", [base64.b64encode(bytes(tx)).decode(), {"encoding": "base64"}])


class Market:
    """A localnet where ``pool`` was written at :data:`POOL_PRICES`, one a slot, beside a
    zero-price transaction in each slot; ``idle`` was never written."""

    def __init__(self, localnet: Localnet, session: aiohttp.ClientSession) -> None:
        self.localnet = localnet
        self.url = str(localnet.urls["rpc"])
        self.session = session
        self.pool = Keypair().pubkey()
        self.idle = Keypair().pubkey()

    async def trade(self) -> None:
        traders, bystander = Keypair(), Keypair()
        for key in (traders.pubkey(), bystander.pubkey()):
            await rpc(self.session, self.url, "requestAirdrop", [str(key), 10**12])
        for price in POOL_PRICES:
            self.localnet.advance()
            await send_priced(self.session, self.url, traders, self.pool, price)
            await send_priced(self.session, self.url, bystander, Keypair().pubkey(), 0)
        self.localnet.advance()


@pytest.fixture
async def market(localnet: Localnet) -> AsyncIterator[Market]:
    """A :class:`Market` that has traded on the test's localnet."""
    async with aiohttp.ClientSession() as session:
        m = Market(localnet, session)
        await m.trade()
        yield m
