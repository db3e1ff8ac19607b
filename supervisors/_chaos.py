"""Fault injection for chaos tests: make a live actor fail the ways real actors fail."""

from __future__ import annotations

import enum
from typing import Any

from pykka import ActorRef
from pykka._envelope import Envelope

from supervisors._scheduler import WorkerKilled

__all__ = ["Fault", "inject_fault"]


class Fault(str, enum.Enum):
    RAISE = "raise"  #: an exception escapes a handler (the actor fails)
    STOP = "stop"  #: the actor is asked to stop (a normal exit)
    KILL_WORKER = "kill_worker"  #: the thread running the actor dies under it


class _InjectedFault:
    """Delivered like a message; the actor raises it from inside its handler."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def inject_fault(ref: ActorRef[Any], fault: Fault) -> None:
    """Make ``ref`` fail as ``fault`` says, after the messages already queued for it."""
    if fault is Fault.STOP:
        ref.stop(block=False)  # type: ignore[call-arg]
        return
    error: BaseException = RuntimeError("injected fault") if fault is Fault.RAISE else WorkerKilled("injected")
    ref.actor_inbox.put(Envelope(_InjectedFault(error)))
