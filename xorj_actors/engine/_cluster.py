"""The engine's side of ``[cluster]``: the node runtime, opened before the tree (docs/CLUSTER.md).

Kept apart from ``_engine`` so the cluster's wiring is a few lines there: this module builds the
:class:`~xorj_actors.cluster.ClusterNode` from the config and the engine's runtime and boards, and
the lease loop (:class:`~xorj_actors.cluster.Ownership`) on the node's loop once the tree is up.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable

from loguru import logger

from supervisors import LoopThread, Runtime
from xorj_actors.cluster import (
    ClusterError,
    ClusterNode,
    ClusterStore,
    ClusterUnavailable,
    Fence,
    Leases,
    LocalKillSwitch,
    Ownership,
    RemovedVaults,
    VaultSetFollower,
)
from xorj_actors.config import Config
from xorj_actors.engine._leased import LeasedVaults
from xorj_actors.execution import EXECUTOR_NAME, ExecutorStatus, GetExecutorStatus
from xorj_actors.kill_switch import HaltBoard
from xorj_actors.redaction import redact_url
from xorj_actors.vaults import VaultAdmin

__all__ = ["open_cluster_node", "start_ownership"]


def open_cluster_node(
    config: Config,
    board: HaltBoard,
    runtime: Callable[[], Runtime | None],
    owned_vaults: Callable[[], int],
    configured_vaults: Iterable[str] = (),
) -> ClusterNode | None:
    """The node runtime for ``[cluster]`` (None without the section), open: connected, its node
    id checked, the halt record and the cluster's vault set read (seeded from
    ``configured_vaults``, this node's ``[vaults]``, if the cluster has none yet).
    ``owned_vaults``: how many vault leases this node holds (its member record).

    Raises ClusterError (ClusterUnavailable: NATS does not answer) or ValueError (no node id):
    the engine then does not start. A node that cannot read the cluster's halt cannot know
    whether it must start halted, so it does not start at all (fail closed).
    """
    if config.cluster is None:
        return None
    settings = config.cluster.with_node_id(None)  # `run --node-id` has resolved it already
    if config.execution.enabled and config.audit.backend != "postgres":
        # Fail-over reads the previous owner's open trades from the store every node shares: a
        # store of this node's own (SQLite in its data directory) would show a new owner none.
        if config.engine.environment == "production":
            raise ClusterError(
                "[cluster] with [execution] enabled in production needs [audit] backend = \"postgres\": a vault's new "
                "owner settles the previous owner's open trades from the audit store all nodes share"
            )
        logger.warning(
            "cluster: [audit] backend is {}: fail-over settles another node's open trades only if every node "
            "uses this very store (one SQLite file, one machine)", config.audit.backend,
        )
    node = ClusterNode(
        settings,
        LocalKillSwitch(runtime, board),
        owned_vaults=owned_vaults,
        local_ack_deadline_s=config.kill_switch.ack_deadline_s,
        configured_vaults=configured_vaults,
    )
    try:
        node.open(timeout=10 * settings.op_timeout_s + 5)
    except ClusterUnavailable as exc:
        node.stop()
        raise ClusterUnavailable(f"{exc}: a node that cannot read the cluster halt does not start (fail closed)") from None
    except BaseException:
        node.stop()
        raise
    logger.info("cluster: node {} (incarnation {}) on {}", settings.node_id, node.identity.incarnation, redact_url(settings.nats_url))
    return node


def start_ownership(node: ClusterNode, fence: Fence, hooks: LeasedVaults) -> tuple[Ownership, Callable[[float], None]]:
    """The lease loop (after ``node.start()``) and what stops it: it activates a vault once its
    lease is held and passivates it once the fence refuses it, over the cluster's vault set, which
    it follows; a vault removed from the set is drained here first (``RemovedVaults``).

    It runs on a thread, event loop and NATS connection of its own: renewing thousands of leases
    every few seconds never queues in front of the node's halt watch, its halt opens or its beat
    (at 3,000 vaults a node, a renewal round put hundreds of answers ahead of them). The stop
    function stops the loop (passivating and releasing every lease), then closes its connection.
    """
    follower = node.vault_set
    assert follower is not None and node.store is not None, "the node is open"
    thread = LoopThread(f"cluster-leases-{node.node_id}")
    opened: list[ClusterStore] = []

    async def open_store() -> None:
        opened.append(await ClusterStore.open(node.settings))

    thread.start(open_store(), timeout=10 * node.settings.op_timeout_s + 5)
    (store,) = opened

    async def live() -> tuple[str, ...]:  # membership is the node's: read on its loop
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(node.live(), node.loop))

    ownership = Ownership(
        Leases(store, node.identity), fence, node.identity, follower.vaults, live, hooks.activate,
        hooks.passivate, running=hooks.running,
    )
    drains = RemovedVaults(
        ownership, follower.vaults, functools.partial(_stop_actor, hooks), functools.partial(_carries, hooks), node.spawn
    )
    node.call(_follow(follower, drains), 5.0)
    ownership.start(thread.loop)

    def stop(timeout: float) -> None:
        try:
            ownership.stop(timeout)
        finally:
            thread.stop(store.close, timeout)

    return ownership, stop


async def _follow(follower: VaultSetFollower, drains: RemovedVaults) -> None:
    follower.follow(drains.on_set)  # on the loop: no version read in between is missed


def _stop_actor(hooks: LeasedVaults, vault: str) -> None:
    """Stop a removed vault's actor, its lease still held (audited ``vault passivated``)."""
    supervisor = hooks.runtime.supervisor("vaults")
    if supervisor is None:
        raise RuntimeError("the vaults supervisor is not running (restarting?)")
    VaultAdmin(hooks.runtime, supervisor, (), actor="cluster", timeout_s=hooks.timeout_s, on_gone=hooks.on_gone).passivate(
        vault, "removed from the cluster's vault set: its trades drain before its lease goes"
    )


def _carries(hooks: LeasedVaults, vault: str) -> bool:
    """Whether the executor still carries a trade of ``vault``; True when it cannot tell."""
    if hooks.adopt_timeout_s is None:
        return False  # no [execution]: no trade
    executor = hooks.runtime.whereis(EXECUTOR_NAME)
    if executor is None:
        return True
    try:
        status = executor.ask(GetExecutorStatus(), timeout=2.0)
    except Exception:  # noqa: BLE001 - cannot tell: still carried
        return True
    if not isinstance(status, ExecutorStatus):
        return True
    return vault in status.in_flight_vaults or vault in status.unsettled_vaults
