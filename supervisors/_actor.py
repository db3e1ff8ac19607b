"""Actors on the M:N runtime, behind pykka's actor API.

:class:`Actor` is a ``pykka.Actor``: ``start()``, ``ActorRef.tell/ask/stop``, proxies and futures
work as in pykka. What changes is underneath: the inbox is a bounded two-lane :class:`Mailbox`
(control messages first), the actor runs on a shared worker pool instead of a thread of its own
(unless it asks for a dedicated thread), any actor can watch another and receives
:class:`Terminated` when it stops, and every actor can be introspected while it runs.
"""

from __future__ import annotations

import itertools
import os
import sys
from typing import TYPE_CHECKING, Any, ClassVar

import pykka
from loguru import logger
from pykka import ActorDeadError, ActorRef, Timeout
from pykka.messages import _ActorStop

from supervisors._chaos import _InjectedFault
from supervisors._future import DEFAULT_TIMEOUT, BlockingCallInWorker, Future
from supervisors._introspection import ActorState
from supervisors._mailbox import Flag, Mailbox, Terminated
from supervisors._message import Message, register_immutable_type
from supervisors._scheduler import in_pool_worker

if TYPE_CHECKING:
    from types import TracebackType

    from supervisors._runtime import Runtime

__all__ = ["DEFAULT_TIMEOUT", "Actor", "BlockingCallInWorker", "Future", "Ref"]

register_immutable_type(ActorRef)


def _urn_prefix() -> str:
    """``urn:uuid:`` and the first 80 bits of a UUID4-shaped id, random per process."""
    b = bytearray(os.urandom(10))
    b[6] = (b[6] & 0x0F) | 0x40  # version 4
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = b.hex()
    return f"urn:uuid:{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-"


_urn_base = _urn_prefix()
_urn_seq = itertools.count()


def _next_urn() -> str:
    """A new actor's urn: the process's random prefix and a 48-bit counter.

    It reads as a UUID4 urn (``uuid.UUID`` parses it) and is unique across processes like one,
    but costs a counter step instead of ``uuid4()``'s ``os.urandom`` per actor (a system call
    that also hands the GIL over, per actor started).
    """
    return f"{_urn_base}{next(_urn_seq):012x}"


def _new_urn_base() -> None:
    global _urn_base  # noqa: PLW0603 - a forked child must not reuse its parent's urns
    _urn_base = _urn_prefix()


os.register_at_fork(after_in_child=_new_urn_base)


class Ref(ActorRef[Any]):
    """An ``ActorRef`` whose blocking calls always time out (default :data:`DEFAULT_TIMEOUT`)."""

    def tell(self, message: Any) -> None:
        """Send ``message``; raises ActorDeadError if the actor is gone, MailboxFull if full."""
        # The mailbox knows whether the actor is alive: one lock, no separate is_alive() check.
        self.actor_inbox.tell(message)  # type: ignore[attr-defined]

    def ask(self, message: Any, *, block: bool = True, timeout: float | None = DEFAULT_TIMEOUT) -> Any:  # type: ignore[override]
        """Send ``message`` with a :class:`Future` for the answer; with ``block``, wait for it.

        As pykka's ask: an actor already stopped answers ActorDeadError through the future (a
        stopping one raises it from the put, as ``tell`` does), MailboxFull is raised at once.
        """
        future = Future()
        if self.actor_stopped.is_set():
            future.set_exception((ActorDeadError, ActorDeadError(f"{self} not found"), None))
        else:
            self.actor_inbox.tell(message, future)
        if block:
            return future.get(timeout=timeout)
        return future

    def stop(self, *, block: bool = True, timeout: float | None = DEFAULT_TIMEOUT) -> Any:  # type: ignore[override]
        """Ask the actor to stop (a control message); with ``block``, wait until it has stopped.

        Returns True if it stopped (or was already dead) within the timeout.
        """
        mailbox: Mailbox = self.actor_inbox  # type: ignore[assignment]
        if mailbox.closed:
            return True
        try:
            mailbox.tell(_ActorStop())
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

    def join(self, timeout: float = DEFAULT_TIMEOUT) -> bool:
        """Wait until the actor has ended completely: ``on_terminate`` run, watchers told.

        Returns:
            True if it has ended within ``timeout`` seconds.
        """
        if in_pool_worker():
            raise BlockingCallInWorker("a pooled actor must not wait for another to end; watch it")
        return self.actor_inbox.finished.wait(timeout)  # type: ignore[attr-defined]


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
    def _create_future() -> Future:  # pykka's hook; Ref.ask makes its Future directly
        return Future()

    def _start_actor_loop(self) -> None:
        self.actor_inbox.scheduler.schedule(self.actor_inbox)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from supervisors._runtime import Runtime

        runtime = Runtime.current()
        self.actor_urn = _next_urn()
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

    def publish_status(self, status: Message | None) -> None:
        """Show ``status`` in this actor's introspection (:attr:`ActorInfo.status`).

        For what others read without a message (a breaker's state for the metrics): they see
        the last value published, an immutable message, never the actor's own fields.
        """
        if status is not None and not isinstance(status, Message):
            raise TypeError(f"a published status must be an immutable Message, not {type(status).__name__}")
        self.actor_inbox.status = status

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

    def _sv_handle(self, message: Any, reply_to: Future | None) -> None:
        """Handle one message; ``reply_to`` is an ask's future (None for a tell)."""
        try:
            response = self._handle_receive(message)
            if reply_to is not None:
                reply_to.set(response)
        except Exception:
            if reply_to is not None:
                # pykka semantics: a failed ask is the caller's exception, the actor lives on.
                reply_to.set_exception()
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


