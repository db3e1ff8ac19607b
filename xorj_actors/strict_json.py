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

import enum
import functools
import json
import math
import re
from typing import Any

__all__ = ["JSONProblem", "JSONRefused", "MAX_DEPTH", "MAX_INT_DIGITS", "loads"]

#: Deepest nesting of arrays and objects accepted. Requests are a few levels deep.
MAX_DEPTH = 32
#: Longest integer accepted, in digits (a u64 has 20).
MAX_INT_DIGITS = 40

# Strings may hold any bracket; only brackets outside strings count towards the depth. The scan
# runs in C (bytes methods, the regex engine): strings out, everything but brackets out, then the
# innermost pairs out once a level.
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_INNERMOST = re.compile(rb"[\[{][\]}]")
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")


class JSONProblem(enum.StrEnum):
    """What kind of input was refused (a caller may word each kind its own way)."""

    NOT_UTF8 = "not_utf8"
    #: Not JSON at all.
    MALFORMED = "malformed"
    #: JSON that Python accepts but a strict peer must not send: NaN, Infinity, an
    #: out-of-range number, a duplicate key.
    NOT_STRICT = "not_strict"
    TOO_DEEP = "too_deep"
    TOO_LARGE = "too_large"


class JSONRefused(ValueError):
    """Input that is not strict JSON, or exceeds a limit; nothing was parsed.

    Attributes:
        problem: the kind of refusal.
        detail: what was seen, without a prefix (``str(exc)`` is the whole message).
    """

    def __init__(self, problem: JSONProblem, detail: str) -> None:
        message = f"not valid JSON: {detail}" if problem is JSONProblem.MALFORMED else detail
        super().__init__(message)
        self.problem, self.detail = problem, detail


def _refuse_constant(name: str) -> Any:
    raise JSONRefused(JSONProblem.NOT_STRICT, f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses to inf without passing through parse_constant
        raise JSONRefused(JSONProblem.NOT_STRICT, f"{text[:60]} is not a finite number")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            # Two parsers could read two different values; refuse the ambiguity.
            raise JSONRefused(JSONProblem.NOT_STRICT, f"duplicate key {key[:60]!r}")
        obj[key] = value
    return obj


def _outside_strings(raw: bytes) -> bytes:
    """``raw`` with each string replaced by one quote (which keeps its neighbours apart)."""
    if b"\\" not in raw and not raw.count(b'"') % 2:
        # No escapes, every quote paired: the strings are every other piece between quotes.
        return b'"'.join(raw.split(b'"')[::2])
    return _STRINGS.sub(b'"', raw)


@functools.cache
def _long_integer(max_digits: int) -> re.Pattern[bytes]:
    # A whole integer token: not part of a longer number (a fraction, an exponent, a float).
    return re.compile(rb"(?<![0-9.eE+-])-?([0-9]{%d,})(?![0-9.eE])" % (max_digits + 1))


def _check_integers(outside: bytes, max_digits: int) -> None:
    """Refuse an integer longer than ``max_digits`` before the parser converts it (in C: no hook)."""
    # Every digit as "0", then one substring search in C: the token regex runs only on a long run.
    if b"0" * (max_digits + 1) not in outside.translate(_DIGITS_AS_ZERO):
        return
    if long := _long_integer(max_digits).search(outside):
        digits = len(long.group(1))
        raise JSONRefused(JSONProblem.TOO_LARGE, f"integer of {digits} digits: the limit is {max_digits}")


def _check_depth(outside: bytes, max_depth: int) -> None:
    brackets = left = outside.translate(None, _NOT_BRACKETS)
    # Each pass removes every innermost pair (the leaves), so the nesting falls by one a pass: a
    # sequence gone within max_depth passes nests at most max_depth deep. A pass also removes a
    # mismatched pair such as "[}": the counts balance, not the kinds; json.loads refuses those.
    for _ in range(max_depth):
        if not left:
            return
        shorter = _INNERMOST.sub(b"", left)
        if len(shorter) == len(left):
            break
        left = shorter
    if not left:
        return
    # Unbalanced or deep (rare: refused input): count exactly, as the brackets come.
    depth = 0
    for token in brackets:
        if token in b"[{":
            depth += 1
            if depth > max_depth:
                raise JSONRefused(JSONProblem.TOO_DEEP, f"nested deeper than {max_depth} levels")
        else:
            depth -= 1


def loads(data: str | bytes, *, max_depth: int = MAX_DEPTH, max_int_digits: int = MAX_INT_DIGITS) -> Any:
    """Parse strict JSON.

    Args:
        data: the document; bytes must be UTF-8.
        max_depth: deepest nesting accepted.
        max_int_digits: longest integer accepted, in digits.

    Raises:
        JSONRefused: not UTF-8, not JSON, a non-finite or out-of-range number, a duplicate key, nesting deeper
            than ``max_depth`` or an integer longer than ``max_int_digits`` digits.
    """
    if isinstance(data, bytes | bytearray):
        raw = bytes(data)
        try:
            data = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONRefused(JSONProblem.NOT_UTF8, f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    else:
        raw = data.encode("utf-8", "surrogatepass")  # quotes, backslashes and brackets are ASCII either way
    outside = _outside_strings(raw)
    _check_depth(outside, max_depth)
    _check_integers(outside, max_int_digits)
    try:
        return json.loads(
            data,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            object_pairs_hook=_unique_keys,
        )
    except JSONRefused:
        raise
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise JSONRefused(JSONProblem.MALFORMED, str(exc)) from None
