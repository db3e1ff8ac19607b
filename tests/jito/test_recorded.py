"""Jito's documented answers parse (tests/data/jito/README.md names each file's source)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from solders.pubkey import Pubkey
from solders.signature import Signature

from xorj_actors.jito import (
    InflightStatus,
    MalformedAnswer,
    TipPercentile,
    parse_bundle_statuses,
    parse_inflight_statuses,
    parse_tip_accounts,
    parse_tip_floor,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "jito"
DOCS_BUNDLE = "892b79ed49138bfb3aa5441f0df6e06ef34f9ee8f3976c15b323605bae0cf51d"


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def test_every_recorded_file_is_named_in_the_readme() -> None:
    readme = (DATA / "README.md").read_text()
    missing = [p.name for p in DATA.glob("*.json") if f"`{p.name}`" not in readme]
    assert not missing, f"files without a source in README.md: {missing}"


def test_the_eight_mainnet_tip_accounts() -> None:
    accounts = parse_tip_accounts(load("get-tip-accounts.json")["result"])
    assert len(accounts) == 8
    assert accounts[0] == Pubkey.from_string("96gYZGLnJYVFmbjzopPSU6QiEV5fGqZNyN9nmNhvrZU5")


@pytest.mark.parametrize(
    "result", [[], ["96gYZGLnJYVFmbjzopPSU6QiEV5fGqZNyN9nmNhvrZU5"] * 2, ["not-a-key"], {"accounts": []}],
    ids=["empty", "twice", "bad-key", "object"],
)
def test_bad_tip_accounts_are_refused(result: Any) -> None:
    with pytest.raises(MalformedAnswer):
        parse_tip_accounts(result)


def test_a_landed_bundle_status() -> None:
    slot, found = parse_bundle_statuses(load("get-bundle-statuses.json")["result"], [DOCS_BUNDLE])
    status = found[DOCS_BUNDLE]
    assert slot == 242806119 and status.slot == 242804011
    assert status.confirmation == "finalized" and status.err is None
    assert status.signatures[1] == Signature.from_string(
        "8t9hKYEYNbLvNqiSzP96S13XF1C2f1ro271Kdf7bkZ6EpjPLuDff1ywRy4gfaGSTubsM2FeYGDoT64ZwPm1cQUt"
    )


def test_the_documented_camel_case_confirmation_is_read_too_but_not_both() -> None:
    """The field list says ``confirmationStatus``, the example ``confirmation_status``."""
    answer = load("get-bundle-statuses.json")["result"]
    item = answer["value"][0]
    item["confirmationStatus"] = item.pop("confirmation_status")
    assert parse_bundle_statuses(answer, [DOCS_BUNDLE])[1][DOCS_BUNDLE].confirmation == "finalized"
    item["confirmation_status"] = "processed"
    with pytest.raises(MalformedAnswer, match="exactly one"):
        parse_bundle_statuses(answer, [DOCS_BUNDLE])


def test_a_failed_bundle_keeps_its_error_and_an_unasked_id_is_refused() -> None:
    answer = load("get-bundle-statuses.json")["result"]
    answer["value"][0]["err"] = {"Err": {"InstructionError": [0, {"Custom": 1}]}}
    assert parse_bundle_statuses(answer, [DOCS_BUNDLE])[1][DOCS_BUNDLE].err == {"Err": {"InstructionError": [0, {"Custom": 1}]}}
    with pytest.raises(MalformedAnswer, match="not asked"):
        parse_bundle_statuses(answer, ["ab" * 32])


def test_not_found_bundles_are_null_or_absent() -> None:
    assert parse_bundle_statuses({"context": {"slot": 9}, "value": [None, None]}, ["a", "b"]) == (9, {})
    assert parse_bundle_statuses({"context": {"slot": 9}, "value": []}, ["a"]) == (9, {})


def test_inflight_statuses() -> None:
    answer = load("get-inflight-bundle-statuses.json")["result"]
    asked = [item["bundle_id"] for item in answer["value"]]
    slot, found = parse_inflight_statuses(answer, asked)
    assert slot == 280999028 and len(found) == 5
    assert {b.status for b in found.values()} == {InflightStatus.INVALID}
    assert all(b.landed_slot is None for b in found.values())


@pytest.mark.parametrize(
    ("status", "landed_slot", "ok"),
    [("Landed", 7, True), ("Pending", None, True), ("Failed", None, True), ("Landed", None, False), ("Pending", 7, False), ("Dropped", None, False)],
)
def test_inflight_status_and_landed_slot_agree(status: str, landed_slot: int | None, ok: bool) -> None:
    answer = {"context": {"slot": 1}, "value": [{"bundle_id": "x", "status": status, "landed_slot": landed_slot}]}
    if ok:
        assert parse_inflight_statuses(answer, ["x"])[1]["x"].landed_slot == landed_slot
    else:
        with pytest.raises(MalformedAnswer):
            parse_inflight_statuses(answer, ["x"])


def test_the_tip_floor_in_lamports_to_the_nearest() -> None:
    floor = parse_tip_floor(load("tip-floor.json"))
    assert floor.time == "2024-09-01T12:58:00Z"
    assert [floor.at(p) for p in TipPercentile] == [6_001, 10_000, 36_197, 1_447_906, 10_007_999, 9_836]
    quicknode = parse_tip_floor(load("tip-floor-quicknode.json"))
    assert quicknode.at(TipPercentile.P75) == 1_000_000 and quicknode.at(TipPercentile.EMA50) == 9_952


@pytest.mark.parametrize(
    "change", [{"landed_tips_75th_percentile": -1.0}, {"landed_tips_75th_percentile": "0.001"}, {"time": ""}],
    ids=["negative", "string", "no-time"],
)
def test_a_bad_tip_floor_is_refused(change: dict[str, Any]) -> None:
    answer = load("tip-floor.json")
    answer[0].update(change)
    with pytest.raises(MalformedAnswer):
        parse_tip_floor(answer)
    with pytest.raises(MalformedAnswer):
        parse_tip_floor([])
