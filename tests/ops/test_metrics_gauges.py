"""The operator's gauges (halt progress, audit fail-closed, strategy feed age) scraped from a
running engine's /metrics while the state they report really changes."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

from prometheus_client.parser import text_string_to_metric_families

from supervisors import ChildSpec, StartChild
from tests.ops.conftest import ENGINE_ENV, HTTP_FAST, Api
from tests.plugins.engine import ks_status, wait_until
from xorj_actors.config import Config
from xorj_actors.engine import Engine
from xorj_actors.kill_switch import KILL_SWITCH_NAME, HaltProgress, KillSwitch, Participant
from xorj_actors.messages import HaltMode, Trigger
from xorj_actors.strategy import STRATEGY_FEED_NAME, GetStrategyStatus


class Deaf(Participant):
    """Never acks a halt until ``hear`` is set (nor does any replacement of it): the halt stays
    incomplete, and the kill switch replaces it every ``ack_deadline_s``."""

    hear: ClassVar[threading.Event] = threading.Event()

    def _ack(self, epoch: int, in_flight: int) -> None:
        if self.hear.is_set():
            super()._ack(epoch, in_flight)


def gauges(api: Api) -> dict[str, float]:
    """The unlabelled samples of one scrape, by name."""
    body = api.get("/metrics").body.decode()
    return {s.name: s.value for f in text_string_to_metric_families(body) for s in f.samples if not s.labels}


def test_halt_progress_counts_the_missing_actor_until_it_acks(engine_factory) -> None:
    # Every replacement of the deaf actor is a restart: room for a few seconds of them.
    api = Api(engine_factory(vaults=2, max_restarts=100, environ=dict(ENGINE_ENV), extra=HTTP_FAST))
    engine = api.engine
    idle = gauges(api)
    assert (idle["xorj_halt_live_actors"], idle["xorj_halt_acked_actors"], idle["xorj_halt_pending_seconds"]) == (0, 0, 0)
    assert idle["xorj_halt_ack_deadline_seconds"] == 0.5  # tests/plugins/engine.py FAST
    Deaf.hear.clear()
    vaults = next(a.ref for a in engine.runtime.actors() if a.name == "vaults" and a.ref is not None)
    try:
        vaults.ask(StartChild(ChildSpec("deaf", lambda: Deaf.start(engine.board), shutdown_timeout=0.3)), timeout=2)
        wait_until(lambda: ks_status(engine).registered >= 4, what="the deaf actor registered")
        sent = time.monotonic()
        engine.runtime.whereis(KILL_SWITCH_NAME).tell(Trigger(mode=HaltMode.EMERGENCY, reason="drill", source="test"))
        wait_until(lambda: ks_status(engine).missing == ("deaf",), what="everyone but the deaf actor acked")
        first = gauges(api)
        status = ks_status(engine)
        live = len(status.acked) + len(status.missing)
        assert (first["xorj_halt_live_actors"], first["xorj_halt_acked_actors"]) == (live, live - 1)
        assert 0 < first["xorj_halt_pending_seconds"] <= time.monotonic() - sent
        # Past its deadline and still incomplete: what the HaltIncomplete alert fires on.
        wait_until(
            lambda: (g := gauges(api))["xorj_halt_pending_seconds"] > g["xorj_halt_ack_deadline_seconds"]
            and g["xorj_halt_live_actors"] > g["xorj_halt_acked_actors"],
            what="the halt pending past its ack deadline",
        )
        assert gauges(api)["xorj_halt_pending_seconds"] > first["xorj_halt_pending_seconds"]
    finally:
        Deaf.hear.set()
    wait_until(lambda: ks_status(engine).complete, what="the halt complete once the replacement acks")
    done = gauges(api)
    assert (done["xorj_halt_live_actors"], done["xorj_halt_acked_actors"], done["xorj_halt_pending_seconds"]) == (0, 0, 0)


def test_a_trip_the_kill_switch_has_not_handled_counts_as_pending(tmp_path: Path) -> None:
    """A wedged kill switch publishes no progress: its last (no halt awaits acks, epoch 0) stays.
    A trip shows epoch 1 on the board; the pending seconds then count from the trip."""
    engine = Engine(Config(), tmp_path / "data")
    idle = HaltProgress(live=0, acked=0, triggered_mono=None, ack_deadline_s=0.5, epoch=0)
    kill_switch = SimpleNamespace(urn="urn:ks", name=KILL_SWITCH_NAME, parent=None, actor_class=KillSwitch,
                                  mailbox_depth=1, restarts=0, status=idle)
    engine.metrics.watch(SimpleNamespace(actors=lambda: [kill_switch]), engine.board)  # type: ignore[arg-type]

    def scrape() -> dict[str, float]:
        return {s.name: s.value for f in engine.metrics.registry.collect() for s in f.samples if not s.labels}

    engine.board.publish(replace(engine.board.status, epoch=0))  # as a kill switch in ARMED would
    before = scrape()
    assert (before["xorj_kill_switch_epoch"], before["xorj_halt_progress_epoch"]) == (0, 0)
    assert before["xorj_halt_pending_seconds"] == 0
    tripped = time.monotonic()
    engine.board.trip()
    first = scrape()
    assert (first["xorj_kill_switch_epoch"], first["xorj_halt_progress_epoch"]) == (1, 0)
    assert 0 <= first["xorj_halt_pending_seconds"] <= time.monotonic() - tripped
    wait_until(lambda: scrape()["xorj_halt_pending_seconds"] > 0.5, what="pending past the ack deadline")
    # Handled: the kill switch publishes progress at the board's epoch, and nothing awaits acks.
    kill_switch.status = replace(idle, epoch=1)
    assert scrape()["xorj_halt_pending_seconds"] == 0


def test_audit_fail_closed_is_1_while_the_store_cannot_be_written(api: Api) -> None:
    engine = api.engine
    assert gauges(api)["xorj_audit_fail_closed"] == 0
    locker = sqlite3.connect(engine.data_dir / "audit.db", timeout=10, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # another process holding the database: a real outage
    try:
        engine.runtime.whereis(KILL_SWITCH_NAME).tell(Trigger(mode=HaltMode.GRACEFUL, reason="outage", source="test"))
        wait_until(lambda: ks_status(engine).source == "audit", 15, "audit outage halts trading")
        assert gauges(api)["xorj_audit_fail_closed"] == 1
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    wait_until(lambda: gauges(api)["xorj_audit_fail_closed"] == 0, 15, "the store writable again")


def test_strategy_feed_age_counts_from_the_start_until_a_good_response(api: Api) -> None:
    # Nothing listens at the feed's URL here (FAST): no good response, so the age is the feed's.
    feed = api.engine.runtime.whereis(STRATEGY_FEED_NAME).ask(GetStrategyStatus(), timeout=5)
    assert feed.last_ok_at is None and feed.started_at is not None
    before = time.time()
    age = gauges(api)["xorj_strategy_feed_age_seconds"]
    after = time.time()
    assert before - feed.started_at <= age <= after - feed.started_at
    wait_until(lambda: gauges(api)["xorj_strategy_feed_age_seconds"] > age, what="the age growing")
