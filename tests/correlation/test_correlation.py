"""Correlations, clusters and the correlated-exposure limits (pure, synthetic price series)."""

from __future__ import annotations

import dataclasses
import math
import random
from fractions import Fraction

import pytest

from xorj_actors.correlation import (
    ClusterLimits,
    CorrelationEstimator,
    CorrelationSettings,
    ExposureBoard,
    PairCorrelation,
    PriceHistory,
    clusters,
    correlations,
    fit_buys,
)
from xorj_actors.vaults import SkipReason, plan_trades
from xorj_actors.vaults.settings import VaultSettings

USDC, BONK, WIF, SOL = "USDC", "BONK", "WIF", "SOL"
PRICES = {USDC: 1.0, BONK: 0.5, WIF: 2.0, SOL: 150.0}
DECIMALS = {USDC: 6, BONK: 6, WIF: 6, SOL: 9}
UNCAPPED = VaultSettings(max_concentration=1.0)


def series(n: int, seed: int, *, together: bool) -> list[dict[str, float]]:
    """BONK and WIF move together (same shocks, small noise) or independently; SOL always on its own."""
    rng = random.Random(seed)
    prices = {BONK: 1.0, WIF: 3.0, SOL: 150.0}
    ticks = [dict(prices)]
    for _ in range(n):
        common = rng.gauss(0, 0.02)
        prices[BONK] *= math.exp(common + rng.gauss(0, 0.002))
        prices[WIF] *= math.exp((common if together else rng.gauss(0, 0.02)) + rng.gauss(0, 0.002))
        prices[SOL] *= math.exp(rng.gauss(0, 0.02))
        ticks.append(dict(prices))
    return ticks


def pair(pairs: tuple[PairCorrelation, ...], a: str, b: str) -> PairCorrelation:
    return next(p for p in pairs if (p.a, p.b) == tuple(sorted((a, b))))


def test_a_pair_moving_together_is_one_cluster() -> None:
    pairs = correlations(series(100, 1, together=True), (BONK, WIF, SOL), min_samples=30)
    assert pair(pairs, BONK, WIF).value > 0.95
    assert pair(pairs, BONK, WIF).samples == 100
    assert clusters(pairs, 0.8) == ((BONK, WIF),)


def test_an_uncorrelated_pair_is_no_cluster() -> None:
    pairs = correlations(series(100, 2, together=False), (BONK, WIF, SOL), min_samples=30)
    assert abs(pair(pairs, BONK, WIF).value) < 0.5
    assert clusters(pairs, 0.8) == ()


def test_negative_correlation_never_clusters() -> None:
    ticks = series(100, 3, together=True)
    mirrored = [{BONK: t[BONK], WIF: 1 / t[BONK]} for t in ticks]  # WIF falls as BONK rises
    pairs = correlations(mirrored, (BONK, WIF), min_samples=30)
    assert pair(pairs, BONK, WIF).value == pytest.approx(-1.0)
    assert clusters(pairs, 0.8) == ()


def test_the_threshold_itself_links() -> None:
    pairs = (PairCorrelation(a=BONK, b=WIF, value=0.8, samples=50),)
    assert clusters(pairs, 0.8) == ((BONK, WIF),)
    assert clusters(pairs, 0.8000001) == ()


def test_single_linkage_joins_chains_in_a_deterministic_order() -> None:
    pairs = (
        PairCorrelation(a="C", b="D", value=0.9, samples=50),
        PairCorrelation(a="A", b="B", value=0.9, samples=50),
        PairCorrelation(a="B", b="Z", value=0.1, samples=50),
        PairCorrelation(a="D", b="E", value=0.85, samples=50),
    )
    assert clusters(pairs, 0.8) == (("A", "B"), ("C", "D", "E"))
    assert clusters(reversed(pairs), 0.8) == (("A", "B"), ("C", "D", "E"))


