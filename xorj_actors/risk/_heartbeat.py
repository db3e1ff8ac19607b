"""HeartbeatWatchdog: essential actors must make progress and must exist.

It reads each actor's liveness from the runtime's introspection (``Runtime.mailboxes()``) rather
than by ping messages: every actor has a mailbox, whether or not it is a Participant (the kill
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
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from loguru import logger

from supervisors import ActorState, ControlMessage, Mailbox, Message
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
_DEAD = frozenset({ActorState.STOPPED, ActorState.FAILED, ActorState.KILLED, ActorState.ABANDONED})
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
        self._matches: dict[str, tuple[str, bool]] = {}  # urn -> (name when matched, essential?)
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

    def _essential(self, mailbox: Mailbox) -> bool:
        if mailbox.urn == self.actor_urn:
            return False
        name = mailbox.name
        cached = self._matches.get(mailbox.urn)
        # Names change once after start (a supervisor renames its child to the child id).
        if cached is None or cached[0] != name:
            cached = (name, any(fnmatch.fnmatchcase(name, p) for p in self.patterns))
            self._matches[mailbox.urn] = cached
        return cached[1]

    def check(self) -> None:
        """One heartbeat: look at every essential actor once."""
        now = self.clock()
        timeout = self.settings.heartbeat_timeout_s
        self.checks += 1
        mailboxes = self.runtime.mailboxes()
        live_urns: set[str] = set()
        present: set[str] = set()
        stuck: list[str] = []
        for mailbox in mailboxes:
            live_urns.add(mailbox.urn)
            if not self._essential(mailbox):
                continue
            state = mailbox.state
            if state in _DEAD or mailbox.exit_reason is not None:
                continue
            present.add(mailbox.name)
            if state not in _BUSY and not len(mailbox):
                self._progress.pop(mailbox.urn, None)  # idle: healthy
                continue
            processed = mailbox.processed
            progress = self._progress.get(mailbox.urn)
            if progress is None or progress.processed != processed:
                self._progress[mailbox.urn] = _Progress(processed, now)
                continue
            stalled = now - progress.since
            if stalled < timeout:
                continue
            stuck.append(mailbox.name)
            if not progress.fired:
                progress.fired = True
                self._fire_stuck(mailbox, stalled, timeout)
        for urn in [u for u in self._matches if u not in live_urns]:
            del self._matches[urn]
            self._progress.pop(urn, None)
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

    def _fire_stuck(self, mailbox: Mailbox, stalled: float, timeout: float) -> None:
        snap = mailbox.snapshot(stack=True)
        stack = snap.get("stack") or []
        reason = (
            f"essential actor {mailbox.name} stuck: no progress for {stalled:.1f} s >= timeout {timeout:g} s "
            f"(state {snap['state']}, {snap['mailbox']} queued, last message {snap['last_message']})"
        )
        details = {
            "actor": mailbox.name,
            "urn": mailbox.urn,
            "problem": "stuck",
            "stalled_s": stalled,
            "timeout_s": timeout,
            "state": snap["state"],
            "queued": snap["mailbox"],
            "processed": snap["processed"],
            "restarts": snap["restarts"],
            "last_message": snap["last_message"],
            "last_message_at": snap["last_message_at"],
            "dedicated_thread": snap["dedicated_thread"],
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
