"""The localnet's walk can move tokens together (the rule behind ``POST /admin/co-move``)."""

from __future__ import annotations

import pytest
from solders.pubkey import Pubkey

from xorj_actors.correlation import correlations
from xorj_actors.localnet.genesis import TokenSpec
from xorj_actors.localnet.pricing import PriceWalk


def _tokens(n: int) -> list[TokenSpec]:
    return [
        TokenSpec(symbol=f"T{i}", mint=Pubkey.new_unique(), decimals=6, price_usd=1.0 + i, volatility=0.5 + i,
                  depth_usd=1e6, stable=False)
        for i in range(n)
    ]


def _walk(tokens: list[TokenSpec]) -> PriceWalk:
    return PriceWalk(tokens, seed=7, step_s=60.0, manual=True, spike_multiplier=20.0)


def _pairs(walk: PriceWalk, mints: tuple[str, ...], n: int = 60) -> dict[tuple[str, str], float | None]:
    ticks = [walk.prices()]
    for _ in range(n):
        walk.advance(1)
        ticks.append(walk.prices())
    return {(p.a, p.b): p.value for p in correlations(ticks, mints, min_samples=30)}


def test_co_moving_tokens_move_by_the_same_shocks_and_the_others_do_not() -> None:
    tokens = _tokens(3)
    walk = _walk(tokens)
    a, b, c = sorted(str(t.mint) for t in tokens)
    assert walk.co_move([[b, a]]) == ((a, b),)
    together = _pairs(walk, (a, b, c))
    assert together[(a, b)] == pytest.approx(1.0)  # each at its own volatility, the same shocks
    assert abs(together[(a, c)]) < 0.6 and abs(together[(b, c)]) < 0.6
    assert walk.co_move([]) == ()
    assert abs(_pairs(walk, (a, b))[(a, b)]) < 0.6


def test_bad_groups_are_refused_and_change_nothing() -> None:
    tokens = _tokens(2)
    walk = _walk(tokens)
    a, b = (str(t.mint) for t in tokens)
    before = walk.prices()
    for groups in ([[a]], [[a, "nope"]], [[a, b], [b, a]]):
        with pytest.raises(ValueError, match="groups"):
            walk.co_move(groups)
    assert walk.prices() == before
    assert abs(_pairs(walk, (a, b))[tuple(sorted((a, b)))]) < 0.6
