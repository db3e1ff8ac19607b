"""The localnet's quantitative engine: ``GET /internal/ranked-traders`` behind an API key.

Traders, their trust scores, metrics and target allocations come from a seeded scenario that moves
one round per ``round_s`` of wall time (or on command). On command the service serves bad data,
one fault mode at a time, for the next N requests or until cleared, so the engine's input
validation has something real to refuse. The schema is in docs/QUANT_API.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import os
import random
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from solders.keypair import Keypair

from xorj_actors.localnet.genesis import Genesis, TokenSpec
from xorj_actors.localnet.market_settings import DEV_QUANT_API_KEY, QuantSettings
from xorj_actors.localnet.pricing import SteppedClock

__all__ = [
    "API_KEY_HEADER",
    "FAULT_MODES",
    "QUANT_ENGINE",
    "SCENARIOS",
    "QuantEngine",
    "create_quant_app",
]

log = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
SCENARIOS = ("steady", "rotation", "risk_off")
FAULT_MODES = (
    "negative_weights",
    "weights_not_summing",
    "unknown_mint",
    "nan",
    "http_500",
    "timeout",
    "malformed_json",
)


def _seeded_address(text: str) -> str:
    return str(Keypair.from_seed(hashlib.sha256(text.encode()).digest()).pubkey())


#: A mint no genesis holds (the `unknown_mint` fault).
_UNKNOWN_MINT = _seeded_address("xorj-localnet quant: unknown mint")


def _weights(raw: dict[TokenSpec, float]) -> list[dict[str, Any]]:
    """Positive raw weights -> allocation entries rounded to 6 places, summing to 1 exactly in decimal."""
    total = sum(raw.values())
    micro = {t: round(w / total * 1_000_000) for t, w in raw.items()}
    largest = max(micro, key=lambda t: micro[t])
    micro[largest] += 1_000_000 - sum(micro.values())
    return [
        {"mint": str(t.mint), "symbol": t.symbol, "weight": m / 1_000_000}
        for t, m in sorted(micro.items(), key=lambda item: -item[1])
        if m > 0
    ]


class _Trader:
    __slots__ = ("drawdown", "index", "preference", "roi", "sharpe", "trades", "trust", "wallet", "win_rate")

    def __init__(self, seed: int, index: int, volatile: tuple[TokenSpec, ...]) -> None:
        rng = random.Random(f"{seed}:trader:{index}")
        self.index = index
        self.wallet = _seeded_address(f"{seed}:trader:{index}")
        self.trust = rng.uniform(82.0, 99.5)
        self.roi = rng.uniform(-0.1, 1.5)
        self.sharpe = rng.uniform(0.2, 3.5)
        self.drawdown = rng.uniform(0.03, 0.45)
        self.win_rate = rng.uniform(0.4, 0.75)
        self.trades = rng.randint(20, 2_000)
        self.preference = [rng.random() ** 2 for _ in volatile]


class QuantEngine:
    """The state behind the quant app; reach it in-process as ``app[QUANT_ENGINE]``."""

    def __init__(self, genesis: Genesis, settings: QuantSettings) -> None:
        self.settings = settings
        self._stable = genesis.stable
        self._volatile = tuple(t for t in genesis.tokens if not t.stable)
        self._traders = [_Trader(settings.seed, i, self._volatile) for i in range(settings.traders)]
        self._clock = SteppedClock(settings.round_s, settings.manual_clock)
        self._lock = threading.Lock()
        self._fault: str | None = None
        self._fault_left: int | None = None
        #: Set on shutdown so that a request held by the `timeout` fault lets the server stop.
        self.release = asyncio.Event()

    # -- scenario --------------------------------------------------------------------------

    @property
    def round(self) -> int:
        """The scenario's current round."""
        return self._clock.index()

    def advance(self, rounds: int = 1) -> int:
        """Move the scenario ``rounds`` forward and return the new round."""
        with self._lock:
            return self._clock.advance(rounds)

    def _state(self, t: _Trader, r: int) -> tuple[float, dict[str, float], dict[TokenSpec, float]]:
        rng = random.Random(f"{self.settings.seed}:{self.settings.scenario}:{r}:{t.index}")
        n, v = len(self._traders), len(self._volatile)
        drift = {"roi": rng.gauss(0, 0.02), "sharpe": rng.gauss(0, 0.05)}
        prefs = dict(zip(self._volatile, t.preference))
        stable_share = 0.2
        trust = t.trust + rng.gauss(0, 0.3)
        if self.settings.scenario == "steady":
            prefs = {tok: p * (1 + 0.05 * rng.gauss(0, 1)) for tok, p in prefs.items()}
        elif self.settings.scenario == "rotation":
            # Leadership and each trader's favourite token both move one place per round.
            trust = 84.0 + 15.5 * (0.5 + 0.5 * math.cos(2 * math.pi * (t.index - r) / n)) + rng.gauss(0, 0.1)
            favourite = self._volatile[(t.index + r) % v] if v else None
            prefs = {tok: (3.0 if tok is favourite else 0.5) * (0.5 + p) for tok, p in prefs.items()}
        else:  # risk_off: every round moves 40 % of what is still volatile into the stablecoin
            stable_share = 1 - 0.8 * 0.6**r
            trust -= 0.7 * r
            drift["roi"] -= 0.03 * r
            drift["sharpe"] -= 0.1 * r
        raw = {tok: (1 - stable_share) * p / (sum(prefs.values()) or 1) for tok, p in prefs.items()}
        raw[self._stable] = stable_share if v else 1.0
        return max(0.0, min(100.0, trust)), drift, {tok: w for tok, w in raw.items() if w > 0}

    def ranked_traders(self) -> dict[str, Any]:
        """The current round's ranked traders, as ``GET /internal/ranked-traders`` serves them."""
        r = self.round
        traders = []
        for t in self._traders:
            trust, drift, raw = self._state(t, r)
            traders.append(
                {
                    "walletAddress": t.wallet,
                    "trustScore": round(trust, 2),
                    "metrics": {
                        "roi": round(t.roi + drift["roi"], 4),
                        "sharpeRatio": round(t.sharpe + drift["sharpe"], 3),
                        "maxDrawdown": round(t.drawdown, 4),
                        "winRate": round(t.win_rate, 4),
                        "tradeCount": t.trades + 7 * r,
                        "periodDays": 90,
                    },
                    "targetAllocation": _weights(raw),
                }
            )
        traders.sort(key=lambda tr: (-tr["trustScore"], tr["walletAddress"]))
        return {
            "version": "1.0",
            "scenario": self.settings.scenario,
            "round": r,
            "generatedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "traders": [{"rank": rank, **tr} for rank, tr in enumerate(traders, 1)],
        }

    # -- faults ----------------------------------------------------------------------------

    def inject_fault(self, mode: str, count: int | None = None) -> None:
        """Serve ``mode`` for the next ``count`` authorised requests (``None``: until cleared)."""
        if mode not in FAULT_MODES:
            raise ValueError(f"mode: must be one of {', '.join(FAULT_MODES)}, got {mode!r}")
        if count is not None and count < 1:
            raise ValueError("count: must be >= 1")
        with self._lock:
            self._fault, self._fault_left = mode, count

    def clear_fault(self) -> None:
        """Serve good data again."""
        with self._lock:
            self._fault, self._fault_left = None, None

    @property
    def fault(self) -> tuple[str | None, int | None]:
        """The active fault mode and how many requests it still applies to."""
        with self._lock:
            return self._fault, self._fault_left

    def _take_fault(self) -> str | None:
        with self._lock:
            mode = self._fault
            if self._fault_left is not None:
                self._fault_left -= 1
                if self._fault_left == 0:
                    self._fault, self._fault_left = None, None
            return mode

    async def respond(self) -> web.Response:
        """One ``GET /internal/ranked-traders`` answer, with the next fault applied."""
        mode = self._take_fault()
        if mode == "http_500":
            return web.json_response({"error": "internal server error"}, status=500)
        if mode == "timeout":
            try:
                await asyncio.wait_for(self.release.wait(), self.settings.hang_s)
            except TimeoutError:
                pass
        payload = self.ranked_traders()
        top = payload["traders"][0]
        allocation = top["targetAllocation"]
        if mode == "negative_weights":
            # Still sums to 1: only the sign is wrong.
            stable = self._stable
            allocation.append({"mint": str(stable.mint), "symbol": stable.symbol, "weight": -0.25})
            allocation[0]["weight"] += 0.25
        elif mode == "weights_not_summing":
            for entry in allocation:
                entry["weight"] = round(entry["weight"] * 0.8, 6)
        elif mode == "unknown_mint":
            allocation[0]["mint"] = _UNKNOWN_MINT
        elif mode == "nan":
            allocation[0]["weight"] = math.nan
            top["trustScore"] = math.nan
        text = json.dumps(payload)
        if mode == "malformed_json":
            text = text[: len(text) // 2]
        return web.Response(text=text, content_type="application/json")


#: The :class:`QuantEngine` of a quant app, for in-process control.
QUANT_ENGINE = web.AppKey("quant_engine", QuantEngine)


def _api_key(settings: QuantSettings) -> str:
    key = os.environ.get(settings.api_key_env)
    if key:
        log.info("quant engine: API key from $%s", settings.api_key_env)
        return key
    log.warning("quant engine: $%s unset, using the public DEVELOPMENT key", settings.api_key_env)
    return DEV_QUANT_API_KEY


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


async def _admin_fault(request: web.Request) -> web.Response:
    engine = request.app[QUANT_ENGINE]
    if request.method == "DELETE":
        engine.clear_fault()
    else:
        try:
            body = await request.json()
            mode, count = body["mode"], body.get("count")
            if isinstance(count, bool) or not (count is None or isinstance(count, int)):
                raise ValueError("count: expected an integer or null")
            engine.inject_fault(mode, count)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return _bad_request(f"expected {{mode, count}}: {exc}")
    mode, left = engine.fault
    return web.json_response({"mode": mode, "remaining": left})


async def _admin_advance(request: web.Request) -> web.Response:
    try:
        rounds = (await request.json()).get("rounds", 1)
        if isinstance(rounds, bool) or not isinstance(rounds, int) or not 0 <= rounds <= 1_000_000:
            raise ValueError
    except (ValueError, AttributeError):
        return _bad_request("expected {rounds: integer between 0 and 1000000}")
    return web.json_response({"round": request.app[QUANT_ENGINE].advance(rounds)})


def create_quant_app(genesis: Genesis, settings: QuantSettings) -> web.Application:
    """The quantitative engine as an aiohttp application (mount it on a loopback port).

    Every route, the admin ones included, needs the API key in the ``X-API-Key`` header.
    """
    expected = _api_key(settings).encode()

    @web.middleware
    async def require_key(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        given = request.headers.get(API_KEY_HEADER, "").encode()
        if not hmac.compare_digest(given, expected):
            return web.json_response({"error": "missing or invalid API key"}, status=401)
        return await handler(request)

    engine = QuantEngine(genesis, settings)

    async def release(_: web.Application) -> None:
        engine.release.set()

    app = web.Application(middlewares=[require_key])
    app[QUANT_ENGINE] = engine
    app.on_shutdown.append(release)
    async def ranked_traders(_: web.Request) -> web.Response:
        return await engine.respond()

    app.router.add_get("/internal/ranked-traders", ranked_traders)
    app.router.add_route("POST", "/admin/fault", _admin_fault)
    app.router.add_route("DELETE", "/admin/fault", _admin_fault)
    app.router.add_post("/admin/advance", _admin_advance)
    return app
