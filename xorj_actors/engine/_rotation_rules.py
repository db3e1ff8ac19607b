"""Key rotation's pure rules (no I/O): outcomes and triggers, when a key is due, why one is
refused, how the retired audit keys' list grows, and how long a failed rotation waits."""

from __future__ import annotations

import enum
from collections.abc import Iterable

from xorj_actors.secrets import AgeState, NotWritable, SecretAge, Source

__all__ = ["Due", "Outcome", "Trigger", "backoff_s", "due", "merge_retired", "refusal", "retired_keys"]

#: The longest a failed rotation waits before it is tried again (never less than one look).
MAX_BACKOFF_S = 3600.0


class Outcome(enum.StrEnum):
    """A rotation's answer (``outcome`` in its audit entry)."""

    ROTATED = "rotated"
    #: Nothing written: the key is in the environment or in no source, or the audit log cannot
    #: record an operator's rotation.
    REFUSED = "refused"
    #: A write or the reload failed.
    FAILED = "failed"


class Trigger(enum.StrEnum):
    """Who asked for a rotation (``trigger`` in its audit entry)."""

    SCHEDULE = "schedule"
    CTL = "ctl"

    @property
    def reload_trigger(self) -> str:
        """The reload's trigger: ``scheduled`` is the audit key epoch's reason for the
        schedule's rotation (matched in :mod:`xorj_actors.engine._reload`)."""
        return "scheduled" if self is Trigger.SCHEDULE else "rotate-key"


class Due(enum.StrEnum):
    """What the schedule makes of a key's age."""

    DUE = "due"
    NOT_DUE = "not due"
    #: Its age could not be read now: never rotated on that (reported, tried at the next look).
    UNREADABLE = "unreadable"


def due(age: SecretAge, interval_s: float) -> Due:
    """A dated key older than ``interval_s`` is due; an undated one too (the environment's: its
    refusal is the warning); an unreadable one is not decided on."""
    if age.state is AgeState.UNREADABLE:
        return Due.UNREADABLE
    if age.state is AgeState.UNDATED or age.seconds is None:
        return Due.DUE
    return Due.DUE if age.seconds >= interval_s else Due.NOT_DUE


def refusal(name: str, has_value: bool, source: Source | None) -> str | None:
    """Why the key ``name`` cannot be rotated (None: it can)."""
    if not has_value:
        return f"{name} is in no source: nothing to rotate"
    if source is Source.ENV:  # before any write (the audit key's retired list)
        return str(NotWritable.environment(name))
    return None


def retired_keys(text: str | None) -> list[str]:
    """The retired-keys secret's keys, in order (comma-separated)."""
    return [k for k in (part.strip() for part in (text or "").split(",")) if k]


def merge_retired(current: str | None, seen: Iterable[str], key: str) -> str:
    """The retired-keys secret's new text: ``current``'s keys, then every key ``seen`` in an
    earlier read that another writer dropped, then ``key``; each once, never one dropped."""
    keys = retired_keys(current)
    for k in (*seen, key):
        if k not in keys:
            keys.append(k)
    return ",".join(keys)


def backoff_s(failures: int, every_s: float) -> float:
    """How long a rotation that failed ``failures`` times in a row waits: ``every_s`` doubled
    each time, at most an hour (or ``every_s`` if that is longer)."""
    return min(max(MAX_BACKOFF_S, every_s), every_s * 2 ** max(0, failures - 1))
