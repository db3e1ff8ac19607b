"""Entry values, canonical JSON and the hash/HMAC chain (no storage, no threads)."""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import math
import os
import time
from collections.abc import Container, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any

from loguru import logger

from xorj_actors.audit.settings import DEFAULT_CHAIN
from xorj_actors.limits import MIN_KEY_BYTES
from xorj_actors.secrets import current_environ

GENESIS_HASH = "0" * 64
_DEV_KEY = b"xorj-development-audit-key--NOT-FOR-PRODUCTION--"


class EventType(str, enum.Enum):
    """What an entry records."""

    TRADE_INTENT = "TRADE_INTENT"
    TRADE_EXECUTION = "TRADE_EXECUTION"
    TRADE_CONFIRMATION = "TRADE_CONFIRMATION"
    SECURITY_VIOLATION = "SECURITY_VIOLATION"
    SYSTEM_EVENT = "SYSTEM_EVENT"
    ERROR_EVENT = "ERROR_EVENT"
    KEY_OPERATION = "KEY_OPERATION"
    HALT = "HALT"
    RECOVERY = "RECOVERY"
    CONFIG_CHANGE = "CONFIG_CHANGE"
    #: The block engine's word on a bundle we sent (a route's report, never a trade's outcome).
    JITO_BUNDLE = "JITO_BUNDLE"
    #: The audit HMAC key changed: MACed under the old key, names the new key's id; every entry
    #: after it is MACed under the new key (docs/AUDIT.md, "Key epochs").
    KEY_ROTATION = "KEY_ROTATION"


class Severity(str, enum.Enum):
    """How much an entry matters to an operator."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


class CanonicalJSONError(ValueError):
    """A value that has no canonical JSON form (NaN, Infinity, non-JSON types, non-str keys)."""


class _NoJSON(Exception):
    """Internal: where (built while unwinding, so the happy path formats no paths) and why."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.where: list[str] = []


