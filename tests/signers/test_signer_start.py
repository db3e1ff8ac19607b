"""A signer that cannot vouch for its vault keys fails its start (fail closed: no signer, no trade)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from solders.keypair import Keypair

from xorj_actors.config import parse_config
from xorj_actors.kill_switch import HaltBoard
from xorj_actors.signers import DevKeySettings, GetSignerHealth, KeySettings, KmsSettings, Signer, VaultKeys
from tests.conftest import free_port
from tests.plugins.engine import wait_until
from tests.signers.conftest import VAULTS, KeyCase


def key_settings(case: KeyCase) -> KeySettings:
    (key,) = parse_config(case.toml()).signers.keys
    return key


def start_failure(
    key: KeySettings, environ: dict[str, str], environment: str = "development", keys: VaultKeys | None = None
) -> str:
    """Start a signer that must fail; returns its exit reason."""
    ref = Signer.start(
        HaltBoard(), key, keys or VaultKeys(key.name), VAULTS,
        environment=environment, environ=environ, data_dir=Path("/nonexistent"),
    )
    wait_until(lambda: ref.actor_inbox.closed, what="signer start to fail")
    return ref.actor_inbox.exit_reason or ""


def test_a_vault_key_other_than_the_published_one_fails_the_start(runtime, signing_key: KeyCase) -> None:
    # A store whose key for a vault changed (a swapped token, a retargeted alias) must not sign
    # for accounts that belong to the old key.
    other = Keypair().pubkey()
    published = VaultKeys("vault-authority")
    published.publish({VAULTS[1]: other})
    reason = start_failure(key_settings(signing_key), signing_key.environ, keys=published)
    assert "SignerError" in reason and f"published {other}" in reason and VAULTS[1] in reason


def test_the_dev_key_is_refused_in_production(runtime, key_dev_key: KeyCase) -> None:
    reason = start_failure(key_settings(key_dev_key), {}, environment="production")
    assert "development only and are refused in production" in reason


def test_a_missing_pin_fails_the_start_and_names_the_variable(runtime, key_pkcs11: KeyCase) -> None:
    reason = start_failure(key_settings(key_pkcs11), {})
    assert "PIN is missing" in reason and "XORJ_TEST_HSM_PIN" in reason


def test_a_missing_vault_key_fails_the_start(runtime, key_pkcs11: KeyCase, key_kms: KeyCase, tmp_path) -> None:
    pkcs11 = key_settings(key_pkcs11)
    pkcs11 = dataclasses.replace(pkcs11, pkcs11=dataclasses.replace(pkcs11.pkcs11, label_prefix="none-"))
    reason = start_failure(pkcs11, key_pkcs11.environ)
    assert "vault-0000: pkcs11: no Ed25519 key pair labelled 'none-vault-0000'" in reason and "keys init" in reason
    kms = key_settings(key_kms)
    kms = dataclasses.replace(kms, kms=dataclasses.replace(kms.kms, alias_prefix="none-"))
    assert "alias/none-vault-0000" in (reason := start_failure(kms, {})) and "NotFoundException" in reason
    dev = KeySettings(dev_key=DevKeySettings(seed_file=str(tmp_path / "none")))
    assert "cannot read the seed file" in start_failure(dev, {})
    (tmp_path / "empty").write_text("\n")
    dev = KeySettings(dev_key=DevKeySettings(seed_file=str(tmp_path / "empty")))
    assert "is empty" in start_failure(dev, {})


def test_a_failed_pkcs11_start_logs_out_so_the_next_signer_can_log_in(runtime, key_pkcs11: KeyCase) -> None:
    published = VaultKeys("vault-authority")
    published.publish({VAULTS[0]: Keypair().pubkey()})
    start_failure(key_settings(key_pkcs11), key_pkcs11.environ, keys=published)
    keys = VaultKeys("vault-authority")
    ref = Signer.start(HaltBoard(), key_settings(key_pkcs11), keys, VAULTS, environ=key_pkcs11.environ)
    health = ref.ask(GetSignerHealth(), timeout=10)
    assert health.ready and health.vault_keys == 2 and health.halted  # the board starts halted
    assert {v: keys.require(v) for v in VAULTS} == key_pkcs11.keys
    ref.stop(timeout=5)


def test_an_unreachable_kms_fails_the_start(runtime, aws_env) -> None:
    kms = KmsSettings(endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=1, connect_timeout_s=1.0)
    reason = start_failure(KeySettings(backend="kms", kms=kms), {})
    assert "kms DescribeKey alias/xorj-vault-0000" in reason and "Could not connect" in reason
