"""The legs of a swap are checked against the trade before the vault authority signs them."""

from __future__ import annotations

import pytest
from solders.instruction import Instruction
from solders.pubkey import Pubkey
from spl.memo.constants import MEMO_PROGRAM_ID

from xorj_actors.execution import TradeError
from xorj_actors.execution._transaction import check_vault_legs, priority_fee
from xorj_actors.localnet import TOKEN_PROGRAM_ID, build_genesis, dev_vault_authority
from xorj_actors.localnet.quote import transfer_checked_ix
from xorj_actors.localnet.settings import LocalnetSettings

G = build_genesis(LocalnetSettings(vaults=2))
USDC, JUP = G.token("USDC"), G.token("JUP")
AUTH = dev_vault_authority(0).pubkey()  # vault-0000's own key
MM = G.market_maker.pubkey()
V0, V1 = G.vaults[0].token_accounts, G.vaults[1].token_accounts


def legs(*, source: Pubkey = V0["USDC"], amount: int = 1_000, dest: Pubkey = V0["JUP"], out: int = 1_100) -> list[Instruction]:
    return [
        transfer_checked_ix(USDC, source, G.market_maker_accounts["USDC"], AUTH, amount),
        transfer_checked_ix(JUP, G.market_maker_accounts["JUP"], dest, MM, out),
    ]


def check(ixs: list[Instruction], min_out: int = 1_000) -> None:
    check_vault_legs(
        ixs, authority=AUTH, token_program=TOKEN_PROGRAM_ID, source=V0["USDC"], destination=V0["JUP"],
        input_mint=str(USDC.mint), output_mint=str(JUP.mint), amount_in=1_000, min_out=min_out,
    )


def test_the_quoted_legs_pass() -> None:
    check(legs())


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (legs(source=V1["USDC"]), "from"),  # another vault's account
        (legs(amount=1_001), "would send 1001"),
        (legs(dest=V1["JUP"]), "pay 0"),  # proceeds to another account
        (legs(out=999), "pay 999"),
        (legs() + [Instruction(MEMO_PROGRAM_ID, b"x", legs()[0].accounts[3:])], "not a transfer"),
    ],
)
def test_legs_that_differ_from_the_trade_are_refused(bad: list[Instruction], why: str) -> None:
    with pytest.raises(TradeError, match=why) as info:
        check(bad)
    assert info.value.error_class.value == "unknown"  # never retried


def test_priority_fee_takes_the_percentile_within_the_cap() -> None:
    assert priority_fee([], 0.75, 100) == 0
    assert priority_fee([5, 1, 3, 2], 0.75, 100) == 3
    assert priority_fee([5, 1, 3, 2], 1.0, 4) == 4
    assert priority_fee([-7], 0.5, 100) == 0
