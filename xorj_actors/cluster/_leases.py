"""Vault leases in the ``leases`` bucket: key = vault id, value = the holder, revision = fencing token.

- acquire: create only if absent;
- renew: update only if the revision is still the one this node holds (compare-and-swap);
- release: delete only at that revision;
- a lease not renewed disappears after the bucket's TTL (NATS 2.9 has no per-key TTL and tells
  nobody): the holder stops signing on its own local deadline (:class:`LeaseClock`), and others
  notice by reading.

A write whose answer was lost (a timeout) may still have landed. The value names this process
(node id and incarnation), so a later refusal that finds our own holder there adopts it by a
fresh compare-and-swap instead of taking the write for someone else's.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import nats.js.errors

from xorj_actors.cluster._errors import LeaseConflict
from xorj_actors.cluster._fencing import LeaseGrant
from xorj_actors.cluster._records import LeaseHolder, LeaseInfo, decode, encode
from xorj_actors.cluster._store import ClusterStore

__all__ = ["Leases", "NodeIdentity", "VAULT_KEY", "wrong_revision"]

#: A vault id usable as a lease key: one subject token (no ``.``, ``*``, ``>``).
VAULT_KEY: Final = re.compile(r"[A-Za-z0-9_=-]{1,128}")
#: JSStreamWrongLastSequenceErrF: a write's expected revision was not the key's.
_WRONG_LAST_SEQUENCE: Final = 10071


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """This process in the cluster: the node id and a random incarnation for this run."""

    node_id: str
    incarnation: str
    #: Wall time this process started.
    started_at: float

    @classmethod
    def new(cls, node_id: str) -> NodeIdentity:
        return cls(node_id, secrets.token_hex(8), time.time())

    def holds(self, holder: LeaseHolder) -> bool:
        """Whether ``holder`` is this very process (not merely the same node id)."""
        return holder.node_id == self.node_id and holder.incarnation == self.incarnation


def _key(vault_id: str) -> str:
    if not VAULT_KEY.fullmatch(vault_id):
        raise ValueError(f"vault id {vault_id!r}: must be 1 to 128 letters, digits, '-', '_' or '='")
    return vault_id


def wrong_revision(exc: nats.js.errors.APIError) -> bool:
    return isinstance(exc, nats.js.errors.KeyWrongLastSequenceError) or exc.err_code == _WRONG_LAST_SEQUENCE


class Leases:
    """This node's view of the leases bucket."""

    def __init__(self, store: ClusterStore, identity: NodeIdentity, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._kv = store.bucket("leases")
        self._me = identity
        self._clock = clock

    def _value(self) -> bytes:
        return encode(LeaseHolder(self._me.node_id, self._me.incarnation, time.time()))

    def _granted(self, grant: LeaseGrant) -> str:
        """The grant's key; ValueError if the grant was not issued to this process.

        Compare-and-swap checks the revision only: a grant carried over from another run (a
        revision read from an audit record, say) would renew a lease this process never took.
        """
        if grant.incarnation != self._me.incarnation:
            raise ValueError(
                f"{grant.vault_id}: grant issued to incarnation {grant.incarnation!r}, this process is {self._me.incarnation!r}"
            )
        return _key(grant.vault_id)

    async def owner(self, vault_id: str) -> LeaseInfo | None:
        """The vault's lease as the bucket holds it now; None if nobody holds it."""
        entry = await self._store.get("leases", _key(vault_id))
        if entry is None:  # absent, expired, or released
            return None
        return LeaseInfo(vault_id, decode(LeaseHolder, entry.value), entry.revision)

    async def acquire(self, vault_id: str) -> LeaseGrant:
        """Take the vault's lease if nobody holds it.

        Raises LeaseConflict (with the holder) if another holds it, ClusterUnavailable if NATS
        did not answer (the lease may then be ours: the next acquire finds out).
        """
        key = _key(vault_id)
        sent = self._clock()
        try:
            revision = await self._store.run(self._kv.create(key, self._value()))
        except nats.js.errors.APIError as exc:
            if not wrong_revision(exc):
                raise
            return await self._adopt(vault_id, "held")
        return LeaseGrant(vault_id, revision, sent, self._me.incarnation)

    async def renew(self, grant: LeaseGrant) -> LeaseGrant:
        """Extend a held lease; returns the new grant (new revision, new deadline).

        Raises LeaseConflict if the lease is no longer held at ``grant.revision`` by this process
        (expired, released, or taken): the vault must be passivated. ClusterUnavailable leaves
        ``grant`` as it was: it stays usable until its own deadline.
        """
        key = self._granted(grant)
        sent = self._clock()
        try:
            revision = await self._store.run(self._kv.update(key, self._value(), last=grant.revision))
        except nats.js.errors.APIError as exc:
            if not wrong_revision(exc):
                raise
            return await self._adopt(grant.vault_id, "lost")
        return LeaseGrant(grant.vault_id, revision, sent, self._me.incarnation)

    async def _adopt(self, vault_id: str, lost: str) -> LeaseGrant:
        """After a refused write: adopt the lease if this process holds it at another revision
        (an earlier write whose answer was lost), by a fresh compare-and-swap; else LeaseConflict."""
        info = await self.owner(vault_id)
        if info is None:
            raise LeaseConflict(vault_id, f"{lost}: nobody holds it now (expired or released)", None)
        if not self._me.holds(info.holder):
            raise LeaseConflict(
                vault_id, f"{lost}: held by node {info.holder.node_id} ({info.holder.incarnation})", info.holder
            )
        sent = self._clock()
        try:
            revision = await self._store.run(self._kv.update(_key(vault_id), self._value(), last=info.revision))
        except nats.js.errors.APIError as exc:
            if not wrong_revision(exc):
                raise
            raise LeaseConflict(vault_id, f"{lost}: changed while adopting revision {info.revision}", None) from None
        return LeaseGrant(vault_id, revision, sent, self._me.incarnation)

    async def release(self, grant: LeaseGrant) -> None:
        """Give the lease up (the vault's actor is already passivated: nothing signs after this).

        A delete at ``grant.revision`` only, so a lease already taken by another node is left
        alone; then LeaseConflict says so.
        """
        try:
            await self._store.run(self._kv.delete(self._granted(grant), last=grant.revision))
        except nats.js.errors.APIError as exc:
            if not wrong_revision(exc):
                raise
            raise LeaseConflict(grant.vault_id, f"not released: no longer held at revision {grant.revision}") from None

    async def release_held(self, vault_id: str) -> bool:
        """Give the lease up at whatever revision this very process holds it (after :meth:`release`
        was refused because a renewal whose answer was lost, or was cancelled as the node stopped,
        had landed). Only for a vault this process is giving up and does not take again meanwhile.

        True if deleted; False if nobody holds it; LeaseConflict if another process does.
        """
        info = await self.owner(vault_id)
        if info is None:
            return False
        if not self._me.holds(info.holder):
            raise LeaseConflict(vault_id, f"not released: held by node {info.holder.node_id} now", info.holder)
        try:
            await self._store.run(self._kv.delete(_key(vault_id), last=info.revision))
        except nats.js.errors.APIError as exc:
            if not wrong_revision(exc):
                raise
            raise LeaseConflict(vault_id, f"not released: changed while releasing revision {info.revision}") from None
        return True

    async def present(self) -> frozenset[str]:
        """The vaults whose key is in the bucket (held, or a delete marker): one request. A vault
        not in it is free; one in it may be either (:meth:`owner` tells which)."""
        return await self._store.keys("leases")

    async def all(self) -> dict[str, LeaseInfo]:
        """Every lease held now, by vault id."""
        entries = await self._store.entries("leases")
        return {e.key: LeaseInfo(e.key, decode(LeaseHolder, e.value), e.revision) for e in entries}
