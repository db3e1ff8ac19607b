"""The Audit actor: the engine's single writer of the hash-chained log.

It owns the :class:`AuditLog` (whose writer thread group-commits) and turns :class:`AuditEvent`
messages into entries, in the order they arrive. It fails closed: when the store is unavailable
at start or later, it halts trading through the kill switch (or, if the kill switch cannot be
reached, the kill file), keeps the events in memory in order, and writes them when the store
returns.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from concurrent.futures import Future
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from loguru import logger
from pykka import ActorDeadError

from supervisors import ControlMessage, MailboxFull, Message, register_immutable_type
from xorj_actors.audit._anchor import Anchorer
from xorj_actors.audit._chain import CanonicalDetails, CanonicalJSONError, EventType, Severity, canonical_json
from xorj_actors.audit._keys import KeyRing, load_key_ring
from xorj_actors.audit._log import AuditLog, AuditUnavailable
from xorj_actors.audit._store import AuditStoreError, open_store
from xorj_actors.audit.settings import AuditSettings
from xorj_actors.kill_switch import KILL_SWITCH_NAME, HaltBoard, Participant
from xorj_actors.messages import HaltMode, Trigger

__all__ = ["AUDIT_NAME", "AppendDurable", "Audit", "AuditEvent", "GetAuditHealth", "AuditHealth", "audit_event", "record"]

#: The Audit actor's registered name in the runtime.
AUDIT_NAME = "audit"
_RETRY_OPEN_S = 2.0


class AuditEvent(Message):
    """One entry to append. ``details_json`` is a JSON object (see :func:`audit_event`).

    ``canonical``: ``details_json`` is :func:`canonical_json` text (as :func:`audit_event` makes
    it), stored as is; otherwise the actor parses it and the log serialises it canonically.
    """

    event_type: str
    actor: str
    details_json: str
    correlation_id: str | None = None
    severity: str = "INFO"
    canonical: bool = False


class AppendDurable(Message):
    """Append ``event``; the reply is a ``concurrent.futures.Future`` resolved once it is committed.

    For entries that must be durable before the caller goes on (a trade intent before signing).
    Raises :class:`AuditUnavailable` (in the asker) while the log cannot be written: fail closed.
    """

    event: AuditEvent


register_immutable_type(KeyRing)  # frozen, bytes and tuples of bytes


class RotateKey(Message):
    """Rotate the audit key to ``keys.current`` (``reason``: reload, start-up, scheduled); the
    reply is a ``concurrent.futures.Future`` resolved with the committed ``KEY_ROTATION`` entry,
    or None when the writer already uses that key. ``keys``: every key now known (the anchorer
    verifies with them). Raises :class:`AuditUnavailable` while the log cannot be written."""

    keys: KeyRing
    reason: str


class GetAuditHealth(Message):
    pass


class AuditHealth(Message):
    available: bool
    reason: str | None
    pending: int
    held: int  # events kept by the actor while the log could not be opened
    #: The fingerprint of the key the writer MACs new entries with (None: no log open).
    key_fingerprint: str | None = None


class AuditState(Message):
    """Published for the metrics (no message asked): whether the log has failed closed."""

    fail_closed: bool  # the log cannot be written: trading was halted and durable appends are refused
    reason: str | None


class _RetryOpen(ControlMessage):
    pass


def audit_event(
    event_type: EventType | str,
    actor: str,
    details: Mapping[str, Any],
    *,
    correlation_id: str | None = None,
    severity: Severity | str = Severity.INFO,
) -> AuditEvent:
    """Build an :class:`AuditEvent`; refuses unknown types and non-JSON details at once.

    The details are serialised once, canonically, here: the actor and the log's writer store the
    text as is. Values that are not JSON types are written as ``str(value)``.
    """
    kind, level = EventType(event_type), Severity(severity)  # each looked up once
    try:
        if type(details) is not dict:
            raise CanonicalJSONError("not a plain dict")  # dict() of it below, as before
        text = canonical_json(details)
    except (CanonicalJSONError, RecursionError):
        # A non-JSON value (str() of it), a non-str key, NaN: the text the log made of the old
        # round trip (and its errors), byte for byte.
        text = canonical_json(json.loads(json.dumps(dict(details), sort_keys=True, default=str, allow_nan=False)))
    return AuditEvent(
        event_type=str(kind.value),
        actor=actor,
        details_json=text,
        correlation_id=correlation_id,
        severity=str(level.value),
        canonical=True,
    )


def record(runtime: Any, event: AuditEvent) -> bool:
    """Tell the Audit actor ``event``; False (and a log line) if it cannot be reached."""
    ref = runtime.whereis(AUDIT_NAME)
    try:
        if ref is None:
            raise ActorDeadError("audit actor not running")
        ref.tell(event)
        return True
    except (ActorDeadError, MailboxFull) as exc:
        logger.error("audit event {} not recorded: {!r}", event.event_type, exc)
        return False


class Audit(Participant):
    """Owns the audit log; keeps serving through a halt (a halt must be recorded too)."""

    dedicated_thread: ClassVar[bool] = True  # opening a store may block

    def __init__(
        self,
        board: HaltBoard,
        settings: AuditSettings,
        data_dir: Path,
        environment: str,
        kill_file: Path,
        *,
        open_log: Callable[..., AuditLog] = AuditLog.open,
        metrics: Any = None,
    ) -> None:
        super().__init__(board)
        self.settings = settings
        self.data_dir = data_dir
        self.environment = environment
        self.kill_file = kill_file
        self.open_log = open_log
        self.metrics = metrics  # xorj_actors.metrics.Metrics, or None
        self.log: AuditLog | None = None
        self.held: deque[AuditEvent] = deque(maxlen=settings.max_pending)
        self.unavailable_reason: str | None = None
        #: The writer's thread and the actor's both set the reason: each set and its publish are
        #: one step, or a stale value could be published last (xorj_audit_fail_closed).
        self._state_lock = threading.Lock()
        self.anchorer: Anchorer | None = None
        # Named before on_start: events told meanwhile wait in the mailbox instead of being lost.
        self.runtime.register_name(AUDIT_NAME, self.actor_ref)

    def on_start(self) -> None:
        super().on_start()
        self._set_unavailable(None)
        self._open()

    def _set_unavailable(self, reason: str | None) -> bool:
        """Set the reason (None: available) and publish it, as one step; True if it was None.
        Runs on the writer's thread or the actor's: the status is read at scrape time."""
        with self._state_lock:
            was_available = self.unavailable_reason is None
            self.unavailable_reason = reason
            self.publish_status(AuditState(fail_closed=reason is not None, reason=reason))
        return was_available

    def _open(self) -> None:
        try:
            self.log = self.open_log(
                self.settings,
                self.data_dir,
                self.environment,
                on_unavailable=self._store_unavailable,
                on_available=self._store_available,
                rotate_at_start=True,  # the engine's writer: a new key opens its epoch here
            )
        except (AuditStoreError, OSError, ValueError) as exc:  # ValueError: no usable HMAC key
            self._store_unavailable(f"cannot open the audit log: {exc}")
            self.runtime.send_after(_RETRY_OPEN_S, self.actor_ref, _RetryOpen())
            return
        self._set_unavailable(None)
        while self.held:
            self._submit(self.held.popleft())
        self._start_anchoring()

    def _start_anchoring(self) -> None:
        """With ``[audit.anchor] enabled``: archive the head every ``interval_s`` (docs/AUDIT.md)."""
        anchor = self.settings.anchor
        if not anchor.enabled and self.environment == "production":
            logger.warning(
                "AUDIT ANCHORING IS DISABLED ([audit.anchor] enabled = false): a truncated tail or a rewrite of the"
                " audit log with its key cannot be detected; `xorj-actors check` fails this config"
            )
        if not anchor.enabled or self.anchorer is not None:
            return
        try:
            keys = load_key_ring(self.settings, self.environment)
            self.anchorer = Anchorer(anchor, open_store(self.settings, self.data_dir), keys)
        except Exception as exc:  # noqa: BLE001 - boto3 and store errors alike: logged, verify shows the gap
            logger.error("audit anchoring not started: {}: {}", type(exc).__name__, exc)
            return
        self.anchorer.start()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, AuditEvent):
            if self.log is None:
                self.held.append(message)
                return None
            self._submit(message)
            return None
        if isinstance(message, AppendDurable):
            if self.log is None or not self.log.available:
                raise AuditUnavailable(self.unavailable_reason or "audit log unavailable")
            return self._submit(message.event, durable=True)
        if isinstance(message, RotateKey):
            if self.log is None or not self.log.available:
                raise AuditUnavailable(self.unavailable_reason or "audit log unavailable")
            rotation = self.log.submit_rotation(message.keys.current, message.reason)
            anchorer = self.anchorer
            if anchorer is not None:
                anchorer.keys = message.keys
                if rotation is not None:  # the old epoch's tail, anchored at once: safe from the retired key
                    rotation.add_done_callback(lambda _done: anchorer.anchor_soon())
            return rotation
        if isinstance(message, _RetryOpen):
            return self._open() if self.log is None else None
        if isinstance(message, GetAuditHealth):
            log = self.log
            return AuditHealth(
                available=log is not None and log.available,
                reason=self.unavailable_reason,
                pending=log.pending if log is not None else 0,
                held=len(self.held),
                key_fingerprint=log.key_fingerprint if log is not None else None,
            )
        return super().on_receive(message)

    def _submit(self, event: AuditEvent, *, durable: bool = False) -> Future[Any] | None:
        assert self.log is not None
        try:
            future = self.log.submit(
                event.event_type,
                actor=event.actor,
                details=CanonicalDetails(event.details_json) if event.canonical else json.loads(event.details_json),
                correlation_id=event.correlation_id,
                severity=event.severity,
            )
        except AuditUnavailable as exc:
            if durable:
                raise  # the caller learns it and does not go on
            # The writer holds max_pending entries already: the event cannot be kept.
            self._store_unavailable(f"audit log refused an entry: {exc}")
            logger.critical("AUDIT ENTRY LOST ({}): {} {}", exc, event.event_type, event.details_json[:500])
        except ValueError as exc:  # bad input from a caller: record that instead
            if durable:
                raise
            logger.error("audit event refused: {}", exc)
        else:
            if self.metrics is not None:
                future.add_done_callback(self._observe(time.monotonic()))
            return future
        return None

    def _observe(self, submitted: float) -> Callable[[Future[Any]], None]:
        metrics = self.metrics

        def done(future: Future[Any]) -> None:  # on the writer's thread, once committed
            if future.exception() is None:
                metrics.audit_entries.inc()
                metrics.audit_append.observe(time.monotonic() - submitted)

        return done

    def _store_unavailable(self, reason: str) -> None:
        """Fail closed: halt trading. Runs on the writer's thread or the actor's."""
        first = self._set_unavailable(reason)
        if not first:
            return
        logger.critical("audit store unavailable: {}: halting trading", reason)
        trigger = Trigger(mode=HaltMode.EMERGENCY, reason=f"audit store unavailable: {reason}"[:500], source="audit")
        ks = self.runtime.whereis(KILL_SWITCH_NAME)
        try:
            if ks is None:
                raise ActorDeadError("kill switch not running")
            ks.tell(trigger)
        except (ActorDeadError, MailboxFull):
            self.kill_file.write_text(f"audit store unavailable: {reason}\n")

    def _store_available(self) -> None:
        logger.warning("audit store available again; held entries written in order")
        self._set_unavailable(None)

    def on_terminate(self) -> None:
        if self.log is not None:
            try:
                self.log.close(timeout=5)
            except AuditUnavailable as exc:
                logger.critical("audit log closed with entries unwritten: {}", exc)
        if self.anchorer is not None:  # after the log: its last anchor covers every written entry
            self.anchorer.stop(timeout=5)
