"""The engine as operators run it: a process, signals, ctl, exit codes, restarts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from supervisors import Fault, inject_fault
from xorj_actors.engine import EXIT_ESCALATED
from xorj_actors.kill_switch import KILL_SWITCH_NAME
from tests.helpers import cli
from tests.plugins.engine import RECOVERY_KEYS, wait_until

CONFIG = """
[vaults]
count = 5
[kill_switch]
cooldown_s = 0
ack_deadline_s = 1.0
[localnet]
enabled = false
[execution]
enabled = false
[strategy]
url = "http://127.0.0.1:9"  # nothing listens: the feed stays empty, vaults hold
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "engine.toml"
    path.write_text(CONFIG)
    return path


class EngineProcess:
    def __init__(self, config: Path, data_dir: Path) -> None:
        self.config, self.data_dir = config, data_dir
        self.log = data_dir.parent / f"{data_dir.name}.log"
        env = {**os.environ, **RECOVERY_KEYS}
        self.proc = subprocess.Popen(
            cli("run", "--config", str(config), "--data-dir", str(data_dir)),
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("wb"),
            env=env,
        )
        wait_until(lambda: self.proc.poll() is not None or self.status() is not None, 30, "engine up")
        assert self.proc.poll() is None, self.log.read_text()[-3000:]

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            cli("ctl", "--config", str(self.config), "--data-dir", str(self.data_dir), *args),
            capture_output=True, text=True, timeout=30,
        )

    def status(self) -> dict | None:
        out = self.ctl("status", "--json")
        return json.loads(out.stdout) if out.returncode == 0 else None

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def spawn():
    procs: list[EngineProcess] = []

    def start(config: Path, data_dir: Path) -> EngineProcess:
        p = EngineProcess(config, data_dir)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.kill()


def test_sigusr2_halts_sigterm_exits_0_and_a_restart_comes_back_halted(spawn, config_file, tmp_path) -> None:
    data = tmp_path / "var"
    engine = spawn(config_file, data)
    assert engine.status()["kill_switch"]["state"] == "ARMED"
    engine.signal(signal.SIGUSR2)
    wait_until(lambda: (s := engine.status()) and s["kill_switch"]["complete"], 20, "halt complete")
    ks = engine.status()["kill_switch"]
    assert ks["state"] == "TRIGGERED" and ks["mode"] == "emergency" and ks["source"] == "SIGUSR2"
    assert ks["missing"] == [] and len(ks["acked"]) == ks["registered"] > 10
    tree = json.loads(engine.ctl("tree", "--json").stdout)
    assert all({"urn", "parent", "state", "mailbox", "restarts"} <= set(a) for a in tree)
    engine.signal(signal.SIGTERM)
    assert engine.wait() == 0
    assert not (data / "debug.sock").exists()
    again = spawn(config_file, data)
    ks = again.status()["kill_switch"]
    assert ks["state"] == "TRIGGERED" and ks["epoch"] == 1
    again.signal(signal.SIGINT)
    assert again.wait() == 0


def test_signals_still_reach_the_engine_after_it_was_stopped_and_continued(spawn, config_file, tmp_path) -> None:
    # A SIGSTOP longer than the signal thread's wait, then SIGCONT (an operator's `kill -STOP`, a
    # paused container, a debugger attaching): the wait is interrupted past its deadline, where
    # CPython's sigtimedwait returns a siginfo it never filled in. The engine must neither die
    # of it (no signal handled afterwards) nor act on a signal nobody sent.
    engine = spawn(config_file, tmp_path / "var")
    for _ in range(3):
        engine.signal(signal.SIGSTOP)
        time.sleep(0.6)
        engine.signal(signal.SIGCONT)
        time.sleep(0.3)
    assert engine.status()["kill_switch"]["state"] == "ARMED"
    engine.signal(signal.SIGUSR2)
    wait_until(lambda: (s := engine.status()) and s["kill_switch"]["complete"], 20, "halt complete")
    assert engine.status()["kill_switch"]["source"] == "SIGUSR2"
    engine.signal(signal.SIGTERM)
    assert engine.wait() == 0
    log = [json.loads(line) for line in engine.log.read_text().splitlines() if line.startswith("{")]
    assert [e["message"] for e in log if e["message"].startswith("received ")] == ["received SIGUSR2", "received SIGTERM"]
    assert "Exception in thread" not in engine.log.read_text()


