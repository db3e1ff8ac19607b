"""Correlated-exposure limits: token clusters estimated from sampled prices, and how much a
vault, and all vaults together, may hold in one cluster (docs/RISK.md, "Correlated exposure").

Pure parts (:func:`correlations`, :func:`clusters`, :func:`fit_buys`) are apart from the one
shared object (:class:`ExposureBoard`) and the estimator the price watch feeds.
"""

from __future__ import annotations

from xorj_actors.correlation._board import Buy, ExposureBoard, NoRoom
from xorj_actors.correlation._check import check_correlation
from xorj_actors.correlation._estimate import (
    EMPTY_SNAPSHOT,
    Cluster,
    CorrelationSnapshot,
    PairCorrelation,
    PriceHistory,
    clusters,
    correlations,
    estimate,
)
from xorj_actors.correlation._estimator import CorrelationEstimator
from xorj_actors.correlation._report import correlation_report, exposure_usd, render_correlation
from xorj_actors.correlation._limits import ClusterLimits, Cut, fit_buys, share_room, stakes, usd_by_mint
from xorj_actors.correlation.settings import CorrelationSettings

__all__ = [
    "EMPTY_SNAPSHOT",
    "Buy",
    "Cluster",
    "ClusterLimits",
    "CorrelationEstimator",
    "CorrelationSettings",
    "CorrelationSnapshot",
    "Cut",
    "ExposureBoard",
    "NoRoom",
    "PairCorrelation",
    "PriceHistory",
    "check_correlation",
    "clusters",
    "correlation_report",
    "correlations",
    "estimate",
    "exposure_usd",
    "fit_buys",
    "render_correlation",
    "share_room",
    "stakes",
    "usd_by_mint",
]
