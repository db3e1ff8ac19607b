"""``xorj-actors check`` and the check functions it shares with ``/health/ready``."""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path

import pytest

from tests.conftest import free_port, service_unavailable
from tests.helpers import wait_until
from tests.ops.conftest import ENGINE_ENV, Api
from xorj_actors.check import (
    PRODUCTION_CHECKS,
    READINESS_CHECKS,
    CheckContext,
    Status,
    check_audit_store,
    run_checks,
)
from xorj_actors.cli import main
from xorj_actors.config import ConfigError, parse_config
from xorj_actors.engine import Engine

SECRETS = {**ENGINE_ENV, "XORJ_AUDIT_HMAC_KEY": "audit-key-" + "7" * 30, "XORJ_QUANT_API_KEY": "quant-key-" + "q" * 20}
PG = """
[audit]
backend = "postgres"
[audit.postgres]
host = "127.0.0.1"
port = {port}
database = "test"
user = "postgres"
connect_timeout_s = 2
"""


def run_check(tmp_path: Path, capsys: pytest.CaptureFixture[str], config: str | None) -> tuple[int, dict[str, str]]:
    args = ["check", "--data-dir", str(tmp_path / "var"), "--timeout", "2"]
    if config is not None:
        path = tmp_path / "xorj.toml"
        path.write_text(config)
        args += ["--config", str(path)]
    code = main(args)
    lines = capsys.readouterr().out.splitlines()
    by_name = {line[15:].split()[0]: line for line in lines[:-1]}
    assert lines[-1].endswith("config)")
    return code, by_name


