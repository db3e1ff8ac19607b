"""ClockSkewMonitor: the system clock against the chain's block time.

Every ``clock_check_interval_s`` it asks the RPC node ``getSlot`` (at ``clock_commitment``) then
``getBlockTime(slot)``, and compares the block time with the system clock read when the answer
arrives: ``skew = now - block_time`` (positive: our clock is ahead). Skew beyond
``max_clock_skew_s`` on ``clock_skew_consecutive`` checks in a row triggers the kill switch.

An RPC failure is not skew: it neither counts toward the run nor breaks it, and it is reported
to the ``network_connectivity`` breaker. Successes are not reported: closing a breaker is the
business of its probe trades, not of this monitor.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
from loguru import logger
from pykka import ActorDeadError

from supervisors import ControlMessage, LoopThread, MailboxFull
from xorj_actors.audit import EventType
from xorj_actors.breakers import BreakerName, report
from xorj_actors.kill_switch import HaltBoard
from xorj_actors.messages import HaltMode
from xorj_actors.quotas import QuotaError, Quotas
from xorj_actors.risk._chain_time import RpcFailure, RpcThrottled, block_time_of, checked_block_time
from xorj_actors.risk._messages import CheckClock, ClockSkewStatus, GetClockSkewStatus
from xorj_actors.risk._monitor import RiskMonitor
from xorj_actors.risk.settings import RiskSettings

__all__ = ["CLOCK_SKEW_NAME", "ClockSkewMonitor", "report_network_failure"]

#: The ClockSkewMonitor's registered name in the runtime.
CLOCK_SKEW_NAME = "risk_clock_skew"

_LOOP_START_TIMEOUT_S = 5.0
_LOOP_STOP_TIMEOUT_S = 2.0
_DEADLINE_MARGIN_S = 1.0


class _Check(ControlMessage):  # the monitor's own timer: never refused
    pass


class _Probed(ControlMessage):  # the outcome of one check, told back from the loop thread
    seq: int
    slot: int | None
    block_time: int | None
    now: float | None
    error: str | None
    #: The check found no turn in the rpc_read budget, or the node answered 429: no network failure.
    throttled: bool = False


class _ProbeDeadline(ControlMessage):
    seq: int


def report_network_failure(runtime: Any, detail: str) -> None:
    """Tell the ``network_connectivity`` breaker of a failed RPC call (:func:`breakers.report`
    logs what it cannot deliver, and never raises)."""
    report(runtime, BreakerName.NETWORK_CONNECTIVITY, ok=False, detail=detail)


class ClockSkewMonitor(RiskMonitor):
    """Halts trading when the system clock and the chain disagree for several checks.

    Args:
        board: the halt board.
        settings: the ``[risk]`` section.
        rpc_url: the JSON-RPC endpoint, or a callable giving it at each check (None: not known yet,
            counted as an RPC failure).
        now: the system clock under test (``time.time``); tests inject a skewed one.
        report_failure: called with ``(runtime, detail)`` for each RPC failure; default
            :func:`report_network_failure`.
        kill_file: written when the kill switch cannot be reached (see :class:`RiskMonitor`).
    """

    monitor: ClassVar[str] = "clock_skew"
    registered_name: ClassVar[str] = CLOCK_SKEW_NAME

    def __init__(
        self,
        board: HaltBoard,
        settings: RiskSettings,
        rpc_url: str | Callable[[], str | None],
        *,
        now: Callable[[], float] = time.time,
        report_failure: Callable[[Any, str], None] = report_network_failure,
        kill_file: Path | None = None,
        quotas: Quotas | None = None,
    ) -> None:
        super().__init__(board, retry_s=settings.trigger_retry_s, kill_file=kill_file)
        self.settings = settings
        self.rpc_url = rpc_url
        self.now = now
        self.report_failure = report_failure
        #: Both calls of a check take their ``rpc_read`` turns before the first is made, so a
        #: wait in the budget never ages the slot whose time is compared.
        self.quotas = quotas
        self._loop: LoopThread | None = None
        self._session: aiohttp.ClientSession | None = None
        self._seq = 0
        self._inflight: int | None = None
        self._future: concurrent.futures.Future[None] | None = None
        self._deadline: Any = None
        self._timer: Any = None
        self.checks = 0
        self.errors = 0
        self.consecutive = 0
        self.latched = False
        self.skew_s: float | None = None
        self.slot: int | None = None
        self.block_time: int | None = None
        self.last_error: str | None = None
        self._run: list[dict[str, Any]] = []  # the skewed checks of the current run

    # -- lifecycle -----------------------------------------------------------------------------

    def on_start(self) -> None:
        super().on_start()
        loop = LoopThread("risk-clock-rpc")
        loop.start(self._open(), _LOOP_START_TIMEOUT_S)  # makes a session: no I/O
        self._loop = loop
        self.actor_ref.tell(_Check())

    async def _open(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.settings.clock_rpc_timeout_s),
            connector=aiohttp.TCPConnector(limit=2),
        )

    async def _close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def on_terminate(self) -> None:
        for handle in (self._timer, self._deadline):
            if handle is not None:
                handle.cancel()
        future, self._future = self._future, None
        if future is not None:
            future.cancel()
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.stop(self._close, _LOOP_STOP_TIMEOUT_S)

    # -- messages ------------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        kind = type(message)
        if kind is _Check:
            self._timer = self.runtime.send_after(self.settings.clock_check_interval_s, self.actor_ref, _Check())
            return self._start_check()
        if kind is CheckClock:
            return self._start_check()
        if kind is _Probed:
            self._on_probed(message)
            return self.publish_status(self.status())  # xorj_clock_skew_seconds reads it
        if kind is _ProbeDeadline:
            if message.seq == self._inflight:
                if self._future is not None:
                    self._future.cancel()
                wait = 3 * self.settings.clock_rpc_timeout_s + _DEADLINE_MARGIN_S  # the turns, then two calls
                self._on_probed(_Probed(seq=message.seq, slot=None, block_time=None, now=None,
                                        error=f"no answer from the RPC loop within {wait:g} s"))
                self.publish_status(self.status())
            return None
        if kind is GetClockSkewStatus:
            return self.status()
        return super().on_receive(message)

    def status(self) -> ClockSkewStatus:
        return ClockSkewStatus(
            checks=self.checks,
            errors=self.errors,
            skew_s=self.skew_s,
            slot=self.slot,
            block_time=self.block_time,
            consecutive=self.consecutive,
            latched=self.latched,
            triggers=self.triggers,
            last_error=self.last_error,
            lag_allowance_s=self.settings.clock_lag_allowance_s,
        )

    # -- a check -------------------------------------------------------------------------------

    def _start_check(self) -> None:
        if self._inflight is not None:
            logger.warning("risk clock: check {} still waiting for the RPC; skipping this one", self._inflight)
            return
        self._seq += 1
        seq = self._inflight = self._seq
        url = self.rpc_url() if callable(self.rpc_url) else self.rpc_url
        loop = self._loop
        try:
            if not url:
                raise RpcFailure("no RPC endpoint known")
            if loop is None:
                raise RpcFailure("RPC loop not running")
            self._future = asyncio.run_coroutine_threadsafe(self._probe(seq, url), loop.loop)
        except (RpcFailure, RuntimeError) as exc:
            self._on_probed(_Probed(seq=seq, slot=None, block_time=None, now=None, error=f"cannot start the check: {exc}"))
            return
        wait = 2 * self.settings.clock_rpc_timeout_s + _DEADLINE_MARGIN_S
        self._deadline = self.runtime.send_after(wait, self.actor_ref, _ProbeDeadline(seq=seq))

    async def _probe(self, seq: int, url: str) -> None:
        """On the loop thread: getSlot, getBlockTime, the clock; the outcome is told back."""
        slot = block_time = None
        now = None
        error = None
        throttled = False
        try:
            assert self._session is not None
            slot, block_time = await block_time_of(
                self._session, url, commitment=self.settings.clock_commitment, quotas=self.quotas,
                owner=CLOCK_SKEW_NAME, timeout_s=self.settings.clock_rpc_timeout_s,
            )
            now = self.now()
            checked_block_time(slot, block_time)
        except QuotaError as exc:
            error, throttled = f"no turn in the rpc_read budget: {exc}", True
        except RpcFailure as exc:
            error, throttled = str(exc), isinstance(exc, RpcThrottled)
        except Exception as exc:  # noqa: BLE001 - reported, never lost
            logger.opt(exception=exc).error("risk clock: unexpected failure in check {}", seq)
            error = f"{type(exc).__name__}: {exc}"
        done = _Probed(
            seq=seq,
            slot=slot if type(slot) is int else None,
            block_time=block_time if error is None else None,
            now=now if error is None else None,
            error=error,
            throttled=throttled,
        )
        try:
            self.actor_ref.tell(done)
        except (ActorDeadError, MailboxFull):  # stopped meanwhile (control messages are never refused)
            pass

    def _on_probed(self, done: _Probed) -> None:
        if done.seq != self._inflight:
            logger.debug("risk clock: late outcome of check {} ignored", done.seq)
            return
        self._inflight = None
        self._future = None
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if done.error is not None or done.block_time is None or done.now is None:
            self.errors += 1
            self.last_error = done.error or "no outcome"
            logger.warning("risk clock: RPC check failed (not skew): {}", self.last_error)
            if not done.throttled:  # a budget, not the network
                self.report_failure(self.runtime, f"clock skew check: {self.last_error}")
            return
        self.checks += 1
        now, block_time, slot = done.now, done.block_time, done.slot
        skew = now - block_time
        self.skew_s, self.block_time, self.slot = skew, block_time, slot
        limit = self.settings.max_clock_skew_s
        if not math.isfinite(skew) or abs(skew) <= limit:
            if self.consecutive:
                logger.info("risk clock: skew {:+.1f} s back within {:g} s after {} skewed checks", skew, limit, self.consecutive)
            self.consecutive = 0
            self._run = []
            self.latched = False
            return
        self.consecutive += 1
        self._run = (self._run + [{"slot": slot, "block_time": block_time, "now": now, "skew_s": skew}])[-10:]
        needed = self.settings.clock_skew_consecutive
        logger.warning("risk clock: skew {:+.1f} s beyond {:g} s ({} of {} in a row)", skew, limit, self.consecutive, needed)
        if self.consecutive < needed or self.latched:
            return
        self.latched = True
        ahead = "ahead of" if skew > 0 else "behind"
        reason = (
            f"clock skew {skew:+.1f} s (system clock {ahead} the chain) beyond max {limit:g} s on "
            f"{self.consecutive} consecutive checks: now {now:.3f}, block time {block_time} of slot {slot}"
        )
        details = {
            "skew_s": skew,
            "max_clock_skew_s": limit,
            "consecutive": self.consecutive,
            "required_consecutive": needed,
            "now": now,
            "block_time": block_time,
            "slot": slot,
            "commitment": self.settings.clock_commitment,
            "checks": self._run,
        }
        self.fire("clock_skew", HaltMode(self.settings.clock_skew_mode), reason, details,
                  event_type=EventType.SECURITY_VIOLATION)
