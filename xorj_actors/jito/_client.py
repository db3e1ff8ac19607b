"""``BlockEngineClient``: Jito's block engine JSON-RPC and the tip floor, over aiohttp.

Requests as Jito documents them (docs.jito.wtf "Low Latency Transaction Send"): bundle methods
on ``/api/v1/bundles``, ``sendTransaction`` on ``/api/v1/transactions`` (``?bundleOnly=true``
for a one-transaction bundle, its id in the ``x-bundle-id`` header); transactions base64 with
``{"encoding": "base64"}`` (base58 is deprecated). Answers are parsed strictly
(:class:`MalformedAnswer`); the engine's no raises :class:`BlockEngineRefused`. Transport
failures (``aiohttp.ClientError``, ``asyncio.TimeoutError``) propagate as they are.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from xorj_actors import strict_json
from xorj_actors.jito._answers import (
    MAX_IDS,
    BlockEngineRefused,
    BundleStatus,
    InflightBundle,
    MalformedAnswer,
    TipFloor,
    parse_bundle_statuses,
    parse_inflight_statuses,
    parse_tip_accounts,
    parse_tip_floor,
    refusal_from_answer,
)
from xorj_actors.jito.settings import JitoSettings
from xorj_actors.remote_answers import read_bounded, retry_after, trim

__all__ = ["BUNDLES_PATH", "BlockEngineClient", "SentTransaction", "TIP_FLOOR_PATH", "TRANSACTIONS_PATH"]

BUNDLES_PATH = "/api/v1/bundles"
TRANSACTIONS_PATH = "/api/v1/transactions"
#: The tip floor's path (on ``bundles.jito.wtf`` on mainnet; on the block engine's port locally).
TIP_FLOOR_PATH = "/api/v1/bundles/tip_floor"


@dataclass(frozen=True, slots=True)
class SentTransaction:
    """``sendTransaction``'s answer: our signature, and the bundle id when it went as a bundle."""

    signature: Signature
    bundle_id: str | None


def _encoded(tx: VersionedTransaction) -> str:
    return base64.b64encode(bytes(tx)).decode()


def _check_ids(bundle_ids: Sequence[str]) -> list[str]:
    ids = list(bundle_ids)
    if not 1 <= len(ids) <= MAX_IDS or not all(isinstance(i, str) and i for i in ids):
        raise ValueError(f"bundle_ids: between 1 and {MAX_IDS} ids, got {ids!r}")
    return ids


