"""HeartbeatWatchdog: essential actors must make progress and must exist.

It reads each actor's liveness from the runtime's introspection (``Runtime.actors()``) rather
than by ping messages: every actor shows there, whether or not it is a Participant (the kill
switch and supervisors are not), no actor has to cooperate, and a pooled actor that the pool
never runs is caught as well as one stuck in a handler.

An actor is *busy* when it has queued messages or is running, scheduled or starting. A busy actor
whose count of handled messages has not moved for ``heartbeat_timeout_s`` (measured on this
watchdog's monotonic clock from the first check that saw it so) is **stuck**. A name that was
seen alive and then has no live actor for ``heartbeat_timeout_s`` is **missing** (a supervisor
restarting it within the timeout is fine). Detection takes between the timeout and the timeout
plus one ``heartbeat_interval_s``.
"""

from __future__ import annotations

import fnmatch
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from loguru import logger

from supervisors import ActorInfo, ActorState, ControlMessage, Message
from xorj_actors.audit import EventType
from xorj_actors.kill_switch import HaltBoard
from xorj_actors.messages import HaltMode
from xorj_actors.risk._messages import GetHeartbeatStatus, HeartbeatStatus
from xorj_actors.risk._monitor import RiskMonitor
from xorj_actors.risk.settings import RiskSettings

__all__ = ["HEARTBEAT_NAME", "ForgetEssential", "HeartbeatWatchdog"]

#: The HeartbeatWatchdog's registered name in the runtime.
HEARTBEAT_NAME = "risk_heartbeat"

_BUSY = frozenset({ActorState.RUNNING, ActorState.SCHEDULED, ActorState.STARTING})
_STACK_FRAMES = 12


class _Beat(ControlMessage):  # the watchdog's own timer: never refused
    pass


class ForgetEssential(Message):
    """An essential actor was removed on purpose (e.g. a retired signing key): stop expecting it."""

    name: str


class _Progress:
    """What the watchdog last saw of one busy actor (by urn)."""

    __slots__ = ("fired", "processed", "since")

    def __init__(self, processed: int, since: float) -> None:
        self.processed = processed
        self.since = since
        self.fired = False


