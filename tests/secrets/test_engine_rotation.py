"""Key rotation in a running engine (docs/SECURITY.md, "Key rotation"): a due HTTP key rotated by
the schedule through its file, or on ``ctl rotate-key`` through Secrets Manager (ministack); the
engine takes it at once, the previous key works within its grace only; every rotation audited;
no value in the logs, the audit log or any answer."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.helpers import cli
from tests.ops.test_ctl_json import documented
from tests.plugins.engine import wait_until
from xorj_actors.key_rotation import fingerprint
from tests.secrets.test_engine_secrets import ACTIVATE, Rig, _value, rig  # noqa: F401 - the fixture

HTTP, AUDIT, RETIRED = "XORJ_HTTP_HMAC_KEY", "XORJ_AUDIT_HMAC_KEY", "XORJ_AUDIT_RETIRED_HMAC_KEYS"
HALT = {"mode": "graceful", "reason": "rotation drill"}


def _schedule(rig: Rig, grace_s: float) -> None:
    rig.config.write_text(rig.config.read_text() + f"""
[http]
previous_key_grace_s = {grace_s}
[secrets.rotation]
enabled = true
keys = ["http"]
interval_s = 86400
check_every_s = 1
""")


def _up(rig: Rig) -> None:
    rig.run()
    wait_until(lambda: rig.proc.poll() is not None or "http" in ((rig.status() or {}).get("endpoints") or {}), 60,
               "engine up")
    assert rig.proc.poll() is None, rig.log.read_text()[-3000:]


def _rotations(rig: Rig) -> list[dict]:
    """The audit log's key-rotation entries (SQLite)."""
    return [d for d in _entries(rig, "SYSTEM_EVENT") if d.get("what") == "key rotation"]


def _entries(rig: Rig, event_type: str) -> list[dict]:
    """The details of the audit log's entries of one type (SQLite), oldest first."""
    db = sqlite3.connect(rig.data / "audit.db")
    try:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                  if t.startswith("audit_entries")]
        rows = [row for t in tables for row in db.execute(
            f"SELECT timestamp, details FROM \"{t}\" WHERE event_type = ?", (event_type,))]
    finally:
        db.close()
    return [json.loads(r[1]) for r in sorted(rows)]


def _never_written(rig: Rig) -> None:
    haystacks = {"stderr": rig.log.read_bytes(), "answers": "\n".join(rig.answers).encode()}
    haystacks |= {str(p): p.read_bytes() for p in rig.data.rglob("*") if p.is_file()}
    for value in rig.values:
        for name, text in haystacks.items():
            assert value.encode() not in text, f"a secret value is written in {name}"


def _overdue(rig: Rig, name: str) -> str:
    """A key in a 0600 file written eight days ago (past the one-day interval): its value."""
    rig.file_secret(name, old := _value(name.lower()))
    week_ago = (rig.secret_dir / name).stat().st_mtime - 8 * 86400
    os.utime(rig.secret_dir / name, (week_ago, week_ago))
    return old


def _rotated(rig: Rig, name: str, old: str) -> str:
    """The new value the engine's schedule writes over ``old`` (a 0600 file)."""
    wait_until(lambda: (rig.secret_dir / name).read_text().strip() != old, 30, "the scheduled rotation")
    new = (rig.secret_dir / name).read_text().strip()
    rig.values.append(new)
    assert (rig.secret_dir / name).stat().st_mode & 0o777 == 0o600
    return new


def _base_secrets(rig: Rig) -> None:
    rig.file_secret("XORJ_AUDIT_HMAC_KEY", _value("audit"))
    rig.aws_secret("XORJ_SLACK_SIGNING_SECRET", _value("slack"), create=True)
    rig.aws_secret("XORJ_QUANT_API_KEY", _value("quant"), create=True)


