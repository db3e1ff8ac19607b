"""Fail-over settlement (issue 14): a node dies with a trade signed and never sent; the node that
takes its vaults over settles it from the dead node's chain before the vaults trade again.

Real processes throughout: the localnet, a test-started ``nats-server`` with JetStream, and two
engine nodes (``xorj-actors run --node-id``) sharing one audit store (one SQLite file: each node
writes its own chain in it, docs/AUDIT.md "Chains"; ``[audit] sqlite_path`` must lie inside the
data directory, so each node's ``shared`` is a symbolic link to one directory). Node ``a`` holds both vaults and SIGKILLs
itself right before its first send (``XORJ_FAULT_CRASH_AT=before_send``): its chain holds open
trades, one with a durable signed attempt that never left the machine. Node ``b`` then starts,
takes the vaults once ``a``'s leases expire, and must settle every one of ``a``'s open trades
(the signed one by sending ``a``'s very bytes: confirmed, signed nowhere again) before the vaults
trade again. Node ``a`` is then restarted: it holds none of those vaults' trades and must not
settle any of them again. Read back from the SQLite file row by row and from the chain over
JSON-RPC, never through the executor's code:

- every TRADE_INTENT of either chain has exactly one TRADE_CONFIRMATION, in any chain; those of
  the trades ``a`` left open are in ``b``'s chain;
- ``b`` recorded no intent for a vault before the outcomes of that vault's adopted trades;
- no trade landed twice (at most one of its signed attempts is known to the chain);
- ``xorj-actors audit verify`` passes for both chains.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.crash_helpers import (
    ENGINE_AGAINST_LOCALNET, EngineProcess, LocalnetProcess, Row, Trades, assert_no_trade_landed_twice, cli, poll,
    signature_statuses,
)
from tests.cluster.nodes import CLUSTER_TOML
from tests.plugins.nats_server import NatsServer

pytestmark = pytest.mark.nats

LOCALNET = """
[localnet]
seed = "xorj-failover"
slot_ms = 20
confirmed_lag = 1
finalized_lag = 4
blockhash_valid_blocks = 3000
vaults = 2
"""

#: Both nodes write one SQLite store (their data directories' ``shared/`` is one directory).
NODE = ENGINE_AGAINST_LOCALNET + '[audit]\nsqlite_path = "shared/audit.db"\n'


def read_trades(db: Path) -> Trades:
    """Every executor entry of every chain in the SQLite file (read with sqlite3, not our code)."""
    conn = sqlite3.connect(db)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'audit\\_entries\\_%' ESCAPE '\\'"
        )]
        rows = [
            Row(table.removeprefix("audit_entries_"), seq, kind, corr, json.loads(details))
            for table in tables
            for seq, kind, corr, details in conn.execute(
                f"SELECT sequence, event_type, correlation_id, details FROM {table} WHERE actor = 'executor' ORDER BY sequence"
            )
        ]
    finally:
        conn.close()
    return Trades(rows)


def when(db: Path, ready: Any) -> Trades | None:
    """The store's trades once ``ready(trades)``, else None (for :func:`poll`)."""
    trades = read_trades(db)
    return trades if ready(trades) else None


