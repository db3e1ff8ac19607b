"""`xorj-actors keys init|show|rotate` as operators run it: a process of its own, audited, for
many vaults at once (the rotation itself: test_key_rotation.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from solders.pubkey import Pubkey

from xorj_actors.cli import main as cli_main
from xorj_actors.localnet import dev_vault_authority
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
    """vault id -> public key, as `keys` prints them."""
    return dict(line.split(": ", 1) for line in result.stdout.splitlines() if line.startswith("vault-"))


def audited(config: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> list[dict]:
    capsys.readouterr()
    argv = ["audit", "export", "--config", str(config), "--data-dir", str(data_dir), "--type", "KEY_OPERATION"]
    assert cli_main(argv) == 0
    return [json.loads(line)["details"] for line in capsys.readouterr().out.splitlines()]


def ceremony(config: Path, data_dir: Path, env: dict[str, str], capsys) -> dict[str, Pubkey]:
    """init 0-2, init 2-3 (2 refused, 3 done), show all, rotate without an RPC (bad input: nothing
    done, nothing audited); checks output and audit trail."""
    first = keys("init", config, data_dir, env, "--vaults", "0-2")
    assert first.returncode == 0, first.stderr
    made = {v: Pubkey.from_string(pk) for v, pk in printed(first).items()}
    assert list(made) == ["vault-0000", "vault-0001", "vault-0002"] and len(set(made.values())) == 3
    again = keys("init", config, data_dir, env, "--vaults", "vault-0002,3")
    assert again.returncode == 1 and "vault-0002" in again.stderr and "already exists" in again.stderr
    (new,) = printed(again).items()
    assert new[0] == "vault-0003"
    made["vault-0003"] = Pubkey.from_string(new[1])
    shown = keys("show", config, data_dir, env)  # every configured vault (vaults.count = 4)
    assert shown.returncode == 0, shown.stderr
    assert {v: Pubkey.from_string(pk) for v, pk in printed(shown).items()} == made
    rotated = keys("rotate", config, data_dir, env, "--vaults", "0")
    assert rotated.returncode == 2 and "no RPC" in rotated.stderr and not printed(rotated)
    missing = keys("show", config, data_dir, env, "--vaults", "4")
    assert missing.returncode == 1 and "vault-0004" in missing.stderr
    trail = audited(config, data_dir, capsys)
    assert [(d["what"], d["outcome"]) for d in trail] == [
        ("init", "done"), ("init", "partly done"), ("show", "done"), ("show", "refused"),
    ]
    assert trail[0]["vaults"] == [{"vault": v, "public_key": str(made[v])} for v in ("vault-0000", "vault-0001", "vault-0002")]
    assert "already exists" in trail[1]["vaults"][0]["refused"]
    return made


def test_pkcs11_key_ceremony(tmp_path, softhsm_token: SoftHsmToken, hsm_key_label: str, capsys) -> None:
    config = tmp_path / "engine.toml"
    config.write_text(
        '[vaults]\ncount = 4\n'
        f'[[signers.keys]]\nname = "vault-authority"\nbackend = "pkcs11"\n{softhsm_token.settings_toml(hsm_key_label)}'
    )
    made = ceremony(config, tmp_path / "var", softhsm_token.environ, capsys)
    token = dict(module=softhsm_token.module, token_label=softhsm_token.label, pin_env=softhsm_token.pin_env)
    settings = Pkcs11Settings(**token, label_prefix=hsm_key_label)
    assert {v: pk for v, pk, _ in _pkcs11.show_keys(settings, softhsm_token.environ, list(made))} == made


def test_kms_key_ceremony(tmp_path, kms_settings: KmsSettings, capsys) -> None:
    config = tmp_path / "engine.toml"
    config.write_text(
        '[vaults]\ncount = 4\n[[signers.keys]]\nname = "vault-authority"\nbackend = "kms"\n'
        f'kms.alias_prefix = "{kms_settings.alias_prefix}"\nkms.endpoint_url = "{kms_settings.endpoint_url}"\n'
    )
    made = ceremony(config, tmp_path / "var", {}, capsys)
    assert {v: pk for v, pk, _ in _kms.show_keys(kms_settings, list(made))} == made


def test_keys_shows_dev_keys_and_refuses_bad_input(tmp_path, capsys) -> None:
    data_dir = tmp_path / "var"
    config = tmp_path / "engine.toml"
    config.write_text('[[signers.keys]]\nname = "a"\n[[signers.keys]]\nname = "b"\n')
    result = keys("show", config, data_dir, {})
    assert result.returncode == 2 and "choose one with --key" in result.stderr
    result = keys("show", config, data_dir, {}, "--key", "c")
    assert result.returncode == 2 and "no key 'c'" in result.stderr
    result = keys("show", config, data_dir, {}, "--key", "a", "--vaults", "3-1")
    assert result.returncode == 2 and "runs backwards" in result.stderr
    result = keys("init", config, data_dir, {}, "--key", "a")
    assert result.returncode == 1 and "derived from a seed, there is nothing to create" in result.stderr
    shown = keys("show", config, data_dir, {}, "--key", "a", "--vaults", "0,5")
    assert printed(shown) == {v: str(dev_vault_authority(v).pubkey()) for v in ("vault-0000", "vault-0005")}
    assert [(d["what"], d["outcome"]) for d in audited(config, data_dir, capsys)] == [("init", "refused"), ("show", "done")]
