"""The HTTP API against a real in-process engine: probes, signed kill-switch calls, refusals."""

from __future__ import annotations

import json
import time

import pytest

from tests.ops.conftest import ENGINE_ENV, HTTP_FAST, HTTP_KEY_ENV, REFUSALS, Api, http_audit, refusal_audit, request
from tests.conftest import free_port
from tests.plugins.engine import authorise, ks_status, wait_until
from xorj_actors.config import ConfigError, parse_config
from xorj_actors.engine import Engine
from xorj_actors.ops import sign_request, signed_headers

ACTIVATE = "/kill-switch/activate"
RECOVER = "/kill-switch/recover"


def _recover_body(epoch: int, nonce: str = "rec-1") -> dict:
    a = authorise(epoch, nonce=nonce)
    a["authorisations"] = [{"key_id": k, "hmac": h} for k, h in a["authorisations"]]
    return a


def _assert_untouched(api: Api) -> None:
    status = ks_status(api.engine)
    assert (status.state, status.epoch) == ("ARMED", 0)


def test_probes_ready_when_armed_and_503_when_halted(api: Api) -> None:
    assert api.get("/health/live").json() == {"status": "ok"}
    ready = api.get("/health/ready")
    assert ready.status == 200, ready.body
    checks = {c["name"]: c for c in ready.json()["checks"]}
    assert checks["tree"]["status"] == "ok" and checks["kill_switch"]["status"] == "ok"
    assert checks["audit_store"]["status"] == "ok" and "writing" in checks["audit_store"]["detail"]
    # Development: components that do not exist yet are honest but do not block readiness.
    assert checks["rpc"]["status"] == "not configured" and checks["rpc"]["ok"]

    assert api.post(ACTIVATE, {"mode": "graceful", "reason": "test"}).status == 202
    wait_until(lambda: api.engine.board.status.halted, what="halt")
    ready = api.get("/health/ready")
    assert ready.status == 503
    ks = next(c for c in ready.json()["checks"] if c["name"] == "kill_switch")
    assert ks["status"] == "fail" and "TRIGGERED" in ks["detail"]
    assert api.get("/health/live").status == 200  # halted is not dead

    detailed = api.get("/health/detailed")
    assert detailed.status == 503
    components = {c["name"]: c for c in detailed.json()["components"]}
    assert {"tree", "kill_switch", "audit_store", "rpc", "signer", "secrets"} <= set(components)
    assert components["breaker:hsm_failure_rate"] == {
        "name": "breaker:hsm_failure_rate", "status": "ok", "ok": True, "detail": "CLOSED",
    }


