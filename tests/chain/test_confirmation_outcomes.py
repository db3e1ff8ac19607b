"""Outcomes against the real localnet (manual clock): confirmed, failed, expired, timed_out, tiers,
duplicates, unwatch, refusals, the halt protocol and the actor's end."""

from __future__ import annotations

import json
import threading
import time

import pytest

from supervisors import Runtime
from tests.chain.conftest import (
    FAST,
    Client,
    blockhash,
    health_of,
    running_board,
    send,
    sig,
    start_confirmation,
    status,
    subscribed,
    subscriptions,
    tiers,
    wait_connected,
    watch,
    watch_state,
    with_settings,
)
from tests.helpers import wait_until
from tests.plugins.localnet import start_localnet
from xorj_actors.audit import AUDIT_NAME, AuditEvent
from xorj_actors.chain import (
    CONFIRMATION_NAME,
    Confirmation,
    GetConfirmationHealth,
    SignatureOutcome,
    Unwatch,
    WatchRefused,
)
from xorj_actors.kill_switch import KILL_SWITCH_NAME
from xorj_actors.localnet import Localnet
from xorj_actors.messages import Halt, HaltAck, HaltMode

#: How long an absence is watched for. The event it rules out would arrive in milliseconds.
SETTLE_S = 0.3


def assert_no_outcome(client: Client, signature: str) -> None:
    time.sleep(SETTLE_S)
    assert signature not in client.outcomes(), client.outcomes()[signature]


@pytest.fixture
def short_blockhashes():
    """A localnet whose blockhashes live 10 blocks, so expiry takes a few slots."""
    ln = start_localnet(blockhash_valid_blocks=10)
    try:
        yield ln
    finally:
        ln.stop()


def test_a_swap_is_confirmed_at_one_confirmation(runtime: Runtime, client: Client, localnet: Localnet, make_swap):
    calls: list[tuple[str, float]] = []
    ref = start_confirmation(localnet, on_outcome=lambda status, elapsed: calls.append((status, elapsed)))
    wait_connected(ref)
    assert runtime.whereis(CONFIRMATION_NAME) == ref
    localnet.advance(2)
    bh, last_valid = blockhash(localnet)
    tx = make_swap(bh)
    s = watch(ref, client, tx, value=50.0, last_valid=last_valid, trade_id="t-1")
    wait_until(subscribed(ref, 1), what="the signature subscription")
    send(localnet, [tx])
    assert_no_outcome(client, s)  # processed is not confirmed
    localnet.advance()
    outcome = client.wait_outcome(s)
    assert (outcome.trade_id, outcome.status, outcome.slot, outcome.confirmations) == ("t-1", "confirmed", 2, 1)
    assert outcome.error is None
    assert 0 < outcome.elapsed_s < 10
    wait_until(lambda: calls, what="the on_outcome callback")  # called just after the outcome is told
    assert calls == [("confirmed", outcome.elapsed_s)]
    health = ref.ask(GetConfirmationHealth(), timeout=5)
    assert health.in_flight == 0 and health.connected and health.slot == 3 and health.reconnects == 0


def test_higher_tiers_wait_for_more_confirmations_and_finality(runtime, client, localnet, make_swap) -> None:
    ref = start_confirmation(localnet)
    wait_connected(ref)
    bh, last_valid = blockhash(localnet)
    two, final = make_swap(bh, amount_in=1), make_swap(bh, amount_in=2)
    s_two = watch(ref, client, two, value=1_000.0, last_valid=last_valid)  # 2 confirmations
    s_final = watch(ref, client, final, value=10_000.0, last_valid=last_valid)  # 3, finalized
    wait_until(subscribed(ref, 2))
    send(localnet, [two, final])
    localnet.advance()  # both at confirmed, depth 1
    wait_until(lambda: watch_state(ref, s_two).landed_slot is not None, what="the confirmed notification")
    assert_no_outcome(client, s_two)
    localnet.advance()  # depth 2
    outcome = client.wait_outcome(s_two)
    assert (outcome.status, outcome.slot, outcome.confirmations) == ("confirmed", 0, 2)
    localnet.advance()  # depth 3: enough slots, but not finalized (lag 4)
    wait_until(lambda: health_of(ref).slot == 3)
    assert_no_outcome(client, s_final)
    localnet.advance()
    outcome = client.wait_outcome(s_final)
    # Finalized counts as the tier's number.
    assert (outcome.status, outcome.slot, outcome.confirmations) == ("confirmed", 0, 3)


