"""OPEN -> cool-off -> HALF_OPEN -> probes -> CLOSED, reopening, and the executor's gate."""

from __future__ import annotations

from dataclasses import replace

import pytest

from supervisors import ChildSpec, Fault, Strategy, Supervisor, inject_fault
from tests.breakers.conftest import limits_with, send, status
from tests.helpers import wait_until
from xorj_actors.breakers import (
    BREAKERS,
    CircuitState,
    Breaker,
    BreakerName,
    BreakerSettings,
    BreakerStatus,
    GetBreakerStatus,
    StaleClaim,
    TradeGate,
    breaker_table,
    render_breakers,
)

T = "trade_failure_rate"


def trip(ref, clock, name: str, t: float = 1000.0) -> None:
    """Failures at one instant until the breaker opens (at the consecutive or the window limit)."""
    for _ in range(BreakerSettings().limits(name).max_failures):
        send(ref, clock, t, False, name, "boom")
        if status(ref).state == CircuitState.OPEN:
            return
    raise AssertionError(f"{name} did not open")


def test_cool_off_half_open_probes_then_closed(start_breaker, armed, solo, clock) -> None:
    settings = limits_with(T, cool_off_s=0.05, probe_trades=2)
    changes: list[tuple[str, str]] = []
    ref = start_breaker(T, settings, breakers=solo, on_change=lambda n, s: changes.append((n, s)))
    gate = TradeGate(solo, settings)
    assert gate.admit() is None
    trip(ref, clock, T)
    assert gate.admit() == f"breaker {T} is OPEN: 3 consecutive failures (last: boom)"
    wait_until(lambda: solo.status(T).state == CircuitState.HALF_OPEN, 5, "cool-off over")
    s = solo.status(T)
    assert (s.generation, s.probes_allowed) == (1, 2)
    assert gate.admit() is None
    assert gate.admit() is None
    for _ in range(3):
        assert gate.admit() == f"breaker {T} is HALF_OPEN: its 2 probe trade(s) are out"
    send(ref, clock, 1001.0, True, T)
    assert status(ref).state == CircuitState.HALF_OPEN  # one success of two
    send(ref, clock, 1002.0, True, T)
    s = status(ref)
    assert (s.state, s.failures_in_window, s.consecutive, s.probes_allowed, s.reason) == (CircuitState.CLOSED, 0, 0, 0, "")
    for _ in range(3):  # CLOSED: no probe limit any more
        assert gate.admit() is None
    assert changes == [(T, CircuitState.OPEN), (T, CircuitState.HALF_OPEN), (T, CircuitState.CLOSED)]


def test_a_failure_in_half_open_reopens_with_fresh_probes_next_time(start_breaker, armed, solo, clock) -> None:
    settings = limits_with(T, cool_off_s=0.05, probe_trades=1)
    ref = start_breaker(T, settings, breakers=solo)
    gate = TradeGate(solo, settings)
    trip(ref, clock, T)
    wait_until(lambda: solo.status(T).state == CircuitState.HALF_OPEN, 5, "cool-off over")
    assert gate.admit() is None
    assert gate.admit() is not None
    send(ref, clock, 1001.0, False, T, "probe trade failed")
    s = status(ref)
    assert (s.state, s.generation, s.reason) == (CircuitState.OPEN, 2, "probe failed: probe trade failed")
    assert gate.admit() == f"breaker {T} is OPEN: probe failed: probe trade failed"
    wait_until(lambda: solo.status(T).state == CircuitState.HALF_OPEN, 5, "second cool-off over")
    assert gate.admit() is None, "a new generation gets its own probe"
    assert gate.admit() is not None


def test_half_open_without_a_verdict_reopens(start_breaker, armed, solo, clock) -> None:
    settings = limits_with(T, cool_off_s=0.05, probe_timeout_s=0.05)
    ref = start_breaker(T, settings, breakers=solo)
    trip(ref, clock, T)
    wait_until(lambda: solo.status(T).generation >= 2, 5, "probe deadline")
    s = solo.status(T)
    assert s.reason == "probes gave no verdict within 0.05 s"
    ref.stop(block=True, timeout=5)


