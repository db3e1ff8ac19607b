"""The two JSON-RPC HTTP calls the Confirmation actor needs, parsed strictly.

Raw aiohttp rather than solana-py: two methods, no extra parse layer on the poll path, and every
malformed answer becomes one :class:`RpcCallError` the caller handles.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from xorj_actors.chain._book import Commitment
from xorj_actors.quotas import QuotaError, Quotas, rpc_endpoint, turn

__all__ = ["MAX_SIGNATURES_PER_CALL", "RpcCallError", "RpcHttp", "SignatureStatus"]

#: Agave's limit on getSignatureStatuses inputs.
MAX_SIGNATURES_PER_CALL = 256



class RpcCallError(Exception):
    """A JSON-RPC call that gave no usable answer (transport, HTTP status, error, shape)."""


@dataclass(frozen=True, slots=True)
class SignatureStatus:
    """One entry of getSignatureStatuses."""

    slot: int
    confirmations: int | None  # None once finalized (rooted)
    err_json: str | None  # compact JSON of the on-chain error, None on success
    commitment: Commitment


def compact_json(value: Any) -> str:
    """The compact JSON of an on-chain error, as mainnet sends it (``{"InstructionError":[2,{"Custom":1}]}``)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=False)


class RpcHttp:
    """JSON-RPC over HTTP POST on one aiohttp session (created and closed on the caller's loop);
    each call takes its turn in its method's budget as ``owner``'s (``quotas`` None: unbudgeted)."""

    def __init__(self, url: str, timeout_s: float, quotas: Quotas | None = None, owner: str = "confirmation") -> None:
        self.url = url
        self.quotas, self.owner = quotas, owner
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)

    async def open(self) -> None:
        # A few connections: a poll round sends its chunks concurrently, no more.
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=4), timeout=self._timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, method: str, params: list[Any]) -> Any:
        """The ``result`` of one call; :class:`RpcCallError` for anything else."""
        session = self._session
        if session is None:
            raise RpcCallError("HTTP session closed")
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        try:
            async with turn(self.quotas, rpc_endpoint(method), owner=self.owner) as t:
                async with session.post(self.url, json=body) as resp:
                    retry = resp.headers.get("Retry-After")
                    t.answered(resp.status, retry)
                    if resp.status != 200:
                        raise RpcCallError(f"{method}: HTTP {resp.status}" + (f" (Retry-After {retry})" if retry else ""))
                    reply = await resp.json(content_type=None)
        except RpcCallError:
            raise
        except QuotaError as exc:
            raise RpcCallError(f"{method}: no turn in its budget: {exc}") from None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise RpcCallError(f"{method}: {type(exc).__name__}: {exc}") from None
        if not isinstance(reply, dict):
            raise RpcCallError(f"{method}: answer is not a JSON object")
        if "error" in reply:
            raise RpcCallError(f"{method}: error {compact_json(reply['error'])[:300]}")
        if "result" not in reply:
            raise RpcCallError(f"{method}: answer has no result")
        return reply["result"]

    async def block_height(self, commitment: Commitment = Commitment.CONFIRMED) -> int:
        """``getBlockHeight`` at ``commitment``."""
        result = await self.call("getBlockHeight", [{"commitment": commitment}])
        if type(result) is not int or result < 0:
            raise RpcCallError(f"getBlockHeight: not a block height: {result!r:.80}")
        return result

    async def signature_statuses(self, signatures: list[str]) -> tuple[int, list[SignatureStatus | None]]:
        """``(context slot, statuses)`` for up to 256 signatures, searching the whole history."""
        if len(signatures) > MAX_SIGNATURES_PER_CALL:
            raise ValueError(f"at most {MAX_SIGNATURES_PER_CALL} signatures per call")
        result = await self.call("getSignatureStatuses", [signatures, {"searchTransactionHistory": True}])
        try:
            slot = result["context"]["slot"]
            values = result["value"]
        except (TypeError, KeyError):
            raise RpcCallError("getSignatureStatuses: answer is not {context, value}") from None
        if type(slot) is not int or not isinstance(values, list) or len(values) != len(signatures):
            raise RpcCallError("getSignatureStatuses: wrong context slot or number of statuses")
        return slot, [_status(v) for v in values]


def _status(value: Any) -> SignatureStatus | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RpcCallError(f"getSignatureStatuses: status is not an object: {value!r:.80}")
    slot = value.get("slot")
    confirmations = value.get("confirmations")
    commitment = value.get("confirmationStatus")
    if type(slot) is not int or not (confirmations is None or type(confirmations) is int):
        raise RpcCallError(f"getSignatureStatuses: bad slot or confirmations: {value!r:.120}")
    if commitment is None:
        # Old nodes omit it. Null confirmations means rooted; a count alone does not prove a
        # supermajority vote, so it is taken as processed (the conservative reading).
        commitment = Commitment.FINALIZED if confirmations is None else Commitment.PROCESSED
    try:
        level = Commitment(commitment)
    except ValueError:
        raise RpcCallError(f"getSignatureStatuses: unknown confirmationStatus {commitment!r:.40}") from None
    err = value.get("err")
    return SignatureStatus(slot, confirmations, None if err is None else compact_json(err), level)
