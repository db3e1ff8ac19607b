"""getSignaturesForAddress on the localnet: Agave's shape, order, paging and commitment."""

from __future__ import annotations

from typing import Any

import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Processed
from solana.rpc.models import TxOpts

from xorj_actors.localnet import Localnet
from xorj_actors.statements import ChainError, RpcReader

CONFIRMED = TxOpts(preflight_commitment="confirmed")


def _call(localnet: Localnet, address: str, **options: Any) -> list[dict[str, Any]]:
    return RpcReader(localnet.urls["rpc"])._call("getSignaturesForAddress", [address, options])


async def test_newest_first_by_account_paged_and_confirmed_only(localnet: Localnet, make_swap) -> None:
    g = localnet.genesis
    sigs = []
    async with AsyncClient(localnet.urls["rpc"]) as client:
        for vault in (1, 2, 1):  # vault 2's swap does not name vault 1's accounts
            if sigs:
                localnet.advance()
            blockhash = (await client.get_latest_blockhash(Processed)).value.blockhash
            tx = make_swap(blockhash, vault=vault, amount_in=1_000_000, amount_out=1_000_000)
            sigs.append(str((await client.send_raw_transaction(bytes(tx), CONFIRMED)).value))
    usdc = str(g.vault(1).token_accounts["USDC"])
    assert [r["signature"] for r in _call(localnet, usdc, commitment="confirmed")] == [sigs[0]], "the last: processed"
    localnet.advance()
    rows = _call(localnet, usdc, commitment="confirmed")
    assert [r["signature"] for r in rows] == [sigs[2], sigs[0]]
    assert set(rows[0]) == {"signature", "slot", "err", "memo", "blockTime", "confirmationStatus"}
    assert rows[0]["slot"] > rows[1]["slot"] and rows[0]["err"] is None and rows[0]["confirmationStatus"] == "confirmed"
    assert [r["signature"] for r in _call(localnet, usdc, commitment="confirmed", limit=1)] == [sigs[2]]
    assert [r["signature"] for r in _call(localnet, usdc, commitment="confirmed", before=sigs[2])] == [sigs[0]]
    assert _call(localnet, usdc, commitment="confirmed", until=sigs[2]) == []
    # the fee payer (the vault's authority) is listed as well: the reconciliation reads both
    assert [r["signature"] for r in _call(localnet, str(g.vault(2).authority), commitment="confirmed")] == [sigs[1]]
    reader = RpcReader(localnet.urls["rpc"])
    assert reader.signatures_for(usdc, after_slot=rows[1]["slot"], limit=1) == [(sigs[2], rows[0]["slot"])]
    assert [s for s, _ in reader.signatures_for(usdc, after_slot=-1, limit=1) or []] == [sigs[2], sigs[0]]  # paged


@pytest.mark.parametrize("options", [{"commitment": "processed"}, {"limit": 0}, {"limit": 1001}])
def test_refused_options(localnet: Localnet, options: dict[str, Any]) -> None:
    with pytest.raises(ChainError, match="-32602"):
        _call(localnet, str(localnet.genesis.vault(0).authority), **options)