def test_open_breakers_ignore_successes_and_keep_counting(start_breaker, armed, solo, clock) -> None:
    ref = start_breaker(T, breakers=solo)
    trip(ref, clock, T)
    send(ref, clock, 1001.0, True, T)
    send(ref, clock, 1002.0, False, T)
    s = status(ref)
    assert (s.state, s.generation, s.consecutive) == (CircuitState.OPEN, 1, 1)


def test_the_gate_names_the_highest_priority_breaker(start_breaker, armed, board, clock) -> None:
    refs = {name: start_breaker(name) for name in BREAKERS}
    gate = TradeGate(board)
    assert gate.admit() is None
    trip(refs["slippage_rejections"], clock, "slippage_rejections")
    assert gate.admit().startswith("breaker slippage_rejections is OPEN")
    trip(refs["network_connectivity"], clock, "network_connectivity")
    assert gate.admit().startswith("breaker network_connectivity is OPEN")


def test_reducing_trades_pass_open_breakers_except_hsm_and_system_errors(start_breaker, armed, board, clock) -> None:
    refs = {name: start_breaker(name) for name in BREAKERS}
    gate = TradeGate(board)
    for name in ("market_volatility", "slippage_rejections", "trade_failure_rate"):
        trip(refs[name], clock, name)
    assert gate.admit().startswith("breaker trade_failure_rate is OPEN")
    assert gate.admit(reduces_exposure=True) is None
    trip(refs["system_errors"], clock, "system_errors")
    assert gate.admit(reduces_exposure=True).startswith("breaker system_errors is OPEN")
    trip(refs["hsm_failure_rate"], clock, "hsm_failure_rate")
    assert gate.admit(reduces_exposure=True).startswith("breaker hsm_failure_rate is OPEN")


def test_reducing_trades_do_not_use_probes_of_breakers_they_pass(start_breaker, armed, solo, clock) -> None:
    settings = limits_with(T, cool_off_s=0.05, probe_trades=1)
    ref = start_breaker(T, settings, breakers=solo)
    gate = TradeGate(solo, settings)
    trip(ref, clock, T)
    wait_until(lambda: solo.status(T).state == CircuitState.HALF_OPEN, 5, "cool-off over")
    for _ in range(3):
        assert gate.admit(reduces_exposure=True) is None
    assert gate.admit() is None, "the reducing trades left the probe unused"
    assert gate.admit() == f"breaker {T} is HALF_OPEN: its 1 probe trade(s) are out"


def test_a_trade_is_a_probe_for_every_half_open_breaker(start_breaker, armed, board, clock) -> None:
    a, b = "network_connectivity", "confirmation_timeouts"
    base = limits_with(a, cool_off_s=0.05, probe_trades=2)
    settings = replace(base, confirmation_timeouts=replace(base.confirmation_timeouts, cool_off_s=0.05, probe_trades=1))
    refs = {name: start_breaker(name, settings) for name in BREAKERS}
    ra, rb = refs[a], refs[b]
    gate = TradeGate(board, settings)
    trip(ra, clock, a)
    trip(rb, clock, b)
    wait_until(lambda: board.status(a).state == board.status(b).state == CircuitState.HALF_OPEN, 5, "both half-open")
    assert gate.admit() is None  # a probe for both: b's only one, a's first of two
    assert gate.admit() == f"breaker {b} is HALF_OPEN: its 1 probe trade(s) are out"
    send(rb, clock, 1001.0, True, b)
    assert status(rb).state == CircuitState.CLOSED
    assert gate.admit() is None  # a's second probe
    assert gate.admit() == f"breaker {a} is HALF_OPEN: its 2 probe trade(s) are out"


def test_a_breaker_that_is_not_running_blocks_every_trade(start_breaker, armed, board, clock) -> None:
    gate = TradeGate(board)
    assert gate.admit() == "breaker hsm_failure_rate is not running"  # never started
    refs = {name: start_breaker(name) for name in BREAKERS}
    assert gate.admit() is None
    refs["market_volatility"].stop(block=True, timeout=5)
    assert board.status("market_volatility").state == CircuitState.CLOSED  # its last word stays on the board
    assert gate.admit() == "breaker market_volatility is not running"
    assert gate.admit(reduces_exposure=True) == "breaker market_volatility is not running"


