"""Key rotation, the I/O half: move everything the old key owns to the new key, over JSON-RPC.

Every step reads the chain at ``finalized`` and waits for ``finalized`` before the next, so a
re-run after a crash at any point moves only what is left: each transaction moves the *whole*
balance it read and closes the account, so a transaction sent twice (a crash between send and
confirm) fails the second time instead of moving anything twice. The instructions are
:mod:`xorj_actors.signers._rotation_plan`; signing is the key store's own ``sign``.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from solders.hash import Hash
from solders.instruction import Instruction
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from xorj_actors.signers._rotation_plan import (
    TOKEN_PROGRAMS,
    Holding,
    decode_holding,
    decode_mint_decimals,
    move_refusal,
    sol_move,
    token_move,
)

__all__ = ["JsonRpc", "MoveError", "Moved", "chain_holdings", "move_all"]

_FINALIZED = {"commitment": "finalized"}


class MoveError(RuntimeError):
    """The move cannot go on (an account that cannot move, a transaction that failed or expired,
    an RPC that gave no usable answer). What was finalized stays moved; a re-run goes on from there."""


@dataclass(frozen=True, slots=True)
class Moved:
    """One finalized transaction of the move: its signature and what it moved."""

    signature: str
    what: dict[str, Any]


class JsonRpc:
    """Solana JSON-RPC over HTTP POST (stdlib only: the ``keys`` command runs no event loop)."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url
        self._timeout_s = timeout_s
        self._ids = itertools.count(1)

    def call(self, method: str, params: list[Any]) -> Any:
        """The ``result`` of one call; :class:`MoveError` for anything else."""
        body = json.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}).encode()
        request = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as resp:
                reply = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise MoveError(f"{method}: HTTP {exc.code} from {self.url}") from None
        except (OSError, ValueError) as exc:
            raise MoveError(f"{method}: {type(exc).__name__}: {exc} ({self.url})") from None
        if not isinstance(reply, dict) or ("result" not in reply and "error" not in reply):
            raise MoveError(f"{method}: not a JSON-RPC answer")
        if "error" in reply:
            raise MoveError(f"{method}: error {json.dumps(reply['error'])[:400]}")
        return reply["result"]

    def value(self, method: str, params: list[Any]) -> Any:
        """The ``value`` of an answer shaped ``{context, value}``."""
        result = self.call(method, params)
        if not isinstance(result, dict) or "value" not in result:
            raise MoveError(f"{method}: answer is not {{context, value}}")
        return result["value"]


def chain_holdings(rpc: JsonRpc, owner: Pubkey) -> list[Holding]:
    """Every token account ``owner`` owns, in both token programs, at ``finalized``."""
    out = []
    for program in TOKEN_PROGRAMS:
        found = rpc.value(
            "getTokenAccountsByOwner",
            [str(owner), {"programId": str(program)}, {**_FINALIZED, "encoding": "base64"}],
        )
        if not isinstance(found, list):
            raise MoveError("getTokenAccountsByOwner: value is not a list")
        for item in found:
            try:
                address = Pubkey.from_string(item["pubkey"])
                data = base64.b64decode(item["account"]["data"][0], validate=True)
                out.append(decode_holding(address, Pubkey.from_string(item["account"]["owner"]), data))
            except (KeyError, TypeError, IndexError, ValueError) as exc:
                raise MoveError(f"getTokenAccountsByOwner: unreadable account: {exc}") from None
    return out


def _decimals(rpc: JsonRpc, mints: list[Pubkey]) -> dict[Pubkey, int]:
    if not mints:
        return {}
    accounts = rpc.value("getMultipleAccounts", [[str(m) for m in mints], {**_FINALIZED, "encoding": "base64"}])
    out = {}
    for mint, account in zip(mints, accounts if isinstance(accounts, list) else [], strict=False):
        try:
            out[mint] = decode_mint_decimals(base64.b64decode(account["data"][0], validate=True))
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            raise MoveError(f"mint {mint}: unreadable: {exc}") from None
    if len(out) != len(mints):
        raise MoveError("getMultipleAccounts: wrong number of mints")
    return out


def _balance(rpc: JsonRpc, key: Pubkey) -> int:
    lamports = rpc.value("getBalance", [str(key), _FINALIZED])
    if type(lamports) is not int or lamports < 0:
        raise MoveError(f"getBalance: not a balance: {lamports!r:.80}")
    return lamports


