"""`xorj-actors keys init|show|rotate` as operators run it: a process of its own, audited."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from solders.pubkey import Pubkey

from xorj_actors.cli import main as cli_main
from xorj_actors.signers import KmsSettings, Pkcs11Settings
from xorj_actors.signers import _kms, _pkcs11
from tests.plugins.softhsm import SoftHsmToken


def keys(
    action: str, config: Path, data_dir: Path, env: dict[str, str], *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xorj_actors.cli", "keys", action, "--config", str(config), "--data-dir", str(data_dir),
         *extra],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )


def printed(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if ": " in line and not line.startswith("set ")]
    return dict(line.split(": ", 1) for line in lines)


def audited(config: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> list[dict]:
    capsys.readouterr()
    argv = ["audit", "export", "--config", str(config), "--data-dir", str(data_dir), "--type", "KEY_OPERATION"]
    assert cli_main(argv) == 0
    return [json.loads(line)["details"] for line in capsys.readouterr().out.splitlines()]


def ceremony(config: Path, data_dir: Path, env: dict[str, str], capsys) -> tuple[Pubkey, Pubkey, str]:
    """init, init again (refused), show, rotate, show; checks the output and the audit trail."""
    first = Pubkey.from_string(printed(keys("init", config, data_dir, env))["public_key"])
    again = keys("init", config, data_dir, env)
    assert again.returncode == 1 and "already exists" in again.stderr
    assert printed(keys("show", config, data_dir, env))["public_key"] == str(first)
    rotated = printed(keys("rotate", config, data_dir, env))
    new = Pubkey.from_string(rotated["public_key"])
    assert rotated["old_public_key"] == str(first) and new != first
    assert printed(keys("show", config, data_dir, env))["public_key"] == str(new)
    trail = audited(config, data_dir, capsys)
    assert [(d["what"], d["outcome"]) for d in trail] == [
        ("init", "done"), ("init", "refused"), ("show", "done"), ("rotate", "done"), ("show", "done"),
    ]
    assert trail[0]["public_key"] == str(first) and "already exists" in trail[1]["reason"]
    assert trail[3]["old_public_key"] == str(first) and trail[3]["public_key"] == str(new)
    return first, new, rotated["old_key_kept_as"]


def test_pkcs11_key_ceremony(tmp_path, softhsm_token: SoftHsmToken, hsm_key_label: str, capsys) -> None:
    config = tmp_path / "engine.toml"
    config.write_text(
        f'[[signers.keys]]\nname = "vault-authority"\nbackend = "pkcs11"\n{softhsm_token.settings_toml(hsm_key_label)}'
    )
    first, new, kept_as = ceremony(config, tmp_path / "var", softhsm_token.environ, capsys)
    assert kept_as.startswith(f"{hsm_key_label}.retired-")
    token = dict(module=softhsm_token.module, token_label=softhsm_token.label, pin_env=softhsm_token.pin_env)
    # Both keys are still in the token: the new one active, the old one under its retired label.
    assert _pkcs11.show_key(Pkcs11Settings(**token, key_label=hsm_key_label), softhsm_token.environ) == new
    assert _pkcs11.show_key(Pkcs11Settings(**token, key_label=kept_as), softhsm_token.environ) == first


def test_kms_key_ceremony(tmp_path, kms_settings: KmsSettings, capsys) -> None:
    config = tmp_path / "engine.toml"
    config.write_text(
        '[[signers.keys]]\nname = "vault-authority"\nbackend = "kms"\n'
        f'kms.key_id = "{kms_settings.key_id}"\nkms.endpoint_url = "{kms_settings.endpoint_url}"\n'
    )
    first, new, kept_as = ceremony(config, tmp_path / "var", {}, capsys)
    assert kept_as.startswith(f"{kms_settings.key_id}-retired-")
    assert _kms.show_key(KmsSettings(key_id=kept_as, endpoint_url=kms_settings.endpoint_url)) == first
    assert _kms.show_key(kms_settings) == new


def test_keys_refuses_the_dev_key_and_bad_input(tmp_path, capsys) -> None:
    data_dir = tmp_path / "var"
    config = tmp_path / "engine.toml"
    config.write_text('[[signers.keys]]\nname = "a"\n[[signers.keys]]\nname = "b"\n')
    result = keys("show", config, data_dir, {})
    assert result.returncode == 2 and "choose one with --key" in result.stderr
    result = keys("show", config, data_dir, {}, "--key", "c")
    assert result.returncode == 2 and "no key 'c'" in result.stderr
    result = keys("init", config, data_dir, {}, "--key", "a")
    assert result.returncode == 1 and "manages pkcs11 and kms keys, not dev_key" in result.stderr
    assert [(d["what"], d["outcome"]) for d in audited(config, data_dir, capsys)] == [("init", "refused")]
