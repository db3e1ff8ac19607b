"""``ctl vault-add`` / ``vault-remove`` in a cluster: they change the cluster's vault set.

Alone, the two commands start or stop a vault under this process's ``vaults`` supervisor. In a
cluster that would make a vault with no lease (the fence refuses all its trades) or stop one
only here; so they edit the cluster's vault set instead (a key in NATS, written by
compare-and-swap: two edits at once both land), which every node reads at its next beat.
Placement then leases an added vault to exactly one node, which activates it (adopting its open
trades first), and the holder of a removed one drains it (its actor stopped, its lease kept until
its executor carries no trade of it: ``cluster.RemovedVaults``), then passivates it and releases
its lease (docs/CLUSTER.md, "The vault set").

The promise of the single-node ``vault-remove`` is kept: it is refused while the vault has
trades that are not final, unless forced, and what cannot be checked counts as a trade
(fail closed). A cluster checks the shared audit store (a trade opened by any node, with no
outcome in any chain) and, if the vault runs on this node, its pending trades and the executor's
unsettled ones. A trade the vault starts on its node between the check and the stop of its actor
is carried to its outcome there, under the lease, by the drain; one still open when the answer
is given is reported as ``unsettled_after``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from loguru import logger

from supervisors import Runtime
from xorj_actors.audit import EventType, Severity, audit_event, record
from xorj_actors.cluster import DRAIN_WITHIN_S, ClusterError, ClusterNode, Leases, VaultSetChange
from xorj_actors.config import Config
from xorj_actors.ops import VaultAddArgs, VaultRemoveArgs
from xorj_actors.signers import vault_id
from xorj_actors.vaults import VaultAdminError, new_vault_indices

__all__ = ["ClusterVaults"]

#: How long an add waits for the new vaults to be leased (each node reads the set at its next
#: beat and places it within a second); not an error if they are not yet: the answer says so.
_PLACED_WITHIN_S = 5.0
#: How long a removal waits for the owner to release the lease (it expires anyway after the TTL).
_RELEASED_WITHIN_S = 8.0
_POLL_S = 0.1
#: More vaults than this are looked up by listing the leases bucket once, not one get each.
_LIST_ABOVE = 64


class ClusterVaults:
    """The two commands on a cluster node (blocking: the transports run them off their loops).

    Args:
        node: this node (its loop, its store, the vault set it follows).
        runtime: the engine's runtime (the audit), or None before the tree exists.
        config: the engine's configuration (the audit store, whether anything trades).
        data_dir: the engine's data directory (the audit store, for SQLite).
        key_known: whether this node's key store shows a key for a vault id.
    """

    def __init__(
        self,
        node: ClusterNode,
        runtime: Callable[[], Runtime | None],
        config: Config,
        data_dir: Path,
        key_known: Callable[[str], bool],
    ) -> None:
        self.node = node
        self.runtime = runtime
        self.config = config
        self.data_dir = data_dir
        self.key_known = key_known

    # -- add ------------------------------------------------------------------------------------

    def add(self, a: VaultAddArgs) -> dict[str, Any]:
        """Add ``a.count`` vaults to the cluster's vault set (from ``a.index``, default after the
        highest); refused, changing nothing, if one exists already, runs past the highest index,
        or has no key in this node's key store."""

        def change(vaults: tuple[str, ...]) -> tuple[Iterable[str], str]:
            new = [vault_id(i) for i in new_vault_indices(vaults, a.count, a.index)]
            unknown = [v for v in new if not self.key_known(v)]
            if unknown:
                raise VaultAdminError(
                    "bad_request", f"{len(unknown)} of these vaults have no key in this node's key store "
                    f"(e.g. {unknown[0]}): create their keys on every node first (keys init); nothing added",
                )
            what = new[0] if len(new) == 1 else f"{new[0]} to {new[-1]}"
            return (*vaults, *new), f"added {what} by {a.operator}"

        done = self._edit(change)
        added = sorted(set(done.after.vaults) - set(done.before.vaults))
        self._audit("vaults added", {"operator": a.operator, "vaults": added, "failed": {}, "not_tried": [],
                                     **self._cluster(done)}, Severity.INFO)
        logger.warning("cluster: vaults added by {}: {} (vault set revision {})", a.operator, added, done.revision)
        placed = self._wait(lambda: self._holders(added), lambda held: all(held.values()), _PLACED_WITHIN_S)
        return {"added": added, "failed": {}, "not_tried": [], "cluster": True, "revision": done.revision,
                "vaults": len(done.after.vaults), "placed": placed}

    # -- remove ---------------------------------------------------------------------------------

    def remove(self, a: VaultRemoveArgs, local_problems: Callable[[str], list[str]]) -> dict[str, Any]:
        """Remove ``a.vault`` from the cluster's vault set; refused, changing nothing, while it has
        trades that are not final (unless ``a.force``). ``local_problems``: this node's own check
        of the vault (its pending trades, the executor's unsettled ones) if it runs here."""
        current, _ = self.node.call(self._board.current(), self._timeout)
        if current is None or a.vault not in current.vaults:
            count = 0 if current is None else len(current.vaults)
            raise VaultAdminError("not_found", f"no vault {a.vault!r} in the cluster's vault set ({count} vaults)")
        owner = self._holders([a.vault])[a.vault]
        problems = [*local_problems(a.vault), *self._open_trades(a.vault)]
        if problems and not a.force:
            return {"removed": False, "vault": a.vault, "reason": "; ".join(problems), "problems": problems,
                    "cluster": True, "owner": owner}

        def change(vaults: tuple[str, ...]) -> tuple[Iterable[str], str]:
            if a.vault not in vaults:
                raise VaultAdminError("not_found", f"no vault {a.vault!r} in the cluster's vault set (removed meanwhile?)")
            return [v for v in vaults if v != a.vault], f"removed {a.vault} by {a.operator}: {a.reason}"

        done = self._edit(change)
        self._audit("vault removed", {"operator": a.operator, "reason": a.reason, "vault": a.vault,
                                      "forced": bool(problems), "problems": problems, "held_by": owner,
                                      **self._cluster(done)}, Severity.WARNING if problems else Severity.INFO)
        logger.warning("cluster: {} removed by {} ({}){}", a.vault, a.operator, a.reason, " FORCED" if problems else "")
        held = self._wait(lambda: self._holders([a.vault]), lambda h: not any(h.values()), _RELEASED_WITHIN_S)
        released = not any(held.values())
        unsettled = self._open_trades(a.vault)
        notes = [] if released else [
            f"{a.vault} is still leased by node {held[a.vault]}: it stops the vault at its next beat and releases the "
            f"lease once its executor carries no trade of it (at most {DRAIN_WITHIN_S:g} s; a node that is gone: "
            f"{self.node.settings.lease_ttl_s:g} s after its last renewal)"
        ]
        if unsettled or not released:
            self._audit("vault removal: to watch", {"vault": a.vault, "held_by": held[a.vault],
                                                     "unsettled_after": unsettled, "notes": notes}, Severity.WARNING)
        return {"removed": True, "vault": a.vault, "forced": bool(problems), "problems": problems, "stopped": released,
                "unsettled_after": unsettled, "notes": notes, "cluster": True, "owner": owner,
                "revision": done.revision, "vaults": len(done.after.vaults)}

    def _open_trades(self, vault: str) -> list[str]:
        """The vault's trades with no final outcome in any chain of the shared audit store; a
        store that cannot be read is a problem too (fail closed). None without ``[execution]``."""
        if not self.config.execution.enabled:
            return []
        from xorj_actors.audit import load_key_ring, open_store
        from xorj_actors.execution import load_vault_trades

        try:
            store = open_store(self.config.audit, self.data_dir, create=False)
            try:
                key = load_key_ring(self.config.audit, self.config.engine.environment)
                trades = load_vault_trades(store, key, (vault,))
            finally:
                store.close()
        except Exception as exc:  # noqa: BLE001 - cannot tell: counts as open (fail closed)
            return [f"the audit store: {type(exc).__name__}: {exc}: cannot tell whether trades of {vault} are open"]
        return [f"trade {t.trade_id} of {vault} has no outcome yet (opened in chain {t.intent_chain})" for t in trades]

    # -- NATS -----------------------------------------------------------------------------------

    @property
    def _timeout(self) -> float:
        return 10 * self.node.settings.op_timeout_s + 1

    @property
    def _board(self) -> Any:
        follower = self.node.vault_set
        if follower is None:
            raise VaultAdminError("unavailable", "the cluster node is not open")
        return follower.board

    def _edit(self, change: Callable[[tuple[str, ...]], tuple[Iterable[str], str]]) -> VaultSetChange:
        try:
            return self.node.call(self._board.edit(change), self._timeout)
        except VaultAdminError:
            raise
        except (ClusterError, TimeoutError) as exc:
            raise VaultAdminError("unavailable", f"the cluster's vault set is not changed: {exc or type(exc).__name__}") from None

    def _holders(self, vaults: list[str]) -> dict[str, str | None]:
        """Each vault's lease holder (node id) now, or None."""
        leases = Leases(self.node.store, self.node.identity)

        async def read() -> dict[str, str | None]:
            if len(vaults) > _LIST_ABOVE:
                every = await leases.all()
                infos = [every.get(v) for v in vaults]
            else:
                infos = list(await asyncio.gather(*(leases.owner(v) for v in vaults)))
            return {v: (i.holder.node_id if i is not None else None) for v, i in zip(vaults, infos)}

        try:
            return self.node.call(read(), self._timeout)
        except (ClusterError, TimeoutError):
            return dict.fromkeys(vaults)

    def _wait(
        self, read: Callable[[], dict[str, str | None]], done: Callable[[dict[str, str | None]], bool], within_s: float
    ) -> dict[str, str | None]:
        deadline = time.monotonic() + within_s
        seen = read()
        while not done(seen) and time.monotonic() < deadline:
            time.sleep(_POLL_S)
            seen = read()
        return seen

    def _cluster(self, done: VaultSetChange) -> dict[str, Any]:
        return {"cluster": {"node": self.node.node_id, "revision": done.revision, "vaults": len(done.after.vaults)}}

    def _audit(self, what: str, details: dict[str, Any], severity: Severity) -> None:
        runtime = self.runtime()
        event = audit_event(EventType.CONFIG_CHANGE, "cluster", {"what": what, **details}, severity=severity)
        if runtime is None or not record(runtime, event):
            logger.error("cluster: {} not audited: {}", what, details)

