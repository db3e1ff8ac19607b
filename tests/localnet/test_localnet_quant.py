"""The local quantitative engine over real HTTP: auth, schema, scenarios and bad-data faults."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from solders.pubkey import Pubkey

from tests.conftest import free_port
from xorj_actors._settings import ConfigError, build_section
from xorj_actors.localnet.genesis import build_genesis
from xorj_actors.localnet.market_settings import DEV_QUANT_API_KEY, QuantSettings
from xorj_actors.localnet.quant import FAULT_MODES, QUANT_ENGINE, SCENARIOS, QuantEngine, create_quant_app
from xorj_actors.localnet.settings import LocalnetSettings

GENESIS = build_genesis(LocalnetSettings())
MINTS = {str(t.mint) for t in GENESIS.tokens}
STABLE = str(GENESIS.stable.mint)
KEY_ENV = "XORJ_TEST_QUANT_KEY"
MANUAL = QuantSettings(api_key_env=KEY_ENV, manual_clock=True, traders=12, hang_s=5.0)
AUTH = {"X-API-Key": DEV_QUANT_API_KEY}
RANKED = "/internal/ranked-traders"


class Quant:
    """A running quant app and an HTTP session speaking to it."""

    def __init__(self, url: str, http: aiohttp.ClientSession, engine: QuantEngine) -> None:
        self.url, self.http, self.engine = url, http, engine

    async def raw(self, path: str = RANKED, method: str = "GET", **kw: Any) -> tuple[int, str]:
        kw.setdefault("headers", AUTH)
        async with self.http.request(method, self.url + path, **kw) as resp:
            return resp.status, await resp.text()

    async def ranked(self) -> dict[str, Any]:
        status, text = await self.raw()
        assert status == 200, text
        return json.loads(text)


@pytest.fixture
async def serve(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    monkeypatch.delenv(KEY_ENV, raising=False)
    servers: list[tuple[TestServer, aiohttp.ClientSession]] = []

    async def start(settings: QuantSettings = MANUAL) -> Quant:
        app = create_quant_app(GENESIS, settings)
        server = TestServer(app, host="127.0.0.1", port=free_port())
        await server.start_server()
        http = aiohttp.ClientSession()
        servers.append((server, http))
        return Quant(str(server.make_url("")), http, app[QUANT_ENGINE])

    yield start
    for server, http in servers:
        await http.close()
        await server.close()


@pytest.fixture
async def quant(serve: Any) -> Quant:
    return await serve()


def _check_schema(payload: dict[str, Any], traders: int) -> None:
    assert payload["version"] == "1.0" and payload["scenario"] in SCENARIOS
    assert isinstance(payload["round"], int) and payload["generatedAt"].endswith("Z")
    rows = payload["traders"]
    assert [t["rank"] for t in rows] == list(range(1, traders + 1))
    scores = [t["trustScore"] for t in rows]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 100 for s in scores)
    assert len({t["walletAddress"] for t in rows}) == traders
    for t in rows:
        assert str(Pubkey.from_string(t["walletAddress"])) == t["walletAddress"]
        m = t["metrics"]
        assert set(m) == {"roi", "sharpeRatio", "maxDrawdown", "winRate", "tradeCount", "periodDays"}
        assert 0 <= m["maxDrawdown"] <= 1 and 0 <= m["winRate"] <= 1
        assert isinstance(m["tradeCount"], int) and m["tradeCount"] > 0
        weights = [a["weight"] for a in t["targetAllocation"]]
        assert all(w > 0 for w in weights) and math.isclose(sum(weights), 1.0, abs_tol=1e-9)
        assert {a["mint"] for a in t["targetAllocation"]} <= MINTS
        assert len(t["targetAllocation"]) == len({a["mint"] for a in t["targetAllocation"]})


# -- auth ----------------------------------------------------------------------------------------


async def test_requests_without_the_right_key_get_401(quant: Quant) -> None:
    for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}, {"Authorization": DEV_QUANT_API_KEY}):
        status, text = await quant.raw(headers=headers)
        assert status == 401 and "API key" in json.loads(text)["error"]
    status, _ = await quant.raw("/admin/fault", "POST", json={"mode": "http_500"}, headers={})
    assert status == 401
    assert quant.engine.fault == (None, None)


async def test_key_from_the_environment_replaces_the_dev_key(
    serve: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cr3t-from-env"
    monkeypatch.setenv(KEY_ENV, secret)
    with caplog.at_level(logging.DEBUG):
        quant = await serve()
        assert (await quant.raw(headers={"X-API-Key": secret}))[0] == 200
        assert (await quant.raw(headers=AUTH))[0] == 401
    assert secret not in caplog.text and KEY_ENV in caplog.text


# -- schema and scenarios ---------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_every_round_of_every_scenario_follows_the_schema(serve: Any, scenario: str) -> None:
    quant = await serve(dataclasses.replace(MANUAL, scenario=scenario))
    for r in range(6):
        payload = await quant.ranked()
        assert payload["round"] == r and payload["scenario"] == scenario
        _check_schema(payload, 12)
        quant.engine.advance()


def _allocations(payload: dict[str, Any]) -> dict[str, dict[str, float]]:
    rows = payload["traders"]
    return {t["walletAddress"]: {a["mint"]: a["weight"] for a in t["targetAllocation"]} for t in rows}


async def test_rotation_moves_the_leader_and_the_allocations(quant: Quant) -> None:
    leaders, allocations = [], []
    for _ in range(4):
        payload = await quant.ranked()
        leaders.append(payload["traders"][0]["walletAddress"])
        allocations.append(_allocations(payload))
        status, body = await quant.raw("/admin/advance", "POST", json={"rounds": 1})
        assert status == 200
    assert len(set(leaders)) == 4
    for before, after in zip(allocations, allocations[1:]):
        for wallet in before:  # each trader's favourite token moved
            assert max(abs(before[wallet].get(m, 0) - after[wallet].get(m, 0)) for m in MINTS) > 0.1


async def test_risk_off_moves_every_trader_into_the_stablecoin(serve: Any) -> None:
    quant = await serve(dataclasses.replace(MANUAL, scenario="risk_off"))
    shares, trust = [], []
    for _ in range(5):
        payload = await quant.ranked()
        shares.append(min(a[STABLE] for a in _allocations(payload).values()))
        trust.append(max(t["trustScore"] for t in payload["traders"]))
        quant.engine.advance()
    assert shares == sorted(shares) and shares[-1] > 0.85 > 0.3 > shares[0]
    assert trust[-1] < trust[0]


async def test_steady_drifts_a_little(serve: Any) -> None:
    quant = await serve(dataclasses.replace(MANUAL, scenario="steady"))
    first = _allocations(await quant.ranked())
    quant.engine.advance()
    second = _allocations(await quant.ranked())
    moves = [abs(first[w].get(m, 0) - second[w].get(m, 0)) for w in first for m in MINTS]
    assert 0 < max(moves) < 0.1


async def test_scenarios_are_deterministic_given_a_seed(serve: Any) -> None:
    a, b = await serve(), await serve()
    c = await serve(dataclasses.replace(MANUAL, seed=2))
    for q in (a, b, c):
        q.engine.advance(3)
    pa, pb, pc = await a.ranked(), await b.ranked(), await c.ranked()
    assert pa["traders"] == pb["traders"]
    assert {t["walletAddress"] for t in pa["traders"]}.isdisjoint(t["walletAddress"] for t in pc["traders"])


async def test_rounds_advance_on_a_timer(serve: Any) -> None:
    quant = await serve(QuantSettings(api_key_env=KEY_ENV, round_s=0.01, traders=3))
    first = (await quant.ranked())["round"]
    while quant.engine.round == first:
        await asyncio.sleep(0.01)
    assert (await quant.ranked())["round"] > first


# -- bad data on command ------------------------------------------------------------------------


def _weights_of_top(payload: dict[str, Any]) -> list[float]:
    return [a["weight"] for a in payload["traders"][0]["targetAllocation"]]


def _bad_weights_negative(text: str) -> bool:
    return min(_weights_of_top(json.loads(text))) < 0


def _bad_weights_sum(text: str) -> bool:
    return abs(sum(_weights_of_top(json.loads(text))) - 1) > 0.05


def _bad_mint(text: str) -> bool:
    return any(a["mint"] not in MINTS for a in json.loads(text)["traders"][0]["targetAllocation"])


def _bad_nan(text: str) -> bool:
    top = json.loads(text)["traders"][0]
    # NaN is not JSON: a strict parser refuses it, a lenient one yields a float NaN.
    try:
        json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    except ValueError:
        return math.isnan(top["trustScore"]) and any(math.isnan(w) for w in _weights_of_top(json.loads(text)))
    return False


def _bad_json(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return True
    return False


BODY_FAULTS = {
    "negative_weights": _bad_weights_negative,
    "weights_not_summing": _bad_weights_sum,
    "unknown_mint": _bad_mint,
    "nan": _bad_nan,
    "malformed_json": _bad_json,
}


@pytest.mark.parametrize("mode", sorted(BODY_FAULTS))
async def test_bad_body_for_the_next_request_only(quant: Quant, mode: str) -> None:
    status, body = await quant.raw("/admin/fault", "POST", json={"mode": mode, "count": 1})
    assert status == 200 and json.loads(body) == {"mode": mode, "remaining": 1}
    status, text = await quant.raw()
    assert status == 200 and BODY_FAULTS[mode](text)
    _check_schema(await quant.ranked(), 12)  # the next one is good again


async def test_http_500_until_cleared(quant: Quant) -> None:
    quant.engine.inject_fault("http_500")
    for _ in range(3):
        assert (await quant.raw())[0] == 500
    status, body = await quant.raw("/admin/fault", "DELETE")
    assert status == 200 and json.loads(body)["mode"] is None
    _check_schema(await quant.ranked(), 12)


async def test_timeout_outlasts_the_client(quant: Quant) -> None:
    quant.engine.inject_fault("timeout", 1)
    with pytest.raises(asyncio.TimeoutError):
        await quant.raw(timeout=aiohttp.ClientTimeout(total=0.3))
    _check_schema(await quant.ranked(), 12)  # a held request does not block the others


async def test_faults_for_n_requests(quant: Quant) -> None:
    quant.engine.inject_fault("unknown_mint", 3)
    texts = [(await quant.raw())[1] for _ in range(4)]
    assert [_bad_mint(t) for t in texts] == [True, True, True, False]


@pytest.mark.parametrize(
    "body",
    [{"mode": "fire"}, {"mode": "nan", "count": 0}, {"mode": "nan", "count": "2"}, {"count": 2}, [1]],
)
async def test_bad_fault_commands_are_refused_and_change_nothing(quant: Quant, body: Any) -> None:
    quant.engine.inject_fault("http_500", 5)
    status, text = await quant.raw("/admin/fault", "POST", json=body)
    assert status == 400 and json.loads(text)["error"]
    assert quant.engine.fault == ("http_500", 5)


def test_fault_modes_are_the_documented_ones() -> None:
    assert set(FAULT_MODES) == {*BODY_FAULTS, "http_500", "timeout"}
    engine = QuantEngine(GENESIS, MANUAL)
    with pytest.raises(ValueError, match="mode"):
        engine.inject_fault("bogus")
    assert engine.fault == (None, None)


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"traders": 0}, "traders"),
        ({"round_s": 0}, "round_s"),
        ({"scenario": "boom"}, "scenario"),
        ({"api_key_env": ""}, "api_key_env"),
        ({"hang_s": -1}, "hang_s"),
    ],
)
def test_bad_quant_settings_name_the_key(table: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=f"localnet.quant.{key}"):
        build_section(QuantSettings, table, "localnet.quant")


def test_the_documented_example_follows_the_schema() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "QUANT_API.md").read_text(encoding="utf-8")
    example = json.loads(doc.split("```json", 1)[1].split("```", 1)[0])
    _check_schema(example, 2)
