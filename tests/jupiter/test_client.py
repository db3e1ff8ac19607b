"""``JupiterClient`` against a loopback server that answers with the recorded answers: the
requests it sends (paths, query names, body fields, the key header) and how it reads the replies."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from aiohttp import web
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from tests.jupiter.recorded import DOCS_TAKER as TAKER
from tests.jupiter.recorded import SOL, USDC, load
from xorj_actors.jupiter import (
    ExecuteOutcome,
    JupiterClient,
    JupiterRefused,
    JupiterSettings,
    MalformedAnswer,
    MissingApiKey,
    PriorityLevel,
    RefusalReason,
)

KEY = "test-key-123"
ENV = {"JUPITER_API_KEY": KEY}


@dataclass
class Jupiter:
    """A loopback stand-in: each path answers ``(status, body, headers)`` from ``replies``."""

    replies: dict[str, tuple[int, Any, dict[str, str]]] = field(default_factory=dict)
    seen: list[web.Request] = field(default_factory=list)
    bodies: list[Any] = field(default_factory=list)
    url: str = ""
    #: Set at teardown: a handler that never answers returns then.
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(request)
        self.bodies.append(await request.json() if request.can_read_body else None)
        status, body, headers = self.replies.get(request.path, (404, {"error": "no such path"}, {}))
        text = body if isinstance(body, str) else json.dumps(body)
        return web.Response(status=status, text=text, content_type="application/json", headers=headers)

    def reply(self, path: str, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.replies[path] = (status, body, headers or {})


@pytest.fixture
async def jupiter() -> AsyncIterator[Jupiter]:
    fake = Jupiter()
    app = web.Application()

    async def dispatch(request: web.Request) -> web.Response:
        return await fake.handle(request)  # looked up per request: a test may swap the handler

    app.router.add_route("*", "/{tail:.*}", dispatch)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    fake.release.set()
    await runner.cleanup()


def client(fake: Jupiter, **overrides: Any) -> JupiterClient:
    return JupiterClient(replace(JupiterSettings(base_url=fake.url), **overrides), environ=ENV)


async def test_quote_sends_the_documented_query_and_the_key(jupiter: Jupiter) -> None:
    jupiter.reply("/swap/v1/quote", load("quote-openapi.json"))
    async with client(jupiter, max_accounts=40) as jup:
        quote = await jup.quote(SOL, USDC, 100_000_000, 100)
    (request,) = jupiter.seen
    assert request.method == "GET" and request.path == "/swap/v1/quote"
    assert dict(request.query) == {
        "inputMint": str(SOL),
        "outputMint": str(USDC),
        "amount": "100000000",
        "slippageBps": "100",
        "swapMode": "ExactIn",
        "restrictIntermediateTokens": "true",
        "instructionVersion": "V1",
        "maxAccounts": "40",
    }
    assert request.headers["x-api-key"] == KEY
    assert quote.other_amount_threshold == 16886885


@pytest.mark.parametrize(
    ("args", "field"),
    [((USDC, SOL, 100_000_000, 100), "inputMint"), ((SOL, USDC, 5, 100), "inAmount"), ((SOL, USDC, 100_000_000, 50), "slippageBps")],
    ids=["other-pair", "other-amount", "other-slippage"],
)
async def test_a_quote_for_another_request_is_refused(jupiter: Jupiter, args: tuple[Any, ...], field: str) -> None:
    jupiter.reply("/swap/v1/quote", load("quote-openapi.json"))
    async with client(jupiter) as jup:
        with pytest.raises(MalformedAnswer) as refused:
            await jup.quote(*args)
    assert refused.value.field == field


async def test_swap_instructions_posts_the_quote_back_as_received(jupiter: Jupiter) -> None:
    jupiter.reply("/swap/v1/quote", load("quote-openapi.json"))
    jupiter.reply("/swap/v1/swap-instructions", load("swap-instructions-3-tables-wsol-shared.json"))
    user = Keypair().pubkey()
    async with client(jupiter, priority_level=PriorityLevel.HIGH, max_priority_fee_lamports=50_000) as jup:
        quote = await jup.quote(SOL, USDC, 100_000_000, 100)
        route = await jup.swap_instructions(quote, user)
    request, body = jupiter.seen[1], jupiter.bodies[1]
    assert request.method == "POST" and request.path == "/swap/v1/swap-instructions"
    assert body == {
        "userPublicKey": str(user),
        "quoteResponse": load("quote-openapi.json"),
        "wrapAndUnwrapSol": True,
        "dynamicComputeUnitLimit": True,
        "prioritizationFeeLamports": {"priorityLevelWithMaxLamports": {"priorityLevel": "high", "maxLamports": 50_000}},
    }
    assert len(route.address_lookup_table_addresses) == 3


async def test_a_simulation_error_is_a_refusal(jupiter: Jupiter) -> None:
    route = load("swap-instructions-jito-tip.json")
    route["simulationError"] = {"errorCode": "TRANSACTION_ERROR", "error": "custom program error: 0x1771"}
    jupiter.reply("/swap/v1/quote", load("quote-openapi.json"))
    jupiter.reply("/swap/v1/swap-instructions", route)
    async with client(jupiter) as jup:
        quote = await jup.quote(SOL, USDC, 100_000_000, 100)
        with pytest.raises(JupiterRefused) as refused:
            await jup.swap_instructions(quote, TAKER)
    assert refused.value.refusal.reason is RefusalReason.SIMULATION_FAILED
    assert refused.value.refusal.code == "TRANSACTION_ERROR"


@pytest.mark.parametrize(
    ("status", "body", "headers", "reason", "retry"),
    [
        (400, {"error": "Could not find any route", "errorCode": "COULD_NOT_FIND_ANY_ROUTE"}, {}, RefusalReason.NO_ROUTE, None),
        (400, {"error": "The token is not tradable", "errorCode": "TOKEN_NOT_TRADABLE"}, {}, RefusalReason.NOT_TRADABLE, None),
        (400, load("quote-error-bad-amount.json"), {}, RefusalReason.BAD_REQUEST, None),
        (401, {"message": "Unauthorized"}, {}, RefusalReason.UNAUTHORIZED, None),
        (429, {"code": 429, "message": "Too many requests"}, {"Retry-After": "7"}, RefusalReason.RATE_LIMITED, 7.0),
        (502, "<html>bad gateway</html>", {}, RefusalReason.SERVER_ERROR, None),
    ],
    ids=["no-route", "not-tradable", "bad-amount", "key", "rate-limit", "gateway"],
)
async def test_error_answers_become_typed_refusals(
    jupiter: Jupiter, status: int, body: Any, headers: dict[str, str], reason: RefusalReason, retry: float | None
) -> None:
    jupiter.reply("/swap/v1/quote", body, status, headers)
    async with client(jupiter) as jup:
        with pytest.raises(JupiterRefused) as refused:
            await jup.quote(SOL, USDC, 100_000_000, 100)
    assert refused.value.refusal.reason is reason
    assert refused.value.refusal.http_status == status and refused.value.refusal.retry_after_s == retry


async def test_order_sends_the_taker_and_refuses_when_ultra_has_no_route(jupiter: Jupiter) -> None:
    jupiter.reply("/ultra/v1/order", load("ultra-order-metis.json"))
    async with client(jupiter, exclude_routers="dflow,okx") as jup:
        order = await jup.order(USDC, SOL, 100_000_000, TAKER)
        assert order.transaction is not None
        assert dict(jupiter.seen[0].query) == {
            "inputMint": str(USDC), "outputMint": str(SOL), "amount": "100000000", "taker": str(TAKER), "excludeRouters": "dflow,okx",
        }
        jupiter.reply("/ultra/v1/order", load("ultra-order-failed-400.json"), 400)
        with pytest.raises(JupiterRefused) as refused:
            await jup.order(USDC, SOL, 100_000_000, TAKER)
    assert refused.value.refusal.reason is RefusalReason.NO_ROUTE


async def test_an_order_without_transaction_is_refused_with_its_code(jupiter: Jupiter) -> None:
    order = load("ultra-order-metis.json")
    order.update(transaction="", errorCode=2, errorMessage="Top up 0.01 SOL for gas")
    jupiter.reply("/ultra/v1/order", order)
    async with client(jupiter) as jup:
        with pytest.raises(JupiterRefused) as refused:
            await jup.order(USDC, SOL, 100_000_000, TAKER)
    assert refused.value.refusal.reason is RefusalReason.INSUFFICIENT_SOL_FOR_GAS


def signed_transaction() -> VersionedTransaction:
    payer = Keypair()
    memo = Instruction(Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"), b"x", [])
    return VersionedTransaction(MessageV0.try_compile(payer.pubkey(), [memo], [], Hash.default()), [payer])


async def test_execute_posts_the_signed_bytes_and_checks_the_signature(jupiter: Jupiter) -> None:
    tx = signed_transaction()
    answer = load("ultra-execute-success-openapi.json") | {"signature": str(tx.signatures[0])}
    jupiter.reply("/ultra/v1/execute", answer)
    async with client(jupiter) as jup:
        done = await jup.execute(tx, "req-1")
        assert jupiter.bodies[0] == {"signedTransaction": base64.b64encode(bytes(tx)).decode(), "requestId": "req-1"}
        assert done.outcome is ExecuteOutcome.LANDED and done.signature == tx.signatures[0]
        jupiter.reply("/ultra/v1/execute", load("ultra-execute-success-openapi.json"))  # someone else's signature
        with pytest.raises(MalformedAnswer) as refused:
            await jup.execute(tx, "req-1")
    assert refused.value.field == "signature"


async def test_execute_reads_coded_error_answers_as_executions(jupiter: Jupiter) -> None:
    jupiter.reply("/ultra/v1/execute", load("ultra-execute-order-not-found.json"), 400)
    async with client(jupiter) as jup:
        gone = await jup.execute(signed_transaction(), "req-2")
        assert gone.outcome is ExecuteOutcome.ORDER_EXPIRED
        jupiter.reply("/ultra/v1/execute", {"message": "slow down"}, 429)
        with pytest.raises(JupiterRefused) as refused:
            await jup.execute(signed_transaction(), "req-2")
    assert refused.value.refusal.reason is RefusalReason.RATE_LIMITED


async def test_prices_ask_at_most_fifty_ids_a_request(jupiter: Jupiter) -> None:
    jupiter.reply("/price/v3", load("price-v3-openapi.json"))
    mints = [SOL, USDC, *(Keypair().pubkey() for _ in range(60))]
    async with client(jupiter) as jup:
        prices = await jup.prices(mints)
    assert set(prices) == {SOL, USDC}
    asked = [r.query["ids"].split(",") for r in jupiter.seen]
    assert [len(a) for a in asked] == [50, 12] and sum(asked, []) == [str(m) for m in mints]


async def test_a_huge_or_non_json_answer_is_refused(jupiter: Jupiter) -> None:
    jupiter.reply("/swap/v1/quote", "x" * 20_000)
    async with client(jupiter, max_answer_bytes=10_000) as jup:
        with pytest.raises(MalformedAnswer, match="larger than"):
            await jup.quote(SOL, USDC, 100_000_000, 100)
        jupiter.reply("/swap/v1/quote", "{not json")
        with pytest.raises(MalformedAnswer, match="not strict JSON"):
            await jup.quote(SOL, USDC, 100_000_000, 100)


async def test_an_answer_that_arrives_in_pieces_is_read_whole(jupiter: Jupiter) -> None:
    body = json.dumps(load("swap-instructions-3-tables-wsol-shared.json")).encode()

    async def trickle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        for i in range(0, len(body), 1000):
            await resp.write(body[i : i + 1000])
            await asyncio.sleep(0)  # one piece at a time
        await resp.write_eof()
        return resp

    jupiter.reply("/swap/v1/quote", load("quote-openapi.json"))
    async with client(jupiter) as jup:
        quote = await jup.quote(SOL, USDC, 100_000_000, 100)
        jupiter.handle = trickle  # type: ignore[assignment]
        route = await jup.swap_instructions(quote, TAKER)
    assert len(route.swap_instruction.accounts) == 69


def test_the_key_comes_from_the_named_variable_only() -> None:
    settings = JupiterSettings(base_url="https://api.jup.ag", api_key_env="MY_JUP_KEY")
    with pytest.raises(MissingApiKey, match="MY_JUP_KEY"):
        JupiterClient(settings, environ={"JUPITER_API_KEY": KEY})
    assert JupiterClient(settings, environ={"MY_JUP_KEY": "k"})._headers["x-api-key"] == "k"
    keyless = JupiterClient(replace(settings, api_key_env=""), environ={})
    assert "x-api-key" not in keyless._headers
    with pytest.raises(ValueError, match="base_url"):
        JupiterClient(JupiterSettings(), environ=ENV)


async def test_a_request_that_outlives_its_timeout_raises_a_timeout(jupiter: Jupiter) -> None:
    async def slow(request: web.Request) -> web.Response:
        await jupiter.release.wait()  # answers only at teardown
        return web.Response(text="{}")

    jupiter.handle = slow  # type: ignore[method-assign]
    app_url = jupiter.url
    assert app_url
    async with JupiterClient(JupiterSettings(base_url=app_url, request_timeout_s=0.2, connect_timeout_s=0.1), environ=ENV) as jup:
        with pytest.raises(asyncio.TimeoutError):
            await jup.quote(SOL, USDC, 1, 50)

