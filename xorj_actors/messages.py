"""The engine's messages: immutable values (see :class:`supervisors.Message`).

Halt-protocol messages are defined here because every actor speaks them; a component's own
messages live next to the component.
"""

from __future__ import annotations

import enum

from supervisors import ControlMessage, Message

__all__ = [
    "Halt",
    "HaltAck",
    "HaltMode",
    "Register",
    "Resume",
    "Trigger",
]


class HaltMode(str, enum.Enum):
    """How hard a halt stops work."""

    #: No new work starts; in-flight transactions keep being confirmed.
    GRACEFUL = "graceful"
    #: Also drop every pending unsigned piece of work at once.
    EMERGENCY = "emergency"


class Trigger(ControlMessage):
    """Ask the kill switch to halt. Any actor may send it; so do signals, files and operators.

    A control message: a halt request overtakes queued work and is never refused. Told through
    the kill switch's ref, it trips the halt board first and carries the ``epoch`` that trip
    opened (0: not tripped); the kill switch's halt takes that epoch if it is still ahead.
    """

    mode: HaltMode
    reason: str
    source: str
    epoch: int = 0


class Halt(ControlMessage):
    """Stop: sent by the kill switch to every registered actor, ahead of their queued work."""

    epoch: int
    mode: HaltMode
    reason: str
    source: str


class HaltAck(ControlMessage):
    """An actor's acknowledgement of the halt of ``epoch``, with its work still in flight.

    A control message: a kill switch whose mailbox is full of other work must still hear it.
    """

    epoch: int
    actor: str  # the actor's urn
    in_flight: int


class Resume(ControlMessage):
    """Trading may go on for the halt of ``epoch``, at ``factor`` times the position limits."""

    epoch: int
    factor: float


class Register(ControlMessage):
    """An actor joins the halt protocol (sent from its ``on_start``); never refused, like acks.

    ``epoch``, ``halted`` and ``factor`` are what the actor started on (the halt board's): an
    actor already current gets no ``Halt`` or ``Resume`` for it. The defaults mean "unknown":
    it is told the current decision. ``name`` is informative only: the kill switch names an
    actor as the runtime does when it handles the registration (a supervisor renames its child
    after starting it).
    """

    urn: str
    name: str
    role: str  # "signer" actors are halted first
    epoch: int = -1
    halted: bool = True
    factor: float = 0.0
