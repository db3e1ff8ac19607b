"""Issue 11 item 6: the audit log proves that no trade was signed after the halt of its epoch.

Every durable ``signed`` attempt records the signer's own time (``signed_at``, read before the
halt board) and the halt epoch and state the signer checked (``halt_epoch``, ``halt_state``).
Here a real engine on the in-process localnet trades from four vaults at once while the kill
switch is triggered again and again (graceful and emergency, recovered in between); then, from
the audit log alone, every signature that checked epoch E is shown to be older than the halt
that opened epoch E + 1: its HALT entry, and the ``triggered_at`` the kill switch recorded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from tests.execution.conftest import Harness
from tests.helpers import wait_until
from tests.plugins.engine import authorise
from xorj_actors.audit import open_store, select_entries, utc_timestamp
from xorj_actors.kill_switch import KILL_SWITCH_NAME, GetStatus, Recover
from xorj_actors.messages import HaltMode, Trigger

TOLERANT_BREAKERS = """
[breakers.trade_failure_rate]
max_failures = 1000
max_consecutive = 1000
[breakers.network_connectivity]
max_failures = 1000
max_consecutive = 1000
"""

HALTS = 4
VAULTS = 4
TRADES_PER_VAULT = 5


Entry = tuple[str, str, str, str | None, dict[str, Any]]


def _log(h: Harness) -> list[Entry]:
    """(timestamp, event type, actor, correlation id, details) of every entry, in log order."""
    store = open_store(h.engine.config.audit, h.engine.data_dir, create=False)
    try:
        return [(e.timestamp, e.event_type, e.actor, e.correlation_id, json.loads(e.details)) for e in select_entries(store)]
    finally:
        store.close()


def _signed(log: list[Entry]) -> dict[str, list[dict[str, Any]]]:
    """trade id -> the details of its durable signed attempts."""
    out: dict[str, list[dict[str, Any]]] = {}
    for _, kind, actor, trade_id, d in log:
        if kind == "TRADE_EXECUTION" and actor == "executor" and trade_id and d.get("phase") == "signed":
            out.setdefault(trade_id, []).append(d)
    return out


def _halts(log: list[Entry]) -> dict[int, tuple[str, float | None]]:
    """epoch -> (the HALT entry's time, the kill switch's ``triggered_at`` if the entry records it)."""
    return {
        d["epoch"]: (ts, d.get("triggered_at"))
        for ts, kind, actor, _, d in log
        if kind == "HALT" and actor == "kill_switch" and d.get("what") == "triggered"
    }


def _status(h: Harness) -> Any:
    return h.engine.runtime.whereis(KILL_SWITCH_NAME).ask(GetStatus(), timeout=5)


def _batch(h: Harness, n: int) -> list[str]:
    """Tell the executor ``VAULTS * TRADES_PER_VAULT`` trades at once; their ids."""
    ids = []
    for v in range(VAULTS):
        vault_id = h.genesis.vaults[v].vault_id
        for i in range(TRADES_PER_VAULT):
            trade_id = f"{vault_id}:b{n}:{i}"
            sell, buy = ("USDC", "JUP") if (n + i) % 2 == 0 else ("JUP", "USDC")
            amount = 1_000_000 if sell == "USDC" else 100_000
            h.executor.tell(h.request(trade_id, vault=v, sell=sell, buy=buy, amount=amount, slippage_bps=500))
            ids.append(trade_id)
    return ids


def _wait(predicate: Callable[[], object], what: str) -> None:
    wait_until(predicate, 30, what)


def test_no_signature_carries_a_time_after_the_halt_of_its_epoch(exec_engine_factory) -> None:
    h = exec_engine_factory(TOLERANT_BREAKERS)
    ks = h.engine.runtime.whereis(KILL_SWITCH_NAME)
    triggered_at: dict[int, float] = {}  # epoch -> the kill switch's own time of the halt
    for n in range(HALTS):
        ids = _batch(h, n)
        # Halt while this batch is being signed: once one of its trades is durable as signed.
        _wait(lambda: any(t in _signed(_log(h)) for t in ids), f"batch {n} signing")
        epoch = _status(h).epoch
        mode = HaltMode.EMERGENCY if n % 2 else HaltMode.GRACEFUL
        ks.tell(Trigger(mode=mode, reason=f"item 6 halt {n}", source="test"))
        _wait(lambda: (s := _status(h)).epoch == epoch + 1 and s.complete, f"halt {n} acknowledged")
        triggered_at[epoch + 1] = _status(h).triggered_at
        _wait(lambda: all(h.outcomes.of(t) for t in ids), f"every trade of batch {n} settled")
        outcome = ks.ask(Recover(operator="test", **authorise(epoch + 1, nonce=f"item6-{n}")), timeout=5)
        assert outcome.accepted, outcome.reason
        _wait(lambda: _status(h).state == "ARMED", f"armed again after halt {n}")

    log = _log(h)
    signed, halts = [d for ds in _signed(log).values() for d in ds], _halts(log)
    assert len(halts) == HALTS, halts
    missing = [d["signature"] for d in signed if not {"signed_at", "halt_epoch", "halt_state"} <= d.keys()]
    assert not missing, f"{len(missing)} of {len(signed)} signed entries lack the signer's time and halt epoch: {missing[:3]}"
    closed = set()
    for d in signed:
        assert d["halt_state"] in ("ARMED", "RECOVERY_PENDING"), d  # no flatten here: never signed halted
        later = [e for e in halts if e > d["halt_epoch"]]
        if not later:
            continue  # its epoch was still open when the test ended
        closed.add(d["halt_epoch"])
        entry_time, recorded = halts[min(later)]
        # Text order is time order: the log's fixed-width UTC format, truncated to microseconds.
        assert d["signed_at"] <= entry_time, (d["signature"], d["signed_at"], "after the HALT entry", entry_time)
        # The kill switch's own time of that halt, as its entry records it (or its status said).
        at = recorded if recorded is not None else triggered_at[min(later)]
        halt_time = utc_timestamp(datetime.fromtimestamp(at, timezone.utc))
        assert d["signed_at"] <= halt_time, (d["signature"], d["signed_at"], "after triggered_at", halt_time)
    # Each halt closed an epoch in which something had been signed: the check above is not empty.
    assert len(closed) == HALTS, (sorted(closed), sorted(halts))
