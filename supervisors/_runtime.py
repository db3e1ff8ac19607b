"""The runtime: the shared worker pool, the timer, and the registry of live actors."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from loguru import logger
from pykka import ActorDeadError, ActorRef

from supervisors._actor import DEFAULT_TIMEOUT, Ref
from supervisors._introspection import ActorInfo
from supervisors._mailbox import Mailbox, MailboxFull
from supervisors._message import ControlMessage
from supervisors._scheduler import Scheduler, Timer, TimerHandle
from supervisors._supervisor import ChildInfo, RestartChild, Supervisor, WhichChildren

__all__ = ["Runtime"]

#: The GIL switch interval while a runtime is current (CPython's default is 0.005 s). A halt
#: hands the GIL back and forth between the kill switch's thread and the pool's workers; a
#: thread that wants it waits up to one interval for the holder to let go, and those waits, not
#: the handlers, dominated the halt's latency at 10,000 actors. The price: more forced GIL
#: hand-offs wherever threads compete, which on a loaded machine made a lone ask round trip
#: (ours and pykka's alike) cost about twice the CPU. ``Runtime(switch_interval=None)`` leaves
#: the interpreter's interval alone.
SWITCH_INTERVAL_S = 0.0005


class _TellLater:
    """A timed tell: the timer calls it once (no closure per timer: 10,000 vaults hold one each)."""

    __slots__ = ("message", "ref")

    def __init__(self, ref: ActorRef[Any], message: Any) -> None:
        self.ref = ref
        self.message = message

    def __call__(self) -> None:
        try:
            self.ref.tell(self.message)
        except ActorDeadError:
            pass
        except MailboxFull:
            logger.warning("timer message {} dropped: mailbox of {} is full", type(self.message).__name__, self.ref)


class Runtime:
    """Hosts actors: M worker threads shared by every pooled actor, one timer thread.

    One runtime is *current* per process at a time (``Actor.start()`` uses it); create it before
    starting actors and ``shutdown()`` it at the end. Usable as a context manager.

    Args:
        workers: threads of the shared pool.
        batch: messages an actor runs before yielding its worker.
        mailbox_capacity: default bound of an actor's ordinary mailbox lane.
        name: prefix of the runtime's thread names.
        max_extra_workers: workers lent to the pool while every worker is stuck in a handler.
        switch_interval: ``sys.setswitchinterval`` while this runtime is current, restored at
            shutdown (see :data:`SWITCH_INTERVAL_S`); None: leave it as it is.
    """

    _current: ClassVar[Runtime | None] = None
    _current_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        *,
        workers: int = 2,
        batch: int = 64,
        mailbox_capacity: int = 10_000,
        name: str = "actors",
        max_extra_workers: int = 4,
        switch_interval: float | None = SWITCH_INTERVAL_S,
    ) -> None:
        if Runtime._current is not None:  # checked again below, under the lock
            raise RuntimeError("another Runtime is current; shut it down first")
        self.name = name
        self.mailbox_capacity = mailbox_capacity
        self._lock = threading.Lock()
        self._mailboxes: dict[str, Mailbox] = {}
        self._dedicated: set[Scheduler] = set()
        self._names: dict[str, ActorRef[Any]] = {}
        self._closed = False
        self._switch_interval = sys.getswitchinterval()
        # It becomes current only once every part is built: a step that fails leaves nothing
        # current behind and stops the threads it had started.
        self.scheduler = Scheduler(f"{name}-worker", workers, batch=batch, shared=True, max_extra=max_extra_workers)
        timer: Timer | None = None
        try:
            self.timer = timer = Timer(name)
            if max_extra_workers:
                self._watch_stalls()
            with Runtime._current_lock:
                if Runtime._current is not None:
                    raise RuntimeError("another Runtime is current; shut it down first")
                Runtime._current = self
                if switch_interval is not None:
                    sys.setswitchinterval(switch_interval)
        except BaseException:
            self._closed = True
            if timer is not None:
                timer.shutdown()
            self.scheduler.shutdown(timeout=1.0)
            raise

    @classmethod
    def current(cls) -> Runtime:
        runtime = cls._current
        if runtime is None:
            raise RuntimeError("no Runtime is running: create supervisors.Runtime() first")
        return runtime

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def _watch_stalls(self) -> None:
        if self._closed:
            return
        self.scheduler.check_stall()
        self.timer.call_later(self.scheduler.stall_after_s / 2, self._watch_stalls)

    # -- registry ----------------------------------------------------------------------------

    def _register(self, mailbox: Mailbox) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the runtime is shut down")
            self._mailboxes[mailbox.urn] = mailbox

    def _forget(self, mailbox: Mailbox) -> None:
        with self._lock:
            self._mailboxes.pop(mailbox.urn, None)

    def _dedicated_scheduler(self, name: str) -> Scheduler:
        scheduler = Scheduler(f"{self.name}-{name}", 1, batch=64, shared=False)
        with self._lock:
            self._dedicated.add(scheduler)
        return scheduler

    def _release_dedicated(self, scheduler: Scheduler) -> None:
        with self._lock:
            self._dedicated.discard(scheduler)
        scheduler.shutdown(timeout=0)

    def mailboxes(self) -> list[Mailbox]:
        """Every live actor's private mailbox record, in start order.

        The runtime's own handle, for its tests and benchmarks; not a stable API. Use
        :meth:`actors` (immutable snapshots) instead.
        """
        with self._lock:
            return list(self._mailboxes.values())

    # -- introspection -----------------------------------------------------------------------

    def actors(self, *, stack: bool = False, named: Callable[[str], bool] | None = None) -> list[ActorInfo]:
        """A snapshot of every live actor, in start order, read without disturbing any of them.

        Args:
            stack: also take the live stack of each actor running at this instant.
            named: only the actors whose name it accepts; the others cost no snapshot (a
                watchdog that looks at a few actors among 10,000 vaults).
        """
        if named is None:
            return [mailbox.info(stack=stack) for mailbox in self.mailboxes()]
        return [mailbox.info(stack=stack) for mailbox in self.mailboxes() if named(mailbox.name)]

    def actor_info(self, actor: ActorRef[Any] | str, *, stack: bool = False) -> ActorInfo | None:
        """A snapshot of one live actor, by ref or urn; None if it is not alive.

        Args:
            actor: its ref or urn.
            stack: also take its live stack if it is running.
        """
        urn = actor if isinstance(actor, str) else actor.actor_urn
        with self._lock:
            mailbox = self._mailboxes.get(urn)
        return None if mailbox is None else mailbox.info(stack=stack)

    def lookup(self, urn: str) -> Ref | None:
        with self._lock:
            mailbox = self._mailboxes.get(urn)
        actor = mailbox.actor if mailbox is not None else None
        return actor.actor_ref if actor is not None else None  # type: ignore[return-value]

    # -- the supervision tree ----------------------------------------------------------------

    def supervisor(self, name: str) -> Ref | None:
        """The live supervisor called ``name`` in the tree, or None (e.g. while it restarts)."""
        for mailbox in self.mailboxes():
            actor = mailbox.actor
            if mailbox.name == name and isinstance(actor, Supervisor):
                return actor.actor_ref  # type: ignore[return-value]
        return None

    def which_children(
        self, supervisor: ActorRef[Any] | str, *, timeout: float = DEFAULT_TIMEOUT
    ) -> tuple[ChildInfo, ...]:
        """Ask a supervisor for its children, in start order.

        Args:
            supervisor: its ref, or its name in the tree.
            timeout: seconds to wait for the answer.

        Raises:
            LookupError: no live supervisor has that name.
            pykka.Timeout: it did not answer in time.
            pykka.ActorDeadError: it stopped meanwhile.
        """
        ref = self.supervisor(supervisor) if isinstance(supervisor, str) else supervisor
        if ref is None:
            raise LookupError(f"no live supervisor {supervisor!r}")
        return ref.ask(WhichChildren(), timeout=timeout)  # type: ignore[no-any-return]

    def restart_child(self, ref: ActorRef[Any], reason: str) -> bool:
        """Ask the supervisor of ``ref`` to restart it (:class:`RestartChild`, by its child id).

        The supervisor stops it and starts a fresh one by its strategy; a bounded, non-blocking
        tell. Returns False, having sent nothing, when the actor has no live supervisor.
        """
        mailbox: Mailbox = ref.actor_inbox  # type: ignore[assignment]
        parent = self.lookup(mailbox.parent) if mailbox.parent else None
        if parent is None:
            return False
        parent.tell(RestartChild(child_id=mailbox.name, reason=reason))
        return True

    def register_name(self, name: str, ref: ActorRef[Any]) -> None:
        """Give ``ref`` a well-known name (replacing a previous holder, e.g. after a restart)."""
        with self._lock:
            self._names[name] = ref

    def whereis(self, name: str) -> ActorRef[Any] | None:
        """The live actor registered under ``name``, or None."""
        ref = self._names.get(name)
        if ref is None or ref.actor_stopped.is_set():  # is_alive() inlined: every halt ack asks
            return None
        return ref

    def __len__(self) -> int:
        return len(self._mailboxes)

    def threads(self) -> list[threading.Thread]:
        """Every thread the runtime owns: pool workers, dedicated actor threads, the timer."""
        with self._lock:
            dedicated = [t for s in self._dedicated for t in s.threads]
        return [*self.scheduler.threads, *dedicated, self.timer.thread]

    def broadcast(self, refs: Iterable[ActorRef[Any]], message: ControlMessage) -> list[ActorRef[Any]]:
        """Deliver one control message to many actors at once; returns the refs found dead.

        The fast path of a halt: one shared message, one lock per mailbox, no per-send checks.
        """
        if not isinstance(message, ControlMessage):
            raise TypeError("broadcast carries control messages only")
        dead = []
        schedule = []
        for ref in refs:
            mailbox: Mailbox = ref.actor_inbox  # type: ignore[assignment]
            if mailbox.enqueue_control(message):
                schedule.append(mailbox)
            elif mailbox.closed or mailbox.exit_reason is not None:
                dead.append(ref)
        for mailbox in schedule:
            mailbox.scheduler.schedule(mailbox)
        return dead

    # -- time --------------------------------------------------------------------------------

    def send_after(self, delay: float, ref: ActorRef[Any], message: Any) -> TimerHandle:
        """Tell ``message`` to ``ref`` after ``delay`` seconds (dropped if it has died).

        A timeout or deadline the receiver depends on should be a ``ControlMessage``: an
        ordinary message is dropped (and logged) when the receiver's mailbox is full.
        """

        return self.timer.call_later(delay, _TellLater(ref, message))

    # -- end ---------------------------------------------------------------------------------

    def shutdown(self, timeout: float = DEFAULT_TIMEOUT) -> list[str]:
        """Stop every remaining actor, then the threads. Returns names of actors that hung."""
        deadline = time.monotonic() + timeout
        for mailbox in reversed(self.mailboxes()):
            actor = mailbox.actor
            if actor is not None:
                actor.actor_ref.stop(block=False)  # type: ignore[call-arg]
        for mailbox in self.mailboxes():
            mailbox.finished.wait(max(0.0, deadline - time.monotonic()))
        hung = [m.name for m in self.mailboxes()]
        if hung:
            logger.warning("runtime shutdown abandons {} actors that did not stop: {}", len(hung), hung[:10])
        with self._lock:
            self._closed = True
            dedicated = list(self._dedicated)
        try:
            for scheduler in dedicated:
                scheduler.shutdown(timeout=max(0.0, deadline - time.monotonic()))
            self.scheduler.shutdown(timeout=max(0.1, deadline - time.monotonic()))
            self.timer.shutdown()
        finally:  # a closed runtime never stays current, whatever its threads did
            with Runtime._current_lock:
                if Runtime._current is self:
                    Runtime._current = None
                    sys.setswitchinterval(self._switch_interval)
        return hung
