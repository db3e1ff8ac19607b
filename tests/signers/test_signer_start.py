"""A signer that cannot vouch for its key fails its start (fail closed: no signer, no trade)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from solders.keypair import Keypair

from xorj_actors.config import parse_config
from xorj_actors.kill_switch import HaltBoard
from xorj_actors.signers import DevKeySettings, GetSignerHealth, KeySettings, KmsSettings, Signer
from tests.conftest import free_port
from tests.plugins.engine import wait_until
from tests.signers.conftest import KeyCase


def key_settings(case: KeyCase, **changes: str) -> KeySettings:
    (key,) = parse_config(case.toml(**changes)).signers.keys
    return key


def start_failure(key: KeySettings, environ: dict[str, str], environment: str = "development") -> str:
    """Start a signer that must fail; returns its exit reason."""
    ref = Signer.start(HaltBoard(), key, environment=environment, environ=environ, data_dir=Path("/nonexistent"))
    wait_until(lambda: ref.actor_inbox.closed, what="signer start to fail")
    return ref.actor_inbox.exit_reason or ""


def test_a_key_other_than_the_vault_authority_fails_the_start(runtime, signing_key: KeyCase) -> None:
    other = str(Keypair().pubkey())
    reason = start_failure(key_settings(signing_key, public_key=other), signing_key.environ)
    assert "SignerError" in reason
    assert f"is {signing_key.public_key}, not the configured vault authority {other}" in reason


@pytest.mark.parametrize("signing_key", ["pkcs11", "kms"], indirect=True)  # a dev key may run without one
def test_an_hsm_key_without_a_configured_public_key_fails_the_start(runtime, signing_key: KeyCase) -> None:
    reason = start_failure(key_settings(signing_key, public_key=""), signing_key.environ)
    assert "public_key is not set" in reason and "keys show" in reason


def test_the_dev_key_is_refused_in_production(runtime, key_dev_key: KeyCase) -> None:
    reason = start_failure(key_settings(key_dev_key), {}, environment="production")
    assert "development only and is refused in production" in reason


def test_a_missing_pin_fails_the_start_and_names_the_variable(runtime, key_pkcs11: KeyCase) -> None:
    reason = start_failure(key_settings(key_pkcs11), {})
    assert "PIN is missing" in reason and "XORJ_TEST_HSM_PIN" in reason


def test_a_missing_key_fails_the_start(runtime, key_pkcs11: KeyCase, key_kms: KeyCase, tmp_path) -> None:
    pkcs11 = key_settings(key_pkcs11)
    pkcs11 = dataclasses.replace(pkcs11, pkcs11=dataclasses.replace(pkcs11.pkcs11, key_label="no-such-key"))
    assert "no Ed25519 key pair labelled 'no-such-key'" in start_failure(pkcs11, key_pkcs11.environ)
    kms = key_settings(key_kms)
    kms = dataclasses.replace(kms, kms=dataclasses.replace(kms.kms, key_id="alias/no-such-key"))
    assert "NotFoundException" in start_failure(kms, {})
    bad_file = tmp_path / "bad.json"
    bad_file.write_text("[1, 2, 3]")
    dev = key_settings(KeyCase("dev_key", Keypair().pubkey(), f'dev_key.path = "{bad_file}"\n'))
    assert "is not a Solana keypair file" in start_failure(dev, {})
    assert "cannot read" in start_failure(dataclasses.replace(dev, dev_key=DevKeySettings(str(tmp_path / "none"))), {})


def test_a_failed_pkcs11_start_logs_out_so_the_next_signer_can_log_in(runtime, key_pkcs11: KeyCase) -> None:
    start_failure(key_settings(key_pkcs11, public_key=str(Keypair().pubkey())), key_pkcs11.environ)
    ref = Signer.start(HaltBoard(), key_settings(key_pkcs11), environ=key_pkcs11.environ)
    health = ref.ask(GetSignerHealth(), timeout=10)
    assert health.public_key == str(key_pkcs11.public_key) and health.halted  # the board starts halted
    ref.stop(timeout=5)


def test_an_unreachable_kms_fails_the_start(runtime, aws_env) -> None:
    kms = KmsSettings(endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=1, connect_timeout_s=1.0)
    reason = start_failure(KeySettings(backend="kms", public_key=str(Keypair().pubkey()), kms=kms), {})
    assert "kms DescribeKey alias/xorj-vault-authority" in reason and "Could not connect" in reason
