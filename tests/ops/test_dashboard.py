"""The Grafana dashboard, proven (issue 16): every query of every panel of
docs/grafana-dashboard.json returns data from a real Prometheus scraping a real engine.

The integration test runs as operators run it: ``xorj-actors localnet`` in its own process, a
test-started ``nats-server``, one engine (``xorj-actors run --node-id``: a cluster node, so the
cluster's panels have data) with its HTTP API, and Debian's ``prometheus`` scraping its
``/metrics`` every second. The vaults trade every strategy round; then ``ctl halt`` halts the
node, so the halt panels have data too. Each panel query is then evaluated over Prometheus's HTTP
API, Grafana's variables replaced as :data:`tests.ops.dashboard.GRAFANA_VARIABLES` says, and must
return at least one series with a finite value (NaN: a quantile over no observations, no data).

The fast tests need no service: the file is Grafana JSON that imports, every metric name of every
query is one the engine's registry exports (so a metric removed from the engine fails in
milliseconds too), and every metric the engine exports is plotted (or :data:`NOT_PLOTTED` says why).
"""

from __future__ import annotations

import math
import time
import urllib.parse
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client.core import Metric

from tests.chaos.cluster_rig import CLUSTER, LOCALNET, QUANT
from tests.chaos.crash_helpers import ENGINE_AGAINST_LOCALNET, EngineProcess, LocalnetProcess, poll
from tests.ops.dashboard import Target, all_panels, concrete, exposed_names, load, metric_names, targets
from tests.plugins.nats_server import NatsServer
from tests.plugins.prometheus import PrometheusServer
from xorj_actors.audit import AuditState
from xorj_actors.config import Config
from xorj_actors.engine import Engine
from xorj_actors.kill_switch import HaltProgress
from xorj_actors.risk import ClockSkewStatus
from xorj_actors.strategy import StrategyStatus

#: Generous for each step of the run (the vaults trade within seconds); the whole run stays well
#: under the 5-minute windows of GRAFANA_VARIABLES.
_TIMEOUT_S = 60.0
#: How long the panels' data may take to reach Prometheus after the halt was scraped.
_SETTLE_S = 15.0


#: Metrics no panel plots, and why: each has no series until its first event, so no short run
#: can prove a panel over it.
NOT_PLOTTED = {
    "xorj_send_route_skips": "a send to an extra route failed: no extra route on the localnet",
    "xorj_correlated_exposure_usd": "series only per cluster of correlated tokens: the localnet's walks are independent "
    "(tests/execution/test_correlated_exposure.py reads it from the board; xorj_correlation_clusters is plotted)",
}


#: One status of each kind an actor publishes for the metrics (the halt, audit, clock and
#: strategy gauges are read from them at scrape time; an actor that has not published has none).
PUBLISHED = (
    HaltProgress(live=3, acked=2, triggered_mono=0.0, ack_deadline_s=1.0, epoch=1),
    AuditState(fail_closed=False, reason=None),
    ClockSkewStatus(checks=1, errors=0, skew_s=0.2, slot=1, block_time=1, consecutive=0, latched=False, triggers=0,
                    last_error=None, lag_allowance_s=0.0),
    StrategyStatus(round=1, scenario=None, fresh=True, last_ok_at=0.0, last_error=None, last_error_at=None,
                   rejections=0, polls=1, polling=False, url="http://quant", started_at=0.0),
)


class _Published:
    """A runtime whose only actors are those that published :data:`PUBLISHED`."""

    def actors(self) -> list[SimpleNamespace]:
        return [
            SimpleNamespace(urn=f"urn:{i}", name=f"a{i}", parent=None, actor_class=type(s), mailbox_depth=0,
                            restarts=0, status=s)
            for i, s in enumerate(PUBLISHED)
        ]


def _registry_families(tmp_path: Path) -> list[Metric]:
    """Every metric family an engine's registry can list: an engine built (not started) as a
    cluster node with a chain node, its publishers having published (:data:`PUBLISHED`)."""
    engine = Engine(Config(), tmp_path / "data")
    engine.metrics.watch(_Published(), engine.board)  # type: ignore[arg-type]
    engine.metrics.watch_cluster(lambda: {"alive": 1})  # as Engine.start does with [cluster]
    engine.metrics.expect_slots()  # as the tree does with [execution] ws_url and rpc_url
    return list(engine.metrics.registry.collect())


def test_the_dashboard_is_grafana_json_that_imports() -> None:
    """What Grafana's import needs: a schema version, the data source as an input variable, each
    panel with an id, a place on the 24-column grid that no other panel takes, and targets with
    a refId and an expression."""
    dashboard = load()
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["uid"] and dashboard["title"]
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    panels = list(all_panels(dashboard))
    assert len({p["id"] for p in panels}) == len(panels), "panel ids repeat"
    taken: dict[tuple[int, int], str] = {}
    for p in panels:
        grid = p["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, p["title"]
        for cell in ((x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])):
            assert cell not in taken, f"{p['title']!r} overlaps {taken[cell]!r}"
            taken[cell] = p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(set(refs)) == len(refs), p["title"]
        assert all(t["expr"] and t["datasource"] == p["datasource"] for t in p["targets"]), p["title"]


