"""Swaps from quote to finalized through the whole localnet: quote service, JSON-RPC, chain."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.models import TxOpts
from solders.message import to_bytes_versioned
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction
from solders.transaction_status import InstructionErrorCustom, TransactionErrorInstructionError

from xorj_actors.localnet import Localnet, dev_vault_authority


async def _balance(rpc: AsyncClient, account: Pubkey) -> int:
    return int((await rpc.get_token_account_balance(account, Confirmed)).value.amount)


async def _signed_swap(net: Localnet, vault_id: str, sell: str, buy: str, amount: int) -> tuple[Any, bytes]:
    """Quote, ``POST /swap``, sign the user's slot: (quote, signed transaction bytes)."""
    genesis = net.genesis
    params = {"inputMint": str(genesis.token(sell).mint), "outputMint": str(genesis.token(buy).mint)}
    async with aiohttp.ClientSession() as http:
        async with http.get(net.urls["quote"] + "/quote", params={**params, "amount": str(amount)}) as resp:
            quote = await resp.json()
            assert resp.status == 200, quote
        owner = dev_vault_authority(vault_id)  # the vault's own key: the wallet names the vault
        body = {"userPublicKey": str(owner.pubkey()), "quoteResponse": quote}
        async with http.post(net.urls["quote"] + "/swap", json=body) as resp:
            swap = await resp.json()
            assert resp.status == 200, swap
    tx = VersionedTransaction.from_bytes(base64.b64decode(swap["swapTransaction"]))
    user = owner.sign_message(to_bytes_versioned(tx.message))
    return quote, bytes(VersionedTransaction.populate(tx.message, [user, tx.signatures[1]]))


async def test_swap_from_quote_to_finalized(localnet: Localnet) -> None:
    localnet.advance(10)  # past genesis: the finalized blockhash is one a slot produced
    vault = localnet.genesis.vault("vault-0001")
    quote, signed = await _signed_swap(localnet, vault.vault_id, "USDC", "SOL", 1_500_000_000)
    assert quote["contextSlot"] == 10
    async with AsyncClient(localnet.urls["rpc"]) as rpc:
        before = await _balance(rpc, vault.token_accounts["USDC"])
        signature = (await rpc.send_raw_transaction(signed)).value
        localnet.advance(localnet.settings.finalized_lag + 1)
        status = (await rpc.get_signature_statuses([signature])).value[0]
        assert status is not None and status.err is None
        assert str(status.confirmation_status).endswith("Finalized")
        assert before - await _balance(rpc, vault.token_accounts["USDC"]) == int(quote["inAmount"])
        assert await _balance(rpc, vault.token_accounts["SOL"]) == int(quote["outAmount"])


async def test_underfunded_vault_lands_failed_with_custom_1(localnet: Localnet) -> None:
    localnet.advance(10)
    vault = localnet.genesis.vault(2)
    too_much = localnet.genesis.stable.vault_amount + 1
    _, signed = await _signed_swap(localnet, vault.vault_id, "USDC", "JUP", too_much)
    async with AsyncClient(localnet.urls["rpc"]) as rpc:
        signature = (await rpc.send_raw_transaction(signed, TxOpts(skip_preflight=True))).value
        localnet.advance(2)
        status = (await rpc.get_signature_statuses([signature])).value[0]
        assert status is not None
        assert status.err == TransactionErrorInstructionError(2, InstructionErrorCustom(1))
        assert await _balance(rpc, vault.token_accounts["JUP"]) == 0
        assert await _balance(rpc, vault.token_accounts["USDC"]) == too_much - 1
