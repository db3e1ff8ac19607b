"""Prometheus metrics scraped over real HTTP from a running engine and parsed by prometheus-client."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.ops.conftest import ENGINE_ENV, Api
from tests.plugins.engine import ks_status, wait_until
from supervisors import ActorInfo, ActorState, Fault, inject_fault
from xorj_actors.breakers import BREAKERS
from xorj_actors.metrics import KILL_SWITCH_STATES, Metrics

REQUIRED = {
    "xorj_trades": "counter",
    "xorj_trade_duration_seconds": "histogram",
    "xorj_kill_switch_activations": "counter",
    "xorj_kill_switch_state": "gauge",
    "xorj_halt_ack_seconds": "histogram",
    "xorj_circuit_breaker_trips": "counter",
    "xorj_circuit_breaker_state": "gauge",
    "xorj_hsm_operations": "counter",
    "xorj_actor_restarts": "counter",
    "xorj_actor_mailbox_depth": "gauge",
    "xorj_audit_entries": "counter",
    "xorj_audit_append_seconds": "histogram",
}


def scrape(api: Api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample as ``{(name, sorted labels): value}``."""
    reply = api.get("/metrics")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain")
    families = list(text_string_to_metric_families(reply.body.decode()))
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_every_required_metric_is_exposed_with_its_type(api: Api) -> None:
    reply = api.get("/metrics")
    types = {f.name: f.type for f in text_string_to_metric_families(reply.body.decode())}
    for name, kind in REQUIRED.items():
        assert types.get(name) == kind, f"{name}: {types.get(name)}"
    samples = scrape(api)
    for breaker in BREAKERS:
        assert value(samples, "xorj_circuit_breaker_state", breaker=breaker) == 0.0  # CLOSED
        assert value(samples, "xorj_circuit_breaker_trips_total", breaker=breaker) == 0.0
    assert value(samples, "xorj_kill_switch_state", state="ARMED") == 1.0
    assert sum(value(samples, "xorj_kill_switch_state", state=s) for s in KILL_SWITCH_STATES) == 1.0
    assert value(samples, "xorj_actors", actor_class="Vault") == 4.0
    assert value(samples, "xorj_actor_mailbox_depth", actor_class="Vault") == 0.0
    assert value(samples, "xorj_actor_restarts_total", actor_class="Vault") == 0.0


def test_a_halt_moves_state_activations_and_ack_latency(api: Api) -> None:
    before = scrape(api)
    assert value(before, "xorj_halt_ack_seconds_count") == 0.0
    assert api.post("/kill-switch/activate", {"mode": "graceful"}).status == 202
    wait_until(lambda: ks_status(api.engine).complete, what="halt acked")
    after = scrape(api)
    assert value(after, "xorj_kill_switch_activations_total", mode="graceful", source="http") == 1.0
    assert value(after, "xorj_kill_switch_state", state="TRIGGERED") == 1.0
    assert value(after, "xorj_kill_switch_state", state="ARMED") == 0.0
    assert value(after, "xorj_kill_switch_halted") == 1.0
    assert value(after, "xorj_kill_switch_epoch") == 1.0
    assert value(after, "xorj_halt_ack_seconds_count") == 1.0
    latency = ks_status(api.engine).halt_latency_s
    assert value(after, "xorj_halt_ack_seconds_sum") == pytest.approx(latency)
    assert value(after, "xorj_http_requests_total", path="/kill-switch/activate", status="202") == 1.0


def test_restarts_are_counted_per_class_and_never_go_down(api: Api) -> None:
    runtime = api.engine.runtime

    def vault() -> ActorInfo | None:
        return next((a for a in runtime.actors() if a.name == "vault-0001" and a.ref is not None), None)

    for n in (1, 2):
        old = vault()
        inject_fault(old.ref, Fault.RAISE)
        wait_until(
            lambda: (v := vault()) is not None and v.urn != old.urn and v.restarts == n
            and v.state is not ActorState.STARTING,
            what=f"restart {n}",
        )
        samples = scrape(api)
        assert value(samples, "xorj_actor_restarts_total", actor_class="Vault") == float(n)
        assert value(samples, "xorj_actor_restarts_total", actor_class="Breaker") == 0.0
    # Scraping again does not count the same restart twice.
    assert value(scrape(api), "xorj_actor_restarts_total", actor_class="Vault") == 2.0


def test_each_engine_has_its_own_registry(engine_factory, tmp_path) -> None:
    first = Api(engine_factory(vaults=1, environ=dict(ENGINE_ENV)))
    assert first.post("/kill-switch/activate", {}).status == 202
    wait_until(lambda: value(scrape(first), "xorj_kill_switch_activations_total", mode="emergency", source="http"),
               what="activation counted")
    first.engine.stop()
    second = Api(engine_factory(vaults=1, environ=dict(ENGINE_ENV), data_dir=tmp_path / "second"))
    samples = scrape(second)
    assert value(samples, "xorj_kill_switch_activations_total", mode="emergency", source="http") is None
    assert value(samples, "xorj_kill_switch_state", state="ARMED") == 1.0


def test_metrics_without_a_runtime_expose_only_event_metrics() -> None:
    metrics = Metrics()
    metrics.on_kill_switch_event("HALT", {"what": "halt complete", "latency_s": 0.004})
    metrics.on_kill_switch_event("HALT", {"what": "maintenance", "source": "debug_socket"})
    metrics.on_kill_switch_event("RECOVERY", {"what": "recovery accepted"})
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(metrics.exposition().decode())
        for s in f.samples
    }
    assert value(samples, "xorj_halt_ack_seconds_count") == 1.0
    assert value(samples, "xorj_halt_ack_seconds_bucket", le="0.005") == 1.0
    assert value(samples, "xorj_kill_switch_activations_total", mode="maintenance", source="debug_socket") == 1.0
    assert value(samples, "xorj_kill_switch_state", state="ARMED") is None