def test_too_few_samples_is_unknown_and_links_only_when_conservative() -> None:
    pairs = correlations(series(29, 4, together=True), (BONK, WIF), min_samples=30)
    assert pair(pairs, BONK, WIF) == PairCorrelation(a=BONK, b=WIF, value=None, samples=29)
    assert clusters(pairs, 0.8) == ()
    assert clusters(pairs, 0.8, unknown_correlated=True) == ((BONK, WIF),)


def test_a_flat_price_is_unknown_not_uncorrelated() -> None:
    ticks = [{BONK: t[BONK], WIF: 2.0} for t in series(50, 5, together=True)]
    assert pair(correlations(ticks, (BONK, WIF), min_samples=30), BONK, WIF).value is None


def test_returns_are_aligned_on_ticks_where_both_are_priced() -> None:
    ticks = series(60, 6, together=True)
    for t in ticks[10:20]:
        del t[WIF]  # a gap: the returns across it are not counted
    assert pair(correlations(ticks, (BONK, WIF), min_samples=30), BONK, WIF).samples == 60 - 11


def test_the_window_drops_old_ticks_and_the_estimator_refreshes_on_schedule() -> None:
    board = ExposureBoard(CorrelationSettings(window_s=50, min_samples=30, refresh_s=10))
    estimator = CorrelationEstimator(board, (BONK, WIF, SOL), wall=lambda: 1234.0)
    published = []
    for i, t in enumerate(series(100, 7, together=True)):
        published.append(estimator.observe(t, float(i)))
    assert [i for i, s in enumerate(published) if s is not None] == list(range(0, 101, 10))
    assert len(estimator.history) == 51
    assert board.snapshot.ticks == 51 and board.snapshot.as_of == 1234.0
    assert board.snapshot.clusters == ((BONK, WIF),)


def test_history_ignores_prices_that_are_not_prices() -> None:
    h = PriceHistory(10)
    h.add({BONK: 0.0, WIF: float("nan"), SOL: 1.0}, 0.0)
    assert h.ticks() == [{SOL: 1.0}]


