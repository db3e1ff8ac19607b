"""Fencing with whole engines (issue 14, "Tests" -> "Fencing"): a node SIGSTOPped past its lease
while it trades, whose vaults another node takes meanwhile, signs nothing for them once SIGCONT
resumes it, notices that it lost them and gives them up.

Real processes throughout (tests/chaos/cluster_rig.py): the localnet, a test-started
``nats-server``, two engine nodes (``xorj-actors run --node-id``) sharing ONE PostgreSQL audit
store in a schema private to the test, each serving ``/metrics`` (the signer's counts). Node
``victim`` is stopped while it carries a trade of a vault it runs; once node ``survivor`` has
activated each of those vaults (its ``vault activated`` entries, with the lease revision it took
them at) and signs for one of them, the victim is resumed. Then, read back row by row, from the
chain over JSON-RPC and from the victim's ``/metrics``:

- the victim's signer made exactly as many signatures as the victim's chain has signed attempts
  (its count covers the run: nothing was signed that the audit log does not show);
- every signature the victim made after the pause (the signer's ``signed_at`` after the moment
  every thread of it was stopped) for one of those vaults is under a lease taken after the
  survivor's: none under the lease it held when it was stopped;
- after the resume the victim records ``vault passivated`` (``lease expired`` or ``lease lost``)
  for each of those vaults before it activates any of them again;
- no trade landed twice, ``xorj-actors audit verify`` passes for both chains, and every intent
  has exactly one outcome in the whole store.
"""

from __future__ import annotations

import signal
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.chaos.cluster_rig import LEASE_TTL_S, Rig, Store, assert_invariants, pause, signatures_made
from tests.chaos.crash_helpers import Row, poll
from tests.plugins.nats_server import NatsServer

pytestmark = pytest.mark.nats

NODES = ("a", "b")
VAULTS = 6
#: Stops that caught no trade in flight (it settled meanwhile) are undone at once and tried again.
PAUSE_TRIES = 20


def _wall(stamp: str) -> float:
    """An audit time (``YYYY-MM-DDTHH:MM:SS.ffffffZ``, UTC) as a POSIX time."""
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def _signed(store: Store, chain: str) -> list[Row]:
    """``chain``'s signed attempts (``TRADE_EXECUTION`` of phase ``signed``), in chain order."""
    return [r for r in store.trades.rows if r.chain == chain and r.event_type == "TRADE_EXECUTION" and r.details.get("phase") == "signed"]


def _vault(store: Store, row: Row) -> str:
    """The vault of ``row``'s trade (its intent may be in another chain: an adopted trade)."""
    return str(store.trades.of(str(row.correlation_id), "TRADE_INTENT")[0].details["vault_id"])


def _pause_mid_trade(rig: Rig) -> tuple[str, float, Store]:
    """SIGSTOP a node while it carries a trade of a vault it runs: (node, when it was stopped,
    the store then)."""
    for _ in range(PAUSE_TRIES):
        victim = poll(lambda: next((n for s in [rig.store()] for n in NODES if s.in_flight(n)), None), 60,
                      "a node with a trade in flight", every=0.02)
        stopped_at = pause(rig.nodes[victim])
        time.sleep(0.5)  # whatever it committed before the stop is readable
        store = rig.store()
        if store.in_flight(victim):
            return victim, stopped_at, store
        rig.nodes[victim].proc.send_signal(signal.SIGCONT)  # settled meanwhile: a short stop, harmless
    pytest.fail(f"no stop in {PAUSE_TRIES} caught a trade in flight")


