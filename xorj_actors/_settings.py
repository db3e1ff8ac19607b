"""Strict TOML-to-dataclass loading shared by every config section.

Each component declares its settings as a frozen dataclass next to its code; this module turns a
TOML table into that dataclass and refuses anything it does not understand, naming the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import math
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

__all__ = ["ConfigError", "ValueTier", "build_section", "tier_of_value", "validate_value_tiers"]

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the key and the problem."""


class ValueTier(Protocol):
    """A ``[[...tiers]]`` entry chosen by a trade's USD value (confirmation, fees)."""

    @property
    def min_value_usd(self) -> float: ...

    def validate(self) -> None: ...


TierT = TypeVar("TierT", bound=ValueTier)


def validate_value_tiers(tiers: Sequence[ValueTier]) -> None:
    """Check ``tiers`` (as the key ``tiers``): each valid, the first at $0, sorted, no duplicates."""
    if not tiers:
        raise ValueError("tiers: at least one tier is required")
    for i, tier in enumerate(tiers):
        try:
            tier.validate()
        except ValueError as exc:
            raise ValueError(f"tiers[{i}].{exc}") from None
    if tiers[0].min_value_usd != 0:
        raise ValueError("tiers: the first tier must start at min_value_usd = 0 (every value needs a tier)")
    for low, high in zip(tiers, tiers[1:]):
        if high.min_value_usd == low.min_value_usd:
            raise ValueError(f"tiers: duplicate min_value_usd {high.min_value_usd:g}")
        if high.min_value_usd < low.min_value_usd:
            raise ValueError("tiers: must be sorted by min_value_usd, lowest first")


def tier_of_value(value_usd: float, tiers: Sequence[TierT]) -> TierT:
    """The tier of a trade worth ``value_usd`` (``tiers`` sorted, the first at $0).

    A value that is not a finite number >= 0 gets the last (strictest) tier: a bad value must
    never make a trade look safer or cheaper than it is.
    """
    if not (value_usd >= 0 and math.isfinite(value_usd)):
        return tiers[-1]
    chosen = tiers[0]
    for tier in tiers:
        if value_usd < tier.min_value_usd:
            break
        chosen = tier
    return chosen


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{key}: must be one of {', '.join(map(repr, allowed))}, got {value!r}")
        return value
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{key}: expected {len(args)} items, got {len(value)}")
        return tuple(_coerce(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in tp)
            raise ConfigError(f"{key}: must be one of {allowed}, got {value!r}") from None
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {type(value).__name__}")
        return build_section(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a path string, got {value!r}")
        return Path(value)
    raise ConfigError(f"{key}: unsupported setting type {_type_name(tp)}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def build_section(cls: type[T], table: dict[str, Any], path: str = "") -> T:
    """Build dataclass ``cls`` from a TOML table, strictly.

    Unknown keys (with a suggestion for typos), missing required keys and wrong types raise
    :class:`ConfigError` naming ``path.key``. A ``validate()`` method on the dataclass may raise
    ``ValueError("key: problem")`` for range checks; it is reported under ``path``.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in table:
        if key not in fields:
            guess = difflib.get_close_matches(key, list(fields), n=1)
            hint = f" (did you mean {guess[0]!r}?)" if guess else ""
            raise ConfigError(f"{_join(path, key)}: unknown key{hint}")
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        if name in table:
            kwargs[name] = _coerce(hints[name], table[name], _join(path, name))
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{_join(path, name)}: required key is missing")
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        try:
            validate()
        except ValueError as exc:
            raise ConfigError(_join(path, str(exc))) from None
    return obj
