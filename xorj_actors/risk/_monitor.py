"""What the three risk monitors share: firing a trigger, auditing it, and never losing it."""

from __future__ import annotations

import uuid
from collections import deque
from pathlib import Path
from typing import Any, ClassVar

from loguru import logger
from pykka import ActorDeadError

from supervisors import ControlMessage, MailboxFull
from xorj_actors.audit import EventType, Severity, audit_event, record
from xorj_actors.kill_switch import KILL_SWITCH_NAME, HaltBoard, Participant
from xorj_actors.limits import REASON_LIMIT
from xorj_actors.messages import HaltMode, Trigger

__all__ = ["RiskMonitor"]

_MAX_UNDELIVERED = 64


class _Redeliver(ControlMessage):  # a timer the halt depends on: never refused
    pass


class RiskMonitor(Participant):
    """Base of the monitors: a Participant that keeps watching through a halt.

    It runs on a thread of its own: a monitor must still fire while the shared pool is stuck (a
    stuck pool is one of the things it detects), and its fail-closed path writes a file.

    Args:
        board: the halt board.
        retry_s: while the kill switch is unreachable, retry an undelivered trigger this often.
        kill_file: written when a trigger cannot be delivered, so that the restarted kill switch
            halts even if this process dies first (None: no file).
    """

    dedicated_thread: ClassVar[bool] = True
    #: The ``risk:<monitor>`` part of the trigger source, set by each subclass.
    monitor: ClassVar[str] = "risk"
    #: The name the monitor registers in the runtime (``runtime.whereis``), set by each subclass.
    registered_name: ClassVar[str] = ""

    def __init__(self, board: HaltBoard, *, retry_s: float, kill_file: Path | None) -> None:
        super().__init__(board)
        self.retry_s = retry_s
        self.kill_file = kill_file
        self.triggers = 0
        self._undelivered: deque[Trigger] = deque(maxlen=_MAX_UNDELIVERED)
        self._retrying = False
        if self.registered_name:
            # Named before on_start: what is told meanwhile waits in the mailbox.
            self.runtime.register_name(self.registered_name, self.actor_ref)

    def on_receive(self, message: Any) -> Any:
        if type(message) is _Redeliver:
            return self._redeliver()
        return super().on_receive(message)

    # -- firing --------------------------------------------------------------------------------

    def fire(
        self,
        check: str,
        mode: HaltMode,
        reason: str,
        details: dict[str, Any],
        *,
        event_type: EventType = EventType.HALT,
    ) -> str:
        """Trigger the kill switch for ``check`` and audit it with ``details``; returns the id.

        The trigger goes first (a halt must not wait for the audit trail); the audit entry and
        the log line carry the figures and the correlation id that the reason ends with.
        """
        correlation_id = f"risk:{check}:{uuid.uuid4().hex[:12]}"
        suffix = f" [{correlation_id}]"
        text = reason[: REASON_LIMIT - len(suffix)] + suffix
        trigger = Trigger(mode=mode, reason=text, source=f"risk:{self.monitor}")
        self.triggers += 1
        logger.critical("risk {}: {} halt: {}", check, mode.value, text)
        self._deliver(trigger)
        entry = {**details, "check": check, "mode": mode.value, "reason": text, "source": trigger.source}
        try:
            event = audit_event(event_type, self.name, entry, correlation_id=correlation_id, severity=Severity.CRITICAL)
        except ValueError as exc:  # a figure with no JSON form: keep the trigger, say so loudly
            logger.error("risk {}: audit entry refused ({}); details were {!r}", check, exc, entry)
            event = audit_event(
                event_type,
                self.name,
                {"check": check, "mode": mode.value, "reason": text, "source": trigger.source, "details_error": str(exc)},
                correlation_id=correlation_id,
                severity=Severity.CRITICAL,
            )
        record(self.runtime, event)
        return correlation_id

    def _send(self, trigger: Trigger) -> Exception | None:
        ks = self.runtime.whereis(KILL_SWITCH_NAME)
        try:
            if ks is None:
                raise ActorDeadError("kill switch not running")
            ks.tell(trigger)  # a control message: never refused by a full mailbox
        except (ActorDeadError, MailboxFull) as exc:
            return exc
        return None

    def _deliver(self, trigger: Trigger) -> None:
        error = self._send(trigger)
        if error is None:
            return
        logger.critical("risk: cannot deliver a trigger to the kill switch ({!r}); retrying every {} s", error, self.retry_s)
        if len(self._undelivered) == self._undelivered.maxlen:
            logger.critical("risk: too many undelivered triggers; dropping the oldest: {}", self._undelivered[0].reason)
        self._undelivered.append(trigger)
        self._write_kill_file(trigger)
        self._arm_retry()

    def _arm_retry(self) -> None:
        if not self._retrying:
            self._retrying = True
            self.runtime.send_after(self.retry_s, self.actor_ref, _Redeliver())

    def _redeliver(self) -> None:
        self._retrying = False
        while self._undelivered:
            trigger = self._undelivered[0]
            if self._send(trigger) is not None:
                self._arm_retry()
                return
            self._undelivered.popleft()
            logger.warning("risk: delivered a trigger held while the kill switch was unreachable: {}", trigger.reason)

    def _write_kill_file(self, trigger: Trigger) -> None:
        if self.kill_file is None:
            return
        try:
            # The first line is the reason the restarted kill switch records.
            self.kill_file.write_text(f"{trigger.source}: {trigger.reason}\n", encoding="utf-8")
        except OSError as exc:
            logger.critical("risk: cannot write the kill file {}: {!r}", self.kill_file, exc)
