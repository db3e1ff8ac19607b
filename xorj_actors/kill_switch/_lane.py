"""The kill switch's ref: the trip on the sender's thread, and the participant lane.

:class:`KillSwitchRef` is the ref every sender holds (``KillSwitch.start`` returns it,
``runtime.whereis(KILL_SWITCH_NAME)`` finds it):

- a ``Trigger`` told through it trips the halt board at once (``HaltBoard.trip``), so signers
  refuse before the kill switch has even run, then goes to the mailbox as before. Told to a dead
  kill switch, it goes on to its successor; with none yet, the original ``ActorDeadError`` is
  raised as always (the board is tripped: the next kill switch starts halted from it);
- ``Register`` and ``HaltAck`` go to a :class:`ParticipantLane` instead of the mailbox: one
  deque append each. The first one since the last drain wakes the kill switch with a single
  :class:`LaneWaiting`, which drains the lane in order. A participant acks through
  :meth:`KillSwitchRef.ack`, an ``(urn, epoch, in_flight)`` tuple: the same value as a
  ``HaltAck`` without building a message per actor per halt.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from pykka import ActorDeadError

from supervisors import ControlMessage, Ref
from xorj_actors.kill_switch._board import HaltBoard, HaltStatus
from xorj_actors.messages import HaltAck, Register, Trigger

if TYPE_CHECKING:
    from supervisors import Actor, Runtime

__all__ = ["KillSwitchRef", "LaneWaiting", "ParticipantLane"]


class LaneWaiting(ControlMessage):
    """The participant lane has messages: drain it (a control message, like what it carries)."""


class ParticipantLane:
    """Registrations and acks waiting for the kill switch, in the order they were told."""

    __slots__ = ("_items", "_lock", "_waiting")

    def __init__(self) -> None:
        self._items: deque[Register | HaltAck | tuple[str, int, int]] = deque()
        self._lock = threading.Lock()
        self._waiting = False

    def push(self, message: Register | HaltAck | tuple[str, int, int]) -> bool:
        """Append ``message``; True if it is the first since the last drain (wake the kill switch)."""
        with self._lock:
            self._items.append(message)
            if self._waiting:
                return False
            self._waiting = True
            return True

    def drain(self) -> deque[Register | HaltAck | tuple[str, int, int]]:
        """Everything told since the last drain, oldest first; the next push wakes again."""
        with self._lock:
            items, self._items = self._items, deque()
            self._waiting = False
        return items

    def __len__(self) -> int:
        return len(self._items)


class KillSwitchRef(Ref):
    """The kill switch's ref: trips the board on a ``Trigger``, lanes registrations and acks.

    Args:
        actor: the kill switch.
        board: the halt board it publishes on.
        lane: its participant lane.
        name: its registered name, for a ``Trigger`` told after it died.
    """

    def __init__(self, actor: Actor, board: HaltBoard, lane: ParticipantLane, name: str) -> None:
        super().__init__(actor)
        self.board = board
        self.lane = lane
        self.registered_name = name
        self.runtime: Runtime = actor.runtime
        self._wake = LaneWaiting()  # one value for every wake: it carries nothing
        self._trip_lock = threading.Lock()
        #: Trips whose Trigger went to this kill switch's own mailbox.
        self.queued_trips = 0

    def board_at_start(self) -> tuple[HaltStatus, int]:
        """What the kill switch starts from: the board, and the trips it has handled.

        Trips whose ``Trigger`` is queued here are left out of both (that Trigger halts once
        handled; counting its trip too would open two epochs for one trigger). Any other trip
        shown (its Trigger went to a kill switch that died) is a halt to start in.
        """
        with self._trip_lock:
            own = self.queued_trips
            trips = self.board.trips
            published, since = self.board.last_published()
            shown = published if own and since == own else self.board.status
        return shown, trips - own

    def ack(self, urn: str, epoch: int, in_flight: int) -> None:
        """``HaltAck(epoch, urn, in_flight)``, lane-borne; raises ActorDeadError if it must wake a dead one."""
        if self.lane.push((urn, epoch, in_flight)):
            self.actor_inbox.tell(self._wake)

    def tell(self, message: Any) -> None:
        """Send ``message`` (see the module); raises ActorDeadError if the kill switch is gone."""
        kind = type(message)
        if kind is HaltAck or kind is Register:
            if self.lane.push(message):
                self.actor_inbox.tell(self._wake)
            return
        if kind is not Trigger:
            return super().tell(message)
        try:
            with self._trip_lock:
                message = Trigger(mode=message.mode, reason=message.reason, source=message.source, epoch=self.board.trip())
                self.actor_inbox.tell(message)
                self.queued_trips += 1
        except ActorDeadError:
            successor = self.runtime.whereis(self.registered_name)
            if successor is None or successor.actor_urn == self.actor_urn:
                raise  # the original error: the board holds the halt for the next kill switch
            try:
                successor.actor_inbox.tell(message)  # tripped already: not again
            except ActorDeadError:
                pass  # gone as well: raise the original below
            else:
                return None
            raise
        finally:
            time.sleep(0)  # let the GIL go: a signer about to sign sees the trip now
        return None
