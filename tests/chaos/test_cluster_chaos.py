"""Seeded chaos rounds for the cluster (issue 14, "Tests" -> "Chaos"): three nodes trade six
vaults while each round kills (SIGKILL), pauses (SIGSTOP, then SIGCONT) or restarts (SIGTERM,
then a new process) one of them, sometimes with a cluster halt opened on another node during
the outage; then the invariants are checked, after EACH round.

Real processes throughout (tests/chaos/cluster_rig.py): the localnet, a test-started
``nats-server``, three engine nodes (``xorj-actors run --node-id``), ONE PostgreSQL audit store in
a schema private to the test. After each round, once the victim is back and every node holds its
placement share of the leases (``ctl cluster``), read back row by row and from the chain:

- a halt opened in the round is complete on every node (every node's kill switch complete, the
  cluster's ``ctl status`` complete: every node acked), then lifted by one authorised recovery;
- no trade lost: every intent recorded so far gets an outcome, and none has two (whole store);
- none done twice: at most one signed attempt of each trade is known to the chain;
- ``xorj-actors audit verify`` passes for the three chains;
- trades flowed: the round recorded new intents.

The seed is printed; rerun a failure with XORJ_CLUSTER_CHAOS_SEED=<seed>.
XORJ_CLUSTER_CHAOS_ROUNDS sets the rounds (default 2, which fits ``make test``); the slow form runs
XORJ_CLUSTER_CHAOS_SLOW_ROUNDS (default 20). Multi-process timing is not replayed by a seed: it
replays the plan (victims, faults, durations, halts), not the interleaving.
"""

from __future__ import annotations

import enum
import os
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.chaos.cluster_rig import Rig, Store, ask, assert_invariants, pause, recover_cluster
from tests.chaos.crash_helpers import poll
from tests.plugins.nats_server import NatsServer

pytestmark = pytest.mark.nats

NODES = ("a", "b", "c")
VAULTS = 6
#: A round's settling: an adopted trade's blockhash expires within 500 slots of 20 ms.
SETTLE_S = 90.0


class Fault(enum.Enum):
    KILL = "kill"  # SIGKILL, then a new process once the others see it dead
    PAUSE = "pause"  # SIGSTOP, then SIGCONT
    RESTART = "restart"  # SIGTERM (exit 0), then a new process


class HaltKind(enum.Enum):
    SIGUSR2 = "SIGUSR2"  # emergency
    GRACEFUL = "ctl halt --graceful"


@dataclass(frozen=True)
class Plan:
    """One round, drawn from the seed."""

    fault: Fault
    victim: str
    #: Trades flow this long before the fault.
    lead_s: float
    #: Wait (at most 10 s) until the victim carries a trade before the fault.
    mid_trade: bool
    #: How long the victim stays stopped or down: some pauses end inside the lease's fence
    #: deadline, some past the TTL (under nats_lost_halt_s, which would halt the node itself).
    out_s: float
    #: A cluster halt opened on another node while the victim is out, or None.
    halt: HaltKind | None
    halt_node: str

    @classmethod
    def draw(cls, rng: random.Random) -> Plan:
        fault = rng.choice(list(Fault))
        victim = rng.choice(NODES)
        return cls(
            fault=fault, victim=victim, lead_s=round(rng.uniform(0.5, 3.0), 2), mid_trade=rng.random() < 0.5,
            out_s=round(rng.uniform(0.3, 4.5) if fault is Fault.PAUSE else rng.uniform(0.0, 4.0), 2),
            halt=rng.choice(list(HaltKind)) if rng.random() < 0.35 else None,
            halt_node=rng.choice([n for n in NODES if n != victim]),
        )


def _halt(rig: Rig, plan: Plan) -> None:
    node = rig.nodes[plan.halt_node]
    if plan.halt is HaltKind.SIGUSR2:
        node.proc.send_signal(signal.SIGUSR2)
    else:
        out = node.ctl("halt", "--graceful", "--reason", "chaos round halt")
        assert out.returncode == 0, out.stdout + out.stderr


def _seen_dead(rig: Rig, plan: Plan) -> bool:
    """The victim's record is dead to another node, or gone (a graceful stop deletes it): a new
    process of the same id is refused while its previous incarnation's heartbeat is fresh."""
    view = ask(rig.nodes[plan.halt_node], "cluster")
    return view is not None and not view.get("error") and all(
        n["alive"] == "dead" for n in view["nodes"] if n["node_id"] == plan.victim
    )


def _inject(rig: Rig, plan: Plan) -> None:
    """The fault, the halt if any, and the victim back."""
    victim = rig.nodes[plan.victim]
    if plan.fault is Fault.KILL:
        victim.kill()
    elif plan.fault is Fault.PAUSE:
        pause(victim)
    else:
        assert victim.stop() == 0, victim.log_tail()
    if plan.halt is not None:
        _halt(rig, plan)
    time.sleep(plan.out_s)
    if plan.fault is Fault.PAUSE:
        victim.proc.send_signal(signal.SIGCONT)
    else:
        poll(lambda: _seen_dead(rig, plan), 30, f"node {plan.victim} seen dead")
        rig.start(plan.victim)


