"""Where a vault keeps each token: pure address math, the same on any cluster.

One authority holds many vaults, so associated token accounts (one per owner and mint) cannot
be used: vault ``vault_id``'s account for ``symbol`` is
``Pubkey.create_with_seed(authority, f"{vault_id}:{symbol}", TOKEN_PROGRAM_ID)``, SPL-owned by
the vault authority.
"""

from __future__ import annotations

from solders.pubkey import Pubkey

__all__ = ["MAX_SEED_BYTES", "TOKEN_PROGRAM_ID", "vault_token_account"]

TOKEN_PROGRAM_ID = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
#: ``Pubkey.create_with_seed`` takes at most 32 bytes of seed ("vault-0007:USDC").
MAX_SEED_BYTES = 32


def vault_token_account(authority: Pubkey, vault_id: str, symbol: str) -> Pubkey:
    """The token account of vault ``vault_id`` for token ``symbol`` (see the module docstring)."""
    return Pubkey.create_with_seed(authority, f"{vault_id}:{symbol}", TOKEN_PROGRAM_ID)
