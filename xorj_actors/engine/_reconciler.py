"""The Reconciler in the engine's tree (docs/AUDIT.md, "Statement reconciliation")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from solders.pubkey import Pubkey

from xorj_actors.signers import vault_id
from xorj_actors.statements import Reconciler, VaultAccounts
from xorj_actors.tokens import vault_token_account

__all__ = ["reconciler_children"]

#: How long a vault's key may take to appear in its store (a PKCS#11 or KMS store opening).
_KEY_WAIT_S = 30.0


def reconciler_children(ctx: Any, worker: Callable[..., Any], authority: Callable[..., Pubkey], rpc: str) -> list[Any]:
    """The Reconciler's spec: on with ``[reconciliation] enabled`` and a node to read, on a
    process that runs alone (in a cluster, run ``xorj-actors reconcile``: one writer of the findings)."""
    cfg = ctx.config
    if not cfg.reconciliation.enabled or not rpc or cfg.cluster is not None:
        return []
    registry = cfg.token_registry()

    def vaults() -> list[VaultAccounts]:
        out = []
        for i in range(cfg.vaults.count):
            vid = vault_id(i)
            owner = authority(vid, wait_s=_KEY_WAIT_S)
            out.append(VaultAccounts(vid, str(owner), {str(t.mint): str(vault_token_account(owner, t.mint)) for t in registry}))
        return out

    return [worker(ctx, "reconciler", lambda: Reconciler.start(
        ctx.board, cfg.reconciliation, audit=cfg.audit, data_dir=ctx.data_dir, environment=cfg.engine.environment,
        rpc_url=rpc, vaults=vaults, on_result=ctx.metrics.on_reconciliation,
        kill_file=ctx.data_dir / cfg.kill_switch.kill_file,
    ))]
