"""The durability contract, read from the store at the moment each next step begins: the intent
is committed when the signer is asked, the signed bytes when they are first sent, and the outcome
when the vault is told. The executor's wait for each commit is one future resolved from the audit
writer's thread (execution/_committed.py); this proves that wait ends only after the commit.

The pipeline's signer and send calls are wrapped to look at the store (a probe, not a fake: each
calls the real one after looking); the vault is an actor that looks when it hears the outcome.
The writer's commits are made slow (a fake of timing) so that a wait ending before its commit
would be seen, not hidden by a fast disk.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

from supervisors import Actor
from tests.execution.conftest import Harness
from tests.execution.test_executor_faults import pipeline
from tests.helpers import wait_until
from xorj_actors.execution import TradeOutcome


def _committed(h: Harness, trade_id: str) -> list[tuple[str, str | None]]:
    """(event type, phase) of every entry of ``trade_id`` the store holds now (committed)."""
    return [(etype, d.get("phase")) for etype, d in h.entries(trade_id)]


class _Vault(Actor):
    """Reads the store the moment it is told an outcome."""

    def __init__(self, h: Harness, seen: dict[str, Any], lock: threading.Lock) -> None:
        super().__init__()
        self.h, self.seen, self.lock = h, seen, lock

    def on_receive(self, message: Any) -> None:
        if isinstance(message, TradeOutcome):
            entries = _committed(self.h, message.trade_id)
            with self.lock:
                self.seen["told"] = (message, entries)


def test_each_entry_is_committed_before_the_step_it_guards(harness: Harness) -> None:
    h = harness
    pipe = pipeline(h)
    seen: dict[str, Any] = {}
    lock = threading.Lock()
    tid = "vault-0001:dur:0"
    real_sign, real_send = pipe.attempts.sign, pipe.io.chain.send

    async def sign(req: Any, payload: bytes, tenure: int = 0) -> Any:  # probe: look, then sign
        seen.setdefault("sign", _committed(h, req.trade_id))
        return await real_sign(req, payload, tenure)

    async def send(tx: Any, *, preflight: bool) -> None:  # probe: look, then send
        seen.setdefault("send", _committed(h, tid))
        await real_send(tx, preflight=preflight)

    pipe.attempts.sign, pipe.io.chain.send = sign, send
    log = next(m.actor for m in h.engine.runtime.mailboxes() if m.name == "audit").log
    real_commit = log._commit

    def slow_commit(entries: Any) -> None:  # fake of timing: a slow fsync
        time.sleep(0.05)
        real_commit(entries)

    log._commit = slow_commit
    vault = _Vault.start(h, seen, lock)
    try:
        h.executor.tell(dataclasses.replace(h.request(tid, vault=1, amount=1_000_000), reply_to=vault))
        wait_until(lambda: "told" in seen, 30, "the vault told")
    finally:
        vault.stop()
    outcome, at_told = seen["told"]
    assert outcome.status == "confirmed", outcome
    assert ("TRADE_INTENT", None) in seen["sign"]
    assert ("TRADE_EXECUTION", "signed") not in seen["sign"]
    assert ("TRADE_EXECUTION", "signed") in seen["send"]
    assert ("TRADE_CONFIRMATION", None) in at_told

