"""The confirmation rule and the frame reader, pure: no engine, no node, no clock."""

from __future__ import annotations

import json

import pytest

from xorj_actors.chain import Commitment, OutcomeStatus, Tier
from xorj_actors.chain._book import (
    Landing,
    Verdict,
    deadline,
    depth_slot,
    expiry,
    judge,
    land,
    may_have_expired,
    subscriptions_needed,
    time_out,
)
from xorj_actors.chain._frames import Ignored, Malformed, Reply, SignatureNote, SlotNote, parse_frame

ONE = Tier(min_value_usd=0.0, confirmations=1, timeout_s=60.0)
TWO = Tier(min_value_usd=1_000.0, confirmations=2, timeout_s=180.0)
FINAL = Tier(min_value_usd=10_000.0, confirmations=3, timeout_s=300.0, finalized=True)
ERR = '{"InstructionError":[2,{"Custom":1}]}'


def test_the_enums_carry_the_wire_values() -> None:
    assert [s.value for s in OutcomeStatus] == ["confirmed", "failed", "expired", "timed_out"]
    assert [c.value for c in Commitment] == ["processed", "confirmed", "finalized"]
    assert f"{OutcomeStatus.TIMED_OUT}" == "timed_out" and json.dumps(OutcomeStatus.FAILED) == '"failed"'
    assert repr(OutcomeStatus.EXPIRED) == "'expired'"  # audited inside repr(message) as before


# -- sightings --------------------------------------------------------------------------------


def test_processed_proves_nothing() -> None:
    assert land(None, 5, None, Commitment.PROCESSED) is None
    seen = Landing(4, None)
    assert land(seen, 5, ERR, Commitment.PROCESSED) is seen


def test_confirmed_and_finalized_sightings_land_and_finality_is_never_lost() -> None:
    assert land(None, 5, ERR, Commitment.CONFIRMED) == Landing(5, ERR, finalized=False)
    final = land(None, 5, None, Commitment.FINALIZED)
    assert final == Landing(5, None, finalized=True)
    assert land(final, 6, None, Commitment.CONFIRMED) == Landing(6, None, finalized=True)


# -- confirmed and failed at the tier's depth -----------------------------------------------------


def test_nothing_is_decided_before_a_landing() -> None:
    assert judge(None, ONE, 1_000) is None


def test_confirmed_once_the_tip_is_n_slots_past_the_landing() -> None:
    landed = Landing(10, None)
    assert judge(landed, ONE, 10) is None  # depth 0
    assert judge(landed, ONE, 11) == Verdict(OutcomeStatus.CONFIRMED, 10, 1, None)
    assert judge(landed, TWO, 11) is None
    assert judge(landed, TWO, 12) == Verdict(OutcomeStatus.CONFIRMED, 10, 2, None)
    assert judge(landed, TWO, 15) == Verdict(OutcomeStatus.CONFIRMED, 10, 5, None)  # the depth seen


def test_failed_with_the_on_chain_error_waits_for_the_same_depth() -> None:
    landed = Landing(10, ERR)
    assert judge(landed, TWO, 11) is None
    assert judge(landed, TWO, 12) == Verdict(OutcomeStatus.FAILED, 10, 2, ERR)


def test_a_finalized_tier_waits_for_finality_whatever_the_depth() -> None:
    assert judge(Landing(10, None), FINAL, 100) is None
    assert depth_slot(Landing(10, None), FINAL) is None
    # Finalized counts as the tier's number, and meets any tier.
    assert judge(Landing(10, None, finalized=True), FINAL, 10) == Verdict(OutcomeStatus.CONFIRMED, 10, 3, None)
    assert judge(Landing(10, ERR, finalized=True), ONE, 10) == Verdict(OutcomeStatus.FAILED, 10, 1, ERR)


def test_the_depth_slot_is_when_the_verdict_can_next_change() -> None:
    landed = Landing(10, None)
    assert depth_slot(landed, TWO) == 12
    assert judge(landed, TWO, depth_slot(landed, TWO) - 1) is None
    assert judge(landed, TWO, depth_slot(landed, TWO)) is not None


def test_subscriptions_follow_what_each_tier_still_needs() -> None:
    assert subscriptions_needed([ONE, TWO], None) == {Commitment.CONFIRMED}
    assert subscriptions_needed([ONE, FINAL], None) == {Commitment.CONFIRMED, Commitment.FINALIZED}
    assert subscriptions_needed([ONE, FINAL], Landing(5, None)) == {Commitment.FINALIZED}
    assert subscriptions_needed([FINAL], Landing(5, None, finalized=True)) == set()
    assert subscriptions_needed([], None) == set()


# -- expired --------------------------------------------------------------------------------------


def test_expired_only_past_the_last_valid_height_and_unknown_to_the_node() -> None:
    verdict = expiry(None, found=False, height=11, last_valid_block_height=10)
    assert verdict is not None
    assert (verdict.status, verdict.slot, verdict.confirmations) == (OutcomeStatus.EXPIRED, None, 0)
    assert "block height 11" in verdict.error and "last valid block height 10" in verdict.error
    assert "safe to re-sign" in verdict.error


