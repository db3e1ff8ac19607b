"""``[vaults]`` settings: defaults, validation messages, strict TOML loading."""

from __future__ import annotations

import dataclasses

import pytest

from xorj_actors._settings import ConfigError, build_section
from xorj_actors.vaults.settings import VaultSettings


def test_defaults_are_valid_and_as_specified() -> None:
    s = VaultSettings()
    s.validate()
    assert (s.min_trade_usd, s.max_trade_usd, s.oversize, s.max_split, s.max_concentration, s.count) == (
        1.0,
        10_000.0,
        "split",
        10,
        0.6,
        8,
    )


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"count": -1}, "count"),
        ({"round_interval_s": 0.0}, "round_interval_s"),
        ({"round_interval_s": float("nan")}, "round_interval_s"),
        ({"min_trade_usd": 0.0}, "min_trade_usd"),
        ({"min_trade_usd": float("inf")}, "min_trade_usd"),
        ({"max_trade_usd": float("nan")}, "max_trade_usd"),
        ({"max_trade_usd": 1.5}, "max_trade_usd"),  # below twice min_trade_usd
        ({"oversize": "shrink"}, "oversize"),
        ({"max_split": 0}, "max_split"),
        ({"max_concentration": 0.0}, "max_concentration"),
        ({"max_concentration": 1.01}, "max_concentration"),
        ({"proceeds_haircut_bps": -1}, "proceeds_haircut_bps"),
        ({"proceeds_haircut_bps": 5_001}, "proceeds_haircut_bps"),
    ],
)
def test_validate_names_the_key(change: dict[str, object], key: str) -> None:
    with pytest.raises(ValueError, match=rf"^{key}: "):
        dataclasses.replace(VaultSettings(), **change).validate()


def test_loads_from_a_toml_table_strictly() -> None:
    s = build_section(VaultSettings, {"oversize": "refuse", "max_concentration": 1, "count": 3}, "vaults")
    assert (s.oversize, s.max_concentration, s.count) == ("refuse", 1.0, 3)
    with pytest.raises(ConfigError, match=r"^vaults\.oversize: must be one of"):
        build_section(VaultSettings, {"oversize": "resize"}, "vaults")
    with pytest.raises(ConfigError, match=r"^vaults\.max_split: must be between"):
        build_section(VaultSettings, {"max_split": 0}, "vaults")
    with pytest.raises(ConfigError, match=r"did you mean 'max_split'"):
        build_section(VaultSettings, {"max_splits": 3}, "vaults")
