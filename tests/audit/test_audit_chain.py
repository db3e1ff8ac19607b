"""Canonical JSON, the hash/HMAC definition of docs/AUDIT.md, keys and settings."""

from __future__ import annotations

import hashlib
import hmac
import json
from decimal import Decimal

import pytest

from xorj_actors.audit import (
    GENESIS_HASH,
    CanonicalJSONError,
    canonical_json,
    chain_hash,
    chain_hmac,
    entry_bytes,
    load_hmac_key,
)
from xorj_actors.config import ConfigError, parse_config

KEY = b"test-audit-hmac-key-0123456789abcdef0123456789ab"


def test_canonical_json_sorts_strips_and_keeps_utf8():
    value = {"b": [1, 2.5, None, True], "a": {"z": "é\n\"", "y": Decimal("0.10")}}
    assert canonical_json(value) == '{"a":{"y":"0.10","z":"é\\n\\""},"b":[1,2.5,null,true]}'


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"x": float("nan")}, "details.x"),
        ({"x": {"y": float("-inf")}}, "details.x.y"),
        ({"x": Decimal("NaN")}, "details.x"),
        ({"x": {1, 2}}, "details.x"),
        ({"x": b"bytes"}, "details.x"),
        ({("t",): 1}, "details"),
    ],
)
def test_canonical_json_refuses_what_json_cannot_say(value, where):
    with pytest.raises(CanonicalJSONError, match=rf"^{where.replace('.', '[.]')}: "):
        canonical_json(value)


def test_entry_hash_and_hmac_match_the_documented_definition():
    """Re-derive the documented vector with nothing but json, hashlib and hmac."""
    fields = {
        "id": "018f0a2b-3c4d-7e5f-8a9b-0c1d2e3f4a5b",
        "sequence": 1,
        "timestamp": "2026-11-21T20:00:00.000001Z",
        "event_type": "TRADE_INTENT",
        "severity": "INFO",
        "actor": 'vault-"7"',
        "correlation_id": "trade-42",
        "details": {"amount": "12.50", "mint": "JUP", "memo": "ünïcode"},
    }
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    ours = entry_bytes(
        fields["id"], 1, fields["timestamp"], "TRADE_INTENT", "INFO", fields["actor"], "trade-42",
        canonical_json(fields["details"]),
    )
    assert ours == canonical
    expected_hash = hashlib.sha256(bytes(32) + canonical).hexdigest()
    assert chain_hash(GENESIS_HASH, ours) == expected_hash
    assert chain_hmac(KEY, expected_hash) == hmac.new(KEY, bytes.fromhex(expected_hash), "sha256").hexdigest()


def test_null_correlation_id_is_json_null():
    raw = entry_bytes("i", 3, "t", "HALT", "CRITICAL", "ks", None, "{}")
    assert json.loads(raw)["correlation_id"] is None


def test_key_comes_only_from_the_environment(monkeypatch):
    monkeypatch.setenv("MY_AUDIT_KEY", KEY.decode())
    assert load_hmac_key("MY_AUDIT_KEY", "production") == KEY
    monkeypatch.delenv("MY_AUDIT_KEY")
    with pytest.raises(ValueError, match="set the environment variable MY_AUDIT_KEY"):
        load_hmac_key("MY_AUDIT_KEY", "production")
    dev = load_hmac_key("MY_AUDIT_KEY", "development")
    assert len(dev) >= 32


def test_audit_settings_load_from_toml():
    config = parse_config(
        """
        [audit]
        backend = "postgres"
        max_batch = 64
        [audit.postgres]
        host = "db.internal"
        schema = "audit"
        password_env = "AUDIT_DB_PASSWORD"
        [audit.anchor]
        enabled = true
        endpoint_url = "http://127.0.0.1:4566"
        bucket = "anchors"
        interval_s = 30
        """
    )
    a = config.audit
    assert (a.backend, a.max_batch, a.postgres.host, a.postgres.schema) == ("postgres", 64, "db.internal", "audit")
    assert (a.anchor.enabled, a.anchor.bucket, a.anchor.interval_s) == (True, "anchors", 30.0)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[audit]\nbackend = "mysql"', "audit.backend"),
        ('[audit]\nsqlite_path = "/etc/audit.db"', "audit.sqlite_path"),
        ('[audit]\nsqlite_path = "../audit.db"', "audit.sqlite_path"),
        ("[audit]\nmax_batch = 0", "audit.max_batch"),
        ("[audit]\nmax_pending = 10", "audit.max_pending"),
        ('[audit]\nhmac_key = "secret"', "audit.hmac_key: unknown key"),
        ('[audit.postgres]\npassword = "secret"', "audit.postgres.password: unknown key"),
        ('[audit.postgres]\nschema = "a; DROP TABLE x"', "audit.postgres.schema"),
        ('[audit.anchor]\nprefix = "no-slash"', "audit.anchor.prefix"),
        ("[audit.anchor]\nretention_days = 0", "audit.anchor.retention_days"),
    ],
)
def test_bad_audit_settings_are_refused_by_name(toml, message):
    with pytest.raises(ConfigError, match=message.replace(".", "[.]")):
        parse_config(toml)


def test_canonical_json_takes_subclasses_as_their_base_type():
    import enum
    from collections import OrderedDict

    class Side(str, enum.Enum):
        BUY = "buy"

    class Bps(enum.IntEnum):
        MAX = 50

    value = OrderedDict([("side", Side.BUY), ("bps", Bps.MAX), ("ok", True), ("legs", (1, [2])), (Side.BUY, 1)])
    assert canonical_json(value) == '{"bps":50,"buy":1,"legs":[1,[2]],"ok":true,"side":"buy"}'
