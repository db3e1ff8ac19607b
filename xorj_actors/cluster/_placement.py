"""Rendezvous (highest random weight) placement of vaults on the live nodes.

Every node computes the same answer from the same live set, with no coordination: a vault goes to
the node with the highest ``weight(node, vault)``. A node joining takes only the vaults it now
wins; a node leaving gives up only its own. The weight is blake2b, never Python's ``hash()``
(salted per process: two nodes would disagree).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

__all__ = ["assign", "place", "weight"]


def weight(node_id: str, vault_id: str) -> int:
    """The node's weight for the vault: 64 bits of blake2b over both ids (``\\0`` cannot occur in either)."""
    digest = hashlib.blake2b(f"{node_id}\0{vault_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def place(vault_id: str, live_nodes: Iterable[str]) -> str:
    """The node that should own ``vault_id``: the highest weight, ties broken by node id.

    Raises ValueError when there is no live node.
    """
    best: tuple[int, str] | None = None
    for node in live_nodes:
        candidate = (weight(node, vault_id), node)
        if best is None or candidate > best:
            best = candidate
    if best is None:
        raise ValueError(f"{vault_id}: no live node to place it on")
    return best[1]


def assign(vault_ids: Iterable[str], live_nodes: Iterable[str]) -> Mapping[str, tuple[str, ...]]:
    """Every live node's vaults (sorted), including nodes that get none."""
    nodes = sorted(set(live_nodes))
    owned: dict[str, list[str]] = {node: [] for node in nodes}
    for vault in vault_ids:
        owned[place(vault, nodes)].append(vault)
    return {node: tuple(sorted(vaults)) for node, vaults in owned.items()}
