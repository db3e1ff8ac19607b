"""The cluster's vault set on a real nats-server 2.9: seeded once, edited by compare-and-swap, and
followed by the lease loops (an added vault ends up active on exactly one node, a removed one
is passivated and released by its holder)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from xorj_actors.cluster import (
    ClusterDataError,
    Fence,
    LeaseClock,
    LeaseGrant,
    LeaseLoss,
    Leases,
    NodeIdentity,
    Ownership,
    RemovedVaults,
    VaultSetBoard,
    VaultSetFollower,
    place,
    one_by_one,
)
from xorj_actors.vaults import VaultAdminError

from tests.cluster.conftest import TTL_S, OpenStore

pytestmark = pytest.mark.nats

FIRST = ("vault-0000", "vault-0001", "vault-0002")


async def test_the_first_node_seeds_the_set_and_the_others_read_it(open_store: OpenStore) -> None:
    a = VaultSetBoard(await open_store("a"), "a")
    b = VaultSetBoard(await open_store("b"), "b")
    assert await a.current() == (None, 0)
    seeded, revision = await a.seed(FIRST, "seeded from node a's [vaults]: 3 vaults")
    # b has another [vaults] count: the cluster's set wins, unchanged.
    theirs, same = await b.seed(("vault-0000",), "seeded from node b's [vaults]: 1 vaults")
    assert (theirs, same) == (seeded, revision)
    assert theirs.vaults == FIRST and theirs.node_id == "a"


async def test_edits_on_two_nodes_at_once_all_land(open_store: OpenStore) -> None:
    a = VaultSetBoard(await open_store("a"), "a")
    b = VaultSetBoard(await open_store("b"), "b")
    await a.seed(FIRST, "seed")

    def adding(vault: str):  # noqa: ANN202
        return lambda vaults: ((*vaults, vault), f"added {vault}")

    wanted = [f"vault-{i:04d}" for i in range(10, 22)]
    # Twelve edits from two connections at once: each compare-and-swap that loses re-reads and
    # applies its change again, so none is lost.
    await asyncio.gather(*((a if i % 2 else b).edit(adding(v)) for i, v in enumerate(wanted)))
    record, _ = await b.current()
    assert record is not None and record.vaults == tuple(sorted((*FIRST, *wanted)))


async def test_a_refused_edit_changes_nothing(open_store: OpenStore) -> None:
    a = VaultSetBoard(await open_store("a"), "a")
    _, revision = await a.seed(FIRST, "seed")

    def refuse(vaults: tuple[str, ...]) -> tuple[tuple[str, ...], str]:
        raise VaultAdminError("bad_request", "vault-0001 exists already; nothing added")

    with pytest.raises(VaultAdminError, match="exists already"):
        await a.edit(refuse)
    with pytest.raises(ValueError, match="no lease key"):
        await a.edit(lambda vaults: ((*vaults, "vault.0003"), "a malformed id"))
    assert (await a.current())[1] == revision


async def test_a_set_that_does_not_parse_is_reported_and_the_last_one_kept(open_store: OpenStore) -> None:
    store = await open_store("a")
    follower = VaultSetFollower(VaultSetBoard(store, "a"))
    await follower.open(FIRST, "node a's [vaults]")
    seen: list[tuple[str, ...]] = []
    follower.follow(seen.append)
    await store.bucket("config").put("vaults", b'{"v":1,"vaults":["vault-0001","vault-0000"],"node_id":"x","at":1,"change":""}')
    with pytest.raises(ClusterDataError, match="not sorted"):
        await follower.board.current()
    await follower.read()
    assert follower.vaults == FIRST and seen == [FIRST]


class Node:
    """One node's lease loop following the vault set through RemovedVaults, as the engine wires
    it, with its hooks recorded; ``busy`` holds the vaults its "executor" still carries trades of."""

    def __init__(self, own: Ownership, follower: VaultSetFollower) -> None:
        self.own, self.follower = own, follower
        self.lock = threading.Lock()
        self.active: set[str] = set()
        self.passivated: list[tuple[str, LeaseLoss]] = []
        self.stopped: list[str] = []
        self.busy: set[str] = set()
        self.drains = RemovedVaults(own, follower.vaults, self.stop_actor, lambda v: v in self.busy,
                                    asyncio.get_running_loop().create_task)

    def activate(self, vault: str, grant: LeaseGrant) -> None:
        with self.lock:
            self.active.add(vault)

    def passivate(self, vault: str, why: LeaseLoss) -> None:
        with self.lock:
            self.active.discard(vault)
            self.passivated.append((vault, why))

    def stop_actor(self, vault: str) -> None:  # the drain's: the actor stops, the lease stays
        with self.lock:
            self.active.discard(vault)
            self.stopped.append(vault)

    async def beats(self) -> None:
        while True:  # the node's beat reads the set
            await self.follower.read()
            await asyncio.sleep(0.2)


async def _node(open_store: OpenStore, node_id: str, live: tuple[str, ...]) -> Node:
    store = await open_store(node_id)
    me = NodeIdentity.new(node_id)
    follower = VaultSetFollower(VaultSetBoard(store, node_id))
    await follower.open(FIRST, f"node {node_id}'s [vaults]")

    async def live_nodes() -> tuple[str, ...]:
        return live

    node = Node.__new__(Node)
    own = Ownership(Leases(store, me), Fence(LeaseClock.from_settings(store.settings)), me, follower.vaults, live_nodes,
                    one_by_one(lambda v, g: node.activate(v, g)), lambda v, why: node.passivate(v, why))
    Node.__init__(node, own, follower)
    follower.follow(node.drains.on_set)
    return node


async def _until(predicate, within_s: float, what: str) -> None:  # noqa: ANN001
    deadline = asyncio.get_running_loop().time() + within_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, f"not within {within_s} s: {what}"
        await asyncio.sleep(0.02)


async def test_an_added_vault_is_active_on_exactly_one_node_and_a_removed_one_released(open_store: OpenStore) -> None:
    nodes = {n: await _node(open_store, n, ("a", "b")) for n in ("a", "b")}
    tasks = [asyncio.create_task(t) for n in nodes.values() for t in (n.own.run(), n.beats())]
    try:
        await _until(lambda: sorted(v for n in nodes.values() for v in n.active) == list(FIRST), 10, "the first vaults placed")
        added = "vault-0007"
        await nodes["a"].follower.board.edit(lambda vaults: ((*vaults, added), f"added {added} by test"))
        owner = place(added, ["a", "b"])
        await _until(lambda: added in nodes[owner].active, 10, f"{added} active on node {owner}")
        assert [n for n, node in nodes.items() if added in node.active] == [owner]
        assert [n for n, node in nodes.items() if added in node.own.fence.usable()] == [owner]
        assert (await nodes["b"].own.leases.owner(added)).holder.node_id == owner  # type: ignore[union-attr]

        removed = "vault-0001"
        holder = place(removed, ["a", "b"])
        await nodes["b"].follower.board.edit(lambda vaults: ([v for v in vaults if v != removed], f"removed {removed}"))
        await _until(lambda: (removed, LeaseLoss.REMOVED) in nodes[holder].passivated, 10, f"{removed} passivated")
        assert nodes[holder].stopped == [removed]  # drained first (nothing carried: at once)
        await _until(lambda: removed not in nodes[holder].own.owned(), 10, f"{removed} released")
        assert await nodes["a"].own.leases.owner(removed) is None
        await asyncio.sleep(1.0)  # placement steps later: nobody took it again
        assert await nodes["a"].own.leases.owner(removed) is None
        assert all(removed not in n.active and removed not in n.own.fence.usable() for n in nodes.values())
        assert [why for n in nodes.values() for v, why in n.passivated if v == removed] == [LeaseLoss.REMOVED]
        # The others run where they were placed (a loaded machine may have let one expire and
        # taken it again meanwhile: that is the lease loop's business, not the vault set's).
        rest = sorted({*FIRST, added} - {removed})
        await _until(lambda: sorted(v for n in nodes.values() for v in n.active) == rest, 10, "the others active")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_removed_vault_keeps_its_lease_until_its_trades_are_final_then_goes(open_store: OpenStore) -> None:
    a = await _node(open_store, "a", ("a",))
    tasks = [asyncio.create_task(t) for t in (a.own.run(), a.beats())]
    try:
        await _until(lambda: a.active == set(FIRST), 10, "a runs every vault")
        removed = "vault-0002"
        a.busy.add(removed)  # its executor still carries a trade of it
        await a.follower.board.edit(lambda vaults: ([v for v in vaults if v != removed], f"removed {removed}"))
        await _until(lambda: a.stopped == [removed], 10, f"{removed}'s actor stopped")
        await asyncio.sleep(3 * TTL_S)  # past the TTL: the lease is renewed while the trade is carried
        assert removed in a.own.owned() and a.own.fence.usable() == FIRST  # the fence lets the outcome be written
        assert a.passivated == [] and removed not in a.active
        a.busy.discard(removed)  # the trade is final
        await _until(lambda: a.passivated == [(removed, LeaseLoss.REMOVED)], 10, f"{removed} passivated")
        await _until(lambda: removed not in a.own.owned(), 10, f"{removed} released")
        assert await a.own.leases.owner(removed) is None and a.drains.draining == frozenset()

        # Removed while busy, then added back: let go once and taken again, its actor running.
        again = "vault-0001"
        a.busy.add(again)
        await a.follower.board.edit(lambda vaults: ([v for v in vaults if v != again], f"removed {again}"))
        await _until(lambda: again in a.stopped, 10, f"{again}'s actor stopped")
        await a.follower.board.edit(lambda vaults: ((*vaults, again), f"added {again} back"))
        await _until(lambda: (again, LeaseLoss.REMOVED) in a.passivated, 10, f"{again} let go")
        await _until(lambda: again in a.active and again in a.own.owned(), 10, f"{again} taken and running again")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
