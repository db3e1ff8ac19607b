"""Engine processes as cluster nodes (issue 14): real nats-server, real `xorj-actors run`
processes, one shared localnet process. The cluster-wide halt, a node started during it, NATS lost,
and clears of the halt written straight into NATS that resume nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable

import nats
import pytest

from tests.cluster.nodes import CLUSTER_TOML, Cluster, Node
from tests.conftest import free_port
from tests.helpers import QUIET_ENGINE_TOML, audit_rows_in, cli, wait_until
from tests.plugins.engine import RECOVERY_KEYS, authorise_cluster
from xorj_actors.cluster import assign


def _recover(node: Node, nonce: str, cluster_epoch: int) -> dict:
    """An operator's K-of-M recovery of cluster halt ``cluster_epoch`` on ``node``, over its debug socket."""
    ts = int(time.time())
    return node.ask("recover", {
        "epoch": node.ks()["epoch"], "cluster_epoch": cluster_epoch, "nonce": nonce, "timestamp": ts, "operator": "test",
        "authorisations": [{"key_id": k, "hmac": h} for k, h in authorise_cluster(cluster_epoch, nonce=nonce, ts=ts)],
    })


def _armed(*nodes: Node) -> bool:
    return all((ks := n.ks())["state"] == "ARMED" and ks["factor"] == 1.0 for n in nodes)


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

    # The three vaults spread by lease (each node's vault actors no longer come and go).
    shares = {n: len(v) for n, v in assign([f"vault-{i:04d}" for i in range(3)], "abc").items()}
    wait_until(
        lambda: {n["node_id"]: n["owned_vaults"] for n in a.ask("cluster")["nodes"]} == shares, 15,
        f"the vaults' leases spread as placed: {shares}",
    )

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
    # A halt releases no lease: each node still holds its share.
    assert {n: nodes[n]["owned_vaults"] for n in "abc"} == shares
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
    # d's view lists every node once its own beat has put its record beside theirs.
    wait_until(lambda: {n["node_id"] for n in d.ask("status")["cluster"]["nodes"]} == {"a", "b", "c", "d"}, 10,
               "d's status shows the four nodes")

    # One authorised recovery, on a, resumes all four, through the same gradual restart.
    outcome = _recover(a, "cluster-1", 1)
    assert outcome["accepted"] is True, outcome
    wait_until(lambda: _armed(a, b, c, d), 30, "every node armed again at full size")
    record = c.ask("status")["cluster"]["halt"]
    assert (record["epoch"], record["state"], record["node_id"]) == (1, "clear", "a")
    assert "authorised recovery on node a" in record["reason"]
    assert record["proof"]["key_ids"] == ["XORJ_RECOVERY_KEY_1", "XORJ_RECOVERY_KEY_2"]
    # Each follower verified that proof itself, and recorded its nonce as used.
    for node in (b, c, d):
        (entry,) = [e for t, _, e in audit_rows_in(node.data_dir) if t == "RECOVERY" and e.get("what") == "cluster recovery followed"]
        assert entry["cluster_epoch"] == 1 and entry["authorised_by"] == record["proof"]["key_ids"], entry
    # Every node went through the same gradual restart, factor by factor (kill switch defaults).
    for node in (a, b, c, d):
        factors = [e["factor"] for t, _, e in audit_rows_in(node.data_dir) if t == "RECOVERY" and "factor" in e]
        assert factors == [0.5, 0.75, 1.0], (node.node_id, factors)


async def _write_halt(url: str, change: Callable[[dict], dict]) -> dict:
    """Rewrite the cluster's halt record straight in NATS, as anyone who can write the bucket can."""
    nc = await nats.connect(url)
    try:
        kv = await nc.jetstream().key_value("t_halt")
        record = change(json.loads((await kv.get("epoch")).value))
        await kv.put("epoch", json.dumps(record).encode())
        return record
    finally:
        await nc.close()


def _refusals(node: Node) -> list[dict]:
    return [e for t, _, e in audit_rows_in(node.data_dir) if t == "SECURITY_VIOLATION" and e.get("what") == "cluster recovery refused"]


def _stay_halted(nodes: tuple[Node, ...], refusals: int, what: str) -> None:
    """Every node refused the forged clear (audited) and is halted still, as ctl shows."""
    wait_until(lambda: all(len(_refusals(n)) == refusals for n in nodes), 20, f"every node's refusal of {what}")
    time.sleep(1.0)  # five beats: nothing resumes
    cluster_view = nodes[0].ask("cluster")
    assert cluster_view["halt"]["state"] == "clear"  # what NATS says
    assert {n["kill_switch"] for n in cluster_view["nodes"]} == {"TRIGGERED"}  # what the nodes are
    for node in nodes:
        assert node.ks()["state"] == "TRIGGERED", node.ks()
        shown = node.ctl("status")
        assert shown.returncode == 0 and "TRIGGERED" in shown.stdout, shown.stdout
        assert what in _refusals(node)[-1]["reason"], _refusals(node)[-1]


