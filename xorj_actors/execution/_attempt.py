"""One attempt of a trade, from a quote to signed bytes that are durable in the audit log.

Quote (checked against the slippage limit), swap instructions (the legs checked against the
vault), blockhash, priority fee and memo, simulate (the compute budget from what it consumed),
the market maker's co-signature, the gate again, the Signer's signature, then the signed attempt
durable before anything is sent.
"""

from __future__ import annotations

import asyncio
import base64
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from collections.abc import Mapping
from typing import Any

from pykka import ActorDeadError
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from solders.token.associated import get_associated_token_address

from supervisors import MailboxFull
from xorj_actors.audit import EventType, utc_timestamp
from xorj_actors.execution._crash import crash_point
from xorj_actors.execution._errors import ErrorClass, TradeError
from xorj_actors.execution._io import ExecutorIO
from xorj_actors.execution._ledger import Attempt, TradeRecord
from xorj_actors.execution._messages import TradePhase, TradeRequest
from xorj_actors.execution._allowlist import RouteParties
from xorj_actors.execution._clients import jupiter_call, usd_prices
from xorj_actors.execution._jupiter import RouteTerms
from xorj_actors.execution._route import RouteVault
from xorj_actors.execution._transaction import (
    check_quote_basics,
    framed,
    message_bytes,
    signed_transaction,
    unsigned_transaction,
)
from xorj_actors.jupiter import TradeApi
from xorj_actors.signers import FindVaultKey, SignRequest, SignResult, signer_name

__all__ = ["AttemptBuilder", "SignedAttempt"]