def test_every_panel_reads_metrics_the_engine_exports(tmp_path: Path) -> None:
    queries = targets(load())
    assert queries, "the dashboard has no queries"
    families = _registry_families(tmp_path)
    exposed = exposed_names(families)
    unknown = {str(t): sorted(metric_names(t.expr) - exposed) for t in queries if metric_names(t.expr) - exposed}
    assert not unknown, f"panels read metrics the engine does not export: {unknown}"
    assert all(metric_names(t.expr) for t in queries), "a query reads no xorj_ metric"
    plotted = {name for t in queries for name in metric_names(t.expr)}
    unplotted = {f.name for f in families if not exposed_names([f]) & plotted} - set(NOT_PLOTTED)
    assert not unplotted, f"metrics no panel plots (plot them, or say why in NOT_PLOTTED): {sorted(unplotted)}"


def test_grafana_variables_become_promql_and_an_unknown_one_fails() -> None:
    assert concrete("rate(xorj_trades_total[$__rate_interval])") == "rate(xorj_trades_total[5m])"
    assert concrete("increase(xorj_trades_total[${__range}])") == "increase(xorj_trades_total[5m])"
    with pytest.raises(KeyError):
        concrete('xorj_actors{instance="$instance"}')  # a dashboard variable the test cannot fill
    assert metric_names('histogram_quantile(0.99, sum by (le) (rate(xorj_audit_append_seconds_bucket{job="x"}[1m])))') == {
        "xorj_audit_append_seconds_bucket"
    }


def _prometheus_target(engine: EngineProcess) -> str:
    """``host:port`` of the engine's ``/metrics`` (``[http] port = 0``: from ``ctl status``)."""
    # The debug socket answers before the HTTP API is up: wait for the endpoint, not the answer.
    status = poll(lambda: (s := engine.status()) and "metrics" in s["endpoints"] and s, 60, "the engine serving /metrics",
                  engine=engine)
    url = urllib.parse.urlsplit(status["endpoints"]["metrics"])
    return url.netloc


def _value(prometheus: PrometheusServer, expr: str) -> float:
    result = prometheus.query(expr)
    return float(result[0]["value"][1]) if result else 0.0


def _no_data(prometheus: PrometheusServer, queries: list[Target]) -> list[str]:
    """The queries without a series of finite value now (NaN: a quantile over no observations)."""
    return [
        str(t) for t in queries
        if not any(math.isfinite(float(s["value"][1])) for s in prometheus.query(concrete(t.expr)))
    ]


#: What the trading run must have done before the halt (the halt ends the vaults' rounds).
_TRADED = (
    'sum(xorj_trades_total{status="confirmed"}) >= 2',
    "sum(xorj_trade_duration_seconds_count) >= 2",
    "sum(xorj_realised_slippage_bps_count) >= 1",
)


@pytest.mark.nats
def test_every_panel_has_data_after_a_trading_run(
    tmp_path: Path, nats_server: NatsServer, prometheus_server: PrometheusServer
) -> None:
    queries = targets(load())
    localnet_toml = LOCALNET.format(seed="xorj-dashboard", vaults=2)
    (tmp_path / "localnet.toml").write_text(localnet_toml + QUANT)
    localnet = LocalnetProcess(tmp_path / "localnet.toml", tmp_path / "localnet.log")
    engine: EngineProcess | None = None
    try:
        node = (
            ENGINE_AGAINST_LOCALNET.format(**localnet.urls, api="swap")
            .replace("[strategy]\n", "[strategy]\npoll_interval_s = 0.5\nretry_interval_s = 0.5\n")
            .replace("[http]\nenabled = false\n", "[http]\nport = 0\n")
        )
        config = tmp_path / "node.toml"
        config.write_text(node + localnet_toml + "enabled = false\n" + CLUSTER.format(nats=nats_server.url))
        (tmp_path / "a").mkdir()
        engine = EngineProcess(config, tmp_path / "a", tmp_path / "a.log", node_id="a")
        prometheus_server.start([_prometheus_target(engine)])

        poll(lambda: all(prometheus_server.query(e) for e in _TRADED), _TIMEOUT_S,
             "trades and their slippage scraped", engine=engine, every=0.5)
        halt = engine.ctl("halt", "--reason", "test: dashboard")
        assert halt.returncode == 0, halt.stdout + halt.stderr
        poll(lambda: _value(prometheus_server, "sum(xorj_halt_ack_seconds_count)") >= 1,
             _TIMEOUT_S, "the halt's acknowledgement scraped", engine=engine, every=0.5)

        # Each metric a query reads has series of its own: no query passes on another's data.
        scraped = {s["metric"]["__name__"] for s in prometheus_server.query('count by (__name__) ({__name__=~"xorj_.+"})')}
        missing = {str(t): sorted(metric_names(t.expr) - scraped) for t in queries if metric_names(t.expr) - scraped}
        assert not missing, f"panels read metrics Prometheus never scraped: {missing}"
        # The last scrapes may still be on their way: ask again until every panel has data.
        deadline = time.monotonic() + _SETTLE_S
        while (no_data := _no_data(prometheus_server, queries)) and time.monotonic() < deadline:
            time.sleep(1.0)
        assert not no_data, "panels without data:\n" + "\n".join(no_data)
    finally:
        if engine is not None:
            engine.kill()
        localnet.stop()
