"""Engine nodes trading against one localnet process, on one test-started nats-server, sharing ONE
PostgreSQL audit store: the set-up of the cluster's multi-process tests (fail-over, fencing after
SIGSTOP, chaos rounds), and the invariants they check.

Real processes throughout: ``xorj-actors localnet``, ``xorj-actors run --node-id`` per node, the
PostgreSQL server at 127.0.0.1:5432 in a schema private to the test (each node writes its own
chain in it, docs/AUDIT.md "Chains"). What happened is read back with psycopg2 row by row, from
the chain over JSON-RPC and from each node's ``/metrics``, never through the engine's code.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.chaos.crash_helpers import (
    ENGINE_AGAINST_LOCALNET, EngineProcess, LocalnetProcess, Row, Trades, assert_no_trade_landed_twice, cli, poll,
)
from tests.plugins.audit import pg_connect
from tests.plugins.engine import authorise_cluster
from xorj_actors.cluster import assign
from xorj_actors.ops.ctl import CtlError, request

__all__ = [
    "DEAD_AFTER_S",
    "LEASE_TTL_S",
    "Rig",
    "Store",
    "assert_audit_intact",
    "assert_invariants",
    "ask",
    "outcome_problems",
    "pause",
    "read_store",
    "recover_cluster",
    "signatures_made",
]

#: A 3 s lease (renewed every second, fenced 0.5 s before it ends), dead after 1.5 s of silence.
LEASE_TTL_S = 3.0
DEAD_AFTER_S = 1.5

LOCALNET = """
[localnet]
seed = "{seed}"
slot_ms = 20
confirmed_lag = 1
finalized_lag = 4
blockhash_valid_blocks = 500
vaults = {vaults}
"""

#: The strategy moves every second and the nodes read it every half second: each vault trades
#: again and again (a vault trades towards its target allocation, which then stays put).
QUANT = """
[localnet.quant]
round_s = 1.0
"""

CLUSTER = f"""
[cluster]
nats_url = "{{nats}}"
bucket_prefix = "t"
lease_ttl_s = {LEASE_TTL_S}
renew_every_s = 1.0
fence_margin_s = 0.5
op_timeout_s = 0.5
heartbeat_s = 0.3
dead_after_s = {DEAD_AFTER_S}
member_ttl_s = 60.0
nats_lost_halt_s = 5.0
halt_ack_deadline_s = 5.0
"""

#: The nodes' one store: the test database, the test's own schema.
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
    #: chain -> the highest sequence read (every entry written later has a higher one).
    heads: dict[str, int]

    def held(self, chain: str) -> set[str]:
        """The vaults ``chain``'s node runs, by its last activation or passivation of each (a
        node that was SIGKILLed never wrote its passivations: not for those)."""
        last: dict[str, str] = {}
        for row in self.vault_changes.get(chain, []):
            last[row.details["vault"]] = row.details["what"]
        return {v for v, what in last.items() if what == "vault activated"}

    def changes_after(self, chain: str, sequence: int, what: str) -> dict[str, Row]:
        """vault -> its first ``what`` (``vault activated`` / ``vault passivated``) entry in
        ``chain`` after ``sequence``."""
        out: dict[str, Row] = {}
        for row in self.vault_changes.get(chain, []):
            if row.sequence > sequence and row.details["what"] == what:
                out.setdefault(row.details["vault"], row)
        return out

    def activated_after(self, chain: str, sequence: int) -> dict[str, int]:
        """vault -> the sequence of its first activation in ``chain`` after ``sequence``."""
        return {v: r.sequence for v, r in self.changes_after(chain, sequence, "vault activated").items()}

    def in_flight(self, chain: str) -> list[str]:
        """``chain``'s open trades (an intent without outcome) of the vaults its node runs."""
        held, open_ = self.held(chain), set(self.trades.open())
        return [r.correlation_id for r in self.trades.intents()  # type: ignore[misc]
                if r.chain == chain and r.correlation_id in open_ and r.details["vault_id"] in held]


def read_store(schema: str) -> Store:
    """Every chain of the schema, read with psycopg2 (not our code)."""
    conn = pg_connect()
    heads: dict[str, int] = {}
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_name LIKE 'audit\\_entries\\_%%'",
                (schema,),
            )
            tables = [r[0] for r in cur.fetchall()]
            rows: list[tuple[str, Row]] = []
            for table in tables:
                chain = table.removeprefix("audit_entries_")
                cur.execute(f'SELECT max(sequence) FROM "{schema}"."{table}"')
                heads[chain] = cur.fetchone()[0] or 0
                cur.execute(
                    f'SELECT sequence, event_type, actor, correlation_id, details FROM "{schema}"."{table}" '
                    "WHERE actor IN ('executor', 'cluster') AND sequence <= %s ORDER BY sequence",
                    (heads[chain],),
                )
                rows += [(actor, Row(chain, seq, kind, corr, json.loads(d))) for seq, kind, actor, corr, d in cur.fetchall()]
    finally:
        conn.close()
    changes: dict[str, list[Row]] = {}
    for actor, row in rows:
        if actor == "cluster" and row.details.get("what") in ("vault activated", "vault passivated"):
            changes.setdefault(row.chain, []).append(row)
    return Store(Trades([r for actor, r in rows if actor == "executor"]), changes, heads)