def _sign(cluster_epoch: int, nonce: str, ts: int, key: str) -> str:
    """One key holder's `ctl sign-recovery --cluster-epoch`, as its own process."""
    out = subprocess.run(
        cli("ctl", "sign-recovery", "--key-env", key, "--cluster-epoch", str(cluster_epoch), "--nonce", nonce,
            "--timestamp", str(ts), "--json"),
        capture_output=True, text=True, timeout=60, env={**os.environ, **RECOVERY_KEYS},
    )
    assert out.returncode == 0, out.stderr
    return f"{key}:{json.loads(out.stdout)['hmac']}"


def test_a_clear_written_straight_into_nats_resumes_no_node(cluster: Cluster, nats_server) -> None:
    a, b, c = cluster.start("a", "b", "c")
    nodes = (a, b, c)
    b.signal(signal.SIGUSR2)
    wait_until(lambda: all(_halt_complete(n, 1) for n in nodes), 30, "the cluster halt complete on every node")

    # A clear with no proof at all.
    asyncio.run(_write_halt(nats_server.url, lambda r: {**r, "state": "clear", "reason": "forged", "node_id": "x"}))
    _stay_halted(nodes, 1, "the clear carries no proof")
    # A clear with a proof whose HMACs are not the key holders'.
    forged = {"cluster_epoch": 1, "nonce_sha256": "0" * 64, "timestamp": int(time.time()), "operator": "mallory",
              "local_epoch": 1, "authorisations": [["XORJ_RECOVERY_KEY_1", "1" * 64], ["XORJ_RECOVERY_KEY_2", "2" * 64]]}
    asyncio.run(_write_halt(nats_server.url, lambda r: {**r, "proof": forged}))
    _stay_halted(nodes, 2, "0 valid authorisations, 2 needed")

    # The operator's recovery on a, through ctl, signed for the cluster epoch: a writes its proof
    # over the forged clear, and every node resumes.
    ts = int(time.time())
    auths = [_sign(1, "legit-1", ts, k) for k in ("XORJ_RECOVERY_KEY_1", "XORJ_RECOVERY_KEY_3")]
    out = a.ctl("recover", "--epoch", str(a.ks()["epoch"]), "--cluster-epoch", "1", "--nonce", "legit-1",
                "--timestamp", str(ts), *(x for auth in auths for x in ("--auth", auth)))
    assert out.returncode == 0, out.stdout + out.stderr
    wait_until(lambda: _armed(*nodes), 30, "every node armed again")
    legit = a.ask("cluster")["halt"]
    assert legit["node_id"] == "a" and legit["proof"]["key_ids"] == ["XORJ_RECOVERY_KEY_1", "XORJ_RECOVERY_KEY_3"]
    legit_proof = asyncio.run(_write_halt(nats_server.url, lambda r: r))["proof"]  # as NATS holds it

    # A new halt, then the last legitimate clear replayed for it: as it was, and with its epoch edited.
    c.signal(signal.SIGUSR2)
    wait_until(lambda: all(_halt_complete(n, 2) for n in nodes), 30, "the second cluster halt complete")
    asyncio.run(_write_halt(nats_server.url, lambda r: {**r, "state": "clear", "proof": legit_proof}))
    _stay_halted(nodes, 3, "authorisations are for cluster halt epoch 1, this node is in cluster halt epoch 2")
    asyncio.run(_write_halt(nats_server.url, lambda r: {**r, "proof": {**legit_proof, "cluster_epoch": 2}}))
    _stay_halted(nodes, 4, "nonce already used: replayed request")

    # The cluster's own recovery still works.
    assert _recover(b, "legit-2", 2)["accepted"] is True
    wait_until(lambda: _armed(*nodes), 30, "every node armed again")


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


