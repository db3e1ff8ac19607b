"""The vault's shapes of a trade and its phases: no engine needed."""

from __future__ import annotations

import pytest

from tests.vaults.test_slippage import BUY
from xorj_actors.execution import TradeRequest
from xorj_actors.strategy import RiskProfile
from xorj_actors.vaults import FlattenPhase, VaultPhase, VaultStatus
from xorj_actors.vaults._request import request_for

LIMIT = 50  # bps
PROFILE = RiskProfile(name="moderate", min_trust_score=80.0, slippage_bps=LIMIT)


def test_request_for_carries_the_planned_trade_and_the_profiles_limit() -> None:
    request = request_for(BUY, PROFILE, None)
    assert request == TradeRequest(
        trade_id=BUY.trade_id, vault_id=BUY.vault_id, round_key=BUY.round_key, index=BUY.index,
        input_mint=BUY.input_mint, output_mint=BUY.output_mint, amount_in=BUY.amount_in,
        slippage_bps=LIMIT, value_usd=BUY.value_usd, reduces_exposure=BUY.reduces_exposure, reply_to=None,
    )


def test_phases_print_as_the_plain_words_ctl_shows() -> None:
    assert [str(p) for p in VaultPhase] == ["idle", "reading", "selling", "selling_done", "buying", "closing"]
    assert [f"{p}" for p in FlattenPhase] == ["waiting", "reading", "selling"]


def test_a_vault_status_takes_a_phase_not_a_bare_string() -> None:
    fields = dict(vault_id="vault-0001", profile="moderate", rounds=0, rounds_skipped=0, trades_confirmed=0,
                  trades_other=0, last_skip="", value_usd=0.0, pending=())
    assert VaultStatus(phase=VaultPhase.SELLING_DONE, **fields).phase == "selling_done"
    with pytest.raises(TypeError):
        VaultStatus(phase="idle", **fields)
