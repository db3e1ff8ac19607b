"""Credentials in a running engine: resolved at start (exit 2 when missing), rotated by
``ctl reload-secrets`` and SIGHUP, and never written anywhere: logs, audit log, socket answers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest

from xorj_actors.ops import signed_headers
from tests.engine.test_process import CONFIG as ENGINE_CONFIG
from tests.helpers import cli
from tests.ops.test_ctl_json import documented
from tests.plugins.engine import RECOVERY_KEYS, wait_until

ACTIVATE = "/kill-switch/activate"

CONFIG = ENGINE_CONFIG + """
[slack]
users = ["U0123ABCD"]
channels = ["C0123ABCD"]
[secrets]
order = ["env", "file", "aws"]
required = ["XORJ_AUDIT_HMAC_KEY", "XORJ_HTTP_HMAC_KEY", "XORJ_SLACK_SIGNING_SECRET", "XORJ_QUANT_API_KEY"]
[secrets.file]
dir = "{dir}"
[secrets.aws]
endpoint_url = "{endpoint}"
prefix = "{prefix}"
"""


def _value(label: str) -> str:
    """A distinctive secret value (found by grep if it leaks anywhere)."""
    return f"{label}-{uuid.uuid4().hex}{uuid.uuid4().hex}"


def _write(directory: Path, name: str, value: str) -> None:
    path = directory / name
    tmp = path.with_suffix(".new")  # an atomic swap, as an operator's rotation should be
    tmp.write_text(value + "\n")
    tmp.chmod(0o600)
    tmp.rename(path)


class Rig:
    def __init__(self, tmp_path: Path, endpoint: str) -> None:
        self.tmp = tmp_path
        self.secret_dir = tmp_path / "secrets"
        self.secret_dir.mkdir(mode=0o700)
        self.prefix = f"xorj-e2e-{uuid.uuid4().hex[:8]}/"
        self.sm = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=endpoint)
        self.config = tmp_path / "engine.toml"
        self.config.write_text(CONFIG.format(dir=self.secret_dir, endpoint=endpoint, prefix=self.prefix))
        self.data = tmp_path / "var"
        self.log = tmp_path / "engine.stderr"
        #: Every value any source ever held, and everything the engine answered.
        self.values: list[str] = list(RECOVERY_KEYS.values())
        self.answers: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None

    def file_secret(self, name: str, value: str) -> None:
        self.values.append(value)
        _write(self.secret_dir, name, value)

    def aws_secret(self, name: str, value: str, *, create: bool = False) -> None:
        self.values.append(value)
        if create:
            self.sm.create_secret(Name=self.prefix + name, SecretString=value)
        else:
            self.sm.put_secret_value(SecretId=self.prefix + name, SecretString=value)

    def run(self) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("XORJ_")}
        self.proc = subprocess.Popen(
            cli("run", "--config", str(self.config), "--data-dir", str(self.data), "--log-json"),
            stdout=subprocess.DEVNULL, stderr=self.log.open("ab"), env={**env, **RECOVERY_KEYS},
        )
        return self.proc

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            cli("ctl", "--config", str(self.config), "--data-dir", str(self.data), *args),
            capture_output=True, text=True, timeout=30, env={**os.environ, **RECOVERY_KEYS},
        )
        self.answers += [out.stdout, out.stderr]
        return out

    def status(self) -> dict | None:
        out = self.ctl("status", "--json")
        return json.loads(out.stdout) if out.returncode == 0 else None

    def post(self, key: str, path: str, body: dict) -> int:
        url = self.status()["endpoints"]["http"] + path  # type: ignore[index]
        raw = json.dumps(body).encode()
        req = urllib.request.Request(url, raw, signed_headers(key.encode(), path, raw), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                self.answers.append(resp.read().decode())
                return resp.status
        except urllib.error.HTTPError as exc:
            self.answers.append(exc.read().decode())
            return exc.code

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def rig(tmp_path: Path, ministack_endpoint: str, aws_env: None):
    r = Rig(tmp_path, ministack_endpoint)
    yield r
    if r.proc is not None and r.proc.poll() is None:
        r.proc.kill()
        r.proc.wait(10)


def test_a_missing_credential_stops_the_start_with_exit_2_naming_where_it_was_looked(rig: Rig) -> None:
    rig.file_secret("XORJ_AUDIT_HMAC_KEY", _value("audit"))
    rig.aws_secret("XORJ_SLACK_SIGNING_SECRET", _value("slack"), create=True)
    (rig.secret_dir / "XORJ_HTTP_HMAC_KEY").write_text(_value("http"))
    (rig.secret_dir / "XORJ_HTTP_HMAC_KEY").chmod(0o644)
    assert rig.run().wait(60) == 2
    err = rig.log.read_text()
    assert "2 credential(s) missing or refused" in err
    http_file = rig.secret_dir / "XORJ_HTTP_HMAC_KEY"
    assert f"XORJ_HTTP_HMAC_KEY: secret file {http_file}: mode 0644 refused" in err
    quant = [line for line in err.splitlines() if "XORJ_QUANT_API_KEY" in line]
    assert len(quant) == 1 and "not found" in quant[0]
    for where in ("environment variable XORJ_QUANT_API_KEY", f"file {rig.secret_dir / 'XORJ_QUANT_API_KEY'}",
                  f"AWS Secrets Manager secret {rig.prefix}XORJ_QUANT_API_KEY"):
        assert where in quant[0]
    assert not (rig.data / "audit.db").exists() and not any(v in err for v in rig.values)


def test_secrets_from_every_source_rotate_and_are_never_written(rig: Rig) -> None:
    audit_key, http_key = _value("audit"), _value("http")
    rig.file_secret("XORJ_AUDIT_HMAC_KEY", audit_key)
    rig.file_secret("XORJ_HTTP_HMAC_KEY", http_key)
    rig.aws_secret("XORJ_SLACK_SIGNING_SECRET", _value("slack"), create=True)
    rig.aws_secret("XORJ_QUANT_API_KEY", _value("quant"), create=True)
    rig.run()
    # Up with its HTTP API: the debug socket answers before the HTTP API serves.
    wait_until(lambda: rig.proc.poll() is not None or "http" in ((rig.status() or {}).get("endpoints") or {}), 60, "engine up")
    assert rig.proc.poll() is None, rig.log.read_text()[-3000:]

    # Work with the first keys: an authenticated halt over HTTP, a K-of-M recovery over ctl.
    assert rig.post(http_key, ACTIVATE, {"mode": "graceful", "reason": "drill"}) == 202
    wait_until(lambda: rig.status()["kill_switch"]["complete"], 20, "halt complete")
    epoch = str(rig.status()["kill_switch"]["epoch"])
    auths, timestamp = [], str(int(time.time()))
    for key_env in list(RECOVERY_KEYS)[:2]:
        signed = rig.ctl("sign-recovery", "--json", "--key-env", key_env, "--epoch", epoch, "--nonce", "e2e-1",
                         "--timestamp", timestamp)
        auths += ["--auth", f"{key_env}:{json.loads(signed.stdout)['hmac']}"]
    recovered = rig.ctl("recover", "--json", "--epoch", epoch, "--nonce", "e2e-1", "--timestamp", timestamp, *auths)
    assert json.loads(recovered.stdout)["accepted"], recovered.stdout

    # Rotation over ctl: every source; the audit HMAC key is held (the key in use is not retired yet).
    new_http = _value("http2")
    rig.file_secret("XORJ_HTTP_HMAC_KEY", new_http)
    rig.file_secret("XORJ_AUDIT_HMAC_KEY", _value("audit2"))
    rig.aws_secret("XORJ_SLACK_SIGNING_SECRET", _value("slack2"))
    rig.aws_secret("XORJ_QUANT_API_KEY", _value("quant2"))
    out = rig.ctl("reload-secrets", "--json")
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    documented()["reload-secrets"].check("reload-secrets", answer)  # docs/DEBUG_SOCKET.md's table
    assert answer["reloaded"] and answer["held"] == ["XORJ_AUDIT_HMAC_KEY"]
    assert "is not among the retired keys (XORJ_AUDIT_RETIRED_HMAC_KEYS)" in answer["audit_key"]["refused"]
    assert set(answer["changed"]) == {"XORJ_HTTP_HMAC_KEY", "XORJ_SLACK_SIGNING_SECRET", "XORJ_QUANT_API_KEY"}
    assert answer["sources"]["XORJ_HTTP_HMAC_KEY"] == "file" and answer["sources"]["XORJ_QUANT_API_KEY"] == "aws"
    assert answer["sources"]["XORJ_RECOVERY_KEY_1"] == "env"
    assert rig.post(http_key, ACTIVATE, {"mode": "graceful", "reason": "old key"}) == 401
    assert rig.post(new_http, ACTIVATE, {"mode": "graceful", "reason": "new key"}) == 202
    shown = rig.ctl("reload-secrets").stdout
    assert "held: the new value is not taken" in shown and "audit key held: the key in use" in shown

    # A new key epoch: the key in use retired first (in Secrets Manager), then the reload takes the new key.
    rig.aws_secret("XORJ_AUDIT_RETIRED_HMAC_KEYS", audit_key, create=True)
    rotated = json.loads(rig.ctl("reload-secrets", "--json").stdout)
    documented()["reload-secrets"].check("reload-secrets", rotated)
    assert rotated["held"] == [] and "XORJ_AUDIT_HMAC_KEY" in rotated["changed"], rotated
    epoch_change = rotated["audit_key"]
    assert epoch_change["reason"] == "reload" and epoch_change["sequence"] > 1
    assert epoch_change["old_fingerprint"] != epoch_change["new_fingerprint"]

    # Rotation by SIGHUP; a refused file leaves every old value in place.
    third_http = _value("http3")
    rig.file_secret("XORJ_HTTP_HMAC_KEY", third_http)
    rig.proc.send_signal(signal.SIGHUP)
    halt = {"mode": "graceful", "reason": "again"}
    wait_until(lambda: rig.post(third_http, ACTIVATE, halt) != 401, 20, "SIGHUP reload")  # authentic (halted: 202/409)
    assert rig.post(new_http, ACTIVATE, halt) == 401
    (rig.secret_dir / "XORJ_HTTP_HMAC_KEY").chmod(0o640)
    refused = rig.ctl("reload-secrets", "--json")
    assert refused.returncode == 1 and not json.loads(refused.stdout)["reloaded"]
    assert "mode 0640 refused" in json.loads(refused.stdout)["missing"][0]
    assert rig.post(third_http, ACTIVATE, halt) != 401  # still the SIGHUP's key
    rig.ctl("status", "--json")
    rig.ctl("tree", "--json")
    rig.stop()
    assert rig.proc.returncode == 0, rig.log.read_text()[-3000:]

    log = [json.loads(line) for line in rig.log.read_text().splitlines() if line.startswith("{")]
    assert any("secrets reloaded (SIGHUP)" in e["message"] for e in log)
    assert any("secrets reload (ctl) refused" in e["message"] for e in log)
    # Never written: not in the engine's output, any file of its data directory (logs, audit
    # database, state files), nor any answer of the debug socket or the HTTP API.
    haystacks = {"stderr": rig.log.read_bytes(), "answers": "\n".join(rig.answers).encode()}
    haystacks |= {str(p): p.read_bytes() for p in rig.data.rglob("*") if p.is_file()}
    audit = b"".join(text for name, text in haystacks.items() if "audit" in Path(name).name)
    assert b"secrets reloaded" in audit and b"secrets reload refused" in audit  # names only
    assert len(rig.values) == 13
    # The log verifies across the two key epochs, each key from its source (file, Secrets Manager).
    verified = subprocess.run(cli("audit", "verify", "--config", str(rig.config), "--data-dir", str(rig.data),
                                  "--no-progress"), capture_output=True, text=True, timeout=60,
                              env={k: v for k, v in os.environ.items() if not k.startswith("XORJ_")})
    assert verified.returncode in (0, 3), verified.stderr  # UNANCHORED: this engine does not anchor
    assert (f"2 key epochs ({epoch_change['old_fingerprint']} -> {epoch_change['new_fingerprint']})"
            in verified.stdout), verified.stdout
    for value in rig.values:
        for name, text in haystacks.items():
            assert value.encode() not in text, f"a secret value is written in {name}"
