"""``ctl vault-add`` / ``vault-remove`` on cluster nodes (real processes, the test's nats-server,
one localnet): they change the cluster's vault set; a vault added on one node's ctl ends up
active on exactly one node, and one removed on another node's ctl is passivated and released by
its holder. Bad input changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cluster.nodes import Cluster, Node
from tests.helpers import audit_rows_in, wait_until
from xorj_actors.cluster import assign, place
from xorj_actors.ops.ctl import CtlError, request

pytestmark = pytest.mark.nats


def _ask(node: Node, cmd: str, args: dict[str, Any]) -> Any:
    return request(node.data_dir / "debug.sock", cmd, args, timeout=30)


def _running(node: Node) -> set[str]:
    """The vault actors running on ``node`` (its vaults supervisor's children)."""
    return {r["vault_id"] for r in node.ask("vaults")["vaults"]}


def _vault_set(node: Node) -> dict[str, Any]:
    return node.ask("cluster")["vaults"]


def test_vaults_added_and_removed_through_any_nodes_ctl_change_the_clusters_vault_set(cluster: Cluster) -> None:
    a, b = cluster.start("a", "b")
    nodes = {"a": a, "b": b}
    first = [f"vault-{i:04d}" for i in range(3)]
    shares = assign(first, "ab")
    wait_until(lambda: all(_running(n) == set(shares[i]) for i, n in nodes.items()), 20, f"the vaults placed: {shares}")
    seeded = _vault_set(b)
    assert seeded["count"] == 3 and "seeded from node" in seeded["change"]

    # Added through node a's ctl: in the set, leased by the node placement names, running there only.
    out = a.ctl("vault-add", "--count", "1", "--operator", "alice")
    assert out.returncode == 0, out.stderr
    added = "vault-0003"
    owner = place(added, ["a", "b"])
    assert f"added 1: {added}" in out.stdout and "to the cluster's vault set" in out.stdout, out.stdout
    wait_until(lambda: added in _running(nodes[owner]), 15, f"{added} running on node {owner}")
    assert [i for i, n in nodes.items() if added in _running(n)] == [owner]
    assert _vault_set(b)["count"] == 4 and f"added {added} by alice" in _vault_set(b)["change"]
    wait_until(lambda: sum(n["owned_vaults"] for n in a.ask("cluster")["nodes"]) == 4, 10, "four leases held")

    # Bad input: a clear error, and the set unchanged.
    revision = _vault_set(a)["revision"]
    for node, cmd, args, error in [
        (b, "vault-add", {"count": 1, "index": 3}, "bad_request: 1 of these vaults exist already: vault-0003; nothing added"),
        (b, "vault-add", {"count": 2, "index": 999_999}, "bad_request: vault indices stop at 999999"),
        (a, "vault-remove", {"vault": "vault-0042"}, "not_found: no vault 'vault-0042' in the cluster's vault set (4 vaults)"),
        (a, "vault-remove", {"vault": "vault.3"}, "bad_request"),
    ]:
        with pytest.raises(CtlError, match=error.replace("(", r"\(").replace(")", r"\)")):
            _ask(node, cmd, args)
    assert _vault_set(a)["revision"] == revision

    # Removed through the other node's ctl: its holder passivates it and releases its lease.
    other = "b" if owner == "a" else "a"
    result = _ask(nodes[other], "vault-remove", {"vault": added, "operator": "bob", "reason": "closed"})
    assert result["removed"] is True and result["owner"] == owner and result["stopped"] is True, result
    assert result["forced"] is False and result["unsettled_after"] == [] and result["vaults"] == 3
    assert all(added not in _running(n) for n in nodes.values())
    wait_until(lambda: sum(n["owned_vaults"] for n in a.ask("cluster")["nodes"]) == 3, 10, "three leases held")
    assert {i: _running(n) for i, n in nodes.items()} == {i: set(v) for i, v in shares.items()}

    # The audit trail: the change where it was made, the passivation where the vault ran.
    changes = [d for t, _, d in audit_rows_in(nodes[other].data_dir) if t == "CONFIG_CHANGE" and d.get("what") == "vault removed"]
    assert [(d["vault"], d["operator"], d["held_by"]) for d in changes] == [(added, "bob", owner)]
    passivated = [d for t, _, d in audit_rows_in(nodes[owner].data_dir) if d.get("what") == "vault passivated"]
    assert [d["reason"] for d in passivated if d["vault"] == added] == [
        "removed from the cluster's vault set: its trades drain before its lease goes"
    ]
