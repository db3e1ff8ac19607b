"""Who gets a debug-socket connection slot: the rules, apart from the sockets.

Three rules, checked in order when a client connects:

1. A free slot of the ``max_clients`` is taken.
2. All taken: the client idle the longest (waiting for a request, no command running) is evicted
   and the newcomer takes its slot.
3. No client idle: the newcomer takes the one reserved slot, which serves one request and closes.
   If that is taken too, the newcomer is refused (``busy``).

So a client only holds a slot against a newcomer while its command runs, and an operator's
``ctl`` is refused only while ``max_clients`` + 1 commands run at once.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Admission", "Slot", "Slots"]

C = TypeVar("C")


class Slot(enum.StrEnum):
    GENERAL = "general"
    #: One request, then closed: for when every general slot runs a command.
    RESERVED = "reserved"


@dataclass(frozen=True, slots=True)
class Admission(Generic[C]):
    """What a newcomer got: a slot (None: refused, ``busy``), and the client evicted for it."""

    slot: Slot | None
    evicted: C | None = None


class Slots(Generic[C]):
    """The slots of one server; ``C`` is the server's connection (hashable by identity).

    A client is idle from its admission and after each reply, busy while its request is read
    out and run (:meth:`busy`, :meth:`idle`). Single-threaded: the server's event loop.
    """

    def __init__(self, max_clients: int) -> None:
        self.max_clients = max_clients
        self._general: set[C] = set()
        #: General clients waiting for a request, the longest idle first.
        self._idle: OrderedDict[C, None] = OrderedDict()
        self._reserved: C | None = None

    def admit(self, client: C) -> Admission[C]:
        """Apply the three rules to a newcomer; the evicted client, if any, is released already."""
        evicted = None
        if len(self._general) >= self.max_clients and self._idle:
            evicted, _ = self._idle.popitem(last=False)
            self._general.discard(evicted)
        if len(self._general) < self.max_clients:
            self._general.add(client)
            self._idle[client] = None
            return Admission(Slot.GENERAL, evicted)
        if self._reserved is None:
            self._reserved = client
            return Admission(Slot.RESERVED)
        return Admission(None)

    def idle(self, client: C) -> None:
        """``client`` waits for its next request: evictable, after those idle longer."""
        if client in self._general:
            self._idle[client] = None
            self._idle.move_to_end(client)

    def busy(self, client: C) -> None:
        """``client`` sent a request: not evictable until :meth:`idle`."""
        self._idle.pop(client, None)

    def release(self, client: C) -> None:
        """``client`` is gone (idempotent)."""
        self._general.discard(client)
        self._idle.pop(client, None)
        if self._reserved is client:
            self._reserved = None

    def __len__(self) -> int:
        return len(self._general) + (self._reserved is not None)
