"""The pure breaker rule (:class:`Circuit`): no runtime, no clock, time passed in. Milliseconds."""

from __future__ import annotations

import pytest

from xorj_actors.breakers import BreakerLimits, Circuit, CircuitState, Recorded, Transition

CLOSED, HALF_OPEN, OPEN = CircuitState.CLOSED, CircuitState.HALF_OPEN, CircuitState.OPEN
T0 = 1000.0


def circuit(retrip_window_s: float = 100.0, **limits: float) -> Circuit:
    base = {"window_s": 60.0, "max_failures": 3, "max_consecutive": 0, "cool_off_s": 30.0, "probe_trades": 2}
    return Circuit(BreakerLimits(**(base | limits)), retrip_window_s)


def tripped(c: Circuit, now: float = T0) -> Transition:
    """Fail at ``now`` until the circuit opens; the opening transition."""
    for _ in range(c.limits.max_failures):
        step = c.record(False, now, "boom")
        if step.transition is not None:
            return step.transition
    raise AssertionError("did not open")


def test_the_states_carry_their_names() -> None:
    assert [s.value for s in CircuitState] == ["CLOSED", "HALF_OPEN", "OPEN"]
    assert f"{OPEN}" == "OPEN" and OPEN == "OPEN"


# -- the window -----------------------------------------------------------------------------------


def test_a_failure_exactly_window_s_old_still_counts() -> None:
    c = circuit(window_s=60.0, max_failures=3)
    assert c.record(False, T0) == Recorded(counted=True)
    assert c.record(False, T0 + 30.0).transition is None
    step = c.record(False, T0 + 60.0, "last")
    assert step.transition == Transition(CLOSED, OPEN, escalate=True)
    assert (c.state, c.generation, c.opened_at) == (OPEN, 1, T0 + 60.0)
    assert c.reason == "3 failures in 60 s (last: last)"


def test_a_failure_just_older_than_the_window_is_forgotten() -> None:
    c = circuit(window_s=60.0, max_failures=3)
    c.record(False, T0)
    c.record(False, T0 + 30.0)
    assert c.record(False, T0 + 60.001).transition is None
    assert (c.state, len(c.failures)) == (CLOSED, 2)


def test_the_window_remembers_only_max_failures() -> None:
    c = circuit(window_s=60.0, max_failures=3)
    tripped(c)
    for i in range(10):
        c.record(False, T0 + i)
    assert len(c.failures) == 3


def test_a_success_that_only_prunes_is_counted_and_one_that_changes_nothing_is_not() -> None:
    c = circuit(window_s=60.0)
    c.record(False, T0)
    c.record(True, T0 + 1.0)  # the consecutive run of 1 ends
    assert c.record(True, T0 + 2.0) == Recorded(counted=False)
    assert c.record(True, T0 + 61.0) == Recorded(counted=True), "the failure left the window"
    assert len(c.failures) == 0


# -- the consecutive run --------------------------------------------------------------------------


def test_max_consecutive_failures_trip_and_a_success_resets_the_run() -> None:
    c = circuit(max_failures=5, max_consecutive=2)
    c.record(False, T0)
    c.record(True, T0)
    assert c.consecutive == 0
    assert c.record(False, T0).transition is None
    step = c.record(False, T0, "again")
    assert step.transition is not None and c.state == OPEN
    assert c.reason == "2 consecutive failures (last: again)"


def test_without_a_consecutive_rule_a_run_does_not_trip() -> None:
    c = circuit(window_s=1.0, max_failures=2, max_consecutive=0)
    for i in range(5):
        assert c.record(False, T0 + 10.0 * i).transition is None
    assert (c.state, c.consecutive) == (CLOSED, 5)


def test_open_keeps_counting_but_only_the_cool_off_leaves_it() -> None:
    c = circuit()
    tripped(c)
    assert c.record(True, T0 + 1.0) == Recorded(counted=True)  # ends the run of 3
    assert c.record(False, T0 + 2.0) == Recorded(counted=True)
    assert (c.state, c.generation, c.consecutive) == (OPEN, 1, 1)


# -- cool-off, probes, deadlines ------------------------------------------------------------------


