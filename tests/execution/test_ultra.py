"""Trading through Ultra (``/ultra/v1/order``, ``/ultra/v1/execute``) against the localnet.

The localnet's Ultra orders are RFQ orders as mainnet's JupiterZ ones are: the market maker pays
the fee and signs first, so the transaction's id is the maker's signature, which only
``/execute`` reveals. The trade must still be confirmed from the chain, recorded once, never done
twice, and its route checked by its effects before it is signed.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from solders.message import to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from tests.execution.conftest import Harness, serve_route_fault
from tests.helpers import wait_until
from xorj_actors.localnet.route_faults import EXPECTED_REASON, RouteFault

ULTRA = """
[jupiter]
api = "ultra"
"""
ULTRA_THEN_SWAP = """
[jupiter]
api = "ultra_then_swap"
"""


def test_an_ultra_trade_is_confirmed_from_the_chain_recorded_and_never_done_twice(
    exec_engine_factory: Callable[..., Harness],
) -> None:
    h = exec_engine_factory(ULTRA)
    usdc, jup = h.balance(0, "USDC"), h.balance(0, "JUP")
    outcome = h.execute(h.request("vault-0000:u1:0", amount=10_000_000))
    assert outcome.status == "confirmed" and outcome.api == "ultra", outcome
    assert outcome.signature and outcome.slot is not None and outcome.attempts == 1
    assert h.balance(0, "USDC") == usdc - 10_000_000
    assert h.balance(0, "JUP") == jup + outcome.out_amount > jup

    entries = h.entries("vault-0000:u1:0")
    signed = [d for _, d in entries if d.get("phase") == "signed"]
    assert len(signed) == 1 and signed[0]["api"] == "ultra" and signed[0]["request_id"]
    # The maker pays the fee: the id was unknown when signed; ours is kept to match.
    assert signed[0]["signature"] == "" and signed[0]["our_signature"]
    tx = VersionedTransaction.from_bytes(base64.b64decode(signed[0]["transaction"]))
    maker, authority = tx.message.account_keys[0], tx.message.account_keys[1]
    assert tx.signatures[0] == Signature.default()  # the maker's slot: Jupiter fills it at /execute
    assert str(tx.signatures[1]) == signed[0]["our_signature"]
    # The id /execute revealed is the maker's signature over exactly our message.
    assert Signature.from_string(outcome.signature).verify(maker, to_bytes_versioned(tx.message))
    assert authority != maker and isinstance(authority, Pubkey)
    sent = [d for _, d in entries if d.get("phase") == "sent"]
    assert sent and sent[0]["signature"] == outcome.signature and sent[0]["execute_outcome"] == "landed"
    [confirmation] = [d for k, d in entries if k == "TRADE_CONFIRMATION"]
    assert confirmation["api"] == "ultra" and confirmation["signature"] == outcome.signature

    again = h.execute(h.request("vault-0000:u1:0", amount=10_000_000), count=2)
    assert again.replayed and again.signature == outcome.signature and again.api == "ultra"
    assert h.balance(0, "USDC") == usdc - 10_000_000


def test_identical_ultra_trades_of_one_vault_never_share_a_transaction(
    exec_engine_factory: Callable[..., Harness],
) -> None:
    """Ultra answers identical orders at one blockhash with identical transactions: without a
    guard, one landing would settle three trades."""
    h = exec_engine_factory(ULTRA)
    usdc = h.balance(1, "USDC")
    ids = [f"vault-0001:same:{i}" for i in range(3)]
    for tid in ids:
        h.executor.tell(h.request(tid, vault=1, amount=5_000_000))
    outcomes = [h.wait(tid, timeout=30) for tid in ids]
    assert [o.status for o in outcomes] == ["confirmed"] * 3, outcomes
    assert len({o.signature for o in outcomes}) == 3, outcomes
    assert h.balance(1, "USDC") == usdc - 3 * 5_000_000


def test_an_ultra_order_whose_table_lies_is_refused_before_signing(exec_engine_factory: Callable[..., Harness]) -> None:
    h = exec_engine_factory(ULTRA)
    stage, reason = EXPECTED_REASON[RouteFault.TABLE_MISMATCH]
    before = {s: h.balance(2, s) for s in ("USDC", "JUP")}
    serve_route_fault(h, RouteFault.TABLE_MISMATCH)
    tid = "vault-0002:lie:0"
    outcome = h.execute(h.request(tid, vault=2, amount=1_000_000))
    assert outcome.status == "rejected" and f"route refused: {reason}" in (outcome.error or ""), outcome
    entries = h.entries(tid)
    refused = [d for _, d in entries if d.get("phase") == "route_refused"]
    assert [(d["reason"], d["api"]) for d in refused] == [(reason, "ultra")]
    assert not [d for _, d in entries if d.get("phase") == "signed"]
    assert {s: h.balance(2, s) for s in ("USDC", "JUP")} == before


def test_ultra_then_swap_falls_back_only_when_ultra_has_no_route(exec_engine_factory: Callable[..., Harness]) -> None:
    h = exec_engine_factory(ULTRA_THEN_SWAP)
    first = h.execute(h.request("vault-0003:pol:0", vault=3, amount=1_000_000))
    assert first.status == "confirmed" and first.api == "ultra", first
    serve_route_fault(h, RouteFault.ULTRA_NO_ROUTE)
    tid = "vault-0003:pol:1"
    second = h.execute(h.request(tid, vault=3, amount=1_000_000))
    assert second.status == "confirmed" and second.api == "swap", second
    [fallback] = [d for _, d in h.entries(tid) if d.get("phase") == "api_fallback"]
    assert (fallback["from"], fallback["to"]) == ("ultra", "swap") and "no_route" in fallback["refusal"]
    [signed] = [d for _, d in h.entries(tid) if d.get("phase") == "signed"]
    assert signed["api"] == "swap"


def test_ultra_alone_does_not_fall_back(exec_engine_factory: Callable[..., Harness]) -> None:
    h = exec_engine_factory(ULTRA)
    serve_route_fault(h, RouteFault.ULTRA_NO_ROUTE)
    outcome = h.execute(h.request("vault-0003:only:0", vault=3, amount=1_000_000))
    assert outcome.status == "rejected" and outcome.error_class == "no_route", outcome
    assert not [d for _, d in h.entries("vault-0003:only:0") if d.get("phase") in ("signed", "api_fallback")]


#: /execute is repeated for half a second; the localnet's blockhash lives 150 slots of 20 ms.
QUICK_WINDOW = """
[jupiter]
api = "ultra"
execute_repeat_window_s = 0.5
"""


def test_an_order_execute_never_answered_is_settled_by_the_chain_then_signed_again(
    exec_engine_factory: Callable[..., Harness],
) -> None:
    """/execute never answers and lands nothing: once the blockhash expired and the vault's
    accounts are as before, the attempt never landed and a new one is safe."""
    h = exec_engine_factory(QUICK_WINDOW)
    usdc = h.balance(1, "USDC")
    serve_route_fault(h, RouteFault.EXECUTE_SILENT)  # the first order: every /execute of it
    tid = "vault-0001:silent:0"
    outcome = h.execute(h.request(tid, vault=1, amount=2_000_000), timeout=40)
    assert outcome.status == "confirmed" and outcome.attempts == 2, outcome
    signed = [d for _, d in h.entries(tid) if d.get("phase") == "signed"]
    assert [d["attempt"] for d in signed] == [1, 2] and signed[0]["our_signature"] != signed[1]["our_signature"]
    failed = [d for _, d in h.entries(tid) if d.get("phase") == "attempt_failed"]
    assert [d["error_class"] for d in failed] == ["expired_blockhash"] and "never landed" in failed[0]["error"]
    assert h.balance(1, "USDC") == usdc - 2_000_000  # once


def test_an_order_that_landed_without_an_answer_stays_open_and_is_never_signed_again(
    exec_engine_factory: Callable[..., Harness],
) -> None:
    """/execute lands the transaction but never says so: the vault's accounts changed, so the
    trade may have landed; it stays open (fail closed), never signed again."""
    h = exec_engine_factory(QUICK_WINDOW)
    usdc = h.balance(2, "USDC")
    serve_route_fault(h, RouteFault.EXECUTE_LANDS_SILENT)
    tid = "vault-0002:landed:0"
    h.executor.tell(h.request(tid, vault=2, amount=2_000_000))
    outcome = h.wait(tid, timeout=40)
    assert outcome.status == "timed_out", outcome
    wait_until(lambda: any(d.get("phase") == "landing_unknown" for _, d in h.entries(tid)), 10, "landing_unknown recorded")
    entries = h.entries(tid)
    assert len([d for _, d in entries if d.get("phase") == "signed"]) == 1
    [unknown] = [d for _, d in entries if d.get("phase") == "landing_unknown"]
    assert "accounts changed" in unknown["why"]
    assert not [k for k, _ in entries if k == "TRADE_CONFIRMATION"]
    assert h.balance(2, "USDC") == usdc - 2_000_000  # it did land, once
