"""Frames the localnet never sends, from a FAKE node: none may take the connection down.

Mainnet (Agave) sends ``receivedSignature`` notifications and failed transactions as
``{"err":{"InstructionError":[2,{"Custom":1}]}}``; a hostile or broken node may send anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.chain.conftest import Client, start_confirmation, wait_connected, watch, with_settings
from tests.chain.netfakes import FakeNode
from tests.helpers import wait_until
from xorj_actors.chain import GetConfirmationHealth

#: Nothing answers here: polls fail (and are retried), which these tests must survive too.
DEAD_RPC = "http://127.0.0.1:9"
MAINNET_FAILURE = {"err": {"InstructionError": [2, {"Custom": 1}]}}
SIG_A, SIG_B, SIG_C = ("2" * 87 + "1", "3" * 87 + "1", "4" * 87 + "1")


@pytest.fixture
def node() -> Iterator[FakeNode]:
    fake = FakeNode().start()
    try:
        yield fake
    finally:
        fake.stop()


def test_no_frame_takes_the_connection_or_another_subscription_down(runtime, client: Client, node: FakeNode) -> None:
    ref = start_confirmation(ws_url=node.url, rpc_url=DEAD_RPC, settings=with_settings(max_frame_bytes=65_536))
    wait_connected(ref)
    node.refuse_once.add(SIG_C)
    for s in (SIG_A, SIG_B, SIG_C):
        watch(ref, client, s, trade_id=f"t-{s[0]}")
    wait_until(lambda: len(node.subs) == 2 and ref.ask(GetConfirmationHealth(), timeout=5).subscribe_errors == 1,
               what="two subscriptions and one refused")
    node.send(
        node.slot(5),
        node.signature(SIG_A, "receivedSignature", 3),  # Agave, before the outcome
        json.dumps({"jsonrpc": "2.0", "method": "voteNotification", "params": {"result": {}, "subscription": 1}}),
        "this is not JSON {",
        "[1, 2, 3]",
        '{"jsonrpc": "2.0"}',
        '{"jsonrpc": "2.0", "method": "signatureNotification", "params": "nope"}',
        '{"jsonrpc": "2.0", "method": "slotNotification", "params": {"result": {"slot": "x"}}}',
        '{"jsonrpc": "2.0", "id": 999999, "result": 1}',  # a reply to nothing we asked
        node.signature(SIG_A, 42, 4),  # a known subscription, an unknown shape
        json.dumps({"jsonrpc": "2.0", "method": "signatureNotification",
                    "params": {"result": {"context": {"slot": 4}, "value": {"err": None}}, "subscription": 4242}}),
        "x" * 200_000,  # over max_frame_bytes: dropped unparsed
        b"\x00\xff\x00",  # a binary frame
        node.signature(SIG_A, MAINNET_FAILURE, 4),
        node.signature(SIG_B, {"err": None}, 4),
    )
    a, b = client.wait_outcome(SIG_A), client.wait_outcome(SIG_B)
    assert (a.trade_id, a.status, a.slot, a.confirmations) == (f"t-{SIG_A[0]}", "failed", 4, 1)
    assert a.error == '{"InstructionError":[2,{"Custom":1}]}'
    assert (b.status, b.error) == ("confirmed", None)
    # The refused subscription is retried at the next poll tick, on the same connection.
    wait_until(lambda: node.subscribe_count(SIG_C) == 2 and SIG_C in node.subs, what="the retried subscription")
    node.send(node.signature(SIG_C, {"err": None}, 5))  # landed in the newest slot: depth 0
    assert client.outcomes().get(SIG_C) is None
    node.send(node.slot(6))
    assert client.wait_outcome(SIG_C).confirmations == 1
    health = ref.ask(GetConfirmationHealth(), timeout=5)
    assert len(node.connections) == 1 and health.reconnects == 0 and health.connected
    assert health.malformed_frames == 9
    assert health.in_flight == 0 and health.subscribe_errors == 1


def test_a_frame_over_the_hard_limit_costs_a_reconnect_not_an_outcome(runtime, client: Client, node: FakeNode) -> None:
    ref = start_confirmation(ws_url=node.url, rpc_url=DEAD_RPC, settings=with_settings(max_frame_bytes=4_096))
    wait_connected(ref)
    watch(ref, client, SIG_A)
    wait_until(lambda: SIG_A in node.subs)
    node.send("y" * 100_000)  # over 16 x max_frame_bytes: the WebSocket library closes (1009)
    wait_until(lambda: len(node.connections) == 2 and SIG_A in node.subs, what="the reconnection and re-subscription")
    wait_connected(ref)
    node.send(node.slot(7), node.signature(SIG_A, {"err": None}, 6))
    outcome = client.wait_outcome(SIG_A)
    assert (outcome.status, outcome.slot, outcome.confirmations) == ("confirmed", 6, 1)
    health = ref.ask(GetConfirmationHealth(), timeout=5)
    assert health.reconnects == 1 and node.connections[0].close_code == 1009  # "message too big"
