"""Admission, the pure rule: the executor's book and a request in, a decision out (no engine)."""

from __future__ import annotations

from typing import Any

import pytest

from xorj_actors.execution import ErrorClass, TradeOutcome, TradeRequest, TradeStatus
from xorj_actors.execution._admission import Admit, Answer, Join, Refusal, TradeBook, admit, gate_refusal
from xorj_actors.execution._ledger import TradeRecord
from xorj_actors.kill_switch import HaltStatus

USDC, JUP = "USDC-mint", "JUP-mint"


def request(trade_id: str = "t1", *, vault: str = "vault-0000", round_key: str = "r1", index: int = 0,
            amount: int = 1_000, reduces_exposure: bool = False, output_mint: str = JUP) -> TradeRequest:
    return TradeRequest(
        trade_id=trade_id, vault_id=vault, round_key=round_key, index=index, input_mint=USDC,
        output_mint=output_mint, amount_in=amount, slippage_bps=100, value_usd=1.0,
        reduces_exposure=reduces_exposure,
    )


def confirmed(req: TradeRequest) -> TradeOutcome:
    return TradeOutcome(
        trade_id=req.trade_id, vault_id=req.vault_id, input_mint=req.input_mint, output_mint=req.output_mint,
        status=TradeStatus.CONFIRMED, signature="sig", attempts=1,
    )


def decide(book: TradeBook, req: TradeRequest, *, reconciled: bool = True, max_in_flight: int = 10) -> Any:
    return admit(book, req, reconciled=reconciled, max_in_flight=max_in_flight)


def running(book: TradeBook, req: TradeRequest, *, unsettled: bool = False) -> TradeRecord:
    rec = TradeRecord(request=req)
    book.adopt(rec, unsettled=unsettled)
    return rec


def test_a_new_trade_is_admitted() -> None:
    assert isinstance(decide(TradeBook(outcome_cache=10), request()), Admit)


def test_a_known_outcome_is_replayed_and_nothing_runs() -> None:
    book, req = TradeBook(outcome_cache=10), request()
    book.remember(req, confirmed(req))
    decision = decide(book, req)
    assert isinstance(decision, Answer)
    assert decision.outcome.replayed and decision.outcome.status == "confirmed"
    assert decision.outcome.signature == "sig"


def test_a_reused_id_is_refused_against_the_record_and_while_running() -> None:
    book, req = TradeBook(outcome_cache=10), request()
    book.remember(req, confirmed(req))
    decision = decide(book, request(amount=7))
    assert isinstance(decision, Answer)
    assert decision.outcome.status == "rejected" and decision.outcome.error_class == ErrorClass.REUSED_ID
    book = TradeBook(outcome_cache=10)
    running(book, req)
    decision = decide(book, request(amount=7))
    assert isinstance(decision, Answer) and decision.outcome.error_class == "reused_id"


def test_a_duplicate_while_running_joins_the_one_execution() -> None:
    book, req = TradeBook(outcome_cache=10), request()
    rec = running(book, req)
    decision = decide(book, request())
    assert isinstance(decision, Join) and decision.record is rec  # both answered by one execution
    assert len(book.records) == 1


def test_nothing_is_admitted_before_the_open_trades_are_read_back() -> None:
    decision = decide(TradeBook(outcome_cache=10), request(), reconciled=False)
    assert isinstance(decision, Refusal) and decision.outcome.error_class == "unsettled"
    assert "still reading open trades" in decision.reason


def test_max_in_flight_refuses_the_next_trade() -> None:
    book = TradeBook(outcome_cache=10)
    running(book, request("a", vault="vault-0001"))
    running(book, request("b", vault="vault-0002"))
    decision = decide(book, request("c"), max_in_flight=2)
    assert isinstance(decision, Refusal) and "2 trades in flight, the limit is 2" in decision.reason


def test_an_unsettled_vault_trades_again_only_once_settled() -> None:
    book = TradeBook(outcome_cache=10)
    old = request("old", round_key="r1")
    running(book, old, unsettled=True)
    decision = decide(book, request("new", round_key="r1", index=1))
    assert isinstance(decision, Refusal) and "unsettled trades" in decision.reason
    book.settle(old)
    assert isinstance(decide(book, request("new", round_key="r1", index=1)), Admit)
    assert book.unsettled_vaults() == () and book.in_flight_vaults() == ()


def test_one_round_per_vault_but_the_same_round_goes_on() -> None:
    book = TradeBook(outcome_cache=10)
    running(book, request("r1-0", round_key="r1"))
    same = decide(book, request("r1-1", round_key="r1", index=1))
    other = decide(book, request("r2-0", round_key="r2"))
    elsewhere = decide(book, request("v1-r2-0", vault="vault-0001", round_key="r2"))
    assert isinstance(same, Admit) and isinstance(elsewhere, Admit)
    assert isinstance(other, Refusal) and "another round in flight" in other.reason


def test_the_outcome_cache_keeps_the_newest() -> None:
    book = TradeBook(outcome_cache=2)
    for tid in ("a", "b", "c"):
        book.remember(request(tid), confirmed(request(tid)))
    assert list(book.outcomes) == ["b", "c"]
    assert isinstance(decide(book, request("a")), Admit)


def _halt(*, halted: bool, reducing: bool = False, vaults: frozenset[str] = frozenset()) -> HaltStatus:
    return HaltStatus(state="HALTED" if halted else "ARMED", epoch=3, halted=halted, factor=0.0 if halted else 1.0,
                      reducing=reducing, reducing_vaults=vaults)


@pytest.mark.parametrize(
    ("status", "req", "expected"),
    [
        (_halt(halted=False), request(), None),
        (_halt(halted=True), request(), ErrorClass.HALTED),
        (_halt(halted=True, reducing=True, vaults=frozenset({"vault-0000"})),
         request(reduces_exposure=True, output_mint=USDC), None),
        (_halt(halted=True, reducing=True, vaults=frozenset({"vault-0000"})),
         request(reduces_exposure=True, output_mint=JUP), ErrorClass.HALTED),  # a "reducing" buy
        (_halt(halted=True, reducing=True, vaults=frozenset({"vault-0001"})),
         request(reduces_exposure=True, output_mint=USDC), ErrorClass.HALTED),  # not being flattened
    ],
)
def test_the_gate_kill_switch_first(status: HaltStatus, req: TradeRequest, expected: ErrorClass | None) -> None:
    refusal = gate_refusal(status, req, stable_mint=USDC, breakers=lambda _: "breaker x open")
    if expected is None:
        assert refusal is not None and refusal.error_class is ErrorClass.BREAKER_OPEN  # then the breakers
    else:
        assert refusal is not None and refusal.error_class is expected
    assert gate_refusal(status, req, stable_mint=USDC, breakers=None) is None or expected is not None
