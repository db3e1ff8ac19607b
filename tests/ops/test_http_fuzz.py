"""schemathesis against the running HTTP API: no 5xx, every answer conforms to docs/openapi.yaml.

Half of the POSTs are signed correctly (the kill-switch API's HMAC, or Slack's signature for
``/slack/panic``), so the fuzzer also gets past authentication into body validation and the kill
switch itself.
"""

from __future__ import annotations

import itertools
import json
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.ops.conftest import ENGINE_ENV, HTTP_KEY
from xorj_actors.config import parse_config
from xorj_actors.engine import Engine
from xorj_actors.ops import signed_headers, slack_headers

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
SCHEMA = schemathesis.openapi.from_path(OPENAPI)
EXAMPLES = 40
AUTH_HEADERS = {"X-Xorj-Timestamp", "X-Xorj-Nonce", "X-Xorj-Signature"}
SLACK_HEADERS = {"X-Slack-Request-Timestamp", "X-Slack-Signature"}
SLACK_SECRET = "slack-signing-secret-" + "5" * 20
SLACK = '[slack]\nusers = ["U0ALICE"]\nchannels = ["C0OPS"]\n'

_turn = itertools.count()
#: (path, status) of every answer, to check that signed requests got past authentication.
SEEN: Counter[tuple[str, int]] = Counter()


@pytest.fixture(scope="module")
def fuzz_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = parse_config("[vaults]\ncount = 2\n[kill_switch]\ncooldown_s = 0\n[localnet]\nenabled = false\n[execution]\nenabled = false\n[strategy]\nurl = \"http://127.0.0.1:9\"\n" + SLACK)
    environ = {**ENGINE_ENV, "XORJ_SLACK_SIGNING_SECRET": SLACK_SECRET}
    engine = Engine(config, tmp_path_factory.mktemp("fuzz") / "var", environ=environ)
    engine.start()
    yield engine.endpoints()["http"]
    assert engine.stop(timeout=10) == []


@SCHEMA.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case, fuzz_url: str) -> None:
    headers = case.headers or {}
    # Only cases that carry every auth header (schemathesis also drops one on purpose).
    if isinstance(case.body, dict) and AUTH_HEADERS <= set(headers) and next(_turn) % 2 == 0:
        # requests serialises ``json=`` with json.dumps(allow_nan=False): sign the same bytes.
        body = json.dumps(case.body, allow_nan=False).encode()
        signed = signed_headers(HTTP_KEY.encode(), case.path, body)
        case.headers = {**headers, **{k: v for k, v in signed.items() if k in AUTH_HEADERS}}
    elif isinstance(case.body, dict) and SLACK_HEADERS <= set(headers) and next(_turn) % 2 == 0:
        # requests form-encodes ``data=`` with urlencode: sign the same bytes, as Slack would.
        body = urllib.parse.urlencode(case.body, doseq=True).encode()
        signed = slack_headers(SLACK_SECRET.encode(), body)
        case.headers = {**headers, **{k: v for k, v in signed.items() if k in SLACK_HEADERS}}
    response = case.call_and_validate(base_url=fuzz_url)
    SEEN[(case.path, response.status_code)] += 1


def test_signed_fuzzing_got_past_authentication() -> None:
    if not SEEN:
        pytest.skip("run together with the fuzz test")
    past_auth = {status for (path, status) in SEEN if path.startswith("/kill-switch/") and status not in (401, 429)}
    assert past_auth & {200, 202, 400, 409}, SEEN
    assert {status for (path, status) in SEEN if path == "/slack/panic"} & {200, 400}, SEEN