def test_a_new_owner_settles_the_dead_owners_open_trades_before_the_vault_trades_again(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    ln_config = tmp_path / "localnet.toml"
    ln_config.write_text(LOCALNET)
    localnet = LocalnetProcess(ln_config, tmp_path / "localnet.log")
    db = tmp_path / "shared" / "audit.db"
    db.parent.mkdir()
    config = tmp_path / "node.toml"
    config.write_text(
        NODE.format(**localnet.urls, api="swap") + LOCALNET + "enabled = false\n"
        + CLUSTER_TOML.format(nats=nats_server.url, lost="5.0")
    )
    nodes: list[EngineProcess] = []

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "shared").symlink_to(db.parent, target_is_directory=True)

    def node(name: str, log: str, **kw: Any) -> EngineProcess:
        proc = EngineProcess(config, tmp_path / name, tmp_path / log, node_id=name, **kw)
        nodes.append(proc)
        return proc

    try:
        # Node a trades alone and dies right before its first send.
        a = node("a", "a-crashed.log", crash_at="before_send")
        assert a.wait_exit(60) == -signal.SIGKILL, a.log_tail()
        at_crash = read_trades(db)
        left_open = at_crash.open()
        signed = [t for t in left_open if at_crash.signed(t)]
        assert signed, "node a left no open trade with a durable signed attempt"
        assert {r.chain for r in at_crash.intents()} == {"a"}
        assert not [s for s in signature_statuses(localnet.urls["rpc"], [at_crash.signed(t)[-1]["signature"] for t in signed]).values() if s]

        # Node b takes the vaults once a's leases expire, and settles a's open trades first.
        b = node("b", "b.log")
        settled = poll(
            lambda: when(db, lambda t: all(t.of(x, "TRADE_CONFIRMATION") for x in left_open)),
            60, "node a's open trades settled by node b", engine=b,
        )
        for trade_id in left_open:
            [outcome] = settled.of(trade_id, "TRADE_CONFIRMATION")
            assert outcome.chain == "b", (trade_id, outcome)
            if trade_id in signed:  # a's very bytes, sent by b: confirmed, signed nowhere again
                assert settled.signed(trade_id) == at_crash.signed(trade_id)
                assert outcome.details["status"] == "confirmed", outcome.details
                assert outcome.details["signature"] == at_crash.signed(trade_id)[-1]["signature"]
            else:
                assert outcome.details["status"] == "expired" and "never sent" in outcome.details["error"], outcome.details
        adopted = [r.details for r in settled.rows if r.chain == "b" and r.details.get("event") == "executor_adopting"]
        assert sorted(t["trade_id"] for d in adopted for t in d["trades"]) == sorted(left_open)
        vaults = {settled.of(t, "TRADE_INTENT")[0].details["vault_id"] for t in left_open}
        # The vaults trade again on b, and only after their adopted trades were settled.
        again = poll(
            lambda: when(db, lambda t: {r.details["vault_id"] for r in t.intents() if r.chain == "b"} >= vaults),
            60, "the vaults trading again on node b", engine=b,
        )
        for vault in vaults:
            first_intent = min(r.sequence for r in again.intents() if r.chain == "b" and r.details["vault_id"] == vault)
            for trade_id in left_open:
                if again.of(trade_id, "TRADE_INTENT")[0].details["vault_id"] == vault:
                    assert again.of(trade_id, "TRADE_CONFIRMATION")[0].sequence < first_intent, (vault, trade_id)

        # Node a comes back: whatever it holds now, it settles none of the trades b settled.
        a2 = node("a", "a.log")
        poll(lambda: len(read_trades(db).reconciling("a")) >= 2, 60, "node a's executor reconciled again", engine=a2)
        poll(b.status, 30, "node b's debug socket", engine=b)
        halt = b.ctl("halt", "--graceful", "--reason", "fail-over test: quiesce")
        assert halt.returncode == 0, halt.stdout + halt.stderr
        for n in (a2, b):
            poll(lambda n=n: (st := n.status()) and st["kill_switch"]["complete"], 30, "halt complete", engine=n)
        poll(lambda: not read_trades(db).open(), 60, "every intent to have its outcome", engine=b)
        for n in (a2, b):
            assert n.stop() == 0, n.log_tail()
    finally:
        for n in nodes:
            n.kill()
        localnet_rpc = localnet.urls["rpc"]
        final = read_trades(db)
        localnet_alive = localnet.proc.poll() is None

    try:
        assert localnet_alive
        for r in final.intents():
            outcomes = final.of(r.correlation_id, "TRADE_CONFIRMATION")  # type: ignore[arg-type]
            assert len(outcomes) == 1, (r.correlation_id, [(o.chain, o.details["status"]) for o in outcomes])
        for trade_id in left_open:
            assert [o.chain for o in final.of(trade_id, "TRADE_CONFIRMATION")] == ["b"]
        assert_no_trade_landed_twice(final, localnet_rpc)
        verify = subprocess.run(
            cli("audit", "verify", "--config", str(config), "--data-dir", str(tmp_path / "b")),
            capture_output=True, text=True, timeout=60,
        )
        # 3: every chain's hashes and HMACs intact; nothing is anchored in this config.
        assert verify.returncode == 3, verify.stdout + verify.stderr
        assert [line.split(":")[:2] for line in verify.stdout.splitlines()] == [
            ["chain a", " UNANCHORED"], ["chain b", " UNANCHORED"]
        ], verify.stdout
    finally:
        localnet.stop()
