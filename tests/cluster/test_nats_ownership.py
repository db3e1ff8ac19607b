"""The lease loop on a real nats-server 2.9: placement, acquisition, hand-over, a paused node."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from xorj_actors.cluster import (
    Fence,
    FenceRefusal,
    LeaseClock,
    LeaseGrant,
    LeaseLoss,
    Leases,
    NodeIdentity,
    Ownership,
    assign,
    one_by_one,
)

from tests.cluster.conftest import TTL_S, OpenStore, short_settings
from tests.plugins.nats_server import NatsServer

pytestmark = pytest.mark.nats

VAULTS = tuple(f"vault-{i:04d}" for i in range(24))
REPO = Path(__file__).resolve().parents[2]


class RecordingFence(Fence):
    """A fence that remembers when each grant was taken (monotonic)."""

    def __init__(self, clock: LeaseClock) -> None:
        super().__init__(clock)
        self.granted: dict[str, list[float]] = {}

    def grant(self, grant: LeaseGrant) -> None:
        self.granted.setdefault(grant.vault_id, []).append(time.monotonic())
        super().grant(grant)


class Node:
    """One node's lease loop on the test's event loop, with its hooks recorded."""

    def __init__(self, own: Ownership, fence: RecordingFence) -> None:
        self.own, self.fence = own, fence
        self.lock = threading.Lock()
        self.activated: list[str] = []
        self.passivated: list[tuple[str, LeaseLoss]] = []
        self.task: asyncio.Task[None] | None = None

    def on_activate(self, vault: str, grant: LeaseGrant) -> None:
        with self.lock:
            self.activated.append(vault)

    def on_passivate(self, vault: str, why: LeaseLoss) -> None:
        with self.lock:
            self.passivated.append((vault, why))

    def start(self) -> None:
        self.task = asyncio.create_task(self.own.run())

    async def pause(self) -> None:
        """Its renewals stop, as a stopped process's would: nothing is released or passivated."""
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


MakeNode = Callable[[str, Callable[[], Awaitable[Any]]], Awaitable[Node]]


@pytest.fixture
async def make_node(open_store: OpenStore) -> AsyncIterator[MakeNode]:
    nodes: list[Node] = []

    async def make(node_id: str, live: Callable[[], Awaitable[Any]]) -> Node:
        store = await open_store(node_id)
        me = NodeIdentity.new(node_id)
        fence = RecordingFence(LeaseClock.from_settings(store.settings))
        node = Node.__new__(Node)
        own = Ownership(Leases(store, me), fence, me, VAULTS, live, one_by_one(lambda v, g: node.on_activate(v, g)),
                        lambda v, why: node.on_passivate(v, why))
        node.__init__(own, fence)  # type: ignore[misc]
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        if node.task is not None and not node.task.done():
            await node.pause()


async def until(predicate: Callable[[], bool], within_s: float, what: str, watch: Callable[[], None] | None = None) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        if watch is not None:
            watch()
        assert time.monotonic() < deadline, f"not within {within_s} s: {what}"
        await asyncio.sleep(0.01)


async def holders(leases: Leases) -> dict[str, str | None]:
    """Each vault's holder, read key by key (the lease loop's own listing is not what is tested)."""
    found = await asyncio.gather(*(leases.owner(v) for v in VAULTS))
    return {v: (i.holder.node_id if i is not None else None) for v, i in zip(VAULTS, found)}


def _live(nodes: set[str]) -> Callable[[], Awaitable[tuple[str, ...]]]:
    async def live() -> tuple[str, ...]:
        return tuple(sorted(nodes))

    return live


async def test_a_node_acquires_what_is_placed_on_it_and_activates_only_under_the_lease(make_node: MakeNode) -> None:
    a = await make_node("a", _live({"a"}))
    a.start()
    await until(lambda: a.own.owned() == VAULTS and len(a.activated) == len(VAULTS), 10, "a holds every vault")
    assert sorted(a.activated) == list(VAULTS) and a.passivated == []
    for vault in VAULTS:  # activated only once the lease was in the fence
        assert vault in a.fence.granted
        assert a.fence.fence(vault).revision > 0  # type: ignore[union-attr]
    assert await holders(a.own.leases) == dict.fromkeys(VAULTS, "a")
    # Renewals keep the leases past the TTL.
    await asyncio.sleep(2 * TTL_S)
    assert a.own.owned() == VAULTS and a.passivated == [] and a.fence.usable() == VAULTS
    assert a.own.last_renewal is not None and a.own.last_renewal.lost == 0


