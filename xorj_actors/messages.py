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

    A control message: a halt request overtakes queued work and is never refused.
    """

    mode: HaltMode
    reason: str
    source: str


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
    """An actor joins the halt protocol (sent from its ``on_start``); never refused, like acks."""

    urn: str
    name: str
    role: str  # "signer" actors are halted first
