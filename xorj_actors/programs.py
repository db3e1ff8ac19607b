"""The well-known Solana program ids and the native mint: one place for the whole engine.

The same on every cluster (mainnet, devnet, the localnet), so they are constants, not config.
Below every layer: it imports nothing from ``xorj_actors``.
"""

from __future__ import annotations

from solders.pubkey import Pubkey

__all__ = [
    "ASSOCIATED_TOKEN_PROGRAM_ID",
    "COMPUTE_BUDGET_PROGRAM_ID",
    "JUPITER_ORDER_ENGINE_PROGRAM_ID",
    "JUPITER_V6_PROGRAM_ID",
    "MEMO_PROGRAM_IDS",
    "NATIVE_MINT",
    "SYSTEM_PROGRAM_ID",
    "TOKEN_2022_PROGRAM_ID",
    "TOKEN_PROGRAM_ID",
    "swap_change",
]

SYSTEM_PROGRAM_ID = Pubkey.from_string("11111111111111111111111111111111")
COMPUTE_BUDGET_PROGRAM_ID = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
TOKEN_PROGRAM_ID = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
TOKEN_2022_PROGRAM_ID = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
ASSOCIATED_TOKEN_PROGRAM_ID = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
#: SPL Memo v2 and v1.
MEMO_PROGRAM_IDS = (
    Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"),
    Pubkey.from_string("Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo"),
)
#: Jupiter's aggregator (v6): every real Swap API route is one instruction to it.
JUPITER_V6_PROGRAM_ID = Pubkey.from_string("JUP6LkbZbjS1jKKwapdHNy74zcZ3tLUZoi5QNyVTaV4")
#: Jupiter's order engine: Ultra's RFQ (JupiterZ) routes are one instruction to it.
JUPITER_ORDER_ENGINE_PROGRAM_ID = Pubkey.from_string("61DFfeTKM7trxYcPQCM78bJ794ddZprZpAwAnLiwTpYH")
#: Wrapped SOL's mint (an SPL Token mint whose accounts hold lamports).
NATIVE_MINT = Pubkey.from_string("So11111111111111111111111111111111111111112")


def swap_change(
    mint: str, token_pre: int | None, token_post: int | None, lamport_change: int | None, fee_paid: int
) -> int:
    """How much of ``mint`` a vault gained in one transaction (negative: spent).

    A swap that wraps and unwraps SOL creates the vault's wSOL account and closes it within the
    transaction, so it is in neither ``pre`` nor ``postTokenBalances``: for the native mint with no
    such row the change is the authority's lamports, the network fee it paid added back (tips and
    rent stay in). The rule of the execution proofs and of the statement reconciliation.

    Args:
        mint: the mint (base58).
        token_pre: the vault's amount of ``mint`` before; None when it had no account of it.
        token_post: after; None when it had no account of it.
        lamport_change: the authority's lamports after less before; None when not in the transaction.
        fee_paid: the network fee the authority paid (0 unless it was the fee payer).
    """
    if mint == str(NATIVE_MINT) and token_pre is None and token_post is None and lamport_change is not None:
        return lamport_change + fee_paid
    return (token_post or 0) - (token_pre or 0)
