"""The cluster's vault set: one key, ``vaults``, in the ``config`` bucket (no TTL).

Every node places the same vaults: the set is the cluster's, not each node's ``[vaults] count``.
The first node to start seeds it from its ``[vaults] count`` (create if absent); after that the
key wins, and ``ctl vault-add`` / ``vault-remove`` on any node change it by compare-and-swap on
its revision, so two edits at once both land (the loser reads again and re-applies its change)
and neither is lost. Every node reads it at each beat and hands a new version to its lease loop:
placement then leases an added vault to one node, and the holder of a removed one passivates it
and releases its lease.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import nats.js.errors
from loguru import logger

from xorj_actors.cluster._errors import ClusterDataError, ClusterError
from xorj_actors.cluster._leases import VAULT_KEY
from xorj_actors.cluster._records import VaultSet, decode, encode
from xorj_actors.cluster._store import ClusterStore

__all__ = ["VAULTS_KEY", "VaultSetBoard", "VaultSetChange", "VaultSetFollower"]

#: The key of the vault set in the ``config`` bucket.
VAULTS_KEY = "vaults"
#: Compare-and-swap rounds before giving up (each lost round means another node changed it), and
#: the back-off after a lost round (times the rounds lost, drawn at random below it).
_ROUNDS = 16
_BACKOFF_S = 0.02
#: What one KV value may hold: NATS refuses a message over the server's max_payload (1 MB by
#: default); about 70,000 vault ids.
_MAX_BYTES = 900_000

#: ``(current vault ids) -> (new vault ids, what changed)``; raises to change nothing.
Edit = Callable[[tuple[str, ...]], tuple[Iterable[str], str]]


@dataclass(frozen=True, slots=True)
class VaultSetChange:
    """An edit of the vault set: the set before and after, and the revision written."""

    before: VaultSet
    after: VaultSet
    revision: int


def _checked(record: VaultSet) -> VaultSet:
    """The record, if its vault ids are usable lease keys, sorted and each once."""
    bad = [v for v in record.vaults if not VAULT_KEY.fullmatch(v)]
    if bad:
        raise ClusterDataError(f"VaultSet.vaults: {len(bad)} id(s) that are no lease key, e.g. {bad[0]!r}")
    if list(record.vaults) != sorted(set(record.vaults)):
        raise ClusterDataError("VaultSet.vaults: not sorted, or an id repeated")
    return record


class VaultSetBoard:
    """The vault set, as one node reads and edits it (coroutines on the store's loop)."""

    def __init__(self, store: ClusterStore, node_id: str, wall: Callable[[], float] = time.time) -> None:
        self._store = store
        self._kv = store.bucket("config")
        self._node_id = node_id
        self._wall = wall

    async def current(self) -> tuple[VaultSet | None, int]:
        """The vault set and its revision; (None, 0) before any node seeded it. ClusterDataError
        if it does not parse (never guessed at)."""
        entry = await self._store.get("config", VAULTS_KEY)
        if entry is None:
            return None, 0
        return _checked(decode(VaultSet, entry.value)), entry.revision

    async def seed(self, vaults: Iterable[str], why: str) -> tuple[VaultSet, int]:
        """The cluster's vault set; written from ``vaults`` (``why``: where they come from) only
        if no node has written one yet, else the one there, unchanged."""
        record = self._record(vaults, why)
        try:
            revision = await self._store.run(self._kv.create(VAULTS_KEY, self._encoded(record)))
            return record, revision
        except nats.js.errors.KeyWrongLastSequenceError:
            pass  # another node seeded it first
        current, revision = await self.current()
        if current is None:  # created and deleted meanwhile: nothing here deletes it
            raise ClusterError(f"vault set: key {VAULTS_KEY!r} exists and does not: try again")
        return current, revision

    async def edit(self, change: Edit) -> VaultSetChange:
        """Apply ``change`` to the current set by compare-and-swap; re-read and re-apply it when
        another node wrote first. Whatever ``change`` raises propagates, and nothing is written."""
        for lost in range(_ROUNDS):
            if lost:  # another node wrote first: back off a random while, so that edits at once spread
                await asyncio.sleep(random.uniform(0, _BACKOFF_S * lost))
            before, revision = await self.current()
            if before is None:
                raise ClusterError("vault set: not seeded yet (no node has started)")
            vaults, what = change(before.vaults)
            after = self._record(vaults, what)
            try:
                written = await self._store.run(self._kv.update(VAULTS_KEY, self._encoded(after), last=revision))
            except nats.js.errors.KeyWrongLastSequenceError:
                continue
            return VaultSetChange(before, after, written)
        raise ClusterError(f"vault set: changed {_ROUNDS} times while editing; try again")

    def _record(self, vaults: Iterable[str], change: str) -> VaultSet:
        record = VaultSet(tuple(sorted(set(vaults))), self._node_id, self._wall(), change)
        try:
            return _checked(record)
        except ClusterDataError as exc:
            raise ValueError(str(exc)) from None

    @staticmethod
    def _encoded(record: VaultSet) -> bytes:
        value = encode(record)
        if len(value) > _MAX_BYTES:
            raise ValueError(f"vault set: {len(record.vaults)} vaults take {len(value)} bytes, over {_MAX_BYTES}")
        return value


#: Told the vault ids each time a new version of the set is read (on the node's loop).
Listener = Callable[[tuple[str, ...]], None]


class VaultSetFollower:
    """The vault set as this node last read it, handed to its listeners (the lease loop) at every
    new version. Opened before the tree (a node that cannot read it does not start); read at
    every beat after that, a version that does not parse is reported and the last one kept
    (placement goes on with it: the leases, not the set, keep a vault on one node)."""

    def __init__(self, board: VaultSetBoard) -> None:
        self.board = board
        self.record: VaultSet | None = None
        self.revision = 0
        self._listeners: list[Listener] = []
        self._said_bad = False

    @property
    def vaults(self) -> tuple[str, ...]:
        return self.record.vaults if self.record is not None else ()

    async def open(self, configured: Iterable[str], source: str) -> VaultSet:
        """Read the set, seeding it from ``configured`` (``source``: this node's config) if the
        cluster has none yet."""
        configured = tuple(configured)
        record, self.revision = await self.board.seed(configured, f"seeded from {source}: {len(configured)} vaults")
        self.record = record
        if set(record.vaults) != set(configured):
            logger.warning(
                "cluster: the cluster's vault set ({} vaults, revision {}: {}) is not {} ({} vaults): the cluster's "
                "is placed (ctl vault-add / vault-remove change it)",
                len(record.vaults), self.revision, record.change, source, len(configured),
            )
        return record

    def follow(self, listener: Listener) -> None:
        """Tell ``listener`` the set now and at every new version (on the loop)."""
        self._listeners.append(listener)
        listener(self.vaults)

    async def read(self) -> None:
        """Read the set; tell the listeners if it changed."""
        try:
            record, revision = await self.board.current()
        except ClusterDataError as exc:
            if not self._said_bad:
                logger.critical("cluster: the vault set does not parse ({}): placement keeps the last one read", exc)
            self._said_bad = True  # said once, until a version parses again
            return
        self._said_bad = False
        if record is None or revision == self.revision:
            return
        self.record, self.revision = record, revision
        logger.warning("cluster: vault set revision {}: {} vaults ({}, by node {})", revision, len(record.vaults),
                       record.change, record.node_id)
        for listener in self._listeners:
            listener(record.vaults)