def test_not_expired_at_the_last_valid_height_itself() -> None:
    assert expiry(None, found=False, height=10, last_valid_block_height=10) is None


def test_not_expired_when_the_history_search_finds_it_even_at_processed() -> None:
    assert expiry(None, found=True, height=50, last_valid_block_height=10) is None


def test_not_expired_once_it_was_seen_landed() -> None:
    assert expiry(Landing(9, None), found=False, height=50, last_valid_block_height=10) is None


def test_an_expiry_check_is_only_worth_it_once_the_tip_passed_the_last_valid_height() -> None:
    assert not may_have_expired(10, 10)  # block height never exceeds the slot
    assert may_have_expired(10, 11)


# -- timed out ------------------------------------------------------------------------------------


def test_the_deadline_is_the_tiers_time_after_the_watch_was_received() -> None:
    assert deadline(100.0, ONE) == 160.0
    assert deadline(100.0, FINAL) == 400.0


def test_timed_out_without_a_landing_says_it_may_still_land() -> None:
    verdict = time_out(None, Tier(0.0, 1, 0.3), tip=50)
    assert (verdict.status, verdict.slot, verdict.confirmations) == (OutcomeStatus.TIMED_OUT, None, 0)
    assert verdict.error.startswith("no outcome within 0.3 s (tier >= $0: 1 confirmation, 0.3 s)")
    assert "may still land: do not re-sign" in verdict.error


def test_timed_out_after_landing_reports_the_slot_and_the_depth_reached() -> None:
    tier = Tier(100.0, 3, 0.3)
    verdict = time_out(Landing(7, None), tier, tip=8)
    assert (verdict.status, verdict.slot, verdict.confirmations) == (OutcomeStatus.TIMED_OUT, 7, 1)
    assert "landed in slot 7 at confirmed, not yet 3 confirmations deep" in verdict.error
    assert "not yet finalized" in time_out(Landing(7, None), FINAL, tip=20).error
    assert time_out(Landing(7, None), tier, tip=5).confirmations == 0  # never negative


def test_timed_out_names_a_failed_final_status_check() -> None:
    verdict = time_out(None, ONE, tip=0, poll_error="getBlockHeight: HTTP 429")
    assert verdict.error.endswith("(final status check failed: getBlockHeight: HTTP 429)")


# -- frames ---------------------------------------------------------------------------------------


def _note(method: str, result: object, sub: object = 7) -> str:
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": {"result": result, "subscription": sub}})


def test_received_signature_is_ignored() -> None:
    assert type(parse_frame(_note("signatureNotification", {"context": {"slot": 3}, "value": "receivedSignature"}), 4096)) is Ignored


def test_a_signature_notification_carries_slot_and_compact_error() -> None:
    frame = _note("signatureNotification", {"context": {"slot": 4}, "value": {"err": {"InstructionError": [2, {"Custom": 1}]}}})
    assert parse_frame(frame, 4096) == SignatureNote(7, 4, ERR, well_formed=True)
    assert parse_frame(_note("signatureNotification", {"context": {"slot": 4}, "value": {"err": None}}), 4096) == (
        SignatureNote(7, 4, None, well_formed=True)
    )


def test_a_signature_notification_of_an_unknown_shape_is_flagged_not_dropped() -> None:
    # Whether to count it depends on whether the subscription is ours: the session decides.
    for result in ({"context": {"slot": 4}, "value": 42}, {"context": {"slot": -1}, "value": {"err": None}},
                   {"value": {"err": None}}, {"context": {"slot": 4}, "value": {}}):
        note = parse_frame(_note("signatureNotification", result), 4096)
        assert type(note) is SignatureNote and not note.well_formed


@pytest.mark.parametrize(
    ("frame", "what"),
    [
        ("this is not JSON {", "not JSON"),
        (b"\x00\xff\x00", "not JSON"),
        ("[1, 2, 3]", "not a JSON object"),
        ('{"jsonrpc": "2.0"}', "neither a notification nor a reply"),
        ('{"jsonrpc": "2.0", "method": "signatureNotification", "params": "nope"}', "notification without params"),
        ('{"jsonrpc": "2.0", "method": "slotNotification", "params": {"result": {"slot": "x"}}}', "slotNotification without a slot"),
        (_note("signatureNotification", "nope"), "signatureNotification without a result object"),
        ("x" * 5_000, "5000 bytes, over max_frame_bytes"),
    ],
)
def test_malformed_frames_are_named(frame: str | bytes, what: str) -> None:
    parsed = parse_frame(frame, 4096)
    assert type(parsed) is Malformed and parsed.what == what


def test_slots_replies_and_other_methods() -> None:
    assert parse_frame(_note("slotNotification", {"parent": 4, "root": 0, "slot": 5}, 3), 4096) == SlotNote(3, 5)
    reply = parse_frame('{"jsonrpc": "2.0", "id": 9, "result": 12}', 4096)
    assert type(reply) is Reply and (reply.request_id, reply.result, reply.error) == (9, 12, None)
    assert type(parse_frame(_note("voteNotification", {}), 4096)) is Ignored
