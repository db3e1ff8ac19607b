"""The mailbox record: an actor's two-lane inbox and the runtime's bookkeeping of it.

Private to the runtime. Everything else sees an actor through its :class:`Ref` and through
:class:`ActorInfo` snapshots (``Runtime.actors()``).
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections import deque
from typing import TYPE_CHECKING, Any, Final

from loguru import logger
from pykka import ActorDeadError, ActorRef
from pykka._envelope import Envelope
from pykka.messages import _ActorStop

from supervisors._introspection import ActorInfo, ActorState
from supervisors._message import ControlMessage, Message

if TYPE_CHECKING:
    from supervisors._actor import Actor
    from supervisors._future import Future
    from supervisors._runtime import Runtime
    from supervisors._scheduler import Scheduler

__all__ = ["NO_LANE", "Flag", "Mailbox", "MailboxFull", "Terminated"]

#: A lane with nothing in it. An empty ``deque`` costs 760 bytes and most of 10,000 actors are
#: idle: a lane is a deque only while it holds messages, else this shared empty tuple (it has
#: ``len`` and truth like an empty deque, and nothing appends to it: ``tell`` makes the deque).
NO_LANE: Final[tuple[()]] = ()

#: No watchers yet: shared until the first ``add_watcher`` makes the actor its own list.
_NO_WATCHERS: Final[tuple[()]] = ()

#: What a control lane takes: ``ControlMessage``s and pykka's stop.
_CONTROL: Final = (ControlMessage, _ActorStop)

# The states the per-message path sets, as plain globals: reading an enum member off its class
# costs a descriptor call (~70 ns each, several per message).
_STARTING: Final = ActorState.STARTING
_IDLE: Final = ActorState.IDLE
_SCHEDULED: Final = ActorState.SCHEDULED
_RUNNING: Final = ActorState.RUNNING
_get_ident = threading.get_ident
_now = time.time

#: A lane holds a told message as it is, and an ``Envelope`` only for what needs one (an ask's
#: reply future, pykka's own puts): a tell makes no envelope. A message that *is* an Envelope
#: is wrapped in one, so the two never mix up.
_Item = Any


class MailboxFull(RuntimeError):
    """The receiver's ordinary lane is at capacity: the message was *not* enqueued.

    This is backpressure, not loss: the sender learns at once and decides (retry later, shed,
    fail). Control messages are never refused.
    """


class Terminated(ControlMessage):
    """Death-watch notification: the watched actor stopped, whatever the cause.

    ``reason`` is ``"normal"`` for a requested stop, ``"noproc"`` when the actor was already dead
    when the watch began, otherwise a description of the failure. A control message: a
    supervisor whose mailbox is full must still learn that a child died.
    """

    urn: str
    name: str
    reason: str
    abnormal: bool


_FLAG_LOCK = threading.Lock()


class Flag:
    """A one-way ``threading.Event`` (set, never cleared) that costs a slot until someone waits.

    Every actor has two (stopped, finished); at 10,000 actors two real Events per actor are
    half of the runtime's memory. The Event is made on the first ``wait``.
    """

    __slots__ = ("_event", "_set")

    def __init__(self) -> None:
        self._set = False
        self._event: threading.Event | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        event = self._event  # read after the flag: a waiter that made it after this read sees the flag
        if event is not None:
            event.set()

    def wait(self, timeout: float | None = None) -> bool:
        if self._set:
            return True
        with _FLAG_LOCK:
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        if self._set:
            return True
        return event.wait(timeout)


class Mailbox:
    """A bounded two-lane inbox that also carries the actor's runtime bookkeeping.

    Control messages (:class:`ControlMessage` and pykka's stop) go to a lane that is always
    drained first and is never refused. Ordinary messages go to a lane of ``capacity`` slots;
    when it is full ``put`` raises :class:`MailboxFull` in the sender.
    """

    __slots__ = (
        "actor",
        "actor_class",
        "capacity",
        "closed",
        "exit_reason",
        "finished",
        "last_message_at",
        "last_type",
        "name",
        "parent",
        "processed",
        "restarts",
        "runtime",
        "scheduler",
        "started_at",
        "state",
        "status",
        "thread_ident",
        "urn",
        "watchers",
        "_control",
        "_lock",
        "_scheduled",
        "_work",
    )

    def __init__(self, actor: Actor, runtime: Runtime, capacity: int, scheduler: Scheduler) -> None:
        self.actor: Actor | None = actor
        self.urn = actor.actor_urn
        self.actor_class = type(actor)
        self.name = self.actor_class.__name__
        self.runtime = runtime
        self.capacity = capacity
        self.scheduler = scheduler
        self._control: deque[_Item] | tuple[()] = NO_LANE
        self._work: deque[_Item] | tuple[()] = NO_LANE
        self._lock = threading.Lock()
        self._scheduled = True  # until on_start has run, puts only enqueue
        self.closed = False
        self.finished = Flag()
        self.state = _STARTING
        self.watchers: list[ActorRef[Any]] | tuple[()] = _NO_WATCHERS
        self.parent: str | None = None
        self.restarts = 0
        self.processed = 0
        self.last_type: type | None = None  # of the last message begun (its name is read rarely)
        self.last_message_at: float | None = None
        self.started_at = time.time()
        self.thread_ident: int | None = None
        self.exit_reason: str | None = None
        self.status: Message | None = None

    # -- the pykka ActorInbox protocol -------------------------------------------------------

    def put(self, envelope: Envelope[Any], /) -> None:
        """Enqueue an envelope (pykka's inbox protocol)."""
        self.tell(envelope.message, envelope.reply_to)

    def tell(self, message: Any, reply_to: Future | None = None) -> None:
        """Enqueue ``message`` (an ask's with its ``reply_to``); raises ActorDeadError, MailboxFull."""
        item = message if reply_to is None and type(message) is not Envelope else Envelope(message, reply_to)
        with self._lock:
            if self.closed or (self.exit_reason is not None and not isinstance(message, _ActorStop)):
                raise ActorDeadError(f"{self.name} ({self.urn}) not found")
            if isinstance(message, _CONTROL):
                lane = self._control
                if lane is NO_LANE:
                    lane = self._control = deque()
                lane.append(item)  # type: ignore[union-attr]
            else:
                lane = self._work
                if len(lane) >= self.capacity:
                    raise MailboxFull(f"mailbox of {self.name} ({self.urn}) is full ({self.capacity})")
                if lane is NO_LANE:
                    lane = self._work = deque()
                lane.append(item)  # type: ignore[union-attr]
            if self._scheduled:
                return
            self._scheduled = True
            if self.state is _IDLE:
                self.state = _SCHEDULED
        self.scheduler.schedule(self)

    def enqueue_control(self, message: ControlMessage) -> bool:
        """Append to the control lane; True if the caller must schedule the actor."""
        with self._lock:
            if self.closed or self.exit_reason is not None:  # stopping: it would be dropped
                return False
            lane = self._control
            if lane is NO_LANE:
                lane = self._control = deque()
            lane.append(message)  # type: ignore[union-attr]
            if self._scheduled:
                return False
            self._scheduled = True
            if self.state is _IDLE:
                self.state = _SCHEDULED
            return True

    def get(self) -> Envelope[Any]:
        control = self._control
        if control:
            item = control.popleft()  # type: ignore[union-attr]
        else:
            work = self._work
            if not work:
                raise IndexError("the mailbox is empty")
            item = work.popleft()  # type: ignore[union-attr]
        return item if type(item) is Envelope else Envelope(item)

    def empty(self) -> bool:
        return not self._control and not self._work

    def __len__(self) -> int:
        return len(self._control) + len(self._work)

    # -- running -----------------------------------------------------------------------------

    def run_slice(self, batch: int) -> None:
        """Run up to ``batch`` messages of this actor on the calling worker thread."""
        actor = self.actor
        if actor is None or self.closed:
            return
        starting = self.state is _STARTING
        self.thread_ident = _get_ident()
        if not starting:
            self.state = _RUNNING
        try:
            if starting:
                actor._sv_start()  # the state stays STARTING until on_start has returned
                self.state = _RUNNING
            handle = actor._sv_handle
            n = 0
            while n < batch and self.exit_reason is None:
                # Re-read each time: a put to an empty lane (NO_LANE) makes a new deque.
                control = self._control
                if control:
                    item = control.popleft()  # type: ignore[union-attr]
                else:
                    work = self._work
                    if work:
                        item = work.popleft()  # type: ignore[union-attr]
                    else:
                        break
                if type(item) is Envelope:
                    message, reply_to = item.message, item.reply_to
                else:
                    message, reply_to = item, None
                self.last_type = type(message)
                self.last_message_at = _now()
                handle(message, reply_to)
                self.processed += 1
                n += 1
        except BaseException as exc:  # the worker thread is dying under this actor
            self.thread_ident = None
            self.terminate(ActorState.KILLED, f"worker died: {exc!r}")
            raise
        self.thread_ident = None
        if self.exit_reason is not None:
            self.terminate(self._exit_state(), self.exit_reason or "normal")
            return
        with self._lock:
            # An emptied lane goes back to NO_LANE here, under the lock ``put`` appends under.
            more = False
            if self._control:
                more = True
            else:
                self._control = NO_LANE
            if self._work:
                more = True
            else:
                self._work = NO_LANE
            if more:
                self.state = _SCHEDULED
            else:
                self._scheduled = False
                self.state = _IDLE
        if more:
            self.scheduler.schedule(self)

    def _exit_state(self) -> ActorState:
        if self.exit_reason is None or self.exit_reason == "normal":
            return ActorState.STOPPED
        return ActorState.FAILED

    def terminate(self, state: ActorState, reason: str) -> None:
        """Close the mailbox for good and notify the watchers (idempotent)."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self.state = state
            self.exit_reason = reason
            lanes = (self._control, self._work)
            pending = [*lanes[0], *lanes[1]]
            for lane in lanes:
                if lane:  # a worker mid-slice may still hold it: leave it nothing to run
                    lane.clear()
            self._control = self._work = NO_LANE
            watchers, self.watchers = self.watchers, _NO_WATCHERS
        actor = self.actor
        if actor is not None:
            actor.actor_stopped.set()
        for item in pending:
            if type(item) is not Envelope or item.reply_to is None:
                continue
            if isinstance(item.message, _ActorStop):
                item.reply_to.set(None)
            else:
                item.reply_to.set_exception(
                    exc_info=(ActorDeadError, ActorDeadError(f"{self.name} stopped before handling the message"), None)
                )
        self.runtime._forget(self)
        if actor is not None:
            try:
                actor.on_terminate()
            except Exception:  # noqa: BLE001
                logger.exception("termination hook of {} failed", self.name)
        abnormal = state is not ActorState.STOPPED
        note = Terminated(urn=self.urn, name=self.name, reason=reason, abnormal=abnormal)
        for watcher in watchers:
            try:
                watcher.tell(note)
            except ActorDeadError:
                pass
            except Exception:  # noqa: BLE001 - one full watcher must not hide the death from others
                logger.exception("could not notify {} of the death of {}", watcher, self.name)
        if self.scheduler is not self.runtime.scheduler:
            self.runtime._release_dedicated(self.scheduler)
        self.actor = None  # drop the actor object; the mailbox outlives it for introspection
        self.finished.set()

    def add_watcher(self, watcher: ActorRef[Any]) -> bool:
        """Add a watcher; False if the actor is already dead (the caller sends ``noproc``)."""
        with self._lock:
            if self.closed:
                return False
            if self.watchers is _NO_WATCHERS:
                self.watchers = [watcher]
            else:
                self.watchers.append(watcher)  # type: ignore[union-attr]
            return True

    def remove_watcher(self, watcher: ActorRef[Any]) -> None:
        with self._lock:
            self.watchers = [w for w in self.watchers if w.actor_urn != watcher.actor_urn]

    # -- introspection -----------------------------------------------------------------------

    def info(self, *, stack: bool = False) -> ActorInfo:
        """The actor as it is now, read without stopping it (``stack``: with its live frames)."""
        actor = self.actor
        return ActorInfo(
            urn=self.urn,
            name=self.name,
            actor_class=self.actor_class,
            parent=self.parent,
            state=self.state,
            mailbox_depth=len(self._control) + len(self._work),
            capacity=self.capacity,
            restarts=self.restarts,
            processed=self.processed,
            last_message=None if self.last_type is None else self.last_type.__name__,
            last_message_at=self.last_message_at,
            started_at=self.started_at,
            exit_reason=self.exit_reason,
            dedicated_thread=self.scheduler is not self.runtime.scheduler,
            thread_ident=self.thread_ident,
            ref=actor.actor_ref if actor is not None else None,
            status=self.status,
            stack=self.current_stack() if stack else None,
        )

    @property
    def actor_class_name(self) -> str:
        return self.actor_class.__name__

    def current_stack(self) -> tuple[str, ...] | None:
        """Frames of the thread running the actor right now, or None when it is not running."""
        ident = self.thread_ident
        if ident is None:
            return None
        frame = sys._current_frames().get(ident)  # noqa: SLF001 - the only way to see a live stack
        if frame is None:
            return None
        return tuple(line.rstrip("\n") for line in traceback.format_stack(frame))