class BlockEngineClient:
    """Jito's block engine and tip floor. Use ``async with`` (or ``open``/``close``)."""

    def __init__(self, settings: JitoSettings, *, block_engine_url: str = "", tip_floor_url: str = "") -> None:
        """
        Args:
            settings: ``[jito]``.
            block_engine_url, tip_floor_url: override the settings' URLs (the localnet's).

        Raises:
            ValueError: no block engine URL.
        """
        self.settings = settings
        self.base_url = (block_engine_url or settings.block_engine_url).rstrip("/")
        if not self.base_url:
            raise ValueError("[jito] block_engine_url: no URL configured")
        self.tip_floor_url = tip_floor_url or settings.tip_floor_url or self.base_url + TIP_FLOOR_PATH
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)

    async def open(self) -> None:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self.settings.request_timeout_s, sock_connect=self.settings.connect_timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout, headers={"Accept": "application/json"})

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> BlockEngineClient:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _request(self, method: str, url: str, label: str, **kwargs: Any) -> tuple[int, Any, Mapping[str, str]]:
        """One request: ``(status, parsed body or trimmed text, headers)``; the body is size-bounded."""
        await self.open()
        assert self._session is not None
        limit = self.settings.max_answer_bytes
        async with self._session.request(method, url, **kwargs) as resp:
            raw = await read_bounded(resp, limit)
            try:
                return resp.status, strict_json.loads(raw), resp.headers
            except ValueError:
                text = trim(raw[:2000].decode("utf-8", "replace"))
                if resp.status == 200:
                    raise MalformedAnswer(label, f"answer is not strict JSON: {text[:80]!r}") from None
                return resp.status, text, resp.headers

    async def _rpc(
        self, path: str, method: str, params: list[Any], query: Mapping[str, str] | None = None
    ) -> tuple[Any, Mapping[str, str]]:
        """A JSON-RPC call: ``(result, headers)``; an error answer raises :class:`BlockEngineRefused`."""
        request_id = next(self._ids)
        body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        status, answer, headers = await self._request("POST", self.base_url + path, method, json=body, params=query)
        if status != 200 or not isinstance(answer, Mapping) or "error" in answer:
            raise BlockEngineRefused(refusal_from_answer(method, status, answer, retry_after_s=retry_after(headers)))
        if answer.get("jsonrpc") != "2.0" or answer.get("id") != request_id or "result" not in answer:
            raise MalformedAnswer(method, "not a JSON-RPC 2.0 answer to our request")
        return answer["result"], headers

    async def tip_accounts(self) -> tuple[Pubkey, ...]:
        """``getTipAccounts``."""
        result, _ = await self._rpc(BUNDLES_PATH, "getTipAccounts", [])
        return parse_tip_accounts(result)

    async def send_bundle(self, txs: Sequence[VersionedTransaction]) -> str:
        """``sendBundle``: 1 to 5 signed transactions, landed in order and atomically or not at
        all. Returns the bundle id (accepted is not landed: track it with the statuses)."""
        if not 1 <= len(txs) <= MAX_IDS:
            raise ValueError(f"a bundle holds 1 to {MAX_IDS} transactions, got {len(txs)}")
        result, _ = await self._rpc(BUNDLES_PATH, "sendBundle", [[_encoded(tx) for tx in txs], {"encoding": "base64"}])
        if not isinstance(result, str) or not result or len(result) > 128:
            raise MalformedAnswer("sendBundle.result", f"expected a bundle id, got {result!r}")
        return result

    async def send_transaction(self, tx: VersionedTransaction, *, bundle_only: bool | None = None) -> SentTransaction:
        """``sendTransaction``; ``bundle_only`` (default ``[jito] bundle_only``) sends it only as
        a one-transaction bundle. The answer must be our transaction's signature."""
        only = self.settings.bundle_only if bundle_only is None else bundle_only
        query = {"bundleOnly": "true"} if only else None
        result, headers = await self._rpc(TRANSACTIONS_PATH, "sendTransaction", [_encoded(tx), {"encoding": "base64"}], query)
        try:
            signature = Signature.from_string(result) if isinstance(result, str) else None
        except ValueError:
            signature = None
        if signature is None or signature != tx.signatures[0]:
            raise MalformedAnswer("sendTransaction.result", f"{result!r} is not our signature {tx.signatures[0]}")
        bundle = headers.get("x-bundle-id") or None
        return SentTransaction(signature, trim(bundle) if bundle else None)

    async def bundle_statuses(self, bundle_ids: Sequence[str]) -> tuple[int, dict[str, BundleStatus]]:
        """``getBundleStatuses`` (at most 5 ids): ``(context slot, {id: status})`` of those landed."""
        ids = _check_ids(bundle_ids)
        result, _ = await self._rpc(BUNDLES_PATH, "getBundleStatuses", [ids])
        return parse_bundle_statuses(result, ids)

    async def inflight_statuses(self, bundle_ids: Sequence[str]) -> tuple[int, dict[str, InflightBundle]]:
        """``getInflightBundleStatuses`` (at most 5 ids, the last five minutes)."""
        ids = _check_ids(bundle_ids)
        result, _ = await self._rpc(BUNDLES_PATH, "getInflightBundleStatuses", [ids])
        return parse_inflight_statuses(result, ids)

    async def tip_floor(self) -> TipFloor:
        """``GET`` the tip floor (landed-tip percentiles)."""
        status, answer, headers = await self._request("GET", self.tip_floor_url, "tip_floor")
        if status != 200:
            raise BlockEngineRefused(refusal_from_answer("tip_floor", status, answer, retry_after_s=retry_after(headers)))
        return parse_tip_floor(answer)