class _Sender:
    """Builds, signs (the store's own call), sends and confirms at ``finalized`` one transaction at a time."""

    def __init__(
        self, rpc: JsonRpc, payer: Pubkey, sign: Callable[[bytes], bytes], poll_s: float, timeout_s: float
    ) -> None:
        self._rpc, self._payer, self._sign = rpc, payer, sign
        self._poll_s, self._timeout_s = poll_s, timeout_s

    def message(self, ixs: list[Instruction]) -> tuple[MessageV0, int]:
        """A message of ``ixs`` paid by the old key, on a finalized blockhash, and its last valid height."""
        latest = self._rpc.value("getLatestBlockhash", [_FINALIZED])
        try:
            blockhash, last_valid = Hash.from_string(latest["blockhash"]), int(latest["lastValidBlockHeight"])
        except (KeyError, TypeError, ValueError):
            raise MoveError("getLatestBlockhash: no blockhash in the answer") from None
        return MessageV0.try_compile(self._payer, ixs, [], blockhash), last_valid

    def fee(self, message: MessageV0) -> int:
        fee = self._rpc.value("getFeeForMessage", [base64.b64encode(to_bytes_versioned(message)).decode(), _FINALIZED])
        if type(fee) is not int or fee < 0:
            raise MoveError(f"getFeeForMessage: no fee for the message ({fee!r:.40})")
        return fee

    def send(self, message: MessageV0, last_valid: int) -> str:
        """Sign ``message`` with the old key, send it and wait until it is finalized; its signature."""
        signature = Signature.from_bytes(self._sign(to_bytes_versioned(message)))
        tx = VersionedTransaction.populate(message, [signature])
        if tx.verify_with_results() != [True]:  # a store signing with another key must not reach the chain
            raise MoveError(f"the key store's signature does not verify against {self._payer}")
        config = {"encoding": "base64", "preflightCommitment": "finalized"}
        sent = self._rpc.call("sendTransaction", [base64.b64encode(bytes(tx)).decode(), config])
        if sent != str(signature):
            raise MoveError(f"sendTransaction answered {sent!r:.100}, not the signature {signature}")
        self._confirm(str(signature), last_valid)
        return str(signature)

    def _confirm(self, signature: str, last_valid: int) -> None:
        deadline = time.monotonic() + self._timeout_s
        while True:
            statuses = self._rpc.value("getSignatureStatuses", [[signature], {"searchTransactionHistory": True}])
            status = statuses[0] if isinstance(statuses, list) and statuses else None
            if isinstance(status, dict):
                if status.get("err") is not None:
                    raise MoveError(f"transaction {signature} failed on chain: {json.dumps(status['err'])}")
                if status.get("confirmationStatus") == "finalized":
                    return
            else:
                height = self._rpc.call("getBlockHeight", [_FINALIZED])
                if type(height) is int and height > last_valid:
                    raise MoveError(f"transaction {signature} expired without landing; run the rotation again")
            if time.monotonic() > deadline:
                raise MoveError(f"transaction {signature} not finalized within {self._timeout_s:.0f} s; run the rotation again")
            time.sleep(self._poll_s)


def move_all(
    rpc: JsonRpc,
    old: Pubkey,
    new: Pubkey,
    sign: Callable[[bytes], bytes],
    on_moved: Callable[[Moved], None],
    *,
    poll_s: float = 0.5,
    timeout_s: float = 180.0,
) -> list[Moved]:
    """Move every token account and then every lamport of ``old`` to ``new``; the transactions sent.

    Reads the chain first: accounts already moved by an earlier run are not there any more. Every
    account is checked before the first send (one that cannot move refuses the whole vault).
    ``on_moved`` hears each finalized transaction (the audit entry) before the next is sent.

    Raises:
        MoveError: the move stopped; the chain shows how far it got. Afterwards the chain is
            read once more and the move refused unless ``old`` owns nothing and holds 0 lamports.
    """
    sender = _Sender(rpc, old, sign, poll_s, timeout_s)
    holdings = chain_holdings(rpc, old)
    refusals = [why for h in holdings if (why := move_refusal(h, old)) is not None]
    if refusals:
        raise MoveError("; ".join(refusals))
    decimals = _decimals(rpc, sorted({h.mint for h in holdings}, key=str))
    done: list[Moved] = []
    for h in holdings:
        message, last_valid = sender.message(token_move(old, new, h, decimals[h.mint]))
        what = {"account": str(h.address), "mint": str(h.mint), "program": str(h.program), "amount": str(h.amount)}
        done.append(Moved(sender.send(message, last_valid), what))
        on_moved(done[-1])
    left = chain_holdings(rpc, old)
    if left:
        raise MoveError(f"the old key {old} still owns {len(left)} token account(s) after the move; run the rotation again")
    lamports = _balance(rpc, old)
    if lamports:
        probe, _ = sender.message([sol_move(old, new, lamports, 0)])  # the fee does not depend on the amount
        fee = sender.fee(probe)
        try:
            ix = sol_move(old, new, lamports, fee)
        except ValueError as exc:
            raise MoveError(str(exc)) from None
        message, last_valid = sender.message([ix])
        done.append(Moved(sender.send(message, last_valid), {"lamports": str(lamports - fee), "fee": str(fee)}))
        on_moved(done[-1])
    if chain_holdings(rpc, old) or _balance(rpc, old):
        raise MoveError(f"the old key {old} still holds tokens or lamports after the move; run the rotation again")
    return done