async def test_two_nodes_never_hold_one_vault_and_a_join_moves_only_its_share(make_node: MakeNode) -> None:
    live = {"a"}
    a, b = await make_node("a", _live(live)), await make_node("b", _live(live))
    overlaps: list[set[str]] = []

    def watch() -> None:
        both = set(a.fence.usable()) & set(b.fence.usable())
        if both:
            overlaps.append(both)

    a.start()
    await until(lambda: a.own.owned() == VAULTS, 10, "a alone holds every vault", watch)
    live.add("b")
    b.start()  # b joins: a gives b's share up, b takes it once released
    split = assign(VAULTS, live)
    await until(lambda: (a.own.owned(), b.own.owned()) == (split["a"], split["b"]), 15, "a and b split the vaults", watch)
    assert sorted(v for v, _ in a.passivated) == list(split["b"])
    assert {why for _, why in a.passivated} == {LeaseLoss.PLACED_ELSEWHERE}

    live.add("c")
    c = await make_node("c", _live(live))
    c.start()
    after = assign(VAULTS, live)
    await until(
        lambda: (a.own.owned(), b.own.owned(), c.own.owned()) == (after["a"], after["b"], after["c"]),
        15, "c takes its share", watch,
    )
    # Only c's share moved: nothing went from a to b or back.
    assert set(after["a"]) <= set(split["a"]) and set(after["b"]) <= set(split["b"])
    assert set(after["c"]) == (set(split["a"]) - set(after["a"])) | (set(split["b"]) - set(after["b"]))
    assert overlaps == []
    assert await holders(a.own.leases) == {v: n for n, vs in after.items() for v in vs}


async def test_a_node_whose_renewals_stop_is_fenced_before_another_takes_its_vaults(make_node: MakeNode) -> None:
    a = await make_node("a", _live({"a"}))
    a.start()
    await until(lambda: a.own.owned() == VAULTS, 10, "a holds every vault")
    await a.pause()  # as if paused: no renewal, no release, its fence keeps its grants
    deadline = {v: a.fence.clock.usable_until(a.own._held[v]) for v in VAULTS}
    b = await make_node("b", _live({"b"}))  # b sees a dead
    b.start()
    await until(lambda: b.own.owned() == VAULTS, TTL_S + 5, "b takes every vault after the TTL")
    for vault in VAULTS:
        took = b.fence.granted[vault][0]
        assert deadline[vault] <= took, f"{vault}: b took it {deadline[vault] - took:.3f} s before a's fence refused"
        assert a.fence.fence(vault).value == "expired"  # type: ignore[union-attr]


def _read_lines(proc: subprocess.Popen[str], into: list[dict[str, Any]]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        into.append(json.loads(line))


async def test_a_sigstopped_node_signs_nothing_once_it_resumes_and_gives_its_vaults_up(
    nats_server: NatsServer, make_node: MakeNode
) -> None:
    vaults = VAULTS[:8]
    settings = short_settings(nats_server.url, "a")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.cluster.lease_node", json.dumps(dataclasses.asdict(settings)), *vaults],
        stdout=subprocess.PIPE, text=True, cwd=REPO, env=env,
    )
    events: list[dict[str, Any]] = []
    reader = threading.Thread(target=_read_lines, args=(proc, events), daemon=True)
    reader.start()
    try:
        await until(lambda: {e.get("activated") for e in events} >= set(vaults), 20, "the child holds its vaults")
        b = await make_node("b", _live({"b"}))
        b.own._vaults = vaults
        b.start()
        await asyncio.sleep(2 * settings.renew_every_s)  # b waits while the child renews
        assert b.own.owned() == ()
        proc.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        await until(lambda: b.own.owned() == vaults, TTL_S + 5, "b takes the stopped node's vaults")
        await asyncio.sleep(0.5)
        until_of: dict[str, float] = {}
        for e in events:  # every grant the child's fence ever took, printed before it took it
            if "grant" in e:
                until_of[e["grant"]] = max(until_of.get(e["grant"], 0.0), e["until"])
        for vault in vaults:
            assert until_of[vault] <= b.fence.granted[vault][0], f"{vault}: both fences allowed it at once"
        resumed_at = time.monotonic()  # before the signal: the child may act before this line runs
        proc.send_signal(signal.SIGCONT)
        await until(
            lambda: {e.get("passivated") for e in events if e["t"] > resumed_at} >= set(vaults), 10,
            "the resumed child passivates its vaults",
        )
        await asyncio.sleep(3 * settings.renew_every_s)
        after = [e for e in events if e["t"] > resumed_at]
        assert [e["usable"] for e in after if "usable" in e], "the child reported nothing after SIGCONT"
        assert all(e["usable"] == [] for e in after if "usable" in e), "the resumed child's fence allowed a vault"
        assert not [e for e in after if "grant" in e or "activated" in e], "the resumed child took a vault back"
        assert {e["why"] for e in after if "passivated" in e} <= {"expired", "lost"}
        assert b.own.owned() == vaults and set(b.fence.usable()) == set(vaults)
        assert stopped_at < resumed_at
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        proc.wait(10)


