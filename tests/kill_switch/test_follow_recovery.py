"""A cluster node's kill switch follows the cluster's recovery only out of the very halt it entered,
and only with a proof it verifies itself (docs/CLUSTER.md, "Recovery")."""

from __future__ import annotations

import time

import pytest

from tests.helpers import audit_rows_in
from tests.plugins.engine import RECOVERY_KEYS, authorise, authorise_cluster, cluster_proof, ks_status, wait_until
from xorj_actors.kill_switch import (
    KILL_SWITCH_NAME,
    ClusterProof,
    FollowRecovery,
    HaltBoard,
    KillSwitch,
    KillSwitchSettings,
    Recover,
    RecoveryVerifier,
    load_recovery_keys,
    nonce_digest,
)
from xorj_actors.messages import HaltMode, Trigger


def _follow(engine, epoch: int, proof: ClusterProof | None, cluster_epoch: int = 7, problem: str = ""):
    message = FollowRecovery(epoch=epoch, cluster_epoch=cluster_epoch, cleared_by="a",
                             reason="authorised recovery on node a", proof=proof, proof_problem=problem)
    return engine.runtime.whereis(KILL_SWITCH_NAME).ask(message, timeout=10)


def _halt(engine, source: str = "cluster") -> int:
    engine.runtime.whereis(KILL_SWITCH_NAME).tell(Trigger(mode=HaltMode.EMERGENCY, reason="cluster halt epoch 7", source=source))
    wait_until(lambda: ks_status(engine).state == "TRIGGERED" and ks_status(engine).complete)
    return ks_status(engine).epoch


def _entries(engine, what: str) -> list[dict]:
    return [d for _, a, d in audit_rows_in(engine.data_dir) if a == "kill_switch" and d.get("what") == what]


def test_it_resumes_through_the_gradual_restart_with_a_proof_it_verifies(engine) -> None:
    epoch = _halt(engine)
    outcome = _follow(engine, epoch, cluster_proof(7, nonce="legit", local_epoch=3, operator="alice"))
    assert outcome.accepted and outcome.factor == 0.5, outcome
    wait_until(lambda: ks_status(engine).state == "ARMED" and ks_status(engine).factor == 1.0, what="armed")
    (entry,) = _entries(engine, "cluster recovery followed")
    assert entry["authorised_by"] == ["XORJ_RECOVERY_KEY_1", "XORJ_RECOVERY_KEY_2"]
    assert (entry["cluster_epoch"], entry["operator"], entry["recovered_local_epoch"]) == (7, "alice", 3)
    # Its nonce is used here too: the state file and the audit entry (which a start reads) say so.
    assert entry["nonce_sha256"] == nonce_digest("legit") and "legit" not in str(entry)


# Each proof is made when its test runs: one made at collection goes stale during a long run.
@pytest.mark.parametrize(("make_proof", "problem", "reason"), [
    (lambda: None, "", "the clear carries no proof"),
    (lambda: None, "proof: expected an object", "malformed proof: proof: expected an object"),
    (lambda: cluster_proof(6), "", "authorisations are for cluster halt epoch 6"),
    (lambda: cluster_proof(7, authorisations=(("XORJ_RECOVERY_KEY_1", "0" * 64), ("XORJ_RECOVERY_KEY_2", "1" * 64))),
     "", "0 valid authorisations, 2 needed"),
    (lambda: cluster_proof(7, ts=int(time.time()) - 3600), "", "stale or future request"),
])
def test_a_proof_it_cannot_verify_leaves_it_halted_and_is_a_security_violation(engine, make_proof, problem, reason) -> None:
    epoch = _halt(engine)
    outcome = _follow(engine, epoch, make_proof(), problem=problem)
    assert not outcome.accepted and reason in outcome.reason, outcome
    assert ks_status(engine).state == "TRIGGERED" and ks_status(engine).epoch == epoch
    wait_until(lambda: _entries(engine, "cluster recovery refused"), what="the refusal audited")
    (refused,) = [d for t, _, d in audit_rows_in(engine.data_dir) if t == "SECURITY_VIOLATION"]
    assert reason in refused["reason"] and refused["cluster_epoch"] == 7


def test_a_proof_followed_once_is_not_followed_again(engine) -> None:
    proof = cluster_proof(7, nonce="once")
    assert _follow(engine, _halt(engine), proof).accepted
    wait_until(lambda: ks_status(engine).state == "ARMED", what="armed")
    # The cluster halts again and someone writes the old clear back (the same epoch number, say
    # after the halt bucket was recreated): the nonce is spent here.
    outcome = _follow(engine, _halt(engine), proof)
    assert not outcome.accepted and "nonce already used: replayed request" in outcome.reason
    assert ks_status(engine).state == "TRIGGERED"


def test_a_halt_triggered_here_since_needs_its_own_recovery(engine) -> None:
    first = _halt(engine)
    _halt(engine, source="SIGUSR2")
    outcome = _follow(engine, first, cluster_proof(7))
    assert not outcome.accepted and "not in the cluster's halt any more" in outcome.reason
    assert ks_status(engine).state == "TRIGGERED"


def test_the_kill_file_still_wins(engine) -> None:
    _halt(engine)
    (engine.data_dir / engine.config.kill_switch.kill_file).write_text("operator\n")
    wait_until(lambda: ks_status(engine).source == "kill_file", what="the kill file's halt")
    outcome = _follow(engine, ks_status(engine).epoch, cluster_proof(7))  # even for the halt it is in now
    assert not outcome.accepted and "kill file" in outcome.reason
    assert ks_status(engine).state == "TRIGGERED"


