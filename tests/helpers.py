"""Small helpers shared by the suite."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from supervisors import Actor, Terminated


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` until true; fail the test with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


class Watcher(Actor):
    """Collects the Terminated notes of the actors it is told to watch."""

    def __init__(self) -> None:
        super().__init__()
        self.notes: list[Terminated] = []

    def on_receive(self, message: object) -> None:
        if isinstance(message, Terminated):
            self.notes.append(message)

    def watch_ref(self, ref) -> None:
        self.watch(ref)