def test_fit_buys_cuts_in_proportion_rounding_down_and_leaves_others() -> None:
    buys = [(BONK, 3_000_001), (SOL, 5), (WIF, 1_000_000)]
    fitted, cuts = fit_buys(buys, (BONK, WIF), 2_000_000)
    assert fitted == [(BONK, 3_000_001 * 2_000_000 // 4_000_001), (SOL, 5), (WIF, 1_000_000 * 2_000_000 // 4_000_001)]
    assert sum(u for m, u in fitted if m != SOL) <= 2_000_000
    assert [(c.mint, c.wanted) for c in cuts] == [(BONK, 3_000_001), (WIF, 1_000_000)]
    assert fit_buys(buys, (BONK, WIF), 4_000_001) == (buys, [])
    assert fit_buys(buys, (BONK, WIF), -5)[0] == [(BONK, 0), (SOL, 5), (WIF, 0)]


def limits(share: str, room: dict | None = None) -> ClusterLimits:
    return ClusterLimits(clusters=((BONK, WIF),), max_share=Fraction(share), global_room=room or {})


def plan(holdings: dict[str, int], target: dict[str, float], correlation: ClusterLimits | None):
    return plan_trades(holdings, PRICES, DECIMALS, USDC, target, UNCAPPED, 1.0, "vault-0001", 7, correlation)


def test_a_correlated_pair_under_each_cap_is_cut_to_the_clusters_share() -> None:
    # 10,000 USDC, 40 % BONK + 40 % WIF: each under a 60 % cap, together 80 % of one bet.
    target = {BONK: 0.4, WIF: 0.4, USDC: 0.2}
    free = plan({USDC: 10_000_000_000}, target, None)
    assert [t.amount_in for t in free.trades] == [4_000_000_000, 4_000_000_000]
    cut = plan({USDC: 10_000_000_000}, target, limits("0.5"))
    assert [(t.output_mint, t.amount_in) for t in cut.trades] == [(BONK, 2_500_000_000), (WIF, 2_500_000_000)]
    skipped = [(s.reason, s.mint, s.value_usd) for s in cut.skipped]
    assert skipped == [
        (SkipReason.CORRELATED_EXPOSURE, BONK, 1500.0),
        (SkipReason.CORRELATED_EXPOSURE, WIF, 1500.0),
    ]
    assert "per_vault_max_share 0.5" in cut.skipped[0].detail


def test_an_uncorrelated_pair_is_not_limited() -> None:
    target = {BONK: 0.4, WIF: 0.4, USDC: 0.2}
    apart = ClusterLimits(clusters=(), max_share=Fraction(1, 2))
    assert plan({USDC: 10_000_000_000}, target, apart) == plan({USDC: 10_000_000_000}, target, None)


def test_a_cluster_already_at_its_share_refuses_buys_but_never_forces_sells() -> None:
    # 3,000 USD of BONK already held in a 10,000 USD vault with a 30 % cluster share.
    held = {USDC: 7_000_000_000, BONK: 6_000_000_000}
    result = plan(held, {BONK: 0.3, WIF: 0.3, USDC: 0.4}, limits("0.3"))
    assert result.trades == ()
    assert [(s.reason, s.mint, s.value_usd) for s in result.skipped] == [(SkipReason.CORRELATED_EXPOSURE, WIF, 3000.0)]
    over = plan({USDC: 5_000_000_000, BONK: 10_000_000_000}, {BONK: 0.5, USDC: 0.5}, limits("0.1"))
    assert over.trades == () and over.skipped == ()  # already above: nothing bought, nothing sold for it


def test_sells_out_of_a_cluster_are_never_limited() -> None:
    result = plan({BONK: 10_000_000_000}, {USDC: 1.0}, limits("0.1", {(BONK, WIF): Fraction(0)}))
    assert [(t.input_mint, t.amount_in) for t in result.trades] == [(BONK, 10_000_000_000)]
    assert result.skipped == ()


def test_the_engine_wide_room_cuts_after_the_vaults_share() -> None:
    result = plan({USDC: 10_000_000_000}, {BONK: 0.4, WIF: 0.4, USDC: 0.2}, limits("0.5", {(BONK, WIF): Fraction(1000)}))
    assert [t.amount_in for t in result.trades] == [500_000_000, 500_000_000]
    assert [s.reason for s in result.skipped] == [SkipReason.CORRELATED_EXPOSURE] * 2 + [
        SkipReason.CORRELATED_EXPOSURE_GLOBAL
    ] * 2


def test_off_means_no_limits() -> None:
    assert ExposureBoard(CorrelationSettings(enabled=False)).limits() is None


@pytest.mark.parametrize(
    ("field", "value"),
    [("threshold", 0.0), ("threshold", 1.1), ("min_samples", 2), ("per_vault_max_share", 0.0), ("global_max_usd", -1.0),
     ("window_s", 5.0), ("refresh_s", float("nan"))],
)
def test_bad_settings_are_refused(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(CorrelationSettings(), **{field: value}).validate()


def test_a_repeated_answer_is_no_new_sample() -> None:
    h = PriceHistory(100)
    assert h.add({BONK: 1.0, WIF: 2.0}, 0.0) and not h.add({BONK: 1.0, WIF: 2.0}, 1.0)
    assert h.add({BONK: 1.0, WIF: 2.5}, 2.0) and len(h) == 2


def test_a_window_too_short_for_min_samples_at_the_watchs_pace_is_refused() -> None:
    from xorj_actors.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match="correlation.window_s: 60 s holds fewer than min_samples"):
        parse_config("[correlation]\nwindow_s = 60.0\nmin_samples = 30\n[gateway]\nprice_poll_s = 2.0\n")
    assert parse_config("[correlation]\nwindow_s = 62.0\nmin_samples = 30\n[gateway]\nprice_poll_s = 2.0\n")
    assert parse_config("[correlation]\nenabled = false\nwindow_s = 60.0\n[gateway]\nprice_poll_s = 2.0\n")
