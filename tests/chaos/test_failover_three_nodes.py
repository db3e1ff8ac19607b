"""Fail-over under load (issue 14, "Tests" -> "Fail-over"): three nodes trade six vaults
continuously; one is SIGKILLed mid-flow (no crash point: wherever it happens to be).

Real processes throughout: the localnet, a test-started ``nats-server`` with JetStream, three
engine nodes (``xorj-actors run --node-id``) and ONE audit store for the three, the PostgreSQL
server at 127.0.0.1:5432 in a schema private to the test (each node writes its own chain in it,
docs/AUDIT.md "Chains"). Read back with psycopg2 row by row and from the chain over JSON-RPC,
never through the engine's code:

- every vault the dead node held is activated again on a survivor (its ``vault activated``
  entry) within the lease TTL + 2 s of the kill;
- the survivors trade those vaults again (new intents with outcomes in their chains);
- every TRADE_INTENT of any chain has exactly one TRADE_CONFIRMATION in the whole store;
- no trade landed twice (at most one of its signed attempts is known to the chain);
- ``xorj-actors audit verify`` passes for the three chains.
"""

from __future__ import annotations

import json
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.crash_helpers import (
    ENGINE_AGAINST_LOCALNET, EngineProcess, LocalnetProcess, Row, Trades, assert_no_trade_landed_twice, cli, poll,
)
from tests.plugins.audit import pg_connect
from tests.plugins.nats_server import NatsServer

pytestmark = pytest.mark.nats

NODES = ("a", "b", "c")
VAULTS = 6
LEASE_TTL_S = 3.0

LOCALNET = f"""
[localnet]
seed = "xorj-failover-three"
slot_ms = 20
confirmed_lag = 1
finalized_lag = 4
blockhash_valid_blocks = 500
vaults = {VAULTS}
"""

#: The strategy moves every second and the nodes read it every half second: each vault trades
#: again and again (a vault trades towards its target allocation, which then stays put).
QUANT = """
[localnet.quant]
round_s = 1.0
"""

#: A 3 s lease (renewed every second, fenced 0.5 s before it ends), dead after 1.5 s of silence.
CLUSTER = f"""
[cluster]
nats_url = "{{nats}}"
bucket_prefix = "t"
lease_ttl_s = {LEASE_TTL_S}
renew_every_s = 1.0
fence_margin_s = 0.5
op_timeout_s = 0.5
heartbeat_s = 0.3
dead_after_s = 1.5
member_ttl_s = 60.0
nats_lost_halt_s = 5.0
halt_ack_deadline_s = 5.0
"""

#: The three nodes' one store: the test database, the test's own schema.
AUDIT = """
[audit]
backend = "postgres"
[audit.postgres]
host = "127.0.0.1"
port = 5432
database = "test"
user = "postgres"
schema = "{schema}"
application_name = "{schema}"
"""


@dataclass
class Store:
    """Every chain of the shared store: the executor's trades and the cluster's vault changes."""

    trades: Trades
    #: chain -> its ``vault activated`` / ``vault passivated`` entries, in chain order.
    vault_changes: dict[str, list[Row]]

    def held(self, chain: str) -> set[str]:
        """The vaults ``chain``'s node runs, by its last activation or passivation of each."""
        last: dict[str, str] = {}
        for row in self.vault_changes.get(chain, []):
            last[row.details["vault"]] = row.details["what"]
        return {v for v, what in last.items() if what == "vault activated"}

    def activated_after(self, chain: str, sequence: int) -> dict[str, int]:
        """vault -> the sequence of its first activation in ``chain`` after ``sequence``."""
        out: dict[str, int] = {}
        for row in self.vault_changes.get(chain, []):
            if row.sequence > sequence and row.details["what"] == "vault activated":
                out.setdefault(row.details["vault"], row.sequence)
        return out

    def last_sequence(self, chain: str) -> int:
        return max((r.sequence for r in self.trades.rows if r.chain == chain), default=0)


def read_store(schema: str) -> Store:
    """Every chain of the schema, read with psycopg2 (not our code)."""
    conn = pg_connect()
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_name LIKE 'audit\\_entries\\_%%'",
                (schema,),
            )
            tables = [r[0] for r in cur.fetchall()]
            rows: list[tuple[str, Row]] = []
            for table in tables:
                cur.execute(
                    f'SELECT sequence, event_type, actor, correlation_id, details FROM "{schema}"."{table}" '
                    "WHERE actor IN ('executor', 'cluster') ORDER BY sequence"
                )
                chain = table.removeprefix("audit_entries_")
                rows += [(actor, Row(chain, seq, kind, corr, json.loads(d))) for seq, kind, actor, corr, d in cur.fetchall()]
    finally:
        conn.close()
    changes: dict[str, list[Row]] = {}
    for actor, row in rows:
        if actor == "cluster" and row.details.get("what") in ("vault activated", "vault passivated"):
            changes.setdefault(row.chain, []).append(row)
    return Store(Trades([r for actor, r in rows if actor == "executor"]), changes)


