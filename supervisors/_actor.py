"""Actors on the M:N runtime, behind pykka's actor API.

:class:`Actor` is a ``pykka.Actor``: ``start()``, ``ActorRef.tell/ask/stop``, proxies and futures
work as in pykka. What changes is underneath: the inbox is a bounded two-lane :class:`Mailbox`
(control messages first), the actor runs on a shared worker pool instead of a thread of its own
(unless it asks for a dedicated thread), any actor can watch another and receives
:class:`Terminated` when it stops, and every actor can be introspected while it runs.
"""

from __future__ import annotations

import asyncio
import enum
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, ClassVar

import pykka
from loguru import logger
from pykka import ActorDeadError, ActorRef, ThreadingFuture, Timeout
from pykka._envelope import Envelope
from pykka.messages import _ActorStop

from supervisors._chaos import _InjectedFault
from supervisors._message import ControlMessage, Message, register_immutable_type
from supervisors._scheduler import Scheduler, WorkerKilled, in_pool_worker

if TYPE_CHECKING:
    from types import TracebackType

    from supervisors._runtime import Runtime

__all__ = [
    "Actor",
    "ActorState",
    "BlockingCallInWorker",
    "Future",
    "MailboxFull",
    "Mailbox",
    "Ref",
    "Terminated",
    "DEFAULT_TIMEOUT",
]

#: Every wait in this library has a timeout; this is the default one, in seconds.
DEFAULT_TIMEOUT = 5.0

register_immutable_type(ActorRef)


class MailboxFull(RuntimeError):
    """The receiver's ordinary lane is at capacity: the message was *not* enqueued.

    This is backpressure, not loss: the sender learns at once and decides (retry later, shed,
    fail). Control messages are never refused.
    """


class BlockingCallInWorker(RuntimeError):
    """A blocking wait on a shared pool thread would starve every actor on the pool."""


class ActorState(str, enum.Enum):
    STARTING = "starting"
    IDLE = "idle"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"
    KILLED = "killed"
    ABANDONED = "abandoned"


_DEAD_STATES = frozenset({ActorState.STOPPED, ActorState.FAILED, ActorState.KILLED, ActorState.ABANDONED})


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


class Future(ThreadingFuture[Any]):
    """pykka's threading future: never waits forever, never blocks a shared pool thread.

    It can also be awaited from an event loop without blocking it (``await ref.ask(m, block=False)``,
    bounded with ``asyncio.wait_for``), and takes done-callbacks, so code on an event loop can
    ask actors without a thread per wait.
    """

    def __init__(self) -> None:
        super().__init__()
        self._callbacks: list[Callable[[Future], None]] | None = None

    def set(self, value: Any | None = None) -> None:
        super().set(value)
        self._run_callbacks()

    def set_exception(self, exc_info: Any = None) -> None:
        super().set_exception(sys.exc_info() if exc_info is None else exc_info)
        self._run_callbacks()

    def add_done_callback(self, callback: Callable[[Future], None]) -> None:
        """Call ``callback(self)`` once the result is set (at once if it already is).

        It runs on the thread that sets the result: keep it short and non-blocking.
        """
        with self._condition:
            if self._result is None:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(callback)
                return
        callback(self)

    def _run_callbacks(self) -> None:
        with self._condition:
            callbacks, self._callbacks = self._callbacks, None
        for callback in callbacks or ():
            try:
                callback(self)
            except Exception:  # noqa: BLE001 - one broken callback must not starve the others
                logger.exception("future done-callback failed")

    def outcome(self) -> tuple[Any, BaseException | None]:
        """(value, None) or (None, exception) of a future whose result is set."""
        result = self._result
        if result is None:
            raise RuntimeError("future has no result yet")
        if result.exc_info is not None:
            exc_type, exc_value, _tb = result.exc_info
            return None, exc_value if exc_value is not None else exc_type()  # type: ignore[misc]
        return result.value, None

    def __await__(self) -> Generator[Any, None, Any]:
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()

        def transfer(_: Future) -> None:
            if not waiter.done():
                value, error = self.outcome()
                if error is None:
                    waiter.set_result(value)
                else:
                    waiter.set_exception(error)

        self.add_done_callback(lambda f: loop.call_soon_threadsafe(transfer, f))
        return (yield from waiter.__await__())

    def get(self, *, timeout: float | None = None) -> Any:
        if timeout is None:
            timeout = DEFAULT_TIMEOUT
        if in_pool_worker() and self._result is None:
            raise BlockingCallInWorker(
                "a pooled actor must not block on a future; use tell and reply messages, "
                "or run the actor on a dedicated thread"
            )
        return super().get(timeout=timeout)


