"""Fencing with whole engines (issue 14, "Tests" -> "Fencing"): a node SIGSTOPped past its lease
while it trades, whose vaults another node takes meanwhile, signs nothing for them once SIGCONT
resumes it, notices that it lost them and gives them up.

Real processes throughout (tests/chaos/cluster_rig.py): the localnet, a test-started
``nats-server``, two engine nodes (``xorj-actors run --node-id``) sharing ONE PostgreSQL audit
store in a schema private to the test, each serving ``/metrics`` (the signer's counts). In each of
:data:`PAUSES` cycles, the node (the victim) that carries a trade of a vault it runs, not signed
yet (on resume, the next step it reaches is the fence before the signature), is stopped; once the
other node (the survivor) has activated each of its vaults (``vault activated``, with the lease
revision it took them at), the victim is resumed. Then, read back row by row, from the chain over
JSON-RPC and from each node's ``/metrics``:

- each node's signer made exactly as many signatures as its chain has signed attempts (its count
  covers the run: nothing was signed that the audit log does not show);
- every signature the victim made after its stop (the signer's ``signed_at`` after the moment
  every thread of it was stopped, up to its next stop) for one of those vaults is under a lease
  taken after the survivor's: none under the lease it held when it was stopped; nor is any trade
  of those vaults it recorded after the resume (the intent carries its lease revision too);
- after the resume the victim records ``vault passivated`` (``lease expired`` or ``lease lost``)
  for each of those vaults before it activates any of them again;
- no trade landed twice, ``xorj-actors audit verify`` passes for both chains, and every intent
  has exactly one outcome in the whole store.
"""

from __future__ import annotations

import signal
from collections import Counter
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.chaos.cluster_rig import LEASE_TTL_S, Rig, Store, assert_invariants, pause, signatures_made
from tests.chaos.crash_helpers import Row, poll
from tests.plugins.nats_server import NatsServer

pytestmark = pytest.mark.nats

NODES = ("a", "b")
VAULTS = 6
#: Stop-and-resume cycles: the resumed node takes its share back within a second or so, so a
#: signature under its old lease (a fence that failed) can only show in that window; several
#: cycles give it several chances.
PAUSES = 3
#: Stops that caught no trade in flight (it settled meanwhile) are undone at once and tried again.
PAUSE_TRIES = 20


def _wall(stamp: str) -> float:
    """An audit time (``YYYY-MM-DDTHH:MM:SS.ffffffZ``, UTC) as a POSIX time."""
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def _signed(store: Store, chain: str) -> list[Row]:
    """``chain``'s signed attempts (``TRADE_EXECUTION`` of phase ``signed``), in chain order."""
    return [r for r in store.trades.rows if r.chain == chain and r.event_type == "TRADE_EXECUTION" and r.details.get("phase") == "signed"]


def _activity(store: Store) -> str:
    """Per node: the vaults it runs, its intents, signatures and outcomes by status (the report
    of a wait that timed out, to tell a node that never traded from one whose trades all failed)."""
    lines = []
    for n in NODES:
        intents = [r for r in store.trades.intents() if r.chain == n]
        outcomes = Counter(
            str(o.details.get("status")) + (f" ({o.details['error_class']})" if o.details.get("error_class") else "")
            for r in intents for o in store.trades.of(str(r.correlation_id), "TRADE_CONFIRMATION"))
        lines.append(f"node {n}: runs {sorted(store.held(n))}, {len(intents)} intent(s), "
                     f"{len(_signed(store, n))} signed, outcomes {dict(outcomes)}")
    return "\n".join(lines)


def _vault(store: Store, row: Row) -> str:
    """The vault of ``row``'s trade (its intent may be in another chain: an adopted trade)."""
    return str(store.trades.of(str(row.correlation_id), "TRADE_INTENT")[0].details["vault_id"])


def _about_to_sign(store: Store, node: str) -> list[str]:
    """``node``'s trades in flight with nothing signed yet: on resume, the next step they reach
    is the fence before the signature."""
    return [t for t in store.in_flight(node) if not store.trades.signed(t)]