def test_production_engine_is_not_ready_while_components_are_missing(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XORJ_AUDIT_HMAC_KEY", "audit-key-" + "3" * 30)  # the Audit actor reads os.environ
    # No signing key: a production engine refuses the development key file (and would crash-loop on it).
    production = '[engine]\nenvironment = "production"\n[vaults]\ncount = 1\n[localnet]\nenabled = false\n[execution]\nenabled = false\n[strategy]\nurl = \"http://127.0.0.1:9\"\n[signers]\nkeys = []\n'
    config = parse_config(production)
    engine = Engine(config, tmp_path / "var", environ={**ENGINE_ENV, "XORJ_QUANT_API_KEY": "quant-key-for-tests"})
    engine.start()
    try:
        reply = Api(engine).get("/health/ready")
        assert reply.status == 503
        checks = {c["name"]: c for c in reply.json()["checks"]}
        # Armed, but no signer and no chain yet: a production engine must not claim readiness.
        assert checks["kill_switch"]["ok"] and checks["tree"]["ok"]
        for name in ("signer", "rpc", "websocket"):
            assert (checks[name]["status"], checks[name]["ok"]) == ("not configured", False)
    finally:
        assert engine.stop(timeout=10) == []


def test_an_unreachable_audit_store_makes_the_engine_not_ready(engine_factory) -> None:
    dead_pg = f'[audit]\nbackend = "postgres"\n[audit.postgres]\nport = {free_port()}\nconnect_timeout_s = 1\n'
    api = Api(engine_factory(vaults=1, environ=dict(ENGINE_ENV), extra=dead_pg))
    wait_until(lambda: api.get("/health/ready").status == 503, what="not ready")
    checks = {c["name"]: c for c in api.get("/health/ready").json()["checks"]}
    assert checks["audit_store"]["status"] == "fail" and "unavailable" in checks["audit_store"]["detail"]
    assert not checks["kill_switch"]["ok"]  # fail closed: the Audit actor halted trading


def test_activate_halts_and_is_audited(api: Api) -> None:
    reply = api.post(ACTIVATE, {"mode": "emergency", "reason": "operator saw a bad fill"})
    assert reply.status == 202 and reply.json() == {"triggered": True, "mode": "emergency"}
    wait_until(lambda: ks_status(api.engine).complete, what="halt acked")
    status = ks_status(api.engine)
    assert (status.state, status.mode, status.source) == ("TRIGGERED", "emergency", "http")
    assert status.reason == "operator saw a bad fill"
    [(kind, details)] = http_audit(api.engine, 1)
    assert (kind, details["outcome"], details["status"], details["mode"]) == ("HALT", "accepted", 202, "emergency")
    assert details["what"] == "http POST /kill-switch/activate" and details["remote"] == "127.0.0.1"
    assert "signature" not in json.dumps(details)


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("replay", "replayed"),
        ("stale", "stale_timestamp"),
        ("future", "stale_timestamp"),
        ("bad_signature", "bad_signature"),
        ("other_path", "bad_signature"),
        ("wrong_key", "bad_signature"),
        ("missing_headers", "unauthenticated"),
        ("short_nonce", "bad_nonce"),
        ("unicode_timestamp", "bad_timestamp"),
    ],
)
def test_unauthentic_requests_are_refused_and_change_nothing(api: Api, case: str, code: str) -> None:
    body = json.dumps({"mode": "emergency"}).encode()
    headers = signed_headers(api.key, ACTIVATE, body, nonce="nonce-0001")
    if case == "replay":
        first = {"epoch": 0, "nonce": "x", "timestamp": 0, "authorisations": []}
        assert api.post(RECOVER, first, nonce="nonce-0001").status == 409  # authentic: the nonce is now used
    elif case in ("stale", "future"):
        ts = int(time.time()) + (-60 if case == "stale" else 60)  # skew allowed: 30 s
        headers = signed_headers(api.key, ACTIVATE, body, timestamp=ts)
    elif case == "bad_signature":
        ts = int(headers["X-Xorj-Timestamp"])
        headers["X-Xorj-Signature"] = sign_request(api.key, ts, "nonce-0002", ACTIVATE, body)  # signed another nonce
    elif case == "other_path":
        headers = signed_headers(api.key, RECOVER, body)
    elif case == "wrong_key":
        headers = signed_headers(b"k" * 40, ACTIVATE, body)
    elif case == "missing_headers":
        headers = {"Content-Type": "application/json"}
    elif case == "short_nonce":
        headers = signed_headers(api.key, ACTIVATE, body, nonce="n1")
    elif case == "unicode_timestamp":
        headers["X-Xorj-Timestamp"] = "١٧٠٠٠٠٠٠٠٠"
        headers = {k: v.encode().decode("latin-1") for k, v in headers.items()}
    reply = api.post_raw(ACTIVATE, body, headers)
    assert reply.status == 401, reply.body
    assert reply.json()["error"]["code"] == code
    _assert_untouched(api)
    # Unauthenticated: counted in a tally of its source, never an entry of its own.
    [(kind, tally)] = refusal_audit(api.engine, 1)
    assert (kind, tally["remote"], tally["count"], tally["refusals"]) == (
        "SECURITY_VIOLATION", "127.0.0.1", 1, {f"401 {code}": 1}
    )
    assert tally["paths"] == {ACTIVATE: 1}
    authenticated = http_audit(api.engine, 1 if case == "replay" else 0)
    assert [(k, d["status"]) for k, d in authenticated] == ([("RECOVERY", 409)] if case == "replay" else [])


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b"{not json", None, 400, "bad_json"),
        (b"[1, 2]", None, 400, "bad_request"),
        (b'{"mode": "sideways"}', None, 400, "bad_request"),
        (b'{"mode": "graceful", "extra": 1}', None, 400, "bad_request"),
        (b'{"reason": 7}', None, 400, "bad_request"),
        (b"\xff\xfe", None, 400, "bad_json"),
        (b'{"mode": "graceful"}', {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
    ],
)
def test_bad_bodies_get_4xx_and_change_nothing(api: Api, body: bytes, headers, status: int, code: str) -> None:
    h = signed_headers(api.key, ACTIVATE, body)
    h.update(headers or {})
    reply = api.post_raw(ACTIVATE, body, h)
    assert reply.status == status, reply.body
    assert reply.json()["error"]["code"] == code
    _assert_untouched(api)
    assert [(k, d["outcome"], d["status"]) for k, d in http_audit(api.engine, 1)] == [("HALT", "refused", status)]