def test_a_swap_the_vault_cannot_pay_fails_with_the_on_chain_error(runtime, client, localnet, make_swap) -> None:
    audit = Client()
    runtime.register_name(AUDIT_NAME, audit.ref)
    ref = start_confirmation(localnet)
    wait_connected(ref)
    bh, last_valid = blockhash(localnet)
    balance = localnet.genesis.token("USDC").vault_amount
    tx = make_swap(bh, amount_in=balance + 1)
    s = watch(ref, client, tx, last_valid=last_valid)
    wait_until(subscribed(ref, 1))
    send(localnet, [tx])
    localnet.advance()
    outcome = client.wait_outcome(s)
    on_chain = status(localnet, s)
    assert on_chain is not None and on_chain["err"] is not None
    assert outcome.status == "failed"
    assert outcome.error == json.dumps(on_chain["err"], separators=(",", ":"))
    assert outcome.error.startswith('{"InstructionError":[') and '{"Custom":1}' in outcome.error
    assert outcome.slot == 0
    entries = lambda: [  # noqa: E731
        e for e in audit.received(AuditEvent)
        if e.event_type == "TRADE_EXECUTION" and json.loads(e.details_json).get("phase") == "chain_outcome"
    ]
    wait_until(entries, what="the audit entry")
    (entry,) = entries()
    assert (entry.correlation_id, entry.severity) == (outcome.trade_id, "WARNING")
    details = json.loads(entry.details_json)
    assert (details["status"], details["error"], details["decided_by"]) == ("failed", outcome.error, "notification")


def test_a_signature_that_already_landed_still_gets_its_outcome(runtime, client, localnet, make_swap) -> None:
    ref = start_confirmation(localnet)
    wait_connected(ref)
    bh, last_valid = blockhash(localnet)
    tx = make_swap(bh)
    send(localnet, [tx])
    localnet.advance(5)  # finalized already
    wait_until(lambda: health_of(ref).slot == 5)
    s = watch(ref, client, tx, value=10_000.0, last_valid=last_valid, trade_id="late")
    outcome = client.wait_outcome(s)
    assert (outcome.trade_id, outcome.status, outcome.slot, outcome.confirmations) == ("late", "confirmed", 0, 3)


def test_watching_a_signature_twice_shares_one_subscription_and_answers_both(runtime, client, localnet, make_swap):
    ref = start_confirmation(localnet)
    wait_connected(ref)
    other = Client()
    bh, last_valid = blockhash(localnet)
    tx = make_swap(bh)
    s = watch(ref, client, tx, trade_id="first", last_valid=last_valid)
    watch(ref, other, tx, trade_id="second", last_valid=last_valid)
    watch(ref, client, tx, trade_id="first", last_valid=last_valid)  # the same request again: replaces
    wait_until(lambda: watch_state(ref, s).waiters == 2)
    wait_until(subscribed(ref, 1))
    assert subscriptions(ref) == 1
    assert ref.ask(GetConfirmationHealth(), timeout=5).in_flight == 1
    send(localnet, [tx])
    localnet.advance()
    assert other.wait_outcome(s).trade_id == "second"
    client.wait_outcome(s)
    time.sleep(SETTLE_S)  # the replaced request would have been answered by now
    assert [o.trade_id for o in client.received(SignatureOutcome)] == ["first"]


def test_unwatch_stops_watching_without_a_reply(runtime, client, localnet, make_swap) -> None:
    ref = start_confirmation(localnet)
    wait_connected(ref)
    bh, last_valid = blockhash(localnet)
    tx = make_swap(bh)
    s = watch(ref, client, tx, last_valid=last_valid)
    wait_until(subscribed(ref, 1))
    ref.tell(Unwatch(signature=s))
    wait_until(lambda: health_of(ref).in_flight == 0 and subscriptions(ref) == 0, what="the unwatch")
    send(localnet, [tx])
    localnet.advance(2)
    assert_no_outcome(client, s)
    assert client.received() == []


