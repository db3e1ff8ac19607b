"""Jupiter's paths on the quote app: Swap API v1, Ultra, Price v3, the ``x-api-key`` rule and the
route-fault admin action. :func:`register_jupiter_apis` is all ``quote.py`` calls."""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from xorj_actors.localnet.chain import Chain, PreflightFailure
from xorj_actors.localnet.genesis import Genesis
from xorj_actors.localnet.jupiter_desk import Desk
from xorj_actors.localnet.jupiter_swap import SwapApi
from xorj_actors.localnet.jupiter_ultra import UltraApi
from xorj_actors.localnet.market_settings import QuoteSettings
from xorj_actors.localnet.pricing import PriceWalk
from xorj_actors.localnet.quote_book import QuoteRefused
from xorj_actors.localnet.route_faults import RouteFaults
from xorj_actors.localnet.table_admin import TableAdmin

__all__ = ["JUPITER_APIS", "JupiterApis", "register_jupiter_apis"]

_GUARDED = ("/swap/v1/", "/ultra/v1/", "/price/v3")
_TABLE_SEED = "xorj-localnet:jupiter-desk"


class JupiterApis:
    """The Swap API, Ultra and the route faults behind one quote app (``app[JUPITER_APIS]``)."""

    def __init__(self, genesis: Genesis, chain: Chain, prices: PriceWalk, settings: QuoteSettings) -> None:
        self.desk = Desk(genesis, chain, TableAdmin(chain, _TABLE_SEED))
        self.swap = SwapApi(self.desk, prices, settings)
        self.ultra = UltraApi(self.swap)
        self.faults = RouteFaults()
        self.ultra.faults = self.faults
        self.api_key = os.environ.get(settings.api_key_env, "")


JUPITER_APIS = web.AppKey("jupiter_apis", JupiterApis)


def _error(code: str, message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message, "errorCode": code}, status=status)


async def _body(request: web.Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise QuoteRefused("INVALID_REQUEST", "body: not valid JSON") from None


def _route(answer: Callable[[JupiterApis, web.Request, Any], Any], json_body: bool) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        try:
            body = await _body(request) if json_body else None
            result = answer(request.app[JUPITER_APIS], request, body)
        except QuoteRefused as exc:
            return _error(exc.code, str(exc))
        except PreflightFailure as exc:
            # The market maker's own transaction failed (its inventory short): Jupiter's 500.
            return _error("FAILED_TO_GET_SWAP_AND_ACCOUNT_METAS", f"the market maker could not fill the route: {exc}", 500)
        if isinstance(result, tuple):
            status, payload = result
            return web.json_response(payload, status=status)
        return web.json_response(result)

    return handle


@web.middleware
async def _api_key(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    apis = request.app.get(JUPITER_APIS)
    if apis is not None and apis.api_key and request.path.startswith(_GUARDED):
        given = request.headers.get("x-api-key", "")
        if not hmac.compare_digest(given.encode(), apis.api_key.encode()):
            # Jupiter answers 401 for a missing or wrong key (dev.jup.ag/portal/responses); its body is not recorded.
            return web.json_response({"error": "Unauthorized: missing or invalid x-api-key"}, status=401)
    return await handler(request)


def register_jupiter_apis(app: web.Application, genesis: Genesis, chain: Any, prices: PriceWalk, settings: QuoteSettings) -> None:
    """Add Jupiter's paths to the quote ``app`` (before it starts)."""
    app[JUPITER_APIS] = JupiterApis(genesis, chain, prices, settings)
    app.middlewares.append(_api_key)
    app.router.add_get("/swap/v1/quote", _route(lambda j, r, _: j.swap.quote(r.query), False))
    app.router.add_post("/swap/v1/swap-instructions", _route(lambda j, _, b: j.swap.swap_instructions(b, j.faults), True))
    app.router.add_get("/ultra/v1/order", _route(lambda j, r, _: j.ultra.order(r.query), False))
    app.router.add_post("/ultra/v1/execute", _route(lambda j, _, b: j.ultra.execute(b), True))
    app.router.add_get("/price/v3", _route(lambda j, r, _: j.swap.price_v3(r.query.get("ids")), False))
    app.router.add_post("/admin/route-fault", _route(lambda j, _, b: j.faults.set(*_fault_args(b)), True))


def _fault_args(body: Any) -> tuple[Any, Any]:
    if not isinstance(body, dict) or "mode" not in body:
        raise QuoteRefused("INVALID_REQUEST", 'body: expected {"mode": <mode or null>, "count": n}')
    return body["mode"], body.get("count", 1)
