"""Key rotation, the pure half: what the old key owns, and the instructions that move it.

A vault's tokens sit in its key's associated token accounts, so a new key means moving every
token account the old key owns to the new key's ATA (docs/SIGNERS.md, "Key rotation"). Each
account moves in one transaction of three instructions, signed by the old key alone (it pays):
``CreateIdempotent`` of the new key's ATA, ``TransferChecked`` of the whole balance, and
``CloseAccount`` of the old account with its rent to the new key. The old key's lamports go last,
in one System transfer of all of them less the fee, leaving it 0. No I/O here: the I/O is
:mod:`xorj_actors.signers._rotation`.
"""

from __future__ import annotations

from dataclasses import dataclass

from solders.instruction import AccountMeta, Instruction
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.token.state import Mint, TokenAccount, TokenAccountState

from xorj_actors.programs import ASSOCIATED_TOKEN_PROGRAM_ID, SYSTEM_PROGRAM_ID, TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID
from xorj_actors.tokens import vault_token_account

__all__ = [
    "TOKEN_PROGRAMS",
    "Holding",
    "decode_holding",
    "decode_mint_decimals",
    "move_refusal",
    "sol_move",
    "token_move",
]

#: Both token programs: the old key's accounts are looked up in each.
TOKEN_PROGRAMS: tuple[Pubkey, ...] = (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID)
#: The base layout every Token and Token-2022 account and mint starts with.
_ACCOUNT_LEN = 165
_MINT_LEN = 82
# Instruction tags: SPL Token (the same in Token-2022) and the associated-token-account program.
_TRANSFER_CHECKED = 12
_CLOSE_ACCOUNT = 9
_CREATE_IDEMPOTENT = 1


@dataclass(frozen=True, slots=True)
class Holding:
    """One token account the old key owns, as the chain showed it."""

    address: Pubkey
    program: Pubkey
    mint: Pubkey
    owner: Pubkey
    amount: int
    frozen: bool
    close_authority: Pubkey | None


def decode_holding(address: Pubkey, program: Pubkey, data: bytes) -> Holding:
    """The token account ``address`` of ``program`` from its raw data.

    Raises:
        ValueError: not a token account.
    """
    if program not in TOKEN_PROGRAMS:
        raise ValueError(f"{address}: owned by {program}, not a token program")
    if len(data) < _ACCOUNT_LEN:
        raise ValueError(f"{address}: {len(data)} bytes is too short for a token account")
    acc = TokenAccount.from_bytes(data[:_ACCOUNT_LEN])
    return Holding(
        address=address,
        program=program,
        mint=acc.mint,
        owner=acc.owner,
        amount=acc.amount,
        frozen=acc.state == TokenAccountState.Frozen,
        close_authority=acc.close_authority,
    )


def decode_mint_decimals(data: bytes) -> int:
    """The decimals of a Token or Token-2022 mint from its raw data; ValueError if it is none."""
    if len(data) < _MINT_LEN:
        raise ValueError(f"{len(data)} bytes is too short for a mint")
    return Mint.from_bytes(data[:_MINT_LEN]).decimals


def move_refusal(holding: Holding, old: Pubkey) -> str | None:
    """Why ``holding`` cannot be moved and closed by ``old`` (None: it can).

    Checked before sending, so such an account costs no failed transaction: the operator has to
    settle it (thaw it, or have its close authority close it) and run the rotation again.
    """
    if holding.owner != old:
        return f"{holding.address} is owned by {holding.owner}, not by the old key {old}"
    if holding.frozen:
        return f"{holding.address} ({holding.mint}) is frozen by its mint's freeze authority: it cannot be moved"
    if holding.close_authority is not None and holding.close_authority != old:
        return f"{holding.address} ({holding.mint}) has close authority {holding.close_authority}: the old key cannot close it"
    return None


def token_move(old: Pubkey, new: Pubkey, holding: Holding, decimals: int) -> list[Instruction]:
    """The instructions moving ``holding`` to ``new``'s ATA and closing it, rent to ``new``.

    ``old`` signs and pays the new ATA's rent (``CreateIdempotent`` leaves an existing ATA as it
    is, so a re-run after a crash sends the same thing). An empty account is only closed.
    """
    dest = vault_token_account(new, holding.mint, holding.program)
    create = Instruction(
        ASSOCIATED_TOKEN_PROGRAM_ID,
        bytes([_CREATE_IDEMPOTENT]),
        [
            AccountMeta(old, is_signer=True, is_writable=True),
            AccountMeta(dest, is_signer=False, is_writable=True),
            AccountMeta(new, is_signer=False, is_writable=False),
            AccountMeta(holding.mint, is_signer=False, is_writable=False),
            AccountMeta(SYSTEM_PROGRAM_ID, is_signer=False, is_writable=False),
            AccountMeta(holding.program, is_signer=False, is_writable=False),
        ],
    )
    out = [create]
    if holding.amount:
        out.append(
            Instruction(
                holding.program,
                bytes([_TRANSFER_CHECKED]) + holding.amount.to_bytes(8, "little") + bytes([decimals]),
                [
                    AccountMeta(holding.address, is_signer=False, is_writable=True),
                    AccountMeta(holding.mint, is_signer=False, is_writable=False),
                    AccountMeta(dest, is_signer=False, is_writable=True),
                    AccountMeta(old, is_signer=True, is_writable=False),
                ],
            )
        )
    out.append(
        Instruction(
            holding.program,
            bytes([_CLOSE_ACCOUNT]),
            [
                AccountMeta(holding.address, is_signer=False, is_writable=True),
                AccountMeta(new, is_signer=False, is_writable=True),
                AccountMeta(old, is_signer=True, is_writable=False),
            ],
        )
    )
    return out


def sol_move(old: Pubkey, new: Pubkey, lamports: int, fee: int) -> Instruction:
    """The System transfer of all ``lamports`` of ``old`` but the transaction's ``fee`` to ``new``.

    Raises:
        ValueError: ``lamports`` do not exceed the fee, so they cannot be moved.
    """
    if lamports <= fee:
        raise ValueError(
            f"the old key {old} holds {lamports} lamports, not more than the {fee}-lamport fee of moving them"
        )
    return transfer(TransferParams(from_pubkey=old, to_pubkey=new, lamports=lamports - fee))