def _set_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name in (*SECRETS, "XORJ_AUDIT_DB_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def test_development_config_passes_with_honest_not_configured(tmp_path, capsys, monkeypatch) -> None:
    _set_env(monkeypatch, {})
    code, lines = run_check(tmp_path, capsys, None)
    assert code == 0
    assert set(lines) == {
        "rpc", "websocket", "audit_store", "audit_anchor", "signer", "quant_engine", "jupiter", "dev_settings",
        "secrets", "slack", "data_dir", "downtime_liquidation", "correlation", "key_ages",
    }
    assert lines["downtime_liquidation"].startswith("ok") and "off (the default)" in lines["downtime_liquidation"]
    assert lines["key_ages"].startswith("ok") and "0 of 2 owned keys dated" in lines["key_ages"]
    assert lines["audit_anchor"].startswith("not configured")  # development: not a failure
    # The development key file opens: the localnet's public DEVELOPMENT vault authority.
    assert lines["signer"].startswith("ok") and "vault-authority (dev_key)" in lines["signer"]
    assert lines["secrets"].startswith("not configured") and "XORJ_HTTP_HMAC_KEY" in lines["secrets"]
    assert lines["dev_settings"].startswith("ok") and "sqlite" in lines["dev_settings"]
    assert not (tmp_path / "var").exists()  # a check changes nothing


def test_check_warns_about_an_old_key_and_not_a_fresh_one(tmp_path, capsys, monkeypatch) -> None:
    _set_env(monkeypatch, {})
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    for name in ("XORJ_HTTP_HMAC_KEY", "XORJ_AUDIT_HMAC_KEY"):
        (secrets / name).write_text("k" * 64 + "\n")
        (secrets / name).chmod(0o600)
    config = f'[secrets]\norder = ["file"]\n[secrets.file]\ndir = "{secrets}"\n'
    code, lines = run_check(tmp_path, capsys, config)
    assert code == 0 and lines["key_ages"].startswith("ok") and "2 of 2 owned keys dated" in lines["key_ages"]
    then = time.time() - 15 * 86400  # past max_age_s (two weeks by default)
    os.utime(secrets / "XORJ_HTTP_HMAC_KEY", (then, then))
    code, lines = run_check(tmp_path, capsys, config)
    assert code == 0  # a warning, not a failure: the old key still works
    assert lines["key_ages"].startswith("warn") and "XORJ_HTTP_HMAC_KEY is 15.0 days old" in lines["key_ages"]
    assert "XORJ_AUDIT_HMAC_KEY" not in lines["key_ages"] and "k" * 64 not in "\n".join(lines.values())


#: The real mainnet mints: a production config must name them (the derived ones are development mints).
MINTS = """
[[tokens]]
symbol = "USDC"
stable = true
mint = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
[[tokens]]
symbol = "JUP"
mint = "JUPyiwrYJFskUPiHa7hkeR8VUtAeFoSYbKedZNsDvCN"
[[tokens]]
symbol = "BONK"
decimals = 5
mint = "DezXAZ8z7PnrnRJjz3wXBoRgixCa6xjnB7YaB1pPB263"
[[tokens]]
symbol = "SOL"
decimals = 9
mint = "So11111111111111111111111111111111111111112"
"""
PRODUCTION = '[engine]\nenvironment = "production"\n' + MINTS


def test_production_config_with_development_settings_fails(tmp_path, capsys, monkeypatch) -> None:
    _set_env(monkeypatch, SECRETS)
    code, lines = run_check(tmp_path, capsys, PRODUCTION)
    assert code == 1
    assert lines["dev_settings"].startswith("FAIL")
    assert "localnet.enabled" in lines["dev_settings"] and 'backend = "sqlite"' in lines["dev_settings"]
    assert 'backend = "dev_key"' in lines["dev_settings"]
    assert lines["signer"].startswith("FAIL") and "refused in production" in lines["signer"]
    for name in ("rpc", "websocket", "quant_engine", "jupiter", "audit_anchor"):
        assert lines[name].startswith("FAIL"), lines[name]  # not configured is a failure in production
    assert lines["secrets"].startswith("ok")
    out = "\n".join(lines.values())
    assert all(value not in out for value in SECRETS.values())


def test_a_data_directory_others_can_write_fails_the_check_by_name(tmp_path, capsys, monkeypatch) -> None:
    _set_env(monkeypatch, {})
    data = tmp_path / "var"
    data.mkdir()
    data.chmod(0o777)
    code, lines = run_check(tmp_path, capsys, None)
    assert code == 1 and lines["data_dir"].startswith("FAIL") and "0777" in lines["data_dir"]
    data.chmod(0o755)
    (data / "audit.db").write_bytes(b"")
    (data / "audit.db").chmod(0o644)
    code, lines = run_check(tmp_path, capsys, None)
    assert lines["data_dir"].startswith("ok") and "readable by others" in lines["data_dir"]
    assert (data / "audit.db").stat().st_mode & 0o777 == 0o644  # a check changes nothing


def test_missing_or_short_secrets(tmp_path, capsys, monkeypatch) -> None:
    _set_env(monkeypatch, {k: v for k, v in SECRETS.items() if k != "XORJ_RECOVERY_KEY_3"})
    code, lines = run_check(tmp_path, capsys, PRODUCTION)
    assert code == 1 and lines["secrets"].startswith("FAIL") and "XORJ_RECOVERY_KEY_3" in lines["secrets"]
    _set_env(monkeypatch, {**SECRETS, "XORJ_AUDIT_HMAC_KEY": "short-secret"})
    code, lines = run_check(tmp_path, capsys, None)
    assert code == 1 and "shorter than 32 bytes: XORJ_AUDIT_HMAC_KEY" in lines["secrets"]
    assert "short-secret" not in lines["secrets"]


def test_production_without_anchoring_fails(tmp_path, capsys, monkeypatch) -> None:
    """Anchoring is off by default; without it a cut tail or a rewrite with the key goes unseen."""
    _set_env(monkeypatch, SECRETS)
    code, lines = run_check(tmp_path, capsys, PRODUCTION)
    assert code == 1
    assert lines["audit_anchor"].startswith("FAIL") and "[audit.anchor] enabled = false" in lines["audit_anchor"]
    assert "a truncated tail or a rewrite of the audit log with its key cannot be detected" in lines["audit_anchor"]


def test_anchoring_check_probes_the_bucket_and_its_object_lock(tmp_path, anchor_settings) -> None:
    from xorj_actors.audit import s3_client
    from xorj_actors.check import check_audit_anchor

    a = anchor_settings
    section = f'[audit.anchor]\nenabled = true\nendpoint_url = "{a.endpoint_url}"\nbucket = "{a.bucket}"\n'
    ok = check_audit_anchor(CheckContext(parse_config(PRODUCTION + section), tmp_path, {}))
    assert ok.status is Status.OK and "(Object Lock): 0 anchors, none written yet" in ok.detail, ok.detail
    unlocked = f"{a.bucket}-unlocked"
    s3_client(a).create_bucket(Bucket=unlocked)
    section = section.replace(a.bucket, unlocked)
    bad = check_audit_anchor(CheckContext(parse_config(PRODUCTION + section), tmp_path, {}))
    assert bad.status is Status.FAIL and "Object Lock is not enabled on the bucket" in bad.detail, bad.detail
    dead = section.replace(a.endpoint_url, f"http://127.0.0.1:{free_port()}")
    down = check_audit_anchor(CheckContext(parse_config(PRODUCTION + dead), tmp_path, {}, timeout_s=1))
    assert down.status is Status.FAIL and f"s3://{unlocked}/audit/" in down.detail


@pytest.mark.parametrize(
    ("config", "named"),
    [
        (PRODUCTION + "[kill_switch]\nrecovery_threshold = 1\n",
         "kill_switch.recovery_threshold: 1 is refused in production"),
        ('[engine]\nenvironment = "production"\n',
         "tokens[0].mint, tokens[1].mint, tokens[2].mint, tokens[3].mint: required"),
    ],
    ids=["recovery_threshold=1", "derived-mints"],
)
def test_production_refuses_one_recovery_key_and_development_mints(tmp_path, capsys, monkeypatch, config, named):
    """docs/SECURITY.md promises K >= 2; a config load (run, check) refuses less, naming the key."""
    _set_env(monkeypatch, SECRETS)
    path = tmp_path / "xorj.toml"
    path.write_text(config)
    assert main(["check", "--config", str(path), "--data-dir", str(tmp_path / "var")]) == 2
    assert named in capsys.readouterr().err
    with pytest.raises(ConfigError, match=re.escape(named)):
        parse_config(config)
    development = config.replace('"production"', '"development"')
    parse_config(development)  # development may use one key and the derived mints


def test_production_without_trading_flags_development_mints(tmp_path, capsys, monkeypatch) -> None:
    _set_env(monkeypatch, SECRETS)
    code, lines = run_check(tmp_path, capsys, '[engine]\nenvironment = "production"\n[execution]\nenabled = false\n')
    assert code == 1 and lines["dev_settings"].startswith("FAIL")
    assert "tokens USDC, JUP, BONK, SOL: no mint" in lines["dev_settings"]


def test_bad_config_exits_2(tmp_path, capsys) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[http]\nhost = "0.0.0.0"\n')
    assert main(["check", "--config", str(path)]) == 2
    assert "allow_non_loopback" in capsys.readouterr().err


def _postgres_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
        return True
    except OSError:
        return False


def test_postgres_audit_store_reachable_or_not(tmp_path) -> None:
    if not _postgres_up():
        service_unavailable("PostgreSQL is not running on 127.0.0.1:5432")
    up = check_audit_store(CheckContext(parse_config(PG.format(port=5432)), tmp_path, {}))
    assert up.status is Status.OK, up.detail
    down = check_audit_store(CheckContext(parse_config(PG.format(port=free_port())), tmp_path, {}))
    assert down.status is Status.FAIL and "cannot open audit store" in down.detail


def test_endpoint_probes_against_a_real_localnet(localnet, tmp_path) -> None:
    urls = {k: v for k, v in localnet.urls.items() if v}
    ctx = CheckContext(parse_config(""), tmp_path, {}, endpoints=urls, timeout_s=2)
    results = {r.name: r for r in run_checks(PRODUCTION_CHECKS, ctx)}
    assert results["rpc"].status is Status.OK and "healthy" in results["rpc"].detail
    assert results["websocket"].status is Status.OK
    assert results["quant_engine"].status is Status.OK
    assert results["jupiter"].status is Status.OK and "/price/v3 priced all 4 tokens" in results["jupiter"].detail
    dead = f"127.0.0.1:{free_port()}"
    dead_urls = {"rpc": f"http://{dead}", "ws": f"ws://{dead}"}
    ctx = CheckContext(parse_config(""), tmp_path, {}, endpoints=dead_urls, timeout_s=1)
    results = {r.name: r for r in run_checks(PRODUCTION_CHECKS, ctx)}
    assert results["rpc"].status is Status.FAIL and "Connection refused" in results["rpc"].detail
    assert results["websocket"].status is Status.FAIL


def test_check_never_shows_a_key_held_in_an_endpoint_url(localnet, tmp_path) -> None:
    """Providers put API keys in the query or the path; ``check`` names the endpoint, not the key."""
    key, token = "helius-key-" + "9" * 24, "0123456789abcdef" * 2
    up, dead = localnet.urls["rpc"], f"127.0.0.1:{free_port()}"
    urls = {"rpc": f"{up}/?api-key={key}", "ws": f"ws://user:{key}@{dead}/{token}/"}
    ctx = CheckContext(parse_config(""), tmp_path, {}, endpoints=urls, timeout_s=1)
    results = {r.name: r for r in run_checks(PRODUCTION_CHECKS, ctx)}
    assert results["rpc"].status is Status.OK and "?api-key=***" in results["rpc"].detail
    assert results["websocket"].status is Status.FAIL and f"ws://***@{dead}/***/" in results["websocket"].detail
    assert not any(key in r.detail or token in r.detail for r in results.values())


def test_a_check_that_raises_is_a_failure_not_a_crash(tmp_path) -> None:
    def broken(ctx: CheckContext):
        raise RuntimeError("probe exploded")

    broken.__name__ = "check_broken"
    [result] = run_checks([broken], CheckContext(parse_config(""), tmp_path, {}))
    assert (result.name, result.status) == ("broken", Status.FAIL) and "probe exploded" in result.detail


def test_ready_runs_the_shared_readiness_checks(engine_factory) -> None:
    api = Api(engine_factory(vaults=1, environ=dict(ENGINE_ENV)))
    names = [c["name"] for c in api.get("/health/ready").json()["checks"]]
    expected = [check.__name__.removeprefix("check_") for check in READINESS_CHECKS]
    assert names == expected == ["tree", "kill_switch", "audit_store", "signer", "rpc", "websocket", "execution"]


def test_ready_probes_the_in_process_localnet(tmp_path) -> None:
    config = parse_config("[vaults]\ncount = 1\n[localnet]\nslot_ms = 50\nvaults = 1\n")
    engine = Engine(config, tmp_path / "var", environ=dict(ENGINE_ENV))
    engine.start()
    try:
        # Ready once the executor has read its open trades back, after the kill switch's first
        # decision: a probe is polled, as an orchestrator polls it.
        wait_until(lambda: Api(engine).get("/health/ready").status == 200, 30, "ready")
        reply = Api(engine).get("/health/ready")
        assert reply.status == 200, reply.body
        checks = {c["name"]: c for c in reply.json()["checks"]}
        assert checks["rpc"]["status"] == "ok" and "healthy" in checks["rpc"]["detail"]
        assert checks["execution"]["status"] == "ok" and "trades in flight" in checks["execution"]["detail"]
        assert checks["websocket"]["status"] == "ok"
        assert checks["rpc"]["detail"].startswith(engine.endpoints()["localnet_rpc"])
    finally:
        assert engine.stop(timeout=10) == []


def test_check_names_vaults_without_a_key_in_the_hsm(tmp_path, capsys, monkeypatch, softhsm_token, hsm_key_label) -> None:
    from xorj_actors.signers import Pkcs11Settings, _pkcs11

    _set_env(monkeypatch, softhsm_token.environ)
    settings = Pkcs11Settings(softhsm_token.module, softhsm_token.label, hsm_key_label, softhsm_token.pin_env)
    _pkcs11.init_keys(settings, softhsm_token.environ, ["vault-0000", "vault-0001"])
    store = f'[[signers.keys]]\nname = "hsm"\nbackend = "pkcs11"\n{softhsm_token.settings_toml(hsm_key_label)}'
    code, lines = run_check(tmp_path, capsys, "[vaults]\ncount = 2\n" + store)
    assert lines["signer"].startswith("ok") and "2 vault keys" in lines["signer"]
    code, lines = run_check(tmp_path, capsys, "[vaults]\ncount = 3\n" + store)
    assert code == 1 and lines["signer"].startswith("FAIL")
    assert "no key for 1 of 3 vaults (first: vault-0002)" in lines["signer"] and "keys init" in lines["signer"]
