"""Membership, bucket configuration and NATS outages on a real nats-server 2.9."""

from __future__ import annotations

import dataclasses
import time

import pytest

from xorj_actors.cluster import (
    ClusterError,
    ClusterStore,
    ClusterUnavailable,
    DuplicateNode,
    HaltBoard,
    Leases,
    Membership,
    NodeIdentity,
    nats_lost,
)
from xorj_actors.kill_switch import KillSwitchState

from tests.cluster.conftest import OpenStore, short_settings
from tests.conftest import free_port
from tests.plugins.nats_server import NatsServer

pytestmark = pytest.mark.nats


async def test_nodes_register_and_are_live(open_store: OpenStore) -> None:
    a = Membership(await open_store("a"), NodeIdentity.new("a"))
    b = Membership(await open_store("b"), NodeIdentity.new("b"))
    await a.heartbeat(3, KillSwitchState.ARMED)
    await b.heartbeat(0, KillSwitchState.TRIGGERED)
    await a.heartbeat(4, KillSwitchState.ARMED)
    records = {r.node_id: r for r in await b.members()}
    assert (records["a"].owned_vaults, records["b"].kill_switch) == (4, KillSwitchState.TRIGGERED)
    assert await b.live() == ("a", "b")


async def test_a_node_whose_heartbeats_stopped_is_dead_to_the_others(open_store: OpenStore) -> None:
    a = Membership(await open_store("a"), NodeIdentity.new("a"))
    await a.heartbeat(1, KillSwitchState.ARMED)
    later = time.time() + 60  # b's clock reads a minute on: a's last heartbeat is old
    b = Membership(await open_store("b"), NodeIdentity.new("b"), wall=lambda: later)
    await b.heartbeat(0, KillSwitchState.ARMED)
    assert await b.live() == ("b",)
    assert [r.node_id for r in await b.members()] == ["a", "b"]  # still listed, as dead


async def test_a_second_process_with_a_live_node_id_is_refused(open_store: OpenStore) -> None:
    first = Membership(await open_store("a"), NodeIdentity.new("a"))
    await first.heartbeat(1, KillSwitchState.ARMED)
    second = Membership(await open_store("a"), NodeIdentity.new("a"))
    with pytest.raises(DuplicateNode, match="node id 'a' is live in another process"):
        await second.heartbeat(0, KillSwitchState.ARMED)
    await first.heartbeat(2, KillSwitchState.ARMED)  # the first is undisturbed


async def test_a_restarted_node_takes_over_its_dead_record(open_store: OpenStore) -> None:
    first = Membership(await open_store("a"), NodeIdentity.new("a"))
    await first.heartbeat(1, KillSwitchState.ARMED)
    later = time.time() + 60
    restarted = Membership(await open_store("a"), NodeIdentity.new("a"), wall=lambda: later)
    await restarted.heartbeat(0, KillSwitchState.TRIGGERED)
    with pytest.raises(DuplicateNode):
        await first.heartbeat(1, KillSwitchState.ARMED)  # the old run, resumed, is refused


async def test_a_bucket_with_other_timings_is_refused(nats_server: NatsServer, open_store: OpenStore) -> None:
    await open_store("a")
    other = dataclasses.replace(short_settings(nats_server.url, "b"), lease_ttl_s=3.0, fence_margin_s=1.0)
    with pytest.raises(ClusterError, match="xorj_leases: exists with another configuration"):
        await ClusterStore.open(other)
    separate = dataclasses.replace(other, bucket_prefix="other")  # another prefix: its own buckets
    await (await ClusterStore.open(separate)).close()


async def test_no_nats_server_is_unavailable_at_open() -> None:
    with pytest.raises(ClusterUnavailable, match="not reachable"):
        await ClusterStore.open(short_settings(f"nats://127.0.0.1:{free_port()}"))


async def test_nats_stopping_fails_every_operation_as_unavailable_then_recovers(
    nats_server: NatsServer, open_store: OpenStore
) -> None:
    store = await open_store("a")
    me = NodeIdentity.new("a")
    leases, members, halt = Leases(store, me), Membership(store, me), HaltBoard(store, "a")
    grant = await leases.acquire("vault-0001")
    await members.heartbeat(1, KillSwitchState.ARMED)
    contact = store.last_contact
    assert contact is not None

    nats_server.stop()
    for operation in (
        leases.renew(grant),
        leases.owner("vault-0001"),
        members.heartbeat(1, KillSwitchState.ARMED),
        halt.current(),
        halt.open("signal"),
        halt.acks(1),
    ):
        with pytest.raises(ClusterUnavailable, match=f"NATS at {nats_server.url}"):
            await operation
    assert store.last_contact == contact  # no answer is no contact ...
    assert nats_lost(store.last_contact, contact + store.settings.nats_lost_halt_s, store.settings.nats_lost_halt_s)

    nats_server.start()  # ... and once it is back, the same connection answers again
    deadline = time.monotonic() + 15
    while True:
        try:
            record, _ = await halt.current()
            break
        except ClusterUnavailable:
            assert time.monotonic() < deadline, "the client did not reconnect"
    assert not record.halted  # the open above failed at its first read: it never wrote
    assert store.last_contact is not None and store.last_contact > contact


async def test_a_node_that_leaves_is_no_longer_live_at_once_and_its_id_may_start_again(open_store: OpenStore) -> None:
    a = Membership(await open_store("a"), NodeIdentity.new("a"))
    b = Membership(await open_store("b"), NodeIdentity.new("b"))
    await a.heartbeat(1, KillSwitchState.ARMED)
    await b.heartbeat(0, KillSwitchState.ARMED)
    assert await b.live() == ("a", "b")
    assert await a.leave() is True
    assert await b.live() == ("b",) and [r.node_id for r in await b.members()] == ["b"]
    assert await a.leave() is False  # nothing of its own left
    again = Membership(await open_store("a"), NodeIdentity.new("a"))
    await again.heartbeat(0, KillSwitchState.ARMED)  # not refused as a duplicate
    assert await b.live() == ("a", "b")


async def test_a_leave_never_deletes_a_record_another_process_took_over(open_store: OpenStore) -> None:
    later = time.time() + 60
    old = Membership(await open_store("a"), NodeIdentity.new("a"))
    await old.heartbeat(1, KillSwitchState.ARMED)
    taker = NodeIdentity.new("a")
    new = Membership(await open_store("a"), taker, wall=lambda: later)  # old looks dead to it
    await new.heartbeat(0, KillSwitchState.ARMED)
    assert await old.leave() is False
    assert [r.incarnation for r in await new.members()] == [taker.incarnation]
