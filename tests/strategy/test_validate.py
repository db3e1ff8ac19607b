"""The ranked-traders validator, alone: every invariant of docs/QUANT_API.md refuses the whole
response with a reason naming the field; good bodies from the localnet's generator pass."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.strategy.conftest import GENESIS, MINTS
from xorj_actors.localnet.market_settings import QuantSettings
from xorj_actors.localnet.quant import SCENARIOS, QuantEngine
from xorj_actors.strategy import InvalidStrategyData, parse_ranked_traders, strict_json
STABLE = str(GENESIS.stable.mint)
OTHER = [m for m in MINTS if m != STABLE]
WALLET = "9ojGnxnkToDFB2d8ittb7XQwLEZnMRM9R14t9MpCFcqX"


def ranked(scenario: str = "rotation", round_: int = 0, seed: int = 1, traders: int = 5) -> dict[str, Any]:
    engine = QuantEngine(GENESIS, QuantSettings(manual_clock=True, scenario=scenario, seed=seed, traders=traders))
    engine.advance(round_)
    return engine.ranked_traders()


GOOD = ranked()


def parse(payload: Any, tolerance: float = 1e-6) -> Any:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return parse_ranked_traders(body, tradable_mints=MINTS, weight_tolerance=tolerance, fetched_at=1.5)


def refused(payload: Any, match: str, tolerance: float = 1e-6) -> str:
    with pytest.raises(InvalidStrategyData) as info:
        parse(payload, tolerance)
    assert match in str(info.value), str(info.value)
    return str(info.value)


def changed(path: tuple[Any, ...], value: Any, base: dict[str, Any] = GOOD) -> dict[str, Any]:
    """A deep copy of ``base`` with the item at ``path`` replaced (``...`` deletes it)."""
    payload = copy.deepcopy(base)
    node = payload
    for key in path[:-1]:
        node = node[key]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return payload


def one_trader(allocation: list[dict[str, Any]], trust: float = 96.0) -> dict[str, Any]:
    payload = copy.deepcopy(GOOD)
    payload["traders"] = [dict(payload["traders"][0], rank=1, trustScore=trust, targetAllocation=allocation)]
    return payload


def test_a_good_body_becomes_a_snapshot_field_for_field() -> None:
    snap = parse(GOOD)
    assert (snap.version, snap.scenario, snap.round, snap.generated_at, snap.fetched_at) == (
        GOOD["version"], GOOD["scenario"], GOOD["round"], GOOD["generatedAt"], 1.5)
    for got, want in zip(snap.traders, GOOD["traders"], strict=True):
        m = want["metrics"]
        assert (got.rank, got.wallet, got.trust_score) == (want["rank"], want["walletAddress"], want["trustScore"])
        assert (got.roi, got.sharpe_ratio, got.max_drawdown, got.win_rate, got.trade_count, got.period_days) == (
            m["roi"], m["sharpeRatio"], m["maxDrawdown"], m["winRate"], m["tradeCount"], m["periodDays"])
        assert [(a.mint, a.weight) for a in got.allocation] == [(a["mint"], a["weight"]) for a in want["targetAllocation"]]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=st.sampled_from(SCENARIOS), round_=st.integers(0, 40), seed=st.integers(0, 10_000), n=st.integers(1, 30))
def test_every_round_of_every_scenario_passes(scenario: str, round_: int, seed: int, n: int) -> None:
    payload = ranked(scenario, round_, seed, n)
    snap = parse(payload)
    assert [t.rank for t in snap.traders] == list(range(1, n + 1))
    assert all(abs(sum(a.weight for a in t.allocation) - 1) <= 1e-6 for t in snap.traders)


# -- strict JSON -------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants_are_refused(token: str) -> None:
    text = json.dumps(GOOD).replace('"trustScore": ' + json.dumps(GOOD["traders"][1]["trustScore"]), f'"trustScore": {token}', 1)
    assert token in text
    refused(text.encode(), f"not strict JSON: {token} is not a JSON value")


def test_a_number_that_overflows_to_infinity_is_refused() -> None:
    text = json.dumps(GOOD).replace('"roi": ' + json.dumps(GOOD["traders"][0]["metrics"]["roi"]), '"roi": 1e400', 1)
    refused(text.encode(), "not strict JSON: 1e400 is not a finite number")


def test_duplicate_keys_are_refused() -> None:
    text = json.dumps(GOOD).replace('"round": 0', '"round": 0, "round": 7', 1)
    refused(text.encode(), "not strict JSON: duplicate key 'round'")


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"", "malformed JSON"),
        (json.dumps(GOOD).encode()[:-1], "malformed JSON"),
        (b"\xef\xbb\xbf" + json.dumps(GOOD).encode(), "malformed JSON"),  # a BOM
        (b"\xff" + json.dumps(GOOD).encode(), "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "malformed JSON"),  # nesting deeper than the parser goes
        (b'{"round": ' + b"9" * 5000 + b"}", "malformed JSON"),  # past Python's int digit limit
        (json.dumps([GOOD]).encode(), "response: expected an object, got list"),
    ],
)
def test_bodies_that_are_not_one_json_object_are_refused(body: bytes, match: str) -> None:
    refused(body, match)


def test_strict_json_alone_accepts_plain_json() -> None:
    assert strict_json(b'{"a": [1, 2.5, -3e2, true, null, "x"]}') == {"a": [1, 2.5, -300.0, True, None, "x"]}


# -- top level ---------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["version", "scenario", "round", "generatedAt", "traders"])
def test_every_top_level_field_is_required(key: str) -> None:
    refused(changed((key,), ...), f"{key}: missing")


@pytest.mark.parametrize(
    ("version", "ok"),
    [("1.0", True), ("1.7", True), ("1", True), ("1.2.3", True), ("2.0", False), ("0.9", False),
     ("v1.0", False), ("1.0-beta", False), ("01.0", False), (1.0, False), ("", False)],
)
def test_only_known_major_versions_pass(version: Any, ok: bool) -> None:
    payload = changed(("version",), version)
    if ok:
        assert parse(payload).version == version
    else:
        refused(payload, "version: ")


@pytest.mark.parametrize(
    ("value", "ok"),
    [("2026-11-21T20:43:27Z", True), ("2026-11-21T20:43:27.123456Z", True), ("2026-11-21T20:43:27+00:00", True),
     ("2026-11-21T20:43:27+01:00", False), ("2026-11-21 20:43:27Z", False), ("2026-02-30T00:00:00Z", False),
     ("2026-11-21T20:43:27", False), (1763757807, False), ("2026-11-21T20:43:27.1234567Z", False)],
)
def test_generated_at_is_rfc3339_utc(value: Any, ok: bool) -> None:
    payload = changed(("generatedAt",), value)
    if ok:
        assert parse(payload).generated_at == value
    else:
        refused(payload, "generatedAt: ")


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        (("round",), -1, "round: -1 is not in [0, "),
        (("round",), 1.0, "round: expected an integer, got 1.0"),
        (("round",), True, "round: expected an integer, got True"),
        (("round",), "3", "round: expected an integer, got '3'"),
        (("scenario",), "", "scenario: expected 1 to 128 printable characters"),
        (("scenario",), "a\nb", "scenario: expected 1 to 128 printable characters"),
        (("scenario",), 7, "scenario: expected a string"),
        (("traders",), [], "traders: empty"),
        (("traders",), {}, "traders: expected an array, got dict"),
        (("traders", 0), "x", "traders[0]: expected an object, got str"),
    ],
)
def test_top_level_values_are_checked(path: tuple[Any, ...], value: Any, match: str) -> None:
    refused(changed(path, value), match)


def test_unknown_fields_are_ignored() -> None:
    payload = copy.deepcopy(GOOD)
    payload["newField"] = {"x": 1}
    payload["traders"][0]["badge"] = "gold"
    payload["traders"][0]["metrics"]["sortino"] = 2.0
    payload["traders"][0]["targetAllocation"][0]["venue"] = "jupiter"
    assert parse(payload) == parse(GOOD)


# -- traders -----------------------------------------------------------------------------------

TRADER_KEYS = ["rank", "walletAddress", "trustScore", "metrics", "targetAllocation"]
METRIC_KEYS = ["roi", "sharpeRatio", "maxDrawdown", "winRate", "tradeCount", "periodDays"]


@settings(max_examples=40, deadline=None)
@given(i=st.integers(0, len(GOOD["traders"]) - 1), key=st.sampled_from(TRADER_KEYS + METRIC_KEYS + ["mint", "symbol", "weight"]))
def test_every_trader_field_is_required(i: int, key: str) -> None:
    if key in TRADER_KEYS:
        path, where = ("traders", i, key), f"traders[{i}].{key}"
    elif key in METRIC_KEYS:
        path, where = ("traders", i, "metrics", key), f"traders[{i}].metrics.{key}"
    else:
        path, where = ("traders", i, "targetAllocation", 0, key), f"traders[{i}].targetAllocation[0].{key}"
    refused(changed(path, ...), f"{where}: missing")


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        (("rank",), 2, "traders[0].rank: expected 1 (ranks are 1..N in order), got 2"),
        (("rank",), 0, "traders[0].rank: 0 is not in [1, "),
        (("rank",), 1.0, "traders[0].rank: expected an integer"),
        (("walletAddress",), "0" * 44, "traders[0].walletAddress: not a valid base58 public key"),
        (("walletAddress",), "abc", "traders[0].walletAddress: expected a base58 public key"),
        (("walletAddress",), 5, "traders[0].walletAddress: expected a base58 public key"),
        (("trustScore",), 100.01, "traders[0].trustScore: 100.01 is not in [0, 100]"),
        (("trustScore",), -0.01, "traders[0].trustScore: -0.01 is not in [0, 100]"),
        (("trustScore",), "99", "traders[0].trustScore: expected a number, got '99'"),
        (("trustScore",), True, "traders[0].trustScore: expected a number, got True"),
        (("trustScore",), None, "traders[0].trustScore: expected a number, got None"),
        (("metrics",), [], "traders[0].metrics: expected an object, got list"),
        (("metrics", "maxDrawdown"), 1.2, "traders[0].metrics.maxDrawdown: 1.2 is not in [0, 1]"),
        (("metrics", "maxDrawdown"), -0.1, "traders[0].metrics.maxDrawdown: -0.1 is not in [0, 1]"),
        (("metrics", "winRate"), 1.0001, "traders[0].metrics.winRate: 1.0001 is not in [0, 1]"),
        (("metrics", "tradeCount"), -1, "traders[0].metrics.tradeCount: -1 is not in [0, "),
        (("metrics", "tradeCount"), 5.0, "traders[0].metrics.tradeCount: expected an integer, got 5.0"),
        (("metrics", "periodDays"), 0, "traders[0].metrics.periodDays: 0 is not in [1, "),
        (("metrics", "roi"), "0.4", "traders[0].metrics.roi: expected a number"),
        (("metrics", "roi"), 10**400, "traders[0].metrics.roi: "),
        (("targetAllocation",), [], "traders[0].targetAllocation: empty"),
        (("targetAllocation",), {}, "traders[0].targetAllocation: expected an array"),
    ],
)
def test_trader_values_are_checked(path: tuple[Any, ...], value: Any, match: str) -> None:
    refused(changed(("traders", 0, *path), value), match)


def test_negative_metrics_where_the_schema_allows_them_pass() -> None:
    payload = changed(("traders", 0, "metrics", "roi"), -0.6)
    payload["traders"][0]["metrics"]["sharpeRatio"] = -1.2
    t = parse(payload).traders[0]
    assert (t.roi, t.sharpe_ratio) == (-0.6, -1.2)


def test_integers_where_numbers_are_expected_pass() -> None:
    payload = changed(("traders", 0, "trustScore"), 100)
    payload["traders"][0]["metrics"]["maxDrawdown"] = 0
    t = parse(payload).traders[0]
    assert (t.trust_score, t.max_drawdown) == (100.0, 0.0) and type(t.trust_score) is float


def test_trust_scores_at_the_bounds_pass() -> None:
    assert parse(changed(("traders", 0, "trustScore"), 0.0)).traders[0].trust_score == 0.0
    assert parse(changed(("traders", 0, "trustScore"), 100.0)).traders[0].trust_score == 100.0


def test_wallets_must_be_distinct() -> None:
    payload = changed(("traders", 3, "walletAddress"), GOOD["traders"][1]["walletAddress"])
    refused(payload, f"traders[3].walletAddress: {GOOD['traders'][1]['walletAddress']} is also traders[1]'s")


def test_ranks_must_have_no_gap_or_swap() -> None:
    payload = copy.deepcopy(GOOD)
    payload["traders"][1], payload["traders"][2] = payload["traders"][2], payload["traders"][1]
    refused(payload, "traders[1].rank: expected 2 (ranks are 1..N in order), got 3")
    payload = copy.deepcopy(GOOD)
    del payload["traders"][2]
    refused(payload, "traders[2].rank: expected 3 (ranks are 1..N in order), got 4")


# -- allocations -------------------------------------------------------------------------------


def test_a_single_mint_at_weight_one_passes() -> None:
    (t,) = parse(one_trader([{"mint": STABLE, "symbol": "USDC", "weight": 1}])).traders
    assert [(a.mint, a.weight) for a in t.allocation] == [(STABLE, 1.0)]


@pytest.mark.parametrize(
    ("weights", "ok"),
    [
        ((0.5, 0.5), True),
        ((0.5, 0.5000009), True),  # 0.9e-6 over: within the tolerance
        ((0.5, 0.4999991), True),
        ((0.5, 0.5000011), False),  # 1.1e-6 over
        ((0.5, 0.4999989), False),
        ((0.4, 0.4), False),
    ],
)
def test_weights_sum_to_one_within_the_tolerance(weights: tuple[float, float], ok: bool) -> None:
    payload = one_trader([{"mint": m, "symbol": "X", "weight": w} for m, w in zip((STABLE, OTHER[0]), weights)])
    if ok:
        parse(payload)
    else:
        refused(payload, "traders[0].targetAllocation: weights sum to ")


def test_the_tolerance_is_the_configured_one() -> None:
    payload = one_trader([{"mint": STABLE, "symbol": "X", "weight": 0.5}, {"mint": OTHER[0], "symbol": "Y", "weight": 0.501}])
    refused(payload, "not 1 within 1e-06")
    parse(payload, tolerance=0.002)


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ({"mint": OTHER[0], "symbol": "Y", "weight": 0}, "targetAllocation[1].weight: 0 is not in (0, 1]"),
        ({"mint": OTHER[0], "symbol": "Y", "weight": -0.25}, "targetAllocation[1].weight: -0.25 is not in (0, 1]"),
        ({"mint": OTHER[0], "symbol": "Y", "weight": 1.5}, "targetAllocation[1].weight: 1.5 is not in (0, 1]"),
        ({"mint": OTHER[0], "symbol": "Y", "weight": "0.5"}, "targetAllocation[1].weight: expected a number"),
        ({"mint": OTHER[0], "symbol": None, "weight": 0.5}, "targetAllocation[1].symbol: expected a string"),
        ({"mint": STABLE, "symbol": "USDC", "weight": 0.5}, f"targetAllocation[1].mint: {STABLE} appears twice"),
        ({"mint": WALLET, "symbol": "FAKE", "weight": 0.5}, "targetAllocation[1].mint: '9ojG"),
        ({"mint": "not a mint", "symbol": "FAKE", "weight": 0.5}, "is not a mint the engine trades"),
        ({"mint": 17, "symbol": "FAKE", "weight": 0.5}, "targetAllocation[1].mint: 17 is not a mint the engine trades"),
        ("USDC", "targetAllocation[1]: expected an object, got str"),
    ],
)
def test_allocation_entries_are_checked(entry: Any, match: str) -> None:
    refused(one_trader([{"mint": STABLE, "symbol": "USDC", "weight": 0.5}, entry]), match)


def test_a_known_symbol_on_an_unknown_mint_is_still_refused() -> None:
    """Trust the mint, never the symbol."""
    refused(one_trader([{"mint": WALLET, "symbol": "USDC", "weight": 1.0}]), "is not a mint the engine trades")


@settings(max_examples=60, deadline=None)
@given(
    i=st.integers(0, len(GOOD["traders"]) - 1),
    where=st.sampled_from(["trustScore", "roi", "sharpeRatio", "maxDrawdown", "winRate", "weight"]),
    token=st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999"]),
)
def test_a_non_finite_number_anywhere_refuses_the_whole_response(i: int, where: str, token: str) -> None:
    marker = "__MARK__"
    if where == "trustScore":
        payload = changed(("traders", i, "trustScore"), marker)
    elif where == "weight":
        payload = changed(("traders", i, "targetAllocation", 0, "weight"), marker)
    else:
        payload = changed(("traders", i, "metrics", where), marker)
    text = json.dumps(payload).replace(f'"{marker}"', token)
    refused(text.encode(), "not strict JSON: ")