def test_expired_only_once_the_confirmed_height_is_past_and_the_node_does_not_know_it(
    runtime, client, short_blockhashes: Localnet, make_swap
) -> None:
    ln = short_blockhashes
    ref = start_confirmation(ln)
    wait_connected(ref)
    bh, last_valid = blockhash(ln)
    assert last_valid == 10
    tx = make_swap(bh, localnet=ln)
    s = watch(ref, client, tx, last_valid=last_valid)
    wait_until(subscribed(ref, 1))
    ln.drop_transactions(1)
    send(ln, [tx])  # accepted, never lands
    ln.advance(11)  # slot 11: confirmed height 10, not past 10
    wait_until(lambda: health_of(ref).polls >= 1, what="the expiry check at slot 11")
    assert_no_outcome(client, s)
    ln.advance()  # confirmed height 11 > 10
    outcome = client.wait_outcome(s)
    assert (outcome.status, outcome.slot, outcome.confirmations) == ("expired", None, 0)
    assert "block height 11" in outcome.error and "last valid block height 10" in outcome.error
    assert "safe to re-sign" in outcome.error
    assert ref.ask(GetConfirmationHealth(), timeout=5).poll_outcomes == 1


def test_a_transaction_landing_just_before_its_expiry_is_not_expired(
    runtime, client, short_blockhashes: Localnet, make_swap
) -> None:
    ln = short_blockhashes
    ref = start_confirmation(ln)
    wait_connected(ref)
    bh, last_valid = blockhash(ln)
    tx = make_swap(bh, localnet=ln)
    # The finalized tier has no confirmed subscription: only the status lookup can tell that the
    # transaction landed once the height is past its last valid height.
    s = watch(ref, client, tx, value=20_000.0, last_valid=last_valid)
    wait_until(subscribed(ref, 1))
    ln.delay_transactions(1, slots=9)
    send(ln, [tx])
    ln.advance(12)  # landed in slot 9 (confirmed at 10); confirmed height 11 > 10; not finalized
    wait_until(lambda: health_of(ref).slot == 12 and watch_state(ref, s).landed_slot is not None,
               what="the poll that finds it landed")
    assert_no_outcome(client, s)
    ln.advance()  # finalized (lag 4)
    outcome = client.wait_outcome(s)
    assert (outcome.status, outcome.slot, outcome.confirmations) == ("confirmed", 9, 3)


def test_a_tier_timeout_reports_timed_out_saying_it_may_still_land(runtime, client, localnet, make_swap) -> None:
    settings = with_settings(tiers=tiers((0.0, 1, 0.3, False), (100.0, 3, 0.3, False)))
    ref = start_confirmation(localnet, settings)
    wait_connected(ref)
    bh, last_valid = blockhash(localnet)
    lost, shallow = make_swap(bh, amount_in=1), make_swap(bh, amount_in=2)
    s_lost = watch(ref, client, lost, value=1.0, last_valid=last_valid)
    s_shallow = watch(ref, client, shallow, value=500.0, last_valid=last_valid)
    wait_until(subscribed(ref, 2))
    localnet.drop_transactions(1)
    send(localnet, [lost])
    send(localnet, [shallow])
    localnet.advance()  # shallow at confirmed, depth 1 of 3
    outcome = client.wait_outcome(s_lost)
    assert (outcome.status, outcome.slot, outcome.confirmations) == ("timed_out", None, 0)
    assert outcome.elapsed_s >= 0.3
    assert "no outcome within 0.3 s" in outcome.error and "may still land" in outcome.error
    outcome = client.wait_outcome(s_shallow)
    assert (outcome.status, outcome.slot, outcome.confirmations) == ("timed_out", 0, 1)
    assert "landed in slot 0 at confirmed, not yet 3 confirmations deep" in outcome.error


