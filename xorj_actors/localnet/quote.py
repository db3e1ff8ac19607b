"""The localnet's quote service: Jupiter's APIs at their paths, over one seeded price walk.

Swap API v1 (``GET /swap/v1/quote``, ``POST /swap/v1/swap-instructions``, :mod:`.jupiter_swap`),
Ultra (``GET /ultra/v1/order``, ``POST /ultra/v1/execute``, :mod:`.jupiter_ultra`) and Price v3
(``GET /price/v3``), in Jupiter's shapes, behind the ``x-api-key`` rule; and the admin actions
on the market: ``/admin/volatility-spike``, ``/admin/advance`` (the walk), ``/admin/co-move`` and
``/admin/route-fault`` (:mod:`.route_faults`). See docs/LOCALNET.md, "Quote service and
quantitative engine".
"""

from __future__ import annotations

import hmac
import json
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from xorj_actors.localnet.chain import Chain, PreflightFailure
from xorj_actors.localnet.encoding import json_text
from xorj_actors.localnet.fastpath import FAST_ROUTE, Responder
from xorj_actors.localnet.genesis import Genesis
from xorj_actors.localnet.jupiter_desk import Desk
from xorj_actors.localnet.jupiter_swap import QuoteRefused, SwapApi
from xorj_actors.localnet.jupiter_ultra import UltraApi
from xorj_actors.localnet.market_settings import QuoteSettings
from xorj_actors.localnet.pricing import PriceWalk
from xorj_actors.localnet.rate_limit import RateLimit
from xorj_actors.localnet.route_faults import RouteFaults
from xorj_actors.localnet.table_admin import TableAdmin

__all__ = ["QUOTE_SERVICE", "QuoteService", "create_quote_app"]

#: Paths that demand the ``x-api-key`` when one is configured (Jupiter's; not the admin actions).
_GUARDED = ("/swap/v1/", "/ultra/v1/", "/price/v3")
_TABLE_SEED = "xorj-localnet:jupiter-desk"
_MAX_STEPS = 1_000_000


class QuoteService:
    """The state behind one quote app; reach it in-process as ``app[QUOTE_SERVICE]``.

    Attributes:
        prices: the seeded price walks every quote and price is read from.
        swap: the Swap API (its ``clock`` decides expiry, Ultra's too).
        ultra: the Ultra API.
        faults: the adversarial routes on command.
    """

    def __init__(self, genesis: Genesis, chain: Chain, settings: QuoteSettings) -> None:
        self.settings = settings
        self.prices = PriceWalk(
            genesis.tokens, settings.seed, settings.step_s, settings.manual_clock, settings.spike_multiplier
        )
        self.desk = Desk(genesis, chain, TableAdmin(chain, _TABLE_SEED))
        self.swap = SwapApi(self.desk, self.prices, settings)
        self.ultra = UltraApi(self.swap)
        self.faults = RouteFaults()
        self.ultra.faults = self.faults
        self.api_key = os.environ.get(settings.api_key_env, "")

    def volatility_spike(self, body: Any) -> dict[str, Any]:
        """``POST /admin/volatility-spike {"on": bool}``."""
        on = body.get("on") if isinstance(body, dict) else None
        if not isinstance(on, bool):
            raise QuoteRefused("INVALID_REQUEST", "on: expected true or false")
        self.prices.set_volatility_spike(on)
        return {"spike": self.prices.spike, "multiplier": self.settings.spike_multiplier}

    def advance(self, body: Any) -> dict[str, Any]:
        """``POST /admin/advance {"steps": n}``: step the walks now (with either clock)."""
        steps = body.get("steps", 1) if isinstance(body, dict) else None
        if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= _MAX_STEPS:
            raise QuoteRefused("INVALID_REQUEST", f"steps: expected an integer between 0 and {_MAX_STEPS}")
        return {"step": self.prices.advance(steps)}

    def co_move(self, body: Any) -> dict[str, Any]:
        """``POST /admin/co-move {"groups": [[mint, mint, ...], ...]}``: those mints move together."""
        groups = body.get("groups") if isinstance(body, dict) else None
        if not isinstance(groups, list) or not all(isinstance(g, list) and all(isinstance(m, str) for m in g) for g in groups):
            raise QuoteRefused("INVALID_REQUEST", "groups: expected a list of lists of mints")
        try:
            return {"groups": [list(g) for g in self.prices.co_move(groups)]}
        except ValueError as exc:
            raise QuoteRefused("INVALID_REQUEST", str(exc)) from None

    def route_fault(self, body: Any) -> dict[str, Any]:
        """``POST /admin/route-fault {"mode": <mode or null>, "count": n}``."""
        if not isinstance(body, dict) or "mode" not in body:
            raise QuoteRefused("INVALID_REQUEST", 'body: expected {"mode": <mode or null>, "count": n}')
        return self.faults.set(body["mode"], body.get("count", 1))


#: The :class:`QuoteService` of a quote app, for in-process control.
QUOTE_SERVICE = web.AppKey("quote_service", QuoteService)

