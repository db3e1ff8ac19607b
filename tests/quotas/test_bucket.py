"""The token bucket's rules, pure: a fake clock passed in, no sleeps."""

from __future__ import annotations

import pytest

from xorj_actors.quotas import (
    MAX_RETRY_AFTER_S,
    EndpointBudget,
    full_rate,
    give_back,
    new_state,
    on_success,
    on_throttled,
    retry_after_seconds,
    take,
)

JUPITER = EndpointBudget(requests=60, window_s=60.0, burst=3)


def _grants(budget: EndpointBudget, start: float, end: float, step: float) -> list[float]:
    """Clock readings at which a caller asking every ``step`` s from ``start`` got a token."""
    state, out, now = new_state(budget, start), [], start
    while now < end:
        state, wait = take(budget, state, now)
        if wait == 0.0:
            out.append(now)
        now = round(now + step, 6)
    return out


def test_a_full_bucket_grants_its_burst_at_once_then_makes_the_caller_wait() -> None:
    state = new_state(JUPITER, 0.0)
    for _ in range(3):
        state, wait = take(JUPITER, state, 0.0)
        assert wait == 0.0
    state, wait = take(JUPITER, state, 0.0)
    # (60 - 3 + 1) tokens a minute: the next one in 60/58 s.
    assert wait == pytest.approx(60 / 58)
    state, wait = take(JUPITER, state, 60 / 58)
    assert wait == 0.0


@pytest.mark.parametrize("budget", [JUPITER, EndpointBudget(requests=1, window_s=1.0), EndpointBudget(requests=200, window_s=1.0)])
def test_no_sliding_window_ever_holds_more_than_the_budget(budget: EndpointBudget) -> None:
    step = budget.window_s / 1000
    grants = _grants(budget, 0.0, budget.window_s * 5, step)
    worst = max(sum(1 for g in grants if t <= g < t + budget.window_s) for t in grants)
    assert worst <= budget.requests
    # and the budget is nearly all used: a greedy caller gets at least 90 % of it
    assert len(grants) >= 0.9 * budget.requests * 5


def test_a_429_halves_the_rate_empties_and_pauses_the_bucket_for_retry_after() -> None:
    state = on_throttled(JUPITER, new_state(JUPITER, 0.0), 10.0, retry_after_s=7.0)
    assert state.rate_factor == 0.5 and state.tokens == 0.0
    _, wait = take(JUPITER, state, 12.0)
    assert wait == pytest.approx(5.0)  # paused until 17
    # after the pause, tokens come at half the rate
    _, wait = take(JUPITER, state, 17.0)
    assert wait == pytest.approx(1 / (full_rate(JUPITER) * 0.5))


def test_a_429_without_retry_after_pauses_for_pause_s() -> None:
    budget = EndpointBudget(requests=10, window_s=1.0, pause_s=2.5)
    state = on_throttled(budget, new_state(budget, 0.0), 1.0, None)
    assert state.paused_until == 3.5


def test_repeated_429s_stop_at_the_floor_and_successes_climb_back_additively() -> None:
    state = new_state(JUPITER, 0.0)
    for i in range(10):
        state = on_throttled(JUPITER, state, float(i), 0.0)
    assert state.rate_factor == JUPITER.min_rate_fraction
    for _ in range(5):
        state = on_success(JUPITER, state)
    assert state.rate_factor == pytest.approx(JUPITER.min_rate_fraction + 5 * JUPITER.increase)
    for _ in range(100):
        state = on_success(JUPITER, state)
    assert state.rate_factor == 1.0


def test_a_later_shorter_retry_after_does_not_shorten_a_pause() -> None:
    state = on_throttled(JUPITER, new_state(JUPITER, 0.0), 0.0, 30.0)
    state = on_throttled(JUPITER, state, 1.0, 2.0)
    assert state.paused_until == 30.0


def test_a_huge_retry_after_is_clamped() -> None:
    state = on_throttled(JUPITER, new_state(JUPITER, 0.0), 0.0, 86_400.0)
    assert state.paused_until == MAX_RETRY_AFTER_S


def test_a_token_given_back_is_there_for_the_next_caller_but_never_beyond_the_burst() -> None:
    state = new_state(JUPITER, 0.0)
    state, _ = take(JUPITER, state, 0.0)
    state = give_back(JUPITER, state)
    assert state.tokens == 3.0
    assert give_back(JUPITER, state).tokens == 3.0


def test_a_clock_going_backwards_grants_nothing_extra() -> None:
    state = new_state(JUPITER, 100.0)
    for _ in range(3):
        state, _ = take(JUPITER, state, 100.0)
    state, wait = take(JUPITER, state, 50.0)
    assert wait > 0.0 and state.at == 100.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("7", 7.0),
        (" 0 ", 0.0),
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: go now
        ("soon", None),
        ("-5", None),
        ("1.5", None),  # delta-seconds is an integer
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(header: str | None, expected: float | None) -> None:
    wall_now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert retry_after_seconds(header, wall_now) == expected
