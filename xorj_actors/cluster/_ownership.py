"""The lease loop: this node takes, keeps and gives up vaults by lease (docs/CLUSTER.md).

Two tasks on the event loop of the node's :class:`ClusterStore`:

- **renewals** (every ``tick_s``): a grant past its local deadline is lost (the fence already
  refuses it) and its vault passivated; the grants due are renewed by compare-and-swap, all
  at once (nats-py keeps many requests in flight on one connection); a refused renewal
  passivates the vault; a renewal NATS did not answer leaves the grant to its deadline.
- **placement** (every ``place_every_s``): the live nodes (membership) decide where each vault
  should be; vaults placed here whose lease is free are acquired and then activated; vaults
  placed elsewhere are revoked in the fence, passivated, then released (delete at revision).

The fence is the safety, the hooks are the engine's business: ``activate(vault, grant)`` is
called only once the lease is held and in the fence; ``passivate(vault, why)`` only after the
fence already refuses the vault. The hooks run on one worker thread of their own, in order
(an activation and a later passivation of one vault never overtake each other), so starting
or stopping actors never delays a renewal.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from loguru import logger

from xorj_actors.cluster._errors import ClusterError, ClusterUnavailable, LeaseConflict
from xorj_actors.cluster._fence import Fence
from xorj_actors.cluster._fencing import LeaseGrant
from xorj_actors.cluster._leases import Leases, NodeIdentity
from xorj_actors.cluster._ownership_rules import LeaseLoss, placed_here, placement, renewals
from xorj_actors.cluster._records import LeaseInfo

__all__ = ["Activate", "Ownership", "Passivate", "RenewalRound"]

#: ``(vault id, grant)``: start the vault's actor; raise if it cannot start (the lease is handed back).
Activate = Callable[[str, LeaseGrant], None]
#: ``(vault id, why)``: stop the vault's actor (nothing new is signed for it: the fence refuses).
Passivate = Callable[[str, LeaseLoss], None]
#: The live nodes' ids (:meth:`Membership.live`).
LiveNodes = Callable[[], Awaitable[Iterable[str]]]
#: Fewer candidates than this are looked up one by one; more, by listing the bucket once.
_LIST_ABOVE = 64
#: Lease requests in flight at once. All of 10,000 at once took 1.5 s to answer on the 2-core
#: machine, past the 1 s request timeout, so most of them "failed"; in windows of this size each
#: request's timeout measures the server, not our own queue (bench/bench_leases.py).
IN_FLIGHT = 256


@dataclass(frozen=True, slots=True)
class RenewalRound:
    """One batch of renewals: how many, how long it took (monotonic seconds), how it ended."""

    count: int
    seconds: float
    renewed: int
    lost: int
    unanswered: int


class Ownership:
    """This node's vault leases: acquired where placement says, renewed, given up.

    Args:
        leases: the leases bucket, as this process.
        fence: where held grants are published for the signing path.
        identity: this process (node id and incarnation).
        vaults: every configured vault id.
        live: the live nodes (membership); a node always counts itself alive.
        activate, passivate: the engine's hooks (see the module docstring).
        tick_s: how often grants are checked for renewal (default a quarter of ``renew_every_s``).
        place_every_s: how often placement runs (default half of ``renew_every_s``, at most 1 s).
    """

    def __init__(
        self,
        leases: Leases,
        fence: Fence,
        identity: NodeIdentity,
        vaults: Iterable[str],
        live: LiveNodes,
        activate: Activate,
        passivate: Passivate,
        *,
        tick_s: float | None = None,
        place_every_s: float | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        renew = fence.clock.renew_every_s
        self.leases, self.fence, self.me = leases, fence, identity
        self._vaults = tuple(sorted(set(vaults)))
        self._live = live
        self._activate, self._passivate = activate, passivate
        self.tick_s = tick_s if tick_s is not None else renew / 4
        self.place_every_s = place_every_s if place_every_s is not None else min(1.0, renew / 2)
        self._now = now
        self._held: dict[str, LeaseGrant] = {}
        self._active: set[str] = set()
        self._busy: set[str] = set()  # being acquired, renewed or released: one step at a time
        self._activating: set[str] = set()
        self._owned: tuple[str, ...] = ()
        self._window: asyncio.Semaphore | None = None  # made on the loop
        self._hooks = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="cluster-hooks")
        self._task: concurrent.futures.Future[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: The last batch of renewals (None before the first).
        self.last_renewal: RenewalRound | None = None

    # -- read by any thread ----------------------------------------------------------------------

    def owned(self) -> tuple[str, ...]:
        """The vaults this node holds a lease on, sorted (for the membership record)."""
        return self._owned

    def placed_here(self, live: Iterable[str]) -> tuple[str, ...]:
        return placed_here(self._vaults, live, self.me)

    # -- from another thread ---------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run the loops on ``loop`` (the store's event loop, on another thread)."""
        self._loop = loop
        self._task = asyncio.run_coroutine_threadsafe(self.run(), loop)

    def stop(self, timeout: float, *, release: bool = True) -> None:
        """Stop the loops; with ``release``, give every lease up (passivated first) so that other
        nodes take the vaults at once instead of after the TTL."""
        if self._task is not None and self._loop is not None:
            self._task.cancel()
            asyncio.run_coroutine_threadsafe(self.close(release=release), self._loop).result(timeout)
        self._hooks.shutdown(wait=True)

    # -- on the loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Renewals and placement until cancelled."""
        await asyncio.gather(self._every(self.tick_s, self.renew_step), self._every(self.place_every_s, self.place_step))

    async def _every(self, period: float, step: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a bug must not end the lease loop: the fence stays safe
                logger.exception("cluster: lease step {} failed", step.__name__)
            await asyncio.sleep(period)

    async def renew_step(self) -> None:
        """Lose the expired grants, renew the due ones (concurrently)."""
        step = renewals(self._held, self.fence.clock, self._now(), self._busy)
        for vault in step.expired:
            self._lose(vault, LeaseLoss.EXPIRED)
        if not step.due:
            return
        self._busy.update(step.due)
        start = self._now()
        try:
            results = await asyncio.gather(
                *(self._windowed(self.leases.renew, self._held[v]) for v in step.due), return_exceptions=True
            )
        finally:
            self._busy.difference_update(step.due)
        renewed = lost = unanswered = 0
        for vault, result in zip(step.due, results):
            if isinstance(result, LeaseGrant):
                if vault in self._held:
                    self._held[vault] = result
                    self.fence.grant(result)
                    renewed += 1
            elif isinstance(result, ClusterUnavailable):
                unanswered += 1  # the grant stands until its own deadline
            elif isinstance(result, LeaseConflict | ClusterError | ValueError):
                lost += 1
                self._lose(vault, LeaseLoss.LOST, str(result))
            else:
                raise result  # type: ignore[misc]  # a bug: _every logs it
        self.last_renewal = RenewalRound(len(step.due), self._now() - start, renewed, lost, unanswered)
        if lost or unanswered:
            logger.warning("cluster: renewals: {} renewed, {} lost, {} unanswered", renewed, lost, unanswered)

    async def _windowed(self, call: Callable[[Any], Awaitable[Any]], arg: Any) -> Any:
        """``call(arg)`` once one of :data:`IN_FLIGHT` slots is free (the request's send time,
        which its deadline counts from, is read only then)."""
        if self._window is None:
            self._window = asyncio.Semaphore(IN_FLIGHT)
        async with self._window:
            return await call(arg)

    async def place_step(self) -> None:
        """Acquire what is placed here and free; activate what is held and not active; give up
        what is placed elsewhere."""
        try:
            live = tuple(await self._live())
        except ClusterError as exc:
            logger.warning("cluster: live nodes unknown ({}); placement waits", exc)
            return
        mine = set(self.placed_here(live))
        candidates = sorted(mine - set(self._held) - self._busy)
        try:
            leases = await self._lookup(candidates)
        except ClusterError as exc:
            logger.warning("cluster: leases unreadable ({}); placement waits", exc)
            return
        plan = placement(self._vaults, live, self.me, self._held, leases, self._busy)
        await asyncio.gather(
            *(self._release(v) for v in plan.release), *(self._acquire(v) for v in plan.acquire)
        )
        for vault in sorted(set(self._held) - self._active - self._busy - self._activating):
            await self._start(vault)  # held, but its activation failed before: try again

    async def _lookup(self, vaults: list[str]) -> dict[str, LeaseInfo | None]:
        if not vaults:
            return {}
        if len(vaults) > _LIST_ABOVE:
            every = await self.leases.all()
            return {v: every.get(v) for v in vaults}
        found = await asyncio.gather(*(self.leases.owner(v) for v in vaults))
        return dict(zip(vaults, found))

    async def _acquire(self, vault: str) -> None:
        self._busy.add(vault)
        try:
            grant = await self._windowed(self.leases.acquire, vault)
        except LeaseConflict:
            return  # taken meanwhile: waiting
        except ClusterUnavailable as exc:
            logger.warning("cluster: {} not acquired: {}", vault, exc)  # maybe ours: the next step adopts it
            return
        finally:
            self._busy.discard(vault)
        self._held[vault] = grant
        self.fence.grant(grant)
        self._owned = tuple(sorted(self._held))
        await self._start(vault)

    async def _start(self, vault: str) -> None:
        """Activate a held vault. Not a lease step (the key is not touched): its renewals go on
        while the engine starts the actor, however long that takes."""
        grant = self._held.get(vault)
        if grant is None or vault in self._activating:
            return
        self._activating.add(vault)
        try:
            await asyncio.get_running_loop().run_in_executor(self._hooks, self._activate, vault, grant)
        except Exception as exc:  # noqa: BLE001 - the engine could not start it: hand the lease back
            logger.error("cluster: {} not activated ({!r}): releasing its lease", vault, exc)
            self._activating.discard(vault)
            if vault not in self._busy:
                await self._release(vault, LeaseLoss.NOT_ACTIVATED)
            return
        finally:
            self._activating.discard(vault)
        if vault in self._held:
            self._active.add(vault)
            logger.info("cluster: {} activated at lease revision {}", vault, grant.revision)

    def _lose(self, vault: str, why: LeaseLoss, detail: str = "") -> None:
        """The fence refuses ``vault`` from now on; its actor is passivated (not awaited)."""
        self.fence.revoke(vault)
        self._held.pop(vault, None)
        self._active.discard(vault)
        self._owned = tuple(sorted(self._held))
        logger.warning("cluster: {} passivated: lease {}{}", vault, why.value, f" ({detail})" if detail else "")
        self._hooks.submit(self._passivate_logged, vault, why)

    def _passivate_logged(self, vault: str, why: LeaseLoss) -> bool:
        """Whether the engine let the vault go (its actor stopped, its trades handed over)."""
        try:
            self._passivate(vault, why)
        except Exception:  # noqa: BLE001 - the fence already refuses it: nothing signs for it
            logger.exception("cluster: passivating {} failed", vault)
            return False
        return True

    async def _release(self, vault: str, why: LeaseLoss = LeaseLoss.PLACED_ELSEWHERE) -> None:
        """Revoke, passivate (awaited: the engine lets the vault's trades go), then delete the
        lease at its revision; if passivation failed, the lease is left to expire instead."""
        grant = self.fence.revoke(vault)
        grant = self._held.pop(vault, grant)
        self._active.discard(vault)
        self._owned = tuple(sorted(self._held))
        if grant is None:
            return
        self._busy.add(vault)
        try:
            let_go = await asyncio.get_running_loop().run_in_executor(self._hooks, self._passivate_logged, vault, why)
            if not let_go:  # its trades may still be written for here: the TTL outlasts them
                logger.warning("cluster: {} not released (passivation failed): it expires after the TTL", vault)
                return
            await self.leases.release(grant)
            logger.info("cluster: {} released ({})", vault, why.value)
        except (LeaseConflict, ClusterError) as exc:
            logger.warning("cluster: {} not released ({}): it expires after the TTL", vault, exc)
        finally:
            self._busy.discard(vault)

    async def close(self, *, release: bool = True) -> None:
        """After the loops stopped: give up every lease (``release``), or only stop signing."""
        vaults = sorted(self._held)
        if release:
            await asyncio.gather(*(self._release(v, LeaseLoss.STOPPING) for v in vaults), return_exceptions=True)
        else:
            for vault in vaults:
                self._lose(vault, LeaseLoss.STOPPING)
