"""The Executor against the localnet: a trade is carried to one final, recorded outcome."""

from __future__ import annotations


from tests.execution.conftest import Harness
from tests.helpers import wait_until
from xorj_actors.kill_switch import KILL_SWITCH_NAME
from xorj_actors.messages import HaltMode, Trigger


TOLERANT_NETWORK_BREAKER = """
[breakers.network_connectivity]
max_failures = 1000
max_consecutive = 1000
"""




def test_a_trade_is_confirmed_recorded_and_never_done_twice(harness: Harness) -> None:
    h = harness
    usdc, jup = h.balance(0, "USDC"), h.balance(0, "JUP")
    outcome = h.execute(h.request("vault-0000:r1:0", amount=10_000_000))
    assert outcome.status == "confirmed", outcome
    assert outcome.signature and outcome.slot is not None and outcome.attempts == 1
    assert h.balance(0, "USDC") == usdc - 10_000_000
    assert h.balance(0, "JUP") == jup + outcome.out_amount > jup

    kinds = [kind for kind, _ in h.entries("vault-0000:r1:0")]
    assert kinds[0] == "TRADE_INTENT" and kinds.count("TRADE_INTENT") == kinds.count("TRADE_CONFIRMATION") == 1
    signed = [d for k, d in h.entries("vault-0000:r1:0") if d.get("phase") == "signed"]
    assert len(signed) == 1 and signed[0]["signature"] == outcome.signature
    assert signed[0]["compute_units"] >= signed[0]["simulated_units"] > 0

    # The same id again: the recorded outcome, nothing executed.
    again = h.execute(h.request("vault-0000:r1:0", amount=10_000_000), count=2)
    assert again.replayed and again.status == "confirmed" and again.signature == outcome.signature
    # The same id for another trade: refused, the recorded trade stands.
    reused = h.execute(h.request("vault-0000:r1:0", amount=7_000_000), count=3)
    assert reused.status == "rejected" and reused.error_class == "reused_id", reused
    assert h.balance(0, "USDC") == usdc - 10_000_000


def test_insufficient_funds_is_rejected_before_signing_and_not_retried(harness: Harness) -> None:
    h = harness
    before = h.balance(1, "USDC")
    outcome = h.execute(h.request("vault-0001:r1:0", vault=1, amount=before + 1, slippage_bps=10_000))
    assert outcome.status == "rejected", outcome
    assert outcome.error_class == "insufficient_funds", outcome
    assert outcome.attempts == 0  # refused by the simulation: nothing was signed
    assert h.balance(1, "USDC") == before


def test_a_quote_beyond_the_slippage_limit_is_refused(harness: Harness) -> None:
    h = harness
    # 5,000 USDC moves the localnet's JUP pool by about 25 bps: above a 10 bps limit.
    before = h.balance(2, "USDC")
    outcome = h.execute(h.request("vault-0002:r1:0", vault=2, amount=5_000_000_000, slippage_bps=10))
    assert outcome.status == "rejected" and outcome.error_class == "slippage", outcome
    assert "price impact" in (outcome.error or "")
    assert [k for k, _ in h.entries("vault-0002:r1:0")] == ["TRADE_INTENT", "TRADE_EXECUTION", "TRADE_CONFIRMATION"]
    assert h.balance(2, "USDC") == before


def test_halted_engine_signs_nothing(harness: Harness) -> None:
    h = harness
    ks = h.engine.runtime.whereis(KILL_SWITCH_NAME)
    ks.tell(Trigger(mode=HaltMode.GRACEFUL, reason="test", source="test"))
    wait_until(lambda: h.engine.board.status.halted, 5, "halt")
    before = h.balance(3, "USDC")
    outcome = h.execute(h.request("vault-0003:r1:0", vault=3))
    assert outcome.status == "rejected" and outcome.error_class == "halted", outcome
    assert h.balance(3, "USDC") == before


def test_rate_limited_rpc_is_retried_until_confirmed(exec_engine_factory) -> None:
    h = exec_engine_factory(TOLERANT_NETWORK_BREAKER)
    h.localnet.set_faults(rate_limit=0.5, retry_after_s=0)
    try:
        outcome = h.execute(h.request("vault-0000:r2:0", amount=1_000_000), timeout=30)
    finally:
        h.localnet.reset_faults()
    assert outcome.status == "confirmed", outcome
    retried = [d for k, d in h.entries("vault-0000:r2:0") if d.get("phase") == "attempt_failed"]
    assert retried and all(d["error_class"] == "rate_limited" for d in retried)


def test_network_failures_trip_the_network_breaker_which_refuses_trades(harness: Harness) -> None:
    h = harness
    h.localnet.set_faults(refuse_http=True)
    try:
        outcome = h.execute(h.request("vault-0000:r3:0", amount=1_000_000), timeout=30)
    finally:
        h.localnet.reset_faults()
    # Two consecutive network errors open the breaker; the retry is refused by it.
    assert outcome.status == "rejected" and outcome.error_class == "breaker_open", outcome
    assert "network_connectivity" in (outcome.error or "")
    refused = h.execute(h.request("vault-0000:r3:1", amount=1_000_000))
    assert refused.status == "rejected" and refused.error_class == "breaker_open"


