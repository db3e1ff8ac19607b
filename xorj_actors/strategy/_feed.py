"""The StrategyFeed actor: polls the quantitative engine, validates, publishes on the strategy board.

The HTTP request runs on an asyncio loop of the feed's own (:class:`LoopThread`); its outcome
comes back to the actor as a control message, so the actor never blocks and a full mailbox can
never lose a poll's result. One request at a time: a refresh asked while one is in flight runs
right after it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from loguru import logger
from pykka import ActorDeadError

from supervisors import ControlMessage, LoopThread, MailboxFull, Message, TimerHandle
from xorj_actors.audit import EventType, Severity, audit_event, record
from xorj_actors.kill_switch import HaltBoard, Participant
from xorj_actors.messages import Halt, Resume
from xorj_actors.redaction import redact_url
from xorj_actors.strategy._board import StrategyBoard
from xorj_actors.strategy._client import PollRejected, QuantClient, StrategyFeedError, checked_mints, ranked_traders_url
from xorj_actors.strategy._model import StrategySnapshot
from xorj_actors.strategy._staleness import RoundVerdict, round_verdict, stale_check_delay
from xorj_actors.strategy.settings import DEV_QUANT_API_KEY, StrategySettings

__all__ = [
    "STRATEGY_FEED_NAME",
    "GetStrategyStatus",
    "RefreshStrategy",
    "StrategyFeed",
    "StrategyStatus",
]

#: The feed's registered name in the runtime (``runtime.whereis``), stable across restarts.
STRATEGY_FEED_NAME = "strategy_feed"

_LOOP_START_TIMEOUT_S = 5.0
_LOOP_STOP_TIMEOUT_S = 2.0
#: The loop's own timeout fires first; this one catches a loop that never answers at all.
_DEADLINE_MARGIN_S = 5.0


# -- public messages ---------------------------------------------------------------------------


class RefreshStrategy(Message):
    """Poll now (after the request in flight, if any)."""

    reason: str = "requested"


class GetStrategyStatus(Message):
    """Ask the feed for its :class:`StrategyStatus`."""


class StrategyStatus(Message):
    """The feed's state, for ``ctl`` and health."""

    round: int | None  # of the last good snapshot
    scenario: str | None
    fresh: bool
    last_ok_at: float | None  # time.time() of the last good response
    last_error: str | None  # kept after recovery; compare last_error_at with last_ok_at
    last_error_at: float | None
    rejections: int
    polls: int  # requests started
    polling: bool  # a request is in flight
    url: str
    started_at: float | None = None  # time.time() this feed started (its age before a first good response)


# -- internal messages (control: never refused, so a poll's outcome is never lost) -------------


class _PollTick(ControlMessage):
    token: int


class _PollDone(ControlMessage):
    poll_id: str
    snapshot: StrategySnapshot | None
    kind: str  # "ok", or the rejection's kind
    error: str | None


class _PollDeadline(ControlMessage):
    poll_id: str


class _StaleCheck(ControlMessage):
    token: int


def _resolve_api_key(settings: StrategySettings, environ: Mapping[str, str], environment: str) -> str:
    if environment not in ("development", "production"):
        raise StrategyFeedError(f"strategy: environment must be development or production, got {environment!r}")
    env = settings.api_key_env
    key = environ.get(env, "")
    if environment == "production":
        if not key:
            raise StrategyFeedError(
                f"strategy: ${env} is unset: the quantitative engine's API key is required in production"
            )
        if key == DEV_QUANT_API_KEY:
            raise StrategyFeedError(f"strategy: ${env} holds the public development key; refused in production")
    elif not key:
        logger.warning("strategy feed: ${} unset, using the public DEVELOPMENT quant API key", env)
        key = DEV_QUANT_API_KEY
    if not key.isascii() or not key.isprintable() or any(c.isspace() for c in key):
        raise StrategyFeedError(f"strategy: ${env} must be printable ASCII without spaces")  # never echo it
    return key


def _live_api_key(settings: StrategySettings, environ: Mapping[str, str], environment: str) -> Callable[[], str]:
    """The API key as ``environ`` holds it now (``ctl reload-secrets`` rotates it in place),
    checked again only when it changed; a rotated key that is refused leaves the previous one."""
    current = (environ.get(settings.api_key_env, ""), _resolve_api_key(settings, environ, environment))

    def api_key() -> str:
        nonlocal current
        raw = environ.get(settings.api_key_env, "")
        if raw != current[0]:
            try:
                current = (raw, _resolve_api_key(settings, environ, environment))
            except StrategyFeedError as exc:
                logger.error("strategy feed: the rotated API key is refused ({}); the previous one stays", exc)
                current = (raw, current[1])
        return current[1]

    return api_key


