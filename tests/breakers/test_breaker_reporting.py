"""report(), auditing of state changes, the metrics' view, and what a volatility event is."""

from __future__ import annotations

import pytest

from tests.breakers.conftest import limits_with, send, status
from tests.helpers import wait_until
from xorj_actors.breakers import (
    BREAKERS,
    CircuitState,
    BreakerName,
    VolatilityDetector,
    VolatilitySettings,
    report,
)
from xorj_actors.metrics import breaker_states

T = "trade_failure_rate"


def test_report_tells_the_named_breaker(runtime, start_breaker, armed, solo, clock) -> None:
    ref = start_breaker(T, breakers=solo)
    report(runtime, T, False, "first")
    report(runtime, T, False)
    assert (status(ref).consecutive, status(ref).failures_in_window) == (2, 2)
    report(runtime, T, True, "fine")
    assert status(ref).consecutive == 0


def test_report_never_raises_and_logs_what_it_lost(runtime, start_breaker, armed, solo, logs) -> None:
    report(runtime, "no_such_breaker", False, "x")
    report(runtime, T, False, "nobody home")
    ref = start_breaker(T, breakers=solo)
    report(runtime, T, "yes", "not a bool")  # type: ignore[arg-type]
    ref.stop(block=True, timeout=5)
    report(runtime, T, False, "after the stop")
    text = "\n".join(logs)
    assert "breaker event lost (no_such_breaker" in text and "(unknown name)" in text
    assert "breaker event lost (trade_failure_rate, ok=False, 'nobody home')" in text
    assert "breaker event not sent (trade_failure_rate, ok='yes')" in text
    assert "breaker event lost (trade_failure_rate, ok=False, 'after the stop')" in text


def test_every_state_change_is_audited_and_reported(runtime, start_breaker, armed, solo, clock, audit) -> None:
    changes: list[tuple[str, str]] = []
    settings = limits_with(T, cool_off_s=0.05, probe_trades=1)
    ref = start_breaker(T, settings, breakers=solo, on_change=lambda n, s: changes.append((n, s)))
    for _ in range(3):
        send(ref, clock, 1000.0, False, T, "boom")
    wait_until(lambda: solo.status(T).state == CircuitState.HALF_OPEN, 5, "cool-off over")
    send(ref, clock, 1001.0, True, T)
    wait_until(lambda: len(audit.events) >= 3, 5, "three audit entries")
    assert changes == [(T, CircuitState.OPEN), (T, CircuitState.HALF_OPEN), (T, CircuitState.CLOSED)]
    entries = [(e.event_type, e.severity, e.actor, e.correlation_id) for e in audit.events]
    assert entries == [
        ("SYSTEM_EVENT", "WARNING", f"breaker:{T}", f"breaker:{T}:1"),
        ("SYSTEM_EVENT", "INFO", f"breaker:{T}", f"breaker:{T}:1"),
        ("SYSTEM_EVENT", "INFO", f"breaker:{T}", f"breaker:{T}:1"),
    ]
    opened, half, closed = audit.details()
    assert (opened["from"], opened["to"], opened["reason"]) == (CircuitState.CLOSED, CircuitState.OPEN, "3 consecutive failures (last: boom)")
    assert (half["from"], half["to"], closed["from"], closed["to"]) == (CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.HALF_OPEN, CircuitState.CLOSED)


def test_a_failing_on_change_hook_does_not_stop_the_breaker(runtime, start_breaker, armed, solo, clock, logs) -> None:
    def hook(name: str, state: str) -> None:
        raise RuntimeError("metrics down")

    ref = start_breaker(T, breakers=solo, on_change=hook)
    for _ in range(3):
        send(ref, clock, 1000.0, False, T)
    assert status(ref).state == CircuitState.OPEN
    assert any("on_change hook failed" in line for line in logs)


def test_the_breakers_status_and_the_metrics_view(runtime, start_breaker, armed, board, clock) -> None:
    refs = {name: start_breaker(name) for name in BREAKERS}
    for _ in range(3):
        send(refs[T], clock, 1000.0, False, T)
    s = status(refs[T])
    assert (s.breaker, s.state) == (BreakerName(T), CircuitState.OPEN)
    states = breaker_states(runtime.actors())
    assert states == {name: CircuitState.OPEN if name == T else CircuitState.CLOSED for name in BREAKERS}


# -- what a volatility event is --------------------------------------------------------------------


def test_a_move_over_half_within_the_window_is_one_event() -> None:
    d = VolatilityDetector(VolatilitySettings(move_threshold=0.5, move_window_s=300))
    assert d.observe("SOL", 100.0, 0.0) is None
    assert d.observe("SOL", 150.0, 100.0) is None  # exactly +50 %: not above
    assert d.observe("SOL", 150.1, 200.0) == "SOL rose +50.1% in 200 s (100 -> 150.1)"
    assert d.observe("SOL", 160.0, 210.0) is None, "one move is one event: the window restarted at 150.1"
    assert d.observe("SOL", 226.0, 290.0) == "SOL rose +50.6% in 90 s (150.1 -> 226)"


def test_falls_count_and_old_prices_leave_the_window() -> None:
    d = VolatilityDetector(VolatilitySettings(move_threshold=0.5, move_window_s=300))
    d.observe("JUP", 10.0, 0.0)
    d.observe("JUP", 8.0, 200.0)
    assert d.observe("JUP", 4.9, 300.0) == "JUP fell -51.0% in 300 s (10 -> 4.9)"
    d = VolatilityDetector(VolatilitySettings(move_threshold=0.5, move_window_s=300))
    d.observe("JUP", 10.0, 0.0)
    d.observe("JUP", 8.0, 200.0)
    assert d.observe("JUP", 4.9, 300.5) is None, "10 is out of the window; 8 -> 4.9 is -38.75 %"
    assert d.observe("BONK", 1.0, 300.5) is None, "tokens are separate"


def test_calm_once_per_window_of_samples_without_events() -> None:
    d = VolatilityDetector(VolatilitySettings(move_threshold=0.5, move_window_s=300))
    assert not d.calm(0.0)
    d.observe("SOL", 100.0, 0.0)
    d.observe("SOL", 101.0, 299.0)
    assert not d.calm(299.0)
    assert d.calm(300.0)
    assert not d.calm(301.0)
    d.observe("SOL", 200.0, 550.0)  # an event
    assert not d.calm(700.0)
    assert d.calm(850.0)
    assert not d.calm(1200.0), "no samples for a whole window is not calm"
    with pytest.raises(ValueError, match="price: must be a finite positive number"):
        d.observe("SOL", float("nan"), 1.0)
