"""plan_trades: properties over random vaults, markets, targets, settings and position factors."""

from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from xorj_actors.vaults._reconcile import SkipReason, TradePlan, plan_trades
from xorj_actors.vaults.settings import VaultSettings

STABLE = "USDC"
VOLATILE = ("JUP", "BONK", "SOL", "WIF")
MINTS = (STABLE, *VOLATILE)
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def exact(x: float) -> Fraction:
    return Fraction(repr(float(x)))


@st.composite
def markets(draw: st.DrawFn, min_decimals: int = 0, max_price: float = 1e5) -> tuple[dict[str, float], dict[str, int]]:
    prices = {STABLE: draw(st.sampled_from([1.0, 0.9987, 1.0004]))}
    decimals = {STABLE: draw(st.sampled_from([6, 2, 9]))}
    for mint in VOLATILE:
        prices[mint] = draw(st.floats(1e-6, max_price, allow_nan=False, allow_infinity=False))
        decimals[mint] = draw(st.integers(min_decimals, 12))
    return prices, decimals


@st.composite
def targets(draw: st.DrawFn, min_stable: int = 0) -> dict[str, float]:
    """Weights with six decimals summing to exactly 1 in decimal, as the quant engine sends them."""
    mints = draw(st.lists(st.sampled_from(MINTS), min_size=1, max_size=len(MINTS), unique=True))
    if min_stable and STABLE not in mints:
        mints.append(STABLE)
    cuts = sorted(draw(st.lists(st.integers(0, 10**6), min_size=len(mints) - 1, max_size=len(mints) - 1)))
    parts = [b - a for a, b in zip([0, *cuts], [*cuts, 10**6])]
    if min_stable:
        stable_at = mints.index(STABLE)
        scale = 10**6 - min_stable
        parts = [p * scale // 10**6 for p in parts]
        parts[stable_at] += 10**6 - sum(parts)
    return {m: p / 10**6 for m, p in zip(mints, parts) if p}


holdings_st = st.dictionaries(st.sampled_from(MINTS), st.integers(0, 10**14), max_size=len(MINTS))


@st.composite
def vault_settings(draw: st.DrawFn) -> VaultSettings:
    min_usd = draw(st.sampled_from([0.01, 1.0, 5.0]))
    s = VaultSettings(
        min_trade_usd=min_usd,
        max_trade_usd=draw(st.sampled_from([2 * min_usd, 100.0, 10_000.0, 1e9])),
        oversize=draw(st.sampled_from(["split", "refuse"])),
        max_split=draw(st.integers(1, 12)),
        max_concentration=draw(st.sampled_from([0.05, 0.3, 0.6, 1.0])),
        proceeds_haircut_bps=draw(st.sampled_from([0, 1, 100, 300])),
    )
    s.validate()
    return s


factors = st.sampled_from([1.0, 0.75, 0.5, 0.25, 0.1])


def value(mint: str, units: int, prices: dict[str, float], decimals: dict[str, int]) -> Fraction:
    return units * exact(prices[mint]) / 10 ** decimals[mint]


def run(
    holdings: dict[str, int],
    prices: dict[str, float],
    decimals: dict[str, int],
    target: dict[str, float],
    s: VaultSettings,
    factor: float,
) -> TradePlan:
    return plan_trades(holdings, prices, decimals, STABLE, target, s, factor, "vault-0003", 11)


@PROPERTY
@given(holdings_st, markets(), targets(), vault_settings(), factors)
def test_every_plan_keeps_the_invariants(
    holdings: dict[str, int],
    market: tuple[dict[str, float], dict[str, int]],
    target: dict[str, float],
    s: VaultSettings,
    factor: float,
) -> None:
    prices, decimals = market
    result = run(holdings, prices, decimals, target, s, factor)
    assert result == run(holdings, prices, decimals, target, s, factor)  # deterministic
    assert not result.refused
    trades = result.trades
    assert [t.trade_id for t in trades] == [f"vault-0003:11:{i}" for i in range(len(trades))]
    sides = [t.reduces_exposure for t in trades]
    assert sides == sorted(sides, reverse=True), "sells before buys"

    def val(mint: str, units: int) -> Fraction:
        return value(mint, units, prices, decimals)

    sold: Counter[str] = Counter()
    bought: Counter[str] = Counter()
    pieces: Counter[tuple[bool, str]] = Counter()
    sizes: dict[tuple[bool, str], list[int]] = {}
    for t in trades:
        assert type(t.amount_in) is int and t.amount_in > 0
        assert val(t.input_mint, t.amount_in) <= exact(s.max_trade_usd)
        if t.reduces_exposure:
            assert t.input_mint != STABLE and t.output_mint == STABLE
            sold[t.input_mint] += t.amount_in
            pieces[(True, t.input_mint)] += 1
        else:
            assert t.input_mint == STABLE and t.output_mint != STABLE
            bought[t.output_mint] += t.amount_in
            pieces[(False, t.output_mint)] += 1
    for t in trades:
        mint = t.input_mint if t.reduces_exposure else t.output_mint
        sizes.setdefault((t.reduces_exposure, mint), []).append(t.amount_in)
        unit = val(t.input_mint, 1)
        # A whole trade is never dust; split pieces are at least about half of max_trade_usd.
        floor_usd = exact(s.min_trade_usd) - (2 * unit if pieces[(t.reduces_exposure, mint)] > 1 else 0)
        assert val(t.input_mint, t.amount_in) >= floor_usd
    assert not set(sold) & set(bought), "no mint is both sold and bought"
    assert pieces.keys() == sizes.keys() and all(max(v) - min(v) <= 1 for v in sizes.values()), "equal pieces"
    assert all(len(v) <= s.max_split for v in sizes.values())

    total = sum((val(m, u) for m, u in holdings.items() if u), Fraction(0))
    cap = exact(s.max_concentration)
    proceeds = sum(math.floor(val(m, n) * 10 ** decimals[STABLE] / exact(prices[STABLE])) for m, n in sold.items())
    assert sum(bought.values()) == result.stable_for_buys <= result.stable_available
    haircut = Fraction(10_000 - s.proceeds_haircut_bps, 10_000)
    assert result.stable_available <= holdings.get(STABLE, 0) + proceeds * haircut
    for mint, n in sold.items():
        assert n <= holdings.get(mint, 0)
        weight = target.get(mint, 0.0)
        if weight:
            # A partial sell never takes a token below its (capped) target.
            assert val(mint, holdings[mint] - n) >= total * min(exact(weight), cap)
    for mint, n in bought.items():
        # A buy never takes a token above its target, nor above the concentration cap.
        assert val(mint, holdings.get(mint, 0)) + val(STABLE, n) <= total * min(exact(target[mint]), cap)
    skipped_mints = {x.mint for x in result.skipped}
    for mint, units in holdings.items():
        if mint != STABLE and units and mint not in target and factor == 1.0 and mint not in skipped_mints:
            assert sold[mint] == units, "an exit sells the whole balance"


@PROPERTY
@given(holdings_st, markets(), targets(min_stable=100_000), factors)
def test_the_position_factor_scales_every_trade(
    holdings: dict[str, int], market: tuple[dict[str, float], dict[str, int]], target: dict[str, float], factor: float
) -> None:
    prices, decimals = market
    s = VaultSettings(max_trade_usd=1e12, max_concentration=1.0, proceeds_haircut_bps=0)
    full = run(holdings, prices, decimals, target, s, 1.0)
    part = run(holdings, prices, decimals, target, s, factor)
    for result in (full, part):
        assume(not any(x.reason is SkipReason.INSUFFICIENT_STABLE for x in result.skipped))
    dust = {x.mint for x in (*full.skipped, *part.skipped)}

    def totals(result: TradePlan) -> Counter[tuple[str, str]]:
        out: Counter[tuple[str, str]] = Counter()
        for t in result.trades:
            out[(t.input_mint, t.output_mint)] += t.amount_in
        return out

    scaled, whole = totals(part), totals(full)
    for (a, b), amount in whole.items():
        if (a if a != STABLE else b) in dust:
            continue
        assert scaled[(a, b)] == math.floor(amount * exact(factor))
    assert set(scaled) <= set(whole)


@PROPERTY
@given(holdings_st, markets(min_decimals=5, max_price=1e4), targets(), st.sampled_from([0.05, 0.3, 0.6, 1.0]))
def test_executing_a_plan_then_replanning_trades_only_what_was_dust(
    holdings: dict[str, int], market: tuple[dict[str, float], dict[str, int]], target: dict[str, float], cap: float
) -> None:
    """Convergence: settle every trade at the reference prices, plan again: nothing left but dust."""
    prices, decimals = market
    s = VaultSettings(max_trade_usd=1e12, max_concentration=cap, proceeds_haircut_bps=0)
    first = run(holdings, prices, decimals, target, s, 1.0)
    after = Counter(holdings)
    for t in first.trades:
        got = value(t.input_mint, t.amount_in, prices, decimals)
        after[t.input_mint] -= t.amount_in
        after[t.output_mint] += math.floor(got * 10 ** decimals[t.output_mint] / exact(prices[t.output_mint]))
        assert after[t.input_mint] >= 0
    second = run(dict(after), prices, decimals, target, s, 1.0)
    dust = {x.mint for x in first.skipped if x.reason in (SkipReason.DUST, SkipReason.INSUFFICIENT_STABLE)}
    for t in second.trades:
        assert (t.input_mint if t.reduces_exposure else t.output_mint) in dust


@PROPERTY
@given(holdings_st, markets(), targets(), vault_settings())
def test_a_missing_price_for_any_held_or_targeted_mint_refuses(
    holdings: dict[str, int], market: tuple[dict[str, float], dict[str, int]], target: dict[str, float], s: VaultSettings
) -> None:
    prices, decimals = market
    needed = sorted({m for m, u in holdings.items() if u} | set(target))
    assume(any(u for u in holdings.values()))
    for missing in needed:
        result = run(holdings, {m: p for m, p in prices.items() if m != missing}, decimals, target, s, 1.0)
        assert result.refused and result.trades == ()
        assert [(x.reason, x.mint) for x in result.skipped] == [(SkipReason.MISSING_PRICE, missing)]


def test_strategies_reach_the_interesting_cases() -> None:
    """Guard against a vacuous property run: the generators do produce splits, exits, cuts, caps."""
    seen: set[SkipReason | str] = set()

    @settings(max_examples=300, deadline=None, database=None)
    @given(holdings_st, markets(), targets(), vault_settings(), factors)
    def collect(holdings, market, target, s, factor) -> None:  # type: ignore[no-untyped-def]
        result = run(holdings, *market, target, s, factor)
        seen.update(x.reason for x in result.skipped)
        by_mint = Counter((t.reduces_exposure, t.input_mint, t.output_mint) for t in result.trades)
        if any(n > 1 for n in by_mint.values()):
            seen.add("split")
        if any(t.reduces_exposure and t.input_mint not in target for t in result.trades):
            seen.add("exit")
        if result.trades and not result.trades[-1].reduces_exposure:
            seen.add("buy")

    collect()
    wanted = {
        "split",
        "exit",
        "buy",
        SkipReason.DUST,
        SkipReason.OVERSIZE,
        SkipReason.SPLIT_LIMIT,
        SkipReason.CONCENTRATION_CAP,
        SkipReason.INSUFFICIENT_STABLE,
    }
    assert wanted <= seen, wanted - seen

