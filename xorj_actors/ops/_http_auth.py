"""Authentication of the kill-switch API: HMAC-SHA256 over timestamp, nonce, path and body.

``sign_request`` is the signature, ``signed_headers`` what a client sends, and
:class:`RequestAuthenticator` what the server checks: signature, timestamp window, nonce never
seen before. A request is authenticated only once :meth:`RequestAuthenticator.verify` returns.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

from loguru import logger

from xorj_actors.limits import MIN_KEY_BYTES
from xorj_actors.ops.settings import HttpSettings

__all__ = [
    "NONCE_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "ApiError",
    "ReplayMemory",
    "RequestAuthenticator",
    "LiveKey",
    "live_key",
    "load_key",
    "sign_request",
    "signed_headers",
]

TIMESTAMP_HEADER = "X-Xorj-Timestamp"
NONCE_HEADER = "X-Xorj-Nonce"
SIGNATURE_HEADER = "X-Xorj-Signature"
_NONCE = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
_UNIX_SECONDS = re.compile(r"^[0-9]{1,12}$")
_HEX_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


class ApiError(Exception):
    """A refused request: HTTP status, machine-readable code, human message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def sign_request(key: bytes, timestamp: int, nonce: str, path: str, body: bytes) -> str:
    """Hex HMAC-SHA256 over ``"<timestamp>\\n<nonce>\\n<path>\\n" + body``.

    The path is signed so that a request signed for one endpoint is useless on another.
    """
    return hmac.new(key, f"{timestamp}\n{nonce}\n{path}\n".encode() + body, hashlib.sha256).hexdigest()


def signed_headers(
    key: bytes, path: str, body: bytes, *, timestamp: int | None = None, nonce: str | None = None
) -> dict[str, str]:
    """The three authentication headers (and the JSON content type) for a request."""
    ts = int(time.time()) if timestamp is None else timestamp
    nonce = secrets.token_hex(16) if nonce is None else nonce
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(ts),
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: sign_request(key, ts, nonce, path, body),
    }


