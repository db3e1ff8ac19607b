"""What the runtime shows of a live actor: its state and an immutable snapshot of it."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pykka import ActorRef

from supervisors._message import Message

if TYPE_CHECKING:
    from supervisors._actor import Actor

__all__ = ["ActorInfo", "ActorState"]


class ActorState(enum.StrEnum):
    """Where an actor is in its life; the last four are final."""

    STARTING = "starting"
    IDLE = "idle"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"
    KILLED = "killed"
    ABANDONED = "abandoned"


#: States an actor never leaves.
DEAD_STATES = frozenset({ActorState.STOPPED, ActorState.FAILED, ActorState.KILLED, ActorState.ABANDONED})


@dataclass(frozen=True, slots=True)
class ActorInfo:
    """One actor as the runtime saw it at one instant; reading it never disturbs the actor.

    Taken with :meth:`Runtime.actors` or :meth:`Runtime.actor_info`. The fields are read one by
    one while the actor runs, so they are each current but not a transaction.

    Attributes:
        urn: the actor's urn.
        name: its name in the tree (the child id once a supervisor has started it).
        actor_class: the actor's class (e.g. to find every actor of a kind).
        parent: urn of the supervisor that started it, or None.
        state: where it is in its life.
        mailbox_depth: messages waiting (both lanes).
        capacity: bound of the ordinary lane.
        restarts: how many times its supervisor has restarted this child.
        processed: messages it has handled.
        last_message: class name of the last message it began to handle.
        last_message_at: wall-clock time that message began.
        started_at: wall-clock time the actor was created.
        exit_reason: why it is stopping or stopped ("normal" for a requested stop), else None.
        dedicated_thread: it runs on a thread of its own rather than the shared pool.
        thread_ident: ident of the thread running it right now, or None.
        ref: its ref, or None once it has ended.
        status: the last value it published with :meth:`Actor.publish_status`, or None.
        stack: frames of the thread running it, when asked for and it was running.
    """

    urn: str
    name: str
    actor_class: type[Actor]
    parent: str | None
    state: ActorState
    mailbox_depth: int
    capacity: int
    restarts: int
    processed: int
    last_message: str | None
    last_message_at: float | None
    started_at: float
    exit_reason: str | None
    dedicated_thread: bool
    thread_ident: int | None
    ref: ActorRef[Any] | None
    status: Message | None = None
    stack: tuple[str, ...] | None = None

    @property
    def alive(self) -> bool:
        """It has not ended and is not stopping."""
        return self.state not in DEAD_STATES and self.exit_reason is None

    def as_dict(self, *, stack: bool = False) -> dict[str, Any]:
        """The snapshot as plain JSON-ready data (the debug socket's ``tree`` and ``actor`` entries).

        Args:
            stack: include the ``stack`` entry (a list of frames, or None when not running).
        """
        info: dict[str, Any] = {
            "urn": self.urn,
            "name": self.name,
            "class": self.actor_class.__name__,
            "parent": self.parent,
            "state": self.state.value,
            "mailbox": self.mailbox_depth,
            "capacity": self.capacity,
            "restarts": self.restarts,
            "processed": self.processed,
            "last_message": self.last_message,
            "last_message_at": self.last_message_at,
            "started_at": self.started_at,
            "exit_reason": self.exit_reason,
            "dedicated_thread": self.dedicated_thread,
        }
        if stack:
            info["stack"] = None if self.stack is None else list(self.stack)
        return info