def test_a_restarted_breaker_resumes_from_the_board(runtime, armed, solo, clock) -> None:
    settings = limits_with(T, cool_off_s=0.3)
    sup = Supervisor.start(
        [ChildSpec(T, lambda: Breaker.start(armed, T, settings, breakers=solo, clock=clock))],
        strategy=Strategy.ONE_FOR_ONE,
        name="breakers",
    )
    wait_until(lambda: runtime.whereis(f"breaker:{T}") is not None, 5, "breaker up")
    first = runtime.whereis(f"breaker:{T}")
    trip(first, clock, T)
    inject_fault(first, Fault.RAISE)
    wait_until(lambda: (r := runtime.whereis(f"breaker:{T}")) is not None and r is not first, 5, "breaker restarted")
    second = runtime.whereis(f"breaker:{T}")
    s = second.ask(GetBreakerStatus(), timeout=5)
    assert (s.state, s.generation, s.opened_at) == (CircuitState.OPEN, 1, 1000.0)
    assert TradeGate(solo, settings).admit().startswith(f"breaker {T} is OPEN")
    wait_until(lambda: solo.status(T).state == CircuitState.HALF_OPEN, 5, "the resumed breaker's cool-off")
    sup.stop(block=True, timeout=5)


def test_a_restarted_breaker_keeps_its_window(runtime, armed, board, clock) -> None:
    name = "hsm_failure_rate"  # 3 in 10 minutes, no consecutive rule
    sup = Supervisor.start(
        [ChildSpec(name, lambda: Breaker.start(armed, name, breakers=board, clock=clock))],
        strategy=Strategy.ONE_FOR_ONE,
        name="breakers",
    )
    wait_until(lambda: runtime.whereis(f"breaker:{name}") is not None, 5, "breaker up")
    first = runtime.whereis(f"breaker:{name}")
    send(first, clock, 1000.0, False, name)
    send(first, clock, 1100.0, False, name)
    inject_fault(first, Fault.RAISE)
    wait_until(lambda: (r := runtime.whereis(f"breaker:{name}")) is not None and r is not first, 5, "restarted")
    second = runtime.whereis(f"breaker:{name}")
    assert status(second).failures_in_window == 2
    send(second, clock, 1600.0, False, name)
    assert status(second).state == CircuitState.OPEN
    sup.stop(block=True, timeout=5)


def test_only_the_slot_holder_publishes(board) -> None:
    old, _, _ = board.claim(T)
    new, _, memory = board.claim(T)
    st = BreakerStatus(breaker=BreakerName(T), state=CircuitState.CLOSED, generation=0, probes_allowed=0, failures_in_window=0,
                       consecutive=0, opened_at=None, reason="")
    board.publish(new, st, memory)
    with pytest.raises(StaleClaim):
        board.publish(old, st, memory)
    board.release(old)  # a stale release does not free the successor's slot
    assert T in board.snapshot.running


def test_breaker_table_renders_the_board(start_breaker, armed, board, clock) -> None:
    refs = {name: start_breaker(name) for name in BREAKERS}
    trip(refs[T], clock, T)
    clock.t = 1012.0
    rows = breaker_table(board, clock=clock)
    assert [r["breaker"] for r in rows] == list(BREAKERS)
    row = rows[1]
    assert (row["state"], row["running"], row["blocking"]) == (CircuitState.OPEN, True, True)
    assert (row["open_for_s"], row["generation"]) == (12.0, 1)
    text = render_breakers(rows)
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["BREAKER", "STATE"] and len(lines) == 8
    assert "trade_failure_rate" in lines[2] and "OPEN" in lines[2] and "3 consecutive failures" in lines[2]
    assert "3/5 in 600s" in lines[2] and "3/3" in lines[2] and "12s" in lines[2]
