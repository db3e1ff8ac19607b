"""The block engine's answers, parsed strictly, and its refusals as values.

Shapes as Jito documents them (jito-labs/jito-docs ``docs/source/lowlatencytxnsend.md``,
docs.jito.wtf "Low Latency Transaction Send"): JSON-RPC 2.0 envelopes; ``getBundleStatuses``
and ``getInflightBundleStatuses`` answer ``{"context": {"slot"}, "value": [...]}``. The bundle
status's confirmation is documented as ``confirmationStatus`` and returned as
``confirmation_status``: both are accepted, both at once are refused.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from solders.pubkey import Pubkey
from solders.signature import Signature

from xorj_actors.jito.settings import TipPercentile
from xorj_actors.remote_answers import MalformedAnswer, trim

__all__ = [
    "BlockEngineRefused",
    "BundleStatus",
    "InflightStatus",
    "InflightBundle",
    "MalformedAnswer",
    "Refusal",
    "RefusalReason",
    "TipFloor",
    "parse_bundle_statuses",
    "parse_inflight_statuses",
    "parse_tip_accounts",
    "parse_tip_floor",
    "refusal_from_answer",
]

#: Bundle ids a status request may name, and transactions a bundle may hold (Jito's limits).
MAX_IDS = 5
_U64_MAX = 2**64 - 1
_LAMPORTS_PER_SOL = 10**9
Confirmation = Literal["processed", "confirmed", "finalized"]


class RefusalReason(enum.StrEnum):
    """Why the block engine said no, in the engine's terms."""

    #: HTTP 429: over Jito's rate limit (``retry_after_s`` when it said how long).
    RATE_LIMITED = "rate_limited"
    #: Our request was wrong (HTTP 400, JSON-RPC -32600/-32601/-32602).
    BAD_REQUEST = "bad_request"
    #: The engine refused this bundle or transaction (any other JSON-RPC error: simulation
    #: failed, already processed, ``jitodontfront`` not first, tip too low ...).
    REJECTED = "rejected"
    #: 5xx or an answer we cannot place: try again later.
    SERVER_ERROR = "server_error"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A block engine's no, as a value."""

    method: str
    reason: RefusalReason
    #: The JSON-RPC error code, ``None`` when the answer carried none.
    code: int | None
    message: str
    http_status: int | None = None
    retry_after_s: float | None = None

    def __str__(self) -> str:
        code = f" {self.code}" if self.code is not None else ""
        status = f" (HTTP {self.http_status})" if self.http_status is not None else ""
        return f"{self.method}: {self.reason.value}{code}{status}: {self.message}"


class BlockEngineRefused(Exception):
    """Raised by the client when the block engine refuses; ``refusal`` says why."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal


def refusal_from_answer(method: str, status: int, answer: Any, *, retry_after_s: float | None = None) -> Refusal:
    """The refusal an error answer means (``answer``: the parsed body, or raw text if not JSON)."""
    error = answer.get("error") if isinstance(answer, Mapping) else None
    code: int | None = None
    message = answer if isinstance(answer, str) else ""
    if isinstance(error, Mapping):
        raw_code = error.get("code")
        code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
        raw_message = error.get("message", "")
        message = raw_message if isinstance(raw_message, str) else str(raw_message)
    elif isinstance(error, str):
        message = error
    if status == 429:
        reason = RefusalReason.RATE_LIMITED
    elif status >= 500:
        reason = RefusalReason.SERVER_ERROR
    elif code in (-32600, -32601, -32602) or (status == 400 and code is None):
        reason = RefusalReason.BAD_REQUEST
    elif code is not None:
        reason = RefusalReason.REJECTED
    else:
        reason = RefusalReason.SERVER_ERROR if status == 200 else RefusalReason.BAD_REQUEST
    return Refusal(method, reason, code, trim(message), http_status=status, retry_after_s=retry_after_s)


# --- fields -------------------------------------------------------------------------------


def _object(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedAnswer(field, f"expected an object, got {type(value).__name__}")
    return value


def _list(value: Any, field: str) -> Sequence[Any]:
    if not isinstance(value, list):
        raise MalformedAnswer(field, f"expected an array, got {type(value).__name__}")
    return value


def _u64(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _U64_MAX:
        raise MalformedAnswer(field, f"expected a u64, got {value!r}")
    return value


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 128:
        raise MalformedAnswer(field, f"expected a non-empty string, got {value!r}")
    return value


def _statuses(result: Any, asked: Sequence[str]) -> tuple[int, list[tuple[str, str, Mapping[str, Any]]]]:
    """A status answer's ``(context slot, [(field, bundle id, item)])``: null items skipped,
    every id one we asked, none twice."""
    body = _object(result, "result")
    context = _object(body.get("context"), "result.context")
    value = body.get("value")
    items: list[tuple[str, str, Mapping[str, Any]]] = []
    for i, item in enumerate(_list(value, "result.value") if value is not None else ()):
        if item is None:
            continue
        field = f"result.value[{i}]"
        item = _object(item, field)
        bundle_id = _text(item.get("bundle_id"), f"{field}.bundle_id")
        if bundle_id not in asked or any(bundle_id == seen for _, seen, _ in items):
            raise MalformedAnswer(f"{field}.bundle_id", f"{bundle_id} was not asked, or is answered twice")
        items.append((field, bundle_id, item))
    return _u64(context.get("slot"), "result.context.slot"), items


# --- answers ------------------------------------------------------------------------------


def parse_tip_accounts(result: Any) -> tuple[Pubkey, ...]:
    """``getTipAccounts``' ``result``: distinct base58 keys, at least one."""
    keys: list[Pubkey] = []
    for i, item in enumerate(_list(result, "result")):
        try:
            keys.append(Pubkey.from_string(_text(item, f"result[{i}]")))
        except ValueError as exc:
            if isinstance(exc, MalformedAnswer):
                raise
            raise MalformedAnswer(f"result[{i}]", f"not a base58 public key: {item!r}") from None
    if not keys:
        raise MalformedAnswer("result", "no tip accounts")
    if len(set(keys)) != len(keys):
        raise MalformedAnswer("result", "a tip account is listed twice")
    return tuple(keys)


