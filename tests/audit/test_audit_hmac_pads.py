"""The hot path's keyed-once HMAC (``hmac_template`` + ``chain_step``) hashes exactly the bytes
:func:`chain_hash` and :func:`chain_hmac` define, for the writer and for verify alike."""

from __future__ import annotations

import hashlib
import hmac
import json
import random

import pytest

from xorj_actors.audit import GENESIS_HASH, AuditLog, chain_hash, chain_hmac, entry_bytes
from xorj_actors.audit._chain import chain_step, hmac_template


@pytest.mark.parametrize("key_len", [0, 1, 32, 48, 63, 64, 65, 128, 200])
def test_chain_step_equals_the_reference_hash_and_hmac(key_len):
    """Keys shorter than, as long as and longer than SHA-256's block (hashed first, RFC 2104)."""
    rnd = random.Random(key_len)
    key = rnd.randbytes(key_len)
    pads = hmac_template(key)
    for size in (0, 1, 31, 32, 55, 56, 64, 119, 120, 300, 1000):
        prev, canonical = rnd.randbytes(32), rnd.randbytes(size)
        raw, h, tag = chain_step(pads, prev, canonical)
        assert raw == hashlib.sha256(prev + canonical).digest()
        assert h == chain_hash(prev.hex(), canonical)
        assert tag == chain_hmac(key, h) == hmac.new(key, raw, "sha256").hexdigest()


def test_pads_are_not_spent_by_use():
    """A template serves every link: each step copies the keyed states, never updates them."""
    key = b"k" * 40
    pads = hmac_template(key)
    first = chain_step(pads, bytes(32), b"one")
    chain_step(pads, bytes(32), b"two")
    assert chain_step(pads, bytes(32), b"one") == first


def test_appended_entries_hash_and_hmac_as_defined(audit_settings, data_dir, audit_key, raw_sql):
    """What the writer stores, re-derived with nothing but json, hashlib and hmac."""
    log = AuditLog.open(audit_settings, data_dir, "production")
    try:
        for i in range(5):
            log.append("TRADE_INTENT", actor=f'vault-"{i}"\n', correlation_id=None if i % 2 else f"t{i}",
                       details={"i": i, "memo": "ünïcode\t\x01"})
    finally:
        log.close()
    rows = raw_sql("SELECT id, sequence, timestamp, event_type, severity, actor, correlation_id, details, "
                   "prev_hash, hash, hmac FROM {t} ORDER BY sequence")
    prev = GENESIS_HASH
    for eid, seq, ts, etype, sev, actor, corr, details, prev_hash, h, tag in rows:
        fields = {"id": eid, "sequence": seq, "timestamp": ts, "event_type": etype, "severity": sev,
                  "actor": actor, "correlation_id": corr, "details": json.loads(details)}
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        assert canonical == entry_bytes(eid, seq, ts, etype, sev, actor, corr, details)
        assert prev_hash == prev
        assert h == hashlib.sha256(bytes.fromhex(prev) + canonical).hexdigest()
        assert tag == hmac.new(audit_key, bytes.fromhex(h), "sha256").hexdigest()
        prev = h
    assert len(rows) == 5
