"""Ultra's route for one attempt: ``/order`` for the vault's wallet, the money check, then the
same route checks as any route, on the order's own transaction (docs/EXECUTION.md, "The Ultra
flow").

The message is signed exactly as Jupiter built it: we cannot add our compute budget or memo
(Jupiter and, for an RFQ route, the market maker sign or check this very message). Its last
valid block height is not in the order: the simulation of the effect check accepted its
blockhash at slot S, so the newest blockhash the node knows at S or later bounds it (asked in
the effect check's own batch; apart, at ``minContextSlot`` S, when that answer was older).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from solders.message import MessageV0
from solders.pubkey import Pubkey

from xorj_actors.execution._errors import ErrorClass, TradeError
from xorj_actors.execution._route import BuiltRoute, RouteVault
from xorj_actors.jupiter import TradeApi
from xorj_actors.quotas import Endpoint

if TYPE_CHECKING:
    from xorj_actors.execution._attempt import AttemptBuilder
    from xorj_actors.execution._ledger import TradeRecord

__all__ = ["build_ultra"]

#: Orders asked again while Ultra answers a transaction another trade holds (a slot apart).
_SAME_MESSAGE_TRIES = 8
_SAME_MESSAGE_WAIT_S = 0.4


async def build_ultra(builder: AttemptBuilder, rec: TradeRecord, authority: Pubkey, vault: RouteVault) -> BuiltRoute:
    """``/order`` (taker: the vault's authority), money check, route checks of its transaction.

    Raises:
        JupiterRefused: Ultra refused the order (the builder decides on a fallback).
        TradeError: any other failure or refusal.
    """
    io, req = builder.io, rec.request
    for _ in range(_SAME_MESSAGE_TRIES):
        order = await io.budgeted(
            Endpoint.JUPITER_ORDER, req.vault_id,
            lambda: io.quotes.order(vault.input_mint, vault.output_mint, req.amount_in, authority),
        )
        assert order.transaction is not None  # the client refuses an order without one
        message = order.transaction.message
        if not isinstance(message, MessageV0):
            raise TradeError(ErrorClass.UNKNOWN, "ultra order: not a v0 transaction")
        holder = builder.claims.claim(rec, message)
        if holder is None:
            break
        # The vault's identical trade got the very same transaction: a new blockhash will differ.
        await asyncio.sleep(_SAME_MESSAGE_WAIT_S)
    else:
        raise TradeError(ErrorClass.PROGRAM, f"ultra keeps answering the transaction of trade {holder}")
    money = await builder.check_money(order, TradeApi.ULTRA, req, builder.quote_deadline())
    effects = await builder.check_route(rec, TradeApi.ULTRA, message, vault, order, money.min_out, height=True)
    last_valid = effects.last_valid_block_height
    if last_valid is None:  # the batch's blockhash answer was older than the simulation's slot
        last_valid = await io.routes.last_valid_block_height(effects.slot)
    return BuiltRoute(
        api=TradeApi.ULTRA, message=message, money=money, effects=effects, last_valid_block_height=last_valid,
        request_id=order.request_id,
        details={
            "request_id": order.request_id, "router": order.router, "maker": str(order.maker) if order.maker else None,
            "fee_bps": order.fee_bps, "gasless": order.gasless, "expire_at": order.expire_at,
            "lookup_tables": [str(lk.account_key) for lk in message.address_table_lookups],
            "blockhash": str(message.recent_blockhash),
        },
    )