async def test_a_step_activates_its_vaults_in_batches_hands_a_refused_one_back_and_restarts_a_lost_tree(
    open_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("xorj_actors.cluster._ownership.ACTIVATE_BATCH", 10)
    store = await open_store("a")
    me = NodeIdentity.new("a")
    fence = Fence(LeaseClock.from_settings(store.settings))
    calls: list[list[str]] = []
    passivated: list[tuple[str, LeaseLoss]] = []
    tree_alive = [True]

    def activate(grants: Sequence[LeaseGrant]) -> dict[str, str]:
        calls.append([g.vault_id for g in grants])
        tree_alive[0] = True  # as LeasedVaults: activating looks the new vaults supervisor up
        return {"vault-0003": "refused by the test"} if len(calls) == 1 else {}

    own = Ownership(Leases(store, me), fence, me, VAULTS, _live({"a"}), activate,
                    lambda v, why: passivated.append((v, why)), running=lambda: tree_alive[0])
    await own.place_step()
    # One call per batch of ACTIVATE_BATCH, not one per vault.
    assert calls == [list(VAULTS[:10]), list(VAULTS[10:20]), list(VAULTS[20:])]
    # The refused vault is passivated and its lease handed back; the others are kept.
    assert passivated == [("vault-0003", LeaseLoss.NOT_ACTIVATED)]
    assert own.owned() == tuple(v for v in VAULTS if v != "vault-0003")
    assert isinstance(fence.fence("vault-0003"), FenceRefusal)
    assert (await holders(own.leases))["vault-0003"] is None

    await own.place_step()  # taken again, activated alone
    assert calls[3:] == [["vault-0003"]] and own.owned() == VAULTS
    revisions = {v: await own.leases.owner(v) for v in VAULTS}

    # The engine's vaults supervisor restarted: every held vault is activated again, under the
    # leases it holds (none passivated, none taken anew).
    tree_alive[0] = False
    await own.place_step()
    assert [v for call in calls[4:] for v in call] == list(VAULTS)
    assert len(passivated) == 1 and own.owned() == VAULTS
    assert {v: await own.leases.owner(v) for v in VAULTS} == revisions
    await own.place_step()  # running again: nothing more to start
    assert len(calls) == 7


async def test_a_dead_nodes_many_leases_are_taken_as_they_expire_without_listing_every_lease_each_time(
    open_store: OpenStore,
) -> None:
    vaults = tuple(f"vault-{i:04d}" for i in range(200))
    mine = assign(vaults, "ab")["a"]  # placed on a while a and b are live: more than 64
    assert len(mine) > 64
    dead = Leases(await open_store("x"), NodeIdentity.new("x"))  # x is no live node
    b = Leases(await open_store("b"), NodeIdentity.new("b"))
    by_b = {v: await b.acquire(v) for v in mine[:5]}  # a live holder: it releases on its own
    for vault in mine[5:]:
        await dead.acquire(vault)
    dead_taken = time.monotonic()
    store = await open_store("a")
    me = NodeIdentity.new("a")
    fence = Fence(LeaseClock.from_settings(store.settings))
    own = Ownership(Leases(store, me), fence, me, vaults, _live({"a", "b"}), lambda grants: {}, lambda v, why: None)
    listings = 0
    list_every = own.leases.all

    async def counted() -> dict[str, Any]:
        nonlocal listings
        listings += 1
        return await list_every()

    own.leases.all = counted  # type: ignore[method-assign]
    await own.place_step()
    assert own.owned() == () and listings == 1  # every one held: nothing taken

    for vault, grant in by_b.items():
        await b.release(grant)
    await own.place_step()  # b's are taken at once: their keys (delete markers) are read
    assert own.owned() == tuple(sorted(by_b))

    while len(own.owned()) < len(mine):
        assert time.monotonic() - dead_taken < TTL_S + 2, f"x's leases not taken: {len(own.owned())} of {len(mine)}"
        await own.place_step()
        await asyncio.sleep(0.05)
    # x's leases were known held by a dead node: only their keys' presence was read since.
    assert listings == 1 and own.owned() == tuple(sorted(mine))


async def test_a_vault_lost_while_it_is_activated_is_taken_again_only_after_its_passivation(open_store: OpenStore) -> None:
    store = await open_store("a")
    me = NodeIdentity.new("a")
    fence = Fence(LeaseClock.from_settings(store.settings))
    vault = VAULTS[0]
    entered, go_on = threading.Event(), threading.Event()
    hooks: list[str] = []

    def activate(grants: Sequence[LeaseGrant]) -> dict[str, str]:
        hooks.append("activate")
        entered.set()
        assert go_on.wait(10)
        return {}

    own = Ownership(Leases(store, me), fence, me, [vault], _live({"a"}), activate, lambda v, why: hooks.append("passivate"))
    await own.acquire_step()
    activating = asyncio.create_task(own.start_step())
    assert await asyncio.to_thread(entered.wait, 10)
    await store.bucket("leases").delete(vault)  # the lease goes (as if expired) while the actor starts
    await asyncio.sleep(store.settings.renew_every_s)
    await own.renew_step()  # refused: lost, its passivation queued behind the activation
    assert own.owned() == () and isinstance(fence.fence(vault), FenceRefusal)
    await own.acquire_step()  # free in NATS, but not taken while its activation runs
    assert own.owned() == ()
    go_on.set()
    await activating
    await until(lambda: hooks == ["activate", "passivate"], 5, "the passivation after the activation")
    await own.place_step()  # now taken again and started again
    assert own.owned() == (vault,) and hooks == ["activate", "passivate", "activate"]