def test_a_body_over_the_limit_is_never_read_and_only_counted(api: Api) -> None:
    body = b"{" + b" " * 70_000 + b"}"
    reply = api.post_raw(ACTIVATE, body, signed_headers(api.key, ACTIVATE, body))
    assert reply.status == 413 and reply.json()["error"]["code"] == "too_large"
    _assert_untouched(api)
    # Unread, so never authenticated: a tally, not a HALT entry.
    [(kind, tally)] = refusal_audit(api.engine, 1)
    assert (kind, tally["refusals"]) == ("SECURITY_VIOLATION", {"413 too_large": 1})


def test_recover_with_k_of_m_authorisations(api: Api) -> None:
    assert api.post(ACTIVATE, {}).status == 202
    wait_until(lambda: ks_status(api.engine).complete, what="halt acked")
    epoch = ks_status(api.engine).epoch

    forged = _recover_body(epoch, nonce="rec-forged")
    forged["authorisations"][1]["hmac"] = "00" * 32
    refused = api.post(RECOVER, forged)
    assert refused.status == 409 and refused.json()["accepted"] is False
    assert "1 valid authorisations, 2 needed" in refused.json()["reason"]
    assert ks_status(api.engine).state == "TRIGGERED"

    assert api.post(RECOVER, {"epoch": "one"}).status == 400
    ok = api.post(RECOVER, _recover_body(epoch))
    assert ok.status == 200, ok.body
    assert ok.json()["accepted"] is True
    wait_until(lambda: not api.engine.board.status.halted, what="resume")
    assert api.get("/health/ready").status == 200
    entries = http_audit(api.engine, 4)
    outcomes = [(k, d["outcome"], d["status"]) for k, d in entries]
    assert outcomes == [
        ("HALT", "accepted", 202),
        ("RECOVERY", "refused", 409),
        ("RECOVERY", "refused", 400),
        ("RECOVERY", "accepted", 200),
    ]
    assert entries[-1][1]["operator"] == "http" and entries[-1][1]["epoch"] == epoch


def test_without_a_key_the_kill_switch_api_is_disabled(engine_factory) -> None:
    env = {k: v for k, v in ENGINE_ENV.items() if k != HTTP_KEY_ENV}
    api = Api(engine_factory(vaults=1, environ=env, extra=HTTP_FAST))
    reply = api.post(ACTIVATE, {})
    assert reply.status == 503 and reply.json()["error"]["code"] == "auth_unconfigured"
    assert HTTP_KEY_ENV in reply.json()["error"]["message"]
    _assert_untouched(api)
    assert [(k, d["refusals"]) for k, d in refusal_audit(api.engine, 1)] == [
        ("SECURITY_VIOLATION", {"503 auth_unconfigured": 1})
    ]


def test_unknown_routes_and_methods_answer_json(api: Api) -> None:
    missing = api.get("/nope")
    assert missing.status == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = request(api.url + ACTIVATE)
    assert wrong.status == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
    assert wrong.headers["Allow"] == "POST"
    # A call to the kill-switch API is counted even when it never reaches a handler; /nope is not.
    entries = refusal_audit(api.engine, 1)
    assert [(k, d["what"], d["refusals"], d["paths"]) for k, d in entries] == [
        ("SECURITY_VIOLATION", REFUSALS, {"405 method_not_allowed": 1}, {ACTIVATE: 1})
    ]


def test_endpoints_are_registered_and_bound_to_loopback(api: Api) -> None:
    endpoints = api.engine.endpoints()
    assert endpoints["http"].startswith("http://127.0.0.1:")
    assert endpoints["metrics"] == endpoints["http"] + "/metrics"


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "example.com", "::"])
def test_non_loopback_bind_needs_an_explicit_setting(host: str) -> None:
    with pytest.raises(ConfigError, match="allow_non_loopback"):
        parse_config(f'[http]\nhost = "{host}"\n')
    assert parse_config(f'[http]\nhost = "{host}"\nallow_non_loopback = true\n').http.host == host
    assert parse_config('[http]\nhost = "::1"\n').http.host == "::1"

