"""K-of-M recovery authorisations.

Each key holder signs ``recovery_payload(epoch, nonce, timestamp)`` with HMAC-SHA256 under their
own key (``xorj-actors ctl sign-recovery``); the operator submits at least K of them. The payload
names the halt epoch, so an authorisation for one halt cannot recover another; the nonce is
remembered (as its SHA-256 digest, :func:`nonce_digest`: whatever was pasted there is never
stored), so a request cannot be replayed; the timestamp must be recent.

A cluster's recovery (docs/CLUSTER.md, "Recovery") is signed once for the whole cluster:
``cluster_recovery_payload(cluster_epoch, nonce_sha256, timestamp)`` names the cluster halt epoch
(shared by every node, unlike the local epochs) and the nonce's digest, so the proof a node
publishes in NATS (:class:`ClusterProof`) carries no pasted nonce, and every node checks the same
bytes with its own copy of the keys.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Collection, Mapping, Sequence

from xorj_actors.limits import MIN_KEY_BYTES

__all__ = [
    "CLUSTER_CONTEXT",
    "RecoveryRefused",
    "RecoveryVerifier",
    "load_recovery_keys",
    "nonce_digest",
    "cluster_recovery_payload",
    "recovery_payload",
    "sign_cluster_recovery",
    "sign_recovery",
]

CONTEXT = "xorj-actors/kill-switch/recover/v1"
#: Another context: an authorisation of a local halt is never one of a cluster halt, nor back.
CLUSTER_CONTEXT = "xorj-actors/cluster/recover/v1"
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


def cluster_recovery_payload(cluster_epoch: int, nonce_sha256: str, timestamp: int) -> bytes:
    """What every key holder signs to recover a cluster from halt ``cluster_epoch``."""
    return f"{CLUSTER_CONTEXT}\n{cluster_epoch}\n{nonce_sha256}\n{timestamp}".encode()


def sign_cluster_recovery(key: bytes, cluster_epoch: int, nonce: str, timestamp: int) -> str:
    """One key holder's authorisation of a cluster recovery (hex HMAC-SHA256)."""
    payload = cluster_recovery_payload(cluster_epoch, nonce_digest(nonce), timestamp)
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


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
        self._configured()
        if epoch != current_epoch:
            raise RecoveryRefused(f"authorisations are for epoch {epoch}, the current halt is epoch {current_epoch}")
        if not nonce or len(nonce) > 128:
            raise RecoveryRefused("nonce must be 1 to 128 characters")
        self._fresh(nonce_digest(nonce), timestamp, used_nonce_digests, now)
        return self._signers(recovery_payload(epoch, nonce, timestamp), authorisations)

    def verify_cluster(
        self,
        *,
        cluster_epoch: int,
        nonce_sha256: str,
        timestamp: int,
        authorisations: Sequence[tuple[str, str]],
        halted_epoch: int,
        used_nonce_digests: Collection[str],
        now: float,
    ) -> tuple[str, ...]:
        """The same rules for a cluster recovery, checked by the node it is given to and by every
        node that follows it: K valid HMACs over :func:`cluster_recovery_payload` of the cluster
        halt this node is in (``halted_epoch``), a nonce digest this node has not used, a recent
        timestamp. Return the ids of the keys that authorised, or raise RecoveryRefused."""
        self._configured()
        if cluster_epoch != halted_epoch:
            raise RecoveryRefused(
                f"authorisations are for cluster halt epoch {cluster_epoch}, this node is in cluster halt epoch {halted_epoch}"
            )
        if not _is_digest(nonce_sha256):
            raise RecoveryRefused("the nonce digest is not a SHA-256 hex digest")
        self._fresh(nonce_sha256, timestamp, used_nonce_digests, now)
        return self._signers(cluster_recovery_payload(cluster_epoch, nonce_sha256, timestamp), authorisations)

    def _configured(self) -> None:
        if self.configured < self.threshold:
            raise RecoveryRefused(
                f"only {self.configured} recovery keys are configured in the environment; "
                f"{self.threshold} are needed"
            )

    @staticmethod
    def _fresh(digest: str, timestamp: int, used_nonce_digests: Collection[str], now: float) -> None:
        if digest in used_nonce_digests:
            raise RecoveryRefused("nonce already used: replayed request")
        if abs(now - timestamp) > MAX_SKEW_S:
            raise RecoveryRefused(f"timestamp is more than {MAX_SKEW_S} s from now: stale or future request")

    def _signers(self, payload: bytes, authorisations: Sequence[tuple[str, str]]) -> tuple[str, ...]:
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
            # compare_digest raises on non-ASCII text: such a value is just a bad signature.
            if not mac.isascii() or not hmac.compare_digest(expected, mac.lower()):
                problems.append(f"{key_id}: bad signature")
                continue
            valid.append(key_id)
        if len(valid) < self.threshold:
            detail = f" ({'; '.join(problems)})" if problems else ""
            raise RecoveryRefused(f"{len(valid)} valid authorisations, {self.threshold} needed{detail}")
        return tuple(valid)


def _is_digest(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)
