"""The Swap API's route for one attempt: quote, swap instructions, our compute budget and memo,
compiled with the route's lookup tables, then checked (docs/EXECUTION.md, "The Swap API flow")."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from solders.message import MessageV0
from solders.pubkey import Pubkey

from xorj_actors.execution._clients import jupiter_call
from xorj_actors.execution._errors import ErrorClass, TradeError
from xorj_actors.execution._fees import writable_accounts
from xorj_actors.execution._route import BuiltRoute, RouteVault
from xorj_actors.execution._transaction import framed, unsigned_transaction
from xorj_actors.jupiter import TradeApi
from xorj_actors.quotas import Endpoint

if TYPE_CHECKING:
    from xorj_actors.execution._attempt import AttemptBuilder
    from xorj_actors.execution._ledger import TradeRecord

__all__ = ["build_swap"]

#: The most compute units a transaction may ask for.
_MAX_COMPUTE_UNITS = 1_400_000


async def build_swap(builder: AttemptBuilder, rec: TradeRecord, authority: Pubkey, vault: RouteVault) -> BuiltRoute:
    """Quote, money check, ``/swap-instructions`` for the vault's wallet, our framing, checks."""
    io, req, s = builder.io, rec.request, builder.io.settings
    quote = await jupiter_call(io.budgeted(
        Endpoint.JUPITER_QUOTE, req.vault_id,
        lambda: io.quotes.quote(vault.input_mint, vault.output_mint, req.amount_in, req.slippage_bps),
    ))
    deadline = builder.quote_deadline()  # a quote waiting longer than this for a turn is asked again
    money = await builder.check_money(quote, TradeApi.SWAP, req, deadline)
    # The route for the vault's own wallet: its associated accounts, its signature alone.
    route = await jupiter_call(io.budgeted(
        Endpoint.JUPITER_SWAP_INSTRUCTIONS, req.vault_id, lambda: io.quotes.swap_instructions(quote, authority),
        deadline=deadline,
    ))
    legs = route.route_instructions()
    fee, fee_details = await io.fees.price(
        req.value_usd, writable_accounts(legs, exclude=(authority, *vault.holdings)), 1 + rec.expiries
    )
    tables = await io.routes.tables(route.address_lookup_table_addresses)
    tips, tip_details = await io.jito.tip(authority)
    io.routes.allow_tips(io.jito.tip_accounts)
    legs = [*legs, *tips]
    blockhash, last_valid = await io.chain.blockhash()  # last: it ages from here to the send

    def compile_with(units: int) -> MessageV0:
        instructions = framed(legs, compute_units=units, micro_lamports=fee, memo=f"xorj:{req.trade_id}")
        return io.routes.compile(authority, instructions, tables, blockhash)

    # The budget: Jupiter's own simulated limit when it gives one (dynamicComputeUnitLimit),
    # else from our probe's. The effect check simulates the exact message, budget included.
    probe_units = None
    if route.compute_unit_limit:
        units = min(_MAX_COMPUTE_UNITS, max(s.min_compute_units, route.compute_unit_limit))
    else:
        probe = await io.chain.simulate(unsigned_transaction(compile_with(s.simulation_compute_units)))
        probe_units = probe.units
        units = max(s.min_compute_units, math.ceil(probe.units * s.compute_unit_margin))
    message = compile_with(units)
    holder = builder.claims.claim(rec, message)
    if holder is not None:  # our memo names the trade, the blockhash its attempt: a new blockhash differs
        raise TradeError(ErrorClass.EXPIRED_BLOCKHASH, f"built the very message of trade {holder} again")
    effects = await builder.check_route(rec, TradeApi.SWAP, message, vault, quote, money.min_out)
    return BuiltRoute(
        api=TradeApi.SWAP, message=message, money=money, effects=effects, last_valid_block_height=last_valid,
        request_id=None,
        details={
            "lookup_tables": [str(k) for k in route.address_lookup_table_addresses],
            "compute_units": units, "probe_units": probe_units, "micro_lamports": fee, **fee_details, **tip_details,
        },
    )
