"""Leases on a real nats-server 2.9 (JetStream KV): create-if-absent, CAS renewal, bucket TTL."""

from __future__ import annotations

import asyncio
import time

import pytest

from xorj_actors.cluster import LeaseClock, LeaseConflict, Leases, NodeIdentity

from tests.cluster.conftest import TTL_S, OpenStore

pytestmark = pytest.mark.nats


async def _leases(open_store: OpenStore, node_id: str) -> Leases:
    return Leases(await open_store(node_id), NodeIdentity.new(node_id))


async def test_a_held_lease_refuses_a_second_owner(open_store: OpenStore) -> None:
    a, b = await _leases(open_store, "a"), await _leases(open_store, "b")
    grant = await a.acquire("vault-0001")
    with pytest.raises(LeaseConflict, match="held by node a") as caught:
        await b.acquire("vault-0001")
    assert caught.value.holder is not None and caught.value.holder.node_id == "a"
    owner = await b.owner("vault-0001")
    assert owner is not None and (owner.holder.node_id, owner.revision) == ("a", grant.revision)
    assert await b.owner("vault-0002") is None


async def test_a_restarted_node_does_not_take_its_previous_runs_lease_for_its_own(open_store: OpenStore) -> None:
    store = await open_store("a")
    first_run = NodeIdentity.new("a")
    before, after = Leases(store, first_run), Leases(store, NodeIdentity.new("a"))
    grant = await before.acquire("vault-0001")
    with pytest.raises(LeaseConflict, match="held by node a"):
        await after.acquire("vault-0001")
    # The previous run's grant is not this run's (compare-and-swap alone checks only the revision).
    with pytest.raises(ValueError, match="grant issued to incarnation"):
        await after.renew(grant)
    with pytest.raises(ValueError, match="grant issued to incarnation"):
        await after.release(grant)
    owner = await after.owner("vault-0001")
    assert owner is not None and owner.holder.incarnation == first_run.incarnation


async def test_renewal_with_a_stale_revision_fails_once_another_node_holds_it(open_store: OpenStore) -> None:
    a, b = await _leases(open_store, "a"), await _leases(open_store, "b")
    first = await a.acquire("vault-0001")
    second = await a.renew(first)
    assert second.revision > first.revision
    await a.release(second)
    taken = await b.acquire("vault-0001")
    with pytest.raises(LeaseConflict, match="held by node b"):
        await a.renew(second)
    owner = await a.owner("vault-0001")
    assert owner is not None and owner.revision == taken.revision


async def test_a_renewal_whose_answer_was_lost_is_adopted_by_a_fresh_cas(open_store: OpenStore) -> None:
    a = await _leases(open_store, "a")
    first = await a.acquire("vault-0001")
    landed = await a.renew(first)  # the caller never heard this answer (a timeout) ...
    adopted = await a.renew(first)  # ... and renews its stale grant: our own write is found
    assert adopted.revision > landed.revision and adopted.sent_at >= landed.sent_at
    again = await a.acquire("vault-0001")  # an acquire whose answer was lost: the same
    assert again.revision > adopted.revision


async def test_release_only_at_the_held_revision(open_store: OpenStore) -> None:
    a, b = await _leases(open_store, "a"), await _leases(open_store, "b")
    first = await a.acquire("vault-0001")
    second = await a.renew(first)
    with pytest.raises(LeaseConflict, match=f"no longer held at revision {first.revision}"):
        await a.release(first)
    assert await a.owner("vault-0001") is not None
    await a.release(second)
    assert await a.owner("vault-0001") is None
    await b.acquire("vault-0001")  # over the delete marker


async def _gone(leases: Leases, vault_id: str, within_s: float) -> float:
    """Poll until the lease is gone; the monotonic time it was first seen gone."""
    deadline = time.monotonic() + within_s
    while await leases.owner(vault_id) is not None:
        assert time.monotonic() < deadline, f"{vault_id}: lease still there {within_s} s later"
        await asyncio.sleep(0.05)
    return time.monotonic()


async def test_an_unrenewed_lease_disappears_after_the_ttl_and_is_fenced_before(open_store: OpenStore) -> None:
    a, b = await _leases(open_store, "a"), await _leases(open_store, "b")
    store = await open_store("probe")
    clock = LeaseClock.from_settings(store.settings)
    grant = await a.acquire("vault-0001")
    seen_gone = await _gone(b, "vault-0001", within_s=TTL_S + 5)
    # Nobody was told; the holder's own deadline had already passed when the key was gone.
    assert not clock.usable(grant, seen_gone)
    with pytest.raises(LeaseConflict, match="nobody holds it"):
        await a.renew(grant)
    await b.acquire("vault-0001")


async def test_a_renewed_lease_outlives_the_ttl(open_store: OpenStore) -> None:
    # Each renewal is a new message: the bucket's max age counts from it, not from the create.
    a, b = await _leases(open_store, "a"), await _leases(open_store, "b")
    clock = LeaseClock.from_settings((await open_store("probe")).settings)
    grant = await a.acquire("vault-0001")
    start = time.monotonic()
    while time.monotonic() - start < 2.5 * TTL_S:
        await asyncio.sleep(clock.renew_every_s)
        grant = await a.renew(grant)
        assert clock.check("vault-0001", grant, time.monotonic()) == grant.revision
    owner = await b.owner("vault-0001")
    assert owner is not None and owner.holder.node_id == "a"


async def test_every_lease_is_listed(open_store: OpenStore) -> None:
    a, b = await _leases(open_store, "a"), await _leases(open_store, "b")
    await a.acquire("vault-0001")
    released = await a.acquire("vault-0002")
    await b.acquire("vault-0003")
    await a.release(released)
    listed = await b.all()
    assert {v: i.holder.node_id for v, i in listed.items()} == {"vault-0001": "a", "vault-0003": "b"}


async def test_a_vault_id_that_is_no_key_is_refused_before_nats(open_store: OpenStore) -> None:
    a = await _leases(open_store, "a")
    for bad in ("vault.1", "vault-*", "", "a b"):
        with pytest.raises(ValueError, match="vault id"):
            await a.acquire(bad)


async def test_a_lease_renewed_unheard_is_released_at_its_own_revision_and_anothers_never(open_store: OpenStore) -> None:
    a, b = await _leases(open_store, "a"), await _leases(open_store, "b")
    first = await a.acquire("vault-0001")
    await a.renew(first)  # landed, its answer never heard: the caller still has `first`
    with pytest.raises(LeaseConflict):
        await a.release(first)
    assert await a.release_held("vault-0001") is True
    assert await a.owner("vault-0001") is None
    assert await a.release_held("vault-0001") is False  # nothing left
    await b.acquire("vault-0001")
    with pytest.raises(LeaseConflict, match="held by node b"):
        await a.release_held("vault-0001")
    owner = await a.owner("vault-0001")
    assert owner is not None and owner.holder.node_id == "b"
