"""Faults at the executor's worst moments (found by review; each was a real bug).

Slow answers are injected by wrapping the running pipeline's own I/O methods: the localnet
cannot make a preflight answer late, or the audit store slow for one entry type. Those wrappers
are fakes of timing, named as such; everything else is the real engine on the localnet.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.execution.conftest import Harness
from tests.helpers import wait_until
from xorj_actors.audit import EventType
from xorj_actors.execution import ErrorClass, GetExecutorStatus, TradeError, TradePhase
from xorj_actors.kill_switch import KILL_SWITCH_NAME
from xorj_actors.messages import HaltMode, Trigger
from xorj_actors.vaults import GetVaultStatus, Round

TOLERANT = """
[breakers.network_connectivity]
max_failures = 1000
max_consecutive = 1000
"""


def pipeline(h: Harness) -> Any:
    """The running pipeline, only to wrap its I/O (a fake of timing); its state is asked for."""
    return next(m.actor for m in h.engine.runtime.mailboxes() if m.name == "executor").pipeline


def retry_quoting(h: Harness) -> bool:
    """The only trade in flight is quoting (its retry, nothing signed yet)."""
    status = h.executor.ask(GetExecutorStatus(), timeout=5)
    return status.in_flight == 1 and status.phases == ((TradePhase.QUOTING, 1),)



def emergency(h: Harness) -> None:
    h.engine.runtime.whereis(KILL_SWITCH_NAME).tell(Trigger(mode=HaltMode.EMERGENCY, reason="test", source="test"))


def test_failures_before_signing_count_toward_max_attempts(exec_engine_factory) -> None:
    h = exec_engine_factory(TOLERANT)
    tid = "vault-0000:net:0"
    h.localnet.set_faults(refuse_http=True)
    try:
        outcome = h.execute(h.request(tid, amount=1_000_000), timeout=30)
    finally:
        h.localnet.reset_faults()
    failed = [d for _, d in h.entries(tid) if d.get("phase") == "attempt_failed"]
    assert outcome.status == "rejected" and outcome.error_class in ("network", "timeout"), outcome
    assert [d["attempt"] for d in failed] == [1, 2, 3, 4]  # retry.max_attempts


def test_an_emergency_halt_while_an_outcome_is_recorded_still_answers(harness: Harness) -> None:
    h = harness
    pipe = pipeline(h)
    real = pipe.io.durable

    async def slow_outcomes(event_type: EventType, trade_id: str, details: Any) -> None:  # fake: a slow commit
        if event_type is EventType.TRADE_CONFIRMATION:
            await asyncio.sleep(1.0)
        await real(event_type, trade_id, details)

    pipe.io.durable = slow_outcomes
    tid = "vault-0002:fin:0"
    h.executor.tell(h.request(tid, vault=2, amount=5_000_000_000, slippage_bps=10))  # refused: slippage
    wait_until(lambda: any(d.get("phase") == "attempt_failed" for _, d in h.entries(tid)), 10, "refused")
    emergency(h)
    outcome = h.wait(tid, timeout=10)
    assert outcome.status == "rejected" and outcome.error_class == "slippage", outcome
    wait_until(lambda: h.executor.ask(GetExecutorStatus(), timeout=5).in_flight == 0, 10, "nothing left in flight")


def test_an_emergency_halt_during_the_retry_of_a_trade_read_back_settles_it(exec_engine_factory, tmp_path) -> None:
    data = tmp_path / "shared"
    first = exec_engine_factory(data_dir=data)
    tid = "vault-0001:res:0"
    first.localnet.drop_transactions(1_000)  # the signed attempt never lands
    first.executor.tell(first.request(tid, vault=1, amount=1_000_000))
    wait_until(lambda: any(d.get("phase") == "signed" for _, d in first.entries(tid)), 10, "signed")
    assert not first.engine.stop(timeout=15)
    h = exec_engine_factory("[execution]\nrebroadcast_interval_s = 60\n", data_dir=data)
    pipe = pipeline(h)
    real = pipe.io.quotes.quote

    async def slow_quote(*args: Any, **kwargs: Any) -> Any:  # fake: the retry sits in "quoting"
        await asyncio.sleep(3)
        return await real(*args, **kwargs)

    pipe.io.quotes.quote = slow_quote
    wait_until(lambda: any(d.get("phase") == "attempt_failed" for _, d in h.entries(tid)), 30, "old attempt expired")
    wait_until(lambda: retry_quoting(h), 10, "retry quoting")
    emergency(h)
    wait_until(lambda: "TRADE_CONFIRMATION" in [k for k, _ in h.entries(tid)], 10, "an outcome recorded")
    # The entry is committed a moment before the executor drops the trade (phase "finishing").
    wait_until(lambda: h.executor.ask(GetExecutorStatus(), timeout=5).in_flight == 0, 5, "the trade settled")
    status = h.executor.ask(GetExecutorStatus(), timeout=5)
    assert status.in_flight == 0 and status.unsettled_vaults == ()


def test_no_rebroadcast_before_the_first_preflight_answers(harness: Harness) -> None:
    h = harness  # rebroadcast_interval_s = 0.2
    pipe = pipeline(h)
    real = pipe.io.chain.send
    first = [True]

    async def slow_refusal(tx: Any, *, preflight: bool) -> None:  # fake: a lagging node's late refusal
        if preflight and first[0]:
            first[0] = False
            await asyncio.sleep(0.5)
            raise TradeError(ErrorClass.EXPIRED_BLOCKHASH, 'preflight failed: "BlockhashNotFound"')
        await real(tx, preflight=preflight)

    pipe.io.chain.send = slow_refusal
    usdc = h.balance(0, "USDC")
    outcome = h.execute(h.request("vault-0000:race:0", amount=1_000_000), timeout=30)
    assert outcome.status == "confirmed" and outcome.attempts == 2, outcome
    assert h.balance(0, "USDC") == usdc - 1_000_000  # one trade, paid once


def test_a_vault_whose_snapshot_is_lost_ends_the_round(exec_engine_factory) -> None:
    h = exec_engine_factory(
        "[vaults]\ncount = 1\nround_interval_s = 3600\nread_timeout_s = 1.0\n[gateway]\nbatch_window_s = 1.0\n"
    )
    vault = next(a.ref for a in h.engine.runtime.actors() if a.name == "vault-0000")
    assert vault.ask(Round(round=1), timeout=5).ran
    gateway = h.engine.runtime.whereis("rpc_gateway")
    gateway.stop()  # the request dies in the batch window; the supervisor starts a new gateway
    wait_until(lambda: vault.ask(GetVaultStatus(), timeout=5).phase == "idle", 10, "the round ended")
    assert "snapshot" in vault.ask(GetVaultStatus(), timeout=5).last_skip


def test_after_a_certain_expiry_the_next_attempt_bids_more_within_the_cap(exec_engine_factory) -> None:
    """The localnet's fee market is quiet (every price zero): the first attempt bids the base,
    the retry after its certain expiry escalates from the floor, capped; the audit shows each."""
    h = exec_engine_factory(
        "[execution.fees]\nescalation = 2.0\nescalation_floor_micro_lamports = 1000\ncap_micro_lamports = 1500\n"
    )
    tid = "vault-0003:fee:0"
    h.localnet.drop_transactions(1_000)  # the first attempt's sends never land
    h.executor.tell(h.request(tid, vault=3, amount=1_000_000))
    wait_until(lambda: any(d.get("phase") == "signed" for _, d in h.entries(tid)), 10, "first attempt signed")
    wait_until(lambda: any(d.get("phase") == "attempt_failed" for _, d in h.entries(tid)), 30, "first attempt expired")
    h.localnet.drop_transactions(0)
    outcome = h.wait(tid, timeout=30)
    assert outcome.status == "confirmed" and outcome.attempts == 2, outcome
    signed = [d for _, d in h.entries(tid) if d.get("phase") == "signed"]
    assert [(d["fee_escalation"], d["micro_lamports"]) for d in signed] == [(1, 0), (2, 1500)], signed
    assert all(d["compute_units"] >= d["simulated_units"] for d in signed)


def test_a_cut_confirmation_websocket_is_counted_as_a_reconnect(harness: Harness) -> None:
    h = harness
    reconnects = h.engine.metrics.registry.get_sample_value
    assert reconnects("xorj_ws_reconnects_total") == 0
    assert h.localnet.drop_websockets() >= 1
    wait_until(lambda: (reconnects("xorj_ws_reconnects_total") or 0) >= 1, 20, "the confirmation WebSocket reconnected")
    assert h.execute(h.request("vault-0000:ws:0", amount=1_000_000), timeout=30).status == "confirmed"
