"""Where a vault keeps each token: pure address math, the same on any cluster.

Each vault has its own authority key (docs/SIGNERS.md), so its token accounts are that key's
associated token accounts, the ones the real aggregator APIs use for a wallet
(``userPublicKey``, ``taker``): ``get_associated_token_address(authority, mint, token_program)``,
the address the associated-token-account program derives from (owner, token program, mint).
"""

from __future__ import annotations

from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address

from xorj_actors.programs import ASSOCIATED_TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

__all__ = ["ASSOCIATED_TOKEN_PROGRAM_ID", "TOKEN_2022_PROGRAM_ID", "TOKEN_PROGRAM_ID", "vault_token_account"]



def vault_token_account(authority: Pubkey, mint: Pubkey, token_program: Pubkey = TOKEN_PROGRAM_ID) -> Pubkey:
    """The account of the vault whose authority is ``authority`` for ``mint``: its ATA."""
    return get_associated_token_address(authority, mint, token_program)
