"""The trade gate on a board the test publishes to (no breaker actors, no runtime)."""

from __future__ import annotations

from xorj_actors.breakers import BREAKERS, BreakerBoard, BreakerName, BreakerStatus, CircuitState, TradeGate

T = BreakerName.TRADE_FAILURE_RATE


def status(state: CircuitState, generation: int, probes: int = 0) -> BreakerStatus:
    return BreakerStatus(breaker=T, state=state, generation=generation, probes_allowed=probes,
                         failures_in_window=0, consecutive=0, opened_at=None, reason="boom")


def test_half_open_lets_its_probes_through_once_per_generation() -> None:
    board = BreakerBoard((T,))
    claim, _, memory = board.claim(T)  # a fresh slot's memory: nothing to remember
    gate = TradeGate(board)
    assert gate.admit() == f"breaker {T} is not running", "claimed but never published"
    board.publish(claim, status(CircuitState.CLOSED, 0), memory)
    assert gate.admit() is None
    board.publish(claim, status(CircuitState.OPEN, 1), memory)
    assert gate.admit() == f"breaker {T} is OPEN: boom"
    assert gate.admit(reduces_exposure=True) is None
    board.publish(claim, status(CircuitState.HALF_OPEN, 1, probes=2), memory)
    assert gate.admit(reduces_exposure=True) is None, "a reducing trade uses no probe"
    assert [gate.admit(), gate.admit()] == [None, None]
    assert gate.admit() == f"breaker {T} is HALF_OPEN: its 2 probe trade(s) are out"
    board.publish(claim, status(CircuitState.HALF_OPEN, 2, probes=1), memory)
    assert gate.admit() is None, "a new generation gets its own probes"
    assert gate.admit() == f"breaker {T} is HALF_OPEN: its 1 probe trade(s) are out"
    board.release(claim)
    assert gate.admit(reduces_exposure=True) == f"breaker {T} is not running"


def test_the_board_takes_breaker_names_as_members_or_values() -> None:
    board = BreakerBoard(BREAKERS)
    assert board.names == tuple(BreakerName)
    claim, last, memory = board.claim("hsm_failure_rate")
    assert (claim.breaker, last, memory.failures) == (BreakerName.HSM_FAILURE_RATE, None, ())
