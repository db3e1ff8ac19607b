"""A node's ack of a cluster halt is published from the kill switch's completion, not by a poll:
an in-process engine node on the test's nats-server, with one actor that acks late."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from supervisors import ChildSpec, StartChild
from xorj_actors.cluster import _acking
from xorj_actors.engine import Engine
from xorj_actors.kill_switch import KILL_SWITCH_NAME
from xorj_actors.messages import HaltMode, Trigger

from tests.cluster.nodes import CLUSTER_TOML
from tests.plugins.engine import Silent, ks_status, wait_until
from tests.plugins.nats_server import NatsServer

pytestmark = pytest.mark.nats


def _node_halt(engine: Engine) -> dict[str, Any]:
    return engine.cluster.debug_views()["cluster_halt"]()


def test_the_ack_of_a_halt_completed_late_is_published_from_the_completion(
    nats_server: NatsServer, engine_factory: Callable[..., Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    # No poll: only the kill switch's events (and the ack deadline's timer) wake the ack.
    monkeypatch.setattr(_acking, "SAFETY_POLL_S", 3600.0)
    engine = engine_factory(vaults=2, extra=CLUSTER_TOML.format(nats=nats_server.url, lost=30.0) + 'node_id = "a"\n')
    Silent.gate.clear()
    Silent.entered.clear()
    try:
        vaults = engine.runtime.supervisor("vaults")
        late = vaults.ask(StartChild(ChildSpec("late", lambda: Silent.start(engine.board), shutdown_timeout=0.3)), timeout=2)
        wait_until(lambda: ks_status(engine).registered >= 1 and "late" not in ks_status(engine).missing, what="late registered")
        late.tell("hang")
        wait_until(Silent.entered.is_set, what="late stuck in its handler")
        engine.runtime.whereis(KILL_SWITCH_NAME).tell(Trigger(mode=HaltMode.EMERGENCY, reason="x", source="test"))
        # The first read finds the halt incomplete (late is stuck); the kill switch replaces it at
        # its ack deadline, the replacement acks, and the completion publishes the ack.
        wait_until(lambda: ks_status(engine).replaced == ("late",), what="late replaced")
        wait_until(lambda: [n["status"] for n in _node_halt(engine)["nodes"]] == ["complete"], 15, "the node's ack complete")
        (node,) = _node_halt(engine)["nodes"]
        assert node["node_id"] == "a" and node["missing"] == [] and node["acked"] == len(ks_status(engine).acked)
    finally:
        Silent.gate.set()
