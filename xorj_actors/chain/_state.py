"""What the Confirmation actor's loop side keeps: the watches, their waiters, and the vitals its
health answer is made of. Owned by the loop thread; the actor's thread only reads (see
:meth:`Session.health`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from pykka import ActorRef

from xorj_actors.chain._book import Commitment, Landing
from xorj_actors.chain.settings import Tier

__all__ = ["Vitals", "Waiter", "Watch"]


@dataclass(eq=False, slots=True)
class Waiter:
    """One WatchSignature: who to tell, under which tier."""

    trade_id: str
    reply_to: ActorRef[Any]
    tier: Tier
    received: float  # time.monotonic() when the actor received the request
    timer: asyncio.TimerHandle | None = None
    queued: bool = False  # in the depth heap
    done: bool = False


@dataclass(eq=False, slots=True)
class Watch:
    """One signature in flight, however many waiters it has."""

    signature: str
    last_valid: int
    waiters: list[Waiter] = field(default_factory=list)
    landing: Landing | None = None  # once seen at confirmed or finalized
    subs: dict[Commitment, int] = field(default_factory=dict)  # commitment -> subscription id
    pending: dict[Commitment, int] = field(default_factory=dict)  # commitment -> request id
    removed: bool = False


@dataclass(slots=True)
class Vitals:
    """Counters and marks of the link, the poller and the session, for the health answer.

    Plain attributes: written on the loop thread, read from the actor's (each read is atomic).
    """

    tip: int = 0  # newest slot seen (slot notifications and polls)
    last_slot_at: float = 0.0  # time.monotonic() of the last slot notification
    reconnects: int = 0
    polls: int = 0
    poll_outcomes: int = 0
    subscribe_errors: int = 0
    malformed_frames: int = 0
    refused: int = 0
    last_error: str | None = None