def _pause_mid_trade(rig: Rig) -> tuple[str, float, Store]:
    """SIGSTOP a node while it carries a trade of a vault it runs, not signed yet: (node, when it
    was stopped, the store then)."""
    for _ in range(PAUSE_TRIES):
        victim = poll(lambda: next((n for s in [rig.store()] for n in NODES if _about_to_sign(s, n)), None), 60,
                      "a node with a trade in flight", every=0.02)
        stopped_at = pause(rig.nodes[victim])
        time.sleep(0.5)  # whatever it committed before the stop is readable
        store = rig.store()
        if _about_to_sign(store, victim):
            return victim, stopped_at, store
        rig.nodes[victim].proc.send_signal(signal.SIGCONT)  # signed or settled meanwhile: a short stop, harmless
    pytest.fail(f"no stop in {PAUSE_TRIES} caught a trade in flight")


@dataclass
class Cycle:
    """One stop of one node, and what the store showed around it."""

    victim: str
    survivor: str
    #: When every thread of it was stopped (wall time, the signer's clock).
    stopped_at: float
    #: The store once it was stopped (its heads mark what came after).
    at_stop: Store
    #: The vaults it ran then.
    held: set[str]
    #: vault -> the lease revision the survivor activated it at.
    new_lease: dict[str, int]
    #: vault -> its ``vault passivated`` entry in the victim's chain after the resume.
    passivated: dict[str, Row]


def _pause_cycle(rig: Rig) -> Cycle:
    """Stop a node with a trade about to be signed, let the other take its vaults, resume it, and
    wait until it has given them up and signs again (its share back)."""
    victim, stopped_at, at_stop = _pause_mid_trade(rig)
    (survivor,) = (n for n in NODES if n != victim)
    held = at_stop.held(victim)
    print(f"node {victim} stopped holding {sorted(held)}, carrying {at_stop.in_flight(victim)}")

    # The survivor takes every vault the victim ran once its leases expire. The victim is resumed
    # at once: its carried trades then meet the fence before the survivor's own trades have
    # moved the vaults' funds (which would fail them at the simulation first).
    def taken() -> dict[str, Row] | None:
        found = {v: r for v, r in rig.store().changes_after(survivor, at_stop.heads[survivor], "vault activated").items() if v in held}
        return found if set(found) == held else None

    takeover = poll(taken, LEASE_TTL_S + 30, f"node {survivor} activating {sorted(held)}", engine=rig.nodes[survivor], every=0.05)
    assert rig.store().heads[victim] == at_stop.heads[victim], "the stopped node wrote to its chain"
    assert rig.nodes[victim].alive
    resumed_at = time.time()
    rig.nodes[victim].proc.send_signal(signal.SIGCONT)

    # It notices: each lost vault passivated (the order against re-activations is checked later).
    def given_up() -> dict[str, Row] | None:
        found = {v: r for v, r in rig.store().changes_after(victim, at_stop.heads[victim], "vault passivated").items() if v in held}
        return found if set(found) == held else None

    passivated = poll(given_up, 30, f"node {victim} passivating {sorted(held)}", engine=rig.nodes[victim])
    # It trades again: its placement share comes back to it once the survivor sees it alive.
    poll(lambda: [r for r in _signed(rig.store(), victim) if _wall(r.details["signed_at"]) > resumed_at], 60,
         f"node {victim} signing again after the resume", engine=rig.nodes[victim])
    poll(lambda: rig.placed(NODES), 30, "the vaults placed on both nodes again")
    return Cycle(victim, survivor, stopped_at, at_stop, held,
                 {v: int(r.details["lease_revision"]) for v, r in takeover.items()}, passivated)


