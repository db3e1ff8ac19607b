"""The one place a planned trade becomes the executor's :class:`TradeRequest`."""

from __future__ import annotations

from pykka import ActorRef

from xorj_actors.execution import TradeRequest
from xorj_actors.strategy import RiskProfile
from xorj_actors.vaults._reconcile import PlannedTrade

__all__ = ["request_for"]


def request_for(planned: PlannedTrade, profile: RiskProfile, reply_to: ActorRef | None) -> TradeRequest:
    """The request for ``planned`` (a round's trade or a flatten's sell), checked against
    ``profile``'s slippage limit; the outcome goes to ``reply_to``."""
    return TradeRequest(
        trade_id=planned.trade_id,
        vault_id=planned.vault_id,
        round_key=planned.round_key,
        index=planned.index,
        input_mint=planned.input_mint,
        output_mint=planned.output_mint,
        amount_in=planned.amount_in,
        slippage_bps=profile.slippage_bps,
        value_usd=planned.value_usd,
        reduces_exposure=planned.reduces_exposure,
        reply_to=reply_to,
    )
