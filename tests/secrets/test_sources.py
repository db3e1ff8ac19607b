"""The credential provider: the environment, 0600 files and Secrets Manager (ministack), in order."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import boto3
import pytest

from xorj_actors.config import parse_config
from xorj_actors.credentials import missing_report, open_credentials, required_secret_names
from xorj_actors.secrets import (
    AwsSourceSettings,
    CredentialProvider,
    FileSourceSettings,
    SecretsSettings,
    Source,
)

NAME = "XORJ_TEST_SECRET"


def _file(directory: Path, name: str, value: str, mode: int = 0o600) -> Path:
    path = directory / name
    path.write_text(value)
    path.chmod(mode)
    return path


def _settings(tmp_path: Path, *order: Source, aws: AwsSourceSettings | None = None) -> SecretsSettings:
    return SecretsSettings(order=order, file=FileSourceSettings(dir=str(tmp_path)), aws=aws or AwsSourceSettings())


def test_the_default_is_the_environment_alone() -> None:
    provider = CredentialProvider(SecretsSettings(), {NAME: "from-the-environment"})
    res = provider.resolve([NAME, "XORJ_OTHER"])
    assert res.missing == () and res.sources == {NAME: Source.ENV}
    assert provider.get(NAME) == "from-the-environment"
    assert provider.environ()[NAME] == "from-the-environment"


def test_sources_are_tried_in_the_configured_order(tmp_path: Path) -> None:
    _file(tmp_path, NAME, "from-the-file\n")  # the newline an editor adds is not part of the value
    first_file = CredentialProvider(_settings(tmp_path, Source.FILE, Source.ENV), {NAME: "from-the-environment"})
    first_file.resolve([NAME])
    assert first_file.get(NAME) == "from-the-file"
    first_env = CredentialProvider(_settings(tmp_path, Source.ENV, Source.FILE), {NAME: "from-the-environment"})
    first_env.resolve([NAME])
    assert first_env.get(NAME) == "from-the-environment"
    only_file = CredentialProvider(_settings(tmp_path, Source.ENV, Source.FILE), {})
    assert only_file.resolve([NAME]).sources == {NAME: Source.FILE}


@pytest.mark.parametrize("mode", [0o640, 0o644, 0o400, 0o660, 0o604])
def test_a_file_others_may_read_is_refused_naming_the_file_and_its_mode(tmp_path: Path, mode: int) -> None:
    path = _file(tmp_path, NAME, "a-secret-value-in-a-loose-file", mode)
    provider = CredentialProvider(_settings(tmp_path, Source.FILE, Source.ENV), {NAME: "from-the-environment"})
    res = provider.resolve([NAME])
    [missing] = res.missing
    assert str(path) in missing.describe() and f"mode {mode:04o}" in missing.describe()
    assert "a-secret-value-in-a-loose-file" not in missing.describe()
    assert provider.get(NAME) is None  # refused, never skipped over to the next source


def test_a_symlink_is_not_followed(tmp_path: Path) -> None:
    target = _file(tmp_path, "elsewhere", "a-secret-value-somewhere")
    (tmp_path / NAME).symlink_to(target)
    res = CredentialProvider(_settings(tmp_path, Source.FILE), {}).resolve([NAME])
    assert res.missing and "cannot open" in res.missing[0].describe()


def test_a_missing_required_credential_names_every_place_looked(tmp_path: Path) -> None:
    res = CredentialProvider(_settings(tmp_path, Source.ENV, Source.FILE), {}).resolve([], required=[NAME])
    report = missing_report(res)
    assert f"environment variable {NAME}" in report and f"file {tmp_path / NAME}" in report
    assert CredentialProvider(_settings(tmp_path, Source.ENV), {}).resolve([NAME]).missing == ()  # optional


def test_reload_takes_rotated_values_and_keeps_old_ones_when_one_is_missing(tmp_path: Path) -> None:
    _file(tmp_path, NAME, "first-value-of-the-secret")
    provider = CredentialProvider(_settings(tmp_path, Source.FILE), {})
    provider.resolve([NAME, "XORJ_HELD"], required=[NAME])
    _file(tmp_path, NAME, "second-value-of-the-secret")
    res = provider.reload([NAME])
    assert res.changed == (NAME,) and provider.get(NAME) == "second-value-of-the-secret"
    (tmp_path / NAME).unlink()
    res = provider.reload([NAME])
    assert res.missing and provider.get(NAME) == "second-value-of-the-secret"


def test_a_held_credential_keeps_its_value(tmp_path: Path) -> None:
    _file(tmp_path, NAME, "the-key-this-process-uses")
    provider = CredentialProvider(_settings(tmp_path, Source.FILE), {})
    provider.resolve([NAME])
    _file(tmp_path, NAME, "a-rotated-key-in-the-source")
    res = provider.reload(hold=[NAME])
    assert res.held == (NAME,) and res.changed == ()
    assert provider.get(NAME) == "the-key-this-process-uses"


def test_secrets_manager_through_ministack(tmp_path: Path, ministack_endpoint: str, aws_env: None) -> None:
    prefix = f"xorj-test-{uuid.uuid4().hex[:8]}/"
    client = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=ministack_endpoint)
    client.create_secret(Name=prefix + NAME, SecretString="from-secrets-manager")
    aws = AwsSourceSettings(endpoint_url=ministack_endpoint, prefix=prefix)
    provider = CredentialProvider(_settings(tmp_path, Source.ENV, Source.AWS, aws=aws), {})
    res = provider.resolve([NAME, "XORJ_NOT_THERE"], required=[NAME])
    assert res.missing == () and res.sources == {NAME: Source.AWS}
    assert provider.get(NAME) == "from-secrets-manager"
    client.put_secret_value(SecretId=prefix + NAME, SecretString="rotated-in-secrets-manager")
    assert provider.reload().changed == (NAME,) and provider.get(NAME) == "rotated-in-secrets-manager"
    missing = provider.resolve([], required=["XORJ_NOT_THERE"]).missing[0].describe()
    assert f"AWS Secrets Manager secret {prefix}XORJ_NOT_THERE" in missing


def test_an_unreachable_secrets_manager_is_a_clear_refusal(tmp_path: Path, aws_env: None) -> None:
    aws = AwsSourceSettings(endpoint_url="http://127.0.0.1:9", timeout_s=0.5)
    res = CredentialProvider(_settings(tmp_path, Source.AWS, aws=aws), {}).resolve([NAME])
    assert res.missing and "EndpointConnectionError" in res.missing[0].describe()


def test_production_requires_every_key_the_config_names() -> None:
    dev = parse_config("[strategy]\nurl = \"http://127.0.0.1:9\"\n")
    assert required_secret_names(dev) == ()
    cfg = parse_config('[secrets]\nrequired = ["XORJ_AUDIT_HMAC_KEY"]\n[strategy]\nurl = "http://127.0.0.1:9"\n')
    assert required_secret_names(cfg) == ("XORJ_AUDIT_HMAC_KEY",)
    _, res = open_credentials(cfg, {}, install=False)
    assert [m.name for m in res.missing] == ["XORJ_AUDIT_HMAC_KEY"]


def test_the_redactor_learns_rotated_values_and_keeps_masking_the_old() -> None:
    from xorj_actors.redaction import MASK, Redactor

    redact = Redactor(["the-first-secret-value"])
    redact.add(["the-rotated-secret-value", "short"])
    text = "old the-first-secret-value new the-rotated-secret-value short"
    assert redact(text) == f"old {MASK} new {MASK} short"  # short values are never masked
    # The retired audit keys: a comma-separated list, each key masked when it shows up alone.
    redact.add(["retired-audit-key-number-one-000000000000000,retired-audit-key-number-two-00000000000000"])
    assert redact("was retired-audit-key-number-two-00000000000000.") == f"was {MASK}."
    # The documented spaced form ("OLD, NEW"): each part masked without its space.
    redact.add(["retired-audit-key-number-three-0000000000000, retired-audit-key-number-four-00000000000000 "])
    assert redact("key=retired-audit-key-number-four-00000000000000;") == f"key={MASK};"
    assert redact("retired-audit-key-number-three-0000000000000") == MASK


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    # A blocking open of a FIFO waits for a writer: the reload (or the start) would hang there.
    os.mkfifo(tmp_path / NAME, 0o600)
    res = CredentialProvider(_settings(tmp_path, Source.FILE), {}).resolve([NAME])
    [missing] = res.missing
    assert "not a regular file" in missing.describe()


@pytest.mark.parametrize("mode", [0o770, 0o702, 0o777])
def test_a_directory_others_may_write_to_is_refused(tmp_path: Path, mode: int) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    _file(secrets, NAME, "a-secret-value-in-a-shared-directory")
    secrets.chmod(mode)
    res = CredentialProvider(_settings(secrets, Source.FILE, Source.ENV), {NAME: "from-the-environment"}).resolve([NAME])
    [missing] = res.missing
    assert f"secrets directory {secrets}: mode {mode:04o} refused" in missing.describe()
    assert "a-secret-value" not in missing.describe()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_a_directory_another_user_owns_is_refused(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o755)
    _file(secrets, NAME, "a-secret-value")
    os.chown(secrets, 65534, 65534)  # nobody: it could swap files in under the names
    res = CredentialProvider(_settings(secrets, Source.FILE), {}).resolve([NAME])
    [missing] = res.missing
    assert f"secrets directory {secrets}: owned by uid 65534" in missing.describe()


def test_a_reload_teaches_the_redactor_the_new_values_before_anyone_can_read_them(tmp_path: Path) -> None:
    from xorj_actors.engine._reload import SecretsReload
    from xorj_actors.redaction import MASK, Redactor

    _file(tmp_path, NAME, "the-first-secret-value")
    provider = CredentialProvider(_settings(tmp_path, Source.FILE), {})
    provider.resolve([NAME])
    environ = provider.environ()
    learnt: list[tuple[tuple[str, ...], str | None]] = []

    class Spy(Redactor):
        def add(self, secrets):  # what a reader on another thread would get at this moment
            secrets = tuple(secrets)
            learnt.append((secrets, provider.get(NAME)))
            super().add(secrets)

    redactor = Spy(provider.values())
    reload = SecretsReload(provider, parse_config('[strategy]\nurl = "http://127.0.0.1:9"\n'), environ, redactor)
    _file(tmp_path, NAME, "the-rotated-secret-value")
    assert reload("ctl")["changed"] == [NAME]
    assert ("the-rotated-secret-value",) in [s for s, _ in learnt]
    assert all(served == "the-first-secret-value" for s, served in learnt if "the-rotated-secret-value" in s)
    assert provider.get(NAME) == environ[NAME] == "the-rotated-secret-value"
    assert redactor("now the-rotated-secret-value") == f"now {MASK}"


def test_a_retired_audit_key_list_that_does_not_parse_refuses_the_whole_reload(tmp_path: Path) -> None:
    from xorj_actors.engine._reload import SecretsReload
    from xorj_actors.redaction import Redactor

    retired = "XORJ_AUDIT_RETIRED_HMAC_KEYS"
    good = "a-retired-audit-key-long-enough-to-be-one-000"
    _file(tmp_path, retired, good)
    _file(tmp_path, NAME, "the-first-secret-value")
    provider = CredentialProvider(_settings(tmp_path, Source.FILE), {})
    provider.resolve([NAME, retired])
    environ = provider.environ()
    reload = SecretsReload(provider, parse_config('[strategy]\nurl = "http://127.0.0.1:9"\n'), environ,
                           Redactor(provider.values()))
    _file(tmp_path, NAME, "the-rotated-secret-value")
    _file(tmp_path, retired, f"{good},too-short-a-key")
    answer = reload("ctl")
    assert not answer["reloaded"]
    assert answer["missing"] == [f"retired audit key 2 in {retired} is too short: need at least 32 bytes (the retired "
                                 "keys are comma-separated; a key cannot contain a comma)"]
    # Nothing swapped: every reader of the audit log keeps a list it can parse.
    assert provider.get(retired) == environ[retired] == good and provider.get(NAME) == "the-first-secret-value"
