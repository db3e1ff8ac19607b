"""OTP supervisors for the runtime's actors.

A :class:`Supervisor` starts its children from :class:`ChildSpec` values in order, watches them,
and restarts them by its :class:`Strategy` and each child's :class:`Restart` type. More than
``max_restarts`` restarts within ``period`` seconds means the fault is not transient: the
supervisor stops every child (reverse start order) and fails, so that its own supervisor decides.

Restart types follow OTP. The dead child's type decides whether anything restarts: a
``permanent`` child always, a ``transient`` one only after an abnormal exit, a ``temporary`` one
never (it is removed). Under ``one_for_all`` and ``rest_for_one`` the siblings the supervisor
stops for that restart are started again, except temporary ones, which are removed: a temporary
child is never restarted. A transient sibling is restarted, since it did not exit on its own.

Stopping is asynchronous and ordered: one child at a time, last started first, each given its
``shutdown_timeout``; a child that has not stopped by then is *abandoned*: closed to new messages,
dropped from the tree and reported to its watchers (a Python thread cannot be killed; a child stuck in a handler
keeps its worker until the handler returns).
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from pykka import ActorRef
from pykka.messages import _ActorStop

from supervisors._actor import DEFAULT_TIMEOUT, Actor, Ref
from supervisors._introspection import ActorState
from supervisors._mailbox import Mailbox, Terminated
from supervisors._message import ControlMessage, Message, register_immutable_type

__all__ = [
    "ChildInfo",
    "ChildSpec",
    "Restart",
    "RestartChild",
    "StartChild",
    "StartChildren",
    "Strategy",
    "Supervisor",
    "SupervisorEscalation",
    "TerminateChild",
    "WhichChildren",
]


class Strategy(enum.StrEnum):
    """Which children restart when one dies."""

    ONE_FOR_ONE = "one_for_one"  #: only the dead child
    ONE_FOR_ALL = "one_for_all"  #: every child (the others are stopped first)
    REST_FOR_ONE = "rest_for_one"  #: the dead child and every child started after it


class Restart(enum.StrEnum):
    """When a child is restarted."""

    PERMANENT = "permanent"  #: always
    TRANSIENT = "transient"  #: after an abnormal exit, or when stopped by the supervisor for a sibling
    TEMPORARY = "temporary"  #: never, not even with its group; removed from the supervisor when it stops


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to start and treat one child.

    Args:
        id: unique among the supervisor's children; also the child's name in the tree.
        start: called by the supervisor to start the child; returns its ref.
        restart: the child's restart type.
        shutdown_timeout: seconds the child gets to stop before it is abandoned.
    """

    id: str
    start: Callable[[], ActorRef[Any]]
    restart: Restart = Restart.PERMANENT
    shutdown_timeout: float = DEFAULT_TIMEOUT


class SupervisorEscalation(RuntimeError):
    """A supervisor passed its restart intensity (or could not start a child) and gave up."""


register_immutable_type(ChildSpec)


class StartChild(Message):
    """Add and start a child (dynamic children, e.g. vaults activated on demand).

    ``ask`` it to learn the child's ref, or an error if the id is taken.
    """

    spec: ChildSpec


class StartChildren(Message):
    """Add and start several children in one message (many vaults activated at once: one round
    trip instead of one per child).

    ``ask`` it: the answer has one entry per spec, in order: None if it started, else why not
    (its id is in use, or it failed to start). A child that fails is not a reason to stop the
    others.
    """

    specs: tuple[ChildSpec, ...]


class TerminateChild(Message):
    """Stop a child for good and remove it (no restart, whatever its type)."""

    child_id: str


class RestartChild(Message):
    """Stop a child and start a fresh one (e.g. it did not answer a halt in time)."""

    child_id: str
    reason: str


class WhichChildren(Message):
    """Ask for the children, in start order, as :class:`ChildInfo` values."""


