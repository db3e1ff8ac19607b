"""The worker pool's own races (supervisors/_scheduler.py)."""

from __future__ import annotations

import threading
import time

import pytest

from supervisors._scheduler import Scheduler


def test_a_shutdown_racing_a_new_worker_never_joins_a_thread_not_yet_started(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen in CI: a worker added to the pool but not yet started was joined by ``shutdown``
    (RuntimeError), which left the runtime current and failed every later test."""
    scheduler = Scheduler("race", 1)
    starting, release = threading.Event(), threading.Event()
    real_start = threading.Thread.start

    def slow_start(thread: threading.Thread) -> None:
        if thread.name.startswith("race-") and not release.is_set():
            starting.set()
            release.wait(10)
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", slow_start)
    spawner = threading.Thread(target=scheduler._spawn)  # as a replacement for a dead worker
    spawner.start()
    assert starting.wait(10)
    errors: list[BaseException] = []

    def shut_down() -> None:
        try:
            errors.extend(RuntimeError(f"still running: {n}") for n in scheduler.shutdown(timeout=10))
        except BaseException as exc:  # noqa: BLE001 - what the test looks for
            errors.append(exc)

    stopper = threading.Thread(target=shut_down)
    stopper.start()
    time.sleep(0.2)  # let the shutdown reach the half-made worker (ordering, not a measurement)
    release.set()
    spawner.join(10)
    stopper.join(10)
    assert errors == []
    assert not any(t.is_alive() for t in scheduler.threads)
