"""Sending an Ultra attempt: ``POST /ultra/v1/execute`` is the send.

Jupiter lands the signed transaction itself (adding an RFQ maker's signature first). Repeating
``/execute`` with the same signed transaction and ``requestId`` is safe for two minutes: it
answers the same outcome and never executes twice. Jupiter's answer is only its word: the
outcome is the chain's, through the Confirmation actor's watch of the transaction's id.

When the market maker pays the fee, the id is the maker's signature, which only ``/execute``
reveals. If it never does (Jupiter unreachable for the whole window, or it says it did not
send), the attempt is settled by the chain: once the confirmed block height is past the
attempt's last valid height nothing can land any more, and if the vault's accounts are then
exactly as the effect check read them before signing, it never landed (a new attempt is safe).
Anything else leaves the trade open and unsettled (fail closed) until an operator settles it.
The same check stands before a maker-paid attempt whose watched id expired is signed again: the
maker may have signed our message twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import NoReturn

from loguru import logger
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from xorj_actors.audit import EventType, Severity
from xorj_actors.execution._crash import crash_point
from xorj_actors.execution._errors import ErrorClass, TradeError
from xorj_actors.execution._io import ExecutorIO
from xorj_actors.execution._effects import balances
from xorj_actors.execution._ledger import Attempt, TradeRecord
from xorj_actors.execution._messages import TradePhase
from xorj_actors.execution._transaction import message_bytes
from xorj_actors.jupiter import ExecuteOutcome, UltraExecution
from xorj_actors.quotas import Endpoint

__all__ = ["UltraSender"]

#: Outcomes after which Jupiter will not send it (its word; the chain still decides).
_NOT_SENT = frozenset(
    {ExecuteOutcome.ORDER_EXPIRED, ExecuteOutcome.REJECTED, ExecuteOutcome.INVALID_REQUEST, ExecuteOutcome.NOT_LANDED}
)
#: How often a stuck attempt looks again (it stays unsettled meanwhile).
_STUCK_POLL_S = 30.0
#: A blockhash lives about 60 to 90 s: an attempt not expired after this is reported stuck.
_STUCK_AFTER_S = 300.0


class UltraSender:
    """``/execute`` for Ultra attempts, on the executor's loop."""

    def __init__(self, io: ExecutorIO) -> None:
        self.io = io

    async def execute(self, rec: TradeRecord, attempt: Attempt, tx: VersionedTransaction) -> UltraExecution | None:
        """One ``/execute``; None when it gave no answer (the watch or a repeat finds out)."""
        io = self.io
        if attempt.request_id is None:
            raise TradeError(ErrorClass.UNKNOWN, f"ultra attempt {attempt.number} has no requestId")
        try:
            request_id = attempt.request_id
            execution = await io.budgeted(
                Endpoint.JUPITER_EXECUTE, rec.request.vault_id, lambda: io.quotes.execute(tx, request_id), signed=True
            )
        except Exception as exc:  # noqa: BLE001 - maybe sent, maybe not: never re-signed for it
            logger.warning("trade {}: /execute of attempt {} gave no answer: {!r}", rec.trade_id, attempt.number, exc)
            return None
        if execution.outcome is ExecuteOutcome.INVALID_REQUEST:
            # Our request was wrong: a bug to fix. The bytes may still be out there: watched on.
            logger.critical("trade {}: /execute refused the request: {} {}", rec.trade_id, execution.code, execution.error)
        claimed = execution.signature
        # An id is only the fee payer's valid signature over our message: anything else could
        # settle this trade by another transaction.
        valid = claimed is not None and claimed.verify(tx.message.account_keys[0], message_bytes(tx.message))
        if claimed is not None and not valid:
            logger.critical(
                "trade {}: /execute answered signature {}, not {}'s over our message; ignored",
                rec.trade_id, claimed, tx.message.account_keys[0],
            )
        if valid and attempt.id_known and str(claimed) != attempt.signature:
            # A second valid signature over one message (a maker signing non-deterministically):
            # either may land. Watching one, the expiry of the other is settled by the chain.
            logger.critical(
                "trade {}: /execute answered a second valid id {} for attempt {} (watching {})",
                rec.trade_id, claimed, attempt.number, attempt.signature,
            )
        learnt = valid and not attempt.id_known
        if learnt:
            attempt.signature = str(claimed)
        details = {
            "phase": "sent", "attempt": attempt.number, "api": "ultra", "code": execution.code,
            "execute_outcome": execution.outcome.value, "signature": attempt.signature or None,
            "unverified_signature": str(claimed) if claimed is not None and not valid else None,
            "slot": execution.slot, "error": execution.error,
        }
        severity = Severity.INFO if execution.outcome is ExecuteOutcome.LANDED else Severity.WARNING
        if learnt:
            # The maker's id is the only way to find this landing after /execute forgets the order
            # (two minutes): durable before it is relied on. If the log cannot take it, the id is
            # still watched now; a restart then settles the attempt by the chain.
            try:
                await io.durable(EventType.TRADE_EXECUTION, rec.trade_id, details)
            except TradeError as err:
                logger.critical("trade {}: the id of attempt {} is not durable: {}", rec.trade_id, attempt.number, err)
        else:
            io.audit(EventType.TRADE_EXECUTION, rec.trade_id, details, severity=severity)
        crash_point("after_send")  # as after the Swap API's first send: /execute has answered
        return execution

    async def repeat(self, rec: TradeRecord, attempt: Attempt, tx: VersionedTransaction, first: float) -> None:
        """Repeat ``/execute`` until one answers, within the repeat window (the rebroadcast)."""
        interval = self.io.settings.rebroadcast_interval_s
        while time.monotonic() - first < self.io.options.jupiter.execute_repeat_window_s:
            await asyncio.sleep(interval)
            if await self.execute(rec, attempt, tx) is not None:
                return

    async def reveal(self, rec: TradeRecord, attempt: Attempt, tx: VersionedTransaction) -> bool:
        """Learn the transaction's id from ``/execute`` (the maker pays the fee); True once known.

        False: Jupiter never gave it within the window, or said it will not send.
        """
        first = time.monotonic()
        interval = self.io.settings.rebroadcast_interval_s
        while True:
            execution = await self.execute(rec, attempt, tx)
            if attempt.id_known:
                return True
            if execution is not None and execution.outcome in _NOT_SENT:
                return False
            if time.monotonic() - first >= self.io.options.jupiter.execute_repeat_window_s:
                return False
            await asyncio.sleep(interval)

    async def settle_by_state(self, rec: TradeRecord, attempt: Attempt, on_stuck: Callable[[], None]) -> NoReturn:
        """Settle an attempt the maker pays for by the chain: raises ``EXPIRED_BLOCKHASH`` (it can
        never land and did not) or never returns (the trade stays open and unsettled).

        It can never land once the block height at ``confirmed`` is past its last valid height;
        it did not land if the vault's accounts, read at that slot or later, are exactly as the
        effect check read them before signing. Read failures are asked again: only that verdict
        may leave (anything else would re-sign, or close, a trade that may still land).
        ``on_stuck()`` is called once (the vault hears ``timed_out``) when the accounts changed
        or the height does not pass in time.
        """
        io = self.io
        interval = max(io.settings.rebroadcast_interval_s, 0.2)
        deadline = time.monotonic() + _STUCK_AFTER_S
        stuck = False

        def give_up(why: str) -> None:
            nonlocal stuck
            if stuck:
                return
            stuck = True
            logger.critical(
                "trade {}: ultra attempt {} {}: it may have landed; the trade stays open until an operator settles it",
                rec.trade_id, attempt.number, why,
            )
            io.audit(
                EventType.TRADE_EXECUTION, rec.trade_id,
                {"phase": "landing_unknown", "attempt": attempt.number, "api": "ultra", "why": why,
                 "our_signature": attempt.our_signature, "request_id": attempt.request_id, "signature": attempt.signature or None},
                severity=Severity.CRITICAL,
            )
            on_stuck()

        while True:
            if attempt.pre_state is None:
                give_up("has no recorded pre-state")
            else:
                keys = [Pubkey.from_string(k) for k in attempt.pre_state]
                try:
                    height, states = await io.routes.height_and_states(keys)
                except Exception as exc:  # noqa: BLE001 - a read failure decides nothing: ask again
                    logger.warning("trade {}: cannot read the chain to settle attempt {}: {!r}", rec.trade_id, attempt.number, exc)
                    height, states = -1, {}
                if height > attempt.last_valid_block_height:
                    if balances(states) == attempt.pre_state:
                        rec.phase = TradePhase.EXPIRED
                        raise TradeError(
                            ErrorClass.EXPIRED_BLOCKHASH,
                            f"expired: block height {height} is past {attempt.last_valid_block_height} and the vault's "
                            "accounts are as before signing: it never landed; safe to re-sign",
                        )
                    give_up("expired and the vault's accounts changed")
                elif time.monotonic() > deadline:
                    give_up(f"has not expired after {_STUCK_AFTER_S:.0f} s (block height {height})")
            await asyncio.sleep(_STUCK_POLL_S if stuck else interval)

