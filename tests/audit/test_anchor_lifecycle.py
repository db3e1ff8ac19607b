"""The anchor bucket's lifecycle (issue 18), on ministack: ``audit bucket --apply`` puts the
configured transitions, reads them back and is idempotent; ``audit bucket`` reports drift; the
transitions leave Object Lock as it was (a delete within retention is still refused)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.audit.test_audit_verify import run_cli
from xorj_actors.audit import AnchorSettings, s3_client
from xorj_actors.audit._lifecycle import RULE_ID, apply_lifecycle, lifecycle_drift, lifecycle_rule


def _config(anchor: AnchorSettings, path: Path) -> Path:
    path.write_text(
        "[execution]\nenabled = false\n[audit.anchor]\nenabled = true\n"
        f'endpoint_url = "{anchor.endpoint_url}"\nbucket = "{anchor.bucket}"\nprefix = "{anchor.prefix}"\n'
        f"retention_days = {anchor.retention_days}\nlifecycle_ia_days = {anchor.lifecycle_ia_days}\n"
        f"lifecycle_archive_days = {anchor.lifecycle_archive_days}\n"
        f'archive_storage_class = "{anchor.archive_storage_class}"\n'
    )
    return path


def test_the_rule_is_transitions_only_scoped_to_the_prefix() -> None:
    rule = lifecycle_rule(AnchorSettings(prefix="audit/", lifecycle_ia_days=30, lifecycle_archive_days=90))
    assert rule == {
        "ID": RULE_ID, "Filter": {"Prefix": "audit/"}, "Status": "Enabled",
        "Transitions": [{"Days": 30, "StorageClass": "STANDARD_IA"}, {"Days": 90, "StorageClass": "GLACIER_IR"}],
    }
    assert lifecycle_rule(AnchorSettings(lifecycle_ia_days=0, lifecycle_archive_days=0)) is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"lifecycle_ia_days": 29}, "lifecycle_ia_days: must be 0 \\(never\\) or >= 30"),
        ({"lifecycle_ia_days": 30, "lifecycle_archive_days": 59}, "lifecycle_archive_days: must be 0 \\(never\\) or >= lifecycle_ia_days \\+ 30"),
        ({"lifecycle_archive_days": -1}, "must be >= 0"),
        ({"archive_storage_class": "STANDARD"}, "archive_storage_class: must be one of"),
    ],
)
def test_bad_lifecycle_settings_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AnchorSettings(**fields).validate()  # type: ignore[arg-type]


def test_apply_puts_the_rules_reads_them_back_and_keeps_others(anchor_settings: AnchorSettings) -> None:
    client = s3_client(anchor_settings)
    theirs = {"ID": "other-prefix", "Filter": {"Prefix": "reports/"}, "Status": "Enabled",
              "Expiration": {"Days": 7}}
    client.put_bucket_lifecycle_configuration(Bucket=anchor_settings.bucket, LifecycleConfiguration={"Rules": [theirs]})
    assert [str(d) for d in lifecycle_drift(client, anchor_settings)] == [
        f"rule {RULE_ID} is missing: `xorj-actors audit bucket --apply` puts it"
    ]
    assert apply_lifecycle(client, anchor_settings) == []
    assert apply_lifecycle(client, anchor_settings) == []  # idempotent: one rule of ours, not two
    rules = {r["ID"]: r for r in client.get_bucket_lifecycle_configuration(Bucket=anchor_settings.bucket)["Rules"]}
    assert set(rules) == {"other-prefix", RULE_ID}
    ours = rules[RULE_ID]
    assert ours["Filter"] == {"Prefix": "audit/"} and ours["Status"] == "Enabled"
    assert [(t["Days"], t["StorageClass"]) for t in ours["Transitions"]] == [(30, "STANDARD_IA"), (90, "GLACIER_IR")]
    assert "Expiration" not in ours and "NoncurrentVersionExpiration" not in ours
    changed = dataclasses.replace(anchor_settings, lifecycle_archive_days=180, archive_storage_class="DEEP_ARCHIVE")
    assert "differs" in str(lifecycle_drift(client, changed)[0])
    assert apply_lifecycle(client, changed) == []


def test_an_expiry_over_the_anchors_is_reported(anchor_settings: AnchorSettings) -> None:
    client = s3_client(anchor_settings)
    apply_lifecycle(client, anchor_settings)
    rules = client.get_bucket_lifecycle_configuration(Bucket=anchor_settings.bucket)["Rules"]
    rules.append({"ID": "sweep", "Filter": {"Prefix": ""}, "Status": "Enabled", "Expiration": {"Days": 1}})
    client.put_bucket_lifecycle_configuration(Bucket=anchor_settings.bucket, LifecycleConfiguration={"Rules": rules})
    (drift,) = lifecycle_drift(client, anchor_settings)
    assert drift.hides_anchors and str(drift) == "rule 'sweep' expires objects under 'audit/': anchors must never expire"


def test_cli_bucket_apply_then_check(anchor_settings: AnchorSettings, tmp_path: Path, capsys) -> None:
    fresh = dataclasses.replace(anchor_settings, bucket=f"audit-{uuid.uuid4().hex[:16]}")
    config = ["--config", str(_config(fresh, tmp_path / "c.toml"))]
    assert run_cli(["bucket", *config]) == 2  # no bucket yet: cannot
    assert "NoSuchBucket" in capsys.readouterr().err
    assert run_cli(["bucket", "--apply", *config]) == 0
    assert capsys.readouterr().out == (
        f"OK: s3://{fresh.bucket}: Object Lock enabled, lifecycle as configured"
        " (transitions: STANDARD_IA after 30 days, GLACIER_IR after 90 days; no expiry)\n"
    )
    assert run_cli(["bucket", *config]) == 0
    client = s3_client(fresh)
    client.delete_bucket_lifecycle(Bucket=fresh.bucket)
    assert run_cli(["bucket", *config]) == 1
    assert f"DRIFT: s3://{fresh.bucket}: rule {RULE_ID} is missing" in capsys.readouterr().out


def test_cli_bucket_warns_of_an_archive_class_that_cannot_be_read(anchor_settings: AnchorSettings, tmp_path: Path,
                                                                   capsys) -> None:
    assert run_cli(["bucket", "--apply", "--config", str(_config(anchor_settings, tmp_path / "ir.toml"))]) == 0
    assert "WARNING" not in capsys.readouterr().err  # GLACIER_IR, the default: read as it is
    glacier = dataclasses.replace(anchor_settings, archive_storage_class="GLACIER")
    assert run_cli(["bucket", "--apply", "--config", str(_config(glacier, tmp_path / "g.toml"))]) == 0
    err = capsys.readouterr().err
    assert f"WARNING: s3://{glacier.bucket}: anchors older than 90 days go to GLACIER" in err
    assert "restore, verify against the anchors and proof checks stop at them" in err


def test_a_bucket_without_object_lock_is_drift(anchor_settings: AnchorSettings, tmp_path: Path, capsys) -> None:
    unlocked = dataclasses.replace(anchor_settings, bucket=f"plain-{uuid.uuid4().hex[:16]}")
    s3_client(unlocked).create_bucket(Bucket=unlocked.bucket)
    assert run_cli(["bucket", "--apply", "--config", str(_config(unlocked, tmp_path / "c.toml"))]) == 1
    assert "Object Lock is not enabled" in capsys.readouterr().out


def test_a_delete_within_retention_is_refused_under_the_lifecycle(anchor_settings: AnchorSettings) -> None:
    client = s3_client(anchor_settings)
    assert apply_lifecycle(client, anchor_settings) == []
    key = f"{anchor_settings.prefix}00000000000000000001-{'a' * 64}-{'b' * 64}.jsonl"
    put = client.put_object(
        Bucket=anchor_settings.bucket, Key=key, Body=b"{}\n", ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=datetime.now(timezone.utc) + timedelta(days=1),
    )
    with pytest.raises(ClientError) as exc:
        client.delete_object(Bucket=anchor_settings.bucket, Key=key, VersionId=put["VersionId"])
    assert exc.value.response["Error"]["Code"] == "AccessDenied"
    head = client.head_object(Bucket=anchor_settings.bucket, Key=key, VersionId=put["VersionId"])
    assert head["ObjectLockMode"] == "COMPLIANCE"


def test_check_shows_lifecycle_drift_and_fails_an_expiry(anchor_settings: AnchorSettings, tmp_path: Path) -> None:
    from tests.ops.test_check_cli import PRODUCTION
    from xorj_actors.check import CheckContext, Status, check_audit_anchor
    from xorj_actors.config import parse_config

    a = anchor_settings
    config = parse_config(PRODUCTION + f'[audit.anchor]\nenabled = true\nendpoint_url = "{a.endpoint_url}"\n'
                                       f'bucket = "{a.bucket}"\n')
    drifted = check_audit_anchor(CheckContext(config, tmp_path, {}))
    assert drifted.status is Status.OK and f"lifecycle drift: rule {RULE_ID} is missing" in drifted.detail
    client = s3_client(a)
    apply_lifecycle(client, config.audit.anchor)
    ok = check_audit_anchor(CheckContext(config, tmp_path, {}))
    assert ok.status is Status.OK and ok.detail.endswith("; lifecycle as configured"), ok.detail
    rules = client.get_bucket_lifecycle_configuration(Bucket=a.bucket)["Rules"]
    rules.append({"ID": "sweep", "Filter": {"Prefix": "audit/"}, "Status": "Enabled", "Expiration": {"Days": 30}})
    client.put_bucket_lifecycle_configuration(Bucket=a.bucket, LifecycleConfiguration={"Rules": rules})
    bad = check_audit_anchor(CheckContext(config, tmp_path, {}))
    assert bad.status is Status.FAIL and "rule 'sweep' expires objects under 'audit/'" in bad.detail, bad.detail


def _archive(anchor: AnchorSettings, storage_class: str) -> str:
    """The newest anchor moved to ``storage_class`` as the lifecycle rule moves it (ministack runs no
    lifecycle: the object is copied onto itself in that class, the version S3 then serves)."""
    from xorj_actors.audit import list_anchors

    client = s3_client(anchor)
    key = list_anchors(client, anchor)[-1].source
    client.copy_object(Bucket=anchor.bucket, Key=key, CopySource={"Bucket": anchor.bucket, "Key": key},
                       StorageClass=storage_class, MetadataDirective="COPY")
    assert client.head_object(Bucket=anchor.bucket, Key=key).get("StorageClass") == storage_class
    return key


def test_the_default_archive_class_is_read_as_it_is(
    audit_settings, anchor_settings, data_dir, audit_key, tmp_path, capsys
) -> None:
    """Anchors past ``lifecycle_archive_days`` in the default class still restore, verify and prove."""
    from tests.audit.test_audit_anchor import _anchored_config
    from tests.audit.test_audit_verify import fill
    from tests.plugins.audit import lose_database

    default = AnchorSettings().archive_storage_class
    assert default == "GLACIER_IR"
    common = ["--config", str(_anchored_config(audit_settings, anchor_settings, tmp_path)), "--data-dir", str(data_dir)]
    fill(audit_settings, data_dir)
    assert run_cli(["anchor", *common]) == 0
    _archive(anchor_settings, default)
    lose_database(audit_settings, data_dir)
    assert run_cli(["restore", "--from-anchors", *common]) == 0
    assert "chain default: restored 10 entries from 1 anchors" in capsys.readouterr().out


def test_an_archived_anchor_names_itself_and_the_restore_procedure(
    audit_settings, anchor_settings, data_dir, audit_key, tmp_path, capsys
) -> None:
    """GLACIER: S3 refuses the read (InvalidObjectState); the restore says which object and how to
    restore it, and the documented procedure then works."""
    from tests.audit.test_audit_anchor import _anchored_config
    from tests.audit.test_audit_verify import fill
    from tests.helpers import wait_until
    from tests.plugins.audit import lose_database
    from xorj_actors.audit import AnchorError, AnchorHead, read_segment

    common = ["--config", str(_anchored_config(audit_settings, anchor_settings, tmp_path)), "--data-dir", str(data_dir)]
    fill(audit_settings, data_dir)
    assert run_cli(["anchor", *common]) == 0
    key = _archive(anchor_settings, "GLACIER")
    where, bucket = f"s3://{anchor_settings.bucket}/{key}", anchor_settings.bucket
    client = s3_client(anchor_settings)
    with pytest.raises(AnchorError) as exc:
        read_segment(client, anchor_settings, AnchorHead(10, "", "", key))
    assert str(exc.value).startswith(f"anchor {where} is archived (GLACIER) and cannot be read until it is restored:")
    assert f"aws s3api restore-object --bucket {bucket} --key {key} --restore-request" in str(exc.value)
    assert '"Archived anchors"' in str(exc.value)
    lose_database(audit_settings, data_dir)
    capsys.readouterr()
    assert run_cli(["restore", "--from-anchors", *common]) == 2
    assert f"anchor {where} is archived (GLACIER)" in capsys.readouterr().err
    # The procedure docs/AUDIT.md gives, then the same restore again.
    client.restore_object(Bucket=bucket, Key=key, RestoreRequest={"Days": 7, "GlacierJobParameters": {"Tier": "Standard"}})
    wait_until(lambda: 'ongoing-request="false"' in client.head_object(Bucket=bucket, Key=key).get("Restore", ""),
               30, "the restored copy")
    assert run_cli(["restore", "--from-anchors", *common]) == 0
    assert "chain default: restored 10 entries from 1 anchors" in capsys.readouterr().out


def test_an_anchor_is_retained_at_least_retention_days_from_when_s3_sees_it(
    audit_settings, anchor_settings, data_dir, audit_key, tmp_path
) -> None:
    """deploy/iam denies a put whose remaining retention is under ``retention_days``, counted by S3
    when the request arrives: the retention date still covers them after the put has landed."""
    from tests.audit.test_audit_anchor import _anchored_config
    from tests.audit.test_audit_verify import fill
    from xorj_actors.audit import list_anchors

    common = ["--config", str(_anchored_config(audit_settings, anchor_settings, tmp_path)), "--data-dir", str(data_dir)]
    fill(audit_settings, data_dir)
    assert run_cli(["anchor", *common]) == 0
    client = s3_client(anchor_settings)
    head = client.head_object(Bucket=anchor_settings.bucket, Key=list_anchors(client, anchor_settings)[-1].source)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockRetainUntilDate"] - datetime.now(timezone.utc) >= timedelta(days=1)  # retention_days = 1
