"""Jito on the localnet: every Swap API attempt tips and is protected from sandwiches, its bytes go
to the block engine beside the RPC, and a trade lands once whichever route carried it."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable

import pytest
from solana.rpc.async_api import AsyncClient
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from tests.execution.conftest import Harness, _status, post_admin
from tests.helpers import wait_until

JITO = """
[jito]
enabled = true
protection = true
tip_floor_lamports = 10000
tip_cap_lamports = 50000
status_poll_interval_s = 0.1
"""


def _bundle_fault(h: Harness, mode: str, count: int) -> None:
    post_admin(f"{h.localnet.urls['block_engine']}/admin/bundle-fault", {"mode": mode, "count": count})


def _bundle_statuses(h: Harness, tid: str) -> list[dict]:
    """The trade's JITO_BUNDLE entries, in log order."""
    return [d for t, d in h.entries(tid) if t == "JITO_BUNDLE"]


def _final_bundle(h: Harness, tid: str) -> list[dict]:
    """Wait until the block engine's final word on the trade's bundle is recorded; all its entries."""
    wait_until(lambda: any(d["status"] != "Pending" for d in _bundle_statuses(h, tid)), 20, f"the bundle of {tid} settled")
    return _bundle_statuses(h, tid)


def _landed_slot(h: Harness, signature: str) -> int | None:
    async def read() -> int | None:
        async with AsyncClient(h.localnet.urls["rpc"]) as rpc:
            [status] = (await rpc.get_signature_statuses([Signature.from_string(signature)], search_transaction_history=True)).value
        return status.slot if status is not None else None

    return asyncio.run(read())


def _bundles_metric(h: Harness, status: str) -> float:
    return h.engine.metrics.registry.get_sample_value("xorj_jito_bundles_total", {"status": status}) or 0.0


def _signed_tx(h: Harness, tid: str) -> tuple[dict, VersionedTransaction]:
    [signed] = [d for _, d in h.entries(tid) if d.get("phase") == "signed"]
    return signed, VersionedTransaction.from_bytes(base64.b64decode(signed["transaction"]))


def test_a_protected_trade_tips_a_static_tip_account_and_lands_by_the_block_engine_alone(
    exec_engine_factory: Callable[..., Harness],
) -> None:
    h = exec_engine_factory(JITO + '[jupiter]\napi = "swap"\n')
    usdc = h.balance(0, "USDC")
    h.localnet.drop_transactions(1_000)  # the RPC's route never lands anything: only the block engine can
    try:
        outcome = h.execute(h.request("vault-0000:jito:0", amount=1_000_000), timeout=30)
    finally:
        h.localnet.drop_transactions(0)
    assert outcome.status == "confirmed" and outcome.attempts == 1, outcome
    assert h.balance(0, "USDC") == usdc - 1_000_000
    signed, tx = _signed_tx(h, "vault-0000:jito:0")
    keys = list(tx.message.account_keys)  # the static keys, not the tables'
    tip = Pubkey.from_string(signed["tip_account"])
    assert 10_000 <= signed["tip_lamports"] <= 50_000 and signed["sandwich_protection"] is True
    assert tip in keys, "the tip account must be a static key"
    assert any(str(k).startswith("jitodontfront") for k in keys)
    # Tracked for the record: accepted (Pending), then Landed in the slot the chain shows for it.
    pending, landed = _final_bundle(h, "vault-0000:jito:0")
    assert pending["status"] == "Pending" and landed["status"] == "Landed" and landed["previous"] == "Pending", (pending, landed)
    assert pending["bundle_id"] == landed["bundle_id"] and landed["signature"] == signed["signature"] == str(tx.signatures[0])
    assert landed["attempt"] == 1 and landed["confirmation"] in ("processed", "confirmed", "finalized")
    assert landed["landed_slot"] == _landed_slot(h, signed["signature"]) is not None
    assert _bundles_metric(h, "pending") == 1 and _bundles_metric(h, "landed") == 1
    wait_until(lambda: h.executor.ask(_status(), timeout=5).open_bundles == 0, 10, "no bundle open")


def test_a_dropped_bundle_is_carried_by_the_rpc_and_lands_once(exec_engine_factory: Callable[..., Harness]) -> None:
    h = exec_engine_factory(JITO + '[jupiter]\napi = "swap"\n')
    usdc = h.balance(1, "USDC")
    _bundle_fault(h, "drop", 1_000)
    try:
        outcome = h.execute(h.request("vault-0001:jito:0", vault=1, amount=1_000_000), timeout=30)
    finally:
        _bundle_fault(h, "drop", 0)
    assert outcome.status == "confirmed" and outcome.attempts == 1, outcome
    assert h.balance(1, "USDC") == usdc - 1_000_000  # once
    # The block engine's word, recorded: the held bundle can never land once the RPC's copy did.
    # It is no outcome of the trade: the one outcome stands, the chain holds the one transaction.
    entries = _final_bundle(h, "vault-0001:jito:0")
    assert [d["status"] for d in entries] in (["Pending", "Failed"], ["Pending", "Invalid"]), entries
    signed, _ = _signed_tx(h, "vault-0001:jito:0")
    assert entries[-1]["signature"] == signed["signature"] and _landed_slot(h, signed["signature"]) is not None
    assert h.outcomes.of("vault-0001:jito:0") == [outcome]
    assert [t for t, _ in h.entries("vault-0001:jito:0")].count("TRADE_CONFIRMATION") == 1
    assert h.balance(1, "USDC") == usdc - 1_000_000
    assert _bundles_metric(h, "landed") == 0 and _bundles_metric(h, "failed") + _bundles_metric(h, "invalid") == 1