def _halted(rig: Rig) -> bool:
    status = rig.nodes[NODES[0]].status()
    assert status is not None
    return status["cluster"]["halt"]["state"] == "halted"


def _acknowledged(rig: Rig) -> bool:
    """Every node's local halt complete, and the cluster's report complete (every node acked)."""
    statuses = [rig.nodes[n].status() for n in NODES]
    return all(s is not None and s["kill_switch"]["state"] == "TRIGGERED" and s["kill_switch"]["complete"] for s in statuses) \
        and all(s["cluster"]["complete"] is True and s["cluster"]["not_answering"] == [] for s in statuses)  # type: ignore[index]


def _armed(rig: Rig) -> bool:
    return all((s := rig.nodes[n].status()) is not None and s["kill_switch"]["state"] == "ARMED"
               and s["kill_switch"]["factor"] == 1.0 for n in NODES)


def _round(rig: Rig, rng: random.Random, rnd: int, seed: int) -> None:
    plan = Plan.draw(rng)
    where = f"round {rnd} (seed {seed}): {plan}"
    print(where)
    start = rig.store()
    time.sleep(plan.lead_s)
    if plan.mid_trade:
        deadline = time.monotonic() + 10
        while not rig.store().in_flight(plan.victim) and time.monotonic() < deadline:
            time.sleep(0.02)
    _inject(rig, plan)
    for n in NODES:
        poll(rig.nodes[n].status, 60, f"{where}: node {n} answering", engine=rig.nodes[n])

    # A halt in the round (planned, or the engine's own) is acknowledged everywhere, then lifted.
    if plan.halt is not None or _halted(rig):
        poll(lambda: _acknowledged(rig), 60, f"{where}: the halt acknowledged by every node")
        outcome = recover_cluster(rig.nodes[plan.halt_node], f"chaos-{seed}-{rnd}")
        assert outcome["accepted"] is True, (where, outcome)
    poll(lambda: _armed(rig), 60, f"{where}: every node armed at full size")
    poll(lambda: rig.leases_spread(NODES), 60, f"{where}: the leases spread over the three nodes again")

    # Every intent so far settles with exactly one outcome; nothing landed twice; chains intact.
    cutoff = {str(r.correlation_id) for r in rig.store().trades.intents()}

    def settled() -> Store | None:
        store = rig.store()
        return store if all(store.trades.of(t, "TRADE_CONFIRMATION") for t in cutoff) else None

    store = poll(settled, SETTLE_S, f"{where}: every intent recorded so far settled")
    # Trades flow again (under load the round itself may have been too short to record one).
    before = len(start.trades.intents())
    poll(lambda: len(rig.store().trades.intents()) > before, 60, f"{where}: a trade recorded since the round began")
    assert_invariants(rig, store.trades, NODES, where, settled=cutoff)


def run_rounds(rounds: int, tmp_path: Path, nats_url: str, schema: str) -> None:
    seed = int(os.environ.get("XORJ_CLUSTER_CHAOS_SEED", str(random.randrange(2**32))))
    print(f"\ncluster chaos seed {seed} ({rounds} rounds): rerun with XORJ_CLUSTER_CHAOS_SEED={seed}")
    rng = random.Random(seed)
    rig = Rig(tmp_path, nats_url, schema, seed=f"xorj-cluster-chaos-{seed}", vaults=VAULTS,
              kill_switch="restart_step_s = 0.3\n")
    try:
        rig.start(*NODES)
        poll(lambda: rig.leases_spread(NODES), 90, "the leases spread over the three nodes")
        for rnd in range(rounds):
            _round(rig, rng, rnd, seed)
        rig.quiesce(NODES, timeout=SETTLE_S)
        rig.stop(NODES)
    finally:
        localnet_alive = rig.kill_nodes()
    try:
        assert localnet_alive
        final = rig.store().trades
        assert any(final.signed(t) for t in final.by_trade), "no trade was ever signed"
        assert_invariants(rig, final, NODES, f"after {rounds} rounds (seed {seed})")
    finally:
        rig.close()


def test_cluster_chaos_rounds(tmp_path: Path, nats_server: NatsServer, pg_schema: str, audit_key: bytes) -> None:
    run_rounds(int(os.environ.get("XORJ_CLUSTER_CHAOS_ROUNDS", "2")), tmp_path, nats_server.url, pg_schema)


@pytest.mark.slow
def test_cluster_chaos_many_rounds(tmp_path: Path, nats_server: NatsServer, pg_schema: str, audit_key: bytes) -> None:
    run_rounds(int(os.environ.get("XORJ_CLUSTER_CHAOS_SLOW_ROUNDS", "20")), tmp_path, nats_server.url, pg_schema)
