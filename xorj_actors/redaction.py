"""Log redaction: masks secret values and labelled hex MACs in text.

Below every layer that logs or audits (engine, ops): it imports nothing from ``xorj_actors``.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["MASK", "Redactor", "redact_url", "url_secrets"]

MASK = "***"
#: Environment variables whose names look like this are secrets even if no config names them.
_SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASSWD|HMAC|CREDENTIAL", re.IGNORECASE)
#: A hex MAC or key after a label: ``hmac=ab12...``, ``"signature": "ab12..."``, ``key ab12...``.
_LABELLED_HEX = re.compile(
    r"((?:hmac|signature|key)\w*['\"]?\s*[:=]?\s*['\"]?)([0-9a-fA-F]{32,})", re.IGNORECASE
)
#: A URL path segment that looks like a credential: QuickNode puts its token in the path
#: (``https://x.quiknode.pro/<token>/``), others a key of 20 or more word characters.
_TOKEN_SEGMENT = re.compile(r"[A-Za-z0-9_\-]{20,}")
#: Shorter values are not masked (masking "1" or "true" everywhere would hide everything).
_MIN_SECRET_CHARS = 8


class Redactor:
    """Masks secret values and labelled hex MACs in text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets: frozenset[str] = frozenset()
        self._values: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Mask these values too (rotated credentials: the old values stay masked as well).

        A value that is a comma-separated list (the retired audit keys) is masked whole and
        each of its parts on its own, stripped as the list's parser strips it ("OLD, NEW" is
        documented): a part may show up alone (a retired key was a current one).
        """
        parts = {p for s in secrets for p in {s, *(q.strip() for q in s.split(","))}}
        known = self._secrets | {p for p in parts if len(p) >= _MIN_SECRET_CHARS}
        values = sorted(known, key=len, reverse=True)
        # One assignment: a thread redacting meanwhile uses the old pattern or the new, never half.
        self._values = re.compile("|".join(map(re.escape, values))) if values else None
        self._secrets = known

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], names: Iterable[str] = ()) -> Redactor:
        """The values of ``names`` and of every variable whose name looks like a secret's."""
        wanted = set(names)
        return cls(v for k, v in environ.items() if k in wanted or _SECRET_NAME.search(k))

    def __call__(self, text: str) -> str:
        if self._values is not None:
            text = self._values.sub(MASK, text)
        return _LABELLED_HEX.sub(lambda m: m.group(1) + MASK, text)

    def deep(self, value: Any) -> Any:
        """Redact every string inside JSON-like data."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {self(str(k)): self.deep(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.deep(v) for v in value]
        if value is None or isinstance(value, bool | int | float):
            return value
        return self(repr(value))


def redact_url(url: str) -> str:
    """``url`` with what may be a credential masked, for logs, ``check`` and error text.

    RPC providers put API keys in the query (``?api-key=``), in the path, or as user info
    (``nats://user:password@host``). The scheme, host, port and short path segments stay, so an
    operator still sees which endpoint is meant.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return MASK  # not a URL we can take apart: show nothing of it
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{port}" if port is not None else "")
    if parts.username is not None or parts.password is not None:
        netloc = f"{MASK}@{netloc}"
    path = "/".join(MASK if _TOKEN_SEGMENT.fullmatch(seg) else seg for seg in parts.path.split("/"))
    query = "&".join(
        f"{name}={MASK}" if value else name
        for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    )
    return urllib.parse.urlunsplit((parts.scheme, netloc, path, query, ""))


def url_secrets(url: str) -> list[str]:
    """The parts of ``url`` that :func:`redact_url` masks, to mask them in error text too."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return [url]
    found = [v for v in (parts.username, parts.password) if v]
    found += [seg for seg in parts.path.split("/") if _TOKEN_SEGMENT.fullmatch(seg)]
    found += [v for _, v in urllib.parse.parse_qsl(parts.query) if v]
    return found
