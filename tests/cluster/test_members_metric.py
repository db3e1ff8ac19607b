"""``xorj_cluster_nodes{state}``: members by liveness as a node last read them, on a real nats-server."""

from __future__ import annotations

import time

import pytest

from tests.cluster.conftest import OpenStore
from xorj_actors.cluster import Membership, NodeIdentity
from xorj_actors.kill_switch import KillSwitchState
from xorj_actors.metrics import Metrics

pytestmark = pytest.mark.nats


def nodes(metrics: Metrics, state: str) -> float | None:
    return metrics.registry.get_sample_value("xorj_cluster_nodes", {"state": state})


async def test_members_by_liveness_follow_the_heartbeats(open_store: OpenStore) -> None:
    metrics = Metrics()
    assert nodes(metrics, "alive") is None  # alone: no series
    wall = [time.time()]
    a = Membership(await open_store("a"), NodeIdentity.new("a"))
    b = Membership(await open_store("b"), NodeIdentity.new("b"), wall=lambda: wall[0])
    metrics.watch_cluster(b.counts)
    assert (nodes(metrics, "alive"), nodes(metrics, "dead")) == (0, 0)  # nothing read yet
    await a.heartbeat(1, KillSwitchState.ARMED)
    await b.heartbeat(0, KillSwitchState.ARMED)
    await b.members()
    assert (nodes(metrics, "alive"), nodes(metrics, "dead")) == (2, 0)
    wall[0] += 60  # a minute on for b: a's last heartbeat is old, b beats again
    await b.heartbeat(0, KillSwitchState.ARMED)
    await b.members()
    assert (nodes(metrics, "alive"), nodes(metrics, "dead")) == (1, 1)
