"""What every client of a remote HTTP API shares: a strict check that names the field it failed,
remote text made safe to keep, a size-bounded body, and ``Retry-After``.

Jupiter's and Jito's clients both use these (:mod:`xorj_actors.jupiter`, :mod:`xorj_actors.jito`).
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

__all__ = ["MESSAGE_LIMIT", "MalformedAnswer", "read_bounded", "retry_after", "trim"]

#: Longest message kept from a remote answer (it is logged and audited).
MESSAGE_LIMIT = 300


class MalformedAnswer(ValueError):
    """An answer that fails a strict check; ``field`` names the field (``routePlan[1].inAmount``)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def trim(text: str) -> str:
    """A remote message made safe to keep: one line, bounded."""
    return " ".join(text.split())[:MESSAGE_LIMIT]


def retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds, when it is a number of them between 0 and an hour."""
    value = headers.get("Retry-After")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare, and the callers' backoff covers it
    return seconds if seconds is not None and 0 <= seconds <= 3600 else None


async def read_bounded(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, refused past ``limit`` bytes (``read(n)`` returns what has arrived, not n)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await resp.content.read(limit + 1 - size):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise MalformedAnswer(str(resp.url.path), f"answer larger than {limit} bytes")
    return b"".join(chunks)