class Ref(ActorRef[Any]):
    """An ``ActorRef`` whose blocking calls always time out (default :data:`DEFAULT_TIMEOUT`)."""

    def tell(self, message: Any) -> None:
        """Send ``message``; raises ActorDeadError if the actor is gone, MailboxFull if full."""
        # The mailbox knows whether the actor is alive: one lock, no separate is_alive() check.
        self.actor_inbox.put(Envelope(message))

    def ask(self, message: Any, *, block: bool = True, timeout: float | None = DEFAULT_TIMEOUT) -> Any:  # type: ignore[override]
        if timeout is None:
            timeout = DEFAULT_TIMEOUT
        return super().ask(message, block=block, timeout=timeout)

    def stop(self, *, block: bool = True, timeout: float | None = DEFAULT_TIMEOUT) -> Any:  # type: ignore[override]
        """Ask the actor to stop (a control message); with ``block``, wait until it has stopped.

        Returns True if it stopped (or was already dead) within the timeout.
        """
        mailbox: Mailbox = self.actor_inbox  # type: ignore[assignment]
        if mailbox.closed:
            return True
        try:
            mailbox.put(Envelope(_ActorStop()))
        except ActorDeadError:
            return True
        if not block:
            return None
        if in_pool_worker():
            raise BlockingCallInWorker("a pooled actor must not wait for another to stop; watch it")
        if not self.actor_stopped.wait(DEFAULT_TIMEOUT if timeout is None else timeout):
            raise Timeout(f"{self} did not stop within {timeout} s")
        if not mailbox.finished.wait(DEFAULT_TIMEOUT if timeout is None else timeout):
            raise Timeout(f"{self} did not finish stopping within {timeout} s")
        return True


