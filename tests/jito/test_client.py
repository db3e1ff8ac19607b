"""``BlockEngineClient`` against a loopback server answering with Jito's documented answers: the
requests it sends (paths, method names, params, ``bundleOnly``) and how it reads the replies."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from tests.jito.test_recorded import DOCS_BUNDLE, load
from xorj_actors.jito import BlockEngineClient, BlockEngineRefused, JitoSettings, MalformedAnswer, RefusalReason


@dataclass
class Engine:
    """A loopback stand-in: each path answers ``(status, body, headers)``; a JSON-RPC body gets
    the request's id unless ``keep_id``."""

    replies: dict[str, tuple[int, Any, dict[str, str]]] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)
    keep_id: bool = False
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        self.seen.append((request.path, dict(request.query), body))
        status, answer, headers = self.replies.get(request.path, (404, {"error": "no such path"}, {}))
        if isinstance(answer, dict) and "jsonrpc" in answer and not self.keep_id:
            answer = {**answer, "id": body["id"]}
        text = answer if isinstance(answer, str) else json.dumps(answer)
        return web.Response(status=status, text=text, content_type="application/json", headers=headers)

    def reply(self, path: str, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.replies[path] = (status, body, headers or {})


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    fake = Engine()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield fake
    await runner.cleanup()


def client(fake: Engine, **settings: Any) -> BlockEngineClient:
    return BlockEngineClient(JitoSettings(enabled=True, block_engine_url=fake.url, **settings))


def signed() -> VersionedTransaction:
    payer = Keypair()
    ix = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=Pubkey.new_unique(), lamports=1))
    return VersionedTransaction(MessageV0.try_compile(payer.pubkey(), [ix], [], Hash.new_unique()), [payer])


async def test_send_bundle_sends_base64_with_the_encoding(engine: Engine) -> None:
    engine.reply("/api/v1/bundles", load("send-bundle.json"))
    txs = [signed(), signed()]
    async with client(engine) as jito:
        assert await jito.send_bundle(txs) == load("send-bundle.json")["result"]
        with pytest.raises(ValueError):
            await jito.send_bundle([signed() for _ in range(6)])
    ((path, _, body),) = engine.seen
    assert path == "/api/v1/bundles" and body["method"] == "sendBundle" and body["jsonrpc"] == "2.0"
    assert body["params"] == [[base64.b64encode(bytes(tx)).decode() for tx in txs], {"encoding": "base64"}]


@pytest.mark.parametrize(("bundle_only", "query"), [(None, {"bundleOnly": "true"}), (False, {})])
async def test_send_transaction_bundle_only_and_its_bundle_id(engine: Engine, bundle_only: bool | None, query: dict[str, str]) -> None:
    tx = signed()
    answer = {"jsonrpc": "2.0", "result": str(tx.signatures[0]), "id": 1}
    engine.reply("/api/v1/transactions", answer, headers={"x-bundle-id": "abc123"})
    async with client(engine) as jito:
        sent = await jito.send_transaction(tx, bundle_only=bundle_only)
    assert sent.signature == tx.signatures[0] and sent.bundle_id == "abc123"
    ((path, seen_query, body),) = engine.seen
    assert path == "/api/v1/transactions" and seen_query == query
    assert body["method"] == "sendTransaction" and body["params"][1] == {"encoding": "base64"}


async def test_an_answer_with_another_signature_is_refused(engine: Engine) -> None:
    engine.reply("/api/v1/transactions", load("send-transaction.json"))
    async with client(engine) as jito:
        with pytest.raises(MalformedAnswer, match="not our signature"):
            await jito.send_transaction(signed())


async def test_statuses_ask_at_most_five_ids(engine: Engine) -> None:
    engine.reply("/api/v1/bundles", load("get-bundle-statuses.json"))
    async with client(engine) as jito:
        _, found = await jito.bundle_statuses([DOCS_BUNDLE])
        assert found[DOCS_BUNDLE].confirmation == "finalized"
        with pytest.raises(ValueError):
            await jito.bundle_statuses(["a"] * 6)
        with pytest.raises(ValueError):
            await jito.inflight_statuses([])
    assert engine.seen[0][2]["params"] == [[DOCS_BUNDLE]] and len(engine.seen) == 1


async def test_an_answer_to_another_request_is_refused(engine: Engine) -> None:
    engine.reply("/api/v1/bundles", {**load("get-tip-accounts.json"), "id": 99})
    engine.keep_id = True
    async with client(engine) as jito:
        with pytest.raises(MalformedAnswer, match="JSON-RPC"):
            await jito.tip_accounts()


@pytest.mark.parametrize(
    ("status", "body", "headers", "reason", "retry"),
    [
        (429, "Too Many Requests", {"Retry-After": "2"}, RefusalReason.RATE_LIMITED, 2.0),
        (200, {"jsonrpc": "2.0", "error": {"code": -32602, "message": "bad params"}, "id": 1}, {}, RefusalReason.BAD_REQUEST, None),
        (200, {"jsonrpc": "2.0", "error": {"code": -32000, "message": "bundle rejected"}, "id": 1}, {}, RefusalReason.REJECTED, None),
        (503, "unavailable", {}, RefusalReason.SERVER_ERROR, None),
    ],
    ids=["429", "bad-params", "rejected", "503"],
)
async def test_refusals_are_values(engine: Engine, status: int, body: Any, headers: dict[str, str], reason: RefusalReason, retry: float | None) -> None:
    engine.reply("/api/v1/bundles", body, status, headers)
    async with client(engine) as jito:
        with pytest.raises(BlockEngineRefused) as caught:
            await jito.tip_accounts()
    refusal = caught.value.refusal
    assert refusal.method == "getTipAccounts" and refusal.reason is reason and refusal.retry_after_s == retry


async def test_the_tip_floor_from_its_own_url_and_oversized_answers(engine: Engine) -> None:
    engine.reply("/floor", load("tip-floor.json"))
    engine.reply("/api/v1/bundles", {"jsonrpc": "2.0", "result": ["x" * 100] * 2_000, "id": 1})
    async with client(engine, tip_floor_url=engine.url + "/floor") as jito:
        assert (await jito.tip_floor()).time == "2024-09-01T12:58:00Z"
        with pytest.raises(MalformedAnswer, match="larger than"):
            await jito.tip_accounts()
