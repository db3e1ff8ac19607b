"""K-of-M recovery authorisations.

Each key holder signs ``recovery_payload(epoch, nonce, timestamp)`` with HMAC-SHA256 under their
own key (``xorj-actors ctl sign-recovery``); the operator submits at least K of them. The payload
names the halt epoch, so an authorisation for one halt cannot recover another; the nonce is
remembered (as its SHA-256 digest, :func:`nonce_digest`: whatever was pasted there is never
stored), so a request cannot be replayed; the timestamp must be recent.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Collection, Mapping, Sequence

from xorj_actors.limits import MIN_KEY_BYTES

__all__ = [
    "RecoveryRefused",
    "RecoveryVerifier",
    "load_recovery_keys",
    "nonce_digest",
    "recovery_payload",
    "sign_recovery",
]

CONTEXT = "xorj-actors/kill-switch/recover/v1"
#: A recovery request older or newer than this (seconds) is refused as stale.
MAX_SKEW_S = 300


class RecoveryRefused(ValueError):
    """A recovery request that does not authorise recovery; the reason says why."""


def nonce_digest(nonce: str) -> str:
    """What is remembered of a used nonce (state file, audit log): its SHA-256, hex."""
    return hashlib.sha256(nonce.encode("utf-8", errors="surrogatepass")).hexdigest()


def recovery_payload(epoch: int, nonce: str, timestamp: int) -> bytes:
    return f"{CONTEXT}\n{epoch}\n{nonce}\n{timestamp}".encode()


def sign_recovery(key: bytes, epoch: int, nonce: str, timestamp: int) -> str:
    """One key holder's authorisation (hex HMAC-SHA256)."""
    return hmac.new(key, recovery_payload(epoch, nonce, timestamp), hashlib.sha256).hexdigest()


def load_recovery_keys(env_names: Sequence[str], environ: Mapping[str, str] | None = None) -> dict[str, bytes]:
    """Read the recovery keys from the environment; key ids are the variable names.

    Keys shorter than MIN_KEY_BYTES are ignored (and reported by the caller as missing).
    """
    env = os.environ if environ is None else environ
    keys = {}
    for name in env_names:
        value = env.get(name)
        if value and len(value.encode()) >= MIN_KEY_BYTES:
            keys[name] = value.encode()
    return keys


class RecoveryVerifier:
    """Checks recovery requests against the configured keys and threshold."""

    def __init__(self, keys: Mapping[str, bytes], threshold: int) -> None:
        self._keys = dict(keys)
        self.threshold = threshold

    @property
    def configured(self) -> int:
        return len(self._keys)

    def verify(
        self,
        *,
        epoch: int,
        nonce: str,
        timestamp: int,
        authorisations: Sequence[tuple[str, str]],
        current_epoch: int,
        used_nonce_digests: Collection[str],
        now: float,
    ) -> tuple[str, ...]:
        """Return the ids of the keys that authorised, or raise RecoveryRefused."""
        if self.configured < self.threshold:
            raise RecoveryRefused(
                f"only {self.configured} recovery keys are configured in the environment; "
                f"{self.threshold} are needed"
            )
        if epoch != current_epoch:
            raise RecoveryRefused(f"authorisations are for epoch {epoch}, the current halt is epoch {current_epoch}")
        if not nonce or len(nonce) > 128:
            raise RecoveryRefused("nonce must be 1 to 128 characters")
        if nonce_digest(nonce) in used_nonce_digests:
            raise RecoveryRefused("nonce already used: replayed request")
        if abs(now - timestamp) > MAX_SKEW_S:
            raise RecoveryRefused(f"timestamp is more than {MAX_SKEW_S} s from now: stale or future request")
        payload = recovery_payload(epoch, nonce, timestamp)
        valid: list[str] = []
        problems: list[str] = []
        for key_id, mac in authorisations:
            key = self._keys.get(key_id)
            if key is None:
                problems.append(f"{key_id}: unknown key")
                continue
            if key_id in valid:
                problems.append(f"{key_id}: duplicate")
                continue
            expected = hmac.new(key, payload, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, mac.lower()):
                problems.append(f"{key_id}: bad signature")
                continue
            valid.append(key_id)
        if len(valid) < self.threshold:
            detail = f" ({'; '.join(problems)})" if problems else ""
            raise RecoveryRefused(f"{len(valid)} valid authorisations, {self.threshold} needed{detail}")
        return tuple(valid)