@dataclass(frozen=True, slots=True)
class BundleStatus:
    """One landed bundle of ``getBundleStatuses``."""

    bundle_id: str
    signatures: tuple[Signature, ...]
    slot: int
    confirmation: Confirmation
    #: ``None`` for ``{"Ok": null}``; otherwise the error object as the engine gave it.
    err: Any


def _confirmation(item: Mapping[str, Any], field: str) -> Confirmation:
    names = [k for k in ("confirmation_status", "confirmationStatus") if k in item]
    if len(names) != 1:
        raise MalformedAnswer(f"{field}.confirmation_status", "expected exactly one of confirmation_status, confirmationStatus")
    value = item[names[0]]
    if value not in ("processed", "confirmed", "finalized"):
        raise MalformedAnswer(f"{field}.{names[0]}", f"unknown confirmation {value!r}")
    return value  # type: ignore[no-any-return]


def parse_bundle_statuses(result: Any, asked: Sequence[str]) -> tuple[int, dict[str, BundleStatus]]:
    """``getBundleStatuses``' ``result``: ``(context slot, {bundle id: status})`` for the bundles
    found (a bundle not found or not landed is ``null`` or absent). Every id must be one asked."""
    slot, items = _statuses(result, asked)
    found: dict[str, BundleStatus] = {}
    for field, bundle_id, item in items:
        try:
            sigs = tuple(Signature.from_string(s) for s in _list(item.get("transactions"), f"{field}.transactions"))
        except (ValueError, TypeError):
            raise MalformedAnswer(f"{field}.transactions", "expected base58 signatures") from None
        if not sigs:
            raise MalformedAnswer(f"{field}.transactions", "empty")
        err = item.get("err")
        if isinstance(err, Mapping) and list(err) == ["Ok"] and err["Ok"] is None:
            err = None
        found[bundle_id] = BundleStatus(bundle_id, sigs, _u64(item.get("slot"), f"{field}.slot"), _confirmation(item, field), err)
    return slot, found


class InflightStatus(enum.StrEnum):
    """``getInflightBundleStatuses``' ``status`` (a five-minute look back)."""

    #: Not in the engine's system (unknown, or older than five minutes).
    INVALID = "Invalid"
    #: Not failed, not landed, not invalid.
    PENDING = "Pending"
    #: Every region that received it marked it failed; it was not forwarded.
    FAILED = "Failed"
    LANDED = "Landed"


@dataclass(frozen=True, slots=True)
class InflightBundle:
    bundle_id: str
    status: InflightStatus
    #: The slot it landed in; ``None`` unless ``status`` is Landed.
    landed_slot: int | None


def parse_inflight_statuses(result: Any, asked: Sequence[str]) -> tuple[int, dict[str, InflightBundle]]:
    """``getInflightBundleStatuses``' ``result``: ``(context slot, {bundle id: status})``."""
    slot, items = _statuses(result, asked)
    found: dict[str, InflightBundle] = {}
    for field, bundle_id, item in items:
        try:
            status = InflightStatus(item.get("status"))
        except ValueError:
            raise MalformedAnswer(f"{field}.status", f"unknown status {item.get('status')!r}") from None
        landed = item.get("landed_slot")
        landed_slot = None if landed is None else _u64(landed, f"{field}.landed_slot")
        if (status is InflightStatus.LANDED) != (landed_slot is not None):
            raise MalformedAnswer(f"{field}.landed_slot", f"{landed!r} with status {status.value}")
        found[bundle_id] = InflightBundle(bundle_id, status, landed_slot)
    return slot, found


@dataclass(frozen=True, slots=True)
class TipFloor:
    """The tip floor: recently landed tips, in lamports (the API gives SOL)."""

    time: str
    lamports: Mapping[TipPercentile, int]

    def at(self, percentile: TipPercentile) -> int:
        return self.lamports[percentile]


_FLOOR_FIELDS = {
    TipPercentile.P25: "landed_tips_25th_percentile",
    TipPercentile.P50: "landed_tips_50th_percentile",
    TipPercentile.P75: "landed_tips_75th_percentile",
    TipPercentile.P95: "landed_tips_95th_percentile",
    TipPercentile.P99: "landed_tips_99th_percentile",
    TipPercentile.EMA50: "ema_landed_tips_50th_percentile",
}


def _sol_to_lamports(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or not 0 <= value <= 1e6:
        raise MalformedAnswer(field, f"expected SOL between 0 and 1e6, got {value!r}")
    # To the nearest lamport, through the shortest decimal text: the API's floats carry noise
    # (6.001000000000001e-06 SOL is 6001 lamports, not 6002).
    return int((Decimal(repr(value)) * _LAMPORTS_PER_SOL).to_integral_value(rounding=ROUND_HALF_UP))


def parse_tip_floor(answer: Any) -> TipFloor:
    """``GET /api/v1/bundles/tip_floor``: an array of one snapshot (the newest is first)."""
    items = _list(answer, "tip_floor")
    if not items:
        raise MalformedAnswer("tip_floor", "empty")
    item = _object(items[0], "tip_floor[0]")
    lamports = {p: _sol_to_lamports(item.get(name), f"tip_floor[0].{name}") for p, name in _FLOOR_FIELDS.items()}
    return TipFloor(_text(item.get("time"), "tip_floor[0].time"), lamports)
