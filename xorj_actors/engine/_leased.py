"""Cluster mode: vault actors started when this node holds their lease, stopped when it does not.

The lease loop (:class:`xorj_actors.cluster.Ownership`) calls :meth:`LeasedVaults.activate` once a
vault's lease is held and in the fence, and :meth:`LeasedVaults.passivate` once the fence already
refuses it. Both run on the lease loop's hook thread (never an actor's): they ask the vaults
supervisor and wait for its answer. Without ``[cluster]`` the tree starts every configured vault
as it always has, and nothing here is used.

Fail-over: before a vault's actor starts, the executor adopts the vault's open trades from every
chain of the shared audit store (:class:`~xorj_actors.execution.AdoptOpenTrades`); until each is
settled the executor refuses the vault's new trades (``unsettled``), so the vault trades again
only after them (docs/CLUSTER.md, "Fail-over"). Hand-over: once a vault's actor is stopped, the
executor lets its trades go without recording an outcome (:class:`~xorj_actors.execution.HandOverVaults`):
only the lease holder records one, so every trade ends with exactly one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from supervisors import ChildSpec, Runtime
from xorj_actors.cluster import LeaseGrant
from xorj_actors.execution import EXECUTOR_NAME, AdoptOpenTrades, HandOverVaults
from xorj_actors.vaults import VAULT_ID, VaultAdmin, VaultAdminError

__all__ = ["LeasedVaults"]


class LeasedVaults:
    """The lease loop's ``activate``, ``passivate`` and ``running`` hooks over the vaults supervisor.

    Args:
        runtime: the engine's runtime (finds the vaults supervisor, records the audit).
        make_spec: vault index -> its child spec (the tree's ``vault_spec``).
        timeout_s: how long the vaults supervisor may take to answer.
        adopt_timeout_s: how long the executor may take to read a vault's open trades and take
            them over; None: no executor (``[execution]`` disabled), nothing to adopt.
        on_gone: told each vault stopped here for good (its lease moved, or removed).
    """

    def __init__(
        self,
        runtime: Runtime,
        make_spec: Callable[[int], ChildSpec],
        timeout_s: float,
        adopt_timeout_s: float | None = None,
        on_gone: Callable[[str], object] | None = None,
    ) -> None:
        self.runtime = runtime
        self.on_gone = on_gone
        self.make_spec = make_spec
        self.timeout_s = timeout_s
        self.adopt_timeout_s = adopt_timeout_s
        self._supervisor: Any = None

    def _admin(self) -> VaultAdmin:
        sup = self._supervisor
        if sup is None or sup.actor_inbox.closed:  # looked up once: a scan of every actor
            sup = self._supervisor = self.runtime.supervisor("vaults")
        if sup is None:
            raise RuntimeError("the vaults supervisor is not running (restarting?)")
        return VaultAdmin(self.runtime, sup, (), actor="cluster", timeout_s=self.timeout_s, on_gone=self.on_gone)

    def running(self) -> bool:
        """Whether the vaults supervisor that started the vaults so far still runs (cheap: no
        lookup). False once it was restarted: its dynamic children, the vaults, went with it."""
        sup = self._supervisor
        return sup is None or not sup.actor_inbox.closed

    def activate(self, grants: Sequence[LeaseGrant]) -> dict[str, str]:
        """Adopt the vaults' open trades (one read of the store for all of them), then start
        each one's actor (its lease held at ``grant.revision``); ``{vault: why}`` for each that
        did not start. Raises if the open trades could not be read: then none may start (their
        leases are handed back)."""
        failed: dict[str, str] = {}
        specs: dict[str, tuple[ChildSpec, LeaseGrant]] = {}
        for grant in grants:
            match = VAULT_ID.fullmatch(grant.vault_id)
            if match is None:
                failed[grant.vault_id] = "not a vault id of this engine"
            else:
                specs[grant.vault_id] = (self.make_spec(int(match.group(1))), grant)
        if not specs:
            return failed
        self.adopt(tuple(specs))
        try:  # one ask for the batch: one round trip, not one per vault
            failed.update(self._admin().activate_many([(spec, {"lease_revision": g.revision}) for spec, g in specs.values()]))
        except VaultAdminError as exc:
            failed.update(dict.fromkeys(specs, exc.message))
        return failed

    def adopt(self, vault_ids: tuple[str, ...]) -> tuple[str, ...]:
        """The executor's adoption of ``vault_ids``' open trades, once they are in its book (so
        its ``unsettled`` rule already refuses the vaults' new trades); the trade ids adopted.

        Raises if the executor is not running or could not read them: a vault whose previous
        owner's trades are unknown must not start.
        """
        if self.adopt_timeout_s is None:
            return ()
        executor = self.runtime.whereis(EXECUTOR_NAME)
        if executor is None:
            raise RuntimeError("the executor is not running (restarting?): open trades not adopted")
        answer = executor.ask(AdoptOpenTrades(vault_ids=vault_ids), timeout=self.timeout_s)
        return tuple(answer.result(self.adopt_timeout_s))

    def passivate(self, vault_id: str, why: Any) -> None:
        """Stop the vault's actor, then hand its trades over: the executor stops carrying them
        and records no outcome (the new lease holder settles each one). Raises if either did not
        happen; the lease is then left to expire rather than given back (docs/CLUSTER.md,
        "Hand-over")."""
        try:
            self._admin().passivate(vault_id, f"lease {why}")
        finally:  # even if the actor would not stop: the fence already refuses its new trades
            self.hand_over((vault_id,))

    def hand_over(self, vault_ids: tuple[str, ...]) -> tuple[str, ...]:
        """The executor's hand-over of ``vault_ids``' trades, once no write of theirs is pending;
        the trade ids let go. No executor: nothing carried (its restart reads only held vaults)."""
        if self.adopt_timeout_s is None:
            return ()
        executor = self.runtime.whereis(EXECUTOR_NAME)
        if executor is None:
            return ()
        answer = executor.ask(HandOverVaults(vault_ids=vault_ids), timeout=self.timeout_s)
        return tuple(answer.result(self.adopt_timeout_s))
