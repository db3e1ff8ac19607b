"""The pipeline: admission, attempts, landing and the end of each trade, wired on one event loop.

All trade state lives on the loop thread (:class:`ExecutorIO`'s): the book (admission's), the
watches (landing's), the tasks and the counters (here). Only ``start``, ``stop``, ``call`` and
``status`` are called from another thread, the actor's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

from loguru import logger
from pykka import ActorRef

from xorj_actors.audit import EventType, Severity
from xorj_actors.breakers import BreakerName
from xorj_actors.execution._admission import Admit, Answer, Join, Refusal, TradeBook, admit
from xorj_actors.execution._attempt import AttemptBuilder
from xorj_actors.execution._crash import crash_point
from xorj_actors.execution._errors import ErrorClass, TradeError, backoff_s
from xorj_actors.execution._io import ExecutorIO
from xorj_actors.execution._landing import Landing
from xorj_actors.execution._ledger import TradeRecord, lookup_trade, outcome_details, request_details, same_trade
from xorj_actors.execution._messages import (
    FINAL_STATUSES,
    ExecutorStatus,
    TradeOutcome,
    TradePhase,
    TradeRequest,
    TradeStatus,
)
from xorj_actors.execution._options import ExecutorOptions
from xorj_actors.execution._outcomes import DROPPED_BY_HALT, handed_over, outcome, rejected, replayed, reused
from xorj_actors.execution.settings import ExecutionSettings
from xorj_actors.kill_switch import HaltBoard
from xorj_actors.messages import HaltMode
from xorj_actors.quotas import budget_scope

__all__ = ["Pipeline"]

_LOAD_RETRY_S = 2.0
#: How long the settling of read-back trades waits for the kill switch's first decision.
_DECISION_WAIT_S = 30.0
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
        # Another node holds the vault's lease (cluster): the trade is that node's business now.
        ErrorClass.FENCED,
        # A budget, not the trade: a provider's 429s, or a quote gone stale while its turn came.
        ErrorClass.RATE_LIMITED,
        ErrorClass.QUOTE_EXPIRED,
    }
)


class Pipeline:
    """Carries each trade from request to a final, recorded outcome (one task per trade)."""

    def __init__(self, runtime: Any, board: HaltBoard, settings: ExecutionSettings, options: ExecutorOptions) -> None:
        self.settings = settings
        self.io = ExecutorIO(runtime, board, settings, options)
        self.loop = self.io.loop
        self.book = TradeBook(outcome_cache=settings.outcome_cache)
        self.attempts = AttemptBuilder(self.io)
        self.landing = Landing(self.io, self._timed_out)
        self.tasks: dict[str, asyncio.Task[None]] = {}
        #: Reads the open trades back at start (cancelled with the rest if stopped first).
        self.ledger_task: asyncio.Task[None] | None = None
        self.reconciled = False
        self.accepted = 0
        self.counts: Counter[TradeStatus] = Counter()

    # -- any thread ------------------------------------------------------------------------

    def start(self, self_ref: ActorRef[Any]) -> None:
        self.io.self_ref = self_ref
        self.io.loop_thread.start(self._setup(), timeout=self.settings.request_timeout_s)

    def stop(self) -> None:
        self.io.loop_thread.stop(self._cleanup, timeout=self.settings.request_timeout_s)
        self.io.db_pool.shutdown(wait=False, cancel_futures=True)

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def status(self) -> ExecutorStatus:
        """Read on the loop (its state changes only there); the caller is the actor's own thread."""

        async def read() -> ExecutorStatus:
            return self._status()

        return asyncio.run_coroutine_threadsafe(read(), self.loop).result(self.settings.internal_timeout_s)

    @property
    def awaiting_confirmation(self) -> int:
        return self.landing.awaiting_confirmation

    def _status(self) -> ExecutorStatus:
        book = self.book
        return ExecutorStatus(
            accepted=self.accepted,
            in_flight=len(book.records),
            awaiting_confirmation=self.landing.awaiting_confirmation,
            unsettled_vaults=book.unsettled_vaults(),
            in_flight_vaults=book.in_flight_vaults(),
            outcomes=tuple(sorted((status.value, n) for status, n in self.counts.items())),
            reconciled=self.reconciled,
            phases=tuple(sorted(Counter(rec.phase for rec in book.records.values()).items())),
            route_skips=tuple(sorted(self.io.send_routes.skips.items())),
            open_bundles=self.landing.bundles.open,
        )

    # -- set-up ------------------------------------------------------------------------------

    async def _setup(self) -> None:
        await self.io.chain.open()  # first: its session carries the route and fee reads too
        await self.io.quotes.open()
        await self.io.routes.open()
        await self.io.send_routes.open()
        await self.io.fees.open(self.io.chain.session)
        await self.io.jito.open()
        self.landing.bundles.start()
        self.ledger_task = self.io.spawn("ledger", self._load_ledger())

    async def _cleanup(self) -> None:
        tasks = [*self.tasks.values(), *([self.ledger_task] if self.ledger_task is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.io.writes_done(list(self.io.writes))  # an entry on its way is answered, not lost
        await self.landing.bundles.stop()
        await self.io.quotes.close()
        await self.io.routes.close()
        await self.io.send_routes.close()
        await self.io.fees.close()
        await self.io.jito.close()
        await self.io.chain.close()

    async def _load_ledger(self) -> None:
        """Read every open trade back and settle it from the chain; trade only after that."""
        while True:
            try:
                open_trades = await asyncio.wait_for(self.loop.run_in_executor(self.io.db_pool, self.io.open_ledger), 60.0)
                break
            except Exception as exc:  # noqa: BLE001 - fail closed: no trade until it reads
                logger.error("executor: cannot read open trades from the audit log ({!r}); retrying", exc)
                await asyncio.sleep(_LOAD_RETRY_S)
        await self._kill_switch_decided()
        self._settle_read_back(open_trades)
        self.reconciled = True
        self.io.audit(EventType.SYSTEM_EVENT, None, {"event": "executor_reconciling", "open_trades": len(open_trades)})

    async def _kill_switch_decided(self) -> None:
        """Wait (bounded) until the kill switch has read its state. Settling a read-back trade may
        sign it again (its blockhash expired while the engine was down), and a board still
        STARTING refuses that signature: the trade would end rejected though the switch was armed.
        Past the bound the trades settle anyway, against whatever the board shows (fail closed)."""
        deadline = time.monotonic() + _DECISION_WAIT_S
        while not self.io.board.decided and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    def _settle_read_back(self, records: list[TradeRecord]) -> list[TradeRecord]:
        """Adopt and settle each open trade read back from the log (not already carried): its
        vault is unsettled, so refused new trades, until it is final. The ones adopted."""
        adopted = []
        for rec in records:
            if rec.trade_id in self.book.records:
                continue  # carried already (read back twice, or this run's own)
            logger.warning(
                "executor: settling open trade {} of {} (opened in chain {}, {} signed attempts) from the chain",
                rec.trade_id, rec.request.vault_id, rec.intent_chain, len(rec.attempts),
            )
            self._adopt(rec, unsettled=True)
            self._run_task(rec, self._resume(rec))
            adopted.append(rec)
        return adopted

    def adopt_vaults(self, vault_ids: tuple[str, ...]) -> concurrent.futures.Future[tuple[str, ...]]:
        """Fail-over (any thread): read the open trades of ``vault_ids`` from every chain and
        settle them here; the future resolves once they are all in the book (see AdoptOpenTrades)."""
        return asyncio.run_coroutine_threadsafe(self._adopt_vaults(vault_ids), self.loop)

    async def _adopt_vaults(self, vault_ids: tuple[str, ...]) -> tuple[str, ...]:
        records = await asyncio.wait_for(self.loop.run_in_executor(self.io.db_pool, self.io.vault_ledger, vault_ids), 60.0)
        adopted = self._settle_read_back(records)
        if adopted:
            self.io.audit(
                EventType.SYSTEM_EVENT, None,
                {"event": "executor_adopting", "vaults": list(vault_ids),
                 "trades": [{"trade_id": r.trade_id, "vault_id": r.request.vault_id, "opened_in": r.intent_chain,
                             "signed_attempts": len(r.attempts)} for r in adopted]},
            )
        return tuple(r.trade_id for r in adopted)

    def hand_over_vaults(self, vault_ids: tuple[str, ...]) -> concurrent.futures.Future[tuple[str, ...]]:
        """Cluster (any thread): stop carrying the trades of ``vault_ids``, recording no outcome
        (see HandOverVaults); the future resolves with their ids once no write of theirs is pending."""
        return asyncio.run_coroutine_threadsafe(self._hand_over(frozenset(vault_ids)), self.loop)

    async def _hand_over(self, vaults: frozenset[str]) -> tuple[str, ...]:
        records = [rec for rec in self.book.records.values() if rec.request.vault_id in vaults]
        tasks = [task for rec in records if (task := self.tasks.get(rec.trade_id)) is not None and not task.done()]
        for task in tasks:
            task.cancel()  # at an await: a durable append under way goes on (it is shielded)
        if tasks:
            await asyncio.wait(tasks, timeout=self.settings.internal_timeout_s)
        await self.io.writes_done([rec.trade_id for rec in records])
        for rec in records:
            self._let_go(rec)
        if records:
            self.io.audit(
                EventType.SYSTEM_EVENT, None,
                {"event": "executor_handing_over", "vaults": sorted(vaults),
                 "trades": [{"trade_id": r.trade_id, "vault_id": r.request.vault_id, "signed_attempts": len(r.attempts)}
                            for r in records]},
            )
        return tuple(rec.trade_id for rec in records)

    def _let_go(self, rec: TradeRecord) -> None:
        """Stop carrying ``rec`` with no outcome recorded: the vault's lease holder settles it."""
        if self.book.records.get(rec.trade_id) is not rec:
            return  # final already, or let go
        logger.warning("trade {} of {}: handed over (lease lost); its new owner settles it", rec.trade_id, rec.request.vault_id)
        self.attempts.claims.release(rec)
        self.book.settle(rec.request)
        self.tasks.pop(rec.trade_id, None)
        self._tell_all(rec, handed_over(rec.request))

    def _adopt(self, rec: TradeRecord, *, unsettled: bool) -> None:
        rec.started = time.monotonic()
        self.book.adopt(rec, unsettled=unsettled)
        for attempt in rec.attempts:  # read back: its messages stay its own until it is final
            self.attempts.claims.adopt(rec, attempt.transaction().message)

    def _run_task(self, rec: TradeRecord, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        self.tasks[rec.trade_id] = task = self.io.spawn(rec.trade_id, _as_vaults(rec.request.vault_id, coro))
        return task

    # -- requests ----------------------------------------------------------------------------

    def submit(self, req: TradeRequest) -> None:
        decision = admit(self.book, req, reconciled=self.reconciled, max_in_flight=self.settings.max_in_flight)
        match decision:
            case Answer(outcome=answer):
                self.io.tell(req.reply_to, answer)
            case Join(record=running):  # one execution, both answered
                if req.reply_to is not None and req.reply_to not in running.waiters:
                    running.waiters.append(req.reply_to)
            case Refusal(outcome=refused):
                self.counts[refused.status] += 1
                self._observe(refused, 0.0)
                self.io.tell(req.reply_to, refused)
            case Admit():
                self.accepted += 1
                rec = TradeRecord(request=req, waiters=[req.reply_to] if req.reply_to is not None else [])
                self._adopt(rec, unsettled=False)
                self._run_task(rec, self._run(rec)).add_done_callback(lambda t: self._dropped(t, rec))

    def on_halt(self, mode: HaltMode) -> None:
        if mode is not HaltMode.EMERGENCY:
            return  # unsigned work is refused at the gate before it is signed
        if self.io.options.quotas is not None:  # the kill switch overtakes the queue
            self.io.options.quotas.drop(lambda waiting: waiting.kind == "unsigned", "halted")
        for trade_id, rec in list(self.book.records.items()):
            if rec.phase.unsigned:
                task = self.tasks.get(trade_id)
                if task is not None:
                    rec.dropped = True  # a cancel now means the halt, not the executor stopping
                    task.cancel()  # dropped at once, never signed

    def _dropped(self, task: asyncio.Task[None], rec: TradeRecord) -> None:
        """A task cancelled before its first step never ran its handler: settle it here."""
        if task.cancelled() and rec.dropped and self.book.records.get(rec.trade_id) is rec and rec.phase.unsigned:
            self.io.spawn(f"drop:{rec.trade_id}", self._finish(rec, rejected(rec.request, ErrorClass.HALTED, DROPPED_BY_HALT)))

    # -- one trade ---------------------------------------------------------------------------

    async def _run(self, rec: TradeRecord) -> None:
        req, io = rec.request, self.io
        try:
            intent, known = await io.db(lookup_trade, io.store, io.key, req.trade_id)
        except Exception as exc:  # noqa: BLE001 - the log may hold an outcome: record nothing
            logger.error("trade {}: cannot read its record from the audit log: {!r}", req.trade_id, exc)
            await self._finish(rec, rejected(req, ErrorClass.AUDIT, f"audit log unreadable: {exc!r}"), record=False)
            return
        try:
            if intent is not None and not same_trade(intent, req):
                await self._finish(rec, reused(req), record=False)
                return
            if isinstance(known, TradeOutcome):
                await self._finish(rec, known, record=False)
                return
            if isinstance(known, TradeRecord):  # open in the log, not loaded: settle it as loaded
                rec.attempts, rec.intent_chain = known.attempts, known.intent_chain
                for attempt in rec.attempts:
                    self.attempts.claims.adopt(rec, attempt.transaction().message)
                await self._resume(rec)
                return
            io.check_gate(req)
            # Cluster: the intent is recorded only under the vault's lease, with its revision.
            try:
                revision = io.check_fence(rec)
            except TradeError as err:  # another node's vault: nothing recorded (no intent to close)
                await self._finish(rec, rejected(req, err.error_class, str(err)), record=False)
                return
            details = request_details(req) if revision is None else {**request_details(req), "lease_revision": revision}
            await io.durable(EventType.TRADE_INTENT, req.trade_id, details)
            result = await self._attempt_until_final(rec)
        except asyncio.CancelledError:
            if not (rec.dropped and rec.phase.unsigned):
                raise  # the executor is stopping: the log still holds the trade open
            result = rejected(req, ErrorClass.HALTED, DROPPED_BY_HALT)
        except TradeError as err:
            result = rejected(req, err.error_class, str(err))
        except Exception as exc:  # noqa: BLE001 - unknown: never retried, a system error
            logger.opt(exception=exc).error("trade {}: unexpected failure", req.trade_id)
            result = rejected(req, ErrorClass.UNKNOWN, f"{type(exc).__name__}: {exc}")
        await self._finish(rec, result)

    async def _resume(self, rec: TradeRecord) -> None:
        """Settle a trade read back from the log: its last attempt, then retries as usual."""
        req = rec.request
        try:
            if not rec.attempts:
                # Nothing was durable as signed, so nothing was sent: it can never land.
                result = outcome(
                    req, TradeStatus.EXPIRED, None, "never sent: the engine stopped before sending",
                    ErrorClass.NEVER_SENT, rec,
                )
            elif rec.attempts[-1].fenced:
                # Signed, then fenced before its first send (a durable ``fenced`` entry): never
                # sent, and nothing sends a fenced attempt's bytes, so it can never land.
                result = outcome(
                    req, TradeStatus.REJECTED, None, "fenced before its first send: never sent",
                    ErrorClass.FENCED, rec,
                )
            else:
                last = rec.attempts[-1]
                rec.attempt_no = rec.tries = last.number
                tx = last.transaction()
                try:
                    result = await self.landing.land(rec, last, tx, first_send=False)
                except TradeError as err:
                    retried = await self._after_failure(rec, err)
                    if retried is None:
                        self.io.check_gate(req)
                        retried = await self._attempt_until_final(rec)
                    result = retried
        except asyncio.CancelledError:
            if not (rec.dropped and rec.phase.unsigned):
                raise
            result = outcome(req, TradeStatus.REJECTED, None, DROPPED_BY_HALT, ErrorClass.HALTED, rec)
        except TradeError as err:
            result = rejected(req, err.error_class, str(err))
        except Exception as exc:  # noqa: BLE001
            logger.opt(exception=exc).error("trade {}: unexpected failure while settling", req.trade_id)
            result = rejected(req, ErrorClass.UNKNOWN, f"{type(exc).__name__}: {exc}")
        await self._finish(rec, result)

    async def _attempt_until_final(self, rec: TradeRecord) -> TradeOutcome:
        """Attempts (each signed, then landed) until one is final or no retry is left."""
        while True:
            try:
                rec.tries += 1  # every attempt counts, signed or not: the limit must bind
                signed = await self.attempts.build(rec, rec.tries)
                crash_point("before_send")
                await self.attempts.fence_before_send(rec, signed.attempt)
                return await self.landing.land(rec, signed.attempt, signed.tx, first_send=True)
            except TradeError as err:
                result = await self._after_failure(rec, err)
                if result is not None:
                    return result

    async def _after_failure(self, rec: TradeRecord, err: TradeError) -> TradeOutcome | None:
        """Record a failed attempt; the final outcome, or None after waiting to try again."""
        req, io = rec.request, self.io
        n = rec.attempt_no
        cls = err.error_class
        if cls is ErrorClass.EXPIRED_BLOCKHASH:
            io.chain.forget_blockhash()  # or the retry is built on the same dead hash
            if rec.attempts and rec.attempts[-1].number == n:
                rec.expiries += 1  # a signed attempt expired for certain: the next one bids more
        io.breaker(cls, False, str(err))
        io.audit(
            EventType.TRADE_EXECUTION, req.trade_id,
            {"phase": "attempt_failed", "attempt": n, "error_class": cls.value, "error": str(err)[:2000]},
            severity=Severity.WARNING,
        )
        landed_failed = rec.phase is TradePhase.SENT  # the failure came from the chain itself
        rec.phase = TradePhase.NEW
        if cls.retry is None or n >= self.settings.retry.max_attempts:
            if landed_failed:
                status = TradeStatus.FAILED
            else:
                status = TradeStatus.EXPIRED if cls is ErrorClass.EXPIRED_BLOCKHASH else TradeStatus.REJECTED
            return outcome(req, status, None, str(err), cls, rec)
        try:
            io.check_gate(req)  # halted (REDUCING lets a flatten trade retry), or a breaker opened
        except TradeError as refused:
            return outcome(req, TradeStatus.REJECTED, None, f"{refused}; last error: {err}", refused.error_class, rec)
        delay = backoff_s(err, n, self.settings.retry, io.rng)
        if delay > self.settings.retry.max_retry_after_s:
            return outcome(req, TradeStatus.REJECTED, None, f"retry in {delay:.0f} s is too late: {err}", cls, rec)
        if delay:
            await asyncio.sleep(delay)
        return None

    # -- the end of a trade ------------------------------------------------------------------

    def _timed_out(self, rec: TradeRecord, timed_out: TradeOutcome) -> None:
        self.book.unsettle(rec)
        self._observe(timed_out, time.monotonic() - rec.started)
        self._tell_all(rec, timed_out)

    async def _finish(self, rec: TradeRecord, result: TradeOutcome, *, record: bool = True) -> None:
        req = rec.request
        rec.phase = TradePhase.FINISHING  # an emergency halt no longer cancels it: the outcome is decided
        final = result.status in FINAL_STATUSES
        if record and final and not self.io.leased(rec):
            self._let_go(rec)  # cluster: the lease went while it ran; only its holder records
            return
        if record and final and rec.intent_chain:
            known = await self._recorded_elsewhere(rec)
            if known is not None:
                result, record = replayed(known), False
        if record and final:
            try:
                await self.io.durable(EventType.TRADE_CONFIRMATION, req.trade_id, outcome_details(result))
            except TradeError as err:
                # The chain has the truth; a restart settles it again from the signed attempts.
                logger.critical("trade {}: outcome {} not recorded: {}", req.trade_id, result.status, err)
        if final:
            self.attempts.claims.release(rec)
            self.book.settle(req)
            self.tasks.pop(req.trade_id, None)
            if result.error_class != ErrorClass.REUSED_ID.value:
                self.book.remember(req, result)
        self.counts[result.status] += 1
        if result.status == TradeStatus.CONFIRMED or result.error_class not in _NOT_A_FAILURE:
            if not result.replayed:
                self.io.report(
                    BreakerName.TRADE_FAILURE_RATE, result.status == TradeStatus.CONFIRMED,
                    f"{req.trade_id}: {result.status}",
                )
        self._observe(result, time.monotonic() - rec.started)
        self._tell_all(rec, result)

    async def _recorded_elsewhere(self, rec: TradeRecord) -> TradeOutcome | None:
        """A read-back trade's outcome if a chain recorded one since it was read (a previous owner
        that wrote it just before its lease went); one outcome per trade in the whole store."""
        try:
            _, known = await self.io.db(lookup_trade, self.io.store, self.io.key, rec.trade_id)
        except Exception as exc:  # noqa: BLE001 - recorded as usual: the append is the authority
            logger.error("trade {}: cannot check for an outcome recorded elsewhere: {!r}", rec.trade_id, exc)
            return None
        return known if isinstance(known, TradeOutcome) else None

    def _observe(self, result: TradeOutcome, seconds: float) -> None:
        on_outcome = self.io.options.on_outcome
        if on_outcome is not None and not result.replayed:
            try:
                on_outcome(result, seconds)
            except Exception:  # noqa: BLE001 - metrics must not lose a trade's answer
                logger.exception("executor on_outcome callback failed")

    def _tell_all(self, rec: TradeRecord, result: TradeOutcome) -> None:
        for ref in rec.waiters:
            self.io.tell(ref, result)


async def _as_vaults(vault_id: str, coro: Coroutine[Any, Any, None]) -> None:
    """Run a trade's task with every budgeted call in it waiting its turn as ``vault_id``'s
    unsigned work (the sends say they are signed): fair across vaults, dropped by a halt."""
    with budget_scope(vault_id, "unsigned"):
        await coro
