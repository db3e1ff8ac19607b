"""The node runtime: one engine process's membership, its part in the cluster halt, and NATS lost.

Owned by the engine (docs/CLUSTER.md, "A node's life"), with a lifecycle of its own:

- :meth:`ClusterNode.open`, before the supervision tree: connect, refuse a node id another live
  process holds, read the halt record. A node that cannot read it does not start (fail closed);
  one that finds a halt open starts halted (:meth:`ClusterNode.start_trigger`, read by the kill
  switch at every start, before any vault can trade).
- :meth:`ClusterNode.start`, once the tree is up: every ``heartbeat_s`` a beat reads the halt
  record (the guarantee), rewrites this node's member record and checks NATS contact; a watch on
  the record is the fast path.
- :meth:`ClusterNode.stop`, before the tree stops.

A new halt epoch makes the node tell its kill switch a :class:`Trigger` (source ``cluster``) in
the record's mode, then publish its ack once the local halt is complete (woken by the kill
switch's ``halt complete`` event, not a poll), or with the missing actors once the kill switch's
ack deadline has passed (again when it completes later). A local
trigger from anything else (signal, ``ctl halt``, the HTTP API, a breaker, a risk trigger, the
kill file, NATS lost) reaches :meth:`ClusterNode.on_kill_switch_event` and opens a cluster epoch,
retried every beat until NATS takes it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

from loguru import logger

from supervisors import LoopThread
from xorj_actors.cluster._acking import ClusterAcks
from xorj_actors.cluster._errors import ClusterDataError, ClusterError, ClusterUnavailable
from xorj_actors.cluster._fencing import nats_lost
from xorj_actors.cluster._halt import HaltBoard
from xorj_actors.cluster._leases import NodeIdentity
from xorj_actors.cluster._local import LocalKillSwitch, LocalTrigger, NodeHaltSource, follow_reason, opens_cluster_halt
from xorj_actors.cluster._members import DuplicateNode, Membership
from xorj_actors.cluster._node_recovery import NodeRecovery
from xorj_actors.cluster._membership import Liveness, liveness
from xorj_actors.cluster._records import NO_HALT, HaltRecord
from xorj_actors.cluster._store import ClusterStore
from xorj_actors.cluster._vault_set import VaultSetBoard, VaultSetFollower
from xorj_actors.cluster._views import ClusterViews
from xorj_actors.cluster.settings import ClusterSettings
from xorj_actors.kill_switch import ClusterProof
from xorj_actors.messages import HaltMode, Trigger

__all__ = ["ClusterNode"]

T = TypeVar("T")


class ClusterNode(NodeRecovery):
    """This process as a node of the cluster (see the module docstring).

    Args:
        settings: ``[cluster]``, with the node id resolved (``with_node_id``).
        kill_switch: the local kill switch.
        owned_vaults: how many vaults this node owns now (blocking; run off the loop). Until vault
            leases are wired it is the number of local vault actors.
        local_ack_deadline_s: the kill switch's ``ack_deadline_s``: an incomplete local halt is
            published with its missing actors once it has passed.
        configured_vaults: this node's ``[vaults]``: the cluster's vault set if none exists yet.
    """

    def __init__(
        self,
        settings: ClusterSettings,
        kill_switch: LocalKillSwitch,
        *,
        owned_vaults: Callable[[], int],
        local_ack_deadline_s: float,
        configured_vaults: Iterable[str] = (),
    ) -> None:
        if not settings.node_id:
            raise ValueError("node_id: required (ClusterSettings.with_node_id)")
        self.settings = settings
        self.identity = NodeIdentity.new(settings.node_id)
        self.kill_switch = kill_switch
        self._owned_vaults = owned_vaults
        self._local_ack_deadline_s = local_ack_deadline_s
        self._configured_vaults = tuple(configured_vaults)
        self._thread = LoopThread(f"cluster-node-{settings.node_id}")
        self.store: ClusterStore | None = None
        self._board: HaltBoard | None = None
        self._membership: Membership | None = None
        #: The halt record as last read or watched (the kill switch's start reads it).
        self.record: HaltRecord = NO_HALT
        #: The highest cluster epoch this node has halted for (followed, opened or started in).
        self._followed = 0
        self._pending_open: LocalTrigger | None = None
        #: (cluster epoch, local epoch) of the cluster halt this node is in, once its kill switch
        #: has shown it: the recovery that ends that very local halt clears the cluster's, and
        #: the cluster's clear ends that very local halt (and no later one).
        self._halted_at: tuple[int, int] | None = None
        #: The (cluster epoch, proof) of the clear this node's kill switch was asked to follow
        #: (asked once each: a forged clear refused does not hide a genuine one written after it).
        self._recovering: tuple[int, ClusterProof | None] | None = None
        #: The proof of the cluster recovery accepted by this node's kill switch (``recovered``).
        self._proof: ClusterProof | None = None
        #: The clear records (epoch, proof) this node wrote its own proof over: each only once, so
        #: two nodes that both recovered the same epoch do not overwrite each other for ever.
        self._overwritten: set[tuple[int, ClusterProof | None]] = set()
        #: The cluster epoch this node last said it cannot clear (said once).
        self._no_proof_said = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watch: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._acks: ClusterAcks | None = None
        self._unavailable_since: float | None = None
        #: When the server made the halt bucket's stream (a new time: it was lost and made again).
        self._halt_created: datetime.datetime | None = None
        self.views: ClusterViews | None = None
        #: The cluster's vault set as last read (open: before the tree; then every beat).
        self.vault_set: VaultSetFollower | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The node's event loop, where its store lives (the lease loop has one of its own)."""
        return self._thread.loop

    async def live(self) -> tuple[str, ...]:
        """The live nodes' ids (on :attr:`loop`): what placement spreads the vaults over."""
        return await self._membership.live()

    def member_counts(self) -> dict[Liveness, int]:
        """Members by liveness as last read (any thread; empty before :meth:`open`): the metrics."""
        return {} if self._membership is None else self._membership.counts()

    # -- lifecycle ------------------------------------------------------------------------------

    def open(self, timeout: float = 30.0) -> HaltRecord:
        """Connect, refuse a node id held by another live process, read the halt record.

        Raises ClusterUnavailable (NATS does not answer: do not start), DuplicateNode, or
        ClusterError (a bucket with other timings, a record that does not parse).
        """
        self._thread.start(self._open(), timeout)
        if self.record.halted:
            logger.critical(
                "cluster: halt epoch {} is open (opened by node {}: {}): this node starts halted",
                self.record.epoch, self.record.node_id, self.record.reason,
            )
        return self.record

    async def _open(self) -> None:
        self._wake = asyncio.Event()
        self.store = await ClusterStore.open(self.settings)
        self._board = HaltBoard(self.store, self.node_id)
        self._acks = ClusterAcks(self._board, self.kill_switch, self._local_ack_deadline_s, self.settings.heartbeat_s)
        self._membership = Membership(self.store, self.identity)
        self.views = ClusterViews(
            self.store, self._board, self._membership, self.identity, lambda: self.record, lambda: self.vault_set
        )
        for member in await self._membership.members():
            alive = liveness(member, time.time(), self.settings.dead_after_s) is Liveness.ALIVE
            if member.node_id == self.node_id and alive:
                raise DuplicateNode(
                    f"node id {self.node_id!r} is live in another process (incarnation {member.incarnation}): "
                    "stop that one, or wait dead_after_s after it died"
                )
        self.record, _ = await self._board.current()
        self._halt_created = await self.store.created("halt")
        # Whatever this node missed before it started is settled by starting halted or not.
        self._followed = self.record.epoch
        self.vault_set = VaultSetFollower(VaultSetBoard(self.store, self.node_id))
        await self.vault_set.open(self._configured_vaults, f"node {self.node_id}'s [vaults]")

    def start_trigger(self) -> Trigger | None:
        """The halt the kill switch starts in (at every start of it) while the cluster is halted."""
        record = self.record
        if not record.halted:
            return None
        return Trigger(mode=record.mode, reason=follow_reason(record), source=NodeHaltSource.CLUSTER.value)

    def start(self) -> None:
        """Begin the beats and the watch (call once the tree is up)."""
        asyncio.run_coroutine_threadsafe(self._start(), self._thread.loop).result(5.0)

    async def _start(self) -> None:
        if self.record.halted:
            self.spawn(self._ack(self.record.epoch, 0))
        self.spawn(self._beats())
        self._restart_watch()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop beating and watching, delete the member record (:meth:`Membership.leave`; the
        engine released its leases before), close the connection."""
        self._thread.stop(self._close, timeout)

    async def _close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._membership is not None:
            await self._membership.leave()
        if self.store is not None:
            await self.store.close()

    def debug_views(self) -> dict[str, Callable[[], Any]]:
        """The debug socket's views: ``cluster`` (``ctl cluster``) and ``cluster_halt`` (in ``ctl status``)."""
        return {"cluster": lambda: self._view("cluster"), "cluster_halt": lambda: self._view("halt")}

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coroutine`` on the node's loop (from another thread) and wait for its result;
        cancelled after ``timeout`` (then TimeoutError)."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self._thread.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def _view(self, name: str) -> Any:
        views = self.views
        if views is None:
            raise RuntimeError("the cluster node is not open")
        try:
            return self.call(getattr(views, name)(), 3 * self.settings.op_timeout_s + 1)
        except (ClusterError, concurrent.futures.TimeoutError) as exc:
            return views.unavailable(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)

    def spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        """Run ``coroutine`` as a task on the node's loop (call it there); cancelled at stop."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)  # a failure is logged: an open the beat tries again, or a bug
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.warning("cluster: {} failed: {!r}", task.get_coro().__qualname__, exc)

    # -- local triggers -------------------------------------------------------------------------

    def on_kill_switch_event(self, kind: str, details: dict[str, Any]) -> None:
        """The kill switch's events (any thread): a local trigger opens a cluster halt epoch.

        Every trigger, whatever sent it, passes the kill switch's one trigger path, which records
        ``HALT`` / ``triggered`` with its source; a halt that came from the cluster does not open
        another epoch.
        """
        with contextlib.suppress(RuntimeError):  # the loop is closed: the node is stopping
            self._thread.loop.call_soon_threadsafe(self._kill_switch_changed)
        if kind != "HALT" or details.get("what") != "triggered" or not opens_cluster_halt(details.get("source")):
            return
        try:
            mode = HaltMode(details.get("mode"))
        except ValueError:
            mode = HaltMode.EMERGENCY
        reason = f"{details.get('source')} on node {self.node_id}: {details.get('reason') or ''}"
        want = LocalTrigger(mode, reason, int(details.get("epoch") or 0))
        with contextlib.suppress(RuntimeError):  # the loop is closed: the node is stopping
            self._thread.loop.call_soon_threadsafe(self._want_open, want)

    def _kill_switch_changed(self) -> None:
        """Wake every pending ack (on the loop): the local halt may be complete now."""
        if self._acks is not None:
            self._acks.changed()

    def _want_open(self, want: LocalTrigger) -> None:
        """Open the cluster halt now, not at the beat's next turn (which may be waiting on NATS);
        the beat tries again if this fails. Two opens at once are one: the write is a CAS."""
        self._pending_open = want
        if self._board is not None:
            self.spawn(self._open_pending())
        if self._wake is not None:
            self._wake.set()

    async def _open_pending(self) -> None:
        want = self._pending_open
        if want is None or self._board is None:
            return
        change = await self._board.open(want.reason, want.mode, above=max(self.record.epoch, self._followed))
        if self._pending_open is want:
            self._pending_open = None
        record = change.record
        logger.critical(
            "cluster: halt epoch {} {} ({})", record.epoch, "opened" if change.changed else "already open", record.reason
        )
        self.record = record
        if record.epoch > self._followed:  # our own trigger halted this node already
            self._followed = record.epoch
            self.spawn(self._ack(record.epoch, want.local_epoch))

    # -- the beat -------------------------------------------------------------------------------

    async def _beats(self) -> None:
        assert self._wake is not None
        while True:
            await self._beat()
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.heartbeat_s)

    async def _beat(self) -> None:
        assert self._board is not None and self._membership is not None and self.store is not None
        try:
            created = await self.store.created("halt")
            if created is None or created != self._halt_created:
                await self._records_lost(created is None)
            await self._open_pending()
            await self._clear_if_recovered_here()
            record, _ = await self._board.current()
            if self._follow(record) and self._watch is not None:
                logger.warning("cluster: the halt watch missed epoch {}: restarting it", record.epoch)
                self._restart_watch()
            state = self.kill_switch.state
            if state is not None:
                await self._membership.heartbeat(await asyncio.to_thread(self._owned), state)
            if self.vault_set is not None:
                await self.vault_set.read()
            if self._unavailable_since is not None:
                logger.warning("cluster: NATS answers again")
                self._unavailable_since = None
        except DuplicateNode as exc:
            self._halt_self(NodeHaltSource.DUPLICATE_NODE, str(exc))
        except ClusterDataError as exc:
            self._halt_self(NodeHaltSource.CLUSTER_DATA, f"the cluster's records do not parse: {exc}")
        except ClusterUnavailable as exc:
            if self._unavailable_since is None:
                self._unavailable_since = time.monotonic()
                logger.error("cluster: NATS does not answer: {}", exc)
        except ClusterError as exc:
            logger.error("cluster: beat: {}", exc)
        lost_s = self.settings.nats_lost_halt_s
        if nats_lost(self.store.last_contact, time.monotonic(), lost_s):
            self._halt_self(NodeHaltSource.NATS_LOST, f"NATS has not answered for {lost_s:g} s")

    async def _records_lost(self, gone: bool) -> None:
        """The halt bucket's stream is ``gone``, or not the one this node opened: NATS lost the
        cluster's records (its store wiped or replaced). Whether a halt was open cannot be known,
        so: the buckets made again, the vault set written back as last read, this node halted and
        a cluster halt opened above every epoch it saw (fail closed); one authorised recovery of
        that epoch resumes the cluster (docs/CLUSTER.md, "NATS lost its store")."""
        assert self.store is not None
        seen = max(self.record.epoch, self._followed)
        reason = (f"NATS lost the cluster's records (the halt bucket {'is gone' if gone else 'was made again'}; "
                  f"this node had seen halt epoch {seen}): a halt may have been open")
        logger.critical("cluster: {}", reason)
        await self.store.make_buckets_again()
        self._halt_created = await self.store.created("halt")
        if self.vault_set is not None and self.vault_set.vaults:
            await self.vault_set.board.seed(self.vault_set.vaults, f"written back by node {self.node_id}: NATS lost it")
        status = self.kill_switch.board.status
        self._halt_self(NodeHaltSource.RECORDS_LOST, reason)
        self._want_open(LocalTrigger(HaltMode.EMERGENCY, f"{reason} (node {self.node_id})",
                                     status.epoch if status.halted else status.epoch + 1))

    def _owned(self) -> int:
        try:
            return self._owned_vaults()
        except Exception as exc:  # noqa: BLE001 - a count is information, not a reason to stop beating
            logger.warning("cluster: cannot count the owned vaults: {!r}", exc)
            return 0

    def _halt_self(self, source: NodeHaltSource, reason: str) -> None:
        """Halt this node (emergency: nothing more is signed) unless it is halted already."""
        if self.kill_switch.halted:
            return
        logger.critical("cluster: halting this node ({}): {}", source.value, reason)
        self.kill_switch.trigger(HaltMode.EMERGENCY, reason, source)

    # -- following the cluster ------------------------------------------------------------------

    def _follow(self, record: HaltRecord) -> bool:
        """Take in a halt record (read or watched); True if it halted this node now."""
        if record.epoch < self.record.epoch:
            return False  # an older value, overtaken
        if record != self.record:
            self._kill_switch_changed()  # a pending ack of an epoch now cleared or overtaken ends
        self.record = record
        at = self._halted_at
        asked = (record.epoch, record.proof)
        if not record.halted and at is not None and at[0] == record.epoch and self._recovering != asked:
            if self.kill_switch.halted:  # the kill switch verifies the proof, refuses a halt newer than at[1]
                self._recovering = asked
                self.spawn(self._follow_recovery(record, at[1]))
            return False
        if not record.halted or record.epoch <= self._followed:
            return False
        want = self._pending_open
        if want is not None:
            # This node's own trigger is waiting to open an epoch, and found one open: it is
            # halted already, so it adopts this epoch instead of halting once more.
            self._pending_open = None
            self._followed = record.epoch
            self.spawn(self._ack(record.epoch, want.local_epoch))
            return False
        local_epoch = self.kill_switch.board.status.epoch + 1
        if not self.kill_switch.trigger(record.mode, follow_reason(record), NodeHaltSource.CLUSTER):
            return False  # the next beat tries again
        logger.critical("cluster: halting for cluster halt epoch {} ({})", record.epoch, record.reason)
        self._followed = record.epoch
        self.spawn(self._ack(record.epoch, local_epoch))
        return True

    def _restart_watch(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        self._watch = self.spawn(self._watching())

    async def _watching(self) -> None:
        """The fast path: silent while NATS is down, possibly stale after a restart (the beat
        reads the record anyway), so any failure just starts it again a beat later."""
        assert self._board is not None
        while True:
            try:
                async for record in self._board.watch():
                    self._follow(record)
            except ClusterError as exc:
                logger.debug("cluster: halt watch: {}", exc)
            except Exception as exc:  # noqa: BLE001 - nats-py's watcher raises its own on a lost server
                logger.debug("cluster: halt watch: {!r}", exc)
            await asyncio.sleep(self.settings.heartbeat_s)

    async def _ack(self, epoch: int, local_epoch: int) -> None:
        """Publish this node's ack of ``epoch`` once its local halt (``local_epoch`` or later) is
        complete, or with the missing actors once the local ack deadline has passed (ClusterAcks)."""
        assert self._acks is not None

        def halted(local: int) -> None:
            if self._halted_at is None or self._halted_at[0] != epoch:
                self._halted_at = (epoch, local)

        await self._acks.ack(epoch, local_epoch, lambda: self.record.epoch == epoch and self.record.halted, halted)