class ChildInfo(Message):
    id: str
    urn: str | None
    restart: str
    restarts: int
    alive: bool


class _ShutdownTimeout(ControlMessage):  # never refused: a restart would wait forever
    urn: str


@dataclass(slots=True)
class _Child:
    spec: ChildSpec
    ref: Ref | None = None
    restarts: int = 0


@dataclass(slots=True)
class _Operation:
    """Stop some children (in the given order), then start some (in the given order)."""

    to_stop: deque[str]
    to_start: list[str]
    to_remove: list[str] = field(default_factory=list)  # after stopping, remove these (temporary)
    escalate: str | None = None  # after stopping, fail with this reason instead of starting
    finish_stop: bool = False  # after stopping, stop the supervisor itself (normal)
    waiting: str | None = None  # urn of the child being stopped
    timer: Any = None


class Supervisor(Actor):
    """Supervises children by an OTP strategy and restart intensity (semantics: the module doc).

    Args:
        children: child specs, started in this order.
        strategy: restart strategy.
        max_restarts: restarts allowed within ``period`` (0: the first death escalates).
        period: the intensity window in seconds.
        name: the supervisor's name in the tree.
    """

    def __init__(
        self,
        children: Sequence[ChildSpec] = (),
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        max_restarts: int = 3,
        period: float = 5.0,
        name: str | None = None,
    ) -> None:
        super().__init__()
        ids = [c.id for c in children]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate child ids: {ids}")
        if max_restarts < 0 or period <= 0:
            raise ValueError("max_restarts must be >= 0 and period > 0")
        self.strategy = Strategy(strategy)
        self.max_restarts = max_restarts
        self.period = period
        self._order: list[str] = list(ids)
        self._children: dict[str, _Child] = {c.id: _Child(c) for c in children}
        self._by_urn: dict[str, str] = {}
        self._restart_times: deque[float] = deque()
        self._op: _Operation | None = None
        self._deferred: deque[Any] = deque()
        if name:
            self.actor_inbox.name = name

    # -- lifecycle -----------------------------------------------------------------------------

    def on_start(self) -> None:
        for child_id in self._order:
            self._start_child(child_id)

    def _handle_receive(self, message: Any) -> Any:
        if isinstance(message, _ActorStop):
            # Stop children first (ordered, with timeouts), then ourselves.
            if self._op is not None:
                self._op.to_start.clear()
                self._op.finish_stop = True
                self._op.escalate = None
                self._op.to_stop = deque(cid for cid in self._running_reversed()
                                         if self._children[cid].ref is not None
                                         and self._children[cid].ref.actor_urn != self._op.waiting)
            else:
                self._begin(_Operation(deque(self._running_reversed()), [], finish_stop=True))
            return None
        return super()._handle_receive(message)

    def _sv_handle(self, message: Any, reply_to: Any) -> None:
        # A bad request (unknown child, id in use) is the requester's error, never a reason for
        # the supervisor to die: an ask gets the exception, a tell is refused with a log line.
        if reply_to is None and isinstance(message, (StartChild, TerminateChild, RestartChild)):
            try:
                self._handle_receive(message)
            except (KeyError, ValueError) as exc:
                logger.warning("{}: refused {}: {}", self.actor_inbox.name, type(message).__name__, exc)
            return
        super()._sv_handle(message, reply_to)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Terminated):
            return self._on_terminated(message)
        if isinstance(message, _ShutdownTimeout):
            return self._on_shutdown_timeout(message)
        if isinstance(message, WhichChildren):
            return tuple(
                ChildInfo(
                    id=cid,
                    urn=c.ref.actor_urn if c.ref else None,
                    restart=c.spec.restart.value,
                    restarts=c.restarts,
                    alive=c.ref is not None and c.ref.is_alive(),
                )
                for cid in self._order
                for c in (self._children[cid],)
            )
        if isinstance(message, StartChild):
            return self._add_child(message.spec)
        if isinstance(message, StartChildren):
            return tuple(self._add_child_or_why(spec) for spec in message.specs)
        if isinstance(message, TerminateChild):
            child = self._children.get(message.child_id)
            if child is None:
                raise KeyError(f"no child {message.child_id!r}")
            self._remove(message.child_id)
            if child.ref is not None:
                self._by_urn.pop(child.ref.actor_urn, None)
                self.unwatch(child.ref)
                child.ref.stop(block=False)
                op = self._op
                if op is not None and op.waiting == child.ref.actor_urn:
                    op.timer.cancel()
                    op.waiting = None
                    self._advance()
            return None
        if isinstance(message, RestartChild):
            child = self._children.get(message.child_id)
            if child is None:
                raise KeyError(f"no child {message.child_id!r}")
            if self._op is not None:
                self._deferred.append(message)  # never replace an operation in progress
                return None
            logger.warning("{}: restarting child {} ({})", self.actor_inbox.name, message.child_id, message.reason)
            self._restart_after_death(message.child_id, stop_it_too=True)
            return None
        return super().on_receive(message)

    def on_terminate(self) -> None:
        # However the supervisor ends (even killed under its worker), its children end with it.
        for child in list(self._children.values()):
            if child.ref is not None:
                child.ref.stop(block=False)

    # -- starting ------------------------------------------------------------------------------

    def _add_child(self, spec: ChildSpec) -> Ref | None:
        """Add ``spec`` and start it (or queue it behind the operation under way)."""
        if spec.id in self._children:
            raise ValueError(f"child id {spec.id!r} is already in use")
        self._children[spec.id] = _Child(spec)
        self._order.append(spec.id)
        if self._op is not None:
            self._op.to_start.append(spec.id)
            return None
        try:
            return self._start_child(spec.id)
        except SupervisorEscalation:
            self._remove(spec.id)
            raise

    def _add_child_or_why(self, spec: ChildSpec) -> str | None:
        try:
            self._add_child(spec)
        except (ValueError, SupervisorEscalation) as exc:
            return str(exc)
        return None

    def _start_child(self, child_id: str) -> Ref | None:
        child = self._children[child_id]
        try:
            ref = child.spec.start()
        except Exception as exc:
            raise SupervisorEscalation(f"{self.actor_inbox.name}: child {child_id!r} failed to start: {exc!r}") from exc
        mailbox: Mailbox = ref.actor_inbox  # type: ignore[assignment]
        mailbox.parent = self.actor_urn
        mailbox.name = child_id
        mailbox.restarts = child.restarts
        child.ref = ref  # type: ignore[assignment]
        self._by_urn[ref.actor_urn] = child_id
        self.watch(ref)
        return ref  # type: ignore[return-value]

    def _running_reversed(self) -> list[str]:
        return [cid for cid in reversed(self._order) if self._children[cid].ref is not None]

    def _remove(self, child_id: str) -> None:
        self._children.pop(child_id, None)
        if child_id in self._order:
            self._order.remove(child_id)

    # -- deaths --------------------------------------------------------------------------------

    def _on_terminated(self, note: Terminated) -> None:
        op = self._op
        if op is not None and op.waiting == note.urn:
            self._child_gone(note.urn)
            op.timer.cancel()
            op.waiting = None
            self._advance()
            return
        child_id = self._by_urn.get(note.urn)
        if child_id is None:
            return  # a child we already replaced, abandoned or removed
        if op is not None:
            if child_id in op.to_stop:
                op.to_stop.remove(child_id)
                self._child_gone(note.urn)
                return
            self._deferred.append(note)
            return
        self._child_gone(note.urn)
        child = self._children.get(child_id)
        if child is None:
            return
        restart = child.spec.restart
        if restart is Restart.TEMPORARY or (restart is Restart.TRANSIENT and not note.abnormal):
            logger.info("{}: child {} exited ({}), not restarted", self.actor_inbox.name, child_id, note.reason)
            self._remove(child_id)
            return
        logger.warning("{}: child {} died ({})", self.actor_inbox.name, child_id, note.reason)
        self._restart_after_death(child_id, stop_it_too=False)

    def _child_gone(self, urn: str) -> None:
        child_id = self._by_urn.pop(urn, None)
        if child_id is not None and child_id in self._children:
            self._children[child_id].ref = None

    def _restart_after_death(self, child_id: str, *, stop_it_too: bool) -> None:
        now = time.monotonic()
        self._restart_times.append(now)
        while self._restart_times and now - self._restart_times[0] > self.period:
            self._restart_times.popleft()
        if len(self._restart_times) > self.max_restarts:
            reason = (
                f"{self.actor_inbox.name}: restart intensity exceeded "
                f"({len(self._restart_times)} restarts in {self.period} s, max {self.max_restarts})"
            )
            logger.error(reason)
            self._begin(_Operation(deque(self._running_reversed()), [], escalate=reason))
            return
        idx = self._order.index(child_id)
        if self.strategy is Strategy.ONE_FOR_ONE:
            affected = [child_id]
        elif self.strategy is Strategy.ONE_FOR_ALL:
            affected = list(self._order)
        else:
            affected = self._order[idx:]
        # OTP: a temporary sibling is stopped with the group but never started again (it is
        # removed); a transient one stopped by us is (its exit was ours, not its own).
        to_start = [cid for cid in affected
                    if cid == child_id or self._children[cid].spec.restart is not Restart.TEMPORARY]
        for cid in to_start:
            self._children[cid].restarts += 1
        to_stop = [cid for cid in reversed(affected) if self._children[cid].ref is not None]
        if not stop_it_too and child_id in to_stop:
            to_stop.remove(child_id)
        to_remove = [cid for cid in affected if cid not in to_start]
        self._begin(_Operation(deque(to_stop), to_start, to_remove=to_remove))

    # -- the stop-then-start operation ---------------------------------------------------------

    def _begin(self, op: _Operation) -> None:
        assert self._op is None, "an operation is already in progress"
        self._op = op
        self._advance()

    def _advance(self) -> None:
        op = self._op
        assert op is not None
        while op.to_stop:
            child_id = op.to_stop.popleft()
            child = self._children.get(child_id)
            if child is None or child.ref is None:
                continue
            ref = child.ref
            if not ref.is_alive() and ref.actor_inbox.closed:  # type: ignore[attr-defined]
                self._child_gone(ref.actor_urn)
                continue
            op.waiting = ref.actor_urn
            op.timer = self.runtime.send_after(
                child.spec.shutdown_timeout, self.actor_ref, _ShutdownTimeout(urn=ref.actor_urn)
            )
            ref.stop(block=False)
            return
        self._op = None
        if op.escalate is not None:
            raise SupervisorEscalation(op.escalate)
        if op.finish_stop:
            self._stop()
            return
        for child_id in op.to_remove:
            self._remove(child_id)
        for child_id in op.to_start:
            if child_id in self._children:
                self._start_child(child_id)
        while self._deferred and self._op is None:
            note = self._deferred.popleft()
            if isinstance(note, Terminated):
                self._on_terminated(note)
            else:
                self.on_receive(note)

    def _on_shutdown_timeout(self, message: _ShutdownTimeout) -> None:
        op = self._op
        if op is None or op.waiting != message.urn:
            return
        child_id = self._by_urn.get(message.urn, "?")
        ref = self.runtime.lookup(message.urn)
        logger.error("{}: child {} did not stop in time: abandoned", self.actor_inbox.name, child_id)
        if ref is not None:
            ref.actor_inbox.terminate(ActorState.ABANDONED, "abandoned: did not stop within shutdown timeout")  # type: ignore[attr-defined]
        self._child_gone(message.urn)
        op.waiting = None
        self._advance()
