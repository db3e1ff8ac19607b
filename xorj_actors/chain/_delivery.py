"""How the Confirmation actor's loop side tells the world: replies with retries on a full
mailbox, audit entries that never break confirming.
"""

from __future__ import annotations

import asyncio
from typing import Any

from loguru import logger
from pykka import ActorDeadError, ActorRef

from supervisors import MailboxFull, Message
from xorj_actors.audit import EventType, Severity, audit_event, record

__all__ = ["Outbox"]

#: A reply_to whose mailbox is full is retried this often, this far apart (5 s in all).
_DELIVERY_RETRIES = 100
_DELIVERY_RETRY_S = 0.05


class Outbox:
    """Tells and audits on behalf of the session (on its loop thread)."""

    def __init__(self, runtime: Any, name: str) -> None:
        self.name = name
        self._runtime = runtime
        self.loop: asyncio.AbstractEventLoop | None = None  # set once the loop runs
        self.closing = False  # no more retries

    def tell(self, ref: ActorRef[Any], message: Message, attempt: int = 0) -> None:
        """Tell ``message``; a full mailbox is retried for 5 s, then logged and audited."""
        try:
            ref.tell(message)
            return
        except ActorDeadError:
            problem = "the recipient is dead"
        except MailboxFull:
            if attempt < _DELIVERY_RETRIES and not self.closing and self.loop is not None:
                if attempt == 0:
                    logger.warning("{}: mailbox of {} full; retrying {}", self.name, ref, type(message).__name__)
                self.loop.call_later(_DELIVERY_RETRY_S, self.tell, ref, message, attempt + 1)
                return
            problem = f"the recipient's mailbox stayed full for {_DELIVERY_RETRIES * _DELIVERY_RETRY_S:g} s"
        logger.error("{}: {} not delivered ({}): {!r}", self.name, type(message).__name__, problem, message)
        self.audit(
            EventType.ERROR_EVENT,
            {"event": "delivery_failed", "message": repr(message), "problem": problem},
            correlation_id=getattr(message, "trade_id", None),
            severity=Severity.ERROR,
        )

    def audit(
        self,
        event_type: EventType,
        details: dict[str, Any],
        *,
        correlation_id: str | None = None,
        severity: Severity = Severity.INFO,
    ) -> None:
        try:
            event = audit_event(event_type, self.name, details, correlation_id=correlation_id, severity=severity)
            record(self._runtime, event)
        except Exception:  # noqa: BLE001 - auditing must not break confirming; record logs the cause
            logger.exception("{}: audit record failed", self.name)
