"""The token registry: mint, symbol, decimals and the stablecoin flag of every traded token,
read from ``[[tokens]]``, and where each vault keeps each token. See docs/ARCHITECTURE.md.
"""

from xorj_actors.tokens._accounts import (
    ASSOCIATED_TOKEN_PROGRAM_ID,
    TOKEN_2022_PROGRAM_ID,
    TOKEN_PROGRAM_ID,
    vault_token_account,
)
from xorj_actors.tokens._registry import Token, TokenRegistry, derived_mint
from xorj_actors.tokens.settings import DEFAULT_TOKENS, TokenSettings, check_tokens

__all__ = [
    "ASSOCIATED_TOKEN_PROGRAM_ID",
    "DEFAULT_TOKENS",
    "TOKEN_2022_PROGRAM_ID",
    "TOKEN_PROGRAM_ID",
    "Token",
    "TokenRegistry",
    "TokenSettings",
    "check_tokens",
    "derived_mint",
    "vault_token_account",
]