class StrategyFeed(Participant):
    """Polls ``GET /internal/ranked-traders`` and publishes good answers on the strategy board.

    A bad answer (HTTP error, timeout, malformed or invalid data) is refused whole; the last
    good snapshot stays on the board. The board goes stale after ``stale_after_s`` without a
    good answer (vaults then start no new trades); the engine is not halted for it.

    Polling continues through a halt: reading data moves no funds, and vaults need a fresh
    ranking the moment trading resumes.

    Args:
        board: the halt board.
        settings: ``[strategy]``.
        strategy_board: where snapshots are published (its ``stale_after_s`` must match).
        url: the quant engine's base URL (``settings.url``, or the localnet's when empty).
        tradable_mints: mint -> decimals of every mint the engine trades.
        environ: where the API key is read.
        environment: ``engine.environment``; production requires a real API key.
        clock: wall-clock seconds (``time.time``); the board should share it.
        on_poll: called with ``"ok"`` or the rejection kind after every poll (metrics).
    """

    #: Every kind of rejection, as given to ``on_poll`` and in the audit details.
    # Starting and stopping its loop thread waits (bounded): not on the shared pool, where a
    # wait makes the stall watchdog lend workers.
    dedicated_thread: ClassVar[bool] = True
    REJECTION_KINDS: ClassVar[tuple[str, ...]] = (
        "http_status", "timeout", "transport", "invalid_data", "stale_round", "internal",
    )

    def __init__(
        self,
        board: HaltBoard,
        settings: StrategySettings,
        strategy_board: StrategyBoard,
        url: str,
        tradable_mints: Mapping[str, int],
        environ: Mapping[str, str],
        environment: str,
        *,
        clock: Callable[[], float] = time.time,
        on_poll: Callable[[str], None] | None = None,
    ) -> None:
        settings.validate()
        if strategy_board.stale_after_s != settings.stale_after_s:
            raise StrategyFeedError(
                f"strategy: the board's stale_after_s ({strategy_board.stale_after_s:g}) differs from "
                f"the settings' ({settings.stale_after_s:g})"
            )
        endpoint = ranked_traders_url(url)
        mints = checked_mints(tradable_mints)
        api_key = _live_api_key(settings, environ, environment)
        super().__init__(board)
        self.settings = settings
        self.strategy_board = strategy_board
        self.url = endpoint
        self._clock = clock
        self._on_poll = on_poll
        self._client = QuantClient(endpoint, api_key, settings, mints, clock)
        self._loop: LoopThread | None = None
        self._instance = uuid.uuid4().hex[:8]
        self._started_at = strategy_board.feed_started(clock())  # the first feed's start: the board outlives us
        self._polls = 0
        self._rejections = 0
        # A restarted feed takes over the board as it is: no false "fresh" transition.
        latest = strategy_board.latest
        self._last_ok_at: float | None = latest.fetched_at if latest is not None else None
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._inflight: str | None = None
        self._inflight_future: concurrent.futures.Future[None] | None = None
        self._deadline: TimerHandle | None = None
        self._again = False
        self._tick_token = 0
        self._tick: TimerHandle | None = None
        self._stale_token = 0
        self._stale_timer: TimerHandle | None = None
        self._fresh = strategy_board.fresh(clock())
        self._audited: tuple[str, int] | None = None  # (scenario, round) last audited
        self.runtime.register_name(STRATEGY_FEED_NAME, self.actor_ref)

    # -- lifecycle -------------------------------------------------------------------------------

    def on_start(self) -> None:
        super().on_start()
        loop = LoopThread("strategy-feed-http")
        loop.start(self._client.open(), _LOOP_START_TIMEOUT_S)  # creates a session: no I/O
        self._loop = loop
        logger.info("{}: polling {} every {:g} s", self.name, redact_url(self.url), self.settings.poll_interval_s)
        self._check_freshness()
        self._poll("start")
        self.publish_status(self.status())  # xorj_strategy_feed_age_seconds reads it

    def on_terminate(self) -> None:
        for handle in (self._tick, self._deadline, self._stale_timer):
            if handle is not None:
                handle.cancel()
        future, self._inflight_future = self._inflight_future, None
        if future is not None:
            future.cancel()
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.stop(self._client.close, _LOOP_STOP_TIMEOUT_S)

    def on_halt(self, halt: Halt) -> int:
        logger.info("{}: halt epoch {}: polling continues (reading data moves no funds)", self.name, halt.epoch)
        return 0

    def on_resume(self, resume: Resume) -> None:
        self._check_freshness()

    # -- messages --------------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        kind = type(message)
        if kind is _PollDone:
            self._done(message)
        elif kind is _PollTick:
            if message.token == self._tick_token:
                self._tick = None
                self._poll("interval")
        elif kind is _PollDeadline:
            if message.poll_id == self._inflight:
                self._deadline = None
                future = self._inflight_future
                if future is not None:
                    future.cancel()
                wait = self.settings.request_timeout_s + _DEADLINE_MARGIN_S
                self._done(_PollDone(poll_id=message.poll_id, snapshot=None, kind="internal",
                                     error=f"the HTTP loop gave no outcome within {wait:g} s"))
        elif kind is _StaleCheck:
            if message.token == self._stale_token:
                self._stale_timer = None
        elif kind is RefreshStrategy:
            logger.info("{}: refresh ({})", self.name, message.reason)
            self._poll(message.reason)
        elif kind is GetStrategyStatus:
            self._check_freshness()
            return self.status()
        else:
            return super().on_receive(message)
        self._check_freshness()
        self.publish_status(self.status())
        return None

    def status(self) -> StrategyStatus:
        latest = self.strategy_board.latest
        return StrategyStatus(
            round=latest.round if latest is not None else None,
            scenario=latest.scenario if latest is not None else None,
            fresh=self.strategy_board.fresh(self._clock()),
            last_ok_at=self._last_ok_at,
            last_error=self._last_error,
            last_error_at=self._last_error_at,
            rejections=self._rejections,
            polls=self._polls,
            polling=self._inflight is not None,
            url=redact_url(self.url),
            started_at=self._started_at,
        )

    # -- polling ---------------------------------------------------------------------------------

    def _poll(self, trigger: str) -> None:
        if self._inflight is not None:
            self._again = True  # one more right after: the answer in flight may predate the ask
            return
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        self._polls += 1
        poll_id = f"strategy-poll-{self._instance}-{self._polls}"
        self._inflight = poll_id
        logger.debug("{}: poll {} ({})", self.name, poll_id, trigger)
        loop = self._loop
        fetch = self._fetch(poll_id)
        try:
            if loop is None:
                raise RuntimeError("HTTP loop not running")
            self._inflight_future = asyncio.run_coroutine_threadsafe(fetch, loop.loop)
        except RuntimeError as exc:  # the loop is closed
            fetch.close()
            self._done(_PollDone(poll_id=poll_id, snapshot=None, kind="internal", error=f"cannot start the request: {exc}"))
            return
        self._deadline = self.runtime.send_after(
            self.settings.request_timeout_s + _DEADLINE_MARGIN_S, self.actor_ref, _PollDeadline(poll_id=poll_id)
        )

    async def _fetch(self, poll_id: str) -> None:
        """On the loop thread: one request; its outcome is told to the actor, whatever it is."""
        try:
            snapshot = await self._client.fetch()
            done = _PollDone(poll_id=poll_id, snapshot=snapshot, kind="ok", error=None)
        except PollRejected as exc:
            done = _PollDone(poll_id=poll_id, snapshot=None, kind=exc.kind, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - reported as a rejection, never lost
            logger.opt(exception=exc).error("strategy feed: unexpected failure in poll {}", poll_id)
            done = _PollDone(poll_id=poll_id, snapshot=None, kind="internal", error=f"{type(exc).__name__}: {exc}")
        try:
            self.actor_ref.tell(done)
        except (ActorDeadError, MailboxFull):  # stopped meanwhile (control messages are never refused)
            pass

    def _done(self, done: _PollDone) -> None:
        if done.poll_id != self._inflight:
            logger.debug("{}: late outcome of {} ignored", self.name, done.poll_id)
            return
        self._inflight = None
        self._inflight_future = None
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        snapshot, kind, error = done.snapshot, done.kind, done.error
        latest = self.strategy_board.latest
        verdict = round_verdict(snapshot, latest) if snapshot is not None else RoundVerdict.ACCEPT
        if verdict is RoundVerdict.OLD:
            kind = "stale_round"
            error = (f"round {snapshot.round} is older than the accepted round {latest.round} "
                     f"({latest.scenario}) and was not generated later")
            snapshot = None
        elif verdict is RoundVerdict.RESTARTED:
            logger.warning(
                "{}: round went back from {} to {} with a newer generatedAt: the quant engine restarted?",
                self.name, latest.round, snapshot.round,
            )
        if snapshot is not None:
            self._accept(done.poll_id, snapshot)
        else:
            self._reject(done.poll_id, kind, error or "unknown")
        if self._on_poll is not None:
            try:
                self._on_poll("ok" if snapshot is not None else kind)
            except Exception:  # noqa: BLE001 - a metrics hook must not stop polling
                logger.exception("{}: on_poll hook failed", self.name)
        if self._again:
            self._again = False
            self._poll("refresh queued behind a request")
        else:
            delay = self.settings.poll_interval_s if snapshot is not None else self.settings.retry_interval_s
            self._tick_token += 1
            self._tick = self.runtime.send_after(delay, self.actor_ref, _PollTick(token=self._tick_token))

    def _accept(self, poll_id: str, snapshot: StrategySnapshot) -> None:
        self.strategy_board.publish(snapshot)
        self._last_ok_at = snapshot.fetched_at
        self._arm_stale_timer()
        accepted = (snapshot.scenario, snapshot.round)
        if self._audited == accepted:
            logger.debug("{}: {} round {} again", self.name, snapshot.scenario, snapshot.round)
            return
        self._audited = accepted
        targets: dict[str, Any] = {}
        for profile in self.settings.profiles:
            trader = snapshot.trader_for(profile)
            if trader is None:
                targets[profile.name] = None
                logger.warning(
                    "{}: round {}: no trader above trust score {:g}: vaults of profile {} hold",
                    self.name, snapshot.round, profile.min_trust_score, profile.name,
                )
            else:
                targets[profile.name] = {"rank": trader.rank, "wallet": trader.wallet, "trust_score": trader.trust_score}
        logger.info(
            "{}: accepted {} round {} ({} traders, generated {})",
            self.name, snapshot.scenario, snapshot.round, len(snapshot.traders), snapshot.generated_at,
        )
        self._audit(
            EventType.SYSTEM_EVENT,
            {
                "event": "strategy_round",
                "round": snapshot.round,
                "scenario": snapshot.scenario,
                "traders": len(snapshot.traders),
                "generated_at": snapshot.generated_at,
                "version": snapshot.version,
                "targets": targets,
            },
            poll_id,
            Severity.INFO,
        )

    def _reject(self, poll_id: str, kind: str, reason: str) -> None:
        self._rejections += 1
        self._last_error = f"{kind}: {reason}"
        self._last_error_at = self._clock()
        latest = self.strategy_board.latest
        kept = f"round {latest.round}" if latest is not None else "none"
        logger.warning("{}: poll {} rejected ({}): {}; keeping the last good snapshot ({})", self.name, poll_id, kind, reason, kept)
        self._audit(
            EventType.ERROR_EVENT,
            {"event": "strategy_rejected", "kind": kind, "reason": reason, "url": redact_url(self.url), "kept_round": latest.round if latest else None},
            poll_id,
            Severity.ERROR,
        )

    # -- staleness -------------------------------------------------------------------------------

    def _arm_stale_timer(self) -> None:
        age = self.strategy_board.age(self._clock())
        if age is None:
            return
        remaining = stale_check_delay(age, self.settings.stale_after_s)
        if self._stale_timer is not None:
            self._stale_timer.cancel()
        self._stale_token += 1
        self._stale_timer = self.runtime.send_after(remaining, self.actor_ref, _StaleCheck(token=self._stale_token))

    def _check_freshness(self) -> None:
        now = self._clock()
        fresh = self.strategy_board.fresh(now)
        if fresh and self._stale_timer is None:
            self._arm_stale_timer()  # the last check fired a hair early
        if fresh == self._fresh:
            return
        self._fresh = fresh
        age = self.strategy_board.age(now)
        details = {
            "event": "strategy_fresh" if fresh else "strategy_stale",
            "fresh": fresh,
            "last_ok_at": self._last_ok_at,
            "age_s": None if age is None else round(age, 3),
            "stale_after_s": self.settings.stale_after_s,
            "last_error": self._last_error,
        }
        if fresh:
            logger.info("{}: strategy fresh (round {}): new trades may start", self.name, self._audited[1] if self._audited else None)
            self._audit(EventType.SYSTEM_EVENT, details, None, Severity.INFO)
        else:
            logger.warning(
                "{}: strategy STALE: no good response for {:.0f} s (limit {:g} s): vaults start no new trades; "
                "last error: {}", self.name, age if age is not None and math.isfinite(age) else 0.0,
                self.settings.stale_after_s, self._last_error,
            )
            self._audit(EventType.SYSTEM_EVENT, details, None, Severity.WARNING)

    def _audit(self, event_type: EventType, details: dict[str, Any], correlation_id: str | None, severity: Severity) -> None:
        # A fixed actor name: the supervisor renames the mailbox only after start, racing the first poll.
        record(self.runtime, audit_event(event_type, STRATEGY_FEED_NAME, details, correlation_id=correlation_id, severity=severity))
