"""A vault removed from the cluster's vault set is drained on its holder before its lease goes.

When a vault's lease is given up, the executor hands its trades over without an outcome: only
the lease holder records one, and the next holder adopts them (docs/CLUSTER.md, "Hand-over"). A
vault removed from the set has no next holder, so a trade it had in flight would stay open with
nobody to settle it. So the holder drains it first: :class:`RemovedVaults` stands between the
vault set and the lease loop. It has the engine stop the removed vault's actor (no new round, no
new trade) and keeps the vault in the set it hands the lease loop (the lease stays held and
renewed, so the fence lets the executor finish the trades and record their outcomes) until the
executor carries no trade of it; only then does the lease loop see it gone, passivate it
(``removed``: nothing left to hand over) and release its lease.

A drain is bounded (:data:`DRAIN_WITHIN_S`: a sent transaction is settled at the latest once its
blockhash has expired, about a minute); past it the vault is let go anyway, its trades handed
over open, to be settled when the vault is added again (its next owner adopts them). A vault added
back while it drains is let go once and taken again, so that the lease loop activates it afresh
(adopting whatever is still open).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from loguru import logger

from xorj_actors.cluster._ownership import Ownership

__all__ = ["DRAIN_WITHIN_S", "RemovedVaults"]

#: How long a removed vault's trades may take to become final on its holder before it is let go.
DRAIN_WITHIN_S = 180.0
#: How long a vault added back while it drained may take to be released before it is offered again.
_LET_GO_WITHIN_S = 30.0
_POLL_S = 0.2


class RemovedVaults:
    """The vault set as the lease loop sees it: the cluster's, plus the removed vaults still
    draining here. Its :meth:`on_set` is the vault set's listener (on the node's loop).

    Args:
        ownership: the lease loop.
        vaults: the set the lease loop was made with.
        stop_actor: stop a vault's actor, audited (blocking: run off the loop).
        busy: whether the executor still carries a trade of a vault (blocking; True when it
            cannot tell).
        spawn: start a task on the node's loop (cancelled when the node stops).
        within_s: how long a drain may take.
    """

    def __init__(
        self,
        ownership: Ownership,
        vaults: Iterable[str],
        stop_actor: Callable[[str], None],
        busy: Callable[[str], bool],
        spawn: Callable[[Coroutine[Any, Any, None]], Any],
        *,
        within_s: float = DRAIN_WITHIN_S,
    ) -> None:
        self._ownership = ownership
        self._latest = frozenset(vaults)
        self._given = self._latest
        self._draining: set[str] = set()
        self._held_back: set[str] = set()  # added back while draining: let go once, then offered again
        self._stop_actor, self._busy, self._spawn = stop_actor, busy, spawn
        self._within_s = within_s

    @property
    def draining(self) -> frozenset[str]:
        return frozenset(self._draining)

    def on_set(self, vaults: tuple[str, ...]) -> None:
        """A version of the cluster's vault set (on the loop): drain what left it and is held
        here, hand the lease loop the rest."""
        self._latest = frozenset(vaults)
        held = set(self._ownership.owned())
        for vault in sorted((self._given - self._latest) & held - self._draining):
            self._draining.add(vault)
            self._spawn(self._drain(vault))
        self._give()

    def _give(self) -> None:
        self._given = (self._latest | self._draining) - self._held_back
        self._ownership.set_vaults(self._given)

    async def _drain(self, vault: str) -> None:
        started = time.monotonic()
        try:
            logger.warning("cluster: {} left the vault set: draining its trades before its lease goes", vault)
            await asyncio.to_thread(self._stop_actor, vault)
            while vault not in self._latest and await asyncio.to_thread(self._busy, vault):
                if time.monotonic() - started > self._within_s:
                    logger.error(
                        "cluster: {}'s trades are not final after {:g} s: its lease goes anyway, its open trades are "
                        "settled when it is added again", vault, self._within_s,
                    )
                    break
                await asyncio.sleep(_POLL_S)
        except Exception:  # noqa: BLE001 - let it go as if drained: its trades are then handed over
            logger.exception("cluster: draining {} failed", vault)
        finally:
            self._draining.discard(vault)
            if vault in self._latest:
                self._held_back.add(vault)
            self._give()
        if vault not in self._held_back:
            logger.info("cluster: {} drained in {:.1f} s: its lease goes", vault, time.monotonic() - started)
            return
        # Added back meanwhile: its actor was stopped, so the lease loop lets it go and takes it again.
        logger.warning("cluster: {} was added back while it drained: released and taken again", vault)
        deadline = time.monotonic() + _LET_GO_WITHIN_S
        while vault in self._ownership.owned() and time.monotonic() < deadline:
            await asyncio.sleep(_POLL_S)
        self._held_back.discard(vault)
        self._give()