#: ``(service, query, JSON body) -> the reply``: a payload (200) or ``(status, payload)``.
Answer = Callable[[QuoteService, Mapping[str, str], Any], Any]


def _answered(answer: Answer, service: QuoteService, query: Mapping[str, str], body: bytes | None) -> tuple[int, Any]:
    """``(status, payload)`` of one request (``body`` is ``None`` for a route without one)."""
    try:
        try:
            parsed = None if body is None else json.loads(body.decode())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise QuoteRefused("INVALID_REQUEST", "body: not valid JSON") from None
        result = answer(service, query, parsed)
    except QuoteRefused as exc:
        return 400, {"error": str(exc), "errorCode": exc.code}
    except PreflightFailure as exc:
        # The market maker's own transaction failed (its inventory short): Jupiter's 500.
        message = f"the market maker could not fill the route: {exc}"
        return 500, {"error": message, "errorCode": "FAILED_TO_GET_SWAP_AND_ACCOUNT_METAS"}
    return result if isinstance(result, tuple) else (200, result)


def _route(answer: Answer, json_body: bool) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        body = await request.read() if json_body else None
        status, payload = _answered(answer, request.app[QUOTE_SERVICE], request.query, body)
        return web.json_response(payload, status=status)

    return handle


def _query(target: bytes) -> dict[str, str]:
    """The query of a request target as aiohttp reads it (the first value of a repeated name)."""
    query: dict[str, str] = {}
    for name, value in parse_qsl(target.partition(b"?")[2].decode("latin-1"), keep_blank_values=True, encoding="utf-8"):
        query.setdefault(name, value)
    return query


def _fast_route(app: web.Application, routes: dict[tuple[bytes, bytes], tuple[Answer, bool]]) -> Callable[[bytes, bytes], Responder | None]:
    """The lean path's route (:mod:`.fastpath`): Jupiter's paths while no key or limit applies."""
    service = app[QUOTE_SERVICE]

    def route(method: bytes, path: bytes) -> Responder | None:
        found = routes.get((method, path))
        if found is None or service.api_key or app.get(RATE_LIMIT) is not None:
            return None
        answer, json_body = found

        def respond(target: bytes, body: bytes) -> tuple[int, bytes]:
            status, payload = _answered(answer, service, _query(target), body if json_body else None)
            return status, json_text(payload).encode()

        return respond

    return route


@web.middleware
async def _api_key(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    key = request.app[QUOTE_SERVICE].api_key
    if key and request.path.startswith(_GUARDED):
        given = request.headers.get("x-api-key", "")
        if not hmac.compare_digest(given.encode(), key.encode()):
            # Jupiter answers 401 for a missing or wrong key (dev.jup.ag/portal/responses); its body is not recorded.
            return web.json_response({"error": "Unauthorized: missing or invalid x-api-key"}, status=401)
    return await handler(request)


RATE_LIMIT = web.AppKey("rate_limit", RateLimit)


@web.middleware
async def _rate_limit(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    limit = request.app.get(RATE_LIMIT)
    if limit is not None and request.path.startswith(_GUARDED) and not limit.admit(time.monotonic()):
        return web.json_response({"error": "Too many requests"}, status=429)
    return await handler(request)


def create_quote_app(genesis: Genesis, chain: Chain, settings: QuoteSettings) -> web.Application:
    """The quote service as an aiohttp application (mount it on a loopback port, on the chain's
    thread: LiteSVM is not thread-safe)."""
    app = web.Application(middlewares=[_api_key, _rate_limit])
    app[QUOTE_SERVICE] = QuoteService(genesis, chain, settings)
    if settings.rate_limit_requests:
        app[RATE_LIMIT] = RateLimit(settings.rate_limit_requests, settings.rate_limit_window_s)
    jupiter: dict[tuple[bytes, bytes], tuple[Answer, bool]] = {
        (b"GET", b"/swap/v1/quote"): (lambda s, q, _: s.swap.quote(q), False),
        (b"POST", b"/swap/v1/swap-instructions"): (lambda s, _, b: s.swap.swap_instructions(b, s.faults), True),
        (b"GET", b"/ultra/v1/order"): (lambda s, q, _: s.ultra.order(q), False),
        (b"POST", b"/ultra/v1/execute"): (lambda s, _, b: s.ultra.execute(b), True),
        (b"GET", b"/price/v3"): (lambda s, q, _: s.swap.price_v3(q.get("ids")), False),
    }
    for (method, path), (answer, json_body) in jupiter.items():
        add = app.router.add_get if method == b"GET" else app.router.add_post
        add(path.decode(), _route(answer, json_body))
    app[FAST_ROUTE] = _fast_route(app, jupiter)
    app.router.add_post("/admin/volatility-spike", _route(lambda s, _, b: s.volatility_spike(b), True))
    app.router.add_post("/admin/advance", _route(lambda s, _, b: s.advance(b), True))
    app.router.add_post("/admin/co-move", _route(lambda s, _, b: s.co_move(b), True))
    app.router.add_post("/admin/route-fault", _route(lambda s, _, b: s.route_fault(b), True))
    return app