def _normalise(value: Any) -> Any:
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return value
    if t is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                if not isinstance(key, str):
                    raise _NoJSON(f"key {key!r} is not a string")
                key = str.__str__(key)
            try:
                out[key] = _normalise(item)
            except _NoJSON as exc:
                exc.where.append(f".{key}")
                raise
        return out
    if t is list or t is tuple:
        items = []
        for i, item in enumerate(value):
            try:
                items.append(_normalise(item))
            except _NoJSON as exc:
                exc.where.append(f"[{i}]")
                raise
        return items
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _NoJSON(f"{value!r} has no JSON form")
        return float(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise _NoJSON(f"{value!r} has no JSON form")
        return str(value)
    # Subclasses (str/int enums, OrderedDict, ...) take the slow path as their plain base type.
    if isinstance(value, str):
        return str.__str__(value)  # the text itself; str() of a str enum is "Side.BUY"
    if isinstance(value, int):
        return int(value)
    if isinstance(value, dict):
        return _normalise(dict(value))
    if isinstance(value, list | tuple):
        return _normalise(list(value))
    raise _NoJSON(f"{type(value).__name__} is not a JSON type")


def canonical_json(value: Any) -> str:
    """Canonical JSON text: sorted keys, no whitespace, non-ASCII kept as is (UTF-8 on the wire).

    Decimals become strings; NaN, Infinity and anything that is not a JSON type raise
    :class:`CanonicalJSONError`, naming where in the value it was found.
    """
    try:
        plain = _normalise(value)
    except _NoJSON as exc:
        raise CanonicalJSONError(f"details{''.join(reversed(exc.where))}: {exc.problem}") from None
    return json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class CanonicalDetails:
    """``details`` already serialised by :func:`canonical_json`: the log stores ``text`` as is."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def entry_bytes(
    entry_id: str,
    sequence: int,
    timestamp: str,
    event_type: str,
    severity: str,
    actor: str,
    correlation_id: str | None,
    details: str,
) -> bytes:
    """The canonical entry that is hashed: a canonical JSON object, UTF-8 encoded.

    ``details`` is already canonical JSON text and is embedded verbatim; the keys are written in
    sorted order, so the whole object is canonical without re-serialising it (one f-string:
    verify calls this a million times).
    """
    corr = "null" if correlation_id is None else encode_basestring(correlation_id)
    return (
        f'{{"actor":{encode_basestring(actor)},"correlation_id":{corr},"details":{details},'
        f'"event_type":{encode_basestring(event_type)},"id":{encode_basestring(entry_id)},'
        f'"sequence":{sequence},"severity":{encode_basestring(severity)},'
        f'"timestamp":{encode_basestring(timestamp)}}}'
    ).encode("utf-8")


def chain_hash(prev_hash: str, canonical: bytes) -> str:
    """SHA-256 over the 32 raw bytes of the previous hash followed by the canonical entry, as hex."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical).hexdigest()


def chain_hmac(key: bytes, current_hash: str) -> str:
    """HMAC-SHA256 with the audit key over the 32 raw bytes of the current hash, as hex."""
    return hmac.digest(key, bytes.fromhex(current_hash), hashlib.sha256).hex()


def genesis_hash(chain: str) -> str:
    """The ``prev_hash`` of a chain's first entry: 64 zeros for the default chain (as ever), else
    SHA-256 of ``xorj-audit-chain\0<name>``. So every entry is bound to its chain's name: rows
    moved into another chain's table do not verify there, even with the HMAC key unknown.
    """
    if chain == DEFAULT_CHAIN:
        return GENESIS_HASH
    return hashlib.sha256(b"xorj-audit-chain\0" + chain.encode("utf-8")).hexdigest()


#: SHA-256's block size, and RFC 2104's pads as byte translations of the block-sized key.
_BLOCK = 64
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


@dataclass(frozen=True, slots=True)
class HmacPads:
    """HMAC-SHA256 keyed once: the SHA-256 states after the inner and the outer padded key
    (RFC 2104; what :mod:`hmac` computes). ``copy()`` of a state is one C call, where copying an
    :class:`hmac.HMAC` runs several Python frames: the hot path of the writer and of verify.
    """

    inner: Any
    outer: Any


def hmac_template(key: bytes) -> HmacPads:
    """``key``'s HMAC-SHA256 pads, computed once, for :func:`chain_step`."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return HmacPads(hashlib.sha256(key.translate(_IPAD)), hashlib.sha256(key.translate(_OPAD)))


def chain_step(pads: HmacPads, prev_raw: bytes, canonical: bytes) -> tuple[bytes, str, str]:
    """One link: (raw hash, hex hash, hex HMAC) as :func:`chain_hash` and :func:`chain_hmac`
    define them, on raw digests; the hot path of both the writer and verify.
    """
    raw = hashlib.sha256(prev_raw + canonical).digest()
    inner = pads.inner.copy()
    inner.update(raw)
    outer = pads.outer.copy()
    outer.update(inner.digest())
    return raw, raw.hex(), outer.hexdigest()


_KEY_ROTATION = EventType.KEY_ROTATION.value


def link_rows(
    rows: Iterator[tuple], pads: HmacPads, expected: int, prev_hex: str, stops: Container[int]
) -> tuple[int, str, tuple | None, bool]:
    """Walk raw rows (``COLUMNS`` order) while each continues the chain: the next sequence,
    ``prev_hash`` the last hash, and hash and HMAC recomputing to the stored ones.

    Returns ``(expected, prev_hex, row, linked)``: the sequence the next row must have and the
    last linked hash, and the row that ended the walk: ``None`` when the rows ran out; a row that
    links but whose sequence is in ``stops`` or that is a ``KEY_ROTATION`` entry (``linked``,
    already counted); or the first row
    that does not link (not ``linked``). verify's hot loop: :func:`entry_bytes` and
    :func:`chain_step` inlined, every name local (a call costs ~0.1 us, a row ~1.5 us).
    """
    eb = encode_basestring
    sha256 = hashlib.sha256
    inner, outer = pads.inner.copy, pads.outer.copy
    prev_raw = bytes.fromhex(prev_hex)
    for row in rows:
        entry_id, seq, ts, etype, sev, actor, corr, details, prev, stored, tag = row
        # Exactly entry_bytes(): the f-string must stay byte-identical (tests/audit pin it).
        raw = sha256(prev_raw + (
            f'{{"actor":{eb(actor)},"correlation_id":{"null" if corr is None else eb(corr)},"details":{details},'
            f'"event_type":{eb(etype)},"id":{eb(entry_id)},"sequence":{seq},"severity":{eb(sev)},'
            f'"timestamp":{eb(ts)}}}'
        ).encode("utf-8")).digest()
        mac = inner()
        mac.update(raw)
        out = outer()
        out.update(mac.digest())
        h = raw.hex()
        if seq != expected or prev != prev_hex or h != stored or out.hexdigest() != tag:
            return expected, prev_hex, row, False
        expected += 1
        prev_hex, prev_raw = h, raw
        if seq in stops or etype == _KEY_ROTATION:  # a key epoch ends there: the caller switches keys
            return expected, prev_hex, row, True
    return expected, prev_hex, None, False


def new_entry_id() -> str:
    """A UUIDv7 (RFC 9562): time-ordered, so the unique index on ids is appended to, not scattered."""
    ms = time.time_ns() // 1_000_000
    b = bytearray(ms.to_bytes(6, "big") + os.urandom(10))
    b[6] = (b[6] & 0x0F) | 0x70
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


#: An entry's ``timestamp``: fixed width, so text order is time order.
_TIMESTAMP = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc_timestamp(now: datetime | None = None) -> str:
    """UTC time as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (fixed width, so text order is time order)."""
    now = now or datetime.now(timezone.utc)
    return now.astimezone(timezone.utc).strftime(_TIMESTAMP)


def parse_utc_timestamp(timestamp: str) -> datetime:
    """An entry's ``timestamp`` (:func:`utc_timestamp`'s form) as an aware UTC datetime.

    Raises:
        ValueError: not that form.
    """
    return datetime.strptime(timestamp, _TIMESTAMP).replace(tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One committed entry of the log, exactly as stored."""

    id: str
    sequence: int
    timestamp: str
    event_type: str
    severity: str
    actor: str
    correlation_id: str | None
    details: str
    prev_hash: str
    hash: str
    hmac: str

    def row(self) -> tuple:
        """The stored columns, in field order."""
        return (
            self.id, self.sequence, self.timestamp, self.event_type, self.severity, self.actor,
            self.correlation_id, self.details, self.prev_hash, self.hash, self.hmac,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``details`` is decoded."""
        return {
            "id": self.id,
            "sequence": self.sequence,
            "timestamp": self.timestamp,
            "event_type": self.event_type,
            "severity": self.severity,
            "actor": self.actor,
            "correlation_id": self.correlation_id,
            "details": json.loads(self.details),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
            "hmac": self.hmac,
        }


def load_hmac_key(env_name: str, environment: str, environ: Mapping[str, str] | None = None) -> bytes:
    """The audit HMAC key named ``env_name`` (UTF-8, at least 32 bytes), from ``environ`` (default:
    the process's credential provider's, ``[secrets]``, else ``os.environ``).

    When it is unset, ``environment == "development"`` gets a fixed development key with a loud
    warning; any other environment gets a :class:`ValueError`.
    """
    raw = (current_environ() if environ is None else environ).get(env_name)
    if not raw:
        if environment != "development":
            raise ValueError(f"audit HMAC key missing: set the environment variable {env_name}")
        logger.warning(
            "AUDIT HMAC KEY {} IS NOT SET: using the fixed DEVELOPMENT key; this log proves nothing",
            env_name,
        )
        return _DEV_KEY
    key = raw.encode("utf-8")
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"audit HMAC key in {env_name} is too short: need at least {MIN_KEY_BYTES} bytes")
    return key
