"""``xorj-actors localnet`` as a real process: JSON URLs on the first line, SIGTERM exits 0."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.conftest import free_port



def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "xorj_actors.cli", "localnet", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_json_urls_then_sigterm(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "local.toml"
    config.write_text(f"[localnet]\nrpc_port = {port}\nslot_ms = 50\n")
    proc = start("--config", str(config), "--json")
    try:
        urls = json.loads(proc.stdout.readline())
        assert set(urls) == {"rpc", "ws", "quote", "quant", "block_engine"}
        assert urls["rpc"] == f"http://127.0.0.1:{port}" and urls["ws"] == f"ws://127.0.0.1:{port}"
        request = urllib.request.Request(
            urls["rpc"],
            data=b'{"jsonrpc":"2.0","id":1,"method":"getHealth"}',
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert json.loads(resp.read())["result"] == "ok"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[localnet]\nslot_ms = 'fast'\n")
    proc = start("--config", str(config))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "localnet.slot_ms" in err
