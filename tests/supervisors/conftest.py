from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from supervisors import Runtime


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, what: str = "condition") -> None:
    """Poll ``predicate`` until true; fail the test with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    before = set(threading.enumerate())
    rt = Runtime(workers=2, mailbox_capacity=1000, name="test")
    try:
        yield rt
    finally:
        hung = rt.shutdown(timeout=5)
        assert not hung, f"actors did not stop: {hung}"
        wait_until(lambda: not (set(threading.enumerate()) - before), 5, "runtime threads to exit")
