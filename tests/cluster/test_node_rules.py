"""Which local halts open a cluster halt epoch (a halt that came from the cluster must not loop)."""

from __future__ import annotations

import pytest

from xorj_actors.cluster import NodeHaltSource, opens_cluster_halt
from xorj_actors.kill_switch import DOWNTIME_SOURCE


@pytest.mark.parametrize("source", ["SIGUSR2", "SIGUSR1", "debug_socket", "http_api", "kill_file", "environment",
                                    "breaker:network", "risk_drawdown", NodeHaltSource.NATS_LOST.value])
def test_every_local_trigger_opens_a_cluster_halt(source: str) -> None:
    assert opens_cluster_halt(source)


@pytest.mark.parametrize("source", [NodeHaltSource.CLUSTER, NodeHaltSource.DUPLICATE_NODE, NodeHaltSource.CLUSTER_DATA, None, 3])
def test_a_halt_from_the_cluster_or_of_this_process_alone_opens_none(source: object) -> None:
    assert not opens_cluster_halt(source.value if isinstance(source, NodeHaltSource) else source)


def test_the_downtime_policy_halts_this_node_alone() -> None:
    # This node was down, not the cluster (docs/RISK.md): its halt must not halt every node and
    # hold them all for a K-of-M recovery.
    assert DOWNTIME_SOURCE == "downtime_policy" and not opens_cluster_halt(DOWNTIME_SOURCE)
