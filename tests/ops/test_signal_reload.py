"""SIGHUP's secrets reload runs off the signal thread: a blocked reload never holds back a halt."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from supervisors import Runtime
from tests.helpers import wait_until
from xorj_actors.kill_switch import HaltBoard
from xorj_actors.ops import HANDLED_SIGNALS, SignalWatcher


@pytest.fixture
def signals_blocked() -> Iterator[None]:
    """The handled signals blocked in this thread (so in the threads it starts), as the engine does."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _watcher_thread() -> threading.Thread:
    wait_until(lambda: any(t.name == "signal-watcher" for t in threading.enumerate()), 10, "the signal thread")
    return next(t for t in threading.enumerate() if t.name == "signal-watcher")


def test_a_blocked_sighup_reload_does_not_hold_back_a_sigusr2_halt(
    signals_blocked: None, runtime: Runtime, tmp_path: Path
) -> None:
    started, release = threading.Event(), threading.Event()
    reloads: list[str] = []

    def reload(trigger: str) -> None:  # a Secrets Manager read that hangs
        reloads.append(trigger)
        started.set()
        release.wait(60)

    kill_file = tmp_path / "KILL"
    SignalWatcher.start(HaltBoard(), lambda why: None, kill_file, on_reload=reload)
    watcher = _watcher_thread()
    assert watcher.ident is not None
    try:
        signal.pthread_kill(watcher.ident, signal.SIGHUP)
        wait_until(started.is_set, 10, "the reload to start")
        signal.pthread_kill(watcher.ident, signal.SIGHUP)  # both fold into one pending reload
        signal.pthread_kill(watcher.ident, signal.SIGHUP)
        # No kill switch runs here: the halt fails closed, to the kill file.
        signal.pthread_kill(watcher.ident, signal.SIGUSR2)
        wait_until(kill_file.exists, 10, "the SIGUSR2 halt while the reload is blocked")
        assert not release.is_set() and reloads == ["SIGHUP"]  # the reload is still blocked
        assert "SIGUSR2" in kill_file.read_text()
    finally:
        release.set()
    wait_until(lambda: len(reloads) == 2, 10, "the pending reload")  # one more, not two
    wait_until(lambda: not any(t.name == "secrets-reload" for t in threading.enumerate()), 10, "the reload thread")
    assert reloads == ["SIGHUP", "SIGHUP"]
