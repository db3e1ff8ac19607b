"""The accounts an attempt's priority fee is asked for (pure; the fee policy: tests/fees)."""

from __future__ import annotations

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey

from xorj_actors.execution._fees import writable_accounts
from xorj_actors.fees import MAX_FEE_ACCOUNTS


def test_the_fee_is_asked_for_the_written_accounts_once_each_without_the_vaults_own() -> None:
    program, vault, pool, market, oracle = (Pubkey.new_unique() for _ in range(5))
    ixs = [
        Instruction(program, b"", [AccountMeta(vault, True, True), AccountMeta(pool, False, True), AccountMeta(oracle, False, False)]),
        Instruction(program, b"", [AccountMeta(market, False, True), AccountMeta(pool, False, True)]),
    ]
    assert writable_accounts(ixs, exclude=[vault]) == [pool, market]
    many = [Instruction(program, b"", [AccountMeta(Pubkey.new_unique(), False, True) for _ in range(200)])]
    assert len(writable_accounts(many)) == MAX_FEE_ACCOUNTS
