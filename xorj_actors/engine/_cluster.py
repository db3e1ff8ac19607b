"""The engine's side of ``[cluster]``: the node runtime, opened before the tree (docs/CLUSTER.md).

Kept apart from ``_engine`` so the cluster's wiring is a few lines there: this module builds the
:class:`~xorj_actors.cluster.ClusterNode` from the config and the engine's runtime and boards.
"""

from __future__ import annotations

from collections.abc import Callable

from loguru import logger

from supervisors import Runtime
from xorj_actors.cluster import ClusterError, ClusterNode, ClusterUnavailable, LocalKillSwitch
from xorj_actors.config import Config
from xorj_actors.kill_switch import HaltBoard

__all__ = ["open_cluster_node"]

#: How long a count of the local vault actors may take (a beat does not wait longer).
_COUNT_TIMEOUT_S = 1.0


def _local_vaults(runtime: Callable[[], Runtime | None]) -> Callable[[], int]:
    """The vaults this node owns: for now every local vault actor (vault leases are not wired
    yet; they will give the number of leases held)."""

    def count() -> int:
        rt = runtime()
        if rt is None:
            return 0
        try:
            return sum(c.alive for c in rt.which_children("vaults", timeout=_COUNT_TIMEOUT_S))
        except LookupError:
            return 0  # the vaults supervisor is restarting

    return count


def open_cluster_node(config: Config, board: HaltBoard, runtime: Callable[[], Runtime | None]) -> ClusterNode | None:
    """The node runtime for ``[cluster]`` (None without the section), open: connected, its node
    id checked, the halt record read.

    Raises ClusterError (ClusterUnavailable: NATS does not answer) or ValueError (no node id):
    the engine then does not start. A node that cannot read the cluster's halt cannot know
    whether it must start halted, so it does not start at all (fail closed).
    """
    if config.cluster is None:
        return None
    settings = config.cluster.with_node_id(None)  # `run --node-id` has resolved it already
    if config.execution.enabled:
        if config.engine.environment == "production":
            raise ClusterError(
                "[cluster] with [execution] enabled in production needs vault leases, which are not wired yet: "
                "every node would trade every vault"
            )
        logger.warning("cluster: vault leases are not wired yet: node {} runs every configured vault", settings.node_id)
    node = ClusterNode(
        settings,
        LocalKillSwitch(runtime, board),
        owned_vaults=_local_vaults(runtime),
        local_ack_deadline_s=config.kill_switch.ack_deadline_s,
    )
    try:
        node.open(timeout=10 * settings.op_timeout_s + 5)
    except ClusterUnavailable as exc:
        node.stop()
        raise ClusterUnavailable(f"{exc}: a node that cannot read the cluster halt does not start (fail closed)") from None
    except BaseException:
        node.stop()
        raise
    logger.info("cluster: node {} (incarnation {}) on {}", settings.node_id, node.identity.incarnation, settings.nats_url)
    return node
