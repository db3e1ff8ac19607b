"""Issue 11 item 12: a secret pasted into any free-text field is stored nowhere in clear.

A real ``xorj-actors run`` process with a recovery key in its environment. An operator pastes
that key into the debug socket's ``halt`` reason, a ``recover``'s operator and nonce (one
refused, one accepted: its nonce is then a used nonce) and ``risk-reset``'s operator and
reason. Then the key is in no file of the data directory (``audit.db`` and its WAL,
``kill_switch.json``, the logs), in no ``ctl status`` output, and not on the engine's stderr.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.helpers import QUIET_ENGINE_TOML, cli, wait_until
from tests.plugins.engine import RECOVERY_KEYS
from xorj_actors.config import load_config
from xorj_actors.kill_switch import sign_recovery
from xorj_actors.ops.ctl import CtlError, request

SECRET_ENV = "XORJ_RECOVERY_KEY_1"
SECRET = RECOVERY_KEYS[SECRET_ENV]


def _auth(epoch: int, nonce: str, ts: int) -> list[str]:
    out = []
    for key in ("XORJ_RECOVERY_KEY_1", "XORJ_RECOVERY_KEY_2"):
        out += ["--auth", f"{key}:{sign_recovery(RECOVERY_KEYS[key].encode(), epoch, nonce, ts)}"]
    return out


def test_a_secret_pasted_into_every_free_text_field_is_stored_nowhere(tmp_path: Path) -> None:
    config, data, log = tmp_path / "engine.toml", tmp_path / "var", tmp_path / "engine.stderr"
    config.write_text(QUIET_ENGINE_TOML)
    socket = data / load_config(config).debug_socket.path
    env = {**os.environ, **RECOVERY_KEYS}

    def ctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            cli("ctl", "--config", str(config), "--data-dir", str(data), *args),
            capture_output=True, text=True, timeout=30, env=env,
        )

    def status() -> dict | None:
        try:
            return request(socket, "status", timeout=5.0)
        except CtlError:
            return None

    with log.open("wb") as err:
        proc = subprocess.Popen(
            cli("run", "--config", str(config), "--data-dir", str(data), "--log-json"),
            stdout=subprocess.DEVNULL, stderr=err, env=env,
        )
    outputs: list[str] = []
    try:
        wait_until(lambda: proc.poll() is not None or status(), 30, "engine up")
        assert proc.poll() is None, log.read_text()[-3000:]

        out = ctl("halt", "--graceful", "--reason", f"pasted by mistake: {SECRET}")
        assert out.returncode == 0, out.stdout + out.stderr
        outputs.append(out.stdout + out.stderr)
        wait_until(lambda: (s := status()) and s["kill_switch"]["complete"], 20, "halt complete")
        epoch = status()["kill_switch"]["epoch"]
        for args in (("status",), ("status", "--json")):
            out = ctl(*args)
            assert out.returncode == 0, out.stdout + out.stderr
            outputs.append(out.stdout + out.stderr)
        assert "pasted by mistake" in outputs[-1], "the reason is there, masked"

        now = int(time.time())
        # Refused (the epoch is wrong): the refusal is audited with the operator and nonce.
        out = ctl("recover", "--epoch", str(epoch + 7), "--nonce", SECRET, "--timestamp", str(now),
                  "--operator", f"op {SECRET}", *_auth(epoch + 7, SECRET, now))
        assert out.returncode != 0, out.stdout + out.stderr
        outputs.append(out.stdout + out.stderr)
        # Accepted: the nonce becomes a used nonce, kept across restarts.
        out = ctl("recover", "--epoch", str(epoch), "--nonce", SECRET, "--timestamp", str(now),
                  "--operator", f"op {SECRET}", *_auth(epoch, SECRET, now))
        assert out.returncode == 0, out.stdout + out.stderr
        outputs.append(out.stdout + out.stderr)
        wait_until(lambda: status()["kill_switch"]["state"] == "ARMED", 20, "armed again")

        out = ctl("risk-reset", "--operator", f"op {SECRET}", "--reason", f"reset {SECRET}")
        assert out.returncode == 0, out.stdout + out.stderr
        outputs.append(out.stdout + out.stderr)
        for args in (("status",), ("status", "--json"), ("risk", "--json")):
            out = ctl(*args)
            assert out.returncode == 0, out.stdout + out.stderr
            outputs.append(out.stdout + out.stderr)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)

    leaks = [f"ctl output {i}" for i, text in enumerate(outputs) if SECRET in text]
    leaks += [f"engine stderr: {line[:300]}" for line in log.read_text().splitlines() if SECRET in line]
    for p in sorted(data.rglob("*")):
        if p.is_file() and not p.is_symlink() and SECRET.encode() in p.read_bytes():
            leaks.append(str(p.relative_to(data)))
    assert not leaks, f"{SECRET_ENV}'s value stored in clear in: {leaks}"
    # What was masked is still recorded, masked.
    assert "pasted by mistake: ***" in (data / "kill_switch.json").read_text()
