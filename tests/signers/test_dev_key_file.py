"""A dev key without a path is the file the localnet writes: the signers never import the localnet."""

from __future__ import annotations

import stat

import pytest

from xorj_actors.localnet import dev_vault_authority, write_dev_key
from xorj_actors.signers import LOCALNET_DEV_KEY_FILE, KeySettings, SignerError, open_backend


def test_a_dev_key_without_a_path_reads_the_localnet_key_file(tmp_path) -> None:
    key = KeySettings(name="dev", backend="dev_key")
    with pytest.raises(SignerError, match="localnet-dev-key.json.*the localnet writes it when it starts"):
        open_backend(key, environment="development", environ={}, data_dir=tmp_path)
    path = write_dev_key(tmp_path)
    assert path == tmp_path / LOCALNET_DEV_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    backend = open_backend(key, environment="development", environ={}, data_dir=tmp_path)
    assert backend.public_key() == dev_vault_authority().pubkey()
    with pytest.raises(SignerError, match="refused in production"):
        open_backend(key, environment="production", environ={}, data_dir=tmp_path)


def test_rewriting_the_key_file_restores_its_mode(tmp_path) -> None:
    path = write_dev_key(tmp_path)
    path.chmod(0o644)
    assert write_dev_key(tmp_path) == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [LOCALNET_DEV_KEY_FILE]  # no temporary file left
