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
