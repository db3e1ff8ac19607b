"""The localnet's block engine: Jito's JSON-RPC paths and tip floor, over the localnet's chain.

``POST /api/v1/bundles`` (``sendBundle``, ``getBundleStatuses``, ``getInflightBundleStatuses``,
``getTipAccounts``), ``POST /api/v1/transactions`` (``sendTransaction``, ``?bundleOnly=true``:
a one-transaction bundle, its id in ``x-bundle-id``) and ``GET /api/v1/bundles/tip_floor``, in
Jito's shapes (docs.jito.wtf "Low Latency Transaction Send"). A bundle lands in order and
atomically or not at all: every transaction is simulated on the state the ones before it leave,
then all execute in one slot. A bundle breaking the ``jitodontfront`` rule is refused; one that
fails, or tips the tip accounts less than 1,000 lamports, is Failed and changes nothing; so is a
held one whose transaction landed by another route.
``POST /admin/bundle-fault`` drops or delays bundles on command. See docs/JITO.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from xorj_actors import strict_json
from xorj_actors.jito import MAX_IDS, MIN_TIP_LAMPORTS, bundle_id, dont_front_problem
from xorj_actors.localnet.chain import Chain, LookupFailure
from xorj_actors.localnet.genesis import fund
from xorj_actors.localnet.market_settings import BlockEngineSettings
from xorj_actors.localnet.rpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    RpcError,
    config_at,
    decode_transaction,
    error_reply,
    invalid_params,
    param_at,
)

__all__ = ["BLOCK_ENGINE", "BUNDLE_REJECTED", "BlockEngine", "create_block_engine_app", "tip_accounts"]

#: JSON-RPC code of a bundle the engine refuses outright (the implementation-defined range).
BUNDLE_REJECTED = -32000
_TIP_ACCOUNTS = 8
_FLOOR_FIELDS = (
    "landed_tips_25th_percentile",
    "landed_tips_50th_percentile",
    "landed_tips_75th_percentile",
    "landed_tips_95th_percentile",
    "landed_tips_99th_percentile",
    "ema_landed_tips_50th_percentile",
)


def tip_accounts(seed: str) -> tuple[Pubkey, ...]:
    """The localnet's eight tip accounts, derived from ``[localnet] seed``."""
    return tuple(
        Keypair.from_seed(hashlib.sha256(f"{seed}:jito-tip:{i}".encode()).digest()).pubkey() for i in range(_TIP_ACCOUNTS)
    )


@dataclass(slots=True)
class _Bundle:
    txs: list[VersionedTransaction]
    received: float
    #: Pending, Failed or Landed (Invalid is what an unknown or expired id reads as).
    status: str = "Pending"
    landed_slot: int | None = None
    #: Why it failed (kept for the localnet's own debugging; Jito's answer carries no reason).
    reason: str = ""


