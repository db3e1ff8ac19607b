"""Engine processes as cluster nodes (issue 14): real nats-server, real `xorj-actors run`
processes, one shared localnet process. The cluster-wide halt, a node started during it, NATS lost.
"""

from __future__ import annotations

import json
import signal
import time

from tests.helpers import wait_until
from tests.cluster.nodes import Cluster, cluster, localnet_process  # noqa: F401 - fixtures

HALTED = ("TRIGGERED",)


def _halt_complete(node, epoch: int) -> bool:
    status = node.status()
    if status is None or status["kill_switch"]["state"] != "TRIGGERED" or not status["kill_switch"]["complete"]:
        return False
    c = status["cluster"]
    return c["halt"]["epoch"] == epoch and c["halt"]["state"] == "halted" and bool(c["complete"])


def test_sigusr2_on_one_node_halts_all_three_and_every_actor_acks(cluster: Cluster) -> None:
    a, b, c = cluster.start("a", "b", "c")
    view = a.ask("cluster")
    wait_until(lambda: len([n for n in a.ask("cluster")["nodes"] if n["alive"] == "alive"]) == 3, 20, "three live nodes")
    assert view["halt"]["epoch"] == 0
    assert {n.ks()["state"] for n in (a, b, c)} == {"ARMED"}

    b.signal(signal.SIGUSR2)
    wait_until(lambda: all(_halt_complete(n, 1) for n in (a, b, c)), 30, "the cluster halt complete on every node")

    # b halted for its signal; a and c for the cluster's epoch, in its mode (emergency).
    assert b.ks()["source"] == "SIGUSR2"
    for node in (a, c):
        ks = node.ks()
        assert (ks["source"], ks["mode"]) == ("cluster", "emergency"), ks
        assert "epoch 1 (opened by node b)" in ks["reason"]
    # Every node's ack names all of its actors, none missing; the next heartbeats say TRIGGERED.
    wait_until(lambda: {n["kill_switch"] for n in a.ask("cluster")["nodes"]} == {"TRIGGERED"}, 10, "heartbeats")
    nodes = {n["node_id"]: n for n in a.ask("cluster")["nodes"]}
    for node in (a, b, c):
        ack = nodes[node.node_id]["halt_ack"]
        ks = node.ks()
        assert ack is not None and ack["epoch"] == 1 and ack["missing"] == [], ack
        assert ack["acked"] == len(ks["acked"]) == ks["registered"] > 10
        assert nodes[node.node_id]["owned_vaults"] == 3
    # `ctl status` on another node shows the cluster halt complete, node by node.
    status = c.ask("status")["cluster"]
    assert status["complete"] is True and status["not_answering"] == []
    assert {(n["node_id"], n["status"]) for n in status["nodes"]} == {("a", "complete"), ("b", "complete"), ("c", "complete")}
    shown = c.ctl("status")
    assert shown.returncode == 0, shown.stderr
    assert "cluster halt  epoch 1 HALTED (emergency, by node b" in shown.stdout
    assert "COMPLETE: 3 of 3 node(s) complete" in shown.stdout
    table = a.ctl("cluster")
    assert table.returncode == 0 and "complete (" in table.stdout and table.stdout.count("TRIGGERED") == 3, table.stdout
    assert json.loads(a.ctl("cluster", "--json").stdout)["halt"]["epoch"] == 1

    # A node started during the halt starts halted, and acks the open epoch.
    (d,) = cluster.start("d")
    ks = d.ks()
    assert ks["state"] == "TRIGGERED" and ks["source"] == "cluster", ks
    wait_until(lambda: _halt_complete(d, 1), 20, "d's ack")
    assert {n["node_id"] for n in d.ask("status")["cluster"]["nodes"]} == {"a", "b", "c", "d"}


def test_a_halt_from_ctl_on_one_node_is_followed_gracefully(cluster: Cluster) -> None:
    a, b = cluster.start("a", "b")
    out = a.ctl("halt", "--graceful", "--reason", "drill")
    assert out.returncode == 0, out.stderr
    wait_until(lambda: all(_halt_complete(n, 1) for n in (a, b)), 30, "the cluster halt complete")
    ks = b.ks()
    assert (ks["source"], ks["mode"]) == ("cluster", "graceful")
    assert "debug_socket on node a: drill" in ks["reason"]
    # A second trigger during the open halt opens no new epoch.
    assert b.ctl("halt", "--reason", "again").returncode == 0
    wait_until(lambda: b.ks()["source"] == "debug_socket", 10, "b's own trigger")
    time.sleep(1.0)  # several beats: nothing may step the cluster epoch
    assert a.ask("status")["cluster"]["halt"]["epoch"] == 1
