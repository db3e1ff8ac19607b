"""The alerts fire in a real Prometheus scraping a real engine process.

``xorj-actors localnet`` and ``xorj-actors run`` run as separate processes, as operators run
them; Debian's Prometheus (tests/plugins/prometheus.py) scrapes the engine's HTTP API every second
and evaluates deploy/prometheus/alerts.yml. The test halts the engine (``ctl halt``), then stops
the localnet under it so that the ``network_connectivity`` breaker opens on the real WebSocket and
RPC failures, then stops the engine; it polls Prometheus's ``/api/v1/alerts`` until
XorjKillSwitchTriggered, XorjCircuitBreakerOpen and XorjEngineDown are firing.

The rules are loaded from a copy of alerts.yml with every ``for:`` shortened to 1 s (rewritten
with yaml; the expressions are the real ones): a breaker must otherwise stay open a minute.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.chaos.crash_helpers import ENGINE_AGAINST_LOCALNET, EngineProcess, LocalnetProcess, poll
from tests.conftest import free_port
from tests.ops.conftest import HTTP_KEY, HTTP_KEY_ENV
from tests.plugins.prometheus import PrometheusServer

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"

#: The same for the localnet and the engine, so that both derive the same genesis addresses.
LOCALNET = """
[localnet]
seed = "xorj-alerts"
slot_ms = 20
confirmed_lag = 1
finalized_lag = 4
vaults = 2
"""

#: The crash tests' engine against a localnet process, with its HTTP API on ``{port}``.
_HTTP_OFF = "[http]\nenabled = false\n"
assert _HTTP_OFF in ENGINE_AGAINST_LOCALNET
ENGINE = ENGINE_AGAINST_LOCALNET.replace(_HTTP_OFF, "[http]\nport = {port}\n") + LOCALNET + "enabled = false\n"


def fast_rules(path: Path) -> Path:
    """alerts.yml with each ``for:`` at 1 s, written to ``path``."""
    spec = yaml.safe_load(ALERTS.read_text())
    for group in spec["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "1s"
    path.write_text(yaml.safe_dump(spec))
    return path


def last_evaluation(prometheus: PrometheusServer) -> str:
    """When Prometheus last evaluated the rule group (an RFC 3339 time, compared for change only)."""
    (group,) = prometheus.api("rules")["groups"]
    return group["lastEvaluation"]


def firing(prometheus: PrometheusServer, name: str, **labels: str) -> bool:
    return any(
        a["state"] == "firing" and a["labels"]["alertname"] == name
        and all(a["labels"].get(k) == v for k, v in labels.items())
        for a in prometheus.api("alerts")["alerts"]
    )


def test_a_halt_an_open_breaker_and_a_dead_engine_fire_their_alerts(
    tmp_path: Path, prometheus_server: PrometheusServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HTTP_KEY_ENV, HTTP_KEY)  # the engine process inherits it
    ln_config = tmp_path / "localnet.toml"
    ln_config.write_text(LOCALNET + "[vaults]\ncount = 2\n")
    localnet = LocalnetProcess(ln_config, tmp_path / "localnet.log")
    engine: EngineProcess | None = None
    try:
        port = free_port()
        config = tmp_path / "engine.toml"
        config.write_text(ENGINE.format(port=port, api="ultra_then_swap", **localnet.urls))
        engine = EngineProcess(config, tmp_path / "var", tmp_path / "engine.log")
        poll(lambda: (s := engine.status()) and s["kill_switch"]["state"] == "ARMED", 60, "engine armed", engine=engine)
        prometheus_server.start([f"127.0.0.1:{port}"], rule_files=[fast_rules(tmp_path / "alerts.yml")])
        # Scraped and evaluated while trading: neither alert fires on a healthy engine.
        poll(lambda: prometheus_server.query('xorj_kill_switch_state{state="ARMED"} == 1'), 30, "a scrape", engine=engine)
        seen = last_evaluation(prometheus_server)
        poll(lambda: last_evaluation(prometheus_server) != seen, 30, "the rules evaluated after that scrape")
        quiet = prometheus_server.firing()
        assert "XorjKillSwitchTriggered" not in quiet and "XorjCircuitBreakerOpen" not in quiet, quiet

        halted = engine.ctl("halt", "--reason", "alert drill")
        assert halted.returncode == 0, halted.stdout + halted.stderr
        poll(lambda: firing(prometheus_server, "XorjKillSwitchTriggered", state="TRIGGERED"), 60,
             "XorjKillSwitchTriggered firing", engine=engine)

        localnet.stop()  # the RPC node goes away under the engine: its calls and WebSocket fail
        poll(lambda: firing(prometheus_server, "XorjCircuitBreakerOpen", breaker="network_connectivity"), 90,
             "XorjCircuitBreakerOpen firing for network_connectivity", engine=engine)

        engine.stop()
        poll(lambda: firing(prometheus_server, "XorjEngineDown"), 60, "XorjEngineDown firing")
    finally:
        if engine is not None:
            engine.kill()
        localnet.stop()