class ReplayMemory:
    """The signed requests seen, each until it would be refused as stale anyway (the kill-switch
    API's nonces, Slack's signatures). Bounded: when full, new requests are refused (429) rather
    than forgetting one that could still be replayed. Thread-safe."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._seen: OrderedDict[str, float] = OrderedDict()  # key -> expiry, oldest first
        self._lock = threading.Lock()

    def admit(self, key: str, now: float, until: float, *, replayed: str, busy: str) -> None:
        """Remember ``key`` until ``until``; raise :class:`ApiError` (401 ``replayed`` or 429
        ``busy``, with these messages) if it is remembered already or the memory is full."""
        with self._lock:
            while self._seen and next(iter(self._seen.values())) < now:
                self._seen.popitem(last=False)
            if key in self._seen:
                raise ApiError(401, "replayed", replayed)
            if len(self._seen) >= self._size:
                raise ApiError(429, "busy", busy)
            self._seen[key] = until


class RequestAuthenticator:
    """Checks signature, timestamp window and nonce freshness; remembers nonces it accepted.

    A nonce is remembered for twice the allowed clock skew (after that its timestamp is stale
    anyway). When ``cache_size`` live nonces are remembered, new requests are refused (429)
    rather than forgetting a nonce that could still be replayed.
    """

    def __init__(
        self,
        key: bytes | None | Callable[[], bytes | None],
        key_env: str,
        max_skew_s: float,
        cache_size: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key if callable(key) else (lambda: key)
        #: A rotated key's predecessor, during its grace (:class:`LiveKey`); else never.
        self._previous: Callable[[], bytes | None] = getattr(self._key, "previous", lambda: None)
        self._key_env = key_env
        self._max_skew_s = max_skew_s
        self._clock = clock
        self._nonces = ReplayMemory(cache_size)

    def verify(self, headers: Mapping[str, str], path: str, body: bytes) -> None:
        """Raise :class:`ApiError` unless the request is authentic, fresh and not replayed."""
        key = self._key()  # a callable: ``ctl reload-secrets`` rotates the key
        if key is None:
            raise ApiError(
                503, "auth_unconfigured", f"kill-switch API disabled: {self._key_env} is not set (>= 32 bytes)"
            )
        ts_text = headers.get(TIMESTAMP_HEADER, "")
        nonce = headers.get(NONCE_HEADER, "")
        signature = headers.get(SIGNATURE_HEADER, "")
        if not ts_text or not nonce or not signature:
            required = f"{TIMESTAMP_HEADER}, {NONCE_HEADER} and {SIGNATURE_HEADER} are required"
            raise ApiError(401, "unauthenticated", required)
        if not _UNIX_SECONDS.match(ts_text):
            raise ApiError(401, "bad_timestamp", f"{TIMESTAMP_HEADER} must be Unix seconds")
        if not _NONCE.match(nonce):
            raise ApiError(401, "bad_nonce", f"{NONCE_HEADER} must be 8-128 characters of [A-Za-z0-9._:-]")
        if not _HEX_SHA256.match(signature):
            raise ApiError(401, "bad_signature", f"{SIGNATURE_HEADER} must be 64 hex digits")
        timestamp = int(ts_text)
        now = self._clock()
        if abs(now - timestamp) > self._max_skew_s:
            stale = f"timestamp is more than {self._max_skew_s:g} s from the server's clock"
            raise ApiError(401, "stale_timestamp", stale)
        if not _signed(key, signature, timestamp, nonce, path, body):
            previous = self._previous()
            if previous is None or not _signed(previous, signature, timestamp, nonce, path, body):
                raise ApiError(401, "bad_signature", "signature does not match the request")
            logger.warning("http: a request signed with the previous {} (within its grace after a rotation)", self._key_env)
        self._nonces.admit(
            nonce, now, now + 2 * self._max_skew_s, replayed="nonce already used: replayed request",
            busy="too many signed requests in the replay window; retry later",
        )


def _signed(key: bytes, signature: str, timestamp: int, nonce: str, path: str, body: bytes) -> bool:
    return hmac.compare_digest(sign_request(key, timestamp, nonce, path, body), signature.lower())


class LiveKey:
    """A key read again only when its raw value changed (a short key is reported once).

    After the engine rotated the key itself (``rotated(before, after)`` gives the rotation's
    monotonic time), the previous key stays usable ``grace_s`` from the rotation: clients take the
    new key from the store in their own time. Any other change (an operator's, perhaps after a
    leak) ends the previous key at once.
    """

    def __init__(
        self, read: Callable[[], bytes | None], raw: Callable[[], str], grace_s: float = 0.0,
        rotated: Callable[[str, str], float | None] | None = None, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read, self._raw, self._grace_s, self._clock = read, raw, grace_s, clock
        self._rotated = rotated or (lambda before, after: None)
        self._lock = threading.Lock()
        self._previous: tuple[bytes, float] | None = None  # the key before the change, usable until
        first = raw()  # known from the start: a rotation before the first request has a "before"
        self._last: tuple[str, bytes | None] = (first, read())

    def __call__(self) -> bytes | None:
        value = self._raw()
        with self._lock:
            if self._last[0] != value:
                (before_raw, before), self._last = self._last, (value, self._read())
                at = self._rotated(before_raw, value) if self._grace_s > 0 and before is not None else None
                self._previous = (before, at + self._grace_s) if at is not None and before is not None else None
            return self._last[1]

    def previous(self) -> bytes | None:
        """The key before the latest change, while its grace lasts; else None."""
        self()  # notice a change first
        with self._lock:
            prev = self._previous
        return prev[0] if prev is not None and self._clock() < prev[1] else None


def live_key(read: Callable[[], bytes | None], raw: Callable[[], str]) -> LiveKey:
    """``read`` again only when the raw value changed (a rotation); no grace for the previous one."""
    return LiveKey(read, raw)


def load_key(settings: HttpSettings, environ: Mapping[str, str]) -> bytes | None:
    """The API key from the environment; None (the kill-switch API disabled) if unset or too short."""
    value = environ.get(settings.hmac_key_env, "").encode()
    if len(value) < MIN_KEY_BYTES:
        if value:
            logger.error(
                "http: {} is shorter than {} bytes: kill-switch API disabled", settings.hmac_key_env, MIN_KEY_BYTES
            )
        return None
    return value
