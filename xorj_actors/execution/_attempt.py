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
from typing import Any

from pykka import ActorDeadError
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from spl.token.constants import TOKEN_PROGRAM_ID

from supervisors import MailboxFull
from xorj_actors.audit import EventType, utc_timestamp
from xorj_actors.execution._crash import crash_point
from xorj_actors.execution._errors import ErrorClass, TradeError
from xorj_actors.execution._io import ExecutorIO
from xorj_actors.execution._ledger import Attempt, TradeRecord
from xorj_actors.execution._messages import TradePhase, TradeRequest
from xorj_actors.execution._transaction import (
    build_message,
    check_quote_basics,
    check_vault_legs,
    message_bytes,
    signed_transaction,
    swap_plan,
    unsigned_transaction,
)
from xorj_actors.signers import FindVaultKey, SignRequest, SignResult, signer_name

__all__ = ["AttemptBuilder", "SignedAttempt"]

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
        quote = await io.quotes.quote(req.input_mint, req.output_mint, req.amount_in, req.slippage_bps)
        in_amount, out_amount, impact_bps = check_quote_basics(
            quote, input_mint=req.input_mint, output_mint=req.output_mint, amount_in=req.amount_in,
            slippage_bps=req.slippage_bps,
        )
        if io.options.quote_check is not None:
            prices = await io.quotes.prices([req.input_mint, req.output_mint])
            reason = io.options.quote_check(req, quote, prices)
            if reason is not None:
                raise TradeError(ErrorClass.SLIPPAGE, reason)
        io.breaker(ErrorClass.SLIPPAGE, True, "quote within limits")
        quote_id = str(quote.get("quoteId", ""))
        plan = swap_plan(
            await io.quotes.swap_instructions(fee_payer, quote), quote_id, fee_payer=fee_payer
        )
        vault_account = io.options.vault_account
        if vault_account is not None:
            check_vault_legs(
                plan.legs,
                authority=fee_payer,
                token_program=TOKEN_PROGRAM_ID,
                source=vault_account(req.vault_id, req.input_mint),
                destination=vault_account(req.vault_id, req.output_mint),
                input_mint=req.input_mint,
                output_mint=req.output_mint,
                amount_in=req.amount_in,
                min_out=int(quote["otherAmountThreshold"]),
            )
        blockhash, last_valid = await io.chain.blockhash()
        fee = await io.chain.priority_fee([fee_payer])
        memo = f"xorj:{req.trade_id}"
        probe = build_message(
            fee_payer=fee_payer, legs=plan.legs, blockhash=blockhash,
            compute_units=s.simulation_compute_units, micro_lamports=fee, memo=memo,
        )
        sim = await io.chain.simulate(unsigned_transaction(probe))
        units = max(s.min_compute_units, math.ceil(sim.units * s.compute_unit_margin))
        message = build_message(
            fee_payer=fee_payer, legs=plan.legs, blockhash=blockhash, compute_units=units,
            micro_lamports=fee, memo=memo,
        )
        payload = message_bytes(message)
        required = list(message.account_keys[: message.header.num_required_signatures])
        co_signer, co_signature = await io.quotes.rfq_sign(quote_id, payload, required)
        rec.phase = TradePhase.SIGNING
        io.check_gate(req)  # the last moment before funds can move
        crash_point("before_sign")
        signed = await self.sign(req, payload)
        crash_point("after_sign")
        signature = Signature.from_bytes(signed.signature or b"")
        tx = signed_transaction(message, {fee_payer: signature, co_signer: co_signature})
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
                "quote_id": quote_id, "in_amount": in_amount, "out_amount": out_amount,
                "min_out": int(quote["otherAmountThreshold"]), "price_impact_bps": round(impact_bps, 2),
                "compute_units": units, "simulated_units": sim.units, "micro_lamports": fee,
                "simulation_logs": list(sim.logs[-10:]),
            },
        )
        rec.attempts.append(attempt)
        return SignedAttempt(attempt, tx)

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