def test_a_node_paused_past_its_lease_signs_nothing_for_the_vaults_taken_meanwhile_and_gives_them_up(
    tmp_path: Path, nats_server: NatsServer, pg_schema: str, audit_key: bytes
) -> None:
    rig = Rig(tmp_path, nats_server.url, pg_schema, seed="xorj-fencing", vaults=VAULTS, http=True)
    try:
        nodes = dict(zip(NODES, rig.start(*NODES)))
        poll(lambda: rig.placed(NODES), 90, "the vaults placed on both nodes", engine=nodes["a"])
        poll(lambda: {r.chain for n in NODES for r in _signed(rig.store(), n)} == set(NODES), 90, "both nodes signing")

        victim, stopped_at, at_stop = _pause_mid_trade(rig)
        (survivor,) = (n for n in NODES if n != victim)
        held, carried = at_stop.held(victim), at_stop.in_flight(victim)
        print(f"\nnode {victim} stopped holding {sorted(held)}, carrying {carried}")

        # The survivor takes every vault the victim ran once its leases expire, and signs for one.
        def taken() -> dict[str, Row] | None:
            found = {v: r for v, r in rig.store().changes_after(survivor, at_stop.heads[survivor], "vault activated").items() if v in held}
            return found if set(found) == held else None

        takeover = poll(taken, LEASE_TTL_S + 30, f"node {survivor} activating {sorted(held)}", engine=nodes[survivor])
        new_lease = {v: int(r.details["lease_revision"]) for v, r in takeover.items()}

        def survivor_signs() -> bool:
            store = rig.store()
            return any(_vault(store, r) in held and r.sequence > takeover[_vault(store, r)].sequence for r in _signed(store, survivor))

        poll(survivor_signs, 60, f"node {survivor} signing for a vault taken from {victim}", engine=nodes[survivor])
        assert rig.store().heads[victim] == at_stop.heads[victim], "the stopped node wrote to its chain"
        assert nodes[victim].alive

        resumed_at = time.time()
        nodes[victim].proc.send_signal(signal.SIGCONT)

        # It notices: each lost vault passivated, before any of them is activated on it again.
        def given_up() -> dict[str, Row] | None:
            found = {v: r for v, r in rig.store().changes_after(victim, at_stop.heads[victim], "vault passivated").items() if v in held}
            return found if set(found) == held else None

        passivated = poll(given_up, 30, f"node {victim} passivating {sorted(held)}", engine=nodes[victim])
        assert {v: r.details["reason"] for v, r in passivated.items() if r.details["reason"] not in ("lease expired", "lease lost")} == {}
        # It trades again (its placement share comes back to it once the survivor sees it alive).
        poll(lambda: [r for r in _signed(rig.store(), victim) if _wall(r.details["signed_at"]) > resumed_at], 60,
             f"node {victim} signing again after the resume", engine=nodes[victim])

        rig.quiesce(NODES)
        made = signatures_made(nodes[victim])  # halted: its signer signs nothing more
        rig.stop(NODES)
    finally:
        localnet_alive = rig.kill_nodes()

    try:
        assert localnet_alive
        final = rig.store()
        signed = _signed(final, victim)
        assert made == len(signed), f"node {victim}'s signer made {made} signatures, its chain shows {len(signed)}"
        activations = final.changes_after(victim, at_stop.heads[victim], "vault activated")
        for v in held:
            again = activations.get(v)
            assert again is None or again.sequence > passivated[v].sequence, (v, again, passivated[v])
        after = [r for r in signed if _wall(r.details["signed_at"]) > stopped_at]
        for r in after:
            vault, revision = _vault(final, r), int(r.details["lease_revision"])
            if vault in held:  # the survivor created its lease once the victim's had expired
                assert revision > new_lease[vault], f"{r.correlation_id}: {vault} signed under the lease of before the pause ({revision} <= {new_lease[vault]})"
                assert vault in activations and revision >= int(activations[vault].details["lease_revision"]), (r, activations.get(vault))
        fenced = [r.correlation_id for r in final.trades.rows if r.chain == victim and r.details.get("phase") == "fenced"]
        print(f"node {victim}: {made} signatures, {len(after)} after the pause (all under new leases); fenced: {fenced}; "
              f"leases taken by {survivor} at {new_lease}")
        assert_invariants(rig, final.trades, NODES, f"after node {victim}'s pause")
    finally:
        rig.close()
