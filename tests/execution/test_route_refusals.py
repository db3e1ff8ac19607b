"""The executor refuses every adversarial route of the localnet before signing it, with its reason.

The localnet's quote service serves a bad route on command (``POST /admin/route-fault``,
docs/LOCALNET.md); the executor's checks (allowlist, aggregator decoding, simulated effects) must
refuse it: the trade rejected with the reason, the reason in the audit log, no signature asked
for, the vault's balances unchanged on the chain.
"""

from __future__ import annotations


import pytest

from tests.execution.conftest import Harness, serve_route_fault
from xorj_actors.localnet.route_faults import EXPECTED_REASON, SWAP_FAULTS, RouteFault

#: The route checks' stage names as the executor records them (the localnet's names for them).
_STAGE = {"allowlist": "allowlist", "decode": "aggregator", "effects": "effects"}


#: TABLE_MISMATCH spoils an Ultra order's transaction; a Swap API message is compiled here from
#: the instructions' own accounts, so a table cannot put another account in their place.



@pytest.mark.parametrize("mode", list(SWAP_FAULTS))
def test_an_adversarial_route_is_refused_before_it_is_signed(harness: Harness, mode: RouteFault) -> None:
    h = harness
    stage, reason = EXPECTED_REASON[mode]
    # A third token in the vault (FOREIGN_TRANSFER's victim: another account its key controls).
    assert h.execute(h.request(f"vault-0000:bonk-{mode.value}:0", buy="BONK", amount=1_000_000)).status == "confirmed"
    tid = f"vault-0000:bad-{mode.value}:0"
    before = {s: h.balance(0, s) for s in ("USDC", "JUP")}
    serve_route_fault(h, mode)
    outcome = h.execute(h.request(tid, amount=1_000_000))
    assert outcome.status == "rejected" and outcome.error_class == "unknown", outcome
    assert f"route refused: {reason}" in (outcome.error or ""), outcome
    entries = h.entries(tid)
    refused = [d for k, d in entries if d.get("phase") == "route_refused"]
    assert [(d["stage"], d["reason"], d["api"]) for d in refused] == [(_STAGE[stage], reason, "swap")]
    assert not [d for _, d in entries if d.get("phase") == "signed"]
    assert {s: h.balance(0, s) for s in ("USDC", "JUP")} == before
