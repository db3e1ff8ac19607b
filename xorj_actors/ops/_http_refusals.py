"""Unauthenticated refusals of the HTTP API, counted: one audit entry per source and window.

A request refused before it is authenticated proves nothing about who sent it, so it must not
cost an audit entry each (4,000 unauthenticated POSTs once made 4,000 durable entries) and is
never typed as what it claims to be (2,000 of them were stored as HALT/CRITICAL). They are
tallied here instead, with the connections the guard refused, evicted or timed out; when the
window closes, each source gets one ``SECURITY_VIOLATION`` entry with the count and what was
refused. Pure: the HTTP API schedules :meth:`RefusalTally.drain`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["RefusalTally"]

#: Sources counted apart in one window; the rest share the source ``"other"``.
MAX_SOURCES = 1_000
#: Distinct kinds and paths kept per source; the rest count as ``"other"``.
MAX_KEYS = 16
PATH_LIMIT = 200


@dataclass
class _Source:
    first: float
    last: float
    count: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    paths: Counter[str] = field(default_factory=Counter)


def _bump(counter: Counter[str], key: str) -> None:
    counter[key if key in counter or len(counter) < MAX_KEYS else "other"] += 1


class RefusalTally:
    """Counts refusals per source until :meth:`drain`; not thread-safe (one event loop owns it)."""

    def __init__(self, window_s: float, clock: Callable[[], float] = time.time) -> None:
        self.window_s = window_s
        self._clock = clock
        self._sources: dict[str, _Source] = {}

    def add(self, source: str | None, kind: str, path: str | None = None) -> bool:
        """Count one refusal; True if it opened a window (the caller drains it ``window_s`` later)."""
        opened = not self._sources
        now = self._clock()
        key = source or "unknown"
        if key not in self._sources and len(self._sources) >= MAX_SOURCES:
            key = "other"
        entry = self._sources.setdefault(key, _Source(first=now, last=now))
        entry.count += 1
        entry.last = now
        _bump(entry.refusals, kind)
        if path is not None:
            _bump(entry.paths, path[:PATH_LIMIT])
        return opened

    def drain(self) -> list[dict[str, Any]]:
        """The details of one audit entry per source counted since the last drain; resets."""
        sources, self._sources = self._sources, {}
        return [
            {
                "what": "http unauthenticated refusals",
                "outcome": "refused",
                "remote": source,
                "count": s.count,
                "window_s": self.window_s,
                "first": _iso(s.first),
                "last": _iso(s.last),
                "refusals": dict(s.refusals),
                "paths": dict(s.paths),
            }
            for source, s in sources.items()
        ]


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")
