"""``[reconciliation]`` and ``xorj-actors reconcile``'s refusals: a clear error, nothing done."""

from __future__ import annotations

from pathlib import Path

import pytest

from xorj_actors.cli import main
from xorj_actors.config import ConfigError, parse_config


def test_defaults_daily_no_halt() -> None:
    r = parse_config("").reconciliation
    assert (r.enabled, r.interval_s, r.halt_on_mismatch) == (True, 86_400.0, False)


@pytest.mark.parametrize(("text", "message"), [
    ("interval_s = 59", "reconciliation.interval_s: must be between 60 and 2592000 seconds"),
    ("interval_s = nan", "reconciliation.interval_s: must be between 60"),
    ("first_run_s = -1", "reconciliation.first_run_s: must be between 0 and 86400"),
    ("rpc_timeout_s = 0.5", "reconciliation.rpc_timeout_s: must be between 1 and 300"),
    ("halt_on_mismatch = 1", "reconciliation.halt_on_mismatch"),
    ("every = 5", "reconciliation.every: unknown key"),
])
def test_bad_values_are_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_config(f"[reconciliation]\n{text}\n")


def test_the_command_refuses_bad_input_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "engine.toml"
    config.write_text("[reconciliation]\ninterval_s = 1\n")
    assert main(["reconcile", "--config", str(config), "--data-dir", str(tmp_path), "--rpc", "http://127.0.0.1:1"]) == 2
    assert "reconciliation.interval_s" in capsys.readouterr().err
    config.write_text("")
    assert main(["reconcile", "--config", str(config), "--data-dir", str(tmp_path)]) == 2
    assert "--rpc: required" in capsys.readouterr().err
    assert main(["reconcile", "--config", str(config), "--data-dir", str(tmp_path), "--rpc", "http://x", "--vaults", "x-1"]) == 2
    assert not (tmp_path / "audit.db").exists(), "nothing written"


def test_an_unlisted_vault_gets_the_public_localnet_key_in_development_only(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from solders.keypair import Keypair

    from xorj_actors.signers import LOCALNET_DEV_SEED, dev_vault_keypair
    from xorj_actors.statements.cli import _authorities

    listed = Keypair().pubkey()
    localnet = parse_config(f'[localnet]\nvaults = 1\nvault_authorities = ["{listed}"]\n').localnet

    def config(environment: str) -> object:  # no signing store: the keys come from [localnet] or its seed
        return SimpleNamespace(localnet=localnet, signers=SimpleNamespace(keys=()),
                               engine=SimpleNamespace(environment=environment))

    dev = _authorities(config("development"), tmp_path)
    assert dev("vault-0001") == dev_vault_keypair(LOCALNET_DEV_SEED, "vault-0001").pubkey()
    # production: a listed vault keeps its key; an unlisted one is refused, never the public seed's
    prod = _authorities(config("production"), tmp_path)
    assert prod("vault-0000") == listed
    with pytest.raises(ValueError, match=r"vault-0001: not in \[localnet\] vault_authorities; .* only in development"):
        prod("vault-0001")
