"""Key epochs: the audit HMAC keys a process knows (the current one and the retired ones), their
fingerprints, and the ``KEY_ROTATION`` entry's details (docs/AUDIT.md, "Key epochs").

No storage, no threads. A key never leaves this module's values in text: only fingerprints do.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass

from xorj_actors.audit._chain import EventType, load_hmac_key
from xorj_actors.audit.settings import AuditSettings
from xorj_actors.limits import MIN_KEY_BYTES
from xorj_actors.secrets import current_environ

#: The message a key's fingerprint MACs.
_KEY_ID_MESSAGE = b"xorj-audit-key-id"
#: A fingerprint is the first 12 bytes (24 hex digits) of ``HMAC-SHA256(key, "xorj-audit-key-id")``:
#: enough to tell keys apart, and shorter than the 32 hex digits the log redactor takes for a MAC.
FINGERPRINT_BYTES = 12


class RotationReason(enum.StrEnum):
    """Why a rotation happened (the ``reason`` of its entry)."""

    RELOAD = "reload"
    START_UP = "start-up"
    SCHEDULED = "scheduled"


ROTATION_REASONS = tuple(r.value for r in RotationReason)

KEY_ROTATION = EventType.KEY_ROTATION.value


def fingerprint(key: bytes) -> str:
    """``key``'s id: hex of the first 12 bytes of HMAC-SHA256(key, b"xorj-audit-key-id"). Never the key."""
    return hmac.digest(key, _KEY_ID_MESSAGE, hashlib.sha256)[:FINGERPRINT_BYTES].hex()


def parse_retired(raw: str | None, env_name: str) -> tuple[bytes, ...]:
    """The retired keys in ``raw`` (comma-separated, each at least ``MIN_KEY_BYTES`` bytes).

    Raises:
        ValueError: a part is too short or empty (the message says which, by position, never a value).
    """
    if not raw:
        return ()
    keys = []
    for i, part in enumerate(raw.split(","), 1):
        key = part.strip().encode("utf-8")
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(
                f"retired audit key {i} in {env_name} is too short: need at least {MIN_KEY_BYTES} bytes"
                " (the retired keys are comma-separated; a key cannot contain a comma)"
            )
        keys.append(key)
    return tuple(dict.fromkeys(keys))


def key_problem(key: bytes, env_name: str) -> str | None:
    """Why ``key`` cannot be an audit key (a comma: the retired list could not hold it), or None."""
    if b"," in key:
        return (f"the audit HMAC key in {env_name} contains a comma: the retired keys are a comma-separated list,"
                " so it could never be retired; choose another key")
    if len(key) < MIN_KEY_BYTES:
        return f"the audit HMAC key in {env_name} is too short: need at least {MIN_KEY_BYTES} bytes"
    return None


@dataclass(frozen=True, slots=True, repr=False)
class KeyRing:
    """The keys of every epoch a process knows: ``current`` writes, ``retired`` only verify."""

    current: bytes
    retired: tuple[bytes, ...] = ()

    @property
    def keys(self) -> tuple[bytes, ...]:
        """Every known key, the current one first."""
        return (self.current, *(k for k in self.retired if k != self.current))

    def find(self, fp: str) -> bytes | None:
        """The known key whose fingerprint is ``fp``."""
        return next((k for k in self.keys if hmac.compare_digest(fingerprint(k), fp)), None)

    def verifying(self, hash_hex: str, tag: str) -> bytes | None:
        """The known key under which ``tag`` is the HMAC of ``hash_hex`` (current first), or None."""
        raw = bytes.fromhex(hash_hex)
        return next(
            (k for k in self.keys if hmac.compare_digest(hmac.digest(k, raw, hashlib.sha256).hex(), tag)), None
        )

    def fingerprints(self) -> list[str]:
        """Every known key's fingerprint, the current one first (for messages)."""
        return [fingerprint(k) for k in self.keys]

    def __repr__(self) -> str:  # never the keys
        return f"KeyRing(current={fingerprint(self.current)}, retired={[fingerprint(k) for k in self.retired]})"


def as_ring(keys: bytes | KeyRing) -> KeyRing:
    """A bare key is a ring of one."""
    return keys if isinstance(keys, KeyRing) else KeyRing(keys)


def load_key_ring(settings: AuditSettings, environment: str, environ: Mapping[str, str] | None = None) -> KeyRing:
    """The current audit key (:func:`load_hmac_key`) and the retired ones, from ``environ``
    (default: the process's credential provider's).

    Raises:
        ValueError: the current key is missing (outside development), too short or holds a comma;
            a retired key is too short.
    """
    env = current_environ() if environ is None else environ
    names = (settings.hmac_key_env, settings.retired_hmac_keys_env)
    return _ring(names, env.get(names[0]), env.get(names[1]), environment)


@functools.lru_cache(maxsize=8)
def _ring(names: tuple[str, str], current_raw: str | None, retired_raw: str | None, environment: str) -> KeyRing:
    """The ring of these values, made once (readers ask per use: a rotation changes the values)."""
    current = load_hmac_key(names[0], environment, {names[0]: current_raw} if current_raw else {})
    if b"," in current:
        raise ValueError(key_problem(current, names[0]))
    return KeyRing(current, parse_retired(retired_raw, names[1]))


def rotation_details(old: bytes, new: bytes, reason: str) -> dict[str, str]:
    """The ``details`` of a ``KEY_ROTATION`` entry: the two keys' fingerprints and why."""
    if reason not in ROTATION_REASONS:
        raise ValueError(f"rotation reason: {reason!r} is not one of {', '.join(ROTATION_REASONS)}")
    return {"old_fingerprint": fingerprint(old), "new_fingerprint": fingerprint(new), "reason": reason}


def rotation_target(details: str) -> tuple[str, str]:
    """``(old, new)`` fingerprints a ``KEY_ROTATION`` entry's details name ("" where absent or malformed)."""
    try:
        value = json.loads(details)
    except ValueError:
        return "", ""
    if not isinstance(value, dict):
        return "", ""
    old, new = value.get("old_fingerprint"), value.get("new_fingerprint")
    return (old if isinstance(old, str) else ""), (new if isinstance(new, str) else "")

