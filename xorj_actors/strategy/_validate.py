"""The ranked-traders response, parsed strictly and checked field by field (docs/QUANT_API.md).

Pure functions: one bad field refuses the whole response, with a reason naming the field
(``traders[0].targetAllocation[1].weight: -0.25 is not in (0, 1]``).
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NoReturn

from solders.pubkey import Pubkey

from xorj_actors.strategy._model import RankedTrader, StrategySnapshot, TargetAllocation
from xorj_actors.strict_json import JSONProblem, JSONRefused
from xorj_actors.strict_json import loads as strict_json_loads

__all__ = ["SUPPORTED_MAJOR_VERSIONS", "InvalidStrategyData", "parse_ranked_traders", "strict_json"]

#: Major versions of the response this client understands.
SUPPORTED_MAJOR_VERSIONS: frozenset[int] = frozenset({1})

_VERSION = re.compile(r"^(0|[1-9][0-9]{0,5})(\.(0|[1-9][0-9]{0,5})){0,2}$")
_RFC3339_UTC = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|\+00:00)$")
_MAX_INT = 2**63 - 1
_MAX_TEXT = 128
_SHOW = 60


class InvalidStrategyData(ValueError):
    """The response is refused whole; the message says where and why."""


def _fail(where: str, problem: str) -> NoReturn:
    raise InvalidStrategyData(f"{where}: {problem}" if where else problem)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOW else text[: _SHOW - 3] + "..."


# -- strict JSON -------------------------------------------------------------------------------

#: The operators' words for each kind of refusal (xorj_actors.strict_json parses).
_JSON_WORDS = {
    JSONProblem.NOT_STRICT: "not strict JSON",
    JSONProblem.MALFORMED: "malformed JSON",
    JSONProblem.TOO_DEEP: "malformed JSON",
    JSONProblem.TOO_LARGE: "malformed JSON",
}


def strict_json(body: bytes) -> Any:
    """Parse UTF-8 JSON refusing NaN, Infinity, out-of-range numbers, duplicate keys and deep
    nesting (:func:`xorj_actors.strict_json.loads`). Integers are bounded only by Python's own
    digit limit: a field check names a number out of its range, with the field's path."""
    try:
        # 0 is Python's "no limit"
        return strict_json_loads(body, max_int_digits=sys.get_int_max_str_digits() or sys.maxsize)
    except JSONRefused as exc:
        if exc.problem is JSONProblem.NOT_UTF8:
            raise InvalidStrategyData(str(exc)) from None
        raise InvalidStrategyData(f"{_JSON_WORDS[exc.problem]}: {exc.detail}") from None


# -- field checks ------------------------------------------------------------------------------


