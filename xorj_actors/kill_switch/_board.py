"""The halt board: the kill switch's current decision, readable by every actor at once.

Messages carry halts to actors; the board exists for the moments a message cannot be waited for:
an actor starting during a halt must start halted, and a signer must refuse the instant the kill
switch decides, even if the Halt is still queued behind the signature it is making. The kill
switch publishes its decisions; a ``Trigger`` told through its ref also *trips* the board on the
sender's thread (:meth:`HaltBoard.trip`), before the kill switch has run. Readers get an
immutable snapshot (a single attribute read is atomic).
"""

from __future__ import annotations

import threading
import time

from supervisors import Message

__all__ = ["STARTING", "TRIGGERED", "HaltBoard", "HaltStatus"]

#: The board's state before a kill switch of this process has published anything.
STARTING = "STARTING"
#: The state a trip shows (``KillSwitchState.TRIGGERED``'s value; the state module is not imported here).
TRIGGERED = "TRIGGERED"


class HaltStatus(Message):
    state: str
    epoch: int
    halted: bool
    factor: float  # position-limit factor; 0.0 while halted
    #: REDUCING (an operator's flatten): still ``halted``, but trades that only reduce exposure
    #: (``reduces_exposure=True``) may be signed. Readers check it only where they decide on one.
    reducing: bool = False
    #: The vaults being flattened (REDUCING only): the executor lets no other vault's trade through.
    reducing_vaults: frozenset[str] = frozenset()


class HaltBoard:
    """Holds the latest :class:`HaltStatus`. Starts halted: nothing trades before the kill
    switch has read its state file and published.

    A trip only ever halts: it shows ``TRIGGERED`` at the next epoch at once. From then on the
    board drops any publish of an older epoch (a recovery decided just before the trip cannot
    loosen it), and any loosening publish from a kill switch that has not yet handled every trip
    (``trips_seen``): the trip holds until its ``Trigger`` has been handled.
    """

    __slots__ = ("_epoch_since", "_lock", "_published", "_status", "_tripped", "_trips", "_trips_at_publish")

    def __init__(self) -> None:
        self._status = HaltStatus(state=STARTING, epoch=0, halted=True, factor=0.0)
        self._lock = threading.Lock()
        self._tripped = 0  # the epoch the last trip opened
        self._trips = 0  # how many trips there have been
        self._published = self._status  # the last status a kill switch published
        self._trips_at_publish = 0
        self._epoch_since = time.monotonic()  # when the shown epoch last changed

    @property
    def status(self) -> HaltStatus:
        return self._status

    @property
    def decided(self) -> bool:
        """Whether a kill switch of this process has published a decision (it has read its state
        file): until then the board shows STARTING, or a trip, and refuses everything."""
        return self._published.state != STARTING

    @property
    def tripped(self) -> int:
        """The epoch the last trip opened (0: none yet)."""
        return self._tripped

    @property
    def trips(self) -> int:
        """How many trips there have been: a kill switch handles them in its ``Trigger`` messages."""
        return self._trips

    @property
    def epoch_since(self) -> float:
        """``time.monotonic()`` when the shown epoch last changed (a trip, or a newer publish):
        the metrics time a halt the kill switch has not handled from it."""
        return self._epoch_since

    def last_published(self) -> tuple[HaltStatus, int]:
        """The last status a kill switch published, and how many trips there have been since."""
        with self._lock:
            return self._published, self._trips - self._trips_at_publish

    def trip(self) -> int:
        """Halt now, at the next epoch, on the caller's thread; returns that epoch."""
        with self._lock:
            epoch = self._status.epoch + 1
            self._status = HaltStatus(state=TRIGGERED, epoch=epoch, halted=True, factor=0.0)
            self._tripped = epoch
            self._trips += 1
            self._epoch_since = time.monotonic()
        return epoch

    def publish(self, status: HaltStatus, *, trips_seen: int | None = None) -> bool:
        """Show ``status``; False (dropped) if it is older than the last trip, or would loosen
        the board while a trip newer than ``trips_seen`` is unhandled.

        Args:
            status: the kill switch's decision.
            trips_seen: the trips the publisher has handled (:attr:`trips` as it read it); None:
                only the epoch rule applies.
        """
        with self._lock:
            if status.epoch < self._tripped:
                return False
            if not status.halted and trips_seen is not None and trips_seen < self._trips:
                return False
            if status.epoch != self._status.epoch:
                self._epoch_since = time.monotonic()
            self._status = self._published = status
            self._trips_at_publish = self._trips
        return True