def test_watches_past_max_in_flight_and_bad_requests_are_refused_with_a_reason(runtime, client, localnet, make_swap):
    ref = start_confirmation(localnet, with_settings(max_in_flight=3))
    wait_connected(ref)
    bh, last_valid = blockhash(localnet)
    txs = [make_swap(bh, amount_in=i + 1) for i in range(4)]
    sigs = [watch(ref, client, tx, last_valid=last_valid, trade_id=f"t{i}") for i, tx in enumerate(txs)]
    watch(ref, client, txs[0], last_valid=last_valid, trade_id="t0-again")  # shares a slot: accepted
    watch(ref, client, "not-a-signature", trade_id="bad-sig")
    watch(ref, client, txs[1], last_valid=-1, trade_id="bad-height")
    refusals = {r.trade_id: r for r in client.wait_count(WatchRefused, 3)}
    assert set(refusals) == {"t3", "bad-sig", "bad-height"}
    assert refusals["t3"].signature == sigs[3] and "max_in_flight reached (3" in refusals["t3"].reason
    assert "not a base58 transaction signature" in refusals["bad-sig"].reason
    assert "last_valid_block_height is negative" in refusals["bad-height"].reason
    wait_until(subscribed(ref, 3))
    send(localnet, txs)
    localnet.advance()
    outcomes = client.wait_count(SignatureOutcome, 4)
    assert sorted(o.trade_id for o in outcomes) == ["t0", "t0-again", "t1", "t2"]
    assert all(o.status == "confirmed" for o in outcomes)
    assert ref.ask(GetConfirmationHealth(), timeout=5).refused == 3


def test_without_a_node_every_watch_is_refused(runtime, client) -> None:
    ref = Confirmation.start(running_board(), FAST, ws_url="", rpc_url="")
    watch(ref, client, "1" * 64)
    (refusal,) = client.wait_count(WatchRefused, 1)
    assert "no RPC node configured" in refusal.reason
    health = ref.ask(GetConfirmationHealth(), timeout=5)
    assert not health.connected and health.refused == 1
    with pytest.raises(ValueError, match="give both"):
        Confirmation(running_board(), FAST, ws_url="ws://127.0.0.1:1", rpc_url=None)


@pytest.mark.parametrize("mode", [HaltMode.GRACEFUL, HaltMode.EMERGENCY])
def test_a_halt_keeps_confirming_what_is_in_flight(runtime, client, localnet, make_swap, mode: HaltMode) -> None:
    kill_switch = Client()
    runtime.register_name(KILL_SWITCH_NAME, kill_switch.ref)
    ref = start_confirmation(localnet)
    wait_connected(ref)
    bh, last_valid = blockhash(localnet)
    first, second, third = (make_swap(bh, amount_in=i) for i in (1, 2, 3))
    watch(ref, client, first, last_valid=last_valid)
    watch(ref, client, second, last_valid=last_valid)
    wait_until(subscribed(ref, 2))
    ref.tell(Halt(epoch=1, mode=mode, reason="test", source="test"))
    (ack,) = kill_switch.wait_count(HaltAck, 1)
    assert (ack.epoch, ack.in_flight) == (1, 2)
    # Sent before the halt took effect: still watched, still confirmed.
    watch(ref, client, third, last_valid=last_valid)
    wait_until(subscribed(ref, 3))
    send(localnet, [first, second, third])
    localnet.advance()
    outcomes = client.wait_count(SignatureOutcome, 3)
    assert {o.signature for o in outcomes} == {sig(first), sig(second), sig(third)}
    assert all(o.status == "confirmed" for o in outcomes)
    assert health_of(ref).in_flight == 0


def test_stopping_the_actor_closes_its_socket_and_loop_thread(runtime, client, localnet) -> None:
    before = {t.name for t in threading.enumerate()}
    ref = start_confirmation(localnet)
    wait_connected(ref)
    (name,) = {t.name for t in threading.enumerate() if t.name.endswith("-loop")} - before
    assert localnet.call(lambda: len(localnet.server.pubsub.connections)) == 1
    ref.stop(timeout=10)
    assert not any(t.name == name for t in threading.enumerate())
    wait_until(lambda: localnet.call(lambda: len(localnet.server.pubsub.connections)) == 0, what="the socket to close")