def test_no_trade_goes_out_untipped_when_the_block_engine_is_unreachable(
    exec_engine_factory: Callable[..., Harness],
) -> None:
    h = exec_engine_factory(JITO.replace("[jito]\n", '[jito]\nblock_engine_url = "http://127.0.0.1:9"\n') + '[jupiter]\napi = "swap"\n')
    outcome = h.execute(h.request("vault-0002:jito:0", vault=2, amount=1_000_000), timeout=30)
    # No tip accounts can be read from a dead block engine: the attempt cannot tip and is retried
    # as a network failure; a trade must never go out unprotected when protection is on.
    assert outcome.status == "rejected" and outcome.error_class in ("network", "breaker_open"), outcome
    assert not [d for _, d in h.entries("vault-0002:jito:0") if d.get("phase") == "signed"]
    assert h.executor.ask(_status(), timeout=5).route_skips == ()


def test_status_polls_take_a_token_only_when_one_is_there_and_never_queue(exec_engine_factory: Callable[..., Harness]) -> None:
    """The block engine's budget holds one token at a time, one every two seconds: the send takes
    the first, so the polls find none and are skipped (never waiting in the queue) until the next
    one comes; then the bundle's final status is read and recorded."""
    h = exec_engine_factory(
        JITO + '[jupiter]\napi = "swap"\n[quotas]\non_localnet = true\n'
        "[quotas.block_engine]\nrequests = 2\nwindow_s = 4.0\nburst = 1\n"
    )
    tid = "vault-0002:jito:1"
    outcome = h.execute(h.request(tid, vault=2, amount=1_000_000), timeout=30)
    assert outcome.status == "confirmed", outcome
    # The RPC landed it first: the bundle could not land after it.
    assert [d["status"] for d in _final_bundle(h, tid)] == ["Pending", "Failed"]
    snapshot = h.engine.quotas.snapshot()["block_engine"]
    assert snapshot["expired"] >= 1, snapshot  # polls (and rebroadcasts) that found no token
    assert snapshot["waiting"] == 0 and snapshot["self_inflicted"] == 0 and snapshot["used_in_window"] <= 2, snapshot
    assert h.executor.ask(_status(), timeout=5).open_bundles == 0


@pytest.mark.parametrize(
    ("fault", "statuses"),
    [
        # The RPC drops everything: the block engine lands it; read after it left the window.
        ("rpc", ["Pending", "Landed"]),
        # The block engine holds the bundle, the RPC lands the bytes: gone from the window, never landed.
        ("bundle", ["Pending", "Invalid"]),
    ],
)
def test_a_bundle_read_after_it_left_the_inflight_window_is_asked_in_the_landed_table(
    exec_engine_factory: Callable[..., Harness], fault: str, statuses: list[str]
) -> None:
    """The inflight window is one second and the budget gives a token every 1.5 s: the first poll
    comes too late for the window (Invalid) and ``getBundleStatuses`` tells whether it landed."""
    h = exec_engine_factory(
        JITO + '[jupiter]\napi = "swap"\n[localnet.block_engine]\nlookback_s = 1\n[quotas]\non_localnet = true\n'
        "[quotas.block_engine]\nrequests = 2\nwindow_s = 3.0\nburst = 1\n"
    )
    tid = f"vault-0003:window-{fault}:0"
    if fault == "rpc":
        h.localnet.drop_transactions(1_000)
    else:
        _bundle_fault(h, "drop", 1_000)
    try:
        outcome = h.execute(h.request(tid, vault=3, amount=1_000_000), timeout=30)
        entries = _final_bundle(h, tid)
    finally:
        h.localnet.drop_transactions(0)
        _bundle_fault(h, "drop", 0)
    assert outcome.status == "confirmed" and outcome.attempts == 1, outcome
    assert [d["status"] for d in entries] == statuses, entries
    if fault == "rpc":
        assert entries[-1]["landed_slot"] == _landed_slot(h, entries[-1]["signature"]) is not None


def test_more_open_bundles_than_one_call_names_are_all_followed(exec_engine_factory: Callable[..., Harness]) -> None:
    """Eight trades at once, the block engine alone lands them: the polls take five ids a call,
    round robin, and every bundle's landing is recorded."""
    h = exec_engine_factory(JITO + '[jupiter]\napi = "swap"\n')
    ids = [f"vault-000{v}:many:{i}" for v in range(4) for i in range(2)]
    h.localnet.drop_transactions(1_000)
    try:
        for tid in ids:
            h.executor.tell(h.request(tid, vault=int(tid[8]), amount=1_000_000))
        outcomes = [h.wait(tid, timeout=60) for tid in ids]
        finals = [_final_bundle(h, tid)[-1] for tid in ids]
    finally:
        h.localnet.drop_transactions(0)
    assert [o.status for o in outcomes] == ["confirmed"] * len(ids), outcomes
    assert [d["status"] for d in finals] == ["Landed"] * len(ids), finals
    assert len({d["bundle_id"] for d in finals}) == len(ids)
    assert _bundles_metric(h, "pending") == _bundles_metric(h, "landed") == len(ids)