class HeartbeatWatchdog(RiskMonitor):
    """Halts trading when an essential actor is stuck or missing for ``heartbeat_timeout_s``.

    Args:
        board: the halt board.
        settings: the ``[risk]`` section (``essential_actors``, ``heartbeat_interval_s``,
            ``heartbeat_timeout_s``, ``heartbeat_mode``).
        clock: monotonic clock of the timeouts.
        kill_file: written when the kill switch cannot be reached (it may be the missing actor).
    """

    monitor: ClassVar[str] = "heartbeat"
    registered_name: ClassVar[str] = HEARTBEAT_NAME

    def __init__(
        self,
        board: HaltBoard,
        settings: RiskSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        kill_file: Path | None = None,
    ) -> None:
        super().__init__(board, retry_s=settings.trigger_retry_s, kill_file=kill_file)
        self.settings = settings
        self.clock = clock
        self.patterns = settings.essential_actors
        self.checks = 0
        patterns = self.patterns
        # By name, cached: only essential actors are snapshotted at each beat (not 10,000 vaults).
        self._essential: Callable[[str], bool] = functools.lru_cache(maxsize=16_384)(
            lambda name: any(fnmatch.fnmatchcase(name, p) for p in patterns)
        )
        self._progress: dict[str, _Progress] = {}  # urn -> progress of a busy essential actor
        self._seen: set[str] = set()  # essential names seen alive at least once
        self._missing_since: dict[str, float] = {}
        self._missing_fired: set[str] = set()
        self._stuck_names: tuple[str, ...] = ()
        self._watched: tuple[str, ...] = ()

    def on_start(self) -> None:
        super().on_start()
        self.actor_ref.tell(_Beat())

    def on_receive(self, message: Any) -> Any:
        kind = type(message)
        if kind is _Beat:
            try:
                self.check()
            finally:
                # Re-armed whatever the check did: a watchdog that stops beating watches nothing.
                self.runtime.send_after(self.settings.heartbeat_interval_s, self.actor_ref, _Beat())
            return None
        if kind is GetHeartbeatStatus:
            return HeartbeatStatus(
                watched=self._watched,
                stuck=self._stuck_names,
                missing=tuple(sorted(self._missing_fired)),
                checks=self.checks,
                triggers=self.triggers,
            )
        if kind is ForgetEssential:
            self._seen.discard(message.name)
            self._missing_since.pop(message.name, None)
            self._missing_fired.discard(message.name)
            logger.info("risk heartbeat: {} is no longer expected", message.name)
            return None
        return super().on_receive(message)

    # -- the check -----------------------------------------------------------------------------


    def check(self) -> None:
        """One heartbeat: look at every essential actor once."""
        now = self.clock()
        timeout = self.settings.heartbeat_timeout_s
        self.checks += 1
        live_urns: set[str] = set()
        present: set[str] = set()
        stuck: list[str] = []
        for actor in self.runtime.actors(named=self._essential):
            live_urns.add(actor.urn)
            if actor.urn == self.actor_urn:
                continue
            if not actor.alive:  # ended, or stopping
                continue
            present.add(actor.name)
            if actor.state not in _BUSY and not actor.mailbox_depth:
                self._progress.pop(actor.urn, None)  # idle: healthy
                continue
            processed = actor.processed
            progress = self._progress.get(actor.urn)
            if progress is None or progress.processed != processed:
                self._progress[actor.urn] = _Progress(processed, now)
                continue
            stalled = now - progress.since
            if stalled < timeout:
                continue
            stuck.append(actor.name)
            if not progress.fired:
                progress.fired = True
                self._fire_stuck(actor, stalled, timeout)
        for urn in [u for u in self._progress if u not in live_urns]:
            del self._progress[urn]
        self._seen |= present
        for name in self._seen:
            if name in present:
                if name in self._missing_fired:
                    logger.warning("risk heartbeat: {} is back", name)
                self._missing_since.pop(name, None)
                self._missing_fired.discard(name)
                continue
            since = self._missing_since.setdefault(name, now)
            if now - since >= timeout and name not in self._missing_fired:
                self._missing_fired.add(name)
                self._fire_missing(name, now - since, timeout)
        self._watched = tuple(sorted(present))
        self._stuck_names = tuple(sorted(stuck))

    def _fire_stuck(self, actor: ActorInfo, stalled: float, timeout: float) -> None:
        snap = self.runtime.actor_info(actor.urn, stack=True) or actor  # its stack, now
        stack = list(snap.stack or ())
        reason = (
            f"essential actor {actor.name} stuck: no progress for {stalled:.1f} s >= timeout {timeout:g} s "
            f"(state {snap.state.value}, {snap.mailbox_depth} queued, last message {snap.last_message})"
        )
        details = {
            "actor": actor.name,
            "urn": actor.urn,
            "problem": "stuck",
            "stalled_s": stalled,
            "timeout_s": timeout,
            "state": snap.state.value,
            "queued": snap.mailbox_depth,
            "processed": snap.processed,
            "restarts": snap.restarts,
            "last_message": snap.last_message,
            "last_message_at": snap.last_message_at,
            "dedicated_thread": snap.dedicated_thread,
            "stack": stack[-_STACK_FRAMES:],
        }
        self.fire("heartbeat", HaltMode(self.settings.heartbeat_mode), reason, details)

    def _fire_missing(self, name: str, missing_for: float, timeout: float) -> None:
        reason = f"essential actor {name} missing: no live actor for {missing_for:.1f} s >= timeout {timeout:g} s"
        details = {
            "actor": name,
            "problem": "missing",
            "missing_s": missing_for,
            "timeout_s": timeout,
            "patterns": list(self.patterns),
        }
        self.fire("heartbeat", HaltMode(self.settings.heartbeat_mode), reason, details, event_type=EventType.HALT)
