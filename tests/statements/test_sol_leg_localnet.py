"""A real SOL-leg swap on the localnet (Swap API route with ``wrapAndUnwrapSol``: the wallet's
wSOL account is created and closed in the transaction) reconciles clean from the chain's own
``getTransaction`` record."""

from __future__ import annotations

import pytest
from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address

from tests.localnet.jupiter_routes import api_get, api_post, compile_route, funded_wallet, sign
from xorj_actors.localnet import Localnet
from xorj_actors.programs import NATIVE_MINT
from xorj_actors.statements import Cause, LedgerTrade, Opening, RpcReader, VaultAccounts, compare_vault

SOL = str(NATIVE_MINT)


@pytest.mark.parametrize("sell", ["SOL", "USDC"])
async def test_a_sol_leg_wrapped_and_closed_in_the_swap_reconciles_clean(localnet: Localnet, sell: str) -> None:
    usdc = str(localnet.genesis.token("USDC").mint)
    wallet = funded_wallet(localnet, b"reconcile-sol-leg-" + sell.encode(), {"USDC": 100_000_000})
    owner = wallet.pubkey()
    in_mint, out_mint, amount = (SOL, usdc, 2 * 10**9) if sell == "SOL" else (usdc, SOL, 30_000_000)
    status, quote = await api_get(localnet, "/swap/v1/quote", {"inputMint": in_mint, "outputMint": out_mint,
                                                              "amount": str(amount), "slippageBps": "50"})
    assert status == 200, quote
    localnet.advance(1)
    status, answer = await api_post(localnet, "/swap/v1/swap-instructions", {"userPublicKey": str(owner), "quoteResponse": quote})
    assert status == 200, answer
    vault = VaultAccounts("v", str(owner), {m: str(get_associated_token_address(owner, Pubkey.from_string(m))) for m in (SOL, usdc)})
    reader = RpcReader(str(localnet.urls["rpc"]))
    localnet.advance(2)
    opening = Opening(*reader.balances(vault))
    localnet.advance(2)  # the swap lands after the opening's slot
    sig = str(localnet.call(localnet.server.chain.submit, sign(wallet, compile_route(localnet, owner, answer)), preflight=True))
    localnet.advance(3)
    slot, actual = reader.balances(vault)
    chain = reader.transactions([sig], vault)
    tx = chain[sig]
    assert tx.found and tx.err is None and SOL not in tx.token_mints, "the wSOL account is in no token balance row"
    trade = LedgerTrade("t1", in_mint, out_mint, (sig,), "confirmed", sig, int(quote["inAmount"]), int(quote["outAmount"]), 50)
    st = compare_vault("v", opening, actual, slot, [trade], chain)
    assert st.mismatches == () and st.transactions == 1, (opening, slot, actual, tx, st.mismatches)
    # one lamport of the SOL leg off in the ledger is still caught
    off = LedgerTrade("t1", in_mint, out_mint, (sig,), "confirmed", sig, int(quote["inAmount"]) + (sell == "SOL"),
                      int(quote["outAmount"]) + (sell != "SOL") * 10**9, 50)
    assert [m.cause for m in compare_vault("v", opening, actual, slot, [off], chain).mismatches] == [Cause.AMOUNT_DIFFERS]
