"""Cluster mode: vault actors started when this node holds their lease, stopped when it does not.

The lease loop (:class:`xorj_actors.cluster.Ownership`) calls :meth:`LeasedVaults.activate` once a
vault's lease is held and in the fence, and :meth:`LeasedVaults.passivate` once the fence already
refuses it. Both run on the lease loop's hook thread (never an actor's): they ask the vaults
supervisor and wait for its answer. Without ``[cluster]`` the tree starts every configured vault
as it always has, and nothing here is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from supervisors import ChildSpec, Runtime
from xorj_actors.vaults import VAULT_ID, VaultAdmin

__all__ = ["LeasedVaults"]


class LeasedVaults:
    """The lease loop's ``activate`` and ``passivate`` hooks over the vaults supervisor.

    Args:
        runtime: the engine's runtime (finds the vaults supervisor, records the audit).
        make_spec: vault index -> its child spec (the tree's ``vault_spec``).
        timeout_s: how long the vaults supervisor may take to answer.
    """

    def __init__(self, runtime: Runtime, make_spec: Callable[[int], ChildSpec], timeout_s: float) -> None:
        self.runtime = runtime
        self.make_spec = make_spec
        self.timeout_s = timeout_s
        self._supervisor: Any = None

    def _admin(self) -> VaultAdmin:
        sup = self._supervisor
        if sup is None or sup.actor_inbox.closed:  # looked up once: a scan of every actor
            sup = self._supervisor = self.runtime.supervisor("vaults")
        if sup is None:
            raise RuntimeError("the vaults supervisor is not running (restarting?)")
        return VaultAdmin(self.runtime, sup, (), actor="cluster", timeout_s=self.timeout_s)

    def activate(self, vault_id: str, grant: Any) -> None:
        """Start the vault's actor (its lease is held at ``grant.revision``); raises if it did not start."""
        match = VAULT_ID.fullmatch(vault_id)
        if match is None:
            raise ValueError(f"{vault_id!r} is not a vault id of this engine")
        self._admin().activate(self.make_spec(int(match.group(1))), {"lease_revision": grant.revision})

    def passivate(self, vault_id: str, why: Any) -> None:
        """Stop the vault's actor; its trades in flight stay the executor's."""
        self._admin().passivate(vault_id, f"lease {why}")
