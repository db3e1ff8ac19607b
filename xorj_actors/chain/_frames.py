"""PubSub frames, parsed strictly and purely: one frame in, one typed reading out, never an
exception (no frame may take the connection down; docs/CONFIRMATION.md, "Failure modes").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from xorj_actors.chain._rpc import compact_json

__all__ = ["Frame", "Ignored", "Malformed", "Reply", "SignatureNote", "SlotNote", "parse_frame"]

#: Agave's notification before the outcome (when asked for; we never ask): it decides nothing.
RECEIVED_SIGNATURE = "receivedSignature"


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to one of our requests (which one is the link's to find)."""

    request_id: Any
    result: Any
    error: Any
    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SignatureNote:
    """A ``signatureNotification`` that is not ``receivedSignature``.

    ``well_formed`` is False for a value or context of an unknown shape; whether that is worth
    counting depends on whether the subscription is ours, which only the session knows.
    """

    subscription: Any
    slot: int
    err: str | None  # compact JSON of the on-chain error
    well_formed: bool


@dataclass(frozen=True, slots=True)
class SlotNote:
    subscription: Any
    slot: int


@dataclass(frozen=True, slots=True)
class Malformed:
    """A frame to drop and count; ``sample`` is what to log."""

    what: str
    sample: Any


@dataclass(frozen=True, slots=True)
class Ignored:
    """A well-formed frame that decides nothing (``receivedSignature``, another method)."""

    what: str


Frame = Reply | SignatureNote | SlotNote | Malformed | Ignored


def parse_frame(frame: str | bytes, max_bytes: int) -> Frame:
    """Read one frame; frames over ``max_bytes`` are not even parsed."""
    if len(frame) > max_bytes:
        return Malformed(f"{len(frame)} bytes, over max_frame_bytes", frame[:200])
    try:
        msg = json.loads(frame)
    except ValueError:  # binary garbage too (UnicodeDecodeError)
        return Malformed("not JSON", frame)
    if type(msg) is not dict:
        return Malformed("not a JSON object", frame)
    method = msg.get("method")
    if method is None:
        if "id" in msg:
            return Reply(msg.get("id"), msg.get("result"), msg.get("error"), msg)
        return Malformed("neither a notification nor a reply", frame)
    params = msg.get("params")
    if type(params) is not dict:
        return Malformed("notification without params", frame)
    if method == "signatureNotification":
        return _signature_note(params, frame)
    if method == "slotNotification":
        result = params.get("result")
        slot = result.get("slot") if type(result) is dict else None
        if type(slot) is not int or slot < 0:
            return Malformed("slotNotification without a slot", frame)
        return SlotNote(params.get("subscription"), slot)
    return Ignored(f"a {method!r:.40} notification")


def _signature_note(params: dict[str, Any], frame: str | bytes) -> Frame:
    result = params.get("result")
    if type(result) is not dict:
        return Malformed("signatureNotification without a result object", frame)
    value = result.get("value")
    if value == RECEIVED_SIGNATURE:
        return Ignored("a receivedSignature notification")
    context = result.get("context")
    slot = context.get("slot") if type(context) is dict else None
    if type(value) is not dict or "err" not in value or type(slot) is not int or slot < 0:
        return SignatureNote(params.get("subscription"), -1, None, well_formed=False)
    err = value["err"]
    return SignatureNote(params.get("subscription"), slot, None if err is None else compact_json(err), True)
