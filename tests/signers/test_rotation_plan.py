"""The pure half of key rotation: which accounts can move, and the instructions that move them."""

from __future__ import annotations

import dataclasses

import pytest
from solders.pubkey import Pubkey
from solders.token.state import TokenAccount, TokenAccountState

from xorj_actors.programs import ASSOCIATED_TOKEN_PROGRAM_ID, SYSTEM_PROGRAM_ID, TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID
from xorj_actors.signers._rotation_plan import Holding, decode_holding, move_refusal, sol_move, token_move
from xorj_actors.tokens import vault_token_account

OLD, NEW, MINT = Pubkey.new_unique(), Pubkey.new_unique(), Pubkey.new_unique()


def holding(**changes: object) -> Holding:
    base = Holding(Pubkey.new_unique(), TOKEN_PROGRAM_ID, MINT, OLD, 1_500, False, None)
    return dataclasses.replace(base, **changes)


def test_decode_reads_the_base_layout_of_both_programs_and_refuses_others() -> None:
    address = Pubkey.new_unique()
    raw = bytes(TokenAccount(MINT, OLD, 7, None, TokenAccountState.Frozen, None, 0, NEW))
    for program, data in ((TOKEN_PROGRAM_ID, raw), (TOKEN_2022_PROGRAM_ID, raw + bytes([2, 7, 0, 0, 0]))):
        h = decode_holding(address, program, data)
        assert (h.mint, h.owner, h.amount, h.frozen, h.close_authority, h.program) == (MINT, OLD, 7, True, NEW, program)
    with pytest.raises(ValueError, match="not a token program"):
        decode_holding(address, SYSTEM_PROGRAM_ID, raw)
    with pytest.raises(ValueError, match="too short"):
        decode_holding(address, TOKEN_PROGRAM_ID, raw[:100])


def test_accounts_the_old_key_cannot_move_and_close_are_refused() -> None:
    assert move_refusal(holding(), OLD) is None
    assert move_refusal(holding(close_authority=OLD), OLD) is None
    assert "frozen" in (move_refusal(holding(frozen=True), OLD) or "")
    assert "close authority" in (move_refusal(holding(close_authority=NEW), OLD) or "")
    assert "not by the old key" in (move_refusal(holding(owner=NEW), OLD) or "")


@pytest.mark.parametrize("program", [TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID])
def test_a_token_move_creates_the_new_ata_transfers_all_and_closes_to_the_new_key(program: Pubkey) -> None:
    h = holding(program=program)
    create, move, close = token_move(OLD, NEW, h, decimals=6)
    dest = vault_token_account(NEW, MINT, program)
    assert create.program_id == ASSOCIATED_TOKEN_PROGRAM_ID and bytes(create.data) == b"\x01"  # CreateIdempotent
    assert [a.pubkey for a in create.accounts] == [OLD, dest, NEW, MINT, SYSTEM_PROGRAM_ID, program]
    assert create.accounts[0].is_signer and create.accounts[0].is_writable  # the old key pays the rent
    assert move.program_id == program and bytes(move.data) == bytes([12]) + (1_500).to_bytes(8, "little") + bytes([6])
    assert [a.pubkey for a in move.accounts] == [h.address, MINT, dest, OLD]
    assert close.program_id == program and bytes(close.data) == bytes([9])
    assert [a.pubkey for a in close.accounts] == [h.address, NEW, OLD]  # the rent goes to the new key
    signers = {a.pubkey for ix in (create, move, close) for a in ix.accounts if a.is_signer}
    assert signers == {OLD}


def test_an_empty_account_is_only_closed() -> None:
    ixs = token_move(OLD, NEW, holding(amount=0), decimals=6)
    assert [bytes(ix.data)[:1] for ix in ixs] == [b"\x01", b"\x09"]


def test_the_sol_move_leaves_exactly_the_fee_and_refuses_dust() -> None:
    ix = sol_move(OLD, NEW, 1_000_000, 5_000)
    assert ix.program_id == SYSTEM_PROGRAM_ID
    assert int.from_bytes(bytes(ix.data)[4:12], "little") == 995_000
    with pytest.raises(ValueError, match="not more than the 5000-lamport fee"):
        sol_move(OLD, NEW, 5_000, 5_000)
