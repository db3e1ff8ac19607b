"""config/mainnet.example.toml is loaded by the real loader, so it cannot rot: a production config
that differs from the localnet's in URLs, keys and program ids, with nothing production refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from xorj_actors.check import CheckContext, Status, check_dev_settings, check_secrets, secret_env_names
from xorj_actors.config import ConfigError, load_config, parse_config, production_problems
from xorj_actors.execution.settings import DEFAULT_AGGREGATORS, DEFAULT_PROGRAMS

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "mainnet.example.toml"
#: Jupiter's Order Engine: the program of Ultra's RFQ (JupiterZ) routes
#: (tests/data/jupiter/ultra-order-jupiterz-rfq.json's transaction calls it).
ORDER_ENGINE = "61DFfeTKM7trxYcPQCM78bJ794ddZprZpAwAnLiwTpYH"


def test_the_mainnet_example_is_a_production_config_nothing_refuses(tmp_path: Path) -> None:
    config = load_config(EXAMPLE)
    assert config.engine.environment == "production" and not config.localnet.enabled
    assert production_problems(config) == []
    environ = {name: "s" * 40 for name in secret_env_names(config)}  # every secret it names, long enough
    ctx = CheckContext(config, tmp_path / "var", environ)
    assert check_secrets(ctx).status is Status.OK
    assert (check_dev_settings(ctx).status, check_dev_settings(ctx).detail) == (Status.OK, "none")
    assert [k.backend for k in config.signers.keys] == ["pkcs11"]
    assert config.execution.rpc_url.startswith("https://") and config.execution.ws_url.startswith("wss://")
    assert config.jupiter.base_url == "https://api.jup.ag" and config.jupiter.api_key_env == "JUPITER_API_KEY"


def test_the_example_allows_the_default_programs_and_jupiters_order_engine() -> None:
    routes = load_config(EXAMPLE).execution.routes
    assert set(routes.programs) == set(DEFAULT_PROGRAMS)
    assert set(DEFAULT_AGGREGATORS) | {ORDER_ENGINE} <= set(routes.aggregator_programs)
    assert routes.tip_accounts == () and routes.max_platform_fee_bps == 0


def test_jupiters_base_url_stands_for_the_quote_url_off_the_localnet() -> None:
    """Off the localnet, execution needs Jupiter's URL: ``[jupiter] base_url`` (mainnet) or
    ``[execution] quote_url`` (a localnet's quote service run apart); neither is refused."""
    off = '[localnet]\nenabled = false\n[strategy]\nurl = "http://127.0.0.1:9"\n'
    chain = '[execution]\nrpc_url = "http://127.0.0.1:8899"\nws_url = "ws://127.0.0.1:8900"\n'
    assert parse_config(off + chain + '[jupiter]\nbase_url = "https://api.jup.ag"\n').jupiter_url() == "https://api.jup.ag"
    local = parse_config(off + chain + 'quote_url = "http://127.0.0.1:8080"\n')
    assert local.jupiter_url() == "http://127.0.0.1:8080"
    with pytest.raises(ConfigError, match=r"jupiter\.base_url: required when \[localnet\] is not enabled"):
        parse_config(off + chain)