def test_a_transaction_that_never_lands_expires_and_is_replaced_once(harness: Harness) -> None:
    h = harness
    usdc = h.balance(1, "USDC")
    h.localnet.drop_transactions(1_000)  # every send and rebroadcast of the first attempt is lost
    tid = "vault-0001:r2:0"
    h.executor.tell(h.request(tid, vault=1, amount=2_000_000))
    # The first attempt can only expire; the second is signed after that, then allowed to land.
    wait_until(lambda: sum(d.get("phase") == "signed" for _, d in h.entries(tid)) == 2, 30, "second attempt signed")
    h.localnet.reset_faults()
    outcome = h.wait(tid, timeout=30)
    assert outcome.status == "confirmed", outcome
    assert outcome.attempts == 2
    signed = [d["signature"] for _, d in h.entries(tid) if d.get("phase") == "signed"]
    assert len(signed) == 2 and signed[-1] == outcome.signature
    assert h.balance(1, "USDC") == usdc - 2_000_000  # landed once


def _signed(h: Harness) -> int:
    from xorj_actors.signers import GetSignerHealth

    return h.engine.runtime.whereis("signer:vault-authority").ask(GetSignerHealth(), timeout=5).signed


def test_an_emergency_halt_drops_unsigned_trades_at_once(harness: Harness) -> None:
    h = harness
    before, signed = h.balance(2, "USDC"), _signed(h)
    h.localnet.set_faults(http_delay_s=1.0)  # every trade waits on JSON-RPC, before anything is signed
    ids = [f"vault-0002:em:{i}" for i in range(3)]
    for tid in ids:
        h.executor.tell(h.request(tid, vault=2, amount=1_000_000))
    wait_until(lambda: h.executor.ask(_status(), timeout=5).in_flight == 3, 10, "three trades in flight")
    ks = h.engine.runtime.whereis(KILL_SWITCH_NAME)
    ks.tell(Trigger(mode=HaltMode.EMERGENCY, reason="test", source="test"))
    outcomes = [h.wait(tid, timeout=10) for tid in ids]
    h.localnet.reset_faults()
    assert all(o.status == "rejected" and o.error_class == "halted" for o in outcomes), outcomes
    assert _signed(h) == signed
    assert h.balance(2, "USDC") == before


def test_a_graceful_halt_still_confirms_what_was_sent(harness: Harness) -> None:
    h = harness
    usdc = h.balance(3, "USDC")
    h.localnet.delay_transactions(1, slots=30)  # lands 30 slots late: in flight during the halt
    tid = "vault-0003:gr:0"
    h.executor.tell(h.request(tid, vault=3, amount=1_000_000))
    wait_until(lambda: any(d.get("phase") == "sent" for _, d in h.entries(tid)), 10, "trade sent")
    ks = h.engine.runtime.whereis(KILL_SWITCH_NAME)
    ks.tell(Trigger(mode=HaltMode.GRACEFUL, reason="test", source="test"))
    wait_until(lambda: h.engine.board.status.halted, 5, "halt")
    outcome = h.wait(tid, timeout=20)
    assert outcome.status == "confirmed", outcome
    assert h.balance(3, "USDC") == usdc - 1_000_000


def _status():
    from xorj_actors.execution import GetExecutorStatus

    return GetExecutorStatus()


def test_a_vault_never_has_two_rounds_in_flight(harness: Harness) -> None:
    h = harness
    h.localnet.set_faults(http_delay_s=0.5)  # round 1's trade is still on its way
    try:
        h.executor.tell(h.request("vault-0001:r5:0", vault=1, amount=1_000_000))
        wait_until(lambda: h.executor.ask(_status(), timeout=5).in_flight == 1, 10, "round 1 in flight")
        h.executor.tell(h.request("vault-0001:r5:1", vault=1, amount=1_000_000))
        other_round = h.execute(h.request("vault-0001:r6:0", vault=1, amount=1_000_000), timeout=30)
        same_round = h.wait("vault-0001:r5:1", timeout=30)
    finally:
        h.localnet.reset_faults()
    assert other_round.status == "rejected" and other_round.error_class == "unsettled", other_round
    assert "another round" in (other_round.error or "")
    assert same_round.status == "confirmed", same_round
    assert h.wait("vault-0001:r5:0", timeout=30).status == "confirmed"


def test_the_signed_bytes_go_to_every_send_route_and_a_failing_route_is_a_counted_skip(
    exec_engine_factory,
) -> None:
    # Port 9 (discard) on loopback refuses: a route that fails every send.
    h = exec_engine_factory('[execution]\nsend_urls = ["http://127.0.0.1:9/"]\n')
    outcome = h.execute(h.request("vault-0000:routes:0", amount=1_000_000))
    assert outcome.status == "confirmed", outcome
    skips = dict(h.executor.ask(_status()).route_skips)
    assert skips.get("extra-1:127.0.0.1", 0) >= 1, skips
    assert (h.engine.metrics.registry.get_sample_value("xorj_send_route_skips_total", {"route": "extra-1:127.0.0.1"}) or 0) >= 1
