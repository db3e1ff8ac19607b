"""End to end through the runner: a Jupiter-shaped quote, the swap it returns, signed by the vault
authority, sent with solana-py, and its finalized notification."""

from __future__ import annotations

import asyncio
import base64

import aiohttp
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Processed
from solana.rpc.models import TxOpts
from solana.rpc.websocket_api import SolanaWsClient
from solders.message import to_bytes_versioned
from solders.rpc.responses import SignatureNotification
from solders.token.state import TokenAccount
from solders.transaction import VersionedTransaction

from xorj_actors.localnet import Localnet, dev_vault_authority


async def token_amount(client: AsyncClient, account) -> int:
    info = (await client.get_account_info(account, commitment=Processed)).value
    return TokenAccount.from_bytes(bytes(info.data)).amount


async def test_quote_to_finalized_notification(localnet: Localnet) -> None:
    assert localnet.urls["quote"], "the quote service is mounted by the runner"
    g = localnet.genesis
    vault = g.vault(2)
    vault_authority = dev_vault_authority(vault.vault_id)  # its own key: the wallet names the vault
    usdc, jup = g.token("USDC"), g.token("JUP")
    localnet.advance(8)  # a finalized blockhash exists beyond genesis
    async with aiohttp.ClientSession(localnet.urls["quote"]) as http:
        query = {"inputMint": str(usdc.mint), "outputMint": str(jup.mint), "amount": "25000000", "slippageBps": "50"}
        async with http.get("/quote", params=query) as resp:
            assert resp.status == 200
            quote = await resp.json()
        assert quote["contextSlot"] == localnet.slot()
        body = {"userPublicKey": str(vault_authority.pubkey()), "quoteResponse": quote}
        async with http.post("/swap", json=body) as resp:
            assert resp.status == 200
            swap = await resp.json()
    unsigned = VersionedTransaction.from_bytes(base64.b64decode(swap["swapTransaction"]))
    signatures = list(unsigned.signatures)
    signatures[0] = vault_authority.sign_message(to_bytes_versioned(unsigned.message))  # fee payer's slot
    tx = VersionedTransaction.populate(unsigned.message, signatures)

    async with AsyncClient(localnet.urls["rpc"]) as client, SolanaWsClient(localnet.urls["ws"]) as ws:
        jup_before = await token_amount(client, vault.token_accounts["JUP"])
        await ws.signature_subscribe(signature=tx.signatures[0], commitment="finalized")
        await client.send_raw_transaction(bytes(tx), TxOpts(preflight_commitment="confirmed"))
        localnet.advance(localnet.settings.finalized_lag)
        note = await asyncio.wait_for(ws.recv(), 5)
        assert isinstance(note, SignatureNotification) and note.result.value.err is None
        received = await token_amount(client, vault.token_accounts["JUP"]) - jup_before
    assert received == int(quote["outAmount"]) >= int(quote["otherAmountThreshold"])
    assert swap["lastValidBlockHeight"] >= localnet.slot()
