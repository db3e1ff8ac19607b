"""Bucket records, liveness and the cluster halt report, pure."""

from __future__ import annotations

import pytest

from xorj_actors.cluster import (
    NO_HALT,
    ClusterDataError,
    HaltAck,
    HaltRecord,
    HaltState,
    LeaseHolder,
    Liveness,
    MemberRecord,
    NodeHaltStatus,
    VaultSet,
    decode,
    encode,
    halt_report,
    live_nodes,
    liveness,
)
from xorj_actors.kill_switch import KillSwitchState

from tests.plugins.engine import cluster_proof

MEMBER = MemberRecord("a", "inc1", 1000.0, 1010.0, 3, KillSwitchState.ARMED)
HALT = HaltRecord(4, HaltState.HALTED, "signal", "a", 2000.0)
ACK = HaltAck(4, "b", 120, ("vault-0003",), 2001.0)


CLEARED = HaltRecord(4, HaltState.CLEAR, "authorised recovery on node a", "a", 2100.0, proof=cluster_proof(4))


VAULTS = VaultSet(("vault-0000", "vault-0001"), "a", 3000.0, "added vault-0001 by alice")


@pytest.mark.parametrize("record", [LeaseHolder("a", "inc1", 5.0), MEMBER, HALT, ACK, NO_HALT, CLEARED, VAULTS])
def test_every_record_survives_its_json(record: object) -> None:
    assert decode(type(record), encode(record)) == record  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not valid JSON"),
        (b"[1]", "expected a JSON object"),
        (b'{"v":2,"node_id":"a","incarnation":"i","acquired_at":1}', "format version 2"),
        (b'{"v":1,"node_id":"a","incarnation":"i"}', r"missing keys \['acquired_at'\]"),
        (b'{"v":1,"node_id":"a","incarnation":"i","acquired_at":1,"x":1}', r"unknown keys \['x'\]"),
        (b'{"v":1,"node_id":1,"incarnation":"i","acquired_at":1}', "LeaseHolder.node_id: expected a string"),
        (b'{"v":1,"node_id":"a","incarnation":"i","acquired_at":NaN}', "not valid JSON"),
        (b'{"v":1,"node_id":"a","incarnation":"i","acquired_at":true}', "expected a finite number"),
    ],
)
def test_a_record_that_is_not_ours_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(ClusterDataError, match=message):
        decode(LeaseHolder, data)


def test_a_halt_with_an_unknown_state_is_refused() -> None:
    data = encode(HALT).replace(b'"halted"', b'"paused"')
    with pytest.raises(ClusterDataError, match="HaltRecord.state: unknown value 'paused'"):
        decode(HaltRecord, data)


def test_liveness_from_the_heartbeat_age() -> None:
    assert liveness(MEMBER, 1014.999, 5.0) is Liveness.ALIVE
    assert liveness(MEMBER, 1015.0, 5.0) is Liveness.DEAD
    assert liveness(MEMBER, 900.0, 5.0) is Liveness.ALIVE  # writer's clock ahead of ours
    old = MemberRecord("b", "inc2", 0.0, 1000.0, 0, KillSwitchState.TRIGGERED)
    assert live_nodes([old, MEMBER], 1012.0, 5.0) == ("a",)


def test_the_halt_report_names_each_node_state() -> None:
    acks = {
        "a": HaltAck(4, "a", 300, (), 2000.5),
        "b": ACK,
        "c": HaltAck(3, "c", 300, (), 1500.0),  # an older epoch's ack: no answer to this one
    }
    early = halt_report(HALT, acks, ("a", "b", "c", "d"), now=2005.0, deadline_s=10.0)
    assert [(n.node_id, n.status) for n in early.nodes] == [
        ("a", NodeHaltStatus.COMPLETE),
        ("b", NodeHaltStatus.INCOMPLETE),
        ("c", NodeHaltStatus.WAITING),
        ("d", NodeHaltStatus.WAITING),
    ]
    late = halt_report(HALT, acks, ("a", "b", "c", "d"), now=2010.0, deadline_s=10.0)
    assert late.nodes[3].status is NodeHaltStatus.NOT_ANSWERING and not late.complete
    done = halt_report(HALT, {"a": acks["a"]}, ("a",), now=2001.0, deadline_s=10.0)
    assert done.complete


def test_a_halt_record_written_before_proofs_still_reads() -> None:
    data = encode(HALT).replace(b',"proof":null', b"")
    assert b"proof" not in data and decode(HaltRecord, data) == HALT


@pytest.mark.parametrize(("proof", "problem"), [
    (b'"yes"', "expected an object with the keys"),
    (b'{"cluster_epoch":4}', "expected an object with the keys"),
    (b'{"authorisations":[["k","aa"]],"cluster_epoch":-4,"local_epoch":1,"nonce_sha256":"n","operator":"o","timestamp":1}',
     "integers >= 0"),
    (b'{"authorisations":[["k","aa"]],"cluster_epoch":true,"local_epoch":1,"nonce_sha256":"n","operator":"o","timestamp":1}',
     "integers >= 0"),
    (b'{"authorisations":"k:aa","cluster_epoch":4,"local_epoch":1,"nonce_sha256":"n","operator":"o","timestamp":1}',
     "at most 16"),
    (b'{"authorisations":[["k","' + b"a" * 65 + b'"]],"cluster_epoch":4,"local_epoch":1,"nonce_sha256":"n","operator":"o","timestamp":1}',
     "at most 16"),
    (b'{"authorisations":[],"cluster_epoch":4,"local_epoch":1,"nonce_sha256":"","operator":"o","timestamp":1}',
     "nonce_sha256 or operator"),
])
def test_a_proof_that_does_not_parse_leaves_the_record_readable_and_says_why(proof: bytes, problem: str) -> None:
    # The record still reads (a follower refuses the proof, audited) rather than halting the node.
    data = encode(HaltRecord(4, HaltState.CLEAR, "forged", "x", 1.0)).replace(b'"proof":null', b'"proof":' + proof)
    record = decode(HaltRecord, data)
    assert record.proof is None and problem in record.proof_problem