def test_cool_off_to_half_open_then_probes_close_it() -> None:
    c = circuit(cool_off_s=30.0, probe_trades=2)
    tripped(c)
    assert c.probes_allowed == 0
    assert c.cool_off_left(T0 + 10.0) == 20.0 and c.cool_off_left(T0 + 99.0) == 0.0
    assert c.cool_off_over(c.generation, T0 + 30.0) == Transition(OPEN, HALF_OPEN)
    assert (c.state, c.half_open_at, c.probes_allowed) == (HALF_OPEN, T0 + 30.0, 2)
    assert c.record(True, T0 + 31.0) == Recorded(counted=True)
    assert c.state == HALF_OPEN and c.probe_successes == 1
    assert c.record(True, T0 + 32.0) == Recorded(True, Transition(HALF_OPEN, CLOSED))
    assert (c.state, c.closed_at, c.reason, c.consecutive, len(c.failures)) == (CLOSED, T0 + 32.0, "", 0, 0)
    assert c.probes_allowed == 0 and c.half_open_at is None


def test_a_stale_cool_off_does_nothing() -> None:
    c = circuit()
    tripped(c)
    assert c.cool_off_over(c.generation - 1, T0 + 30.0) is None
    assert c.state == OPEN
    assert circuit().cool_off_over(0, T0) is None, "not OPEN: nothing to cool off"


def test_a_failed_probe_reopens_in_a_new_generation() -> None:
    c = circuit()
    tripped(c)
    c.cool_off_over(1, T0 + 30.0)
    step = c.record(False, T0 + 31.0, "probe trade failed")
    assert step.transition == Transition(HALF_OPEN, OPEN, escalate=True)
    assert (c.state, c.generation, c.reason) == (OPEN, 2, "probe failed: probe trade failed")
    assert c.record(False, T0 + 32.0).transition is None


def test_no_verdict_by_the_probe_deadline_reopens_without_escalating() -> None:
    c = circuit(probe_timeout_s=45.0)
    tripped(c)
    c.cool_off_over(1, T0 + 30.0)
    assert c.probe_time_left(T0 + 40.0) == 35.0
    assert c.probe_deadline(0, T0 + 75.0) is None, "a stale deadline"
    assert c.probe_deadline(1, T0 + 75.0) == Transition(HALF_OPEN, OPEN)
    assert (c.state, c.generation, c.reason) == (OPEN, 2, "probes gave no verdict within 45 s")
    assert c.probe_deadline(2, T0 + 80.0) is None, "only HALF_OPEN has a deadline"


# -- the re-trip rule -----------------------------------------------------------------------------


def closed_at(c: Circuit, now: float) -> None:
    tripped(c, now - 40.0)
    c.cool_off_over(c.generation, now - 10.0)
    for _ in range(c.limits.probe_trades):
        c.record(True, now)
    assert (c.state, c.closed_at) == (CLOSED, now)


@pytest.mark.parametrize(("after", "retrip"), [(100.0, True), (100.5, False), (1.0, True)])
def test_an_opening_within_the_retrip_window_after_closing_is_a_retrip(after: float, retrip: bool) -> None:
    c = circuit(retrip_window_s=100.0)
    closed_at(c, T0)
    transition = tripped(c, T0 + after)
    assert transition.since_closed_s == (after if retrip else None)
    assert transition.escalate


def test_a_first_trip_and_a_failed_probe_are_not_retrips() -> None:
    c = circuit()
    assert tripped(c, T0).since_closed_s is None
    c.cool_off_over(c.generation, T0 + 30.0)
    for _ in range(c.limits.probe_trades):
        c.record(True, T0 + 31.0)
    assert tripped(c, T0 + 40.0).since_closed_s == 9.0
    c.cool_off_over(c.generation, T0 + 70.0)
    step = c.record(False, T0 + 71.0)
    assert step.transition is not None and step.transition.since_closed_s is None


def test_a_resumed_circuit_continues_where_its_predecessor_left() -> None:
    limits = BreakerLimits(window_s=60.0, max_failures=3)
    c = Circuit(limits, 100.0, failures=(T0, T0 + 10.0), consecutive=2)
    assert c.record(False, T0 + 60.0).transition == Transition(CLOSED, OPEN, escalate=True)
    assert c.reason == "3 failures in 60 s"


def test_reasons_are_cut_to_500_characters() -> None:
    c = circuit()
    for _ in range(3):
        c.record(False, T0, "x" * 600)
    assert len(c.reason) == 500
