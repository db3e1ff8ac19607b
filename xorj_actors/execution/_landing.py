"""Landing: a signed attempt sent, watched through the Confirmation actor and rebroadcast until
the chain settles it.

The first send uses preflight; once it has answered (never before: a copy sent meanwhile could
land after a preflight refusal that makes us sign anew) the same bytes go out again every
``rebroadcast_interval_s``. A ``timed_out`` answer is not final: the vault hears it once, the
trade stays unsettled and is watched on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from loguru import logger
from pykka import ActorDeadError
from solders.transaction import VersionedTransaction

from supervisors import MailboxFull
from xorj_actors.audit import EventType
from xorj_actors.breakers import BreakerName
from xorj_actors.chain import CONFIRMATION_NAME, OutcomeStatus, SignatureOutcome, Unwatch, WatchRefused, WatchSignature
from xorj_actors.execution._bundles import BundleTracker
from xorj_actors.execution._crash import crash_point
from xorj_actors.execution._errors import ErrorClass, TradeError, classify_chain_error
from xorj_actors.execution._io import ExecutorIO
from xorj_actors.execution._ledger import Attempt, TradeRecord
from xorj_actors.execution._messages import TradeOutcome, TradePhase, TradeRequest, TradeStatus
from xorj_actors.execution._outcomes import outcome
from xorj_actors.execution._ultra_send import UltraSender
from xorj_actors.execution._jito import BLOCK_ENGINE_ROUTE
from xorj_actors.jupiter import TradeApi
from xorj_actors.quotas import Endpoint

__all__ = ["Landing"]

#: (the trade, its ``timed_out`` outcome): the vault is told, the trade stays unsettled.
TimedOut = Callable[[TradeRecord, TradeOutcome], None]


class Landing:
    """Sends and watches signed attempts (on the executor's loop); owns the watches."""

    def __init__(self, io: ExecutorIO, on_timed_out: TimedOut) -> None:
        self.io = io
        self.on_timed_out = on_timed_out
        self.ultra = UltraSender(io)
        #: The block engine's bundles of our attempts, tracked for the record only.
        self.bundles = BundleTracker(io, io.options.on_bundle_status)
        #: signature -> the future the Confirmation actor's answer resolves.
        self.watches: dict[str, asyncio.Future[SignatureOutcome]] = {}
        #: signature -> what it is the attempt of (to ask for the watch again).
        self.watching: dict[str, tuple[TradeRequest, Attempt]] = {}
        #: Attempts sent and not yet settled.
        self.awaiting_confirmation = 0

    async def land(self, rec: TradeRecord, attempt: Attempt, tx: VersionedTransaction, *, first_send: bool) -> TradeOutcome:
        """Send, watch and rebroadcast one signed attempt until the chain settles it.

        The Swap API's bytes go out by ``sendTransaction``; Ultra's by ``/execute``
        (:class:`UltraSender`), whose answer may first have to reveal the transaction's id.

        Raises TradeError when the attempt can no longer land (refused by preflight, failed on
        chain with a retryable error, or expired): a new attempt is then safe.
        """
        io, req = self.io, rec.request
        ultra = attempt.api is TradeApi.ULTRA
        rec.phase = TradePhase.SENT
        self.awaiting_confirmation += 1
        answered = False  # Ultra: /execute gave an answer (no need to ask it again)
        try:
            if ultra and not attempt.id_known:
                if not await self.ultra.reveal(rec, attempt, tx):
                    await self.ultra.settle_by_state(rec, attempt, lambda: self._stuck(rec))
                answered, first_send = True, False
            while True:
                waiter = self.watch(req, attempt)
                rebroadcast: asyncio.Task[None] | None = None
                try:
                    if ultra:
                        if first_send:
                            first_send = False
                            answered = await self.ultra.execute(rec, attempt, tx) is not None
                        if not answered:  # resumed, or no answer yet: /execute again (safe to repeat)
                            rebroadcast = io.spawn(
                                f"execute:{attempt.signature[:8]}", self.ultra.repeat(rec, attempt, tx, time.monotonic())
                            )
                    else:
                        if first_send:
                            # Rebroadcasting only after the preflight answered: a copy sent meanwhile
                            # could land after a preflight refusal that makes us sign anew.
                            first_send = False
                            await self.send_first(rec, attempt, tx)
                        rebroadcast = io.spawn(
                            f"rebroadcast:{attempt.signature[:8]}", self.rebroadcast(rec, attempt, tx, waiter)
                        )
                    result = await waiter
                finally:
                    if rebroadcast is not None:
                        rebroadcast.cancel()
                    self.watches.pop(attempt.signature, None)
                    self.watching.pop(attempt.signature, None)
                if result.status is OutcomeStatus.TIMED_OUT:
                    # Not final: it may still land. The vault hears it; we keep watching.
                    io.breaker(ErrorClass.TIMEOUT, False, "confirmation timed out")
                    io.report(BreakerName.CONFIRMATION_TIMEOUTS, False, f"trade {req.trade_id} not confirmed in its tier's time")
                    self._stuck(rec, result)
                    continue
                crash_point("confirming")
                if result.status is OutcomeStatus.EXPIRED and attempt.pre_state is not None:
                    # The maker pays: its signature is not ours, and another valid one over our
                    # message could have landed. Re-sign only if the vault's accounts say not.
                    await self.ultra.settle_by_state(rec, attempt, lambda: self._stuck(rec))
                return self.settled(rec, result)
        finally:
            self.awaiting_confirmation -= 1

    def _stuck(self, rec: TradeRecord, result: SignatureOutcome | None = None) -> None:
        """Not final yet: the vault hears ``timed_out`` once; the trade stays unsettled."""
        if not rec.timed_out:
            rec.timed_out = True
            error = result.error if result is not None else "not settled: its landing is unknown"
            self.on_timed_out(rec, outcome(rec.request, TradeStatus.TIMED_OUT, result, error, ErrorClass.TIMEOUT, rec))

    async def send_first(self, rec: TradeRecord, attempt: Attempt, tx: VersionedTransaction) -> None:
        io = self.io
        try:
            await io.chain.send(tx, preflight=True)
        except TradeError as err:
            if err.error_class.retry == "exponential" or err.error_class in (ErrorClass.TIMEOUT, ErrorClass.UNKNOWN):
                # Maybe sent, maybe not: the watch and the rebroadcast find out. Never re-sign here.
                logger.warning("trade {}: first send uncertain ({}); rebroadcasting", rec.trade_id, err)
                io.breaker(err.error_class, False, str(err))
                return
            # Preflight refused it: the node did not forward it, these bytes never land.
            self.unwatch(attempt.signature)
            rec.phase = TradePhase.REFUSED
            raise
        io.audit(EventType.TRADE_EXECUTION, rec.trade_id, {"phase": "sent", "attempt": attempt.number, "signature": attempt.signature})
        crash_point("after_send")
        # The preflight passed: every other route may have the bytes now.
        await self.other_routes(rec, attempt, tx)

    async def other_routes(self, rec: TradeRecord, attempt: Attempt, tx: VersionedTransaction) -> None:
        """The bytes to the extra send routes and the block engine, at once; never raises.

        Only the routes configured (a task each under gather; one is awaited as it is)."""
        sends = []
        if self.io.send_routes.routes:
            sends.append(self.io.send_routes.send(tx))
        if self.io.jito.enabled:
            sends.append(self.to_block_engine(rec, attempt, tx))
        if len(sends) == 1:
            await sends[0]
        elif sends:
            await asyncio.gather(*sends)

    def settled(self, rec: TradeRecord, result: SignatureOutcome) -> TradeOutcome:
        """The final outcome the chain gave; raises TradeError when a new attempt is due."""
        req = rec.request
        if result.status is OutcomeStatus.CONFIRMED:
            self.io.breaker(None, True, "confirmed")
            return outcome(req, TradeStatus.CONFIRMED, result, None, None, rec)
        if result.status is OutcomeStatus.FAILED:
            cls = classify_chain_error(result.error or "null")
            if cls.retry is not None:
                raise TradeError(cls, f"failed on chain: {result.error}")  # final on chain: safe to retry
            return outcome(req, TradeStatus.FAILED, result, result.error, cls, rec)
        if result.status is OutcomeStatus.EXPIRED:
            rec.phase = TradePhase.EXPIRED
            raise TradeError(ErrorClass.EXPIRED_BLOCKHASH, f"expired: {result.error}")
        raise TradeError(ErrorClass.UNKNOWN, f"confirmation answered {result.status.value!r}")

    # -- watches (the Confirmation actor) ---------------------------------------------------

    def watch(self, req: TradeRequest, attempt: Attempt) -> asyncio.Future[SignatureOutcome]:
        waiter: asyncio.Future[SignatureOutcome] = self.io.loop.create_future()
        self.watches[attempt.signature] = waiter
        self.watching[attempt.signature] = (req, attempt)
        self.tell_watch(attempt.signature)
        return waiter

    def tell_watch(self, signature: str) -> None:
        """Ask the Confirmation actor to watch; until it has, try again every second."""
        if signature not in self.watches:
            return
        req, attempt = self.watching[signature]
        ref = self.io.runtime.whereis(CONFIRMATION_NAME)
        message = WatchSignature(
            trade_id=req.trade_id, signature=signature, value_usd=req.value_usd,
            last_valid_block_height=attempt.last_valid_block_height, reply_to=self.io.self_ref,
        )
        try:
            if ref is None:
                raise ActorDeadError("confirmation actor not running")
            ref.tell(message)
        except (ActorDeadError, MailboxFull) as exc:
            # Without a watch we cannot learn the outcome: keep the bytes, ask again.
            logger.error("trade {}: cannot watch {}: {!r}; retrying", req.trade_id, signature, exc)
            self.io.loop.call_later(1.0, self.tell_watch, signature)

    def on_watch_refused(self, refused: WatchRefused) -> None:
        # Without a watch the outcome cannot be known: the trade stays unsettled (fail closed)
        # and the watch is asked for again; a full watcher soon, anything else is a fault to fix.
        busy = "max_in_flight" in refused.reason
        log = logger.warning if busy else logger.critical
        log("trade {}: watch of {} refused: {}; asking again", refused.trade_id, refused.signature, refused.reason)
        self.io.loop.call_later(1.0 if busy else 10.0, self.tell_watch, refused.signature)

    def on_signature_outcome(self, result: SignatureOutcome) -> None:
        waiter = self.watches.pop(result.signature, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(result)

    def unwatch(self, signature: str) -> None:
        self.watches.pop(signature, None)
        self.watching.pop(signature, None)
        ref = self.io.runtime.whereis(CONFIRMATION_NAME)
        if ref is not None:
            try:
                ref.tell(Unwatch(signature=signature))
            except (ActorDeadError, MailboxFull):
                pass  # its watch ends with the tier timeout anyway

    async def to_block_engine(self, rec: TradeRecord, attempt: Attempt, tx: VersionedTransaction) -> None:
        """The bytes to the block engine if its budget has a token now; else a counted skip.

        The bundle id it answers is tracked for the record (:class:`BundleTracker`); whatever
        the block engine later says of it, the trade's outcome stays the signature watch's.
        """
        io = self.io
        if not io.jito.enabled:
            return
        try:
            bundle = await io.budgeted(
                Endpoint.BLOCK_ENGINE, rec.request.vault_id, lambda: io.jito.send(tx), signed=True, deadline=io.loop.time()
            )
        except Exception as exc:  # noqa: BLE001 - one route's failure is a skip, never the trade's
            io.send_routes.skipped(BLOCK_ENGINE_ROUTE)
            logger.debug("block engine skipped for {}: {!r}", tx.signatures[0], exc)
            return
        if bundle is not None:
            self.bundles.accepted(bundle, rec.trade_id, attempt.number, str(tx.signatures[0]))

    async def rebroadcast(
        self, rec: TradeRecord, attempt: Attempt, tx: VersionedTransaction, waiter: asyncio.Future[SignatureOutcome]
    ) -> None:
        interval = self.io.settings.rebroadcast_interval_s
        while not waiter.done():
            await asyncio.sleep(interval)
            if waiter.done():
                return
            try:
                await self.io.chain.send(tx, preflight=False)
            except TradeError as err:
                logger.debug("rebroadcast of {} failed: {}", tx.signatures[0], err)
            await self.other_routes(rec, attempt, tx)
