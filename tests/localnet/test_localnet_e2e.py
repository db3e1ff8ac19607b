"""End to end through the runner: a Swap API quote and route for a vault, compiled with the lookup
tables read over JSON-RPC, signed by the vault authority, sent with solana-py, and its finalized
notification."""

from __future__ import annotations

import asyncio

from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Processed
from solana.rpc.models import TxOpts
from solana.rpc.websocket_api import SolanaWsClient
from solders.rpc.responses import SignatureNotification
from solders.token.state import TokenAccount

from tests.localnet.jupiter_routes import get_quote, signed_route
from xorj_actors.localnet import Localnet, dev_vault_authority


async def token_amount(client: AsyncClient, account) -> int:
    info = (await client.get_account_info(account, commitment=Processed)).value
    return TokenAccount.from_bytes(bytes(info.data)).amount


async def test_quote_to_finalized_notification(localnet: Localnet) -> None:
    assert localnet.urls["quote"], "the quote service is mounted by the runner"
    g = localnet.genesis
    vault = g.vault(2)
    vault_authority = dev_vault_authority(vault.vault_id)  # its own key: the wallet names the vault
    localnet.advance(8)
    quote = await get_quote(localnet, g.token("USDC").mint, g.token("JUP").mint, 25_000_000, slippageBps="50")
    assert quote["contextSlot"] == localnet.slot()
    localnet.advance(1)  # the desk's table made for the quote is warm from the next slot
    async with AsyncClient(localnet.urls["rpc"]) as client, SolanaWsClient(localnet.urls["ws"]) as ws:
        _, tx = await signed_route(localnet, client, vault_authority, quote)
        jup_before = await token_amount(client, vault.token_accounts["JUP"])
        await ws.signature_subscribe(signature=tx.signatures[0], commitment="finalized")
        await client.send_raw_transaction(bytes(tx), TxOpts(preflight_commitment="confirmed"))
        localnet.advance(localnet.settings.finalized_lag)
        note = await asyncio.wait_for(ws.recv(), 5)
        assert isinstance(note, SignatureNotification) and note.result.value.err is None
        received = await token_amount(client, vault.token_accounts["JUP"]) - jup_before
    assert received == int(quote["outAmount"]) >= int(quote["otherAmountThreshold"])
