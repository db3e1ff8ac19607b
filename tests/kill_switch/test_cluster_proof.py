"""The rules a cluster recovery's proof is verified by, on the node it is given to and on every
node that follows it (pure: docs/CLUSTER.md, "Recovery")."""

from __future__ import annotations

import pytest

from tests.plugins.engine import RECOVERY_KEYS, authorise_cluster, cluster_proof
from xorj_actors.kill_switch import (
    ClusterProof,
    RecoveryRefused,
    RecoveryVerifier,
    cluster_recovery_payload,
    load_recovery_keys,
    nonce_digest,
    sign_recovery,
)

KEYS = load_recovery_keys(list(RECOVERY_KEYS), RECOVERY_KEYS)
#: "Now" for every proof and check here: the rules are pure, the tests do not read the clock.
NOW = 1_800_000_000


def verify(proof: ClusterProof, halted_epoch: int = 3, used: frozenset[str] = frozenset(), now: float | None = None,
           keys=KEYS) -> tuple[str, ...]:
    return RecoveryVerifier(keys, 2).verify_cluster(
        cluster_epoch=proof.cluster_epoch, nonce_sha256=proof.nonce_sha256, timestamp=proof.timestamp,
        authorisations=proof.authorisations, halted_epoch=halted_epoch, used_nonce_digests=used,
        now=NOW if now is None else now,
    )


def edited(proof: ClusterProof, **changes) -> ClusterProof:
    fields = {name: getattr(proof, name) for name in
              ("cluster_epoch", "nonce_sha256", "timestamp", "authorisations", "operator", "local_epoch")}
    return ClusterProof(**{**fields, **changes})


def test_k_valid_authorisations_of_the_cluster_epoch_verify() -> None:
    assert verify(cluster_proof(3, ts=NOW)) == ("XORJ_RECOVERY_KEY_1", "XORJ_RECOVERY_KEY_2")


def test_the_payload_names_the_cluster_epoch_and_the_nonce_digest_not_the_nonce() -> None:
    payload = cluster_recovery_payload(3, nonce_digest("secret-ish nonce"), 1700000000)
    assert payload == f"xorj-actors/cluster/recover/v1\n3\n{nonce_digest('secret-ish nonce')}\n1700000000".encode()
    assert b"secret-ish" not in payload


@pytest.mark.parametrize(("proof", "halted", "reason"), [
    # A proof for another cluster epoch, as it was signed: it names its epoch.
    (cluster_proof(2, ts=NOW), 3, "authorisations are for cluster halt epoch 2, this node is in cluster halt epoch 3"),
    # The same proof with its epoch edited to the current one: the HMACs no longer match.
    (edited(cluster_proof(2, ts=NOW), cluster_epoch=3), 3, "0 valid authorisations, 2 needed"),
    # Its nonce digest edited (to get past the used nonces): the HMACs no longer match.
    (edited(cluster_proof(3, ts=NOW), nonce_sha256=nonce_digest("other")), 3, "0 valid authorisations, 2 needed"),
    # Its timestamp edited (to get past the freshness check): the HMACs no longer match.
    (edited(cluster_proof(3, ts=NOW - 10), timestamp=NOW), 3, "0 valid authorisations"),
    # Authorisations of the local halt epoch 3 (the other context) are not the cluster's.
    (edited(cluster_proof(3, ts=NOW), authorisations=tuple(
        (k, sign_recovery(RECOVERY_KEYS[k].encode(), 3, "c-1", NOW)) for k in list(RECOVERY_KEYS)[:2])),
     3, "0 valid authorisations"),
    # One key holder twice is one authorisation.
    (edited(cluster_proof(3, ts=NOW), authorisations=authorise_cluster(3, keys=("XORJ_RECOVERY_KEY_1",) * 2, ts=NOW)), 3, "duplicate"),
    # Unknown key ids, and HMACs that are not even ASCII, are refused, not raised on.
    (edited(cluster_proof(3, ts=NOW), authorisations=(("XORJ_OTHER", "0" * 64), ("XORJ_RECOVERY_KEY_1", "é" * 64))), 3,
     "XORJ_OTHER: unknown key; XORJ_RECOVERY_KEY_1: bad signature"),
    (edited(cluster_proof(3, ts=NOW), authorisations=()), 3, "0 valid authorisations, 2 needed"),
    (edited(cluster_proof(3, ts=NOW), nonce_sha256="n-1"), 3, "not a SHA-256 hex digest"),
    (cluster_proof(3, ts=NOW - 301), 3, "stale or future"),
    (cluster_proof(3, ts=NOW + 301), 3, "stale or future"),
])
def test_a_proof_that_does_not_authorise_this_cluster_halt_is_refused(proof: ClusterProof, halted: int, reason: str) -> None:
    with pytest.raises(RecoveryRefused, match=reason):
        verify(proof, halted)


def test_a_used_nonce_is_a_replay_whatever_else_is_right() -> None:
    with pytest.raises(RecoveryRefused, match="nonce already used: replayed request"):
        verify(cluster_proof(3, nonce="once", ts=NOW), used=frozenset({nonce_digest("once")}))


def test_a_node_with_other_keys_or_too_few_verifies_nothing() -> None:
    others = {k: b"z" * 40 for k in RECOVERY_KEYS}
    with pytest.raises(RecoveryRefused, match="bad signature"):
        verify(cluster_proof(3, ts=NOW), keys=others)
    with pytest.raises(RecoveryRefused, match="only 1 recovery keys are configured"):
        verify(cluster_proof(3, ts=NOW), keys={"XORJ_RECOVERY_KEY_1": KEYS["XORJ_RECOVERY_KEY_1"]})
