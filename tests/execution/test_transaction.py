"""The priority fee (the legs of a route are checked by the route checks: test_route_refusals.py)."""

from __future__ import annotations

from xorj_actors.execution._transaction import priority_fee


def test_priority_fee_takes_the_percentile_within_the_cap() -> None:
    assert priority_fee([], 0.75, 100) == 0
    assert priority_fee([5, 1, 3, 2], 0.75, 100) == 3
    assert priority_fee([5, 1, 3, 2], 1.0, 4) == 4
    assert priority_fee([-7], 0.5, 100) == 0
