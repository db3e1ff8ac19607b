"""In a running engine, a trigger halts the signer before the kill switch has run (issue 15)."""

from __future__ import annotations

import threading

from xorj_actors.engine import Engine
from xorj_actors.kill_switch import KILL_SWITCH_NAME, GetStatus
from xorj_actors.messages import HaltMode, Trigger
from xorj_actors.signers import SignRequest
from tests.plugins.engine import ks_status, wait_until


def test_a_signer_refuses_while_the_kill_switch_has_not_run_yet(engine: Engine) -> None:
    (signer,) = [a.ref for a in engine.runtime.actors(named=lambda n: n == "signer:vault-authority")]
    ks = engine.runtime.whereis(KILL_SWITCH_NAME)
    epoch = ks_status(engine).epoch
    armed = signer.ask(SignRequest(vault_id="vault-0000", trade_id="t-0", payload=b"msg"), timeout=5)
    assert armed.refused is None
    # Hold the kill switch inside a handler: everything told to it waits in its mailbox.
    actor = ks.actor_inbox.actor
    entered, gate = threading.Event(), threading.Event()
    real = actor.status

    def held():
        entered.set()
        gate.wait(10)
        return real()

    actor.status = held
    answer = ks.ask(GetStatus(), block=False)
    try:
        assert entered.wait(5)
        ks.tell(Trigger(mode=HaltMode.GRACEFUL, reason="trip", source="test"))
        reply = signer.ask(SignRequest(vault_id="vault-0000", trade_id="t-1", payload=b"msg"), timeout=5)
        assert reply.signature is None and reply.refused.startswith("halted"), reply
        assert actor.persisted.epoch == epoch and not actor.persisted.halted  # it has not run
    finally:
        gate.set()
        answer.get(timeout=5)
        del actor.status
    wait_until(lambda: (s := ks_status(engine)).epoch == epoch + 1 and s.complete, what="halt complete")