def _check_cycle(final: Store, cycle: Cycle, until: tuple[float, int]) -> tuple[int, int]:
    """The victim's chain after ``cycle``'s stop (up to its next stop: ``until`` = its wall time and the
    victim's head then): nothing signed or recorded for the vaults taken from it under the lease
    it held when stopped, and each passivated before it was activated again. (Signatures after
    the stop, new intents) for the report."""
    victim, held, new_lease, mark = cycle.victim, cycle.held, cycle.new_lease, cycle.at_stop.heads[cycle.victim]
    assert {v: r.details["reason"] for v, r in cycle.passivated.items() if r.details["reason"] not in ("lease expired", "lease lost")} == {}
    activations = final.changes_after(victim, mark, "vault activated")
    for v in held:
        again = activations.get(v)
        assert again is None or again.sequence > cycle.passivated[v].sequence, (v, again, cycle.passivated[v])
    after = [r for r in _signed(final, victim) if cycle.stopped_at < _wall(r.details["signed_at"]) < until[0]]
    for r in after:
        vault, revision = _vault(final, r), int(r.details["lease_revision"])
        if vault in held:  # the survivor created its lease once the victim's had expired
            assert revision > new_lease[vault], f"{r.correlation_id}: {vault} signed under the lease of before the pause ({revision} <= {new_lease[vault]})"
            assert vault in activations and revision >= int(activations[vault].details["lease_revision"]), (r, activations.get(vault))
    # Nor did it record a new trade of those vaults under the old lease (the fence before the intent).
    intents = [r for r in final.trades.intents() if r.chain == victim and mark < r.sequence <= until[1]]
    stale = [(r.correlation_id, r.details["lease_revision"]) for r in intents
             if r.details["vault_id"] in held and int(r.details["lease_revision"]) <= new_lease[r.details["vault_id"]]]
    assert stale == [], f"node {victim} recorded intents under the lease of before the pause: {stale}"
    return len(after), len(intents)


def test_a_node_paused_past_its_lease_signs_nothing_for_the_vaults_taken_meanwhile_and_gives_them_up(
    tmp_path: Path, nats_server: NatsServer, pg_schema: str, audit_key: bytes
) -> None:
    rig = Rig(tmp_path, nats_server.url, pg_schema, seed="xorj-fencing", vaults=VAULTS, http=True)
    try:
        nodes = dict(zip(NODES, rig.start(*NODES)))
        poll(lambda: rig.placed(NODES), 90, "the vaults placed on both nodes", engine=nodes["a"])
        try:
            poll(lambda: {r.chain for n in NODES for r in _signed(rig.store(), n)} == set(NODES), 180, "both nodes signing")
        except pytest.fail.Exception as timed_out:
            # Why nothing signs (a halt, NATS judged lost...): those lines of the whole logs.
            logs = "\n".join(f"-- node {n}:\n" + "\n".join(
                line[:400] for line in e.log_text().splitlines()
                if any(k in line for k in ("TRIGGERED", "NATS", "halt", "CRITICAL", "ERROR")))[-6000:]
                for n, e in nodes.items())
            pytest.fail(f"{timed_out}\n{_activity(rig.store())}\n{logs}")
        print()
        print(_activity(rig.store()))
        cycles = [_pause_cycle(rig) for _ in range(PAUSES)]
        rig.quiesce(NODES)
        made = {n: signatures_made(nodes[n]) for n in NODES}  # halted: the signers sign nothing more
        rig.stop(NODES)
    finally:
        localnet_alive = rig.kill_nodes()

    try:
        assert localnet_alive
        final = rig.store()
        for n in NODES:
            assert made[n] == len(_signed(final, n)), f"node {n}'s signer made {made[n]} signatures, its chain shows {len(_signed(final, n))}"
        for i, cycle in enumerate(cycles):
            later = [c for c in cycles[i + 1:] if c.victim == cycle.victim]
            until = (later[0].stopped_at, later[0].at_stop.heads[cycle.victim]) if later else (float("inf"), final.heads[cycle.victim])
            signed_after, intents = _check_cycle(final, cycle, until)
            print(f"pause {i}: node {cycle.victim} held {sorted(cycle.held)}, taken by {cycle.survivor} at {cycle.new_lease}; "
                  f"afterwards {signed_after} signature(s), {intents} intent(s), all under new leases")
        print(f"signatures by node: {made}; fenced before a send: "
              f"{[r.correlation_id for r in final.trades.rows if r.details.get('phase') == 'fenced']}")
        print(_activity(final))
        assert_invariants(rig, final.trades, NODES, "after the pauses")
    finally:
        rig.close()
