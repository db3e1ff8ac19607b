"""Strict JSON for operator input: one parser for the debug socket, the HTTP API and state files.

Python's :func:`json.loads` accepts what a JSON peer must not send and fails in ways a server
does not expect: ``NaN`` and ``Infinity`` (not JSON, and echoed back they break the client's
parser), duplicate keys (the last one silently wins: ``{"cmd":"help","cmd":"halt"}`` halts),
deep nesting (``RecursionError``, not a ``ValueError``) and huge integers (a ``ValueError`` past
4,300 digits, slow to convert below it). :func:`loads` refuses each with :class:`JSONRefused`,
a ``ValueError`` whose message names the problem.

Below every layer: it imports nothing from ``xorj_actors``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = ["JSONRefused", "MAX_DEPTH", "MAX_INT_DIGITS", "loads"]

#: Deepest nesting of arrays and objects accepted. Requests are a few levels deep.
MAX_DEPTH = 32
#: Longest integer accepted, in digits (a u64 has 20).
MAX_INT_DIGITS = 40

# Strings may hold any bracket; only brackets outside strings count towards the depth.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


class JSONRefused(ValueError):
    """Input that is not strict JSON, or exceeds a limit; nothing was parsed."""


def _refuse_constant(name: str) -> Any:
    raise JSONRefused(f"{name} is not a JSON number")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise JSONRefused(f"integer of {len(text.lstrip('-'))} digits: the limit is {MAX_INT_DIGITS}")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONRefused(f"number {text[:32]} is out of range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise JSONRefused(f"duplicate key {key[:64]!r}")
        obj[key] = value
    return obj


def _check_depth(text: str, max_depth: int) -> None:
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > max_depth:
                raise JSONRefused(f"nested deeper than {max_depth} levels")
        elif token in "]}":
            depth -= 1


def loads(data: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse strict JSON.

    Args:
        data: the document; bytes must be UTF-8.
        max_depth: deepest nesting accepted.

    Raises:
        JSONRefused: not UTF-8, not JSON, a non-finite or out-of-range number, a duplicate key, nesting deeper
            than ``max_depth`` or an integer longer than :data:`MAX_INT_DIGITS` digits.
    """
    if isinstance(data, bytes | bytearray):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONRefused(f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    _check_depth(data, max_depth)
    try:
        return json.loads(
            data,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
            object_pairs_hook=_unique_keys,
        )
    except JSONRefused:
        raise
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise JSONRefused(f"not valid JSON: {exc}") from None
