"""``xorj-actors check``'s ``jupiter`` line and the API keys among the secrets.

The line fails when the key the engine would send is missing, and otherwise asks Price v3 for
every traded token with that key: against a localnet that demands the key as Jupiter does (401
without it). The key itself is never shown.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.plugins.localnet import start_localnet
from xorj_actors.check import CheckContext, CheckResult, Status, check_jupiter, check_secrets, secret_env_names
from xorj_actors.config import parse_config
from xorj_actors.localnet import Localnet

KEY_ENV = "TEST_JUPITER_API_KEY"
KEY = "jupiter-key-" + "j" * 24
#: ``[localnet.quote] api_key_env``: the key the localnet demands, read from the process.
LOCAL_KEY_ENV = "XORJ_LOCALNET_JUPITER_API_KEY"
EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "mainnet.example.toml"


@pytest.fixture
def keyed_localnet(monkeypatch: pytest.MonkeyPatch) -> Iterator[Localnet]:
    monkeypatch.setenv(LOCAL_KEY_ENV, KEY)
    ln = start_localnet()
    try:
        yield ln
    finally:
        ln.stop()


def _jupiter(config: str, environ: dict[str, str], tmp_path: Path, **endpoints: str) -> CheckResult:
    return check_jupiter(CheckContext(parse_config(config), tmp_path, environ, endpoints=endpoints, timeout_s=2))


def _section(url: str, key_env: str = KEY_ENV) -> str:
    return f'[jupiter]\nbase_url = "{url}"\napi_key_env = "{key_env}"\n'


def test_the_configured_key_is_sent_and_every_token_priced(keyed_localnet: Localnet, tmp_path: Path) -> None:
    url = keyed_localnet.urls["quote"]
    ok = _jupiter(_section(url), {KEY_ENV: KEY}, tmp_path)
    assert (ok.status, ok.detail) == (
        Status.OK, f"{url} (api ultra_then_swap, key ${KEY_ENV}): /price/v3 priced all 4 tokens"
    )
    wrong = "another-key-" + "x" * 20
    refused = _jupiter(_section(url), {KEY_ENV: wrong}, tmp_path)
    assert refused.status is Status.FAIL and "/price/v3 answered HTTP 401" in refused.detail, refused.detail
    assert wrong not in refused.detail


def test_a_missing_key_fails_before_any_request(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: a request would fail otherwise
    for environ in ({}, {KEY_ENV: ""}):
        missing = _jupiter(_section(url), environ, tmp_path)
        assert missing.status is Status.FAIL
        assert missing.detail.endswith(f"[jupiter] api_key_env: environment variable {KEY_ENV} is unset or empty")


def test_without_a_base_url_the_localnet_key_is_sent_when_set(keyed_localnet: Localnet, tmp_path: Path) -> None:
    """As the engine does: a localnet's quote service gets ``[localnet.quote] api_key_env``, if set."""
    quote = keyed_localnet.urls["quote"]
    assert _jupiter("", {}, tmp_path).status is Status.NOT_CONFIGURED  # no URL, no running localnet
    with_key = _jupiter("", {LOCAL_KEY_ENV: KEY}, tmp_path, localnet_quote=quote)
    assert with_key.status is Status.OK and f"key ${LOCAL_KEY_ENV}" in with_key.detail, with_key.detail
    without = _jupiter("", {}, tmp_path, localnet_quote=quote)
    assert without.status is Status.FAIL and "(api ultra_then_swap, key none)" in without.detail
    assert "HTTP 401" in without.detail


def test_production_on_jupiters_host_without_a_key_variable_fails(tmp_path: Path) -> None:
    config = EXAMPLE.read_text().replace('api_key_env = "JUPITER_API_KEY"', 'api_key_env = ""')
    keyless = _jupiter(config, {}, tmp_path)
    assert keyless.status is Status.FAIL
    assert "[jupiter] api_key_env is empty: api.jup.ag answers no request without a key" in keyless.detail


def test_a_token_jupiter_does_not_price_fails_by_name(keyed_localnet: Localnet, tmp_path: Path) -> None:
    """The mainnet example against the localnet: it asks for the mainnet mints, which the localnet
    does not know (but for wrapped SOL's); a trade needs a reference price for both of its tokens."""
    config = EXAMPLE.read_text().replace("https://api.jup.ag", keyed_localnet.urls["quote"])
    unpriced = _jupiter(config, {"JUPITER_API_KEY": KEY}, tmp_path)
    assert unpriced.status is Status.FAIL
    assert unpriced.detail.endswith("/price/v3 has no price for USDC, JUP, BONK"), unpriced.detail


class _EchoKey(BaseHTTPRequestHandler):
    """Refuses every request, quoting the key it was sent."""

    def do_GET(self) -> None:
        body = f'{{"error": "unknown key {self.headers.get("x-api-key")}"}}'.encode()
        self.send_response(401)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_an_answer_quoting_the_key_is_masked(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoKey)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = _jupiter(_section(f"http://127.0.0.1:{server.server_port}"), {KEY_ENV: KEY}, tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    assert result.status is Status.FAIL and "unknown key ***" in result.detail, result.detail
    assert KEY not in result.detail


def test_api_keys_are_secrets_and_required_where_the_engine_needs_them(tmp_path: Path) -> None:
    example = parse_config(EXAMPLE.read_text())
    assert {"JUPITER_API_KEY", "XORJ_QUANT_API_KEY"} <= set(secret_env_names(example))
    environ = {name: "s" * 40 for name in secret_env_names(example)}
    assert check_secrets(CheckContext(example, tmp_path, environ)).status is Status.OK
    for name in ("JUPITER_API_KEY", "XORJ_QUANT_API_KEY"):
        missing = check_secrets(CheckContext(example, tmp_path, {k: v for k, v in environ.items() if k != name}))
        assert missing.status is Status.NOT_CONFIGURED and missing.detail == f"not set: {name}"
        assert missing.failed(production=True)
    # Development: no Jupiter URL sends no key, and the feed falls back to the public quant key.
    local = parse_config("")
    unset = {name: "s" * 40 for name in secret_env_names(local)} | {"JUPITER_API_KEY": "", "XORJ_QUANT_API_KEY": ""}
    assert check_secrets(CheckContext(local, tmp_path, unset)).status is Status.OK
