"""The quota metrics, registered into a given registry (docs/OBSERVABILITY.md).

``xorj_quota_used_ratio`` and ``xorj_quota_waiting`` are read from the buckets at scrape time;
the rest are fed as things happen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["QuotaMetrics"]

#: From a free grant to a minute-long wait behind a 60-a-minute budget.
_WAIT_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class _ScrapeCollector(Collector):
    """The live figures of every endpoint, from ``snapshot()`` at scrape time."""

    def __init__(self, snapshot: Callable[[], Mapping[str, Mapping[str, Any]]]) -> None:
        self._snapshot = snapshot

    def describe(self) -> Iterator[Metric]:
        return iter(())  # read at scrape time only

    def collect(self) -> Iterator[Metric]:
        used = GaugeMetricFamily(
            "xorj_quota_used_ratio", "Share of the endpoint's budget used in its last window", labels=["endpoint"]
        )
        waiting = GaugeMetricFamily("xorj_quota_waiting", "Callers waiting for the endpoint's bucket", labels=["endpoint"])
        # For an alert over any span (the 80 % mark of a 15-minute budget):
        # increase(xorj_quota_granted_total[15m]) / (900 * xorj_quota_budget_per_second) > 0.8
        rate = GaugeMetricFamily(
            "xorj_quota_budget_per_second", "The bucket's budget: requests per window over the window", labels=["endpoint"]
        )
        granted = CounterMetricFamily(
            "xorj_quota_granted", "Turns granted by the bucket (every endpoint drawing from it)", labels=["endpoint"]
        )
        rows = self._snapshot()
        for endpoint, row in rows.items():
            if row["bucket"] != endpoint:  # it draws from another endpoint's bucket: counted there
                continue
            used.add_metric([endpoint], row["used_ratio"])
            waiting.add_metric([endpoint], row["waiting"])
            rate.add_metric([endpoint], row["requests"] / row["window_s"])
            granted.add_metric([endpoint], sum(r["granted"] for r in rows.values() if r["bucket"] == endpoint))
        yield used
        yield waiting
        yield rate
        yield granted


class QuotaMetrics:
    """The counters and histogram of :class:`~xorj_actors.quotas.Quotas`."""

    def __init__(
        self, registry: CollectorRegistry, snapshot: Callable[[], Mapping[str, Mapping[str, Any]]],
        endpoints: Iterable[str], reasons: Iterable[str],
    ) -> None:
        self.wait = Histogram(
            "xorj_quota_wait_seconds", "Time a call waited for its endpoint's budget", ["endpoint"],
            buckets=_WAIT_BUCKETS, registry=registry,
        )
        self.throttled = Counter(
            "xorj_rpc_429", "429 answers received, by endpoint (any provider: RPC, Jupiter, block engine)",
            ["endpoint"], registry=registry,
        )
        self.self_inflicted = Counter(
            "xorj_quota_self_inflicted_429",
            "429 answers to calls made beyond our own budget: a bug, should stay 0", ["endpoint"], registry=registry,
        )
        self.not_served = Counter(
            "xorj_quota_not_served", "Calls that did not get their turn, by reason (queue_full, expired, dropped)",
            ["endpoint", "reason"], registry=registry,
        )
        # Every series exists at zero from the first scrape: increase() works from the start.
        reasons = tuple(reasons)
        endpoints = tuple(endpoints)
        #: endpoint -> its wait histogram's child (labels() takes a lock and builds a key each call).
        self.wait_of = {endpoint: self.wait.labels(endpoint) for endpoint in endpoints}
        for endpoint in endpoints:
            self.throttled.labels(endpoint)
            self.self_inflicted.labels(endpoint)
            for reason in reasons:
                self.not_served.labels(endpoint, reason)
        registry.register(_ScrapeCollector(snapshot))
