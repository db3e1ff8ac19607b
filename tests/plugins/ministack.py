"""pytest fixtures: ministack (registered in tests/conftest.py).

ministack is a local AWS emulator (S3 with Object Lock, KMS with Ed25519). It runs as a real
server on a free loopback port for the whole session and is killed at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port, service_unavailable

_START_TIMEOUT_S = 30.0


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as resp:
            return resp.status == 200
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


@pytest.fixture(scope="session")
def ministack_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of a ministack server started for this session."""
    exe = Path(sys.executable).with_name("ministack")
    if not exe.exists():
        service_unavailable(f"ministack is not installed ({exe} missing)")
    workdir = tmp_path_factory.mktemp("ministack")
    port = free_port()
    env = {
        **os.environ,
        "GATEWAY_PORT": str(port),
        "BIND_HOST": "127.0.0.1",
        # Side listeners on fixed ports would collide between parallel sessions.
        "IOT_MTLS_ENABLED": "0",
        "SFTP_ENABLED": "0",
        "S3_PERSIST": "0",
        "TMPDIR": str(workdir),
    }
    log = open(workdir / "ministack.log", "wb")  # noqa: SIM115 - closed at session end
    proc = subprocess.Popen(
        [str(exe)], env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + _START_TIMEOUT_S
    try:
        while not _answers(f"{endpoint}/_ministack/health"):
            if proc.poll() is not None or time.monotonic() > deadline:
                _stop(proc)
                tail = (workdir / "ministack.log").read_text(errors="replace")[-2000:]
                service_unavailable(f"ministack did not start on port {port}: {tail}")
            time.sleep(0.1)
        yield endpoint
    finally:
        _stop(proc)
        log.close()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials in the standard AWS variables (ministack accepts any)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