def test_a_due_http_key_is_rotated_by_the_schedule_and_the_old_one_works_within_its_grace(rig: Rig) -> None:
    _schedule(rig, grace_s=300)
    _base_secrets(rig)
    old = _overdue(rig, HTTP)
    _up(rig)
    new = _rotated(rig, HTTP, old)
    wait_until(lambda: rig.post(new, ACTIVATE, HALT) == 202, 20, "the new key taken")
    assert rig.post(old, ACTIVATE, HALT) != 401  # the previous key, within its grace (halted: 202 or 409)
    assert rig.post(_value("never"), ACTIVATE, HALT) == 401

    out = rig.ctl("keys", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    documented()["keys"].check("keys", rows)
    row = next(r for r in rows if r["name"] == HTTP)
    assert row["source"] == "file" and row["state"] == "ok" and row["age_s"] < 600 and row["key"] == "http"
    assert "XORJ_HTTP_HMAC_KEY" in rig.ctl("keys").stdout

    out = rig.ctl("rotate-key", "http", "--json")  # an operator's rotation now
    answer = json.loads(out.stdout)
    documented()["rotate-key"].check("rotate-key", answer)
    assert out.returncode == 0 and answer["rotated"] and answer["trigger"] == "ctl", out.stdout
    newer = (rig.secret_dir / HTTP).read_text().strip()
    rig.values.append(newer)
    assert answer["new_fingerprint"] != answer["old_fingerprint"] == row["fingerprint"]
    assert rig.post(newer, ACTIVATE, HALT) != 401
    assert rig.post(new, ACTIVATE, HALT) != 401  # the previous one, in its grace
    assert rig.post(old, ACTIVATE, HALT) == 401  # two rotations back: no grace left for it
    rig.stop()
    assert rig.proc.returncode == 0, rig.log.read_text()[-3000:]

    audited = _rotations(rig)
    assert [(a["trigger"], a["outcome"], a["source"]) for a in audited] == [("schedule", "rotated", "file"),
                                                                            ("ctl", "rotated", "file")]
    assert audited[1] == {**answer}
    _never_written(rig)


def test_a_rotation_through_secrets_manager_without_grace_ends_the_old_key_at_once(rig: Rig) -> None:
    _schedule(rig, grace_s=0)
    _base_secrets(rig)
    old = _value("http")
    rig.aws_secret(HTTP, old, create=True)
    _up(rig)
    assert rig.post(old, ACTIVATE, HALT) == 202  # fresh in Secrets Manager: not due, not rotated

    out = rig.ctl("rotate-key", "http", "--json")
    answer = json.loads(out.stdout)
    assert out.returncode == 0 and answer["rotated"] and answer["source"] == "aws", out.stdout
    new = rig.sm.get_secret_value(SecretId=rig.prefix + HTTP)["SecretString"]
    rig.values.append(new)
    previous = rig.sm.get_secret_value(SecretId=rig.prefix + HTTP, VersionStage="AWSPREVIOUS")["SecretString"]
    assert previous == old and new != old
    assert rig.post(old, ACTIVATE, HALT) == 401  # no grace configured
    assert rig.post(new, ACTIVATE, HALT) != 401

    rig.stop()
    assert rig.proc.returncode == 0, rig.log.read_text()[-3000:]
    assert [(a["key"], a["outcome"], a["source"]) for a in _rotations(rig)] == [("http", "rotated", "aws")]
    _never_written(rig)


def test_a_scheduled_rotation_of_the_audit_key_opens_a_key_epoch_and_the_log_verifies(rig: Rig) -> None:
    _schedule(rig, grace_s=300)
    rig.config.write_text(rig.config.read_text().replace('keys = ["http"]', 'keys = ["audit"]'))
    rig.aws_secret("XORJ_SLACK_SIGNING_SECRET", _value("slack"), create=True)
    rig.aws_secret("XORJ_QUANT_API_KEY", _value("quant"), create=True)
    rig.file_secret(HTTP, http := _value("http"))
    old = _overdue(rig, AUDIT)
    _up(rig)
    new = _rotated(rig, AUDIT, old)
    assert (rig.secret_dir / RETIRED).read_text().strip() == old  # retired first, so the old epoch verifies
    assert (rig.secret_dir / RETIRED).stat().st_mode & 0o777 == 0o600
    wait_until(lambda: any(a["outcome"] == "rotated" for a in _rotations(rig)), 20, "the rotation audited")
    assert rig.post(http, ACTIVATE, HALT) == 202  # the engine writes on: a halt, audited under the new key
    wait_until(lambda: rig.status()["kill_switch"]["complete"], 20, "halt complete")
    rig.stop()
    assert rig.proc.returncode == 0, rig.log.read_text()[-3000:]

    [rotation] = _rotations(rig)
    assert rotation["trigger"] == "schedule" and rotation["key"] == "audit" and rotation["source"] == "file"
    assert [e["new_fingerprint"] for e in _entries(rig, "KEY_ROTATION")] == [rotation["new_fingerprint"]]
    verify = _verify(rig)  # no anchoring configured: UNANCHORED (3) is its best verdict, the chain and MACs intact
    assert verify.returncode == 3 and "chain and HMACs intact" in verify.stdout, verify.stdout + verify.stderr
    assert f"2 key epochs ({fingerprint(old)} -> {fingerprint(new)})" in verify.stdout
    (rig.secret_dir / RETIRED).unlink()  # without the retired key the old epoch cannot be checked
    assert _verify(rig).returncode not in (0, 3)
    _never_written(rig)


def _verify(rig: Rig) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(cli("audit", "verify", "--config", str(rig.config), "--data-dir", str(rig.data)),
                         capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in os.environ.items() if not k.startswith("XORJ_")})
    rig.answers += [out.stdout, out.stderr]
    return out


def test_a_halted_engine_postpones_the_schedule_but_rotates_on_ctl_once_the_request_is_audited(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KILL_SWITCH_ACTIVE", "true")  # the engine starts halted
    _schedule(rig, grace_s=300)
    _base_secrets(rig)
    old = _overdue(rig, HTTP)
    _up(rig)
    wait_until(lambda: "scheduled rotations postponed: the kill switch is" in rig.log.read_text(), 30,
               "the schedule postponed")
    assert (rig.secret_dir / HTTP).read_text().strip() == old  # overdue, but not rotated while halted

    out = rig.ctl("rotate-key", "http", "--json")  # an operator's rotation: allowed, audited first
    answer = json.loads(out.stdout)
    assert out.returncode == 0 and answer["rotated"], out.stdout
    rig.values.append((rig.secret_dir / HTTP).read_text().strip())
    rig.stop()
    assert rig.proc.returncode == 0, rig.log.read_text()[-3000:]
    whats = [d.get("what") for d in _entries(rig, "SYSTEM_EVENT") if str(d.get("what", "")).startswith("key rotation")]
    assert whats == ["key rotation requested", "key rotation"]
    _never_written(rig)