def test_the_cooldown_is_waited_out_not_refused(engine_factory) -> None:
    engine = engine_factory(cooldown=60)
    epoch = _halt(engine)
    outcome = _follow(engine, epoch, cluster_proof(7))
    assert not outcome.accepted and outcome.retry_after_s is not None and 55 < outcome.retry_after_s <= 60, outcome
    assert ks_status(engine).state == "TRIGGERED"
    assert not _entries(engine, "cluster recovery refused")  # nothing wrong with the proof: asked again later


def test_a_used_nonce_of_a_followed_recovery_survives_a_lost_state_file(engine_factory, tmp_path) -> None:
    d = tmp_path / "d"
    first = engine_factory(data_dir=d)
    proof = cluster_proof(7, nonce="spent")
    assert _follow(first, _halt(first), proof).accepted
    first.stop()
    (d / "kill_switch.json").unlink()
    second = engine_factory(data_dir=d)  # starts halted (the file is missing), from the audit log
    outcome = _follow(second, ks_status(second).epoch, proof)
    assert not outcome.accepted and "replayed request" in outcome.reason


class ClusterAt:
    """The node runtime's side of the kill switch (``ClusterHalt``): the open cluster epoch, and
    the proofs handed over."""

    def __init__(self, epoch: int | None) -> None:
        self.epoch = epoch
        self.proofs: list[ClusterProof] = []

    def open_epoch(self) -> int | None:
        return self.epoch

    def recovered(self, proof: ClusterProof) -> None:
        self.proofs.append(proof)


def _recover(ks, local_epoch: int, cluster_epoch: int | None, auths, nonce: str = "c-1", ts: int | None = None):
    message = Recover(epoch=local_epoch, nonce=nonce, timestamp=ts or int(time.time()), authorisations=auths,
                      operator="alice", cluster_epoch=cluster_epoch)
    return ks.ask(message, timeout=5)


def test_while_the_cluster_is_halted_a_recovery_here_is_the_clusters_and_hands_its_proof_over(runtime, tmp_path) -> None:
    board, cluster = HaltBoard(), ClusterAt(5)
    ks = KillSwitch.start(KillSwitchSettings(cooldown_s=0), tmp_path, board, environ=RECOVERY_KEYS, cluster=cluster)
    ks.tell(Trigger(mode=HaltMode.EMERGENCY, reason="cluster halt epoch 5", source="cluster"))
    ks.tell(Trigger(mode=HaltMode.EMERGENCY, reason="cluster halt epoch 5", source="cluster"))
    # Each trigger is an epoch of its own: wait for the second, or the recovery below races it.
    wait_until(lambda: board.status.state == "TRIGGERED" and board.status.epoch == 2, what="halted twice")
    local = board.status.epoch
    ts = int(time.time())
    # The local epoch's authorisations do not recover the cluster's halt, nor the cluster epoch's
    # signed under the local context, nor another cluster epoch's.
    refused = _recover(ks, local, None, authorise(local, nonce="c-1", ts=ts)["authorisations"], ts=ts)
    assert not refused.accepted and "recover --cluster-epoch 5" in refused.reason
    refused = _recover(ks, local, 5, authorise(5, nonce="c-1", ts=ts)["authorisations"], ts=ts)
    assert not refused.accepted and "0 valid authorisations" in refused.reason
    refused = _recover(ks, local, 4, authorise_cluster(4, ts=ts), ts=ts)
    assert not refused.accepted and "the cluster is halted (epoch 5)" in refused.reason
    assert board.status.halted and cluster.proofs == []

    accepted = _recover(ks, local, 5, authorise_cluster(5, ts=ts), ts=ts)
    assert accepted.accepted, accepted
    (proof,) = cluster.proofs
    assert proof == ClusterProof(cluster_epoch=5, nonce_sha256=nonce_digest("c-1"), timestamp=ts,
                                 authorisations=authorise_cluster(5, ts=ts), operator="alice", local_epoch=local)
    # What it hands over verifies on another node with its own copy of the keys.
    verifier = RecoveryVerifier(load_recovery_keys(list(RECOVERY_KEYS), RECOVERY_KEYS), 2)
    assert verifier.verify_cluster(cluster_epoch=5, nonce_sha256=proof.nonce_sha256, timestamp=ts,
                                   authorisations=proof.authorisations, halted_epoch=5, used_nonce_digests=(),
                                   now=time.time())


def test_while_the_cluster_is_clear_a_recovery_is_this_nodes_own(runtime, tmp_path) -> None:
    board, cluster = HaltBoard(), ClusterAt(None)
    ks = KillSwitch.start(KillSwitchSettings(cooldown_s=0), tmp_path, board, environ=RECOVERY_KEYS, cluster=cluster)
    ks.tell(Trigger(mode=HaltMode.EMERGENCY, reason="cluster halt epoch 5", source="cluster"))
    wait_until(lambda: board.status.state == "TRIGGERED", what="halted")
    local = board.status.epoch
    refused = _recover(ks, local, 5, authorise_cluster(5))
    assert not refused.accepted and "the cluster is not halted" in refused.reason
    auth = authorise(local, nonce="own")
    assert _recover(ks, local, None, auth["authorisations"], nonce="own", ts=auth["timestamp"]).accepted
    assert cluster.proofs == []  # nothing for the cluster to clear