def _get(obj: dict[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        _fail(f"{where}.{key}" if where else key, "missing")
    return obj[key]


def _object(value: Any, where: str) -> dict[str, Any]:
    if type(value) is not dict:
        _fail(where, f"expected an object, got {type(value).__name__}")
    return value


def _array(value: Any, where: str) -> list[Any]:
    if type(value) is not list:
        _fail(where, f"expected an array, got {type(value).__name__}")
    return value


def _text(value: Any, where: str, max_len: int = _MAX_TEXT) -> str:
    if type(value) is not str:
        _fail(where, f"expected a string, got {_show(value)}")
    if not value or len(value) > max_len or not value.isprintable():
        _fail(where, f"expected 1 to {max_len} printable characters, got {_show(value)}")
    return value


def _integer(value: Any, where: str, low: int, high: int = _MAX_INT) -> int:
    if type(value) is not int:
        _fail(where, f"expected an integer, got {_show(value)}")
    if not low <= value <= high:
        _fail(where, f"{_show(value)} is not in [{low}, {high}]")
    return value


def _number(value: Any, where: str, low: float | None = None, high: float | None = None, *, open_low: bool = False) -> float:
    if type(value) not in (int, float):
        _fail(where, f"expected a number, got {_show(value)}")
    try:
        number = float(value)
    except OverflowError:
        _fail(where, f"{_show(value)} is out of range")
    if not math.isfinite(number):
        _fail(where, f"{_show(value)} is not finite")
    too_low = low is not None and (number <= low if open_low else number < low)
    if too_low or (high is not None and number > high):
        left = "(-inf" if low is None else f"{'(' if open_low else '['}{low:g}"
        right = "inf)" if high is None else f"{high:g}]"
        _fail(where, f"{_show(value)} is not in {left}, {right}")
    return number


def _address(value: Any, where: str) -> str:
    if type(value) is not str or not 32 <= len(value) <= 44:
        _fail(where, f"expected a base58 public key, got {_show(value)}")
    try:
        # Base58 spells each 32-byte key one way only, so distinct keys are distinct strings.
        Pubkey.from_string(value)
    except ValueError:
        _fail(where, f"not a valid base58 public key: {_show(value)}")
    return value


def _version(value: Any) -> str:
    if type(value) is not str or not _VERSION.match(value):
        _fail("version", f"expected a version such as \"1.0\", got {_show(value)}")
    major = int(value.split(".", 1)[0])
    if major not in SUPPORTED_MAJOR_VERSIONS:
        known = ", ".join(str(v) for v in sorted(SUPPORTED_MAJOR_VERSIONS))
        _fail("version", f"major version {major} is not supported (this client knows {known})")
    return value


def _timestamp(value: Any) -> str:
    if type(value) is not str or not _RFC3339_UTC.match(value):
        _fail("generatedAt", f"expected an RFC 3339 UTC time such as \"2026-11-21T20:43:27Z\", got {_show(value)}")
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        _fail("generatedAt", f"not a calendar time: {_show(value)}")
    return value


def _allocation(value: Any, where: str, tradable_mints: Mapping[str, int], tolerance: float) -> tuple[TargetAllocation, ...]:
    entries = _array(value, where)
    if not entries:
        _fail(where, "empty: at least one entry is required")
    seen: set[str] = set()
    allocation = []
    for j, raw in enumerate(entries):
        at = f"{where}[{j}]"
        entry = _object(raw, at)
        mint = _get(entry, "mint", at)
        if type(mint) is not str or mint not in tradable_mints:
            _fail(f"{at}.mint", f"{_show(mint)} is not a mint the engine trades")
        _text(_get(entry, "symbol", at), f"{at}.symbol")  # informational: the mint is what counts
        weight = _number(_get(entry, "weight", at), f"{at}.weight", 0.0, 1.0, open_low=True)
        if mint in seen:
            _fail(f"{at}.mint", f"{mint} appears twice")
        seen.add(mint)
        allocation.append(TargetAllocation(mint=mint, weight=weight))
    total = math.fsum(a.weight for a in allocation)
    if abs(total - 1.0) > tolerance:
        _fail(where, f"weights sum to {total!r}, not 1 within {tolerance:g}")
    return tuple(allocation)


def _trader(value: Any, i: int, tradable_mints: Mapping[str, int], tolerance: float) -> RankedTrader:
    where = f"traders[{i}]"
    trader = _object(value, where)
    rank = _integer(_get(trader, "rank", where), f"{where}.rank", 1)
    if rank != i + 1:
        _fail(f"{where}.rank", f"expected {i + 1} (ranks are 1..N in order), got {rank}")
    wallet = _address(_get(trader, "walletAddress", where), f"{where}.walletAddress")
    trust = _number(_get(trader, "trustScore", where), f"{where}.trustScore", 0.0, 100.0)
    m_where = f"{where}.metrics"
    metrics = _object(_get(trader, "metrics", where), m_where)
    return RankedTrader(
        rank=rank,
        wallet=wallet,
        trust_score=trust,
        allocation=_allocation(_get(trader, "targetAllocation", where), f"{where}.targetAllocation", tradable_mints, tolerance),
        roi=_number(_get(metrics, "roi", m_where), f"{m_where}.roi"),
        sharpe_ratio=_number(_get(metrics, "sharpeRatio", m_where), f"{m_where}.sharpeRatio"),
        max_drawdown=_number(_get(metrics, "maxDrawdown", m_where), f"{m_where}.maxDrawdown", 0.0, 1.0),
        win_rate=_number(_get(metrics, "winRate", m_where), f"{m_where}.winRate", 0.0, 1.0),
        trade_count=_integer(_get(metrics, "tradeCount", m_where), f"{m_where}.tradeCount", 0),
        period_days=_integer(_get(metrics, "periodDays", m_where), f"{m_where}.periodDays", 1),
    )


def parse_ranked_traders(
    body: bytes,
    *,
    tradable_mints: Mapping[str, int],
    weight_tolerance: float,
    fetched_at: float,
) -> StrategySnapshot:
    """The snapshot in ``body``, or :class:`InvalidStrategyData` naming the first bad field.

    Fields the schema does not name are ignored (a minor version may add some); every field
    it names must be present and valid.
    """
    top = _object(strict_json(body), "response")
    version = _version(_get(top, "version", ""))
    scenario = _text(_get(top, "scenario", ""), "scenario")
    round_ = _integer(_get(top, "round", ""), "round", 0)
    generated_at = _timestamp(_get(top, "generatedAt", ""))
    raw_traders = _array(_get(top, "traders", ""), "traders")
    if not raw_traders:
        _fail("traders", "empty: a ranking has at least one trader")
    traders = tuple(_trader(t, i, tradable_mints, weight_tolerance) for i, t in enumerate(raw_traders))
    wallets: dict[str, int] = {}
    for t in traders:
        if t.wallet in wallets:
            _fail(f"traders[{t.rank - 1}].walletAddress", f"{t.wallet} is also traders[{wallets[t.wallet]}]'s")
        wallets[t.wallet] = t.rank - 1
    return StrategySnapshot(
        round=round_,
        scenario=scenario,
        generated_at=generated_at,
        fetched_at=fetched_at,
        traders=traders,
        version=version,
    )
