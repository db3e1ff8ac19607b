"""The localnet's servers on one event loop: JSON-RPC + PubSub, the slot clock, faults, admin.

:class:`LocalnetServer` is the asyncio form; every method runs on its loop's thread. The
threaded :class:`~xorj_actors.localnet.runner.Localnet` wraps it for code that is not async.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import json
import math
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from solders.pubkey import Pubkey

from xorj_actors.localnet.chain import Chain
from xorj_actors.localnet.encoding import json_text
from xorj_actors.localnet.fastpath import FAST_ROUTE, FastHttpProtocol, Responder, Route
from xorj_actors.localnet.rate_limit import RateLimit
from xorj_actors.localnet.genesis import Genesis, build_genesis
from xorj_actors.localnet.pubsub import PubSub
from xorj_actors.localnet.rpc import INVALID_REQUEST, PARSE_ERROR, JsonRpc, error_reply
from xorj_actors.localnet.settings import LocalnetSettings
from xorj_actors.localnet.table_admin import TableAdmin
from xorj_actors.tokens import TokenRegistry

__all__ = ["Faults", "LocalnetServer"]

_MAX_BODY = 4 << 20


@dataclass(slots=True)
class Faults:
    """Network faults of the JSON-RPC endpoint and the slot clock (transaction faults live on
    the chain: :meth:`LocalnetServer.drop_transactions`, :meth:`LocalnetServer.delay_transactions`)."""

    #: Seconds every JSON-RPC HTTP request waits before it is answered.
    http_delay_s: float = 0.0
    #: Cut every JSON-RPC HTTP connection without an answer.
    refuse_http: bool = False
    #: Fraction of JSON-RPC HTTP requests answered 429, spread evenly (0.5: every other one).
    rate_limit: float = 0.0
    retry_after_s: int = 1
    #: The slot clock stops: no new slots, so nothing confirms and blockhashes stop changing.
    clock_stalled: bool = False

    def validate(self) -> None:
        if not math.isfinite(self.http_delay_s) or not 0 <= self.http_delay_s <= 300:
            raise ValueError("http_delay_s: must be between 0 and 300")
        if not 0 <= self.rate_limit <= 1:
            raise ValueError("rate_limit: must be between 0 and 1")
        if not 0 <= self.retry_after_s <= 3600:
            raise ValueError("retry_after_s: must be between 0 and 3600")


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


class LocalnetServer:
    """Chain, JSON-RPC + PubSub on one port, and the quote, quant and block-engine services on theirs."""

    def __init__(self, settings: LocalnetSettings | None = None, tokens: TokenRegistry | None = None) -> None:
        self.settings = settings or LocalnetSettings()
        self.genesis: Genesis = build_genesis(self.settings, tokens)
        self.faults = Faults()
        self.urls: dict[str, str | None] = {"rpc": None, "ws": None, "quote": None, "quant": None, "block_engine": None}
        self.chain: Chain | None = None
        self.tables: TableAdmin | None = None
        self._runners: list[web.AppRunner] = []
        self._servers: list[asyncio.Server] = []
        self._fast_connections: set[asyncio.Transport] = set()
        self._clock: asyncio.TimerHandle | None = None
        self._limit_credit = 0.0
        s = self.settings
        #: The provider's budget on JSON-RPC calls (``rpc_rate_limit_requests``), if any.
        self.rpc_limit = RateLimit(s.rpc_rate_limit_requests, s.rpc_rate_limit_window_s) if s.rpc_rate_limit_requests else None

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Build the chain and listen on every port; returns once all servers accept."""
        chain = self.chain = Chain(self.settings, self.genesis)
        self.tables = TableAdmin(chain, self.settings.seed)
        self.rpc = JsonRpc(chain)
        self.pubsub = PubSub(chain)
        app = web.Application(client_max_size=_MAX_BODY)
        app.router.add_route("*", "/", self._root)
        app.router.add_post("/admin/{action}", self._admin)
        host = f"[{self.settings.host}]" if ":" in self.settings.host else self.settings.host
        try:
            port = await self._serve(app, self.settings.rpc_port, self._rpc_route)
            self.urls["rpc"] = f"http://{host}:{port}"
            self.urls["ws"] = f"ws://{host}:{port}"
            ports = (
                ("quote", self.settings.quote.port),
                ("quant", self.settings.quant.port),
                ("block_engine", self.settings.block_engine.port),
            )
            for name, sub_port in ports:
                sub_app = self._market_app(name)
                if sub_app is not None:
                    route = sub_app.get(FAST_ROUTE)
                    served = await self._serve(sub_app, sub_port, route, b"application/json; charset=utf-8")  # type: ignore[arg-type]
                    self.urls[name] = f"http://{host}:{served}"
        except BaseException:
            await self.stop()
            raise
        if not self.settings.manual_clock:
            due = asyncio.get_running_loop().time() + self.settings.slot_ms / 1000
            self._clock = asyncio.get_running_loop().call_at(due, self._tick, due)

    def _market_app(self, name: str) -> web.Application | None:
        """A service next to the chain (quote, quant, block engine), if its module exists yet."""
        module_name = f"xorj_actors.localnet.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            return None
        if name == "quote":
            return module.create_quote_app(self.genesis, self.chain, self.settings.quote)
        if name == "block_engine":
            return module.create_block_engine_app(self.chain, self.settings.block_engine, self.settings.seed)
        return module.create_quant_app(self.genesis, self.settings.quant)

    async def _serve(
        self, app: web.Application, port: int, route: Route | None = None, content_type: bytes = b"application/json"
    ) -> int:
        """Serve ``app`` on ``port``; the requests ``route`` takes go the lean path (:mod:`.fastpath`)."""
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        self._runners.append(runner)
        sock = _bind(self.settings.host, port)
        if route is None:
            await web.SockSite(runner, sock).start()
            return sock.getsockname()[1]
        fallback = runner.server
        assert fallback is not None

        def protocol() -> FastHttpProtocol:
            return FastHttpProtocol(route, fallback, self._fast_connections, _MAX_BODY, content_type)

        self._servers.append(await asyncio.get_running_loop().create_server(protocol, sock=sock))
        return sock.getsockname()[1]

    def _rpc_route(self, method: bytes, path: bytes) -> Responder | None:
        """JSON-RPC ``POST /`` while no HTTP fault or request budget is active."""
        faults = self.faults
        if method != b"POST" or path != b"/" or faults.refuse_http or faults.http_delay_s or faults.rate_limit or self.rpc_limit:
            return None
        return self._rpc_responder

    def _rpc_responder(self, target: bytes, body: bytes) -> tuple[int, bytes]:
        return 200, self.handle_body(body)

    async def stop(self) -> None:
        """Close every connection and port."""
        if self._clock is not None:
            self._clock.cancel()
            self._clock = None
        for server in self._servers:
            server.close()
        for transport in list(self._fast_connections):
            transport.close()
        self._servers.clear()
        if self.chain is not None:
            self.pubsub.drop_all()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()

    def _tick(self, due: float) -> None:
        """One slot of the clock, on a timer callback (a task's sleep costs more, 100 times a second)."""
        loop = asyncio.get_running_loop()
        # A late tick does not catch up in a burst: slots are time, not a backlog.
        next_due = max(due + self.settings.slot_ms / 1000, loop.time())
        self._clock = loop.call_at(next_due, self._tick, next_due)
        if not self.faults.clock_stalled:
            self.advance()

    # -- controls (on the loop's thread) ----------------------------------------------------

    def advance(self, slots: int = 1) -> int:
        """Produce ``slots`` slots now (manual clock, or on top of the running clock)."""
        assert self.chain is not None
        return self.chain.advance(_count("slots", slots, 1))

    def set_faults(self, **changes: Any) -> Faults:
        """Change network faults by name (see :class:`Faults`); bad input changes nothing."""
        defaults = Faults()
        for name, value in changes.items():
            if not hasattr(defaults, name):
                raise ValueError(f"{name}: unknown fault")
            kind = type(getattr(defaults, name))
            if kind is bool:
                ok = isinstance(value, bool)
            else:
                ok = isinstance(value, int if kind is int else int | float) and not isinstance(value, bool)
            if not ok:
                raise ValueError(f"{name}: expected {kind.__name__}, got {value!r}")
        candidate = dataclasses.replace(self.faults, **changes)
        candidate.validate()
        self.faults = candidate
        if not candidate.rate_limit:
            self._limit_credit = 0.0
        return candidate

    def drop_transactions(self, count: int = 1) -> None:
        """The next ``count`` accepted transactions get a signature but never land."""
        assert self.chain is not None
        self.chain.drop_next = _count("count", count)

    def delay_transactions(self, count: int = 1, slots: int = 10) -> None:
        """The next ``count`` accepted transactions land ``slots`` slots late."""
        assert self.chain is not None
        self.chain.late_next, self.chain.late_slots = _count("count", count), _count("slots", slots, 1)

    def create_lookup_table(self, addresses: list[str]) -> str:
        """Create a table through the program holding ``addresses`` (base58); returns its address."""
        assert self.tables is not None
        return str(self.tables.create(_pubkeys(addresses)))

    def place_lookup_table(self, address: str, addresses: list[str]) -> str:
        """Place a table account at ``address`` holding ``addresses`` (a recorded table)."""
        assert self.tables is not None
        return str(self.tables.place(_pubkeys([address])[0], _pubkeys(addresses)).key)

    def drop_websockets(self) -> int:
        """Cut every WebSocket connection; returns how many were cut."""
        return self.pubsub.drop_all()

    def reset_faults(self) -> None:
        """Clear every fault."""
        self.faults = Faults()
        self._limit_credit = 0.0
        if self.chain is not None:
            self.chain.drop_next = self.chain.late_next = 0

    # -- HTTP -------------------------------------------------------------------------------

    async def _root(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self.pubsub.serve(request)
        if request.method != "POST":
            raise web.HTTPMethodNotAllowed(request.method, ["POST"])
        faults = self.faults
        if faults.refuse_http:
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPServiceUnavailable()
        if faults.http_delay_s:
            await asyncio.sleep(faults.http_delay_s)
        if faults.rate_limit:
            self._limit_credit += faults.rate_limit
            if self._limit_credit >= 1:
                self._limit_credit -= 1
                return web.Response(
                    status=429,
                    headers={"Retry-After": str(faults.retry_after_s)},
                    text="Too Many Requests",
                )
        body = await request.read()
        if self.rpc_limit is not None and not self.rpc_limit.admit(time.monotonic(), _calls_in(body)):
            return web.json_response(_TOO_MANY_RPC_CALLS, status=429)
        return web.Response(body=self.handle_body(body), content_type="application/json")

    def handle_body(self, body: bytes) -> bytes:
        """One JSON-RPC HTTP body (a request or a batch) -> the reply body."""
        try:
            payload = json.loads(body)
        except ValueError:
            return json_text(error_reply(PARSE_ERROR, "Parse error")).encode()
        if isinstance(payload, list):
            if not payload:
                return json_text(error_reply(INVALID_REQUEST, "Invalid request")).encode()
            return json_text([self.rpc.handle(item) for item in payload]).encode()
        return json_text(self.rpc.handle(payload)).encode()

    async def _admin(self, request: web.Request) -> web.Response:
        actions: dict[str, Callable[..., Any]] = {
            "advance": self.advance,
            "faults": self.set_faults,
            "reset": self.reset_faults,
            "drop-websockets": self.drop_websockets,
            "drop-transactions": self.drop_transactions,
            "delay-transactions": self.delay_transactions,
            "create-lookup-table": self.create_lookup_table,
            "place-lookup-table": self.place_lookup_table,
        }
        action = actions.get(request.match_info["action"])
        if action is None:
            return web.json_response({"error": f"unknown action; one of {sorted(actions)}"}, status=404)
        try:
            kwargs = await request.json() if request.can_read_body else {}
            if not isinstance(kwargs, dict):
                raise ValueError("body: expected a JSON object")
            result = action(**kwargs)
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if isinstance(result, Faults):
            result = dataclasses.asdict(result)
        return web.json_response({"result": result, "slot": self.chain.slot() if self.chain else 0})


def _pubkeys(values: Any) -> list[Pubkey]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError("addresses: expected a list of base58 public keys")
    try:
        return [Pubkey.from_string(v) for v in values]
    except ValueError:
        raise ValueError("addresses: expected a list of base58 public keys") from None


def _count(name: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= 1_000_000:
        raise ValueError(f"{name}: must be an integer between {minimum} and 1000000")
    return value


#: The public mainnet RPC's answer past its limit (recorded in solana-program-library#2784).
_TOO_MANY_RPC_CALLS = {
    "jsonrpc": "2.0",
    "error": {"code": 429, "message": "Too many requests for a specific RPC call, contact your app developer or support@rpcpool.com."},
    "id": 1,
}


def _calls_in(body: bytes) -> int:
    """The JSON-RPC calls in ``body``: a batch's entries, else one."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return 1
    return max(1, len(parsed)) if isinstance(parsed, list) else 1
