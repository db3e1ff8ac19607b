"""Swaps from quote to finalized through the whole localnet, as a client does them: Swap API quote
and route, lookup tables read and blockhash taken over JSON-RPC, the vault's own key signs,
sendTransaction."""

from __future__ import annotations

from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.models import TxOpts
from solders.pubkey import Pubkey
from solders.transaction_status import InstructionErrorCustom, TransactionErrorInstructionError

from tests.localnet.jupiter_routes import get_quote, signed_route
from xorj_actors.localnet import Localnet, dev_vault_authority


async def _balance(rpc: AsyncClient, account: Pubkey) -> int:
    return int((await rpc.get_token_account_balance(account, Confirmed)).value.amount)


async def test_swap_from_quote_to_finalized(localnet: Localnet) -> None:
    localnet.advance(10)
    genesis, vault = localnet.genesis, localnet.genesis.vault("vault-0001")
    quote = await get_quote(localnet, genesis.token("USDC").mint, genesis.token("SOL").mint, 1_500_000_000)
    assert quote["contextSlot"] == 10
    localnet.advance(1)  # the desk's table made for the quote is warm from the next slot
    async with AsyncClient(localnet.urls["rpc"]) as rpc:
        answer, tx = await signed_route(localnet, rpc, dev_vault_authority(vault.vault_id), quote)
        assert answer["addressLookupTableAddresses"] and tx.message.address_table_lookups
        before = await _balance(rpc, vault.token_accounts["USDC"])
        signature = (await rpc.send_raw_transaction(bytes(tx))).value
        localnet.advance(localnet.settings.finalized_lag + 1)
        status = (await rpc.get_signature_statuses([signature])).value[0]
        assert status is not None and status.err is None
        assert str(status.confirmation_status).endswith("Finalized")
        assert before - await _balance(rpc, vault.token_accounts["USDC"]) == int(quote["inAmount"])
        assert await _balance(rpc, vault.token_accounts["SOL"]) == int(quote["outAmount"])


async def test_underfunded_vault_lands_failed_with_custom_1(localnet: Localnet) -> None:
    localnet.advance(10)
    genesis, vault = localnet.genesis, localnet.genesis.vault(2)
    too_much = genesis.stable.vault_amount + 1
    quote = await get_quote(localnet, genesis.stable.mint, genesis.token("JUP").mint, too_much)
    async with AsyncClient(localnet.urls["rpc"]) as rpc:
        answer, tx = await signed_route(localnet, rpc, dev_vault_authority(vault.vault_id), quote)
        signature = (await rpc.send_raw_transaction(bytes(tx), TxOpts(skip_preflight=True))).value
        localnet.advance(2)
        status = (await rpc.get_signature_statuses([signature])).value[0]
        assert status is not None
        # The vault's payment (swapInstruction, after the compute budget and setup) is short.
        paying = len(answer["computeBudgetInstructions"]) + len(answer["setupInstructions"])
        assert status.err == TransactionErrorInstructionError(paying, InstructionErrorCustom(1))
        assert await _balance(rpc, vault.token_accounts["JUP"]) == 0
        assert await _balance(rpc, vault.token_accounts["USDC"]) == too_much - 1
