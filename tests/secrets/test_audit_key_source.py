"""``audit verify`` reads the audit HMAC key through the credential provider: a 0600 file works
like the environment, and a wrong key in it is caught."""

from __future__ import annotations

from pathlib import Path

from xorj_actors.audit import AuditSettings
from xorj_actors.audit import cli as audit_cli
from tests.audit.test_audit_verify import fill, run_cli


def _config(path: Path, secret_dir: Path) -> Path:
    path.write_text(
        '[engine]\nenvironment = "production"\n[execution]\nenabled = false\n[audit]\nbackend = "sqlite"\n'
        f'[secrets]\norder = ["env", "file"]\n[secrets.file]\ndir = "{secret_dir}"\n'
    )
    return path


def test_audit_verify_takes_the_key_from_a_file(data_dir, audit_key, tmp_path, monkeypatch, capsys) -> None:
    fill(AuditSettings(), data_dir)  # written with the key of the environment
    monkeypatch.delenv("XORJ_AUDIT_HMAC_KEY")
    secret_dir = tmp_path / "secrets"
    secret_dir.mkdir(mode=0o700)
    key_file = secret_dir / "XORJ_AUDIT_HMAC_KEY"
    common = ["--config", str(_config(tmp_path / "c.toml", secret_dir)), "--data-dir", str(data_dir)]
    assert run_cli(["verify", *common]) == audit_cli.EXIT_CANNOT  # production: no key anywhere
    assert "XORJ_AUDIT_HMAC_KEY" in capsys.readouterr().err
    key_file.write_bytes(audit_key + b"\n")
    key_file.chmod(0o600)
    assert run_cli(["verify", *common]) == audit_cli.EXIT_UNANCHORED  # intact: the right key
    key_file.write_bytes(b"another-key-" + b"9" * 40)
    assert run_cli(["verify", *common]) == audit_cli.EXIT_BROKEN
    capsys.readouterr()



def test_check_names_a_refused_secret_file(tmp_path, monkeypatch, capsys) -> None:
    from xorj_actors.cli import main

    secret_dir = tmp_path / "secrets"
    secret_dir.mkdir(mode=0o700)
    key_file = secret_dir / "XORJ_AUDIT_HMAC_KEY"
    key_file.write_text("an-audit-key-in-a-file-others-may-read-0123456789")
    key_file.chmod(0o644)
    monkeypatch.delenv("XORJ_AUDIT_HMAC_KEY", raising=False)
    config = _config(tmp_path / "c.toml", secret_dir)
    assert main(["check", "--config", str(config), "--data-dir", str(tmp_path / "var"), "--timeout", "1"]) == 1
    out = capsys.readouterr()
    assert f"credential XORJ_AUDIT_HMAC_KEY: secret file {key_file}: mode 0644 refused" in out.err
    assert "an-audit-key-in-a-file" not in out.out + out.err
