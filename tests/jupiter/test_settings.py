"""``[jupiter]``: validated with named errors; the API policy and its fallback rule."""

from __future__ import annotations

import pytest

from xorj_actors.config import ConfigError, parse_config
from xorj_actors.jupiter import (
    ApiPolicy,
    JupiterApi,
    JupiterSettings,
    PriorityLevel,
    Refusal,
    RefusalReason,
    TradeApi,
    fallback_api,
    first_api,
)


def test_defaults_and_a_full_section() -> None:
    assert parse_config("").jupiter == JupiterSettings()
    cfg = parse_config(
        "[jupiter]\n"
        'base_url = "https://api.jup.ag"\n'
        'api_key_env = "XORJ_JUPITER_KEY"\n'
        'api = "ultra"\n'
        'priority_level = "veryHigh"\n'
        "max_priority_fee_lamports = 1000000\n"
        'exclude_routers = "dflow,okx"\n'
    ).jupiter
    assert cfg.api is ApiPolicy.ULTRA and cfg.priority_level is PriorityLevel.VERY_HIGH
    assert cfg.api_key_env == "XORJ_JUPITER_KEY" and cfg.base_url == "https://api.jup.ag"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('api = "both"', "jupiter.api: must be one of 'ultra', 'swap', 'ultra_then_swap', got 'both'"),
        ('base_url = "api.jup.ag"', "jupiter.base_url: must be an http(s) URL or empty"),
        ('base_url = "https://api.jup.ag/"', "jupiter.base_url: no trailing slash (the paths start with one)"),
        ('api_key_env = "jup_7f3a-9c"', "jupiter.api_key_env: must be an environment variable name (the key itself never goes here)"),
        ("request_timeout_s = 0", "jupiter.request_timeout_s: must be in (0, 300] seconds"),
        ("connect_timeout_s = 20.0", "jupiter.connect_timeout_s: must not exceed request_timeout_s"),
        ("max_accounts = 300", "jupiter.max_accounts: must be between 0 (none sent) and 256"),
        ('instruction_version = "V3"', "jupiter.instruction_version: must be V1 or V2"),
        ('priority_level = "high"', "jupiter.max_priority_fee_lamports: set it (> 0) exactly when priority_level is set"),
        ('exclude_routers = "metis,foo"', "jupiter.exclude_routers: unknown router 'foo' (metis, jupiterz, dflow, okx)"),
        ("api_key = 'secret'", "jupiter.api_key: unknown key (did you mean 'api_key_env'?)"),
    ],
)
def test_bad_settings_are_named(toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(f"[jupiter]\n{toml}\n")
    assert str(refused.value) == f"<config>: {message}"


def _refusal(api: JupiterApi, reason: RefusalReason) -> Refusal:
    return Refusal(api, reason, "", "")


def test_the_policy_picks_the_first_api_and_falls_back_only_on_no_route_from_ultra() -> None:
    assert first_api(ApiPolicy.ULTRA) is TradeApi.ULTRA
    assert first_api(ApiPolicy.SWAP) is TradeApi.SWAP
    assert first_api(ApiPolicy.ULTRA_THEN_SWAP) is TradeApi.ULTRA
    no_route = _refusal(JupiterApi.ORDER, RefusalReason.NO_ROUTE)
    assert fallback_api(ApiPolicy.ULTRA_THEN_SWAP, no_route) is TradeApi.SWAP
    assert fallback_api(ApiPolicy.ULTRA, no_route) is None
    assert fallback_api(ApiPolicy.SWAP, _refusal(JupiterApi.QUOTE, RefusalReason.NO_ROUTE)) is None
    for reason in (RefusalReason.INSUFFICIENT_FUNDS, RefusalReason.RATE_LIMITED, RefusalReason.UNAUTHORIZED, RefusalReason.SERVER_ERROR):
        assert fallback_api(ApiPolicy.ULTRA_THEN_SWAP, _refusal(JupiterApi.ORDER, reason)) is None
