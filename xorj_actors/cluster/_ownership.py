"""The lease loop: this node takes, keeps and gives up vaults by lease (docs/CLUSTER.md).

Three tasks on the event loop of its :class:`ClusterStore` (the engine gives the lease loop a
thread, loop and NATS connection of its own: renewals never queue ahead of the node's halt path):

- **renewals** (every ``tick_s``): a grant past its local deadline is lost (the fence already
  refuses it) and its vault passivated; the grants due are renewed by compare-and-swap, all
  at once (nats-py keeps many requests in flight on one connection); a refused renewal
  passivates the vault; a renewal NATS did not answer leaves the grant to its deadline.
- **placement** (every ``place_every_s``): the live nodes (membership) decide where each vault
  should be; vaults placed here whose lease is free are acquired and then activated; vaults
  placed elsewhere are revoked in the fence, passivated, then released (delete at revision).
- **activation** (woken by an acquisition, at least every ``place_every_s``): held vaults not
  active are activated, apart from placement, so a long activation never delays an acquisition.

The fence is the safety, the hooks are the engine's business: ``activate(grants)`` is called
only once the leases are held and in the fence, with every vault a step acquired (in batches of
:data:`ACTIVATE_BATCH`: one read of their open trades, not one per vault, which is what makes a
fail-over of thousands of vaults fit in the lease TTL plus 2 s); ``passivate(vault, why)`` only
after the fence already refuses the vault. The hooks run on one worker thread of their own, in
order (an activation and a later passivation of one vault never overtake each other), so
starting or stopping actors never delays a renewal.

``running()`` says whether the actors activated so far still run. It turns False when the
engine's vaults supervisor was restarted (its dynamic children went with it): every held vault
is then activated again at the next placement step, its lease kept.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loguru import logger

from xorj_actors.cluster._errors import ClusterError, ClusterUnavailable, LeaseConflict
from xorj_actors.cluster._fence import Fence
from xorj_actors.cluster._fencing import LeaseGrant
from xorj_actors.cluster._leases import Leases, NodeIdentity
from xorj_actors.cluster._ownership_rules import LeaseLoss, placed_here, placement, renewals
from xorj_actors.cluster._records import LeaseInfo

__all__ = ["ACTIVATE_BATCH", "Activate", "Ownership", "Passivate", "RenewalRound", "one_by_one"]

#: ``grants``: start these vaults' actors; returns ``{vault id: why}`` for each that did not start
#: (its lease is handed back); raising means none started.
Activate = Callable[[Sequence[LeaseGrant]], Mapping[str, str]]
#: Vaults one ``activate`` call starts at most (the rest wait for the next call, on the same thread).
ACTIVATE_BATCH = 512
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
#: How often placement looks while a vault placed here waits for another's lease to go.
_WAITING_PLACE_S = 0.25


def one_by_one(activate: Callable[[str, LeaseGrant], None]) -> Activate:
    """An :data:`Activate` hook from one that starts a single vault and raises if it cannot."""

    def each(grants: Sequence[LeaseGrant]) -> dict[str, str]:
        failed: dict[str, str] = {}
        for grant in grants:
            try:
                activate(grant.vault_id, grant)
            except Exception as exc:  # noqa: BLE001 - reported per vault: its lease is handed back
                failed[grant.vault_id] = repr(exc)
        return failed

    return each


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
        running: whether the vault actors activated so far still run (see the module docstring).
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
        running: Callable[[], bool] = lambda: True,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        renew = fence.clock.renew_every_s
        self.leases, self.fence, self.me = leases, fence, identity
        self._vaults = tuple(sorted(set(vaults)))
        self._live = live
        self._activate, self._passivate, self._running = activate, passivate, running
        self.tick_s = tick_s if tick_s is not None else renew / 4
        self.place_every_s = place_every_s if place_every_s is not None else min(1.0, renew / 2)
        self._now = now
        self._held: dict[str, LeaseGrant] = {}
        self._active: set[str] = set()
        self._busy: set[str] = set()  # being acquired, renewed or released: one step at a time
        self._activating: set[str] = set()
        self._owned: tuple[str, ...] = ()
        self._waiting: tuple[str, ...] = ()  # placed here, leased by a node not live (the last placement)
        #: vault -> (its lease held by a node not live, monotonic time first seen so): see _lookup.
        self._expiring: dict[str, tuple[LeaseInfo, float]] = {}
        self._to_start = asyncio.Event()  # set when vaults were acquired: the activation loop wakes
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

    def set_vaults(self, vaults: Iterable[str]) -> None:
        """The cluster's vault set changed (on the loop): placement takes an added vault where it
        belongs, and a removed one held here is given up (``removed``) at its next step."""
        self._vaults = tuple(sorted(set(vaults)))

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
        """Renewals, placement and activation until cancelled."""
        await asyncio.gather(
            self._every(lambda: self.tick_s, self.renew_step),
            self._every(self._place_period, self.acquire_step),
            self._every(lambda: self.place_every_s, self.start_step, self._to_start),
        )

    def _place_period(self) -> float:
        """Placement looks again sooner while a vault placed here waits for a dead node's lease to
        expire at its TTL: it is taken within a quarter second of its expiry, not a second."""
        return min(self.place_every_s, _WAITING_PLACE_S) if self._waiting else self.place_every_s

    async def _every(self, period: Callable[[], float], step: Callable[[], Awaitable[None]],
                     wake: asyncio.Event | None = None) -> None:
        while True:
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a bug must not end the lease loop: the fence stays safe
                logger.exception("cluster: lease step {} failed", step.__name__)
            if wake is None:
                await asyncio.sleep(period())
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), period())
                wake.clear()

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
        now = self._now()
        for vault, result in zip(step.due, results):
            if isinstance(result, LeaseGrant) and not self.fence.clock.usable(result, now):
                lost += 1  # answered past its own deadline (the node was paused): no renewal
                self._lose(vault, LeaseLoss.EXPIRED, f"renewal to revision {result.revision} answered after its deadline")
            elif isinstance(result, LeaseGrant):
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
        """One placement step, then the activations it made due (:meth:`acquire_step`, then
        :meth:`start_step`)."""
        await self.acquire_step()
        await self.start_step()

    async def acquire_step(self) -> None:
        """Acquire what is placed here and free; give up what is placed elsewhere. The vaults
        acquired are activated by :meth:`start_step` (its own loop in :meth:`run`, so a long
        activation never delays the next acquisition)."""
        try:
            live = tuple(await self._live())
        except ClusterError as exc:
            logger.warning("cluster: live nodes unknown ({}); placement waits", exc)
            return
        mine = set(self.placed_here(live))
        # Not one being activated: lost meanwhile, its passivation is queued behind that activation.
        candidates = sorted(mine - set(self._held) - self._busy - self._activating)
        try:
            leases = await self._lookup(candidates, live)
        except ClusterError as exc:
            logger.warning("cluster: leases unreadable ({}); placement waits", exc)
            return
        plan = placement(self._vaults, live, self.me, self._held, leases, self._busy | self._activating)
        # A dead node's leases go at their TTL: look again soon (a live holder releases on its own).
        self._waiting = tuple(v for v in plan.waiting if (i := leases.get(v)) is not None and i.holder.node_id not in live)
        configured = set(self._vaults)
        await asyncio.gather(
            *(self._release(v, LeaseLoss.PLACED_ELSEWHERE if v in configured else LeaseLoss.REMOVED) for v in plan.release),
            *(self._acquire(v) for v in plan.acquire),
        )
        if plan.acquire:
            self._to_start.set()

    async def start_step(self) -> None:
        """Activate the held vaults that are not active: newly acquired, an activation that
        failed before, or all of them again after the engine's vaults supervisor restarted."""
        if self._active and not self._running():
            logger.warning("cluster: the vault actors were stopped under their leases (vaults supervisor restarted): "
                           "activating the {} held vaults again", len(self._held))
            self._active.clear()
        await self._start(sorted(set(self._held) - self._active - self._busy - self._activating))

    async def _lookup(self, vaults: list[str], live: tuple[str, ...]) -> dict[str, LeaseInfo | None]:
        """Each candidate's lease now (None: free).

        Many candidates: one request for the keys present first; a key absent is free. A lease
        already seen held by a node that is not live, less than a TTL ago, is taken as still
        held while its key is present: no live node renews it, so it goes at its TTL, and only
        its key's presence is read for it (a fail-over of thousands of vaults looks every quarter
        second without listing every lease each time). The rest are read, one by one or by one
        listing.
        """
        if not vaults:
            return {}
        if len(vaults) <= _LIST_ABOVE:
            return await self._read(vaults)
        present = await self.leases.present()
        now, ttl, found = self._now(), self.fence.clock.ttl_s, {}
        for vault in list(self._expiring):
            info, seen = self._expiring[vault]
            if vault not in present or info.holder.node_id in live or now - seen >= ttl:
                del self._expiring[vault]
        unknown = []
        for vault in vaults:
            if vault not in present:
                found[vault] = None
            elif vault in self._expiring:
                found[vault] = self._expiring[vault][0]
            else:
                unknown.append(vault)
        read = await self._read(unknown)
        for vault, info in read.items():
            if info is not None and info.holder.node_id not in live:
                self._expiring[vault] = (info, now)
        return {**found, **read}

    async def _read(self, vaults: list[str]) -> dict[str, LeaseInfo | None]:
        if len(vaults) > _LIST_ABOVE:
            every = await self.leases.all()
            return {v: every.get(v) for v in vaults}
        found = await asyncio.gather(*(self.leases.owner(v) for v in vaults))
        return dict(zip(vaults, found))

    async def _acquire(self, vault: str) -> None:
        """Take the lease and put it in the fence; the activation step (:meth:`start_step`) then
        starts the vault."""
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
        if not self.fence.clock.usable(grant, self._now()):
            logger.warning("cluster: {} acquired at revision {} but answered after its deadline: left to expire",
                           vault, grant.revision)
            return
        self._held[vault] = grant
        self.fence.grant(grant)
        self._owned = tuple(sorted(self._held))

    async def _start(self, vaults: list[str]) -> None:
        """Activate held vaults, :data:`ACTIVATE_BATCH` at a time. Not a lease step (the keys are
        not touched): their renewals go on while the engine starts the actors, however long."""
        loop = asyncio.get_running_loop()
        for at in range(0, len(vaults), ACTIVATE_BATCH):
            grants = [g for v in vaults[at:at + ACTIVATE_BATCH]
                      if v not in self._activating and (g := self._held.get(v)) is not None]
            if not grants:
                continue
            batch = {g.vault_id for g in grants}
            self._activating.update(batch)
            began = self._now()
            try:
                failed = dict(await loop.run_in_executor(self._hooks, self._activate, grants))
            except Exception as exc:  # noqa: BLE001 - the engine could not start them: hand the leases back
                failed = {v: repr(exc) for v in batch}
            finally:
                self._activating.difference_update(batch)
            started = [g for g in grants if g.vault_id not in failed and g.vault_id in self._held]
            self._active.update(g.vault_id for g in started)
            if started:
                logger.info("cluster: {} vaults activated ({} .. {}) in {:.3f} s, lease revisions {} .. {}", len(started),
                            started[0].vault_id, started[-1].vault_id, self._now() - began,
                            min(g.revision for g in started), max(g.revision for g in started))
            for vault, why in sorted(failed.items()):
                logger.error("cluster: {} not activated ({}): releasing its lease", vault, why)
            await asyncio.gather(*(self._release(v, LeaseLoss.NOT_ACTIVATED) for v in sorted(failed)
                                   if v in batch and v not in self._busy))

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
            try:
                await self.leases.release(grant)
            except LeaseConflict:  # a renewal landed unheard: ours at a later revision (busy: not retaken)
                await self.leases.release_held(vault)
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
