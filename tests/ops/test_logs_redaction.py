"""One logging configuration: JSON lines or human lines, correlation ids, and no secret ever logged."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest
from loguru import logger

from tests.ops.conftest import ENGINE_ENV, HTTP_FAST, HTTP_KEY, Api, http_audit, refusal_audit
from tests.plugins.engine import ks_status, wait_until
from xorj_actors.check import secret_env_names
from xorj_actors.config import parse_config
from xorj_actors.engine import configure_logging, trade_logger
from xorj_actors.redaction import MASK, Redactor, redact_url, url_secrets
from xorj_actors.ops import signed_headers

AUDIT_KEY = "audit-hmac-key-" + "5e" * 16
FORGED_HMAC = "deadbeef" * 8
ENV = {**ENGINE_ENV, "XORJ_AUDIT_HMAC_KEY": AUDIT_KEY, "SOME_API_TOKEN": "tok-" + "q" * 30}
SECRET_VALUES = [v for k, v in ENV.items()] + [FORGED_HMAC]
JSON_KEYS = {"time", "level", "message", "logger", "function", "line", "thread"}


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Lines of every sink configured in the test; loguru and stdlib logging restored after."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    buf = io.StringIO()
    yield buf
    logger.remove()
    logger.add(sys.stderr)
    root.handlers[:], root.level = saved


def _json_lines(buf: io.StringIO) -> list[dict]:
    lines = [json.loads(line) for line in buf.getvalue().splitlines()]
    for line in lines:
        assert JSON_KEYS <= set(line), line
    return lines


def test_an_engine_with_secrets_around_never_logs_them(engine_factory, captured: io.StringIO, tmp_path) -> None:
    configure_logging(
        json_lines=True, stream=captured, environ=ENV, secret_envs=secret_env_names(parse_config("")),
        log_dir=tmp_path / "logs",
    )
    api = Api(engine_factory(vaults=2, environ=dict(ENV), extra=HTTP_FAST))
    # An operator pastes secrets where they do not belong: the reason is logged by the kill switch.
    reason = f"halt; key {HTTP_KEY} hmac={FORGED_HMAC}"
    assert api.post("/kill-switch/activate", {"reason": reason}).status == 202
    wait_until(lambda: ks_status(api.engine).complete, what="halt acked")
    # A failed recovery: a forged HMAC, and a recovery key typed into the operator field.
    epoch = ks_status(api.engine).epoch
    forged = {
        "epoch": epoch, "nonce": "n-forged", "timestamp": 1, "operator": ENV["XORJ_RECOVERY_KEY_1"],
        "authorisations": [{"key_id": "XORJ_RECOVERY_KEY_1", "hmac": FORGED_HMAC}],
    }
    assert api.post("/kill-switch/recover", forged).status == 409
    # A bad signature: the caller's key is the audit key.
    body = b'{"mode": "graceful"}'
    wrong_key = signed_headers(AUDIT_KEY.encode(), "/kill-switch/activate", body)
    assert api.post_raw("/kill-switch/activate", body, wrong_key).status == 401
    try:
        raise ValueError(f"signer said: signature {FORGED_HMAC} rejected for {ENV['SOME_API_TOKEN']}")
    except ValueError:
        logger.exception("trade failed")
    trade_logger("trade-42").bind(vault="vault-0001").warning("slippage too high")
    logger.complete()

    text = captured.getvalue()
    for secret in SECRET_VALUES:
        assert secret not in text
    lines = _json_lines(captured)
    triggered = next(line for line in lines if line["message"].startswith("kill switch TRIGGERED"))
    assert f"key {MASK} hmac={MASK}" in triggered["message"]  # the line is there, masked
    assert any("recovery refused" in line["message"] for line in lines)
    failure = next(line for line in lines if line["message"] == "trade failed")
    assert "ValueError" in failure["exception"] and f"signature {MASK}" in failure["exception"]
    trade = next(line for line in lines if line["message"] == "slippage too high")
    assert trade["correlation_id"] == "trade-42" and trade["extra"] == {"vault": "vault-0001"}
    assert trade["level"] == "WARNING" and trade["function"] == "test_an_engine_with_secrets_around_never_logs_them"

    # The audit trail gets the same treatment: the calls are there, the secrets are not.
    entries = http_audit(api.engine, 2) + refusal_audit(api.engine, 1)
    assert [k for k, _ in entries] == ["HALT", "RECOVERY", "SECURITY_VIOLATION"]
    assert entries[0][1]["reason_given"] == f"halt; key {MASK} hmac={MASK}"
    assert entries[1][1]["operator"] == MASK
    assert all(secret not in json.dumps(entries) for secret in SECRET_VALUES)

    api.engine.stop()
    logger.remove()  # flush the file sink's queue
    file_text = (tmp_path / "logs" / "engine.log").read_text()
    assert "TRIGGERED" in file_text and all(secret not in file_text for secret in SECRET_VALUES)
    assert all(json.loads(line) for line in file_text.splitlines())


def test_human_lines_are_redacted_too(captured: io.StringIO) -> None:
    configure_logging(json_lines=False, stream=captured, environ=ENV)
    trade_logger("trade-7").info("signature: {} with {}; dict {}", FORGED_HMAC, HTTP_KEY, {"a": "{b}"})
    logging.getLogger("aiohttp.access").warning("stdlib says key=%s", AUDIT_KEY)
    text = captured.getvalue()
    assert all(secret not in text for secret in SECRET_VALUES)
    first, second = text.splitlines()
    assert f"signature: {MASK} with {MASK}; dict {{'a': '{{b}}'}} | correlation_id=trade-7" in first
    assert " | INFO     | " in first and not first.startswith("{")
    assert f"stdlib says key={MASK}" in second and "WARNING" in second


def test_redactor_masks_what_looks_secret_and_nothing_else() -> None:
    environ = {"XORJ_HTTP_HMAC_KEY": "x" * 40, "PATH": "/usr/bin:/bin", "SHORT_KEY": "abc", "PLAIN": "p" * 20}
    r = Redactor.from_environ(environ, names=["PLAIN"])
    assert r("x" * 40) == MASK
    assert r("p" * 20) == MASK  # named explicitly
    assert r("/usr/bin:/bin and abc") == "/usr/bin:/bin and abc"  # not secret, or too short to mask
    assert r('{"hmac": "' + "ab" * 32 + '"}') == '{"hmac": "' + MASK + '"}'
    assert r("key_id XORJ_RECOVERY_KEY_1: bad signature") == "key_id XORJ_RECOVERY_KEY_1: bad signature"
    assert r("prev_hash " + "cd" * 32) == "prev_hash " + "cd" * 32  # audit hashes are not secrets
    assert r.deep({"k": ["x" * 40, 3, None]}) == {"k": [MASK, 3, None]}


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://mainnet.helius-rpc.com/?api-key=abcd-1234", f"https://mainnet.helius-rpc.com/?api-key={MASK}"),
        ("https://x.quiknode.pro/" + "ab12" * 8 + "/", f"https://x.quiknode.pro/{MASK}/"),
        ("nats://engine:hunter2hunter2@10.0.0.7:4222", f"nats://{MASK}@10.0.0.7:4222"),
        ("wss://[::1]:8900/", "wss://[::1]:8900/"),
        ("https://api.jup.ag/swap/v1", "https://api.jup.ag/swap/v1"),  # nothing secret: unchanged
        ("http://[not a url", MASK),
    ],
)
def test_redact_url_masks_keys_in_user_info_path_and_query(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    for secret in url_secrets(url):
        assert secret not in redact_url(url)
