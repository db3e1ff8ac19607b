"""The cluster halt in the ``halt`` bucket (one key, ``epoch``) and the nodes' acks in ``acks``.

Opening a halt steps the epoch by compare-and-swap from a clear state. Two nodes triggering at
once both read epoch ``n`` clear; one write of ``n + 1`` wins, the other is refused, re-reads,
finds ``n + 1`` halted and returns it: one step, and both callers get the same epoch. A halt
already open is never stepped again by another trigger (the engine's halt is idempotent too).

Neither bucket has a TTL: a halt lasts until it is recovered, whoever is down meanwhile. The
watch is only the fast path: NATS 2.9 consumers can miss changes across a server restart, so a
node also reads :meth:`HaltBoard.current` at every heartbeat.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import nats.js.errors

from xorj_actors.cluster._errors import ClusterError, HaltMoved
from xorj_actors.cluster._records import NO_HALT, HaltAck, HaltRecord, HaltState, decode, encode
from xorj_actors.cluster._store import UNAVAILABLE, ClusterStore
from xorj_actors.kill_switch import ClusterProof
from xorj_actors.messages import HaltMode

__all__ = ["HaltBoard", "HaltChange"]

#: The one key of the halt bucket.
EPOCH_KEY = "epoch"
#: Compare-and-swap rounds before giving up (each lost round means another node changed it).
_ROUNDS = 8


@dataclass(frozen=True, slots=True)
class HaltChange:
    """The halt after an open or clear: the record and whether this call changed it."""

    record: HaltRecord
    revision: int
    changed: bool


class HaltBoard:
    """The cluster halt epoch and the acks, as one node sees them."""

    def __init__(self, store: ClusterStore, node_id: str, wall: Callable[[], float] = time.time) -> None:
        self._store = store
        self._halt = store.bucket("halt")
        self._acks = store.bucket("acks")
        self._node_id = node_id
        self._wall = wall

    async def current(self) -> tuple[HaltRecord, int]:
        """The halt record and its revision (epoch 0, clear, revision 0 before any halt)."""
        entry = await self._store.get("halt", EPOCH_KEY)
        return (NO_HALT, 0) if entry is None else (decode(HaltRecord, entry.value), entry.revision)

    async def _write(self, record: HaltRecord, revision: int) -> int | None:
        """Write ``record`` if the key is still at ``revision``; None if another write came first."""
        value = encode(record)
        write = self._halt.create(EPOCH_KEY, value) if revision == 0 else self._halt.update(EPOCH_KEY, value, last=revision)
        try:
            return await self._store.run(write)
        except nats.js.errors.KeyWrongLastSequenceError:
            return None

    async def open(self, reason: str, mode: HaltMode = HaltMode.EMERGENCY, above: int = 0) -> HaltChange:
        """Open a cluster halt (a new epoch) that every node follows in ``mode``, or return the one
        already open (in its own mode). ``above``: the highest epoch this node has seen; should the
        record read lower (NATS lost it), the new epoch is above it, and an open one below it is
        not joined but written over."""
        for _ in range(_ROUNDS):
            record, revision = await self.current()
            if record.halted and record.epoch >= above:
                return HaltChange(record, revision, changed=False)
            epoch = max(record.epoch, above) + 1
            opened = HaltRecord(epoch, HaltState.HALTED, reason, self._node_id, self._wall(), mode)
            new_revision = await self._write(opened, revision)
            if new_revision is not None:
                return HaltChange(opened, new_revision, changed=True)
        raise ClusterError(f"halt: the epoch changed {_ROUNDS} times while opening; try again")

    async def clear(self, epoch: int, reason: str, proof: ClusterProof) -> HaltChange:
        """Clear the halt of ``epoch`` with the authorised recovery's ``proof`` (which every node
        verifies before it follows).

        A record already clear at ``epoch`` with another proof (or none: written by someone who
        had none) is written over with this one. Raises HaltMoved if ``epoch`` is not the current
        one: a newer halt is not cleared by a recovery that was authorised for an older one.
        """
        for _ in range(_ROUNDS):
            record, revision = await self.current()
            if record.epoch != epoch:
                raise HaltMoved(f"halt: epoch {epoch} is not the current one ({record.epoch})")
            if not record.halted and record.proof == proof:
                return HaltChange(record, revision, changed=False)
            cleared = HaltRecord(epoch, HaltState.CLEAR, reason, self._node_id, self._wall(), record.mode, proof)
            new_revision = await self._write(cleared, revision)
            if new_revision is not None:
                return HaltChange(cleared, new_revision, changed=True)
        raise ClusterError(f"halt: the epoch changed {_ROUNDS} times while clearing; try again")

    async def watch(self) -> AsyncIterator[HaltRecord]:
        """The halt record now, then every change (until the caller stops iterating).

        Silent while NATS is down: pair it with :meth:`current` on a timer.
        """
        watcher = await self._store.run(self._halt.watch(EPOCH_KEY))
        try:
            async for entry in watcher:
                if entry is None or entry.operation is not None:
                    continue  # the end of the initial values; no deletes are ever written
                yield decode(HaltRecord, entry.value)
        finally:
            with contextlib.suppress(*UNAVAILABLE):
                await watcher.stop()

    async def publish_ack(self, epoch: int, acked: int, missing: tuple[str, ...]) -> HaltAck:
        """Publish this node's answer to halt ``epoch``: actors acked, and the ones missing."""
        ack = HaltAck(epoch, self._node_id, acked, tuple(sorted(missing)), self._wall())
        await self._store.run(self._acks.put(f"{epoch}.{self._node_id}", encode(ack)))
        return ack

    async def acks(self, epoch: int) -> dict[str, HaltAck]:
        """Every node's ack of ``epoch``, by node id."""
        entries = await self._store.entries("acks", f"{epoch}.*")
        acks = (decode(HaltAck, e.value) for e in entries)
        return {a.node_id: a for a in acks if a.epoch == epoch}
