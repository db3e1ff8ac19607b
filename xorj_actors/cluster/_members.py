"""Membership in the ``members`` bucket: key = node id, value = the node's heartbeat record.

Each node rewrites its record every ``heartbeat_s`` by compare-and-swap, so a second process
started with the same node id is noticed (its writes and ours refuse each other) instead of two
processes silently sharing one identity.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import nats.js.errors
from loguru import logger

from xorj_actors.cluster._errors import ClusterError
from xorj_actors.cluster._leases import NodeIdentity, wrong_revision
from xorj_actors.cluster._membership import Liveness, live_nodes, liveness
from xorj_actors.cluster._records import MemberRecord, decode, encode
from xorj_actors.cluster._store import ClusterStore
from xorj_actors.kill_switch import KillSwitchState

__all__ = ["DuplicateNode", "Membership"]


class DuplicateNode(ClusterError):
    """Another live process writes under this node id: two nodes must never share one."""


class Membership:
    """This node's record in the members bucket, and everyone's."""

    def __init__(self, store: ClusterStore, identity: NodeIdentity, wall: Callable[[], float] = time.time) -> None:
        self._store = store
        self._kv = store.bucket("members")
        self._me = identity
        self._wall = wall
        self._revision = 0
        self._dead_after_s = store.settings.dead_after_s
        #: The records as last read (one tuple, replaced whole: read from any thread).
        self._last_read: tuple[MemberRecord, ...] = ()

    def _record(self, owned_vaults: int, kill_switch: KillSwitchState) -> bytes:
        me = self._me
        return encode(MemberRecord(me.node_id, me.incarnation, me.started_at, self._wall(), owned_vaults, kill_switch))

    async def _read(self, node_id: str) -> tuple[MemberRecord, int] | None:
        entry = await self._store.get("members", node_id)
        return None if entry is None else (decode(MemberRecord, entry.value), entry.revision)

    async def heartbeat(self, owned_vaults: int, kill_switch: KillSwitchState) -> None:
        """Write this node's record (the first call registers it).

        Raises DuplicateNode if a live process of another incarnation holds the node id, and
        ClusterUnavailable if NATS did not answer.
        """
        value = self._record(owned_vaults, kill_switch)
        if self._revision:
            try:
                self._revision = await self._store.run(self._kv.update(self._me.node_id, value, last=self._revision))
                return
            except nats.js.errors.KeyWrongLastSequenceError:
                pass  # expired (member_ttl_s), taken over, or our last write's answer was lost
        current = await self._read(self._me.node_id)
        if current is not None:
            record, revision = current
            ours = record.incarnation == self._me.incarnation
            if not ours and liveness(record, self._wall(), self._dead_after_s) is Liveness.ALIVE:
                raise DuplicateNode(
                    f"node id {self._me.node_id!r} is live in another process (incarnation {record.incarnation}, "
                    f"started {record.started_at:.0f}): stop one of them"
                )
            write = self._kv.update(self._me.node_id, value, last=revision)
        else:
            write = self._kv.create(self._me.node_id, value)
        try:
            self._revision = await self._store.run(write)
        except nats.js.errors.KeyWrongLastSequenceError:
            self._revision = 0
            raise DuplicateNode(f"node id {self._me.node_id!r}: another process wrote its record meanwhile") from None

    async def leave(self) -> bool:
        """Delete this node's record (a graceful stop, its leases already released): the others
        stop placing vaults here at their next step, not ``dead_after_s`` later, and a new process
        of this node id may register at once. Only at the revision this process wrote last, so a
        record another process took over is left alone. True if deleted; never raises (the
        record then ages out)."""
        if not self._revision:
            return False
        try:
            await asyncio.wait_for(self._store.run(self._kv.delete(self._me.node_id, last=self._revision)),
                                   2 * self._store.settings.op_timeout_s)
        except (ClusterError, nats.js.errors.APIError, TimeoutError) as exc:
            if not (isinstance(exc, nats.js.errors.APIError) and wrong_revision(exc)):
                logger.warning("cluster: member record not deleted ({!r}): it ages out after dead_after_s", exc)
            return False
        self._revision = 0
        logger.info("cluster: node {} left (member record deleted)", self._me.node_id)
        return True

    async def members(self) -> tuple[MemberRecord, ...]:
        """Every node's record still in the bucket (live or not), by node id."""
        entries = await self._store.entries("members")
        records = tuple(sorted((decode(MemberRecord, e.value) for e in entries), key=lambda r: r.node_id))
        self._last_read = records
        return records

    def counts(self) -> dict[Liveness, int]:
        """Nodes by liveness now, judged on the records as last read (any thread, no I/O).

        Placement reads the members every few seconds; a node whose heartbeats stop being read
        (NATS silent) turns dead here too, which is what the cluster sees.
        """
        now = self._wall()
        counts = dict.fromkeys(Liveness, 0)
        for record in self._last_read:
            counts[liveness(record, now, self._dead_after_s)] += 1
        return counts

    async def live(self) -> tuple[str, ...]:
        """The live nodes' ids, sorted (what placement spreads the vaults over)."""
        return live_nodes(await self.members(), self._wall(), self._dead_after_s)
