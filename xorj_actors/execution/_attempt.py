"""One attempt of a trade, from a route to signed bytes that are durable in the audit log.

The API the policy chooses builds the route (:mod:`._build_ultra`: Ultra's order;
:mod:`._build_swap`: the Swap API's quote and instructions, framed and compiled by us); both pass
the one money check and the same route checks (allowlist, aggregator decoding, simulated effects).
Then the gate again, the Signer's signature, and the signed attempt durable before anything is
sent. "Ultra, then the Swap API" falls back only when Ultra's order found no route.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from pykka import ActorDeadError
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from loguru import logger

from supervisors import MailboxFull
from xorj_actors.audit import EventType, utc_timestamp
from xorj_actors.execution._build_swap import build_swap
from xorj_actors.execution._build_ultra import build_ultra
from xorj_actors.execution._crash import crash_point
from xorj_actors.execution._effects import balances
from xorj_actors.execution._effects_io import SimulatedEffects
from xorj_actors.execution._errors import ErrorClass, TradeError
from xorj_actors.execution._io import ExecutorIO
from xorj_actors.execution._ledger import Attempt, TradeRecord
from xorj_actors.execution._messages import TradePhase, TradeRequest
from xorj_actors.execution._allowlist import RouteParties, associated_account
from xorj_actors.execution._clients import jupiter_call, refused, usd_prices
from xorj_actors.execution._jupiter import RouteTerms
from xorj_actors.execution._prices import ReferencePrices
from xorj_actors.execution._money import MoneyCheck, MoneyLimits, check_money
from xorj_actors.execution._route import BuiltRoute, RouteVault
from xorj_actors.execution._transaction import message_bytes, signed_transaction
from xorj_actors.jupiter import JupiterRefused, Terms, TradeApi, fallback_api, first_api
from xorj_actors.quotas import Endpoint
from xorj_actors.signers import FindVaultKey, SignRequest, SignResult, signer_name

__all__ = ["AttemptBuilder", "MessageClaims", "SignedAttempt"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def signer_time(ns: int) -> str:
    """The signer's clock as the audit log writes times (``utc_timestamp``), truncated, never rounded up."""
    return utc_timestamp(_EPOCH + timedelta(microseconds=ns // 1000))


@dataclass(frozen=True, slots=True)
class SignedAttempt:
    """An attempt durable as signed, and its transaction, ready to send (Ultra: to ``/execute``,
    with only our signature in it when the market maker still has to add its own)."""

    attempt: Attempt
    tx: VersionedTransaction


def _digest(message: MessageV0) -> bytes:
    return hashlib.sha256(message_bytes(message)).digest()


class MessageClaims:
    """Which trade each built message belongs to, until that trade is final.

    Two trades must never sign the same message: one landing would settle both. The Swap API's
    messages carry our memo with the trade id; Ultra's are Jupiter's own, so a vault's identical
    trades ordered at one blockhash get identical transactions (and Ed25519 signatures are
    deterministic, so identical ids too).
    """

    def __init__(self) -> None:
        self._holders: dict[bytes, str] = {}

    def claim(self, rec: TradeRecord, message: MessageV0) -> str | None:
        """Claim ``message`` for ``rec``; the trade already holding it, if another."""
        digest = _digest(message)
        holder = self._holders.setdefault(digest, rec.trade_id)
        if holder != rec.trade_id or digest in rec.claims:
            return holder  # another trade's, or this trade's earlier attempt's (it failed or expired)
        rec.claims.append(digest)
        return None

    def adopt(self, rec: TradeRecord, message: MessageV0) -> None:
        """Claim a message ``rec`` already signed (read back from the log)."""
        digest = _digest(message)
        holder = self._holders.setdefault(digest, rec.trade_id)
        if holder != rec.trade_id:
            logger.critical("trades {} and {} both signed one message: one landing would settle both", holder, rec.trade_id)
        elif digest not in rec.claims:
            rec.claims.append(digest)

    def release(self, rec: TradeRecord) -> None:
        """``rec`` is final: its messages are free (none of them can land any more)."""
        for digest in rec.claims:
            if self._holders.get(digest) == rec.trade_id:
                del self._holders[digest]
        rec.claims.clear()

    def __len__(self) -> int:
        return len(self._holders)


class AttemptBuilder:
    """Builds, signs and records attempts (on the executor's loop)."""

    def __init__(self, io: ExecutorIO) -> None:
        self.io = io
        self.claims = MessageClaims()
        #: Jupiter's reference prices, one request for the checks asking the same mints at once.
        self.prices = ReferencePrices(io.settings.price_max_age_s)
        routes = io.settings.routes
        self.limits = MoneyLimits(
            max_platform_fee_bps=routes.max_platform_fee_bps, max_ultra_fee_bps=routes.max_ultra_fee_bps,
            decimals=io.options.decimals,
        )

    async def build(self, rec: TradeRecord, n: int) -> SignedAttempt:
        """Attempt ``n`` of ``rec``: signed, durable, appended to its attempts. Raises TradeError."""
        io, req = self.io, rec.request
        rec.phase, rec.attempt_no = TradePhase.QUOTING, n
        io.check_gate(req)
        # The vault's own authority: its wallet, fee payer and the only key that signs for it.
        authority = await self.authority(req.vault_id)
        vault = self.route_vault(req, authority)
        policy = io.options.jupiter.api
        api = first_api(policy)
        try:
            built = await (build_ultra if api is TradeApi.ULTRA else build_swap)(self, rec, authority, vault)
        except JupiterRefused as exc:
            fallback = fallback_api(policy, exc.refusal)
            if fallback is None:
                raise refused(exc) from exc
            io.audit(
                EventType.TRADE_EXECUTION, req.trade_id,
                {"phase": "api_fallback", "attempt": n, "from": api.value, "to": fallback.value, "refusal": str(exc.refusal)[:500]},
            )
            built = await build_swap(self, rec, authority, vault)
        return await self.sign_and_record(rec, n, vault, built)

    def quote_deadline(self) -> float:
        """Loop time after which a quote just received is too old to wait for a budget's turn."""
        return self.io.loop.time() + self.io.settings.quote_max_wait_s

    async def check_money(self, terms: Terms, api: TradeApi, req: TradeRequest, deadline: float | None = None) -> MoneyCheck:
        """The one money check (reference prices read when the engine gave decimals; their turn
        in the budget waits at most until ``deadline``, the quote's own age limit)."""
        io = self.io
        prices = None
        if self.limits.decimals:
            mints = [terms.input_mint, terms.output_mint]

            async def fetch() -> dict[str, float]:
                return usd_prices(await jupiter_call(io.budgeted(
                    Endpoint.JUPITER_PRICE, req.vault_id, lambda: io.quotes.prices(mints), deadline=deadline
                )))

            prices = await self.prices.get(mints, fetch)
        money = check_money(terms, api, req, self.limits, prices)
        io.breaker(ErrorClass.SLIPPAGE, True, "quote within limits")
        return money

    async def check_route(
        self, rec: TradeRecord, api: TradeApi, message: MessageV0, vault: RouteVault, terms: Terms, min_out: int,
        *, height: bool = False,
    ) -> SimulatedEffects:
        """Allowlist, aggregator decoding, simulated effects of exactly ``message`` (``height``:
        and the newest blockhash's last valid height): before the gate and the signature. A
        refusal is audited with the API and the attempt."""
        io, req = self.io, rec.request
        return await io.routes.check(
            message, vault, terms=self.route_terms(terms, api, vault, req.slippage_bps), min_out=min_out,
            amount_in=req.amount_in, height=height,
            audit=lambda details, severity: io.audit(
                EventType.TRADE_EXECUTION, req.trade_id, {**details, "attempt": rec.attempt_no, "api": api.value}, severity
            ),
        )

    async def sign_and_record(self, rec: TradeRecord, n: int, vault: RouteVault, built: BuiltRoute) -> SignedAttempt:
        """The gate again, our signature, and the signed attempt durable (before any send)."""
        io, req = self.io, rec.request
        message, authority = built.message, vault.parties.authority
        payload = message_bytes(message)
        rec.phase = TradePhase.SIGNING
        io.check_gate(req)  # the last moment before funds can move
        revision = io.check_fence(rec)  # cluster: still this node's vault (intent, fence, sign, fence, send)
        crash_point("before_sign")
        signed = await self.sign(req, payload, rec.tenure)
        crash_point("after_sign")
        ours = Signature.from_bytes(signed.signature or b"")
        if built.api is TradeApi.SWAP:
            tx = signed_transaction(message, {authority: ours})
        else:
            tx = partially_signed(message, authority, ours)
        # The transaction's id is its first signature: ours when we pay the fee; an RFQ maker's
        # (Ultra, gasless) is known only once /execute answers.
        tx_id = str(ours) if message.account_keys[0] == authority else ""
        money = built.money
        attempt = Attempt(
            number=n, signature=tx_id, transaction_b64=base64.b64encode(bytes(tx)).decode(),
            last_valid_block_height=built.last_valid_block_height, in_amount=money.in_amount, out_amount=money.out_amount,
            api=built.api, request_id=built.request_id, our_signature=None if tx_id else str(ours),
            pre_state=_pre_state(built, vault), lease_revision=revision,
        )
        await io.durable(
            EventType.TRADE_EXECUTION, req.trade_id,
            {
                "phase": "signed", "attempt": n, "signature": attempt.signature, "api": built.api.value,
                "our_signature": attempt.our_signature, "request_id": attempt.request_id,
                # What the signer saw: its own clock, read before the halt board it checked.
                "signed_at": signer_time(signed.signed_at_ns), "halt_epoch": signed.halt_epoch,
                "halt_state": signed.halt_state,
                # The fencing token this signature was made under (None: no cluster).
                "lease_revision": revision,
                "transaction": attempt.transaction_b64, "last_valid_block_height": attempt.last_valid_block_height,
                "in_amount": money.in_amount, "out_amount": money.out_amount, "min_out": money.min_out,
                "price_impact_bps": round(money.impact_bps, 2),
                "deviation_bps": None if money.deviation_bps is None else round(money.deviation_bps, 2),
                "simulated_units": built.effects.units, "simulation_logs": list(built.effects.logs[-10:]),
                "pre_state": attempt.pre_state, "effects": _simulated(built, vault), **built.details,
            },
        )
        rec.attempts.append(attempt)
        return SignedAttempt(attempt, tx)

    async def fence_before_send(self, rec: TradeRecord, attempt: Attempt) -> None:
        """The fence again, just before the first send (docs/CLUSTER.md, "The fence").

        Refused: a durable ``fenced`` entry says these signed bytes were never sent, then the
        attempt fails (FENCED, never retried). Nothing ever sends a fenced attempt's bytes: the
        restart or the new owner that reads the entry settles the trade as never sent. Should
        the entry not become durable, the attempt reads back as possibly sent and is settled
        by its signature, as after any crash between signing and sending.
        """
        io, req = self.io, rec.request
        try:
            io.check_fence(rec)
        except TradeError as refused:
            await io.durable(
                EventType.TRADE_EXECUTION, req.trade_id,
                {"phase": "fenced", "attempt": attempt.number, "signature": attempt.signature or attempt.our_signature,
                 "lease_revision": attempt.lease_revision, "sent": False, "reason": str(refused)},
            )
            attempt.fenced = True
            raise

    def route_vault(self, req: TradeRequest, authority: Pubkey) -> RouteVault:
        """The vault's parties and its two token accounts (its authority's associated accounts)."""
        in_mint, out_mint = Pubkey.from_string(req.input_mint), Pubkey.from_string(req.output_mint)
        account = self.io.options.vault_account
        if account is not None:
            source, destination = account(req.vault_id, req.input_mint), account(req.vault_id, req.output_mint)
        else:
            source, destination = associated_account(authority, in_mint), associated_account(authority, out_mint)
        return RouteVault(RouteParties(authority), in_mint, out_mint, source, destination)

    def route_terms(self, terms: Terms, api: TradeApi, vault: RouteVault, slippage_bps: int) -> RouteTerms:
        """What a decoded aggregator instruction must say: the quote's amounts, our limits."""
        limits = self.limits
        return RouteTerms.from_terms(
            terms, authority=vault.parties.authority, source=vault.source, destination=vault.destination,
            max_slippage_bps=slippage_bps,
            max_platform_fee_bps=limits.max_ultra_fee_bps if api is TradeApi.ULTRA else limits.max_platform_fee_bps,
        )

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
            async with asyncio.timeout(io.settings.internal_timeout_s):
                return await ref.ask(message, block=False)
        except (ActorDeadError, MailboxFull, TimeoutError) as exc:
            raise TradeError(ErrorClass.SIGNER, f"signer {signer!r} did not answer: {exc!r}") from exc

    async def sign(self, req: TradeRequest, payload: bytes, tenure: int = 0) -> SignResult:
        """The vault authority's signature, from the Signer actor (it refuses once halted, and in
        a cluster once the vault's lease holding ``tenure`` is gone), with the signer's time and
        the halt epoch it checked."""
        io = self.io
        result = await self._ask_signer(
            SignRequest(
                trade_id=req.trade_id, vault_id=req.vault_id, payload=payload, reduces_exposure=req.reduces_exposure,
                lease_tenure=tenure,
            )
        )
        if result.signature is None:
            refused = str(result.refused)
            cls = (ErrorClass.HALTED if refused.startswith("halted")
                   else ErrorClass.FENCED if refused.startswith("fenced") else ErrorClass.SIGNER)
            raise TradeError(cls, f"signer refused: {refused}")
        io.breaker(ErrorClass.SIGNER, True, "signed")
        return result


def partially_signed(message: MessageV0, signer: Pubkey, signature: Signature) -> VersionedTransaction:
    """``message`` with ``signature`` in ``signer``'s slot and the other slots empty (Ultra: Jupiter
    adds the market maker's at ``/execute``)."""
    required = list(message.account_keys[: message.header.num_required_signatures])
    if signer not in required:
        raise TradeError(ErrorClass.UNKNOWN, f"the order does not need {signer}'s signature")
    slots = [signature if key == signer else Signature.default() for key in required]
    return VersionedTransaction.populate(message, slots)


def _simulated(built: BuiltRoute, vault: RouteVault) -> dict[str, Any]:
    """The effect check's verdict for the record (execution proofs, docs/AUDIT.md): the slot it
    simulated at and the vault's accounts (``[lamports, token amount]``) before and after."""
    keys = sorted({vault.parties.authority, *vault.holdings}, key=str)
    effects = built.effects
    return {
        "verdict": "passed", "slot": effects.slot,
        "pre": balances({k: effects.pre.get(k) for k in keys}), "post": balances({k: effects.post.get(k) for k in keys}),
    }


def _pre_state(built: BuiltRoute, vault: RouteVault) -> dict[str, list[int | None]] | None:
    """The vault's accounts before the trade (``[lamports, token amount]``), kept only for an
    Ultra order whose id ``/execute`` must reveal (the maker pays the fee): what settles it if it
    never does."""
    authority = vault.parties.authority
    if built.api is not TradeApi.ULTRA or built.message.account_keys[0] == authority:
        return None
    keys = sorted({authority, *vault.holdings}, key=str)
    missing = [key for key in keys if key not in built.effects.pre]
    if missing:
        raise TradeError(ErrorClass.UNKNOWN, f"the effect check did not read the vault's account {missing[0]}")
    return balances({key: built.effects.pre[key] for key in keys})
