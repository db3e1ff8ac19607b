"""Fail-over under load (issue 14, "Tests" -> "Fail-over"): three nodes trade six vaults
continuously; one is SIGKILLed mid-flow (no crash point: wherever it happens to be).

Real processes throughout (tests/chaos/cluster_rig.py): the localnet, a test-started
``nats-server`` with JetStream, three engine nodes (``xorj-actors run --node-id``) and ONE audit
store for the three, the PostgreSQL server at 127.0.0.1:5432 in a schema private to the test.
Read back with psycopg2 row by row and from the chain over JSON-RPC, never through the engine's
code:

- every vault the dead node held is activated again on a survivor (its ``vault activated``
  entry) within the lease TTL + 2 s of the kill;
- the survivors trade those vaults again (new intents with outcomes in their chains);
- every TRADE_INTENT of any chain has exactly one TRADE_CONFIRMATION in the whole store;
- no trade landed twice (at most one of its signed attempts is known to the chain);
- ``xorj-actors audit verify`` passes for the three chains.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.chaos.cluster_rig import LEASE_TTL_S, Rig, Store, assert_invariants
from tests.chaos.crash_helpers import poll
from tests.plugins.nats_server import NatsServer

pytestmark = pytest.mark.nats

NODES = ("a", "b", "c")


def test_survivors_take_over_a_node_killed_mid_trade_and_nothing_lands_twice(
    tmp_path: Path, nats_server: NatsServer, pg_schema: str, audit_key: bytes
) -> None:
    rig = Rig(tmp_path, nats_server.url, pg_schema, seed="xorj-failover-three", vaults=6)
    try:
        nodes = dict(zip(NODES, rig.start(*NODES)))
        poll(lambda: rig.placed(NODES), 90, "the six vaults placed on the three nodes", engine=nodes["a"])

        # The victim: a node with an open trade right now (an intent without outcome in its chain).
        def mid_trade() -> tuple[str, Store] | None:
            store = rig.store()
            if rig.placed(NODES) is None:
                return None
            for n in NODES:
                if any(r.chain == n for r in store.trades.intents() if r.correlation_id in store.trades.open()):
                    return n, store
            return None

        victim, before = poll(mid_trade, 60, "a node with a trade in flight", every=0.02)
        nodes[victim].proc.send_signal(signal.SIGKILL)
        assert nodes[victim].wait_exit(10) == -signal.SIGKILL
        orphans = before.held(victim)
        survivors = tuple(n for n in NODES if n != victim)
        marks = {n: before.heads.get(n, 0) for n in survivors}

        def taken_over() -> dict[str, tuple[str, int]] | None:
            store = rig.store()
            where = {v: (n, seq) for n in survivors for v, seq in store.activated_after(n, marks[n]).items() if v in orphans}
            return where if set(where) == orphans else None

        owners = poll(taken_over, LEASE_TTL_S + 2.0, f"node {victim}'s vaults {sorted(orphans)} activated on a survivor")

        # The survivors trade the taken-over vaults again: a new intent, with its outcome.
        def trading_again() -> Store | None:
            store = rig.store()
            for vault, (n, seq) in owners.items():
                fresh = [r for r in store.trades.intents() if r.chain == n and r.sequence > seq and r.details["vault_id"] == vault]
                if not any(store.trades.of(r.correlation_id, "TRADE_CONFIRMATION") for r in fresh):  # type: ignore[arg-type]
                    return None
            return store

        poll(trading_again, 30, "the taken-over vaults trading again on the survivors")

        # Quiesce: a graceful cluster halt, then every intent's outcome.
        rig.quiesce(survivors, timeout=60)
        rig.stop(survivors)
    finally:
        localnet_alive = rig.kill_nodes()

    try:
        assert localnet_alive
        final = rig.store().trades
        assert {r.chain for r in final.intents()} == set(NODES)
        assert any(final.signed(t) for t in final.by_trade), "no trade was ever signed"
        assert_invariants(rig, final, NODES, "after the fail-over")
    finally:
        rig.close()