def test_sigusr1_halts_gracefully_and_ctl_recovers(spawn, config_file, tmp_path) -> None:
    engine = spawn(config_file, tmp_path / "var")
    engine.signal(signal.SIGUSR1)
    wait_until(lambda: (s := engine.status()) and s["kill_switch"]["complete"], 20, "halt complete")
    ks = engine.status()["kill_switch"]
    assert ks["mode"] == "graceful" and ks["source"] == "SIGUSR1"
    auths = []
    env = {**os.environ, **RECOVERY_KEYS}
    for key in ("XORJ_RECOVERY_KEY_1", "XORJ_RECOVERY_KEY_3"):
        out = subprocess.run(
            cli("ctl", "sign-recovery", "--key-env", key, "--epoch", str(ks["epoch"]), "--nonce", "drill-1", "--timestamp", "1795000000"),
            capture_output=True, text=True, env=env, check=True,
        )
        assert RECOVERY_KEYS[key] not in out.stdout, "the key itself is never printed"
        a = json.loads(subprocess.run(
            cli("ctl", "sign-recovery", "--json", "--key-env", key, "--epoch", str(ks["epoch"]), "--nonce", "drill-1", "--timestamp", "1795000000"),
            capture_output=True, text=True, env=env, check=True,
        ).stdout)
        auths += ["--auth", f"{a['key_id']}:{a['hmac']}"]
    # A stale timestamp is refused with a reason, and changes nothing.
    out = engine.ctl("recover", "--epoch", str(ks["epoch"]), "--nonce", "drill-1", "--timestamp", "1795000000", *auths)
    assert out.returncode != 0 and "stale" in out.stdout + out.stderr
    assert engine.status()["kill_switch"]["state"] == "TRIGGERED"
    now = str(int(time.time()))
    auths = []
    for key in ("XORJ_RECOVERY_KEY_1", "XORJ_RECOVERY_KEY_3"):
        a = json.loads(subprocess.run(
            cli("ctl", "sign-recovery", "--json", "--key-env", key, "--epoch", str(ks["epoch"]), "--nonce", "drill-2", "--timestamp", now),
            capture_output=True, text=True, env=env, check=True,
        ).stdout)
        auths += ["--auth", f"{a['key_id']}:{a['hmac']}"]
    out = engine.ctl("recover", "--epoch", str(ks["epoch"]), "--nonce", "drill-2", "--timestamp", now, *auths)
    assert out.returncode == 0, out.stdout + out.stderr
    assert engine.status()["kill_switch"]["state"] in ("RECOVERY_PENDING", "ARMED")
    engine.signal(signal.SIGTERM)
    assert engine.wait() == 0


def test_two_engines_with_different_data_dirs_do_not_interfere(spawn, config_file, tmp_path) -> None:
    a = spawn(config_file, tmp_path / "a")
    b = spawn(config_file, tmp_path / "b")
    assert a.ctl("halt", "--reason", "only a").returncode == 0
    wait_until(lambda: a.status()["kill_switch"]["state"] == "TRIGGERED", 10)
    assert b.status()["kill_switch"]["state"] == "ARMED"
    assert a.status()["pid"] != b.status()["pid"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[engine]\nscheduler_workerz = 3\n", "engine.scheduler_workerz: unknown key (did you mean 'scheduler_workers'?)"),
        ("[kill_switch]\nack_deadline_s = 'soon'\n", "kill_switch.ack_deadline_s: expected a number"),
        ("[kill_switch]\nrestart_factors = [0.5, 0.75]\n", "kill_switch.restart_factors"),
        ("[engine\n", "not valid TOML"),
    ],
)
def test_a_bad_config_gets_a_clear_message_naming_the_key(tmp_path, text: str, expected: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    out = subprocess.run(cli("run", "--config", str(cfg), "--data-dir", str(tmp_path / "v")), capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert expected in out.stderr
    assert not (tmp_path / "v").exists(), "a refused config changes nothing"


def test_past_the_root_restart_intensity_the_engine_exits_non_zero(engine_factory) -> None:
    engine = engine_factory(max_restarts=1)
    for _ in range(2):
        ks = engine.runtime.whereis(KILL_SWITCH_NAME)
        inject_fault(ks, Fault.RAISE)
        wait_until(lambda: engine.runtime.whereis(KILL_SWITCH_NAME) not in (None, ks) or engine.root.actor_inbox.closed)
    assert engine.wait() == EXIT_ESCALATED
