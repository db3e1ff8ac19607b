"""Asking several actors at once, each answer or the reason there is none.

For operator surfaces that report on many actors: one stuck or stopped actor is one row that
says so, never a failed table. Imports nothing from ``xorj_actors``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from loguru import logger
from pykka import ActorDeadError, Timeout

from supervisors import MailboxFull

__all__ = ["Answer", "ask_all", "expect"]

#: ``(answer, None)``, or ``(None, why there is none)``.
Answer = tuple[Any, str | None]


def ask_all(asks: Mapping[str, tuple[Any, Any]], timeout: float) -> dict[str, Answer]:
    """Ask every ``(ref or None, message)`` at once; ``{key: (answer, None) or (None, why not)}``."""
    out: dict[str, Answer] = {}
    futures: dict[str, Any] = {}
    for key, (ref, message) in asks.items():
        if ref is None:
            out[key] = (None, "not running")
            continue
        try:
            futures[key] = ref.ask(message, block=False)
        except ActorDeadError:
            out[key] = (None, "not running")
        except MailboxFull:
            out[key] = (None, "mailbox full")
    deadline = time.monotonic() + timeout
    for key, future in futures.items():
        try:
            out[key] = (future.get(timeout=max(0.0, deadline - time.monotonic())), None)
        except Timeout:
            out[key] = (None, f"no answer within {timeout:.3g} s")
        except ActorDeadError:
            out[key] = (None, "stopped")
        except Exception as exc:  # noqa: BLE001 - the actor's own failure: one row, logged, not the table
            logger.error("debug socket: {} failed to answer {}: {!r}", key, type(asks[key][1]).__name__, exc)
            out[key] = (None, f"failed: {type(exc).__name__}: {exc}")
    return {key: out[key] for key in asks}


def expect(answer: Answer, kind: type) -> Answer:
    """An answer of the wrong kind is no answer (decisions are made on it: fail closed)."""
    value, error = answer
    if error is None and not isinstance(value, kind):
        return None, f"unexpected answer {type(value).__name__}"
    return value, error
