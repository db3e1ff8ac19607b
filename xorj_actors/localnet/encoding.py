"""Agave's JSON shapes for accounts, token amounts and transactions."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

from solders.account import Account
from solders.message import Message
from solders.pubkey import Pubkey
from solders.token.state import Mint, TokenAccount, TokenAccountState
from solders.transaction import VersionedTransaction

from xorj_actors.localnet.genesis import TOKEN_PROGRAM_ID

__all__ = [
    "account_json",
    "b58decode",
    "b58encode",
    "is_writable",
    "json_text",
    "pubkey_list",
    "token_amount_json",
    "transaction_json",
]

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}

_TOKEN_ACCOUNT_LEN = 165
_MINT_LEN = 82
_STATES = {
    int(TokenAccountState.Uninitialized): "uninitialized",
    int(TokenAccountState.Initialized): "initialized",
    int(TokenAccountState.Frozen): "frozen",
}


#: JSON as Agave writes it (no spaces); one encoder, not one a call as ``json.dumps`` with options.
json_text = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


def b58encode(data: bytes) -> str:
    """Bitcoin-alphabet base58, as Solana uses for keys, signatures and instruction data."""
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    """Inverse of :func:`b58encode`; ``ValueError`` on a character outside the alphabet."""
    n = 0
    for c in text:
        try:
            n = n * 58 + _B58_INDEX[c]
        except KeyError:
            raise ValueError(f"invalid base58 character {c!r}") from None
    pad = len(text) - len(text.lstrip("1"))
    return b"\0" * pad + n.to_bytes((n.bit_length() + 7) // 8, "big")


def token_amount_json(amount: int, decimals: int) -> dict[str, Any]:
    """``UiTokenAmount``: the amount as a string, plus its decimal forms."""
    ui = Decimal(amount).scaleb(-decimals)
    text = format(ui.normalize(), "f") if amount else "0"
    return {"amount": str(amount), "decimals": decimals, "uiAmount": float(ui), "uiAmountString": text}


def _parsed_token(data: bytes, decimals_of: Any) -> dict[str, Any] | None:
    if len(data) == _TOKEN_ACCOUNT_LEN:
        acc = TokenAccount.from_bytes(data)
        decimals = decimals_of(acc.mint)
        if decimals is None:
            return None
        info: dict[str, Any] = {
            "isNative": acc.is_native is not None,
            "mint": str(acc.mint),
            "owner": str(acc.owner),
            "state": _STATES[int(acc.state)],
            "tokenAmount": token_amount_json(acc.amount, decimals),
        }
        if acc.delegate is not None:
            info["delegate"] = str(acc.delegate)
            info["delegatedAmount"] = token_amount_json(acc.delegated_amount, decimals)
        return {"info": info, "type": "account"}
    if len(data) == _MINT_LEN:
        mint = Mint.from_bytes(data)
        return {
            "info": {
                "decimals": mint.decimals,
                "freezeAuthority": str(mint.freeze_authority) if mint.freeze_authority else None,
                "isInitialized": mint.is_initialized,
                "mintAuthority": str(mint.mint_authority) if mint.mint_authority else None,
                "supply": str(mint.supply),
            },
            "type": "mint",
        }
    return None


def account_json(account: Account | None, encoding: str, decimals_of: Any = None) -> dict[str, Any] | None:
    """``UiAccount`` in ``encoding``; ``jsonParsed`` falls back to base64 as Agave does.

    ``decimals_of(mint) -> int | None`` resolves a token account's decimals for ``jsonParsed``.
    """
    if account is None:
        return None
    raw = bytes(account.data)
    data: Any
    if encoding == "jsonParsed" and account.owner == TOKEN_PROGRAM_ID and decimals_of is not None:
        parsed = _parsed_token(raw, decimals_of)
        data = {"program": "spl-token", "parsed": parsed, "space": len(raw)} if parsed else None
    else:
        data = None
    if data is None:
        if encoding == "base58":
            data = [b58encode(raw), "base58"]
        else:
            data = [base64.b64encode(raw).decode(), "base64"]
    return {
        "data": data,
        "executable": account.executable,
        "lamports": account.lamports,
        "owner": str(account.owner),
        "rentEpoch": account.rent_epoch,
        "space": len(raw),
    }


def is_writable(message: Any, index: int) -> bool:
    """Whether account ``index`` of a legacy or v0 message is writable."""
    if isinstance(message, Message):
        return message.is_writable(index)
    return message.is_maybe_writable(index)


def transaction_json(tx: VersionedTransaction) -> dict[str, Any]:
    """``UiTransaction`` with ``json`` encoding."""
    msg = tx.message
    header = msg.header
    body: dict[str, Any] = {
        "accountKeys": [str(k) for k in msg.account_keys],
        "header": {
            "numRequiredSignatures": header.num_required_signatures,
            "numReadonlySignedAccounts": header.num_readonly_signed_accounts,
            "numReadonlyUnsignedAccounts": header.num_readonly_unsigned_accounts,
        },
        "recentBlockhash": str(msg.recent_blockhash),
        "instructions": [
            {
                "programIdIndex": ix.program_id_index,
                "accounts": list(ix.accounts),
                "data": b58encode(bytes(ix.data)),
                "stackHeight": None,
            }
            for ix in msg.instructions
        ],
    }
    if not isinstance(msg, Message):
        body["addressTableLookups"] = [
            {
                "accountKey": str(lookup.account_key),
                "writableIndexes": list(bytes(lookup.writable_indexes)),
                "readonlyIndexes": list(bytes(lookup.readonly_indexes)),
            }
            for lookup in msg.address_table_lookups
        ]
    return {"signatures": [str(s) for s in tx.signatures], "message": body}


def pubkey_list(keys: Any) -> list[Pubkey]:
    """Parse a JSON list of base58 public keys (``ValueError`` on anything else)."""
    if not isinstance(keys, list):
        raise ValueError("expected a list of public keys")
    return [Pubkey.from_string(k) for k in keys]