def ask(engine: EngineProcess, cmd: str, args: dict[str, Any] | None = None) -> Any:
    """One debug-socket request (as ``ctl --json`` sends it); None while the node cannot answer."""
    try:
        return request(engine.socket, cmd, args, timeout=10.0)
    except (CtlError, OSError):
        return None


#: Every rig made in this process and not yet closed by the chaos conftest.
OPEN: list[Rig] = []


class Rig:
    """The localnet process, the nodes' one config file, and the nodes of one test by id.

    Args:
        tmp: the test's directory (each node's data directory and log are in it).
        nats_url: the test's nats-server.
        schema: the PostgreSQL schema private to the test.
        seed: the localnet's genesis seed.
        vaults: how many vaults the nodes share.
        http: serve each node's HTTP API (``/metrics``: the signer's counts) on a free port.
        kill_switch: lines added to ``[kill_switch]``.
    """

    def __init__(
        self, tmp: Path, nats_url: str, schema: str, *, seed: str, vaults: int, http: bool = False, kill_switch: str = ""
    ) -> None:
        self.tmp, self.schema = tmp, schema
        self.vaults = tuple(f"vault-{i:04d}" for i in range(vaults))
        localnet = LOCALNET.format(seed=seed, vaults=vaults)
        (tmp / "localnet.toml").write_text(localnet + QUANT)
        self.localnet = LocalnetProcess(tmp / "localnet.toml", tmp / "localnet.log")
        node = (
            ENGINE_AGAINST_LOCALNET.format(**self.localnet.urls, api="swap")
            .replace("count = 2", f"count = {vaults}")
            .replace("[strategy]\n", "[strategy]\npoll_interval_s = 0.5\nretry_interval_s = 0.5\n")
            .replace("[kill_switch]\n", "[kill_switch]\n" + kill_switch)
        )
        if http:
            node = node.replace("[http]\nenabled = false\n", "[http]\nport = 0\n")
        self.config = tmp / "node.toml"
        self.config.write_text(node + AUDIT.format(schema=schema) + localnet + "enabled = false\n" + CLUSTER.format(nats=nats_url))
        self.nodes: dict[str, EngineProcess] = {}
        self._runs: dict[str, int] = {}
        OPEN.append(self)  # closed after the test even if it failed before its own close (conftest)

    @property
    def rpc(self) -> str:
        return self.localnet.urls["rpc"]

    def start(self, *ids: str) -> list[EngineProcess]:
        """Start (or restart: a new process, same node id and data directory) each node; they
        start together and are waited for together, until each answers on its debug socket."""
        started = []
        for node_id in ids:
            (self.tmp / node_id).mkdir(exist_ok=True)
            run = self._runs[node_id] = self._runs.get(node_id, 0) + 1
            log = self.tmp / (f"{node_id}.log" if run == 1 else f"{node_id}-{run}.log")
            self.nodes[node_id] = EngineProcess(self.config, self.tmp / node_id, log, node_id=node_id)
            started.append(self.nodes[node_id])
        for engine in started:
            poll(engine.status, 120, f"node {engine.data_dir.name} answering", engine=engine)
        return started

    def store(self) -> Store:
        return read_store(self.schema)

    def placed(self, ids: tuple[str, ...]) -> Store | None:
        """The store once every vault runs on one of ``ids``, each of them running some (by the
        audit's activations: for nodes that were never SIGKILLed), else None."""
        store = self.store()
        held = [store.held(n) for n in ids]
        if all(held) and sorted(v for h in held for v in h) == sorted(self.vaults):
            return store
        return None

    def leases_spread(self, ids: tuple[str, ...]) -> bool:
        """Every node of ``ids`` alive and holding its placement share of the leases, as
        ``ctl cluster`` shows it (its member records)."""
        view = ask(self.nodes[ids[0]], "cluster")
        if view is None or view.get("error"):
            return False
        shares = {n: len(v) for n, v in assign(self.vaults, ids).items()}
        nodes = {n["node_id"]: n for n in view["nodes"]}
        return all(n in nodes and nodes[n]["alive"] == "alive" and nodes[n]["owned_vaults"] == shares[n] for n in ids)

    def quiesce(self, ids: tuple[str, ...], timeout: float = 90.0) -> None:
        """A graceful cluster halt from the first node, complete on each; then every intent's
        outcome; then each node stopped (exit 0)."""
        head = self.nodes[ids[0]]
        halt = head.ctl("halt", "--graceful", "--reason", "test: quiesce")
        assert halt.returncode == 0, halt.stdout + halt.stderr
        for n in ids:
            engine = self.nodes[n]
            poll(lambda e=engine: (st := e.status()) and st["kill_switch"]["complete"], 30, f"halt complete on {n}", engine=engine)
        poll(lambda: not self.store().trades.open(), timeout, "every intent to have its outcome")

    def stop(self, ids: tuple[str, ...]) -> None:
        for n in ids:
            assert self.nodes[n].stop() == 0, self.nodes[n].log_tail()

    def kill_nodes(self) -> bool:
        """Kill every node left; whether the localnet outlived them (it must)."""
        alive = self.localnet.proc.poll() is None
        for engine in self.nodes.values():
            engine.kill()
        return alive

    def close(self) -> None:
        """Kill every node left, then stop the localnet."""
        self.kill_nodes()
        self.localnet.stop()


