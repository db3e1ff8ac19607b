"""``meta.preTokenBalances`` / ``postTokenBalances`` of a landed transaction, as Solana's RPC
writes them: one object per token account among the transaction's accounts (by its index)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from solders.account import Account
from solders.pubkey import Pubkey
from solders.token.state import Mint, TokenAccount

from xorj_actors.programs import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

__all__ = ["token_balances"]

_TOKEN_ACCOUNT_LEN = 165
_MINT_LEN = 82
_PROGRAMS = (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID)


class _Accounts(Protocol):
    def get_account(self, key: Pubkey) -> Account | None: ...


def _decimals(svm: _Accounts, mint: Pubkey) -> int:
    account = svm.get_account(mint)
    if account is None or len(bytes(account.data)) < _MINT_LEN:
        return 0
    return Mint.from_bytes(bytes(account.data)[:_MINT_LEN]).decimals


def token_balances(svm: _Accounts, keys: Sequence[Pubkey]) -> list[dict[str, Any]]:
    """The token accounts among ``keys`` as they are now, in the RPC's shape."""
    out = []
    for index, key in enumerate(keys):
        account = svm.get_account(key)
        if account is None or account.owner not in _PROGRAMS or len(bytes(account.data)) < _TOKEN_ACCOUNT_LEN:
            continue
        try:
            token = TokenAccount.from_bytes(bytes(account.data)[:_TOKEN_ACCOUNT_LEN])
        except ValueError:  # not initialised (yet): the RPC lists none
            continue
        decimals = _decimals(svm, token.mint)
        amount = token.amount
        text = f"{amount / 10**decimals:.{decimals}f}".rstrip("0").rstrip(".") if decimals else str(amount)
        out.append({
            "accountIndex": index,
            "mint": str(token.mint),
            "owner": str(token.owner),
            "programId": str(account.owner),
            "uiTokenAmount": {
                "amount": str(amount), "decimals": decimals, "uiAmount": amount / 10**decimals, "uiAmountString": text,
            },
        })
    return out