class BlockEngine:
    """The state behind one block-engine app; reach it in-process as ``app[BLOCK_ENGINE]``.

    Runs on the chain's thread (LiteSVM is not thread-safe).
    """

    def __init__(self, chain: Chain, settings: BlockEngineSettings, seed: str) -> None:
        self.chain = chain
        self.settings = settings
        self.tip_accounts = tip_accounts(seed)
        rent = chain.svm.minimum_balance_for_rent_exemption(0)
        for key in self.tip_accounts:
            if chain.svm.get_account(key) is None:
                # Funded to rent exemption: a 1,000-lamport tip to an empty account would fail.
                fund(chain.svm, key, rent)
        self.bundles: OrderedDict[str, _Bundle] = OrderedDict()
        #: Faults on command: the next ``drop_next`` bundles never land; the next ``delay_next``
        #: land ``delay_ms`` late.
        self.drop_next = 0
        self.delay_next = 0
        self.delay_ms = 0

    # -- bundles ----------------------------------------------------------------------------

    def send_bundle(self, txs: list[VersionedTransaction]) -> str:
        """Accept a bundle (refused: :class:`RpcError`); it lands now, late, or never (faults)."""
        if not 1 <= len(txs) <= MAX_IDS:
            raise invalid_params(f"a bundle holds 1 to {MAX_IDS} transactions, got {len(txs)}")
        if len({tx.signatures[0] for tx in txs}) != len(txs):
            raise invalid_params("a transaction appears twice in the bundle")
        try:
            loaded = [self.chain.loaded_addresses(tx) for tx in txs]
        except LookupFailure as exc:
            raise invalid_params(str(exc)) from None
        problem = dont_front_problem(txs, [[*a.writable, *a.readonly] for a in loaded])
        if problem is not None:
            raise RpcError(BUNDLE_REJECTED, f"bundle rejected: {problem}")
        ident = bundle_id(txs)
        if ident in self.bundles:
            return ident  # the same bundle again: one bundle, as Jito dedupes
        self.bundles[ident] = _Bundle(txs, time.monotonic())
        while len(self.bundles) > self.settings.max_bundles:
            self.bundles.popitem(last=False)
        if self.drop_next:
            self.drop_next -= 1
        elif self.delay_next:
            self.delay_next -= 1
            asyncio.get_running_loop().call_later(self.delay_ms / 1000, self.land, ident)
        else:
            self.land(ident)
        return ident

    def land(self, ident: str) -> None:
        """Simulate the bundle in order, then land it whole in this slot, or mark it Failed."""
        bundle = self.bundles.get(ident)
        if bundle is None or bundle.status != "Pending":
            return
        before = [self.chain.svm.get_balance(k) or 0 for k in self.tip_accounts]
        failure, after = self.chain.simulate_bundle(bundle.txs, self.tip_accounts)
        tipped = sum(after.values()) - sum(before) if failure is None else 0
        if failure is not None:
            bundle.status, bundle.reason = "Failed", f"transaction {failure[0]} failed: {failure[1]}"
        elif tipped < MIN_TIP_LAMPORTS:
            bundle.status, bundle.reason = "Failed", f"tips {tipped} lamports, under {MIN_TIP_LAMPORTS}"
        else:
            self.chain.execute_bundle(bundle.txs)
            bundle.status, bundle.landed_slot = "Landed", self.chain.slot()

    def _known(self, ident: Any) -> _Bundle | None:
        bundle = self.bundles.get(ident) if isinstance(ident, str) else None
        if bundle is None or time.monotonic() - bundle.received > self.settings.lookback_s:
            return None
        if bundle.status == "Pending":
            # A transaction of a held (dropped or delayed) bundle landed by another route: the
            # bundle can never land now (its simulation would fail, AlreadyProcessed), as Jito
            # marks such a bundle Failed.
            outside = next((tx.signatures[0] for tx in bundle.txs if tx.signatures[0] in self.chain.landed), None)
            if outside is not None:
                bundle.status, bundle.reason = "Failed", f"transaction {outside} landed outside the bundle"
        return bundle

    # -- JSON-RPC methods -------------------------------------------------------------------

    def _ids(self, params: list[Any]) -> list[str]:
        ids = param_at(params, 0)
        if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_IDS or not all(isinstance(i, str) for i in ids):
            raise invalid_params(f"expected an array of 1 to {MAX_IDS} bundle ids")
        return ids

    def m_sendBundle(self, params: list[Any]) -> str:
        encoded = param_at(params, 0)
        if not isinstance(encoded, list):
            raise invalid_params("expected an array of transactions")
        encoding = config_at(params, 1).get("encoding", "base58")
        return self.send_bundle([decode_transaction(item, encoding) for item in encoded])

    def m_getTipAccounts(self, params: list[Any]) -> list[str]:
        return [str(k) for k in self.tip_accounts]

    def m_getBundleStatuses(self, params: list[Any]) -> dict[str, Any]:
        value: list[dict[str, Any] | None] = []
        for ident in self._ids(params):
            bundle = self.bundles.get(ident)
            landed = [self.chain.landed.get(tx.signatures[0]) for tx in bundle.txs] if bundle else []
            if bundle is None or bundle.status != "Landed" or not all(landed):
                value.append(None)
                continue
            _, confirmation = self.chain.status_of(landed[0])  # type: ignore[arg-type]
            value.append({
                "bundle_id": ident,
                "transactions": [str(tx.signatures[0]) for tx in bundle.txs],
                "slot": bundle.landed_slot,
                "confirmation_status": confirmation,
                "err": {"Ok": None},
            })
        return {"context": {"slot": self.chain.slot()}, "value": value}

    def m_getInflightBundleStatuses(self, params: list[Any]) -> dict[str, Any]:
        value = []
        for ident in self._ids(params):
            bundle = self._known(ident)
            status = bundle.status if bundle is not None else "Invalid"
            value.append({"bundle_id": ident, "status": status, "landed_slot": bundle.landed_slot if bundle else None})
        return {"context": {"slot": self.chain.slot()}, "value": value}

    def send_transaction(self, params: list[Any], bundle_only: bool) -> tuple[str, str | None]:
        """``sendTransaction``: ``(signature, bundle id)``; without ``bundleOnly`` a plain send
        (skipPreflight, as Jito always sets it) and no bundle id."""
        tx = decode_transaction(param_at(params, 0), config_at(params, 1).get("encoding", "base58"))
        if bundle_only:
            return str(tx.signatures[0]), self.send_bundle([tx])
        try:
            return str(self.chain.submit(tx, preflight=False)), None
        except LookupFailure as exc:
            raise invalid_params(str(exc)) from None

    def handle(self, request: Any, methods: tuple[str, ...], bundle_only: bool = False) -> tuple[dict[str, Any], str | None]:
        """One JSON-RPC request on a path serving ``methods`` -> ``(reply, x-bundle-id)``."""
        if not isinstance(request, dict):
            return error_reply(INVALID_REQUEST, "Invalid request"), None
        request_id, method, params = request.get("id"), request.get("method"), request.get("params", [])
        if request.get("jsonrpc") != "2.0" or not isinstance(method, str):
            return error_reply(INVALID_REQUEST, "Invalid request", request_id), None
        if method not in methods:
            return error_reply(METHOD_NOT_FOUND, "Method not found", request_id), None
        if not isinstance(params, list):
            return error_reply(INVALID_PARAMS, "Invalid params: expected an array", request_id), None
        header = None
        try:
            if method == "sendTransaction":
                result, header = self.send_transaction(params, bundle_only)
            else:
                result = getattr(self, f"m_{method}")(params)
        except RpcError as exc:
            return {"jsonrpc": "2.0", "error": exc.to_json(), "id": request_id}, None
        return {"jsonrpc": "2.0", "result": result, "id": request_id}, header

    # -- tip floor and faults ---------------------------------------------------------------

    def tip_floor(self) -> list[dict[str, Any]]:
        """The tip floor answer: one snapshot, in SOL as Jito gives it."""
        snapshot: dict[str, Any] = {"time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        for name, lamports in zip(_FLOOR_FIELDS, self.settings.landed_tips_lamports, strict=True):
            snapshot[name] = lamports / 1e9
        return [snapshot]

    def bundle_fault(self, body: Any) -> dict[str, int]:
        """``{"mode": "drop"|"delay", "count": n, "delay_ms": ms}``; bad input changes nothing."""
        if not isinstance(body, dict) or not set(body) <= {"mode", "count", "delay_ms"}:
            raise ValueError("body: expected {mode, count, delay_ms}")
        mode, count, delay = body.get("mode"), body.get("count", 1), body.get("delay_ms")
        if mode not in ("drop", "delay"):
            raise ValueError("mode: must be drop or delay")
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 1_000_000:
            raise ValueError("count: must be an integer between 0 and 1000000")
        if mode == "drop":
            if delay is not None:
                raise ValueError("delay_ms: only with mode delay")
            self.drop_next = count
        else:
            if isinstance(delay, bool) or not isinstance(delay, int) or not 1 <= delay <= 600_000:
                raise ValueError("delay_ms: must be an integer between 1 and 600000")
            self.delay_next, self.delay_ms = count, delay
        return {"drop_next": self.drop_next, "delay_next": self.delay_next, "delay_ms": self.delay_ms}


BLOCK_ENGINE = web.AppKey("block_engine", BlockEngine)
_BUNDLE_METHODS = ("sendBundle", "getBundleStatuses", "getInflightBundleStatuses", "getTipAccounts")


async def _rpc(request: web.Request, methods: tuple[str, ...]) -> web.Response:
    engine = request.app[BLOCK_ENGINE]
    try:
        payload = strict_json.loads(await request.read())
    except ValueError:
        return web.json_response(error_reply(PARSE_ERROR, "Parse error"))
    bundle_only = request.query.get("bundleOnly", "").lower() == "true"
    reply, bundle = engine.handle(payload, methods, bundle_only)
    return web.json_response(reply, headers={"x-bundle-id": bundle} if bundle else None)


async def _bundles(request: web.Request) -> web.Response:
    return await _rpc(request, _BUNDLE_METHODS)


async def _transactions(request: web.Request) -> web.Response:
    return await _rpc(request, ("sendTransaction",))


async def _tip_floor(request: web.Request) -> web.Response:
    return web.json_response(request.app[BLOCK_ENGINE].tip_floor())


async def _bundle_fault(request: web.Request) -> web.Response:
    try:
        body = strict_json.loads(await request.read()) if request.can_read_body else {}
        result = request.app[BLOCK_ENGINE].bundle_fault(body)
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response({"result": result})


def create_block_engine_app(chain: Chain, settings: BlockEngineSettings, seed: str) -> web.Application:
    """The block engine as an aiohttp application (mount it on a loopback port, on the chain's thread)."""
    app = web.Application(client_max_size=1 << 20)
    app[BLOCK_ENGINE] = BlockEngine(chain, settings, seed)
    app.router.add_post("/api/v1/bundles", _bundles)
    app.router.add_post("/api/v1/transactions", _transactions)
    app.router.add_get("/api/v1/bundles/tip_floor", _tip_floor)
    app.router.add_post("/admin/bundle-fault", _bundle_fault)
    return app
