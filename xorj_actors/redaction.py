"""Log redaction: masks secret values and labelled hex MACs in text.

Below every layer that logs or audits (engine, ops): it imports nothing from ``xorj_actors``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["MASK", "Redactor"]

MASK = "***"
#: Environment variables whose names look like this are secrets even if no config names them.
_SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASSWD|HMAC|CREDENTIAL", re.IGNORECASE)
#: A hex MAC or key after a label: ``hmac=ab12...``, ``"signature": "ab12..."``, ``key ab12...``.
_LABELLED_HEX = re.compile(
    r"((?:hmac|signature|key)\w*['\"]?\s*[:=]?\s*['\"]?)([0-9a-fA-F]{32,})", re.IGNORECASE
)
#: Shorter values are not masked (masking "1" or "true" everywhere would hide everything).
_MIN_SECRET_CHARS = 8


class Redactor:
    """Masks secret values and labelled hex MACs in text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        values = sorted({s for s in secrets if len(s) >= _MIN_SECRET_CHARS}, key=len, reverse=True)
        self._values = re.compile("|".join(map(re.escape, values))) if values else None

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
