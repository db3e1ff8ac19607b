"""Field readers: strict for what decides money, tolerant for the rest.

Strict readers raise :class:`MalformedAnswer` naming the field; tolerant ones return ``None``
for a missing, null or odd value. Amounts are u64 in decimal strings (Jupiter sends every token
amount as a string: ``"inAmount": "100000000"``), mints base58 public keys.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from solders.pubkey import Pubkey

from xorj_actors.jupiter._errors import MalformedAnswer

__all__ = [
    "BPS_MAX",
    "U64_MAX",
    "amount",
    "base64_bytes",
    "bps",
    "checked_pubkey",
    "decimal_string",
    "mapping",
    "opt_amount",
    "opt_float",
    "opt_int",
    "opt_pubkey",
    "opt_str",
    "pubkey",
    "pubkey_of",
    "seq",
]

U64_MAX = 2**64 - 1
#: Basis points: 10,000 is 100 %.
BPS_MAX = 10_000
_DIGITS = re.compile(r"[0-9]{1,20}")


def _name(prefix: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else key


def mapping(value: Any, field: str) -> Mapping[str, Any]:
    """``value`` as a JSON object, or refused."""
    if not isinstance(value, Mapping):
        raise MalformedAnswer(field, f"expected an object, got {type(value).__name__}")
    return value


def seq(obj: Mapping[str, Any], key: str, prefix: str = "", *, required: bool = True) -> list[Any]:
    """A JSON array; a missing key is an empty list unless ``required``; null is refused."""
    if key not in obj:
        if required:
            raise MalformedAnswer(_name(prefix, key), "missing")
        return []
    value = obj[key]
    if not isinstance(value, list):
        raise MalformedAnswer(_name(prefix, key), f"expected a list, got {type(value).__name__}")
    return value


def amount(obj: Mapping[str, Any], key: str, prefix: str = "") -> int:
    """A u64 amount from its decimal string (strict: not a number, not a float, not negative)."""
    name = _name(prefix, key)
    if key not in obj:
        raise MalformedAnswer(name, "missing")
    value = obj[key]
    if not isinstance(value, str) or not _DIGITS.fullmatch(value):
        raise MalformedAnswer(name, f"expected a decimal string of an unsigned integer, got {value!r:.40}")
    number = int(value)
    if number > U64_MAX:
        raise MalformedAnswer(name, "exceeds u64")
    return number


def opt_amount(obj: Mapping[str, Any], key: str, prefix: str = "") -> int | None:
    """Like :func:`amount`, but a missing or null field is ``None`` (present means strict)."""
    if obj.get(key) is None:
        return None
    return amount(obj, key, prefix)


#: Spellings already checked canonical, and their keys: programs, mints, pools and vault accounts
#: recur in every route. Pubkeys are immutable values; the dict is emptied when full.
_CHECKED: dict[str, Pubkey] = {}
_CHECKED_MAX = 4096


def pubkey_of(value: Any, name: str) -> Pubkey:
    """``value`` as a base58 public key, strictly; ``name`` names the field in the error."""
    if not isinstance(value, str):
        raise MalformedAnswer(name, f"expected a base58 key, got {value!r:.40}")
    key = _CHECKED.get(value)
    if key is not None:
        return key
    try:
        key = Pubkey.from_string(value)
    except ValueError:
        raise MalformedAnswer(name, f"not a base58 public key: {value!r:.60}") from None
    if str(key) != value:  # one spelling only: no leading-zero or padding variants
        raise MalformedAnswer(name, f"not a canonical base58 public key: {value!r:.60}")
    if len(_CHECKED) >= _CHECKED_MAX:
        _CHECKED.clear()
    _CHECKED[value] = key
    return key


def checked_pubkey(value: Any) -> Pubkey | None:
    """The key of a spelling :func:`pubkey_of` has already accepted; None: not (yet) known."""
    return _CHECKED.get(value) if type(value) is str else None


def pubkey(obj: Mapping[str, Any], key: str, prefix: str = "") -> Pubkey:
    """A base58 public key (a mint, a program id), strictly."""
    if key not in obj:
        raise MalformedAnswer(_name(prefix, key), "missing")
    return pubkey_of(obj[key], _name(prefix, key))


def opt_pubkey(obj: Mapping[str, Any], key: str) -> Pubkey | None:
    """A public key where one is informative: anything but a valid key is ``None``."""
    value = obj.get(key)
    if not isinstance(value, str):
        return None
    try:
        return Pubkey.from_string(value)
    except ValueError:
        return None


def bps(obj: Mapping[str, Any], key: str, prefix: str = "", *, maximum: int = BPS_MAX) -> int:
    """Basis points, an integer in ``[0, maximum]`` (strict: null, a float or a bool is refused)."""
    name = _name(prefix, key)
    value = obj.get(key)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a JSON number written 50.0 is still 50
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedAnswer(name, "missing" if key not in obj else f"expected integer basis points, got {value!r:.40}")
    if not 0 <= value <= maximum:
        raise MalformedAnswer(name, f"{value} is outside [0, {maximum}]")
    return value


def _string(obj: Mapping[str, Any], key: str, prefix: str, expected: str) -> tuple[str, str]:
    """``(field name, value)`` of a field that must be a string."""
    name = _name(prefix, key)
    value = obj.get(key)
    if not isinstance(value, str):
        raise MalformedAnswer(name, "missing" if key not in obj else f"expected {expected}, got {value!r:.40}")
    return name, value


def decimal_string(obj: Mapping[str, Any], key: str, prefix: str = "") -> Decimal:
    """A finite decimal given as a string (``priceImpactPct``), strictly."""
    name, value = _string(obj, key, prefix, "a decimal string")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise MalformedAnswer(name, f"not a decimal: {value!r:.40}") from None
    if not number.is_finite():
        raise MalformedAnswer(name, f"not finite: {value!r:.40}")
    return number


def base64_bytes(obj: Mapping[str, Any], key: str, prefix: str = "") -> bytes:
    """Bytes from standard base64 (instruction data, transactions), strictly."""
    name, value = _string(obj, key, prefix, "base64")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedAnswer(name, "not valid base64") from None


def opt_int(obj: Mapping[str, Any], key: str) -> int | None:
    """A non-negative integer where it is informative (slots, fees reported, limits)."""
    value = obj.get(key)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        value = int(value)  # Ultra sends slots as strings
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def opt_float(obj: Mapping[str, Any], key: str) -> float | None:
    """A finite number where it is informative (``timeTaken``, USD values)."""
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def opt_str(obj: Mapping[str, Any], key: str) -> str | None:
    """A string where it is informative (labels, routers); anything else is ``None``."""
    value = obj.get(key)
    return value[:200] if isinstance(value, str) else None
