"""Limits shared by several packages; this module imports nothing, so every layer may use it."""

from __future__ import annotations

__all__ = ["MIN_KEY_BYTES", "OPERATOR_LIMIT", "REASON_LIMIT"]

#: A halt or flatten reason is cut to this many characters before it is stored or audited.
REASON_LIMIT = 500
#: An operator's name is cut to this many characters before it is audited.
OPERATOR_LIMIT = 100
#: HMAC keys (recovery, audit, HTTP API) and other secrets must carry at least 256 bits.
MIN_KEY_BYTES = 32
