"""Every Prometheus metric of the engine, in one place.

Each engine owns a :class:`Metrics` with its own ``CollectorRegistry``, so two engines in one
process (tests) never share or clash. Counters and histograms are fed by events; the live
numbers (actors, mailboxes, breakers, kill switch state) are read from the runtime at scrape
time by a custom collector, without sending any actor a message. docs/OBSERVABILITY.md lists
who feeds what.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from supervisors import ActorInfo, Runtime
from xorj_actors.audit import AuditState
from xorj_actors.breakers import BREAKERS, BreakerStatus, CircuitState
from xorj_actors.execution import TradeStatus
from xorj_actors.jito import InflightStatus
from xorj_actors.kill_switch import HaltBoard, HaltProgress, KillSwitchState
from xorj_actors.risk import ClockSkewStatus
from xorj_actors.signers import BACKENDS, RESULTS
from xorj_actors.statements import RunResult
from xorj_actors.strategy import StrategyStatus

__all__ = [
    "BREAKER_STATES",
    "CONTENT_TYPE",
    "HSM_BACKENDS",
    "HALT_RESULTS",
    "HSM_RESULTS",
    "JITO_BUNDLE_STATUSES",
    "KILL_SWITCH_STATES",
    "LANDING_RESULTS",
    "TRADE_STATUSES",
    "Metrics",
    "breaker_states",
]

CONTENT_TYPE = CONTENT_TYPE_LATEST

#: Label vocabularies: the domain's own types, in the order dashboards and progress lines show.
TRADE_STATUSES: tuple[str, ...] = tuple(
    s.value
    for s in (TradeStatus.CONFIRMED, TradeStatus.FAILED, TradeStatus.REJECTED, TradeStatus.EXPIRED, TradeStatus.TIMED_OUT)
)
HSM_BACKENDS: tuple[str, ...] = BACKENDS
#: ``xorj_jito_bundles_total{status}``: Jito's statuses, lower-cased (``pending``: accepted).
JITO_BUNDLE_STATUSES: tuple[str, ...] = tuple(
    s.value.lower() for s in (InflightStatus.PENDING, InflightStatus.LANDED, InflightStatus.FAILED, InflightStatus.INVALID)
)
HSM_RESULTS: tuple[str, ...] = RESULTS
#: ``xorj_reconciliation_runs_total{result}``.
RECONCILIATION_RESULTS: tuple[str, ...] = tuple(r.value for r in RunResult)
#: ``xorj_circuit_breaker_state`` values.
BREAKER_STATES: Mapping[str, int] = {
    CircuitState.CLOSED.value: 0, CircuitState.HALF_OPEN.value: 1, CircuitState.OPEN.value: 2
}
#: ``STARTING``: the board before the kill switch has read its state file (halted).
KILL_SWITCH_STATES: tuple[str, ...] = ("STARTING", *(s.value for s in KillSwitchState))

_FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: ``xorj_trade_landings_total{result}`` (docs/SLO.md): a sent trade confirmed (or landed with an
#: on-chain error) within its tier's timeout, timed out (counted once, whatever comes after), or
#: expired unlanded. Rejected trades were never sent: no landing to count.
LANDING_RESULTS: tuple[str, ...] = ("in_time", "timed_out", "expired")
#: ``xorj_halts_completed_total{result}`` (docs/SLO.md): every live actor acked within the ack deadline, or not.
HALT_RESULTS: tuple[str, ...] = ("in_deadline", "late")
#: Timed-out trades remembered until their final outcome (a trade whose lease moved to another
#: node never reaches one here: the oldest are forgotten past this).
_MAX_TIMED_OUT = 10_000
_TRADE_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)


class _SlotClock:
    """When the Confirmation actor's last slot notification came (``time.monotonic()``).

    ``expect()`` marks that a slot stream should flow (an engine with a node): until the first
    slot, the age counts from then, so a stream that never starts is stalled too.
    """

    def __init__(self) -> None:
        self.since: float | None = None  # None: no slot stream expected (no node configured)

    def expect(self) -> None:
        if self.since is None:
            self.since = time.monotonic()

    def slot(self) -> None:
        self.since = time.monotonic()  # one attribute store: called on the loop thread per slot


class _RuntimeCollector(Collector):
    """Reads the live tree at scrape time (mailbox snapshots, published statuses and the halt
    board; no asks)."""

    def __init__(self, slots: _SlotClock) -> None:
        self._slots = slots
        #: The cluster node's members by liveness (None: this engine runs alone).
        self.cluster: Callable[[], Mapping[str, int]] | None = None
        #: cluster label -> (held, reserved) USD across vaults (None: no correlated-exposure board).
        self.exposure: Callable[[], Mapping[str, tuple[float, float]]] | None = None
        self._source: tuple[Runtime, HaltBoard] | None = None
        #: (parent urn, child name) -> restarts seen, so the total never goes down when a
        #: child is replaced (its new mailbox carries the count) or its supervisor restarts.
        self._seen: dict[tuple[str | None, str], int] = {}
        self._restarts: dict[str, int] = {}
        self._lock = threading.Lock()  # two scrapes at once must not count a restart twice

    def watch(self, runtime: Runtime, board: HaltBoard) -> None:
        self._source = (runtime, board)

    def describe(self) -> Iterator[Metric]:
        return iter(())  # the label sets are only known at scrape time

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            return iter([*self._collect(), *self._freshness()])

    def _collect(self) -> Iterator[Metric]:
        if self._source is None:
            return
        runtime, board = self._source
        actors = runtime.actors()
        status = board.status
        state = GaugeMetricFamily(
            "xorj_kill_switch_state", "Kill switch state: 1 for the current state, 0 for the others", labels=["state"]
        )
        for name in KILL_SWITCH_STATES:
            state.add_metric([name], 1.0 if status.state == name else 0.0)
        yield state
        yield GaugeMetricFamily("xorj_kill_switch_halted", "1 while trading is halted", value=float(status.halted))
        yield GaugeMetricFamily("xorj_kill_switch_epoch", "Current halt epoch", value=float(status.epoch))

        depth: dict[str, int] = {}
        live: dict[str, int] = {}
        urns = {a.urn for a in actors}
        for a in actors:
            cls = a.actor_class.__name__
            depth[cls] = depth.get(cls, 0) + a.mailbox_depth
            live[cls] = live.get(cls, 0) + 1
            key = (a.parent, a.name)
            delta = a.restarts - self._seen.get(key, 0)
            if delta > 0:
                self._restarts[cls] = self._restarts.get(cls, 0) + delta
                self._seen[key] = a.restarts
        # Forget children of supervisors that are gone; their successors count from zero.
        self._seen = {k: v for k, v in self._seen.items() if k[0] is None or k[0] in urns}

        yield _by_class(
            GaugeMetricFamily, "xorj_actor_mailbox_depth", "Messages waiting, summed per actor class", depth
        )
        yield _by_class(GaugeMetricFamily, "xorj_actors", "Live actors per actor class", live)
        restarts = dict.fromkeys(live, 0) | self._restarts  # every live class, at zero until it restarts
        yield _by_class(
            CounterMetricFamily, "xorj_actor_restarts", "Restarts by a supervisor, per actor class", restarts
        )
        breakers = breaker_states(actors)
        breaker_state = GaugeMetricFamily(
            "xorj_circuit_breaker_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open", labels=["breaker"]
        )
        for name in BREAKERS:
            # A breaker that is not running (restarting) cannot vouch for anything: report it open.
            breaker_state.add_metric([name], float(BREAKER_STATES.get(breakers.get(name, "OPEN"), 2)))
        yield breaker_state
        yield from self._published({type(a.status): a.status for a in actors if a.status is not None}, board)

    def _published(self, statuses: Mapping[type, Any], board: HaltBoard) -> Iterator[Metric]:
        """What the kill switch, the Audit actor, the clock monitor and the strategy feed publish.

        An actor that is not running (restarting, or not configured) publishes nothing: its
        series are absent until it is back (``absent()`` in an alert sees that).
        """
        halt = statuses.get(HaltProgress)
        if isinstance(halt, HaltProgress):
            now = time.monotonic()
            pending = 0.0 if halt.triggered_mono is None else max(0.0, now - halt.triggered_mono)
            if board.status.epoch > halt.epoch:  # a halt the kill switch has not handled (wedged?)
                pending = max(pending, now - board.epoch_since)
            yield GaugeMetricFamily(
                "xorj_halt_live_actors", "Live actors the current halt must hear from (0: no halt awaits acks)",
                value=float(halt.live),
            )
            yield GaugeMetricFamily("xorj_halt_acked_actors", "Of those, the actors that acked", value=float(halt.acked))
            yield GaugeMetricFamily(
                "xorj_halt_pending_seconds",
                "Since the trigger of a halt still awaiting acks, or not yet handled by the kill switch (0: none)",
                value=pending,
            )
            yield GaugeMetricFamily(
                "xorj_halt_progress_epoch",
                "The kill switch's epoch when it last published its progress (behind xorj_kill_switch_epoch: "
                "a trip it has not handled)",
                value=float(halt.epoch),
            )
            yield GaugeMetricFamily(
                "xorj_halt_ack_deadline_seconds", "[kill_switch] ack_deadline_s", value=halt.ack_deadline_s
            )
        audit = statuses.get(AuditState)
        if isinstance(audit, AuditState):
            yield GaugeMetricFamily(
                "xorj_audit_fail_closed", "1 while the audit log cannot be written (trading halted by it)",
                value=float(audit.fail_closed),
            )
        clock = statuses.get(ClockSkewStatus)
        if isinstance(clock, ClockSkewStatus):
            # The alerts count checks, not samples: a scrape may see several checks, or none.
            yield CounterMetricFamily(
                "xorj_clock_checks", "Successful clock checks (since the monitor started)", value=clock.checks
            )
            yield GaugeMetricFamily(
                "xorj_clock_lag_allowance_seconds", "[risk] clock_lag_allowance_s", value=clock.lag_allowance_s
            )
            if clock.skew_s is not None:
                yield GaugeMetricFamily(
                    "xorj_clock_skew_seconds", "System clock minus the chain's block time, last successful check",
                    value=clock.skew_s,
                )
        feed = statuses.get(StrategyStatus)
        if isinstance(feed, StrategyStatus):
            since = feed.last_ok_at if feed.last_ok_at is not None else feed.started_at
            if since is not None:
                yield GaugeMetricFamily(
                    "xorj_strategy_feed_age_seconds",
                    "Since the strategy feed's last good response (before any: since the feed started)",
                    value=max(0.0, time.time() - since),
                )

    def _freshness(self) -> Iterator[Metric]:
        since = self._slots.since
        if since is not None:
            yield GaugeMetricFamily(
                "xorj_confirmation_slot_age_seconds",
                "Since the Confirmation actor's last slot notification (before any: since it was expected)",
                value=max(0.0, time.monotonic() - since),
            )
        if self.cluster is not None:
            nodes = GaugeMetricFamily("xorj_cluster_nodes", "Cluster members by liveness", labels=["state"])
            for state, count in sorted(self.cluster().items()):
                nodes.add_metric([str(state)], float(count))
            yield nodes
        if self.exposure is not None:
            clusters = self.exposure()
            yield GaugeMetricFamily(
                "xorj_correlation_clusters", "Clusters of correlated tokens in the latest estimate", value=float(len(clusters))
            )
            usd = GaugeMetricFamily(
                "xorj_correlated_exposure_usd", "USD all vaults hold (or reserved for buys) per correlated token cluster",
                labels=["cluster", "kind"],
            )
            for cluster, (held, reserved) in sorted(clusters.items()):
                usd.add_metric([cluster, "held"], held)
                usd.add_metric([cluster, "reserved"], reserved)
            yield usd


def breaker_states(actors: Iterable[ActorInfo]) -> dict[str, str]:
    """``{breaker: CLOSED|HALF_OPEN|OPEN}`` of the running Breaker actors, without a message.

    Each breaker publishes its :class:`BreakerStatus` in its introspection (``Runtime.actors()``).
    """
    states = {}
    for actor in actors:
        status = actor.status
        if isinstance(status, BreakerStatus):
            states[status.breaker] = status.state
    return states


def _by_class(
    family: type[GaugeMetricFamily | CounterMetricFamily], name: str, doc: str, values: Mapping[str, int]
) -> Metric:
    metric = family(name, doc, labels=["actor_class"])
    for cls, value in sorted(values.items()):
        metric.add_metric([cls], float(value))
    return metric


class Metrics:
    """The engine's metrics and the registry they live in.

    Attributes fed by events (thread-safe, callable from any actor):
        trades: ``xorj_trades_total{status}`` (execution issue).
        send_route_skips: ``xorj_send_route_skips_total{route}`` (extra send routes).
        jito_bundles: ``xorj_jito_bundles_total{status}`` (our bundles by the status recorded).
        ws_reconnects: ``xorj_ws_reconnects_total`` (the confirmation WebSocket).
        trades_by_api: ``xorj_trades_by_api_total{api,status}`` (ultra or swap; trades refused
            before any route was built are not counted here).
        trade_duration: ``xorj_trade_duration_seconds`` (execution issue).
        trade_landings: ``xorj_trade_landings_total{result}`` (the trade SLO: :data:`LANDING_RESULTS`).
        halts_completed: ``xorj_halts_completed_total{result}`` (the halt SLO: :data:`HALT_RESULTS`).
        kill_switch_activations: ``xorj_kill_switch_activations_total{mode,source}``.
        halt_ack: ``xorj_halt_ack_seconds``, trigger to every live actor acked.
        breaker_trips: ``xorj_circuit_breaker_trips_total{breaker}`` (decision issue).
        hsm_operations: ``xorj_hsm_operations_total{backend,result}`` (execution issue).
        audit_entries: ``xorj_audit_entries_total`` (the Audit actor, per committed entry).
        audit_append: ``xorj_audit_append_seconds`` (the Audit actor, append to commit).
        http_requests: ``xorj_http_requests_total{path,status}`` of the HTTP API itself.
        reconciliation_mismatches: ``xorj_reconciliation_mismatches``, the last statement
            reconciliation's mismatches; ``reconciliation_runs``: ``xorj_reconciliation_runs_total{result}``;
            ``reconciliation_last_run``: ``xorj_reconciliation_last_run_timestamp_seconds``.

    Read at scrape time (no actor asked): the halt board, the mailboxes, what the breakers, the
    kill switch (``HaltProgress``: ``xorj_halt_*``), the Audit actor (``xorj_audit_fail_closed``),
    the clock monitor (``xorj_clock_skew_seconds``) and the strategy feed
    (``xorj_strategy_feed_age_seconds``) publish; the slot clock fed by :meth:`on_slot`
    (``xorj_confirmation_slot_age_seconds``); the cluster's members (``xorj_cluster_nodes``).
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.trades = Counter("xorj_trades", "Trades by final status", ["status"], registry=r)
        self.ws_reconnects = Counter(
            "xorj_ws_reconnects", "The Confirmation actor's WebSocket connections opened after the first", registry=r
        )
        self.send_route_skips = Counter(
            "xorj_send_route_skips", "Sends of signed bytes skipped on an extra route (failed or over budget)", ["route"],
            registry=r,
        )
        self.jito_bundles = Counter(
            "xorj_jito_bundles", "Our Jito bundles by the status recorded (pending: accepted)", ["status"], registry=r
        )
        self.trades_by_api = Counter(
            "xorj_trades_by_api", "Trades that built a route, by the Jupiter API and final status", ["api", "status"],
            registry=r,
        )
        self.trade_duration = Histogram(
            "xorj_trade_duration_seconds", "Trade intent to final status", buckets=_TRADE_BUCKETS, registry=r
        )
        self.trade_landings = Counter(
            "xorj_trade_landings", "Sent trades by landing: in their tier's time, timed out, expired", ["result"],
            registry=r,
        )
        self.halts_completed = Counter(
            "xorj_halts_completed", "Completed halts by whether every actor acked within the deadline", ["result"],
            registry=r,
        )
        self._timed_out: dict[str, None] = {}  # trade ids, oldest first
        self.kill_switch_activations = Counter(
            "xorj_kill_switch_activations", "Kill switch activations", ["mode", "source"], registry=r
        )
        self.halt_ack = Histogram(
            "xorj_halt_ack_seconds", "Halt trigger to the last live actor's acknowledgement", buckets=_FAST_BUCKETS,
            registry=r,
        )
        self.vault_rounds = Counter("xorj_vault_rounds", "Vault rebalancing rounds by result", ["result"], registry=r)
        self.realised_slippage = Histogram(
            "xorj_realised_slippage_bps", "Received against quoted, per output mint and round (positive: worse)",
            buckets=(-50, -10, -1, 0, 1, 5, 10, 25, 50, 100, 200, 500), registry=r,
        )
        self.breaker_trips = Counter("xorj_circuit_breaker_trips", "Circuit breaker trips", ["breaker"], registry=r)
        self.hsm_operations = Counter(
            "xorj_hsm_operations", "Signing-key operations", ["backend", "result"], registry=r
        )
        self.audit_entries = Counter("xorj_audit_entries", "Audit entries committed", registry=r)
        self.audit_append = Histogram(
            "xorj_audit_append_seconds", "Audit append to durable commit", buckets=_FAST_BUCKETS, registry=r
        )
        self.http_requests = Counter(
            "xorj_http_requests", "HTTP API requests by route and status", ["path", "status"], registry=r
        )
        self.reconciliation_mismatches = Gauge(
            "xorj_reconciliation_mismatches", "Mismatches found by the last statement reconciliation", registry=r
        )
        self.reconciliation_runs = Counter(
            "xorj_reconciliation_runs", "Statement reconciliations by result", ["result"], registry=r
        )
        self.reconciliation_last_run = Gauge(
            "xorj_reconciliation_last_run_timestamp_seconds", "When the last statement reconciliation ended (Unix time)",
            registry=r,
        )
        # Every known series exists from the first scrape, at zero: rate() needs a start.
        for result in RECONCILIATION_RESULTS:
            self.reconciliation_runs.labels(result)
        for status in TRADE_STATUSES:
            self.trades.labels(status)
        for breaker in BREAKERS:
            self.breaker_trips.labels(breaker)
        for result in LANDING_RESULTS:
            self.trade_landings.labels(result)
        for result in HALT_RESULTS:
            self.halts_completed.labels(result)
        for result in ("done", "skipped"):
            self.vault_rounds.labels(result)
        for status in JITO_BUNDLE_STATUSES:
            self.jito_bundles.labels(status)
        for backend in HSM_BACKENDS:
            for result in HSM_RESULTS:
                self.hsm_operations.labels(backend, result)
        self._slots = _SlotClock()
        self._runtime = _RuntimeCollector(self._slots)
        r.register(self._runtime)

    def watch(self, runtime: Runtime, board: HaltBoard) -> None:
        """Read the live numbers from this runtime and board at every scrape (idempotent)."""
        self._runtime.watch(runtime, board)

    def watch_cluster(self, counts: Callable[[], Mapping[str, int]]) -> None:
        """``xorj_cluster_nodes{state}``: read ``counts()`` (members by liveness, no I/O) at every scrape."""
        self._runtime.cluster = counts

    def watch_exposure(self, exposure: Callable[[], Mapping[str, tuple[float, float]]]) -> None:
        """``xorj_correlated_exposure_usd{cluster, kind}``: read ``exposure()`` (no I/O) at every scrape."""
        self._runtime.exposure = exposure

    def expect_slots(self) -> None:
        """A Confirmation actor with a node starts: ``xorj_confirmation_slot_age_seconds`` from now."""
        self._slots.expect()

    def on_slot(self) -> None:
        """The Confirmation actor's ``on_slot`` hook (its loop thread, each slot notification)."""
        self._slots.slot()

    def on_kill_switch_event(self, kind: str, details: Mapping[str, Any]) -> None:
        """The kill switch's ``on_event`` hook: activations and halt acknowledgement latency."""
        if kind != "HALT":
            return
        what = details.get("what")
        if what == "triggered":
            self.kill_switch_activations.labels(str(details.get("mode")), str(details.get("source"))).inc()
        elif what == "maintenance":
            self.kill_switch_activations.labels("maintenance", str(details.get("source"))).inc()
        elif what == "halt complete":
            latency, deadline = details.get("latency_s"), details.get("deadline_s")
            if isinstance(latency, int | float) and latency >= 0:
                self.halt_ack.observe(latency)
                if isinstance(deadline, int | float):
                    self.halts_completed.labels("in_deadline" if latency <= deadline else "late").inc()

    def on_breaker_change(self, name: str, state: str) -> None:
        """A breaker's ``on_change`` hook: every opening (reopenings too) is a trip."""
        if state == "OPEN":
            self.breaker_trips.labels(name).inc()

    def on_vault_round(self, result: str) -> None:
        """A vault's ``on_round`` hook: ``done`` or ``skipped``."""
        self.vault_rounds.labels(result).inc()

    def on_realised_slippage(self, bps: float) -> None:
        self.realised_slippage.observe(bps)

    def on_route_skip(self, route: str) -> None:
        """The executor's ``on_route_skip`` hook: a send route skipped (its host-only name)."""
        self.send_route_skips.labels(route).inc()

    def on_bundle_status(self, status: str) -> None:
        """The executor's ``on_bundle_status`` hook: a Jito bundle of ours recorded in ``status``."""
        self.jito_bundles.labels(status).inc()

    def on_trade_outcome(self, outcome: Any, seconds: float) -> None:
        """The executor's ``on_outcome`` hook (a ``TradeOutcome`` and its time since the request)."""
        self.trades.labels(outcome.status).inc()
        api = getattr(outcome, "api", None)
        if api is not None:
            self.trades_by_api.labels(str(api), outcome.status).inc()
        if outcome.status != "timed_out":
            self.trade_duration.observe(seconds)
        self._landing(str(outcome.trade_id), outcome.status)

    def _landing(self, trade_id: str, status: str) -> None:
        """The trade SLO's counter: a timeout counts at once; the final outcome of a trade that
        timed out counts no more (it was late, whatever it became)."""
        if status == "timed_out":
            if trade_id not in self._timed_out:
                self._timed_out[trade_id] = None
                if len(self._timed_out) > _MAX_TIMED_OUT:
                    del self._timed_out[next(iter(self._timed_out))]
                self.trade_landings.labels("timed_out").inc()
        elif trade_id in self._timed_out:
            del self._timed_out[trade_id]  # late, already counted, whatever it became
        elif status in ("confirmed", "failed"):
            self.trade_landings.labels("in_time").inc()
        elif status == "expired":
            self.trade_landings.labels("expired").inc()

    def on_reconciliation(self, result: str, mismatches: int) -> None:
        """The reconciler's hook after each run: ``clean``, ``mismatch`` or ``incomplete``."""
        self.reconciliation_runs.labels(result).inc()
        self.reconciliation_mismatches.set(mismatches)
        self.reconciliation_last_run.set_to_current_time()

    def exposition(self) -> bytes:
        """The registry in Prometheus text format (``CONTENT_TYPE``)."""
        return generate_latest(self.registry)