def test_survivors_take_over_a_node_killed_mid_trade_and_nothing_lands_twice(
    tmp_path: Path, nats_server: NatsServer, pg_schema: str, audit_key: bytes
) -> None:
    ln_config = tmp_path / "localnet.toml"
    ln_config.write_text(LOCALNET + QUANT)
    localnet = LocalnetProcess(ln_config, tmp_path / "localnet.log")
    config = tmp_path / "node.toml"
    config.write_text(
        ENGINE_AGAINST_LOCALNET.format(**localnet.urls, api="swap")
        .replace("count = 2", f"count = {VAULTS}")
        .replace("[strategy]\n", "[strategy]\npoll_interval_s = 0.5\nretry_interval_s = 0.5\n")
        + AUDIT.format(schema=pg_schema) + LOCALNET + "enabled = false\n" + CLUSTER.format(nats=nats_server.url)
    )
    all_vaults = {f"vault-{i:04d}" for i in range(VAULTS)}
    for n in NODES:
        (tmp_path / n).mkdir()
    nodes = {n: EngineProcess(config, tmp_path / n, tmp_path / f"{n}.log", node_id=n) for n in NODES}

    def settled_placement() -> Store | None:
        """The store once the six vaults run on the three nodes, each vault on one."""
        store = read_store(pg_schema)
        held = [store.held(n) for n in NODES]
        if all(held) and sorted(v for h in held for v in h) == sorted(all_vaults):
            return store
        return None

    try:
        poll(settled_placement, 90, "the six vaults placed on the three nodes", engine=nodes["a"])

        # The victim: a node with an open trade right now (an intent without outcome in its chain).
        def mid_trade() -> tuple[str, Store] | None:
            store = read_store(pg_schema)
            if settled_placement() is None:
                return None
            for n in NODES:
                if any(r.chain == n for r in store.trades.intents() if r.correlation_id in store.trades.open()):
                    return n, store
            return None

        victim, before = poll(mid_trade, 60, "a node with a trade in flight", every=0.02)
        nodes[victim].proc.send_signal(signal.SIGKILL)
        assert nodes[victim].wait_exit(10) == -signal.SIGKILL
        orphans = before.held(victim)
        survivors = [n for n in NODES if n != victim]
        marks = {n: max((r.sequence for rows in before.vault_changes.values() for r in rows if r.chain == n), default=0) for n in survivors}

        def taken_over() -> dict[str, tuple[str, int]] | None:
            store = read_store(pg_schema)
            where = {v: (n, seq) for n in survivors for v, seq in store.activated_after(n, marks[n]).items() if v in orphans}
            return where if set(where) == orphans else None

        owners = poll(taken_over, LEASE_TTL_S + 2.0, f"node {victim}'s vaults {sorted(orphans)} activated on a survivor")

        # The survivors trade the taken-over vaults again: a new intent, with its outcome.
        def trading_again() -> Store | None:
            store = read_store(pg_schema)
            for vault, (n, seq) in owners.items():
                fresh = [r for r in store.trades.intents() if r.chain == n and r.sequence > seq and r.details["vault_id"] == vault]
                if not any(store.trades.of(r.correlation_id, "TRADE_CONFIRMATION") for r in fresh):  # type: ignore[arg-type]
                    return None
            return store

        poll(trading_again, 30, "the taken-over vaults trading again on the survivors")

        # Quiesce: a graceful cluster halt, then every intent's outcome.
        head = nodes[survivors[0]]
        poll(head.status, 30, "the survivor's debug socket", engine=head)
        halt = head.ctl("halt", "--graceful", "--reason", "fail-over test: quiesce")
        assert halt.returncode == 0, halt.stdout + halt.stderr
        for n in survivors:
            poll(lambda n=n: (st := nodes[n].status()) and st["kill_switch"]["complete"], 30, "halt complete", engine=nodes[n])
        poll(lambda: not read_store(pg_schema).trades.open(), 60, "every intent to have its outcome")
        for n in survivors:
            assert nodes[n].stop() == 0, nodes[n].log_tail()
    finally:
        for proc in nodes.values():
            proc.kill()
        final = read_store(pg_schema).trades
        localnet_alive = localnet.proc.poll() is None

    try:
        assert localnet_alive
        assert {r.chain for r in final.intents()} == set(NODES)
        for r in final.intents():
            outcomes = final.of(r.correlation_id, "TRADE_CONFIRMATION")  # type: ignore[arg-type]
            assert len(outcomes) == 1, (r.correlation_id, [(o.chain, o.details["status"]) for o in outcomes])
        assert any(final.signed(t) for t in final.by_trade), "no trade was ever signed"
        assert_no_trade_landed_twice(final, localnet.urls["rpc"])
        verify = subprocess.run(
            cli("audit", "verify", "--config", str(config), "--data-dir", str(tmp_path / survivors[0])),
            capture_output=True, text=True, timeout=60,
        )
        # 3: every chain's hashes and HMACs intact; nothing is anchored in this config.
        assert verify.returncode == 3, verify.stdout + verify.stderr
        assert [line.split(":")[:2] for line in verify.stdout.splitlines()] == [
            [f"chain {n}", " UNANCHORED"] for n in NODES
        ], verify.stdout
    finally:
        localnet.stop()
