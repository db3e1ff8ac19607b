"""The cluster halt epoch and acks on a real nats-server 2.9."""

from __future__ import annotations

import asyncio

import pytest

from xorj_actors.cluster import HaltBoard, HaltMoved, HaltRecord, HaltState

from tests.cluster.conftest import OpenStore
from tests.plugins.engine import cluster_proof
from tests.plugins.nats_server import NatsServer

pytestmark = pytest.mark.nats


async def test_before_any_halt_the_epoch_is_zero_and_clear(open_store: OpenStore) -> None:
    record, revision = await HaltBoard(await open_store("a"), "a").current()
    assert (record.epoch, record.state, revision) == (0, HaltState.CLEAR, 0)


async def test_triggers_on_several_nodes_at_once_step_the_epoch_once(open_store: OpenStore) -> None:
    boards = [HaltBoard(await open_store(n), n) for n in ("a", "b", "c", "d")]
    for expected_epoch in (1, 2, 3):
        changes = await asyncio.gather(*(board.open(f"trigger {i}") for i, board in enumerate(boards)))
        assert [c.record.epoch for c in changes] == [expected_epoch] * 4
        assert sum(c.changed for c in changes) == 1
        opener = next(c for c in changes if c.changed)
        assert {c.record for c in changes} == {opener.record}  # every caller sees the one record
        record, _ = await boards[0].current()
        assert record.halted and record.epoch == expected_epoch
        proof = cluster_proof(expected_epoch)
        cleared = await asyncio.gather(*(board.clear(expected_epoch, "recovered", proof) for board in boards))
        assert sum(c.changed for c in cleared) == 1
        assert not (await boards[1].current())[0].halted


class _ReadsTogether(HaltBoard):
    """A board whose first read waits until every board has read: all see the same clear epoch
    before any writes, so the race is certain, not left to scheduling."""

    def __init__(self, *args: object, barrier: asyncio.Barrier) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self._barrier: asyncio.Barrier | None = barrier

    async def current(self) -> tuple[HaltRecord, int]:
        seen = await super().current()
        if self._barrier is not None:
            barrier, self._barrier = self._barrier, None
            await barrier.wait()
        return seen


async def test_two_nodes_that_both_read_a_clear_epoch_open_exactly_one(open_store: OpenStore) -> None:
    barrier = asyncio.Barrier(2)
    a = _ReadsTogether(await open_store("a"), "a", barrier=barrier)
    b = _ReadsTogether(await open_store("b"), "b", barrier=barrier)
    first, second = await asyncio.gather(a.open("signal"), b.open("breaker"))
    assert (first.record.epoch, second.record.epoch) == (1, 1)
    assert first.changed != second.changed  # one wrote, the other's write was refused and it re-read
    assert first.record == second.record


async def test_an_open_halt_is_not_stepped_again(open_store: OpenStore) -> None:
    board = HaltBoard(await open_store("a"), "a")
    first = await board.open("breaker")
    again = await board.open("signal")
    assert (again.changed, again.record) == (False, first.record)


async def test_a_recovery_for_an_older_epoch_does_not_clear_a_newer_halt(open_store: OpenStore) -> None:
    board = HaltBoard(await open_store("a"), "a")
    await board.open("first")
    await board.clear(1, "recovered", cluster_proof(1))
    await board.open("second")
    with pytest.raises(HaltMoved, match="epoch 1 is not the current one"):
        await board.clear(1, "late recovery", cluster_proof(1, nonce="late"))
    assert (await board.current())[0].halted


async def test_the_clear_carries_the_proof_and_a_clear_without_it_is_written_over(open_store: OpenStore) -> None:
    board = HaltBoard(await open_store("a"), "a")
    await board.open("first")
    proof = cluster_proof(1)
    done = await board.clear(1, "recovered", proof)
    seen, _ = await HaltBoard(await open_store("b"), "b").current()
    assert done.changed and seen.proof == proof and seen.proof_problem == ""
    assert not (await board.clear(1, "recovered", proof)).changed
    # Someone else wrote a clear of their own over it (no proof): the recovering node rewrites its own.
    _, revision = await board.current()
    await board._write(HaltRecord(1, HaltState.CLEAR, "forged", "x", 0.0), revision)
    again = await board.clear(1, "recovered", proof)
    assert again.changed and (await board.current())[0].proof == proof


async def test_a_node_starting_during_a_halt_sees_it_even_after_nats_restarts(
    open_store: OpenStore, nats_server: NatsServer
) -> None:
    opener = await open_store("a")
    await HaltBoard(opener, "a").open("signal on a")
    await opener.close()
    nats_server.stop()
    nats_server.start()  # the bucket is on disk: the halt outlives the server
    record, _ = await HaltBoard(await open_store("b"), "b").current()
    assert (record.epoch, record.state, record.node_id, record.reason) == (1, HaltState.HALTED, "a", "signal on a")


async def test_a_watcher_hears_a_halt_opened_elsewhere(open_store: OpenStore) -> None:
    watching, opening = HaltBoard(await open_store("a"), "a"), HaltBoard(await open_store("b"), "b")
    await opening.open("first")
    await opening.clear(1, "recovered", cluster_proof(1))
    seen = watching.watch()
    now = await asyncio.wait_for(anext(seen), timeout=10)  # the record as it is
    assert (now.epoch, now.halted) == (1, False)
    await opening.open("risk trigger")
    change = await asyncio.wait_for(anext(seen), timeout=10)  # then each change
    await seen.aclose()
    assert (change.epoch, change.node_id, change.halted, change.reason) == (2, "b", True, "risk trigger")


async def test_each_node_publishes_its_ack_per_epoch(open_store: OpenStore) -> None:
    a, b = HaltBoard(await open_store("a"), "a"), HaltBoard(await open_store("b"), "b")
    await a.publish_ack(1, 10, ())
    await b.publish_ack(1, 8, ("vault-0002", "vault-0001"))
    await a.publish_ack(2, 10, ())
    acks = await b.acks(1)
    assert {n: (ack.acked, ack.missing, ack.complete) for n, ack in acks.items()} == {
        "a": (10, (), True),
        "b": (8, ("vault-0001", "vault-0002"), False),
    }
    assert set(await b.acks(2)) == {"a"} and await b.acks(3) == {}


async def test_a_halt_opened_above_the_highest_epoch_seen_after_the_record_went_back(open_store: OpenStore) -> None:
    board = HaltBoard(await open_store("a"), "a")
    first = await board.open("one", above=0)
    assert first.record.epoch == 1
    joined = await board.open("two", above=1)  # the open one is the one seen: joined
    assert (joined.changed, joined.record.epoch) == (False, 1)
    # A node that saw epoch 7 (a record since lost) does not join epoch 1: it writes epoch 8 over it.
    above = await board.open("records lost", above=7)
    assert above.changed and above.record.epoch == 8 and above.record.reason == "records lost"
    assert (await board.open("again", above=7)).record.epoch == 8
