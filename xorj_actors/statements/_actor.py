"""The Reconciler actor: the engine's scheduled statement reconciliation.

At start it audits the opening balances of every vault that has none (first seen); then it
reconciles every ``[reconciliation] interval_s`` (daily by default), and on ``ctl reconcile``.
A run reads the chain and the whole ledger, which may take minutes: it runs on a worker thread,
never on the actor's, so the actor keeps acknowledging halts meanwhile. A mismatch is audited
(SECURITY_VIOLATION, by the run), counted (``xorj_reconciliation_mismatches``) and, with
``halt_on_mismatch``, trips the kill switch.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from loguru import logger

from supervisors import ControlMessage, Message
from xorj_actors.audit import AuditSettings, append_durable, audit_event, load_key_ring, open_store
from xorj_actors.kill_switch import HaltBoard
from xorj_actors.messages import HaltMode
from xorj_actors.risk import RiskMonitor
from xorj_actors.statements._io import RpcReader, VaultAccounts
from xorj_actors.statements._run import ACTOR, Report, RunResult, reconcile, record_findings, record_openings
from xorj_actors.statements.settings import ReconciliationSettings

__all__ = ["RECONCILER_NAME", "GetReconciliation", "Reconciler", "ReconciliationStatus", "RunReconciliation"]

RECONCILER_NAME = "reconciler"
#: How long one audit append may wait for its commit.
_APPEND_TIMEOUT_S = 30.0
#: The openings at start are tried again until they are recorded: after this, doubling to the most.
_OPENINGS_RETRY_S, _OPENINGS_RETRY_MAX_S = 2.0, 300.0


class RunReconciliation(Message):
    """Start a run now (``ctl reconcile``); answered with the status (``running`` True if started or already running)."""


class GetReconciliation(Message):
    """Answered with :class:`ReconciliationStatus`."""


@dataclass(frozen=True, slots=True)
class ReconciliationStatus:
    """The reconciler's state and its last run's report (``last`` is ``Report.as_dict()``, or None)."""

    running: bool
    runs: int
    last_result: str
    last_mismatches: int
    last_finished_at: float
    last_error: str
    next_run_in_s: float
    last: dict[str, Any] | None


class _Tick(ControlMessage):  # the schedule's timer
    pass


class _RetryOpenings(ControlMessage):  # the openings at start failed (the audit store not made yet?)
    pass


class _Done(ControlMessage):  # a run's end, told back from the worker thread (the report is the job's result)
    error: str


class Reconciler(RiskMonitor):
    """See the module docstring.

    Args:
        board: the halt board.
        settings: ``[reconciliation]``.
        audit: ``[audit]`` (the ledger is read from its store; entries go through the Audit actor).
        data_dir: the engine's data directory.
        environment: ``[engine] environment`` (the HMAC key's rules).
        rpc_url: the node.
        vaults: the vaults' accounts, resolved on the worker thread (a store's keys may come late).
        on_result: ``(result, mismatches)`` after each run (metrics).
        kill_file: the kill switch's file (a trigger that cannot be delivered).
    """

    monitor: ClassVar[str] = "reconciliation"
    registered_name: ClassVar[str] = RECONCILER_NAME

    def __init__(
        self,
        board: HaltBoard,
        settings: ReconciliationSettings,
        *,
        audit: AuditSettings,
        data_dir: Path,
        environment: str,
        rpc_url: str,
        vaults: Callable[[], Sequence[VaultAccounts]],
        on_result: Callable[[str, int], None] | None = None,
        kill_file: Path | None = None,
    ) -> None:
        super().__init__(board, retry_s=1.0, kill_file=kill_file)
        self.settings, self.audit, self.data_dir, self.environment = settings, audit, data_dir, environment
        self.rpc_url, self.vaults, self.on_result = rpc_url, vaults, on_result
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="reconciler")
        self.job: concurrent.futures.Future[Any] | None = None
        self.runs, self.last, self.last_error, self.finished_at, self.next_at = 0, None, "", 0.0, 0.0
        self.again = False
        self.openings_job = False
        self.openings_retry_s = _OPENINGS_RETRY_S
        #: A mismatch halted (``halt_on_mismatch``) and no clean run has followed.
        self.latched = False

    def on_start(self) -> None:
        super().on_start()
        self._submit(openings_only=True)
        self._arm(self.settings.first_run_s)

    def on_stop(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        super().on_stop()

    def on_receive(self, message: Any) -> Any:
        if type(message) is _Tick:
            self._arm(self.settings.interval_s)
            self._submit(openings_only=False)
        elif type(message) is _RetryOpenings:
            self._submit(openings_only=True)
        elif type(message) is _Done:
            self._done(message)
        elif isinstance(message, RunReconciliation):
            self._submit(openings_only=False)
            return self.status()
        elif isinstance(message, GetReconciliation):
            return self.status()
        else:
            return super().on_receive(message)
        return None

    def status(self) -> ReconciliationStatus:
        last = self.last
        return ReconciliationStatus(
            running=self.job is not None and not self.job.done(), runs=self.runs,
            last_result=last.result.value if last is not None else "", last_mismatches=len(last.mismatches) if last else 0,
            last_finished_at=self.finished_at, last_error=self.last_error,
            next_run_in_s=max(0.0, self.next_at - time.monotonic()), last=last.as_dict() if last is not None else None,
        )

    def _arm(self, delay: float) -> None:
        self.next_at = time.monotonic() + delay
        self.runtime.send_after(delay, self.actor_ref, _Tick())

    def _submit(self, *, openings_only: bool) -> None:
        if self.job is not None and not self.job.done():
            self.again = self.again or not openings_only  # one run at a time: this one runs next
            return
        me = self.actor_ref

        def work() -> Report | None:
            try:
                report = self._work(openings_only)
            except Exception as exc:  # noqa: BLE001 - reported as the run's error, never lost
                me.tell(_Done(error=f"{type(exc).__name__}: {exc}"))
                return None
            me.tell(_Done(error=""))
            return report

        self.openings_job = openings_only
        self.job = self.pool.submit(work)

    def _append(self, kind: str, details: dict[str, Any], correlation: str | None, severity: str) -> None:
        event = audit_event(kind, ACTOR, details, correlation_id=correlation, severity=severity)
        append_durable(self.runtime, event, _APPEND_TIMEOUT_S)

    def _work(self, openings_only: bool) -> Report | None:
        key = load_key_ring(self.audit, self.environment)
        store = open_store(self.audit, self.data_dir, create=False)
        reader = RpcReader(self.rpc_url, self.settings.rpc_timeout_s)
        try:
            if openings_only:
                opened = record_openings(store, key, reader, self.vaults(), self._append)
                if opened:
                    logger.info("reconciliation: opening balances audited for {} vaults", len(opened))
                return None
            return reconcile(store, key, reader, self.vaults(), defer_max_s=self.settings.defer_max_s)  # written by _record, after the halt
        finally:
            store.close()

    def _record(self, report: Report) -> None:
        """Write the run's audit entries (on the worker): after the metric and the halt."""
        record_findings(report, self._append)
        for why in report.audit_errors:
            logger.error("reconciliation: audit entry not written: {}", why)

    def _done(self, done: _Done) -> None:
        report = self.job.result() if self.job is not None else None
        openings = self.openings_job
        try:
            self._conclude(done, report, openings)
        finally:
            if report is not None:
                self.pool.submit(self._record, report)  # one worker: before any next run reads the ledger
            if self.again:
                self.again = False
                self._submit(openings_only=False)

    def _conclude(self, done: _Done, report: Report | None, openings: bool) -> None:
        """The metric and the halt of a finished run, from its report alone."""
        if done.error and openings:
            delay, self.openings_retry_s = self.openings_retry_s, min(self.openings_retry_s * 2, _OPENINGS_RETRY_MAX_S)
            logger.warning("reconciliation: opening balances not recorded yet ({}); again in {:g} s", done.error, delay)
            self.runtime.send_after(delay, self.actor_ref, _RetryOpenings())
            return
        if done.error:
            self.last_error = done.error
            logger.error("reconciliation: run failed: {}", done.error)
            if self.on_result is not None:  # the gauge keeps the last finding: a failed run clears nothing
                self.on_result(RunResult.INCOMPLETE.value, len(self.last.mismatches) if self.last is not None else 0)
            return
        if report is None:  # the openings at start
            return
        self.runs, self.last, self.last_error, self.finished_at = self.runs + 1, report, "", time.time()
        mismatches = report.mismatches
        if self.on_result is not None:
            self.on_result(report.result.value, len(mismatches))
        if not mismatches:
            self.latched = False  # a clean run ends the episode: the next mismatch halts again
            logger.info("reconciliation: {} vaults match ({} unreadable)", len(report.statements), len(report.unreadable))
            return
        first = mismatches[0]
        reason = (f"statement reconciliation: {len(mismatches)} mismatches; first: {first.vault_id} {first.asset} "
                  f"expected {first.expected} actual {first.actual} ({first.cause.value})")
        logger.critical("{}", reason)
        if self.settings.halt_on_mismatch and not self.latched:  # once per episode: not every run
            self.latched = True
            self.fire("reconciliation", HaltMode.GRACEFUL, reason,
                      {"mismatches": [m.as_dict() for m in mismatches[:20]], "count": len(mismatches)})
