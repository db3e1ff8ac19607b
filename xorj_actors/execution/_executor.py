"""The Executor: carries each trade from request to a final, recorded outcome.

The actor is the mailbox; the work runs on its own event loop thread (:class:`_Pipeline`), one
task per trade, so hundreds of trades wait on the network at once without a thread each. All
trade state lives on that loop; the actor's handlers only hand messages over to it.

The order of every trade (docs/EXECUTION.md):

1. idempotency: an id with a recorded outcome is answered from the record, nothing runs;
2. gate: the kill switch armed, the breakers closed (or probing), the vault settled;
3. intent durable in the audit log;
4. quote, checked against the slippage limit; swap instructions; blockhash; priority fee;
5. simulate (compute units; any error refuses); build the final message; market maker co-signs;
6. gate again, then sign through the Signer actor (it refuses on its own once halted);
7. the signed bytes, signature and ``lastValidBlockHeight`` durable, then send (preflight at
   confirmed), watch through the Confirmation actor, rebroadcast the same bytes until final;
8. outcome durable, vault told. A retry is a new attempt only once the previous one can no
   longer land (failed on chain, refused by preflight, or expired for certain).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import math
import os
import random
import signal
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from loguru import logger
from pykka import ActorDeadError, ActorRef
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction
from spl.token.constants import TOKEN_PROGRAM_ID

from supervisors import MailboxFull
from xorj_actors.audit import (
    AUDIT_NAME,
    AppendDurable,
    AuditSettings,
    EventType,
    Severity,
    audit_event,
    load_hmac_key,
    open_store,
    record,
)
from xorj_actors.chain import SignatureOutcome, Unwatch, WatchRefused, WatchSignature
from xorj_actors.execution._clients import ChainClient, QuoteClient
from xorj_actors.execution._errors import ErrorClass, TradeError, backoff_s, classify_chain_error
from xorj_actors.execution._ledger import (
    Attempt,
    TradeRecord,
    load_open_trades,
    lookup_trade,
    outcome_details,
    request_details,
    same_trade,
)
from xorj_actors.execution._messages import FINAL_STATUSES, ExecutorStatus, GetExecutorStatus, TradeOutcome, TradeRequest
from xorj_actors.execution._transaction import (
    build_message,
    check_quote_basics,
    check_vault_legs,
    message_bytes,
    signed_transaction,
    swap_plan,
    unsigned_transaction,
)
from xorj_actors.execution.settings import ExecutionSettings
from xorj_actors.kill_switch import HaltBoard, Participant
from xorj_actors.messages import Halt, HaltMode
from supervisors import LoopThread
from xorj_actors.signers import SignRequest, signer_name

__all__ = ["EXECUTOR_NAME", "Executor", "QuoteCheck"]

#: The Executor's registered name in the runtime.
EXECUTOR_NAME = "executor"
_LOAD_RETRY_S = 2.0

#: Extra slippage check: (request, quote, reference USD prices by mint) -> refusal reason or None.
QuoteCheck = Callable[[TradeRequest, Mapping[str, Any], Mapping[str, float]], str | None]
#: Breaker gate: (reduces_exposure) -> refusal reason or None. Called on the executor's loop only.
Gate = Callable[[bool], str | None]
#: Breaker events: (runtime, breaker, ok, detail), i.e. :func:`xorj_actors.breakers.report`.
BreakerReport = Callable[[Any, str, bool, str], None]

# Which breaker hears about which failure class.
_BREAKER_OF: Mapping[ErrorClass, str] = {
    ErrorClass.NETWORK: "network_connectivity",
    ErrorClass.RATE_LIMITED: "network_connectivity",
    ErrorClass.TIMEOUT: "network_connectivity",
    ErrorClass.SIGNER: "hsm_failure_rate",
    ErrorClass.SLIPPAGE: "slippage_rejections",
    ErrorClass.UNKNOWN: "system_errors",
    ErrorClass.AUDIT: "system_errors",
}
#: Classes after which a trade's refusal is not a trade failure (nothing was wrong with the trade).
#: A str enum: the set matches the classes' plain values as outcomes carry them.
_NOT_A_FAILURE = frozenset(
    {
        ErrorClass.HALTED,
        ErrorClass.BREAKER_OPEN,
        ErrorClass.UNSETTLED,
        ErrorClass.SLIPPAGE,
        ErrorClass.NO_ROUTE,
        ErrorClass.NEVER_SENT,
        ErrorClass.REUSED_ID,
    }
)


class Executor(Participant):
    """The trade pipeline (see the module docstring).

    Args (``options`` are :class:`_Pipeline`'s keyword arguments):
        board: the halt board.
        settings: ``[execution]``.
        rpc_url, quote_url: JSON-RPC and quote-service endpoints.
        audit: ``[audit]``, to read the ledger back (the Audit actor writes it).
        data_dir, environment: where the audit store is and which HMAC-key rules apply.
        fee_payer: the vault authority (the signer's public key).
        signer: the ``[[signers.keys]]`` name that signs.
        gate, quote_check, report: breaker gate, extra slippage check, breaker events (optional).
        on_outcome: ``(outcome, seconds since the request)`` for metrics.
    """

    dedicated_thread: ClassVar[bool] = True  # it blocks only to load the ledger, but then for long

    def __init__(self, board: HaltBoard, settings: ExecutionSettings, **options: Any) -> None:
        super().__init__(board)
        self.pipeline = _Pipeline(self, board, settings, **options)
        self.runtime.register_name(EXECUTOR_NAME, self.actor_ref)

    def on_start(self) -> None:
        self.pipeline.start(self.actor_ref)
        super().on_start()

    def on_terminate(self) -> None:
        self.pipeline.stop()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, TradeRequest):
            self.pipeline.call(self.pipeline.submit, message)
            return None
        if isinstance(message, SignatureOutcome):
            self.pipeline.call(self.pipeline.on_signature_outcome, message)
            return None
        if isinstance(message, WatchRefused):
            self.pipeline.call(self.pipeline.on_watch_refused, message)
            return None
        if isinstance(message, GetExecutorStatus):
            return self.pipeline.status()
        return super().on_receive(message)

    def on_halt(self, halt: Halt) -> int:
        self.pipeline.call(self.pipeline.on_halt, halt.mode)
        return self.in_flight()

    def in_flight(self) -> int:
        return self.pipeline.awaiting_confirmation


class _Pipeline:
    """Everything below runs on the loop thread, except ``start``/``stop``/``call``/``status``."""

    def __init__(
        self,
        actor: Executor,
        board: HaltBoard,
        settings: ExecutionSettings,
        *,
        rpc_url: str,
        quote_url: str,
        audit: AuditSettings,
        data_dir: Path,
        environment: str,
        fee_payer: Pubkey,
        signer: str,
        gate: Gate | None = None,
        quote_check: QuoteCheck | None = None,
        report: BreakerReport | None = None,
        on_outcome: Callable[[TradeOutcome, float], None] | None = None,
        seed: int | None = None,
        stable_mint: str | None = None,
        vault_account: Callable[[str, str], Pubkey] | None = None,
    ) -> None:
        self.actor = actor
        self.runtime = actor.runtime
        self.board = board
        self.settings = settings
        self.audit_settings, self.data_dir, self.environment = audit, data_dir, environment
        self.fee_payer = fee_payer
        self.signer = signer
        self.gate, self.quote_check, self.report, self.on_outcome = gate, quote_check, report, on_outcome
        self.rng = random.Random(seed)
        self.stable_mint = stable_mint
        #: (vault id, mint) -> the vault's token account: every leg is checked against it.
        self.vault_account = vault_account
        self.loop_thread = LoopThread("executor-io")
        self.loop = self.loop_thread.loop
        self.chain = ChainClient(rpc_url, settings)
        self.quotes = QuoteClient(quote_url, settings)
        # One thread for ledger reads: peewee connections are per thread.
        self.db_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="executor-ledger")
        self.store: Any = None
        self.key = b""
        self.self_ref: ActorRef[Any] | None = None
        # -- loop state --
        self.records: dict[str, TradeRecord] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        #: trade id -> (its request, its final outcome), the newest ``outcome_cache``.
        self.outcomes: OrderedDict[str, tuple[TradeRequest, TradeOutcome]] = OrderedDict()
        self.unsettled: dict[str, set[str]] = {}
        #: vault -> its trades in flight (any phase).
        self.by_vault: dict[str, set[str]] = {}
        self.watches: dict[str, asyncio.Future[SignatureOutcome]] = {}
        self.watching: dict[str, tuple[TradeRequest, Attempt]] = {}
        self.reconciled = False
        self.accepted = 0
        self.awaiting_confirmation = 0
        self.counts: Counter[str] = Counter()

    # -- any thread ------------------------------------------------------------------------

    def start(self, self_ref: ActorRef[Any]) -> None:
        self.self_ref = self_ref
        self.loop_thread.start(self._setup(), timeout=self.settings.request_timeout_s)

    def stop(self) -> None:
        self.loop_thread.stop(self._cleanup, timeout=self.settings.request_timeout_s)
        self.db_pool.shutdown(wait=False, cancel_futures=True)

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def status(self) -> ExecutorStatus:
        """Read on the loop (its dicts change only there); the caller is the actor's own thread."""

        async def read() -> ExecutorStatus:
            return self._status()

        return asyncio.run_coroutine_threadsafe(read(), self.loop).result(self.settings.internal_timeout_s)

    def _status(self) -> ExecutorStatus:
        return ExecutorStatus(
            accepted=self.accepted,
            in_flight=len(self.records),
            awaiting_confirmation=self.awaiting_confirmation,
            unsettled_vaults=tuple(sorted(v for v, ids in self.unsettled.items() if ids)),
            in_flight_vaults=tuple(sorted(self.by_vault)),
            outcomes=tuple(sorted(self.counts.items())),
            reconciled=self.reconciled,
        )

    # -- set-up ------------------------------------------------------------------------------

    async def _setup(self) -> None:
        await self.quotes.open()
        self._spawn("ledger", self._load_ledger())

    async def _cleanup(self) -> None:
        for task in list(self.tasks.values()):
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        await self.quotes.close()
        await self.chain.close()

    def _spawn(self, name: str, coro: Any) -> asyncio.Task[None]:
        task = self.loop.create_task(coro, name=name)
        task.add_done_callback(self._task_done)
        return task

    @staticmethod
    def _task_done(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # A bug: the trade's own handler catches everything it knows. Never silent.
            logger.opt(exception=task.exception()).critical("executor task {} failed", task.get_name())

    def _open_ledger(self) -> list[TradeRecord]:
        if self.store is None:
            self.key = load_hmac_key(self.audit_settings.hmac_key_env, self.environment)
            self.store = open_store(self.audit_settings, self.data_dir)
        return load_open_trades(self.store, self.key)

    async def _db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.wait_for(
            self.loop.run_in_executor(self.db_pool, fn, *args), self.settings.internal_timeout_s
        )

    async def _load_ledger(self) -> None:
        """Read every open trade back and settle it from the chain; trade only after that."""
        while True:
            try:
                open_trades = await asyncio.wait_for(
                    self.loop.run_in_executor(self.db_pool, self._open_ledger), 60.0
                )
                break
            except Exception as exc:  # noqa: BLE001 - fail closed: no trade until it reads
                logger.error("executor: cannot read open trades from the audit log ({!r}); retrying", exc)
                await asyncio.sleep(_LOAD_RETRY_S)
        for rec in open_trades:
            if rec.trade_id in self.records:
                continue
            logger.warning(
                "executor: settling open trade {} of {} ({} signed attempts) from the chain",
                rec.trade_id, rec.request.vault_id, len(rec.attempts),
            )
            self._adopt(rec, unsettled=True)
            self.tasks[rec.trade_id] = self._spawn(rec.trade_id, self._resume(rec))
        self.reconciled = True
        self._audit(EventType.SYSTEM_EVENT, None, {"event": "executor_reconciling", "open_trades": len(open_trades)})

    def _adopt(self, rec: TradeRecord, *, unsettled: bool) -> None:
        rec.started = time.monotonic()
        self.records[rec.trade_id] = rec
        self.by_vault.setdefault(rec.request.vault_id, set()).add(rec.trade_id)
        if unsettled:
            self._unsettle(rec)

    def _unsettle(self, rec: TradeRecord) -> None:
        """The vault trades again only once this trade is settled (read back, or timed out)."""
        self.unsettled.setdefault(rec.request.vault_id, set()).add(rec.trade_id)

    # -- requests ----------------------------------------------------------------------------

    def submit(self, req: TradeRequest) -> None:
        done = self.outcomes.get(req.trade_id)
        if done is not None:
            first, outcome = done
            self._tell(req.reply_to, _replayed(outcome) if same_trade(first, req) else _reused(req))
            return
        rec = self.records.get(req.trade_id)
        if rec is not None:  # the same trade again while it runs: one execution, both answered
            if not same_trade(rec.request, req):
                self._tell(req.reply_to, _reused(req))
            elif req.reply_to is not None and req.reply_to not in rec.waiters:
                rec.waiters.append(req.reply_to)
            return
        reason = None
        if not self.reconciled:
            reason = "the executor is still reading open trades from the audit log"
        elif len(self.records) >= self.settings.max_in_flight:
            reason = f"{len(self.records)} trades in flight, the limit is {self.settings.max_in_flight}"
        elif self.unsettled.get(req.vault_id):
            reason = f"vault {req.vault_id} has unsettled trades: {sorted(self.unsettled[req.vault_id])[:3]}"
        elif other := [t for t in self.by_vault.get(req.vault_id, ()) if self.records[t].request.round_key != req.round_key]:
            # A vault never has two rounds in flight; a restarted vault that planned from balances
            # these trades have not changed yet would trade the same gap twice.
            reason = f"vault {req.vault_id} has trades of another round in flight: {sorted(other)[:3]}"
        if reason is not None:
            outcome = _rejected(req, ErrorClass.UNSETTLED, reason)
            self.counts[outcome.status] += 1
            self._observe(outcome, 0.0)
            self._tell(req.reply_to, outcome)
            return
        self.accepted += 1
        rec = TradeRecord(request=req, waiters=[req.reply_to] if req.reply_to is not None else [])
        self._adopt(rec, unsettled=False)
        task = self.tasks[req.trade_id] = self._spawn(req.trade_id, self._run(rec))
        task.add_done_callback(lambda t: self._dropped(t, rec))

    def on_halt(self, mode: HaltMode) -> None:
        if mode is not HaltMode.EMERGENCY:
            return  # unsigned work is refused at the gate before it is signed
        for trade_id, rec in list(self.records.items()):
            if rec.phase in ("new", "quoting"):
                task = self.tasks.get(trade_id)
                if task is not None:
                    rec.dropped = True  # a cancel now means the halt, not the executor stopping
                    task.cancel()  # dropped at once, never signed

    def _dropped(self, task: asyncio.Task[None], rec: TradeRecord) -> None:
        """A task cancelled before its first step never ran its handler: settle it here."""
        if task.cancelled() and rec.dropped and self.records.get(rec.trade_id) is rec and rec.phase in ("new", "quoting"):
            outcome = _rejected(rec.request, ErrorClass.HALTED, "dropped by an emergency halt before signing")
            self._spawn(f"drop:{rec.trade_id}", self._finish(rec, outcome))

    def on_signature_outcome(self, outcome: SignatureOutcome) -> None:
        waiter = self.watches.pop(outcome.signature, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(outcome)

    # -- one trade ---------------------------------------------------------------------------

    async def _run(self, rec: TradeRecord) -> None:
        req = rec.request
        try:
            intent, known = await self._db(lookup_trade, self.store, self.key, req.trade_id)
        except Exception as exc:  # noqa: BLE001 - the log may hold an outcome: record nothing
            logger.error("trade {}: cannot read its record from the audit log: {!r}", req.trade_id, exc)
            await self._finish(rec, _rejected(req, ErrorClass.AUDIT, f"audit log unreadable: {exc!r}"), record=False)
            return
        try:
            if intent is not None and not same_trade(intent, req):
                await self._finish(rec, _reused(req), record=False)
                return
            if isinstance(known, TradeOutcome):
                await self._finish(rec, known, record=False)
                return
            if isinstance(known, TradeRecord):  # open in the log, not loaded: settle it as loaded
                rec.attempts = known.attempts
                await self._resume(rec)
                return
            self._check_gate(req)
            await self._durable(EventType.TRADE_INTENT, req.trade_id, request_details(req))
            outcome = await self._attempts(rec)
        except asyncio.CancelledError:
            if not (rec.dropped and rec.phase in ("new", "quoting")):
                raise  # the executor is stopping: the log still holds the trade open
            outcome = _rejected(req, ErrorClass.HALTED, "dropped by an emergency halt before signing")
        except TradeError as err:
            outcome = _rejected(req, err.error_class, str(err))
        except Exception as exc:  # noqa: BLE001 - unknown: never retried, a system error
            logger.opt(exception=exc).error("trade {}: unexpected failure", req.trade_id)
            outcome = _rejected(req, ErrorClass.UNKNOWN, f"{type(exc).__name__}: {exc}")
        await self._finish(rec, outcome)

    async def _resume(self, rec: TradeRecord) -> None:
        """Settle a trade read back from the log: its last attempt, then retries as usual."""
        req = rec.request
        try:
            if not rec.attempts:
                # Nothing was durable as signed, so nothing was sent: it can never land.
                outcome = _outcome(
                    req, "expired", None, "never sent: the engine stopped before sending", ErrorClass.NEVER_SENT, rec
                )
            else:
                last = rec.attempts[-1]
                rec.attempt_no = rec.tries = last.number
                tx = VersionedTransaction.from_bytes(base64.b64decode(last.transaction_b64))
                try:
                    outcome = await self._land(rec, last, tx, first_send=False)
                except TradeError as err:
                    retried = await self._after_failure(rec, err)
                    if retried is None:
                        self._check_gate(req)
                        retried = await self._attempts(rec)
                    outcome = retried
        except asyncio.CancelledError:
            if not (rec.dropped and rec.phase in ("new", "quoting")):
                raise
            outcome = _outcome(req, "rejected", None, "dropped by an emergency halt before signing", ErrorClass.HALTED, rec)
        except TradeError as err:
            outcome = _rejected(req, err.error_class, str(err))
        except Exception as exc:  # noqa: BLE001
            logger.opt(exception=exc).error("trade {}: unexpected failure while settling", req.trade_id)
            outcome = _rejected(req, ErrorClass.UNKNOWN, f"{type(exc).__name__}: {exc}")
        await self._finish(rec, outcome)

    async def _attempts(self, rec: TradeRecord) -> TradeOutcome:
        while True:
            try:
                rec.tries += 1  # every attempt counts, signed or not: the limit must bind
                return await self._attempt(rec, rec.tries)
            except TradeError as err:
                outcome = await self._after_failure(rec, err)
                if outcome is not None:
                    return outcome

    async def _after_failure(self, rec: TradeRecord, err: TradeError) -> TradeOutcome | None:
        """Record a failed attempt; the final outcome, or None after waiting to try again."""
        req = rec.request
        n = rec.attempt_no
        cls = err.error_class
        if cls is ErrorClass.EXPIRED_BLOCKHASH:
            self.chain.forget_blockhash()  # or the retry is built on the same dead hash
        self._breaker(cls, False, str(err))
        self._audit(
            EventType.TRADE_EXECUTION, req.trade_id,
            {"phase": "attempt_failed", "attempt": n, "error_class": cls.value, "error": str(err)[:2000]},
            severity=Severity.WARNING,
        )
        landed_failed = rec.phase == "sent"  # the failure came from the chain itself
        rec.phase = "new"
        if cls.retry is None or n >= self.settings.retry.max_attempts:
            status = "failed" if landed_failed else "expired" if cls is ErrorClass.EXPIRED_BLOCKHASH else "rejected"
            return _outcome(req, status, None, str(err), cls, rec)
        try:
            self._check_gate(req)  # halted (REDUCING lets a flatten trade retry), or a breaker opened
        except TradeError as refused:
            return _outcome(req, "rejected", None, f"{refused}; last error: {err}", refused.error_class, rec)
        delay = backoff_s(err, n, self.settings.retry, self.rng)
        if delay > self.settings.retry.max_retry_after_s:
            return _outcome(req, "rejected", None, f"retry in {delay:.0f} s is too late: {err}", cls, rec)
        if delay:
            await asyncio.sleep(delay)
        return None

    def _check_gate(self, req: TradeRequest) -> None:
        status = self.board.status
        reducing = (
            status.reducing
            and req.reduces_exposure
            and req.vault_id in status.reducing_vaults
            # A flatten sells into the stablecoin and nothing else: a "reducing" buy is refused.
            and (self.stable_mint is None or req.output_mint == self.stable_mint)
        )
        if status.halted and not reducing:
            # REDUCING (an operator's flatten) lets through only exposure-reducing trades of the
            # vaults being flattened; the Signer checks the reducing rule again at the last moment.
            only = ""
            if status.reducing:
                only = ": only trades that reduce exposure" if not req.reduces_exposure else f": {req.vault_id} is not being flattened"
            raise TradeError(ErrorClass.HALTED, f"kill switch {status.state} (epoch {status.epoch}){only}")
        if self.gate is not None:
            reason = self.gate(req.reduces_exposure)
            if reason is not None:
                raise TradeError(ErrorClass.BREAKER_OPEN, reason)

    async def _attempt(self, rec: TradeRecord, n: int) -> TradeOutcome:
        req, s = rec.request, self.settings
        rec.phase, rec.attempt_no = "quoting", n
        self._check_gate(req)
        quote = await self.quotes.quote(req.input_mint, req.output_mint, req.amount_in, req.slippage_bps)
        in_amount, out_amount, impact_bps = check_quote_basics(
            quote, input_mint=req.input_mint, output_mint=req.output_mint, amount_in=req.amount_in,
            slippage_bps=req.slippage_bps,
        )
        if self.quote_check is not None:
            prices = await self.quotes.prices([req.input_mint, req.output_mint])
            reason = self.quote_check(req, quote, prices)
            if reason is not None:
                raise TradeError(ErrorClass.SLIPPAGE, reason)
        self._breaker(ErrorClass.SLIPPAGE, True, "quote within limits")
        quote_id = str(quote.get("quoteId", ""))
        plan = swap_plan(
            await self.quotes.swap_instructions(self.fee_payer, quote, req.vault_id), quote_id, fee_payer=self.fee_payer
        )
        if self.vault_account is not None:
            check_vault_legs(
                plan.legs,
                authority=self.fee_payer,
                token_program=TOKEN_PROGRAM_ID,
                source=self.vault_account(req.vault_id, req.input_mint),
                destination=self.vault_account(req.vault_id, req.output_mint),
                input_mint=req.input_mint,
                output_mint=req.output_mint,
                amount_in=req.amount_in,
                min_out=int(quote["otherAmountThreshold"]),
            )
        blockhash, last_valid = await self.chain.blockhash()
        fee = await self.chain.priority_fee([self.fee_payer])
        memo = f"xorj:{req.trade_id}"
        probe = build_message(
            fee_payer=self.fee_payer, legs=plan.legs, blockhash=blockhash,
            compute_units=s.simulation_compute_units, micro_lamports=fee, memo=memo,
        )
        sim = await self.chain.simulate(unsigned_transaction(probe))
        units = max(s.min_compute_units, math.ceil(sim.units * s.compute_unit_margin))
        message = build_message(
            fee_payer=self.fee_payer, legs=plan.legs, blockhash=blockhash, compute_units=units,
            micro_lamports=fee, memo=memo,
        )
        payload = message_bytes(message)
        required = list(message.account_keys[: message.header.num_required_signatures])
        co_signer, co_signature = await self.quotes.rfq_sign(quote_id, payload, required)
        rec.phase = "signing"
        self._check_gate(req)  # the last moment before funds can move
        crash_point("before_sign")
        signature = await self._sign(req, payload)
        crash_point("after_sign")
        tx = signed_transaction(message, {self.fee_payer: signature, co_signer: co_signature})
        attempt = Attempt(
            number=n, signature=str(tx.signatures[0]), transaction_b64=base64.b64encode(bytes(tx)).decode(),
            last_valid_block_height=last_valid, in_amount=in_amount, out_amount=out_amount,
        )
        await self._durable(
            EventType.TRADE_EXECUTION, req.trade_id,
            {
                "phase": "signed", "attempt": n, "signature": attempt.signature,
                "transaction": attempt.transaction_b64, "last_valid_block_height": last_valid,
                "quote_id": quote_id, "in_amount": in_amount, "out_amount": out_amount,
                "min_out": int(quote["otherAmountThreshold"]), "price_impact_bps": round(impact_bps, 2),
                "compute_units": units, "simulated_units": sim.units, "micro_lamports": fee,
                "simulation_logs": list(sim.logs[-10:]),
            },
        )
        rec.attempts.append(attempt)
        crash_point("before_send")
        return await self._land(rec, attempt, tx, first_send=True)

    async def _sign(self, req: TradeRequest, payload: bytes) -> Signature:
        ref = self.runtime.whereis(signer_name(self.signer))
        if ref is None:
            raise TradeError(ErrorClass.SIGNER, f"signer {self.signer!r} is not running")
        try:
            result = await asyncio.wait_for(
                ref.ask(
                    SignRequest(trade_id=req.trade_id, payload=payload, reduces_exposure=req.reduces_exposure),
                    block=False,
                ),
                self.settings.internal_timeout_s,
            )
        except (ActorDeadError, MailboxFull, TimeoutError) as exc:
            raise TradeError(ErrorClass.SIGNER, f"signer {self.signer!r} did not answer: {exc!r}") from exc
        if result.signature is None:
            refused = str(result.refused)
            cls = ErrorClass.HALTED if refused.startswith("halted") else ErrorClass.SIGNER
            raise TradeError(cls, f"signer refused: {refused}")
        self._breaker(ErrorClass.SIGNER, True, "signed")
        return Signature.from_bytes(result.signature)

    async def _land(self, rec: TradeRecord, attempt: Attempt, tx: VersionedTransaction, *, first_send: bool) -> TradeOutcome:
        """Send, watch and rebroadcast one signed attempt until the chain settles it."""
        req = rec.request
        rec.phase = "sent"
        self.awaiting_confirmation += 1
        try:
            while True:
                waiter = self._watch(req, attempt)
                rebroadcast: asyncio.Task[None] | None = None
                try:
                    if first_send:
                        # Rebroadcasting only after the preflight answered: a copy sent meanwhile
                        # could land after a preflight refusal that makes us sign anew.
                        first_send = False
                        await self._send_first(rec, attempt, tx, waiter)
                    rebroadcast = self._spawn(f"rebroadcast:{attempt.signature[:8]}", self._rebroadcast(tx, waiter))
                    result = await waiter
                finally:
                    if rebroadcast is not None:
                        rebroadcast.cancel()
                    self.watches.pop(attempt.signature, None)
                    self.watching.pop(attempt.signature, None)
                if result.status == "timed_out":
                    # Not final: it may still land. The vault hears it; we keep watching.
                    self._breaker(ErrorClass.TIMEOUT, False, "confirmation timed out")
                    self._report_confirmation_timeout(req)
                    if not rec.timed_out:
                        rec.timed_out = True
                        self._unsettle(rec)
                        timed_out = _outcome(req, "timed_out", result, result.error, ErrorClass.TIMEOUT, rec)
                        self._observe(timed_out, time.monotonic() - rec.started)
                        self._tell_all(rec, timed_out)
                    continue
                crash_point("confirming")
                return self._settled(rec, result)
        finally:
            self.awaiting_confirmation -= 1

    async def _send_first(self, rec: TradeRecord, attempt: Attempt, tx: VersionedTransaction, waiter: asyncio.Future[Any]) -> None:
        try:
            await self.chain.send(tx, preflight=True)
        except TradeError as err:
            if err.error_class.retry == "exponential" or err.error_class in (ErrorClass.TIMEOUT, ErrorClass.UNKNOWN):
                # Maybe sent, maybe not: the watch and the rebroadcast find out. Never re-sign here.
                logger.warning("trade {}: first send uncertain ({}); rebroadcasting", rec.trade_id, err)
                self._breaker(err.error_class, False, str(err))
                return
            # Preflight refused it: the node did not forward it, these bytes never land.
            self._unwatch(attempt.signature)
            rec.phase = "refused"
            raise
        self._audit(EventType.TRADE_EXECUTION, rec.trade_id, {"phase": "sent", "attempt": attempt.number, "signature": attempt.signature})
        crash_point("after_send")

    def _settled(self, rec: TradeRecord, result: SignatureOutcome) -> TradeOutcome:
        req = rec.request
        if result.status == "confirmed":
            self._breaker(None, True, "confirmed")
            return _outcome(req, "confirmed", result, None, None, rec)
        if result.status == "failed":
            cls = classify_chain_error(result.error or "null")
            if cls.retry is not None:
                raise TradeError(cls, f"failed on chain: {result.error}")  # final on chain: safe to retry
            return _outcome(req, "failed", result, result.error, cls, rec)
        if result.status == "expired":
            rec.phase = "expired"
            raise TradeError(ErrorClass.EXPIRED_BLOCKHASH, f"expired: {result.error}")
        raise TradeError(ErrorClass.UNKNOWN, f"confirmation answered {result.status!r}")

    def _watch(self, req: TradeRequest, attempt: Attempt) -> asyncio.Future[SignatureOutcome]:
        waiter: asyncio.Future[SignatureOutcome] = self.loop.create_future()
        self.watches[attempt.signature] = waiter
        self.watching[attempt.signature] = (req, attempt)
        self._tell_watch(attempt.signature)
        return waiter

    def _tell_watch(self, signature: str) -> None:
        """Ask the Confirmation actor to watch; until it has, try again every second."""
        if signature not in self.watches:
            return
        req, attempt = self.watching[signature]
        ref = self.runtime.whereis("confirmation")
        message = WatchSignature(
            trade_id=req.trade_id, signature=signature, value_usd=req.value_usd,
            last_valid_block_height=attempt.last_valid_block_height, reply_to=self.self_ref,
        )
        try:
            if ref is None:
                raise ActorDeadError("confirmation actor not running")
            ref.tell(message)
        except (ActorDeadError, MailboxFull) as exc:
            # Without a watch we cannot learn the outcome: keep the bytes, ask again.
            logger.error("trade {}: cannot watch {}: {!r}; retrying", req.trade_id, signature, exc)
            self.loop.call_later(1.0, self._tell_watch, signature)

    def on_watch_refused(self, refused: WatchRefused) -> None:
        # Without a watch the outcome cannot be known: the trade stays unsettled (fail closed)
        # and the watch is asked for again; a full watcher soon, anything else is a fault to fix.
        busy = "max_in_flight" in refused.reason
        log = logger.warning if busy else logger.critical
        log("trade {}: watch of {} refused: {}; asking again", refused.trade_id, refused.signature, refused.reason)
        self.loop.call_later(1.0 if busy else 10.0, self._tell_watch, refused.signature)

    def _unwatch(self, signature: str) -> None:
        self.watches.pop(signature, None)
        self.watching.pop(signature, None)
        ref = self.runtime.whereis("confirmation")
        if ref is not None:
            try:
                ref.tell(Unwatch(signature=signature))
            except (ActorDeadError, MailboxFull):
                pass  # its watch ends with the tier timeout anyway

    async def _rebroadcast(self, tx: VersionedTransaction, waiter: asyncio.Future[Any]) -> None:
        interval = self.settings.rebroadcast_interval_s
        while not waiter.done():
            await asyncio.sleep(interval)
            if waiter.done():
                return
            try:
                await self.chain.send(tx, preflight=False)
            except TradeError as err:
                logger.debug("rebroadcast of {} failed: {}", tx.signatures[0], err)

    def _report_confirmation_timeout(self, req: TradeRequest) -> None:
        if self.report is not None:
            self.report(self.runtime, "confirmation_timeouts", False, f"trade {req.trade_id} not confirmed in its tier's time")

    # -- the end of a trade ------------------------------------------------------------------

    async def _finish(self, rec: TradeRecord, outcome: TradeOutcome, *, record: bool = True) -> None:
        req = rec.request
        rec.phase = "finishing"  # an emergency halt no longer cancels it: the outcome is decided
        if record and outcome.status in FINAL_STATUSES:
            try:
                await self._durable(EventType.TRADE_CONFIRMATION, req.trade_id, outcome_details(outcome))
            except TradeError as err:
                # The chain has the truth; a restart settles it again from the signed attempts.
                logger.critical("trade {}: outcome {} not recorded: {}", req.trade_id, outcome.status, err)
        if outcome.status in FINAL_STATUSES:
            self.records.pop(req.trade_id, None)
            ids = self.by_vault.get(req.vault_id)
            if ids is not None:
                ids.discard(req.trade_id)
                if not ids:
                    del self.by_vault[req.vault_id]
            self.tasks.pop(req.trade_id, None)
            ids = self.unsettled.get(req.vault_id)
            if ids is not None:
                ids.discard(req.trade_id)
                if not ids:
                    del self.unsettled[req.vault_id]
            if outcome.error_class != ErrorClass.REUSED_ID.value:
                self._remember(req, outcome)
        self.counts[outcome.status] += 1
        if outcome.status == "confirmed" or outcome.error_class not in _NOT_A_FAILURE:
            if self.report is not None and not outcome.replayed:
                self.report(self.runtime, "trade_failure_rate", outcome.status == "confirmed", f"{req.trade_id}: {outcome.status}")
        self._observe(outcome, time.monotonic() - rec.started)
        self._tell_all(rec, outcome)

    def _observe(self, outcome: TradeOutcome, seconds: float) -> None:
        if self.on_outcome is not None and not outcome.replayed:
            try:
                self.on_outcome(outcome, seconds)
            except Exception:  # noqa: BLE001 - metrics must not lose a trade's answer
                logger.exception("executor on_outcome callback failed")

    def _remember(self, request: TradeRequest, outcome: TradeOutcome) -> None:
        if self.settings.outcome_cache == 0:
            return
        self.outcomes[outcome.trade_id] = (request, outcome)
        while len(self.outcomes) > self.settings.outcome_cache:
            self.outcomes.popitem(last=False)

    def _tell_all(self, rec: TradeRecord, outcome: TradeOutcome) -> None:
        for ref in rec.waiters:
            self._tell(ref, outcome)

    @staticmethod
    def _tell(ref: ActorRef[Any] | None, message: Any) -> None:
        if ref is None:
            return
        try:
            ref.tell(message)
        except (ActorDeadError, MailboxFull) as exc:
            # The vault is gone or drowning; the outcome is in the audit log and the cache.
            logger.warning("outcome {} for {} not delivered: {!r}", getattr(message, "status", "?"), ref, exc)

    # -- audit and breakers ------------------------------------------------------------------

    async def _durable(self, event_type: EventType, trade_id: str, details: Mapping[str, Any]) -> None:
        """Append and wait until committed; any doubt refuses (fail closed)."""
        ref = self.runtime.whereis(AUDIT_NAME)
        event = audit_event(event_type, EXECUTOR_NAME, details, correlation_id=trade_id)
        timeout = self.settings.internal_timeout_s
        try:
            if ref is None:
                raise ActorDeadError("audit actor not running")
            committed = await asyncio.wait_for(ref.ask(AppendDurable(event=event), block=False), timeout)
            await asyncio.wait_for(asyncio.wrap_future(committed), timeout)
        except Exception as exc:  # noqa: BLE001 - whatever it was, the entry is not known durable
            raise TradeError(ErrorClass.AUDIT, f"{event_type.value} not durable in the audit log: {exc!r}") from exc

    def _audit(self, event_type: EventType, trade_id: str | None, details: Mapping[str, Any], severity: Severity = Severity.INFO) -> None:
        record(self.runtime, audit_event(event_type, EXECUTOR_NAME, details, correlation_id=trade_id, severity=severity))

    def _breaker(self, cls: ErrorClass | None, ok: bool, detail: str) -> None:
        if self.report is None:
            return
        if cls is None:  # a confirmed trade: every trade-path breaker hears a success
            for name in ("network_connectivity", "system_errors", "confirmation_timeouts"):
                self.report(self.runtime, name, True, detail)
            return
        name = _BREAKER_OF.get(cls)
        if name is not None:
            self.report(self.runtime, name, ok, detail)


#: Fault injection for the crash-recovery chaos test (tests/chaos/test_crash_recovery.py): with
#: this variable set to a point's name the process SIGKILLs itself there, exactly like ``kill -9``.
CRASH_AT_ENV = "XORJ_FAULT_CRASH_AT"
CRASH_POINTS = ("before_sign", "after_sign", "before_send", "after_send", "confirming")


def crash_point(name: str) -> None:
    if os.environ.get(CRASH_AT_ENV) == name:
        logger.critical("fault injection: SIGKILL at {} ({} is set)", name, CRASH_AT_ENV)
        os.kill(os.getpid(), signal.SIGKILL)


def _outcome(
    req: TradeRequest, status: str, result: SignatureOutcome | None, error: str | None,
    cls: ErrorClass | None, rec: TradeRecord,
) -> TradeOutcome:
    last = rec.attempts[-1] if rec.attempts else None
    return TradeOutcome(
        trade_id=req.trade_id,
        vault_id=req.vault_id,
        input_mint=req.input_mint,
        output_mint=req.output_mint,
        status=status,
        signature=result.signature if result is not None else (last.signature if last else None),
        slot=result.slot if result is not None else None,
        confirmations=result.confirmations if result is not None else 0,
        error=error,
        error_class=cls.value if cls is not None else None,
        in_amount=last.in_amount if last else 0,
        out_amount=last.out_amount if last else 0,
        attempts=len(rec.attempts),
    )


def _rejected(req: TradeRequest, cls: ErrorClass, reason: str) -> TradeOutcome:
    return TradeOutcome(
        trade_id=req.trade_id, vault_id=req.vault_id, input_mint=req.input_mint, output_mint=req.output_mint,
        status="rejected", error=reason, error_class=cls.value,
    )


def _reused(req: TradeRequest) -> TradeOutcome:
    return _rejected(
        req, ErrorClass.REUSED_ID,
        f"trade id {req.trade_id} already names another trade (vault, mints or amount differ); nothing executed",
    )


def _replayed(outcome: TradeOutcome) -> TradeOutcome:
    return outcome if outcome.replayed else TradeOutcome(**{**_fields(outcome), "replayed": True})


def _fields(message: Any) -> dict[str, Any]:
    return {name: getattr(message, name) for name in type(message).__slots__ if not name.startswith("_")}
