"""What every step of a trade does to the world outside the executor's loop.

The clients (JSON-RPC, the quote service), the ledger reads (their own thread: peewee connections
are per thread), durable audit appends, breaker reports, the gate and the loop's tasks. The
attempt, landing and the pipeline share one :class:`ExecutorIO`; each call goes through its
attributes, so a test or the benchmark may wrap one on the running executor.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from typing import Any, TypeVar

from loguru import logger
from pykka import ActorDeadError, ActorRef

from supervisors import LoopThread, MailboxFull
from xorj_actors.audit import (
    AUDIT_NAME,
    AppendDurable,
    EventType,
    KeyRing,
    Severity,
    audit_event,
    load_key_ring,
    open_store,
    record,
)
from xorj_actors.breakers import BreakerName
from xorj_actors.execution._admission import gate_refusal
from xorj_actors.execution._clients import ChainClient
from xorj_actors.execution._committed import committed
from xorj_actors.execution._errors import ErrorClass, TradeError, classify_exception
from xorj_actors.execution._ledger import TradeRecord, load_open_trades, load_vault_trades
from xorj_actors.execution._messages import EXECUTOR_NAME, TradeRequest
from xorj_actors.execution._options import ExecutorOptions
from xorj_actors.execution._fees import PriorityFees
from xorj_actors.execution._jito import JitoLanding
from xorj_actors.execution._route import RouteChecks
from xorj_actors.execution._send_routes import SendRoutes
from xorj_actors.execution.settings import ExecutionSettings
from xorj_actors.jito import BlockEngineRefused
from xorj_actors.jupiter import JupiterClient, JupiterRefused
from xorj_actors.quotas import Endpoint, QuotaError, turn
from xorj_actors.kill_switch import HaltBoard

__all__ = ["ExecutorIO"]

T = TypeVar("T")

# Which breaker hears about which failure class.
_BREAKER_OF: Mapping[ErrorClass, BreakerName] = {
    ErrorClass.NETWORK: BreakerName.NETWORK_CONNECTIVITY,
    # A 429 is a budget, not a network failure: the quotas slow down, the breaker hears nothing.
    ErrorClass.TIMEOUT: BreakerName.NETWORK_CONNECTIVITY,
    ErrorClass.SIGNER: BreakerName.HSM_FAILURE_RATE,
    ErrorClass.SLIPPAGE: BreakerName.SLIPPAGE_REJECTIONS,
    ErrorClass.UNKNOWN: BreakerName.SYSTEM_ERRORS,
    ErrorClass.AUDIT: BreakerName.SYSTEM_ERRORS,
}
#: The trade-path breakers a confirmed trade reports a success to.
_CONFIRMED_HEARD_BY = (BreakerName.NETWORK_CONNECTIVITY, BreakerName.SYSTEM_ERRORS, BreakerName.CONFIRMATION_TIMEOUTS)


class ExecutorIO:
    """The executor's clients, ledger, audit, breakers and gate; used on its loop thread."""

    def __init__(self, runtime: Any, board: HaltBoard, settings: ExecutionSettings, options: ExecutorOptions) -> None:
        self.runtime = runtime
        self.board = board
        self.settings = settings
        self.options = options
        self.rng = random.Random(options.seed)
        self.loop_thread = LoopThread("executor-io")
        self.loop = self.loop_thread.loop
        self.chain = ChainClient(options.rpc_url, settings, options.quotas)
        #: Jupiter's APIs at ``quote_url`` (the localnet's quote service, or Jupiter's own).
        self.quotes = JupiterClient(options.jupiter, base_url=options.quote_url, environ=options.environ)
        #: Priority fees of the accounts a route writes.
        self.fees = PriorityFees(settings.fees, options.rpc_url, options.quotas)
        #: The extra send endpoints beside the RPC.
        self.send_routes = SendRoutes(settings.send_urls, settings.request_timeout_s, options.on_route_skip, options.quotas)
        #: Jito: the tip of each Swap API attempt, the block engine as a send route.
        self.jito = JitoLanding(options.jito, options.block_engine_url)
        #: The route's lookup tables and the checks before signing.
        self.routes = RouteChecks(self.chain, settings, options.quotas)
        self.db_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="executor-ledger")
        self.store: Any = None
        #: The executor's own ref: the Confirmation actor answers it.
        self.self_ref: ActorRef[Any] | None = None
        #: trade id -> its durable appends begun and not yet answered (a hand-over waits for them).
        self.writes: dict[str, set[asyncio.Task[None]]] = {}

    # -- the loop's tasks ---------------------------------------------------------------------

    def spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = self.loop.create_task(coro, name=name)
        task.add_done_callback(_task_done)
        return task

    # -- the ledger ---------------------------------------------------------------------------

    @property
    def key(self) -> KeyRing:
        """Every audit key known now: read on use, a key rotation adds one."""
        return load_key_ring(self.options.audit, self.options.environment)

    def _ledger_store(self) -> Any:
        if self.store is None:
            self.key  # noqa: B018 - no usable audit key: refused before the store is opened
            self.store = open_store(self.options.audit, self.options.data_dir)
        return self.store

    def open_ledger(self) -> list[TradeRecord]:
        """The open trades this executor settles at its start (on the ledger thread): alone, every
        one its own chain opened; in a cluster, those of the vaults this node holds now, opened
        in any chain (a vault another node holds is that node's to settle)."""
        store = self._ledger_store()
        held = self.options.held_vaults
        if held is None:
            return load_open_trades(store, self.key)
        return load_vault_trades(store, self.key, tuple(held()))

    def vault_ledger(self, vault_ids: tuple[str, ...]) -> list[TradeRecord]:
        """The open trades of ``vault_ids`` opened in any chain (on the ledger thread): fail-over."""
        return load_vault_trades(self._ledger_store(), self.key, vault_ids)

    async def db(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on the ledger thread, bounded by ``internal_timeout_s``."""
        async with asyncio.timeout(self.settings.internal_timeout_s):  # no task of its own, as wait_for makes
            return await self.loop.run_in_executor(self.db_pool, fn, *args)

    # -- audit and breakers ------------------------------------------------------------------

    async def durable(self, event_type: EventType, trade_id: str, details: Mapping[str, Any]) -> None:
        """Append and wait until committed; any doubt refuses (fail closed).

        The wait is one future resolved from the writer's commit (:func:`committed`), shielded:
        cancelling the trade does not touch an entry already on its way to the log, and
        :meth:`writes_done` can wait for its answer.
        """
        write = self._append_durable(event_type, trade_id, details)
        self.writes.setdefault(trade_id, set()).add(write)
        write.add_done_callback(lambda done: self._written(trade_id, done))
        try:
            await asyncio.shield(write)
        except Exception as exc:  # noqa: BLE001 - whatever it was, the entry is not known durable
            raise TradeError(ErrorClass.AUDIT, f"{event_type.value} not durable in the audit log: {exc!r}") from exc

    def _written(self, trade_id: str, write: asyncio.Future[None]) -> None:
        pending = self.writes.get(trade_id)
        if pending is not None:
            pending.discard(write)
            if not pending:
                del self.writes[trade_id]
        if not write.cancelled():
            write.exception()  # retrieved: the trade's own await raised it, or it was cancelled

    async def writes_done(self, trade_ids: Iterable[str]) -> None:
        """Wait until every durable append begun for ``trade_ids`` is answered (at most two
        ``internal_timeout_s``: each append gives up after that)."""
        pending = [w for t in trade_ids for w in self.writes.get(t, ())]
        if pending:
            await asyncio.wait(pending, timeout=2 * self.settings.internal_timeout_s)

    def _append_durable(self, event_type: EventType, trade_id: str, details: Mapping[str, Any]) -> asyncio.Future[None]:
        """The entry to the Audit actor; the future resolves once the writer has committed it,
        or fails (refused, not written, or not answered within two ``internal_timeout_s``: the
        bound the actor's answer and the commit had as two waits)."""
        try:
            ref = self.runtime.whereis(AUDIT_NAME)
            if ref is None:
                raise ActorDeadError("audit actor not running")
            event = audit_event(event_type, EXECUTOR_NAME, details, correlation_id=trade_id)
            answer = ref.ask(AppendDurable(event=event), block=False)
        except Exception as exc:  # noqa: BLE001 - refused before it was queued: not durable
            failed: asyncio.Future[None] = self.loop.create_future()
            failed.set_exception(exc)
            return failed
        return committed(self.loop, answer, 2 * self.settings.internal_timeout_s)

    def audit(self, event_type: EventType, trade_id: str | None, details: Mapping[str, Any], severity: Severity = Severity.INFO) -> None:
        """Append without waiting (what is not needed to recover a trade)."""
        record(self.runtime, audit_event(event_type, EXECUTOR_NAME, details, correlation_id=trade_id, severity=severity))

    def report(self, breaker: BreakerName, ok: bool, detail: str) -> None:
        if self.options.report is not None:
            self.options.report(self.runtime, breaker, ok, detail)

    def breaker(self, cls: ErrorClass | None, ok: bool, detail: str) -> None:
        """Tell the breaker of failure class ``cls``; None: a confirmed trade, heard by all of the path's."""
        if cls is None:
            for name in _CONFIRMED_HEARD_BY:
                self.report(name, True, detail)
            return
        name = _BREAKER_OF.get(cls)
        if name is not None:
            self.report(name, ok, detail)

    # -- budgets ------------------------------------------------------------------------------

    async def budgeted(
        self,
        endpoint: Endpoint,
        owner: str,
        call: Callable[[], Awaitable[T]],
        *,
        signed: bool = False,
        deadline: float | None = None,
    ) -> T:
        """``call()`` within ``endpoint``'s budget: it waits its fair turn (round robin across
        vaults) when the budget binds, and its answer tells the bucket (a 429 slows it down and
        is counted as the provider's or ours, never as a network failure).

        Raises:
            TradeError: ``quote_expired`` (its ``deadline``, loop time, passed while it waited: the
                new attempt re-quotes), ``halted`` (an emergency halt dropped unsigned work),
                ``rate_limited`` (the queue is full: backpressure), or whatever ``call`` raised.
        """
        kind = "signed" if signed else "unsigned"
        try:
            async with turn(self.options.quotas, endpoint, owner=owner, kind=kind, deadline=deadline) as t:
                try:
                    return await call()
                except (JupiterRefused, BlockEngineRefused) as exc:
                    refusal = exc.refusal
                    t.answered(refusal.http_status or (429 if refusal.reason.value == "rate_limited" else 400), refusal.retry_after_s)
                    raise
        except QuotaError as exc:
            raise classify_exception(exc) from exc

    # -- the gate -----------------------------------------------------------------------------

    def check_gate(self, req: TradeRequest) -> None:
        """Raise the gate's refusal (halted, or a breaker open), if any."""
        refusal = gate_refusal(
            self.board.status, req, stable_mint=self.options.stable_mint, breakers=self.options.gate
        )
        if refusal is not None:
            raise refusal

    def leased(self, rec: TradeRecord) -> bool:
        """Whether this node may still write for ``rec`` (always, when it runs alone): only the
        vault's lease holder, in the holding the trade began under, records its outcome."""
        try:
            self.check_fence(rec)
        except TradeError:
            return False
        return True

    def check_fence(self, rec: TradeRecord) -> int | None:
        """The vault's lease revision (the fencing token to record); None when this engine runs
        alone. Raises TradeError (FENCED) when this node may not sign for the vault now, or
        holds it again after losing it since the trade began (a later holding is not the
        trade's: the node that held the vault in between may have settled it)."""
        fence = self.options.fence
        if fence is None:
            return None
        vault = rec.request.vault_id
        answer = fence(vault)
        revision = getattr(answer, "revision", None)  # a LeaseToken; a FenceRefusal has none
        if not isinstance(revision, int):
            raise TradeError(ErrorClass.FENCED, f"{vault}: fenced ({answer}): this node does not hold its lease")
        tenure = int(getattr(answer, "tenure", 0))
        if rec.tenure == 0:
            rec.tenure = tenure
        elif tenure != rec.tenure:
            raise TradeError(ErrorClass.FENCED, f"{vault}: fenced: its lease was lost and taken again since this trade began")
        return revision

    # -- answers ------------------------------------------------------------------------------

    @staticmethod
    def tell(ref: ActorRef[Any] | None, message: Any) -> None:
        if ref is None:
            return
        try:
            ref.tell(message)
        except (ActorDeadError, MailboxFull) as exc:
            # The vault is gone or drowning; the outcome is in the audit log and the cache.
            logger.warning("outcome {} for {} not delivered: {!r}", getattr(message, "status", "?"), ref, exc)


def _task_done(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        # A bug: the trade's own handler catches everything it knows. Never silent.
        logger.opt(exception=task.exception()).critical("executor task {} failed", task.get_name())
