"""Correlations and clusters of tokens from sampled prices (pure: no I/O, no clock, no actor).

The price watch samples every traded mint at once (one ``/price/v3`` answer is one *tick*).
A pair's correlation is the Pearson correlation of the two tokens' log returns between
consecutive ticks in which both were priced, over the ticks of the window. With fewer than
``min_samples`` such returns, or a flat price (no variance), it is *unknown* (``None``).

Clusters are the connected components of the graph whose edges are the pairs at or above the
threshold (single linkage): A~B and B~C put A, B and C in one cluster even if A and C are not
linked. Unknown pairs are edges only when ``unknown_correlated`` (the conservative choice).
Negative correlation never links (it hedges). Only clusters of two or more tokens are reported;
one token alone is bounded by ``[vaults] max_concentration``. The order is deterministic: members
sorted, clusters sorted by their first member.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping

from supervisors import Message

__all__ = ["EMPTY_SNAPSHOT", "Cluster", "CorrelationSnapshot", "PairCorrelation", "PriceHistory", "clusters", "correlations", "estimate"]

Cluster = tuple[str, ...]


class PairCorrelation(Message):
    """One pair's correlation (``a < b``); ``value`` None: unknown."""

    a: str
    b: str
    value: float | None
    samples: int


class CorrelationSnapshot(Message):
    """What the estimator published last: vaults and ``ctl risk`` read it, nobody changes it."""

    #: Wall-clock time (s since the epoch) it was computed; 0.0: never (the empty snapshot).
    as_of: float
    #: Ticks in the window it was computed from.
    ticks: int
    threshold: float
    pairs: tuple[PairCorrelation, ...]
    clusters: tuple[Cluster, ...]


#: Before the first estimate: no clusters, so no correlated-exposure limit applies yet.
EMPTY_SNAPSHOT = CorrelationSnapshot(as_of=0.0, ticks=0, threshold=1.0, pairs=(), clusters=())


class PriceHistory:
    """The ticks of the last ``window_s`` seconds (``at``: any monotonic seconds)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._ticks: deque[tuple[float, dict[str, float]]] = deque()

    def add(self, prices: Mapping[str, float], at: float) -> bool:
        """One tick; non-finite or non-positive prices are left out of it (not a price).

        A tick equal to the last one is not kept (False): it is the same answer again (the
        gateway's price cache), and its zero returns would make two tokens look related.
        """
        good = {m: float(p) for m, p in prices.items() if isinstance(p, int | float) and math.isfinite(p) and p > 0}
        horizon = at - self.window_s
        kept = not self._ticks or self._ticks[-1][1] != good
        if kept:
            self._ticks.append((at, good))
        while self._ticks and self._ticks[0][0] < horizon:
            self._ticks.popleft()
        return kept

    def __len__(self) -> int:
        return len(self._ticks)

    def ticks(self) -> list[Mapping[str, float]]:
        return [prices for _, prices in self._ticks]


def _returns(ticks: list[Mapping[str, float]], mint: str) -> list[float | None]:
    out: list[float | None] = []
    for before, after in zip(ticks, ticks[1:]):
        p0, p1 = before.get(mint), after.get(mint)
        out.append(math.log(p1 / p0) if p0 is not None and p1 is not None else None)
    return out


def _pearson(xs: list[float], ys: list[float]) -> float | None:
    n = len(xs)
    mx, my = math.fsum(xs) / n, math.fsum(ys) / n
    sxy = math.fsum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx = math.fsum((x - mx) ** 2 for x in xs)
    syy = math.fsum((y - my) ** 2 for y in ys)
    # A flat price has no variance: its correlation says nothing (unknown, not 0).
    if sxx <= 1e-24 or syy <= 1e-24:
        return None
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


def correlations(ticks: list[Mapping[str, float]], mints: Iterable[str], min_samples: int) -> tuple[PairCorrelation, ...]:
    """Every pair of ``mints`` (sorted), on the returns both have; None below ``min_samples``."""
    names = sorted(set(mints))
    series = {m: _returns(ticks, m) for m in names}
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            both = [(x, y) for x, y in zip(series[a], series[b]) if x is not None and y is not None]
            value = _pearson([x for x, _ in both], [y for _, y in both]) if len(both) >= min_samples else None
            out.append(PairCorrelation(a=a, b=b, value=value, samples=len(both)))
    return tuple(out)


def clusters(pairs: Iterable[PairCorrelation], threshold: float, *, unknown_correlated: bool = False) -> tuple[Cluster, ...]:
    """Connected components (two or more tokens) of the pairs at or above ``threshold``."""
    parent: dict[str, str] = {}

    def root(m: str) -> str:
        parent.setdefault(m, m)
        while parent[m] != m:
            parent[m] = parent[parent[m]]
            m = parent[m]
        return m

    for p in pairs:
        root(p.a), root(p.b)
        linked = unknown_correlated if p.value is None else p.value >= threshold
        if linked:
            ra, rb = root(p.a), root(p.b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    groups: dict[str, list[str]] = {}
    for m in parent:
        groups.setdefault(root(m), []).append(m)
    return tuple(sorted(tuple(sorted(g)) for g in groups.values() if len(g) > 1))


def estimate(
    history: PriceHistory, mints: Iterable[str], *, min_samples: int, threshold: float, unknown_correlated: bool, as_of: float
) -> CorrelationSnapshot:
    """The snapshot of ``history`` now."""
    ticks = history.ticks()
    pairs = correlations(ticks, mints, min_samples)
    return CorrelationSnapshot(
        as_of=as_of,
        ticks=len(ticks),
        threshold=threshold,
        pairs=pairs,
        clusters=clusters(pairs, threshold, unknown_correlated=unknown_correlated),
    )
