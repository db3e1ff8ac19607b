"""Jito on the localnet: every Swap API attempt tips and is protected from sandwiches, its bytes go
to the block engine beside the RPC, and a trade lands once whichever route carried it."""

from __future__ import annotations

import base64
from collections.abc import Callable

from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from tests.execution.conftest import Harness, _status, post_admin

JITO = """
[jito]
enabled = true
protection = true
tip_floor_lamports = 10000
tip_cap_lamports = 50000
"""


def _bundle_fault(h: Harness, mode: str, count: int) -> None:
    post_admin(f"{h.localnet.urls['block_engine']}/admin/bundle-fault", {"mode": mode, "count": count})


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
