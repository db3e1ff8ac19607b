"""The writer's queued entry and the checks every entry passes before it is queued."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

from xorj_actors.audit._chain import (
    AuditEntry,
    CanonicalDetails,
    CanonicalJSONError,
    EventType,
    Severity,
    canonical_json,
    new_entry_id,
)
from xorj_actors.audit._keys import KEY_ROTATION

#: Largest canonical ``details`` accepted, in characters.
MAX_DETAILS_CHARS = 1_000_000
#: Longest actor or correlation id.
MAX_NAME_CHARS = 256


# str-valued enums hash like their values: one dict serves members and plain strings.
_EVENT_TYPES = {e.value: e.value for e in EventType}
_SEVERITIES = {s.value: s.value for s in Severity}


class Request:
    """One queued entry and its caller's wait: a bare lock (cheaper than a Future at 64 writers)."""

    __slots__ = ("entry_id", "event_type", "severity", "actor", "correlation_id", "details",
                 "entry", "error", "future", "resolved", "rotate_to", "_done")

    def __init__(
        self, event_type: str, severity: str, actor: str, correlation_id: str | None, details: str,
        future: Future[AuditEntry] | None,
    ) -> None:
        self.entry_id = new_entry_id()
        self.event_type, self.severity, self.actor = event_type, severity, actor
        self.correlation_id, self.details = correlation_id, details
        self.entry: AuditEntry | None = None
        self.error: BaseException | None = None
        self.future = future
        #: A KEY_ROTATION: (new key, reason); its details are made when it is chained.
        self.rotate_to: tuple[bytes, str] | None = None
        self.resolved = False
        self._done = threading.Lock()
        self._done.acquire()

    def resolve(self, entry: AuditEntry | None, error: BaseException | None = None) -> None:
        self.entry, self.error, self.resolved = entry, error, True
        self._done.release()
        if self.future is not None:
            if error is None:
                self.future.set_result(entry)
            else:
                self.future.set_exception(error)

    def wait(self, timeout: float) -> AuditEntry | None:
        """The committed entry, or ``None`` on timeout; raises the writer's error."""
        if not self._done.acquire(timeout=timeout):
            return None
        if self.error is not None:
            raise self.error
        return self.entry


def validated(
    event_type: EventType | str,
    severity: Severity | str,
    actor: str,
    correlation_id: str | None,
    details: Mapping[str, Any] | CanonicalDetails | None,
) -> tuple[str, str, str, str | None, str]:
    etype = _EVENT_TYPES.get(event_type) if isinstance(event_type, str) else None
    if etype is None:
        raise ValueError(f"event_type: unknown event type {event_type!r}")
    if etype == KEY_ROTATION:
        raise ValueError("event_type: KEY_ROTATION entries are written only by a key rotation (AuditLog.rotate)")
    sev = _SEVERITIES.get(severity) if isinstance(severity, str) else None
    if sev is None:
        raise ValueError(f"severity: unknown severity {severity!r}")
    check_name("actor", actor)
    if correlation_id is not None:
        check_name("correlation_id", correlation_id)
    if type(details) is CanonicalDetails:
        text = details.text  # made by canonical_json already: serialised once
    else:
        if details is None:
            details = {}
        if not isinstance(details, Mapping):
            raise CanonicalJSONError(f"details: must be a mapping, got {type(details).__name__}")
        text = canonical_json(dict(details))
    if len(text) > MAX_DETAILS_CHARS:
        raise ValueError(f"details: {len(text)} characters, the limit is {MAX_DETAILS_CHARS}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise CanonicalJSONError("details: contains a lone surrogate, not valid UTF-8") from None
    return etype, sev, actor, correlation_id, text


def check_name(name: str, value: object) -> None:
    """Refuse here what the writer or the database would choke on later (and block the queue)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name}: must be a non-empty string")
    if len(value) > MAX_NAME_CHARS:
        raise ValueError(f"{name}: longer than {MAX_NAME_CHARS} characters")
    if "\x00" in value:
        raise ValueError(f"{name}: contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name}: contains a lone surrogate, not valid UTF-8") from None


