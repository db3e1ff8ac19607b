"""Each breaker's window and consecutive count, at the edges, on a clock the test sets."""

from __future__ import annotations

import pytest

from xorj_actors.breakers import BREAKERS, BreakerSettings, CircuitState
from tests.breakers.conftest import send, status

T0 = 1000.0


def spread(start: float, end: float, n: int) -> list[float]:
    """``n`` times from ``start`` to exactly ``end`` (the last one computed without rounding)."""
    if n == 1:
        return [end]
    return [start + (end - start) * i / (n - 1) for i in range(n - 1)] + [end]


@pytest.mark.parametrize("name", BREAKERS)
def test_max_failures_in_the_window_trip_one_less_does_not(name, start_breaker, armed, clock) -> None:
    lim = BreakerSettings().limits(name)
    ref = start_breaker(name)
    times = spread(T0, T0 + lim.window_s, lim.max_failures)  # the first and last exactly window_s apart
    for i, t in enumerate(times[:-1]):
        send(ref, clock, t, False, name, f"failure {i}")
        if lim.max_consecutive:  # keep the consecutive rule out of it
            send(ref, clock, t, True, name)
    s = status(ref)
    assert (s.state, s.failures_in_window) == (CircuitState.CLOSED, lim.max_failures - 1)
    send(ref, clock, times[-1], False, name, "the last straw")
    s = status(ref)
    assert s.state == CircuitState.OPEN and s.generation == 1 and s.opened_at == times[-1]
    assert s.reason == f"{lim.max_failures} failures in {lim.window_s:g} s (last: the last straw)"


@pytest.mark.parametrize("name", BREAKERS)
def test_a_failure_just_outside_the_window_does_not_count(name, start_breaker, armed, clock) -> None:
    lim = BreakerSettings().limits(name)
    ref = start_breaker(name)
    send(ref, clock, T0, False, name)
    if lim.max_consecutive:
        send(ref, clock, T0, True, name)
    for t in spread(T0 + 1.0, T0 + lim.window_s + 0.001, lim.max_failures - 1):
        send(ref, clock, t, False, name)
        if lim.max_consecutive:
            send(ref, clock, t, True, name)
    s = status(ref)
    assert (s.state, s.failures_in_window) == (CircuitState.CLOSED, lim.max_failures - 1)


@pytest.mark.parametrize("name", [n for n in BREAKERS if BreakerSettings().limits(n).max_consecutive])
def test_max_consecutive_failures_trip_a_success_resets_the_run(name, start_breaker, armed, clock) -> None:
    lim = BreakerSettings().limits(name)
    ref = start_breaker(name)
    run = lim.max_consecutive
    t = T0
    for _ in range(run - 1):
        send(ref, clock, t, False, name)
    assert (status(ref).state, status(ref).consecutive) == (CircuitState.CLOSED, run - 1)
    send(ref, clock, t, True, name)
    assert status(ref).consecutive == 0
    t += lim.window_s + 1  # the first run leaves the window: only the consecutive rule can trip
    for _ in range(run - 1):
        send(ref, clock, t, False, name)
    assert status(ref).state == CircuitState.CLOSED
    send(ref, clock, t, True, name)
    t += lim.window_s + 1
    for i in range(run):
        send(ref, clock, t, False, name, f"f{i}")
    s = status(ref)
    assert s.state == CircuitState.OPEN and s.consecutive == run and s.failures_in_window == run < lim.max_failures
    assert s.reason == f"{run} consecutive failures (last: f{run - 1})"


@pytest.mark.parametrize("name", [n for n in BREAKERS if not BreakerSettings().limits(n).max_consecutive])
def test_without_a_consecutive_rule_only_the_window_counts(name, start_breaker, armed, clock) -> None:
    lim = BreakerSettings().limits(name)
    ref = start_breaker(name)
    for _ in range(lim.max_failures - 1):
        send(ref, clock, T0 + lim.window_s + 5, False, name)  # one instant, no success between
    s = status(ref)
    assert (s.state, s.consecutive) == (CircuitState.CLOSED, lim.max_failures - 1)


def test_events_for_another_breaker_are_ignored(start_breaker, armed, clock) -> None:
    ref = start_breaker("network_connectivity")
    for _ in range(3):
        send(ref, clock, T0, False, "trade_failure_rate")
    s = status(ref)
    assert (s.state, s.failures_in_window, s.consecutive) == (CircuitState.CLOSED, 0, 0)