class Mailbox:
    """A bounded two-lane inbox that also carries the actor's runtime bookkeeping.

    Control messages (:class:`ControlMessage` and pykka's stop) go to a lane that is always
    drained first and is never refused. Ordinary messages go to a lane of ``capacity`` slots;
    when it is full ``put`` raises :class:`MailboxFull` in the sender.
    """

    __slots__ = (
        "actor",
        "capacity",
        "closed",
        "exit_reason",
        "finished",
        "last_message",
        "last_message_at",
        "name",
        "parent",
        "processed",
        "restarts",
        "runtime",
        "scheduler",
        "started_at",
        "state",
        "thread_ident",
        "urn",
        "watchers",
        "_class_name",
        "_control",
        "_lock",
        "_scheduled",
        "_work",
    )

    def __init__(self, actor: Actor, runtime: Runtime, capacity: int, scheduler: Scheduler) -> None:
        self.actor: Actor | None = actor
        self.urn = actor.actor_urn
        self.name = self._class_name = type(actor).__name__
        self.runtime = runtime
        self.capacity = capacity
        self.scheduler = scheduler
        self._control: deque[Envelope[Any]] = deque()
        self._work: deque[Envelope[Any]] = deque()
        self._lock = threading.Lock()
        self._scheduled = True  # until on_start has run, puts only enqueue
        self.closed = False
        self.finished = Flag()
        self.state = ActorState.STARTING
        self.watchers: list[ActorRef[Any]] = []
        self.parent: str | None = None
        self.restarts = 0
        self.processed = 0
        self.last_message: str | None = None
        self.last_message_at: float | None = None
        self.started_at = time.time()
        self.thread_ident: int | None = None
        self.exit_reason: str | None = None

    # -- the pykka ActorInbox protocol -------------------------------------------------------

    def put(self, envelope: Envelope[Any], /) -> None:
        control = isinstance(envelope.message, (ControlMessage, _ActorStop))
        with self._lock:
            if self.closed or (self.exit_reason is not None and not isinstance(envelope.message, _ActorStop)):
                raise ActorDeadError(f"{self.name} ({self.urn}) not found")
            if control:
                self._control.append(envelope)
            elif len(self._work) >= self.capacity:
                raise MailboxFull(f"mailbox of {self.name} ({self.urn}) is full ({self.capacity})")
            else:
                self._work.append(envelope)
            if self._scheduled:
                return
            self._scheduled = True
            if self.state is ActorState.IDLE:
                self.state = ActorState.SCHEDULED
        self.scheduler.schedule(self)

    def enqueue_control(self, envelope: Envelope[Any]) -> bool:
        """Append to the control lane; True if the caller must schedule the actor."""
        with self._lock:
            if self.closed or self.exit_reason is not None:  # stopping: it would be dropped
                return False
            self._control.append(envelope)
            if self._scheduled:
                return False
            self._scheduled = True
            if self.state is ActorState.IDLE:
                self.state = ActorState.SCHEDULED
            return True

    def get(self) -> Envelope[Any]:
        if self._control:
            return self._control.popleft()
        return self._work.popleft()

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
        starting = self.state is ActorState.STARTING
        self.thread_ident = threading.get_ident()
        if not starting:
            self.state = ActorState.RUNNING
        control, work = self._control, self._work
        try:
            if starting:
                actor._sv_start()  # the state stays STARTING until on_start has returned
                self.state = ActorState.RUNNING
            n = 0
            while n < batch and self.exit_reason is None:
                if control:
                    envelope = control.popleft()
                elif work:
                    envelope = work.popleft()
                else:
                    break
                self.last_message = type(envelope.message).__name__
                self.last_message_at = time.time()
                actor._sv_handle(envelope)
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
            more = bool(control or work)
            if not more:
                self._scheduled = False
                self.state = ActorState.IDLE
            else:
                self.state = ActorState.SCHEDULED
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
            pending = list(self._control) + list(self._work)
            self._control.clear()
            self._work.clear()
            watchers, self.watchers = self.watchers, []
        actor = self.actor
        if actor is not None:
            actor.actor_stopped.set()
        for envelope in pending:
            if envelope.reply_to is None:
                continue
            if isinstance(envelope.message, _ActorStop):
                envelope.reply_to.set(None)
            else:
                envelope.reply_to.set_exception(
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
            self.watchers.append(watcher)
            return True

    def remove_watcher(self, watcher: ActorRef[Any]) -> None:
        with self._lock:
            self.watchers = [w for w in self.watchers if w.actor_urn != watcher.actor_urn]

    # -- introspection -----------------------------------------------------------------------

    def snapshot(self, *, stack: bool = False) -> dict[str, Any]:
        """The actor's state as plain data, read without stopping it."""
        info: dict[str, Any] = {
            "urn": self.urn,
            "name": self.name,
            "class": self.actor_class_name,
            "parent": self.parent,
            "state": self.state.value,
            "mailbox": len(self),
            "capacity": self.capacity,
            "restarts": self.restarts,
            "processed": self.processed,
            "last_message": self.last_message,
            "last_message_at": self.last_message_at,
            "started_at": self.started_at,
            "exit_reason": self.exit_reason,
            "dedicated_thread": self.scheduler is not self.runtime.scheduler,
        }
        if stack:
            info["stack"] = self.current_stack()
        return info

    @property
    def actor_class_name(self) -> str:
        return self._class_name

    def current_stack(self) -> list[str] | None:
        """Frames of the thread running the actor right now, or None when it is not running."""
        ident = self.thread_ident
        if ident is None:
            return None
        frame = sys._current_frames().get(ident)  # noqa: SLF001 - the only way to see a live stack
        if frame is None:
            return None
        return [line.rstrip("\n") for line in traceback.format_stack(frame)]


class Actor(pykka.Actor):
    """Base class of every actor on the runtime.

    Class attributes:
        mailbox_capacity: bound of the ordinary lane (None: the runtime's default).
        dedicated_thread: run on a thread of its own, for thread-affine libraries (PKCS#11) or
            blocking I/O. Blocking waits (``ask(...)``, ``future.get()``) are allowed only there.
    """

    mailbox_capacity: ClassVar[int | None] = None
    dedicated_thread: ClassVar[bool] = False

    actor_inbox: Mailbox  # type: ignore[assignment]

    @staticmethod
    def _create_actor_inbox() -> Any:  # pragma: no cover - replaced in __init__
        raise NotImplementedError

    @staticmethod
    def _create_future() -> Future:
        return Future()

    def _start_actor_loop(self) -> None:
        self.actor_inbox.scheduler.schedule(self.actor_inbox)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from supervisors._runtime import Runtime

        runtime = Runtime.current()
        self.actor_urn = uuid.uuid4().urn
        self.actor_stopped = Flag()  # type: ignore[assignment]
        scheduler = runtime._dedicated_scheduler(type(self).__name__) if self.dedicated_thread else runtime.scheduler
        capacity = self.mailbox_capacity or runtime.mailbox_capacity
        self.actor_inbox = Mailbox(self, runtime, capacity, scheduler)
        self._actor_ref = Ref(self)
        self.runtime = runtime

    @classmethod
    def start(cls, *args: Any, **kwargs: Any) -> Ref:  # type: ignore[override]
        """Create the actor and schedule its ``on_start``; returns at once with its ref."""
        obj = cls(*args, **kwargs)
        obj.runtime._register(obj.actor_inbox)
        obj._start_actor_loop()
        return obj.actor_ref  # type: ignore[return-value]

    # -- death watch -------------------------------------------------------------------------

    def watch(self, target: ActorRef[Any]) -> None:
        """Receive :class:`Terminated` when ``target`` stops (at once if it is already dead)."""
        mailbox: Mailbox = target.actor_inbox  # type: ignore[assignment]
        if not mailbox.add_watcher(self.actor_ref):
            self.actor_ref.tell(
                # Already dead: "noproc", abnormal unless it had stopped cleanly (a transient child
                # that finished before it was watched must not be restarted).
                Terminated(urn=mailbox.urn, name=mailbox.name, reason="noproc",
                           abnormal=mailbox.state is not ActorState.STOPPED)
            )

    def unwatch(self, target: ActorRef[Any]) -> None:
        target.actor_inbox.remove_watcher(self.actor_ref)  # type: ignore[attr-defined]

    # -- the loop pieces run_slice calls (mirroring pykka's _actor_loop) -----------------------

    def _sv_start(self) -> None:
        try:
            self.on_start()
        except Exception:
            self._sv_fail(sys.exc_info())

    def on_terminate(self) -> None:
        """Run once when the actor has ended, however it ended; release its resources here.

        Unlike ``on_stop`` (a requested stop) and ``on_failure`` (an exception in a handler), it
        also runs when the worker thread died under the actor or the actor was abandoned, and
        then on whichever thread noticed. Watchers hear of the death after it returns.
        """

    def _handle_receive(self, message: Any) -> Any:
        if isinstance(message, Message):  # our messages are never pykka's own: skip its checks
            return self.on_receive(message)
        if isinstance(message, _InjectedFault):
            raise message.error
        return super()._handle_receive(message)

    def _sv_handle(self, envelope: Envelope[Any]) -> None:
        try:
            response = self._handle_receive(envelope.message)
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except Exception:
            if envelope.reply_to is not None:
                # pykka semantics: a failed ask is the caller's exception, the actor lives on.
                envelope.reply_to.set_exception()
            else:
                self._sv_fail(sys.exc_info())

    def _sv_fail(self, exc_info: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        exc = exc_info[1]
        logger.opt(exception=exc_info).error("actor {} failed", self.actor_inbox.name)
        self.actor_inbox.exit_reason = f"{type(exc).__name__}: {exc}"
        self.actor_stopped.set()
        try:
            self.on_failure(*exc_info)
        except Exception:  # noqa: BLE001
            logger.exception("on_failure of {} failed", self.actor_inbox.name)

    def _stop(self) -> None:
        self.actor_inbox.exit_reason = self.actor_inbox.exit_reason or "normal"
        self.actor_stopped.set()
        try:
            self.on_stop()
        except Exception:  # noqa: BLE001
            logger.exception("on_stop of {} failed", self.actor_inbox.name)

    def _handle_failure(self, *exc_info: Any) -> None:  # pragma: no cover - pykka's path, unused
        self._sv_fail(exc_info)  # type: ignore[arg-type]


