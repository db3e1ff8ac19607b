"""A reload that rotates the audit key (review 17): the credential provider and the audit writer
never end on different keys, a retired key never opens a second epoch, and a rotation not
confirmed is never logged as done."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from pykka import ActorDeadError

from xorj_actors.audit import AuditLog, AuditSettings, AuditUnavailable, KeyRing, fingerprint, open_store
from xorj_actors.engine._reload import RotationRefused, SecretsReload
from tests.secrets.test_rotation import AUDIT, Node, _config, _put

RETIRED = "XORJ_AUDIT_RETIRED_HMAC_KEYS"


def _key(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex}{uuid.uuid4().hex}"


@pytest.fixture
def rig(tmp_path: Path):
    """A node whose audit key is in a 0600 file, and a real audit writer (SQLite) on that key."""
    secrets, data = tmp_path / "secrets", tmp_path / "var"
    secrets.mkdir()
    data.mkdir()
    old = _key("audit")
    _put(secrets, AUDIT, old)
    _put(secrets, RETIRED, _key("earlier"))
    node = Node(_config(secrets, keys='["audit"]'))
    store = open_store(AuditSettings(), data)
    store.close()
    log = AuditLog(store, old.encode())
    try:
        yield node, secrets, log, old
    finally:
        log.close()


def _reload(node: Node, log: AuditLog, rotate) -> SecretsReload:
    return SecretsReload(node.provider, node.reload.config, node.environ, node.redactor, rotate_audit_key=rotate,
                         writer_fingerprint=lambda: log.key_fingerprint)


def _new_key(secrets: Path, old: str) -> str:
    """What a rotation writes: the key in use retired first, then the new key."""
    _put(secrets, RETIRED, f"{(secrets / RETIRED).read_text().strip()},{old}")
    _put(secrets, AUDIT, new := _key("audit"))
    return new


def test_a_rotation_committed_then_a_failure_keeps_the_new_key_where_the_writer_is(rig, logs) -> None:
    node, secrets, log, old = rig

    def rotate(keys: KeyRing, reason: str):
        log.rotate(keys.current, reason)
        # FAKE fault: the kill switch gone after the rotation committed (its rekey raises).
        raise ActorDeadError("kill switch not running")

    new = _new_key(secrets, old)
    answer = _reload(node, log, rotate)("ctl")
    assert log.key_fingerprint == fingerprint(new.encode())
    assert node.provider.get(AUDIT) == node.environ[AUDIT] == new  # before: back to the old key, the writer on the new
    assert answer["audit_key"]["confirmed"] is False and AUDIT in answer["changed"]
    assert not any("audit key rotated (" in line for line in logs)


def test_a_refused_rotation_keeps_the_old_key(rig) -> None:
    node, secrets, log, old = rig

    def rotate(keys: KeyRing, reason: str):
        raise RotationRefused("AuditUnavailable: audit log unavailable")  # what the engine raises: nothing queued

    _new_key(secrets, old)
    answer = _reload(node, log, rotate)("ctl")
    assert "did not rotate" in answer["audit_key"]["refused"] and AUDIT in answer["held"]
    assert node.provider.get(AUDIT) == node.environ[AUDIT] == old and log.key_fingerprint == fingerprint(old.encode())


def test_an_unconfirmed_rotation_the_writer_did_not_take_keeps_the_old_key(rig) -> None:
    node, secrets, log, old = rig

    def rotate(keys: KeyRing, reason: str):
        raise AuditUnavailable("audit log closed before the entry was written")  # failed after the ask

    _new_key(secrets, old)
    answer = _reload(node, log, rotate)("ctl")
    assert "refused" in answer["audit_key"] and node.provider.get(AUDIT) == old


def test_a_retired_key_is_never_taken_again(rig) -> None:
    node, secrets, log, old = rig
    earlier = (secrets / RETIRED).read_text().strip()
    _put(secrets, RETIRED, f"{earlier},{old}")
    _put(secrets, AUDIT, earlier)  # back to a retired key (a leaked one, perhaps)
    answer = _reload(node, log, lambda keys, reason: pytest.fail("rotated to a retired key"))("ctl")
    assert "is among the retired keys" in answer["audit_key"]["refused"] and node.provider.get(AUDIT) == old
