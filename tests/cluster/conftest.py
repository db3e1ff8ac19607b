"""Cluster fixtures: short lease timings and stores on the test's own nats-server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from xorj_actors.cluster import ClusterSettings, ClusterStore

from tests.cluster.nodes import Cluster, Localnet
from tests.plugins.nats_server import NatsServer

#: Short enough that a test can wait a TTL out, long enough for a loaded 2-core machine.
TTL_S = 1.5


def short_settings(url: str, node_id: str = "a") -> ClusterSettings:
    settings = ClusterSettings(
        nats_url=url,
        node_id=node_id,
        lease_ttl_s=TTL_S,
        renew_every_s=0.5,
        fence_margin_s=0.3,
        op_timeout_s=0.5,
        heartbeat_s=0.2,
        dead_after_s=1.0,
        member_ttl_s=60.0,
        nats_lost_halt_s=2.0,
    )
    settings.validate()
    return settings


OpenStore = Callable[[str], Awaitable[ClusterStore]]


@pytest.fixture
async def open_store(nats_server: NatsServer) -> AsyncIterator[OpenStore]:
    """Open a store (one NATS connection) for a node id; all are closed after the test."""
    stores: list[ClusterStore] = []

    async def open_one(node_id: str) -> ClusterStore:
        store = await ClusterStore.open(short_settings(nats_server.url, node_id))
        stores.append(store)
        return store

    yield open_one
    for store in stores:
        await store.close()


@pytest.fixture
def localnet_process(tmp_path: Path) -> Iterator[Localnet]:
    net = Localnet(tmp_path)
    try:
        yield net
    finally:
        net.stop()


@pytest.fixture
def cluster(tmp_path: Path, nats_server: Any, localnet_process: Localnet) -> Iterator[Cluster]:
    c = Cluster(tmp_path, nats_server.url, localnet_process)
    try:
        yield c
    finally:
        c.stop()