#: The most compute units a transaction may ask for.
_MAX_COMPUTE_UNITS = 1_400_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def signer_time(ns: int) -> str:
    """The signer's clock as the audit log writes times (``utc_timestamp``), truncated, never rounded up."""
    return utc_timestamp(_EPOCH + timedelta(microseconds=ns // 1000))


@dataclass(frozen=True, slots=True)
class SignedAttempt:
    """An attempt durable as signed, and its transaction, ready to send."""

    attempt: Attempt
    tx: VersionedTransaction


class AttemptBuilder:
    """Builds, signs and records attempts (on the executor's loop)."""

    def __init__(self, io: ExecutorIO) -> None:
        self.io = io

    async def build(self, rec: TradeRecord, n: int) -> SignedAttempt:
        """Attempt ``n`` of ``rec``: signed, durable, appended to its attempts. Raises TradeError."""
        io, req, s = self.io, rec.request, self.io.settings
        rec.phase, rec.attempt_no = TradePhase.QUOTING, n
        io.check_gate(req)
        # The vault's own authority: its wallet, fee payer and the only key that signs for it.
        fee_payer = await self.authority(req.vault_id)
        in_mint, out_mint = Pubkey.from_string(req.input_mint), Pubkey.from_string(req.output_mint)
        quote = await jupiter_call(io.quotes.quote(in_mint, out_mint, req.amount_in, req.slippage_bps))
        raw = quote.answer_json()
        in_amount, out_amount, impact_bps = check_quote_basics(
            raw, input_mint=req.input_mint, output_mint=req.output_mint, amount_in=req.amount_in,
            slippage_bps=req.slippage_bps,
        )
        min_out = quote.other_amount_threshold
        if io.options.quote_check is not None:
            prices = usd_prices(await jupiter_call(io.quotes.prices([in_mint, out_mint])))
            reason = io.options.quote_check(req, raw, prices)
            if reason is not None:
                raise TradeError(ErrorClass.SLIPPAGE, reason)
        io.breaker(ErrorClass.SLIPPAGE, True, "quote within limits")
        # The route for the vault's own wallet: its associated accounts, its signature alone.
        route = await jupiter_call(io.quotes.swap_instructions(quote, fee_payer))
        fee = await io.chain.priority_fee([fee_payer])
        tables = await io.routes.tables(route.address_lookup_table_addresses)
        blockhash, last_valid = await io.chain.blockhash()  # last: it ages from here to the send
        memo = f"xorj:{req.trade_id}"
        legs = route.route_instructions()

        def compile_with(units: int) -> MessageV0:
            instructions = framed(legs, compute_units=units, micro_lamports=fee, memo=memo)
            return io.routes.compile(fee_payer, instructions, tables, blockhash)

        # The budget: Jupiter's own simulated limit when it gives one (dynamicComputeUnitLimit),
        # else from our probe's. The effect check below simulates the exact message, budget included.
        if route.compute_unit_limit:
            probe_units = None
            units = min(_MAX_COMPUTE_UNITS, max(s.min_compute_units, route.compute_unit_limit))
        else:
            probe = await io.chain.simulate(unsigned_transaction(compile_with(s.simulation_compute_units)))
            probe_units = probe.units
            units = max(s.min_compute_units, math.ceil(probe.units * s.compute_unit_margin))
        message = compile_with(units)
        # Allowlist, aggregator decoding, simulated effects of exactly this message: before the gate and the signature.
        vault = self.route_vault(req, fee_payer, in_mint, out_mint)
        terms = self.route_terms(raw, vault, req.slippage_bps)
        effects = await io.routes.check(
            message, vault, terms=terms, min_out=min_out, amount_in=req.amount_in,
            audit=lambda details, severity: io.audit(
                EventType.TRADE_EXECUTION, req.trade_id, {**details, "attempt": n, "api": TradeApi.SWAP.value}, severity
            ),
        )
        payload = message_bytes(message)
        rec.phase = TradePhase.SIGNING
        io.check_gate(req)  # the last moment before funds can move
        crash_point("before_sign")
        signed = await self.sign(req, payload)
        crash_point("after_sign")
        signature = Signature.from_bytes(signed.signature or b"")
        tx = signed_transaction(message, {fee_payer: signature})
        attempt = Attempt(
            number=n, signature=str(tx.signatures[0]), transaction_b64=base64.b64encode(bytes(tx)).decode(),
            last_valid_block_height=last_valid, in_amount=in_amount, out_amount=out_amount,
        )
        await io.durable(
            EventType.TRADE_EXECUTION, req.trade_id,
            {
                "phase": "signed", "attempt": n, "signature": attempt.signature,
                # What the signer saw: its own clock, read before the halt board it checked.
                "signed_at": signer_time(signed.signed_at_ns), "halt_epoch": signed.halt_epoch,
                "halt_state": signed.halt_state,
                "transaction": attempt.transaction_b64, "last_valid_block_height": last_valid,
                "lookup_tables": [str(k) for k in route.address_lookup_table_addresses], "in_amount": in_amount, "out_amount": out_amount,
                "min_out": min_out, "api": TradeApi.SWAP.value, "price_impact_bps": round(impact_bps, 2),
                "compute_units": units, "simulated_units": effects.units, "probe_units": probe_units,
                "micro_lamports": fee, "simulation_logs": list(effects.logs[-10:]),
            },
        )
        rec.attempts.append(attempt)
        return SignedAttempt(attempt, tx)

    def route_vault(self, req: TradeRequest, authority: Pubkey, in_mint: Pubkey, out_mint: Pubkey) -> RouteVault:
        """The vault's parties and its two token accounts (its authority's associated accounts)."""
        account = self.io.options.vault_account
        if account is not None:
            source, destination = account(req.vault_id, req.input_mint), account(req.vault_id, req.output_mint)
        else:
            source = get_associated_token_address(authority, in_mint)
            destination = get_associated_token_address(authority, out_mint)
        return RouteVault(RouteParties(authority), in_mint, out_mint, source, destination)

    def route_terms(self, quote: Mapping[str, Any], vault: RouteVault, slippage_bps: int) -> RouteTerms:
        """What a decoded aggregator instruction must say: the quote's amounts, our limits."""
        try:
            return RouteTerms.from_quote(
                quote, authority=vault.parties.authority, source=vault.source, destination=vault.destination,
                max_slippage_bps=slippage_bps, max_platform_fee_bps=self.io.settings.routes.max_platform_fee_bps,
            )
        except ValueError as exc:
            raise TradeError(ErrorClass.UNKNOWN, f"quote makes no sense: {exc}") from None

    async def authority(self, vault: str) -> Pubkey:
        """Vault ``vault``'s authority: from its store's board, else found by asking the Signer
        (a vault its start did not load). Raises TradeError (SIGNER) when the store has none."""
        try:
            return self.io.options.vault_authority(vault)
        except KeyError:
            pass
        found = await self._ask_signer(FindVaultKey(vault_id=vault))
        if found.public_key is None:
            raise TradeError(ErrorClass.SIGNER, f"{vault}: no authority key: {found.reason}")
        return Pubkey.from_string(found.public_key)

    async def _ask_signer(self, message: Any) -> Any:
        io, signer = self.io, self.io.options.signer
        ref = io.runtime.whereis(signer_name(signer))
        if ref is None:
            raise TradeError(ErrorClass.SIGNER, f"signer {signer!r} is not running")
        try:
            return await asyncio.wait_for(ref.ask(message, block=False), io.settings.internal_timeout_s)
        except (ActorDeadError, MailboxFull, TimeoutError) as exc:
            raise TradeError(ErrorClass.SIGNER, f"signer {signer!r} did not answer: {exc!r}") from exc

    async def sign(self, req: TradeRequest, payload: bytes) -> SignResult:
        """The vault authority's signature, from the Signer actor (it refuses once halted), with
        the signer's time and the halt epoch it checked."""
        io = self.io
        result = await self._ask_signer(
            SignRequest(
                trade_id=req.trade_id, vault_id=req.vault_id, payload=payload, reduces_exposure=req.reduces_exposure
            )
        )
        if result.signature is None:
            refused = str(result.refused)
            cls = ErrorClass.HALTED if refused.startswith("halted") else ErrorClass.SIGNER
            raise TradeError(cls, f"signer refused: {refused}")
        io.breaker(ErrorClass.SIGNER, True, "signed")
        return result