def test_nats_lost_halts_every_node_and_only_an_authorised_recovery_resumes_them(cluster: Cluster, nats_server) -> None:
    a, b, c = cluster.start("a", "b", "c")
    wait_until(lambda: len(a.ask("cluster")["nodes"]) == 3, 20, "three nodes registered")
    nats_server.stop()
    # nats_lost_halt_s = 2: each node halts itself (emergency: it signs nothing more).
    wait_until(lambda: all(n.ks()["state"] == "TRIGGERED" for n in (a, b, c)), 2.0 + 8.0, "every node halted")
    for node in (a, b, c):
        ks = node.ks()
        assert (ks["source"], ks["mode"]) == ("nats_lost", "emergency"), ks
        shown = node.ask("status")["cluster"]
        assert shown["stale"] is True and shown["error"], shown

    # NATS back: the nodes' halts open one cluster epoch; nobody resumes on their own.
    nats_server.start()
    wait_until(lambda: all(_halt_complete(n, 1) for n in (a, b, c)), 30, "the nodes' halt as one cluster epoch")
    assert "nats_lost on node" in a.ask("status")["cluster"]["halt"]["reason"]
    time.sleep(1.0)  # five beats with NATS answering
    assert {n.ks()["state"] for n in (a, b, c)} == {"TRIGGERED"}

    outcome = _recover(b, "nats-back", 1)
    assert outcome["accepted"] is True, outcome
    wait_until(lambda: _armed(a, b, c), 30, "every node armed again")


def test_a_node_that_cannot_read_the_cluster_halt_does_not_start(tmp_path) -> None:
    config = tmp_path / "node.toml"
    config.write_text(QUIET_ENGINE_TOML + CLUSTER_TOML.format(nats=f"nats://127.0.0.1:{free_port()}", lost=2.0))
    run = subprocess.run(cli("run", "--config", str(config), "--node-id", "a", "--data-dir", str(tmp_path / "a")),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "does not start (fail closed)" in run.stderr, run.stderr[-2000:]


@pytest.mark.parametrize(("extra", "flag", "expected"), [
    ("", ["--node-id", "a"], "--node-id: needs a [cluster] section"),
    ('[cluster]\nnats_url = "nats://127.0.0.1:9"\n', [], "cluster.node_id: required"),
    ('[cluster]\nnats_url = "nats://127.0.0.1:9"\n', ["--node-id", "a.b"], "cluster.node_id: must be 1 to 64"),
])
def test_a_node_id_is_required_and_checked_before_anything_changes(tmp_path, extra: str, flag: list[str], expected: str) -> None:
    config = tmp_path / "node.toml"
    config.write_text(QUIET_ENGINE_TOML + extra)
    run = subprocess.run(cli("run", "--config", str(config), *flag, "--data-dir", str(tmp_path / "v")),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and expected in run.stderr, run.stderr
    assert not (tmp_path / "v").exists()


def test_nats_back_without_its_store_halts_the_cluster_above_every_epoch_seen(
    tmp_path, nats_server, localnet_process
) -> None:
    # NATS lost for a moment only: its own halt (nats_lost_halt_s) kept out of the way.
    cluster = Cluster(tmp_path, nats_server.url, localnet_process, lost_s=60.0)
    try:
        a, b, c = cluster.start("a", "b", "c")
        wait_until(lambda: len([n for n in a.ask("cluster")["nodes"] if n["alive"] == "alive"]) == 3, 20, "three live nodes")
        b.signal(signal.SIGUSR2)
        wait_until(lambda: all(_halt_complete(n, 1) for n in (a, b, c)), 30, "cluster halt epoch 1")
        assert _recover(a, "before-the-loss", 1)["accepted"] is True
        wait_until(lambda: _armed(a, b, c), 30, "every node armed after epoch 1")

        # NATS comes back with an empty store: the halt record would read epoch 0, clear.
        nats_server.stop()
        shutil.rmtree(nats_server.store_dir)
        nats_server.start()
        wait_until(lambda: all(_halt_complete(n, 2) for n in (a, b, c)), 30, "a cluster halt above epoch 1 on every node")
        halt = a.ask("status")["cluster"]["halt"]
        assert halt["state"] == "halted" and "NATS lost the cluster's records" in halt["reason"], halt
        for node in (a, b, c):
            assert node.ks()["state"] == "TRIGGERED"
        assert any("NATS lost the cluster's records" in n.log.read_text() for n in (a, b, c))
        time.sleep(1.0)  # five beats: nobody resumes on their own
        assert {n.ks()["state"] for n in (a, b, c)} == {"TRIGGERED"}

        # The vault set was written back; one authorised recovery of the new epoch resumes all.
        assert _recover(c, "after-the-loss", 2)["accepted"] is True
        wait_until(lambda: _armed(a, b, c), 30, "every node armed after epoch 2")
        wait_until(lambda: sum(n["owned_vaults"] for n in a.ask("cluster")["nodes"]) == 3, 20, "the vaults leased again")
    finally:
        cluster.stop()
