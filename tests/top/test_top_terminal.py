"""``xorj-actors top`` as an operator uses it: in a real terminal (tmux), against a real engine.

The engine is a ``xorj-actors run`` process trading on its in-process localnet. The view runs in a
tmux pane of 160x50; keys go in with ``send-keys`` and the screen comes back with
``capture-pane``. Every wait polls the screen with a generous timeout (a loaded 2-core machine).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.chaos.crash_helpers import EngineProcess, cli, poll
from tests.conftest import service_unavailable
from xorj_actors.top import bar

#: A small engine that trades at once: 4 funded vaults, a round every 2 s, no cooldown.
ENGINE = """
[engine]
environment = "development"
scheduler_workers = 1
[kill_switch]
ack_deadline_s = 1.0
cooldown_s = 0
[debug_socket]
idle_timeout_s = 300.0
[localnet]
enabled = true
vaults = 4
slot_ms = 50
[vaults]
count = 4
round_interval_s = 2.0
[strategy]
poll_interval_s = 5.0
retry_interval_s = 2.0
"""

WAIT_S = 120.0
FULL_BAR = bar(1.0)


class Pane:
    """``xorj-actors top`` in a detached tmux session of its own."""

    def __init__(self, command: list[str], cwd: Path) -> None:
        # A tmux server of its own (-S, a socket removed by close): nothing shared with any other
        # tmux user of this machine, nothing left behind.
        self.dir = Path(tempfile.mkdtemp(prefix="xorj-top-"))
        self.name = f"xorj-top-{uuid.uuid4().hex[:8]}"
        # No COLUMNS or LINES from the test's environment: the pane's own size, as in a terminal.
        shell = "env -u COLUMNS -u LINES " + " ".join(_quote(c) for c in command)
        self._tmux("new-session", "-d", "-s", self.name, "-x", "160", "-y", "50", "-c", str(cwd), shell)
        # The pane stays after top exits: a crash leaves its traceback on screen.
        self._tmux("set-option", "-t", self.name, "remain-on-exit", "on")

    def _tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-S", str(self.dir / "tmux.sock"), *args], check=check, capture_output=True, text=True, timeout=30
        )

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", self.name).stdout

    def keys(self, *keys: str, literal: bool = False) -> None:
        self._tmux("send-keys", "-t", self.name, *(["-l"] if literal else []), *keys)

    def wait_for(self, seen: Callable[[str], object], what: str, engine: EngineProcess | None = None) -> str:
        """The screen once ``seen(screen)`` is truthy; fail with the last screen after ``WAIT_S``."""
        last = [""]

        def read() -> str | None:
            last[0] = self.screen()
            return last[0] if seen(last[0]) else None

        try:
            return poll(read, WAIT_S, what, engine=engine, every=0.3)
        except pytest.fail.Exception as exc:
            raise AssertionError(f"{exc}\n--- the screen ---\n{last[0]}") from None

    def close(self) -> None:
        self._tmux("kill-server", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\\''") + "'"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    if shutil.which("tmux") is None:
        service_unavailable("tmux is not installed (apt-get install tmux; make system-deps does)")
    path = tmp_path / "engine.toml"
    path.write_text(ENGINE)
    return path


@pytest.fixture
def engines() -> Iterator[list[EngineProcess]]:
    started: list[EngineProcess] = []
    yield started
    for engine in started:
        engine.kill()


def _start(config: Path, data: Path, log: Path, engines: list[EngineProcess]) -> EngineProcess:
    engine = EngineProcess(config, data, log)
    engines.append(engine)
    poll(engine.status, WAIT_S, "the engine's debug socket", engine=engine)
    return engine


def _kill_switch(engine: EngineProcess) -> dict:
    status = engine.status()
    assert status is not None, engine.log_tail()
    return status["kill_switch"]


def _confirmed(screen: str) -> int:
    m = re.search(r"last 60 s: confirmed (\d+)", screen)
    return int(m.group(1)) if m else 0


def test_top_shows_the_engine_halts_only_when_confirmed_and_survives_a_restart(
    config: Path, tmp_path: Path, engines: list[EngineProcess]
) -> None:
    data = tmp_path / "var"
    engine = _start(config, data, tmp_path / "engine-1.log", engines)
    pane = Pane(cli("top", "--config", str(config), "--data-dir", str(data)), tmp_path)
    try:
        # The tree (vaults folded into counts by state) and the trades.
        screen = pane.wait_for(lambda s: "kill_switch" in s and "+ 4 vaults" in s, "the tree", engine)
        assert "connected" in screen and "ARMED" in screen and "executor" in screen
        screen = pane.wait_for(lambda s: _confirmed(s) > 0, "confirmed trades on screen", engine)
        assert re.search(r"TRADES  \d+\.\d\d/s  in flight \d+", screen), screen
        assert re.search(r"p50 \d+(\.\d)? m?s  p99 \d+(\.\d)? m?s  intent->confirmed", screen), screen

        # / filters the actors; s shows the selected one's details and live stack.
        pane.keys("/")
        pane.wait_for(lambda s: "Filter actors" in s, "the filter prompt", engine)
        pane.keys("executor", literal=True)
        pane.keys("Enter")
        pane.wait_for(lambda s: "filter: 'executor'" in s and "kill_switch" not in s, "the filtered tree", engine)
        pane.keys("s")
        pane.wait_for(lambda s: re.search(r"executor \(Executor\)\s+state \w+", s), "the executor's stack", engine)
        pane.keys("Escape")  # alone: an Escape followed at once by a key reads as Alt+key
        pane.wait_for(lambda s: "(escape closes)" not in s, "the stack closed", engine)
        pane.keys("/")
        pane.wait_for(lambda s: "Filter actors" in s, "the filter prompt", engine)
        pane.keys("C-u", "Enter")
        pane.wait_for(lambda s: "kill_switch" in s and "filter:" not in s, "the whole tree again", engine)

        # One key press changes nothing: h opens a prompt; Escape, or a wrong word, does not halt.
        pane.keys("h")
        pane.wait_for(lambda s: "Type HALT" in s, "the halt prompt", engine)
        pane.keys("Escape")
        pane.wait_for(lambda s: "NOT triggered" in s, "the refusal", engine)
        pane.keys("h")
        pane.wait_for(lambda s: "Type HALT" in s, "the halt prompt again", engine)
        pane.keys("halt please", literal=True)
        pane.keys("Enter")
        pane.wait_for(lambda s: "NOT triggered" in s and "Type HALT" not in s, "the refusal of a wrong word", engine)
        assert _kill_switch(engine)["state"] == "ARMED"

        # h and the typed confirmation halt the engine; the bar completes on screen.
        pane.keys("h")
        pane.wait_for(lambda s: "Type HALT" in s, "the halt prompt", engine)
        pane.keys("HALT", literal=True)
        pane.keys("Enter")
        screen = pane.wait_for(lambda s: FULL_BAR in s and "complete" in s, "the completed halt", engine)
        ks = _kill_switch(engine)
        assert (ks["state"], ks["mode"], ks["source"]) == ("TRIGGERED", "emergency", "debug_socket")
        assert "xorj-actors top" in ks["reason"]
        assert "TRIGGERED" in screen

        # The engine stops: DISCONNECTED, the last screen kept. A new engine: connected again.
        old_pid = engine.proc.pid
        engine.stop()
        pane.wait_for(lambda s: "DISCONNECTED" in s, "DISCONNECTED")
        shutil.rmtree(data)  # a first start: ARMED again, for the halt from another terminal
        engine = _start(config, data, tmp_path / "engine-2.log", engines)
        screen = pane.wait_for(lambda s: f"pid {engine.proc.pid}" in s and "ARMED" in s, "the reconnection", engine)
        assert "DISCONNECTED" not in screen and f"pid {old_pid}" not in screen
        assert FULL_BAR not in screen

        # A halt from another terminal appears as a bar of acked against live actors, complete.
        out = engine.ctl("halt", "--graceful", "--reason", "drill-2")
        assert out.returncode == 0, out.stderr
        screen = pane.wait_for(
            lambda s: "drill-2" in s and FULL_BAR in s and "complete" in s, "the halt's bar", engine
        )
        m = re.search(r"halt acks\s+\[#+\] (\d+)/(\d+)", screen)
        assert m is not None and m.group(1) == m.group(2) and int(m.group(1)) > 0, screen
        assert re.search(r"TRIGGERED\s+epoch 1  graceful", screen), screen

        pane.keys("q")
        pane.wait_for(lambda s: "Pane is dead" in s or "xorj-actors top" not in s, "top to quit")
    finally:
        pane.close()
