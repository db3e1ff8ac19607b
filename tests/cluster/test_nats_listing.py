"""Listing a bucket (``ClusterStore.entries``) on a real nats-server 2.9: never short.

nats-py's own listings stop at the first message whose ``num_pending`` is 0, and on 2.9 a
last-per-subject consumer reports 0 while keys rewritten meanwhile are still to come: with the
keys rewritten while they are listed (heartbeats, renewals), such a listing came back short in
most reads of a small bucket and in about one read in three of a large one.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from xorj_actors.cluster import ClusterStore, HaltBoard, Leases, NodeIdentity

from tests.cluster.conftest import TTL_S, OpenStore

pytestmark = pytest.mark.nats



async def _rewrite_for_ever(store: ClusterStore, keys: list[str]) -> None:
    """Rewrite the keys over and over, a batch every 10 ms, as heartbeats and renewals do (up to
    2,000 writes a second: every key of the large case about every 0.2 s)."""
    kv = store.bucket("members")
    i = 0
    while True:
        batch = [keys[(i + j) % len(keys)] for j in range(min(20, len(keys)))]
        await asyncio.gather(*(kv.put(k, b"rewritten") for k in batch))
        i += len(batch)
        await asyncio.sleep(0.01)


# Listings per case: with the old listing a short one showed within the first few.
@pytest.mark.parametrize(("count", "rounds"), [(3, 25), (400, 8)], ids=["three-nodes", "many-keys"])
async def test_a_listing_of_keys_rewritten_meanwhile_has_every_key(open_store: OpenStore, count: int, rounds: int) -> None:
    writer, reader = await open_store("w"), await open_store("r")
    keys = [f"node-{i:04d}" for i in range(count)]
    kv = writer.bucket("members")
    for key in keys:
        await kv.put(key, b"first")
    await kv.put("gone", b"x")
    await kv.delete("gone")
    churn = asyncio.create_task(_rewrite_for_ever(writer, keys))
    try:
        for round_ in range(rounds):
            listed = [e.key for e in await reader.entries("members")]
            missing, repeated = len(set(keys) - set(listed)), len(listed) - len(set(listed))
            assert sorted(listed) == keys, f"listing {round_}: {missing} key(s) missing, {repeated} repeated"
    finally:
        churn.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await churn


async def test_an_empty_listing_and_one_whose_keys_expired_end_at_once(open_store: OpenStore) -> None:
    store = await open_store("a")
    assert await HaltBoard(store, "a").acks(7) == {}
    leases = Leases(store, NodeIdentity.new("a"))
    for i in range(5):
        await leases.acquire(f"vault-{i:04d}")
    assert sorted(await leases.all()) == [f"vault-{i:04d}" for i in range(5)]
    await asyncio.sleep(TTL_S + 0.5)  # not renewed: every lease expired
    assert await leases.all() == {}