def _stopped(pid: int) -> bool:
    """Every thread of process ``pid`` stopped (state ``T`` in ``/proc``)."""
    try:
        states = [(t / "stat").read_text().rpartition(")")[2].split()[0] for t in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:
        return False
    return bool(states) and all(s in ("T", "t") for s in states)


def pause(engine: EngineProcess) -> float:
    """SIGSTOP ``engine`` and wait until every thread of it is stopped; the wall time then (all
    it signs with a later ``signed_at`` it signed after it was resumed)."""
    engine.proc.send_signal(signal.SIGSTOP)
    poll(lambda: _stopped(engine.proc.pid), 10, f"node {engine.data_dir.name} stopped")
    return time.time()


def signatures_made(engine: EngineProcess) -> int:
    """The node's signer count: ``xorj_hsm_operations_total{result="ok"}`` (every backend) read
    from its ``/metrics`` (``[http]`` on: ``Rig(http=True)``)."""
    status = engine.status()
    assert status is not None, engine.log_tail()
    with urllib.request.urlopen(status["endpoints"]["metrics"], timeout=10) as resp:
        body = resp.read().decode()
    return int(sum(
        s.value for family in text_string_to_metric_families(body) if family.name == "xorj_hsm_operations"
        for s in family.samples if s.name == "xorj_hsm_operations_total" and s.labels["result"] == "ok"
    ))


def recover_cluster(engine: EngineProcess, nonce: str) -> dict[str, Any]:
    """An operator's K-of-M recovery of the open cluster halt, given on ``engine``."""
    status = engine.status()
    assert status is not None, engine.log_tail()
    cluster_epoch, ts = status["cluster"]["halt"]["epoch"], int(time.time())
    return request(engine.socket, "recover", {
        "epoch": status["kill_switch"]["epoch"], "cluster_epoch": cluster_epoch, "nonce": nonce, "timestamp": ts,
        "operator": "test",
        "authorisations": [{"key_id": k, "hmac": h} for k, h in authorise_cluster(cluster_epoch, nonce=nonce, ts=ts)],
    }, timeout=10.0)


def outcome_problems(trades: Trades, settled: set[str] | None = None) -> dict[str, Any]:
    """Intents with more than one TRADE_CONFIRMATION in the whole store, and those of ``settled``
    (default: every intent) with none: trade -> its vault, its intent's (chain, sequence), each
    outcome's (chain, sequence, status, error class) and each signed attempt's (number, lease
    revision, signature)."""
    problems: dict[str, Any] = {}
    for r in trades.intents():
        trade_id = str(r.correlation_id)
        outcomes = trades.of(trade_id, "TRADE_CONFIRMATION")
        if len(outcomes) > 1 or (not outcomes and (settled is None or trade_id in settled)):
            problems[trade_id] = {
                "vault": r.details["vault_id"], "intent": (r.chain, r.sequence),
                "outcomes": [(o.chain, o.sequence, o.details["status"], o.details.get("error_class")) for o in outcomes],
                "signed": [(s["attempt"], s["lease_revision"], s["signature"]) for s in trades.signed(trade_id)],
            }
    return problems


def assert_audit_intact(config: Path, data_dir: Path, chains: tuple[str, ...]) -> None:
    """``xorj-actors audit verify`` passes for exactly ``chains``."""
    verify = subprocess.run(
        cli("audit", "verify", "--config", str(config), "--data-dir", str(data_dir)), capture_output=True, text=True, timeout=120
    )
    # 3: every chain's hashes and HMACs intact; nothing is anchored in this config.
    assert verify.returncode == 3, verify.stdout + verify.stderr
    assert [line.split(":")[:2] for line in verify.stdout.splitlines()] == [
        [f"chain {n}", " UNANCHORED"] for n in sorted(chains)
    ], verify.stdout


def assert_invariants(
    rig: Rig, trades: Trades, chains: tuple[str, ...], context: str, settled: set[str] | None = None
) -> None:
    """No trade landed twice (the chain), the audit chains intact, then no intent with two
    outcomes in the whole store and every intent of ``settled`` (default: all) with exactly one
    (last: so that a double outcome shows once every other check has passed)."""
    assert_no_trade_landed_twice(trades, rig.rpc)
    assert_audit_intact(rig.config, rig.tmp / chains[0], chains)
    problems = outcome_problems(trades, settled)
    listed = "\n".join(f"  {trade}: {json.dumps(p)}" for trade, p in problems.items())
    assert not problems, f"{context}: {len(problems)} intent(s) without exactly one outcome:\n{listed}"
